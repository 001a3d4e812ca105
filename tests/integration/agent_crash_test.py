"""vireod killed with SIGKILL at random points of the operations that change
its inventory (issue 10, "Tests and figures"), 100 times: each round starts
vireod, fires one random operation through the API from a client thread,
kills vireod after a random delay, restarts it and checks from outside (the
API, the datastore's folders, the database, the processes) that no VM is
lost, duplicated, half-registered or running twice:

- every VM in GET /v1/vms has a whole folder whose vm.json parses and names
  it; no staging or trash folder (`.NAME.vireo-creating`,
  `.NAME.vireo-deleting`) and no half-written `vm.json.new` is left; no
  folder is registered twice and every folder on the datastore is a
  registered VM or one the test unregistered (kept on purpose);
- the database holds only registered VMs (no `creating`, `deleting`) and
  exactly those the API lists; every registered VM has its `vm.created`
  event;
- every task is done or failed (none still running after the restart);
- what was acknowledged happened: a create answered 201 exists, a delete
  answered 200 is gone (with its folder when it took the files), a
  reconfigure answered 200 shows in vm.json; what was not acknowledged
  either happened whole or not at all (a reconfigure leaves the old or the
  new definition, never a mix);
- (agent_crash_power_test.py, with VMs) at most one vireo-vmm per VM,
  counted by its control socket, and the API says running exactly when it
  runs; a start answered 200 runs, a stop answered 200 does not.

The delays are aimed: before the kills, each operation is timed a few times
uninterrupted, and a kill comes uniformly between 0 and 1.3 times that
operation's slowest time, so kills land before, inside and just after it;
the test fails when fewer than a fifth of the kills interrupted an operation
(the figures are printed: how many kills cut an operation short, how many
left a VM half-way in the database or a staging or trash folder for the next
vireod to finish).

This one (label integration, no KVM) does create, clone (a task: the kill
may land while it runs; afterwards no task may still be running, a clone
whose task succeeded exists, one that did not is whole or absent), delete
with and without the files, and reconfigure: 100 kills in 10-20 s. Power
operations need VMs: agent_crash_power_test.py (label kvm) runs the same
loop with start, stop and reset among them, fewer kills (the emulated KVM
is slow).
Another operation is one more entry in OPERATIONS (an Operation with its
pick, request, perform when it is more than one request, and expect)."""

import contextlib
import http.client
import json
import os
import random
import signal
import socket
import sqlite3
import threading
import time
import unittest

import agent
import vmtest

KERNEL = vmtest.guest("uart_echo.elf")  # waits for console input: runs until stopped
KILLS = int(os.environ.get("VIREO_CRASH_KILLS", "100"))
CALIBRATION_RUNS = 3
DELAY_FACTOR = 1.3
NO_ANSWER = None  # the status of a request vireod died before answering


def definition(vcpus=1, memory_mib=16):
    return {"vcpus": vcpus, "memory_mib": memory_mib, "boot": {"kernel": KERNEL}}


class Model:
    """What the test knows of the inventory: each registered VM's definition
    (vcpus, memory_mib), or the set of those it may have after a kill that
    left an operation unanswered; its power state for the power operations;
    the folders it unregistered on purpose."""

    def __init__(self):
        self.vms = {}  # name -> set of (vcpus, memory_mib) allowed
        self.running = {}  # name -> True, False or None (either)
        self.maybe = set()  # names that may or may not exist
        self.kept = set()  # unregistered names whose folder stays
        self.counter = 0

    def new_name(self):
        self.counter += 1
        return f"vm-{self.counter:03d}"

    def settled(self, names):
        """Existing (whole) VMs, in the order of `names`, that no unanswered
        operation left uncertain: those an operation may pick."""
        return [name for name in names if name in self.vms and name not in self.maybe]


class Operation:
    """One kind of request: `pick` chooses its target from the model (None:
    not possible now), `request` is (method, target, body), `expect` updates
    the model from the answer (NO_ANSWER when vireod died first)."""

    name = ""
    weight = 1
    needs_kvm = False

    def pick(self, model, rng):
        raise NotImplementedError

    def request(self, target):
        raise NotImplementedError

    def perform(self, vireod, target):
        """(status, answer) of the whole operation; a request by default."""
        return vireod.request(*self.request(target))

    def expect(self, model, target, status, answer):
        raise NotImplementedError


class Create(Operation):
    name = "create"
    weight = 3

    def pick(self, model, rng):
        if len(model.settled(model.vms)) >= 8:
            return None
        return {"name": model.new_name(), "vcpus": rng.randint(1, 2),
                "memory_mib": rng.choice([16, 24, 32])}

    def request(self, target):
        return "POST", "/v1/vms", {"name": target["name"], "datastore": "ds1",
                                   "definition": definition(target["vcpus"],
                                                            target["memory_mib"])}

    def expect(self, model, target, status, answer):
        name = target["name"]
        if status not in (201, NO_ANSWER):
            raise AssertionError(f"create {name}: {status} {answer}")
        model.vms[name] = {(target["vcpus"], target["memory_mib"])}
        model.running[name] = False
        if status is NO_ANSWER:
            model.maybe.add(name)


class Delete(Operation):
    name = "delete --files"
    weight = 2
    files = True

    def pick(self, model, rng):
        candidates = [name for name in model.settled(sorted(model.vms))
                      if model.running.get(name) is False]
        if len(candidates) < 2:
            return None
        return {"name": rng.choice(candidates)}

    def request(self, target):
        return "DELETE", f"/v1/vms/{target['name']}?files={'true' if self.files else 'false'}", None

    def expect(self, model, target, status, answer):
        name = target["name"]
        if status not in (200, NO_ANSWER):
            raise AssertionError(f"{self.name} {name}: {status} {answer}")
        if status is NO_ANSWER:
            model.maybe.add(name)
            if not self.files:
                model.kept.add(name)  # whether or not it was unregistered, the folder stays
            return
        del model.vms[name]
        del model.running[name]
        if not self.files:
            model.kept.add(name)


class Unregister(Delete):
    name = "delete (unregister)"
    weight = 1
    files = False


class Reconfigure(Operation):
    name = "reconfigure"
    weight = 3

    def pick(self, model, rng):
        candidates = [name for name in model.settled(sorted(model.vms))
                      if model.running.get(name) is False]
        if not candidates:
            return None
        return {"name": rng.choice(candidates), "vcpus": rng.randint(1, 4),
                "memory_mib": rng.choice([16, 20, 24, 28, 32])}

    def request(self, target):
        return "PATCH", f"/v1/vms/{target['name']}", {"vcpus": target["vcpus"],
                                                      "memory_mib": target["memory_mib"]}

    def expect(self, model, target, status, answer):
        name = target["name"]
        if status not in (200, NO_ANSWER):
            raise AssertionError(f"reconfigure {name}: {status} {answer}")
        new = (target["vcpus"], target["memory_mib"])
        if status is NO_ANSWER:
            model.vms[name] = model.vms[name] | {new}
        else:
            model.vms[name] = {new}


class Clone(Operation):
    """A full clone: 202 and a task, done once the task has succeeded."""

    name = "clone"
    weight = 2

    def pick(self, model, rng):
        sources = [name for name in model.settled(sorted(model.vms))
                   if model.running.get(name) is False]
        if not sources or len(model.settled(model.vms)) >= 8:
            return None
        source = rng.choice(sources)
        return {"source": source, "name": model.new_name(),
                "definition": next(iter(model.vms[source]))}

    def request(self, target):
        return "POST", f"/v1/vms/{target['source']}/clone", {"name": target["name"]}

    def perform(self, vireod, target):
        status, task = vireod.request(*self.request(target))
        if status != 202:
            return status, task
        deadline = time.monotonic() + 60
        while task["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.002)
            status, task = vireod.request("GET", f"/v1/tasks/{task['id']}")
        return (200 if task["state"] == "succeeded" else 500), task

    def expect(self, model, target, status, answer):
        name = target["name"]
        if status not in (200, NO_ANSWER):
            raise AssertionError(f"clone {target['source']} as {name}: {status} {answer}")
        model.vms[name] = {target["definition"]}
        model.running[name] = False
        if status is NO_ANSWER:
            model.maybe.add(name)


class PowerOperation(Operation):
    """A power operation on a VM whose power state is `runs_before`; once
    answered it is `runs_after` (unknown when the kill came first)."""
    weight = 3
    needs_kvm = True
    runs_before = None
    runs_after = None

    def pick(self, model, rng):
        candidates = [name for name in model.settled(sorted(model.vms))
                      if model.running.get(name) is self.runs_before]
        return {"name": rng.choice(candidates)} if candidates else None

    def request(self, target):
        return "POST", f"/v1/vms/{target['name']}/{self.name}", None

    def expect(self, model, target, status, answer):
        if status not in (200, NO_ANSWER):
            raise AssertionError(f"{self.name} {target['name']}: {status} {answer}")
        model.running[target["name"]] = self.runs_after if status == 200 else None


class Start(PowerOperation):
    name = "start"
    runs_before, runs_after = False, True


class Stop(PowerOperation):
    name = "stop"
    runs_before, runs_after = True, False


class Reset(PowerOperation):
    name = "reset"
    weight = 1
    runs_before, runs_after = True, True


OPERATIONS = [Create(), Clone(), Delete(), Unregister(), Reconfigure(), Start(), Stop(), Reset()]


class CrashLoop:
    """The kill loop over one agent; `operations` are those it may fire."""

    def __init__(self, test, operations, kills, seed):
        self.test = test
        self.operations = operations
        self.kills = kills
        self.rng = random.Random(seed)
        self.seed = seed
        self.agent = test.agent
        self.model = Model()
        self.slowest = {}  # operation name -> seconds, uninterrupted
        self.figures = {"kills": 0, "unanswered": 0, "half-way in the database": 0,
                        "staging or trash folder": 0}
        self.per_operation = {}

    # ------------------------------------------------------------ firing

    def choose(self):
        weights, choices = [], []
        for operation in self.operations:
            target = operation.pick(self.model, self.rng)
            if target is not None:
                choices.append((operation, target))
                weights.append(operation.weight)
        return self.rng.choices(choices, weights)[0]

    def fire(self, operation, target, kill_after=None):
        """Sends the request from a thread; with `kill_after`, SIGKILLs vireod
        that many seconds after sending. Returns (status or NO_ANSWER, answer,
        seconds until the answer)."""
        method, path, _ = operation.request(target)
        outcome = {}

        def client():
            try:
                outcome["answer"] = operation.perform(self.agent, target)
            except (OSError, http.client.HTTPException, json.JSONDecodeError) as error:
                outcome["error"] = error
            outcome["done"] = time.monotonic()

        sent = time.monotonic()
        thread = threading.Thread(target=client)
        thread.start()
        if kill_after is not None:
            time.sleep(kill_after)
            self.agent.stop(signal.SIGKILL)
        thread.join(timeout=120)
        self.test.assertFalse(thread.is_alive(), f"{method} {path}: no end within 120 s")
        if "answer" in outcome:
            status, answer = outcome["answer"]
            return status, answer, outcome["done"] - sent
        if kill_after is None:
            raise AssertionError(f"{method} {path} failed without a kill: {outcome['error']}")
        return NO_ANSWER, str(outcome["error"]), None

    def calibrate(self):
        """Times each operation uninterrupted (they change the inventory as
        any other round would)."""
        for operation in self.operations:
            for _ in range(CALIBRATION_RUNS):
                target = operation.pick(self.model, self.rng)
                while target is None:  # make what it needs: VMs, a running one
                    needs_running = getattr(operation, "runs_before", None) is True
                    helper = Start() if needs_running else Create()
                    helper_target = helper.pick(self.model, self.rng)
                    helper.expect(self.model, helper_target,
                                  *self.fire(helper, helper_target)[:2])
                    target = operation.pick(self.model, self.rng)
                status, answer, seconds = self.fire(operation, target)
                operation.expect(self.model, target, status, answer)
                self.slowest[operation.name] = max(self.slowest.get(operation.name, 0), seconds)
        self.check()

    # ------------------------------------------------------------ the loop

    def run(self):
        self.calibrate()
        for round_number in range(self.kills):
            operation, target = self.choose()
            delay = self.rng.uniform(0, DELAY_FACTOR * self.slowest[operation.name])
            status, answer, _ = self.fire(operation, target, kill_after=delay)
            figures = self.per_operation.setdefault(operation.name, [0, 0])
            figures[0] += 1
            self.figures["kills"] += 1
            if status is NO_ANSWER:
                figures[1] += 1
                self.figures["unanswered"] += 1
            self.look_at_what_the_kill_left()
            operation.expect(self.model, target, status, answer)
            restart(self.agent)
            try:
                self.check()
            except AssertionError as failure:
                raise AssertionError(
                    f"round {round_number} (seed {self.seed}): {operation.name} {target}, "
                    f"killed after {delay * 1000:.1f} ms, answer {status}: {failure}") from None
        self.report()

    def look_at_what_the_kill_left(self):
        """Counts what the next vireod must finish: records half-way, staging
        and trash folders (so the figures show the kills were well aimed)."""
        with contextlib.closing(self.open_database()) as database:
            stages = [row[0] for row in database.execute("SELECT stage FROM vms")]
        if any(stage != "registered" for stage in stages):
            self.figures["half-way in the database"] += 1
        if any(entry.startswith(".") and entry.endswith((".vireo-creating", ".vireo-deleting"))
               for entry in os.listdir(self.agent.datastore)):
            self.figures["staging or trash folder"] += 1

    def open_database(self):
        path = os.path.join(self.agent.state, "vireod.db")
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def report(self):
        shares = ", ".join(f"{name}: {count} kills, {cut} before the answer"
                           for name, (count, cut) in sorted(self.per_operation.items()))
        slowest = ", ".join(f"{name} {seconds * 1000:.1f} ms"
                            for name, seconds in sorted(self.slowest.items()))
        print(f"\ncrash loop (seed {self.seed}): {self.figures}; {shares}; "
              f"slowest uninterrupted: {slowest}", flush=True)
        self.test.assertGreaterEqual(self.figures["unanswered"], self.figures["kills"] // 5,
                                     "the kills came too late to cut operations short")

    # ------------------------------------------------------------ invariants

    def check(self):
        model = self.model
        status, listed = self.agent.request("GET", "/v1/vms")
        self.test.assertEqual(status, 200)
        vms = listed["vms"]
        names = [vm["name"] for vm in vms]
        folders = [vm["folder"] for vm in vms]
        self.test.assertEqual(len(set(names)), len(names), f"a VM listed twice: {names}")
        self.test.assertEqual(len(set(folders)), len(folders), f"a folder twice: {folders}")

        # The database: registered VMs only, the same as the API's.
        with contextlib.closing(self.open_database()) as database:
            rows = sorted(database.execute("SELECT name, stage FROM vms"))
            created = {row[0] for row in database.execute(
                "SELECT vm FROM events WHERE kind = 'vm.created'")}
        self.test.assertEqual(rows, [(name, "registered") for name in sorted(names)],
                              "the database holds a VM half-way, or one the API does not list")
        self.test.assertFalse(set(names) - created, "a registered VM without its vm.created")

        # Every task is done or failed: none runs on after its vireod died.
        status, tasks = self.agent.request("GET", "/v1/tasks")
        unfinished = [task for task in tasks["tasks"] if task["state"] == "running"]
        self.test.assertEqual(unfinished, [], "a task of a dead vireod still runs")

        # The datastore: whole folders, registered ones or those kept on purpose.
        entries = sorted(os.listdir(self.agent.datastore))
        self.test.assertEqual([entry for entry in entries if entry.startswith(".")], [],
                              "a staging or trash folder is left")
        self.test.assertFalse(set(entries) - set(names) - model.kept,
                              f"a folder nobody owns: {sorted(set(entries) - set(names))}")
        for vm in vms:
            self.test.assertEqual(vm["folder"], os.path.join(self.agent.datastore, vm["name"]))
            self.test.assertTrue(os.path.isdir(vm["folder"]), f"{vm['name']}'s folder is gone")
            with open(os.path.join(vm["folder"], "vm.json")) as file:
                written = json.load(file)  # parsable, whole
            self.test.assertEqual(written["name"], vm["name"])
            self.test.assertFalse(os.path.exists(os.path.join(vm["folder"], "vm.json.new")),
                                  f"{vm['name']}: a half-done reconfigure's vm.json.new is left")
            self.test.assertIn(vm["name"], model.vms, f"{vm['name']}: registered, never created")
            allowed = model.vms[vm["name"]]
            self.test.assertIn((written["vcpus"], written["memory_mib"]), allowed,
                               f"{vm['name']}: vm.json is neither before nor after")
            model.vms[vm["name"]] = {(written["vcpus"], written["memory_mib"])}

        # What was acknowledged happened; what was not is settled now.
        for name in list(model.vms):
            if name in names:
                continue
            self.test.assertIn(name, model.maybe, f"{name}: acknowledged, yet lost")
            del model.vms[name]
            model.running.pop(name, None)
            if os.path.exists(os.path.join(self.agent.datastore, name)):
                self.test.assertIn(name, model.kept, f"{name}: unregistered, its folder left")
        for name in model.kept:
            self.test.assertTrue(os.path.isdir(os.path.join(self.agent.datastore, name)) or
                                 name in model.maybe, f"{name}: its kept folder is gone")
        model.kept = {name for name in model.kept if name not in names and
                      os.path.isdir(os.path.join(self.agent.datastore, name))}
        model.maybe = set()

        # Running exactly once, and said so.
        sockets = vmm_sockets(self.agent)
        for vm in vms:
            count = sockets.count(os.path.join(self.agent.run_dir, "vms", vm["name"],
                                               "control.sock"))
            self.test.assertLessEqual(count, 1, f"{vm['name']} runs {count} times")
            running = count == 1
            self.test.assertEqual(vm["state"] in ("running", "paused"), running,
                                  f"{vm['name']}: the API says {vm['state']}, "
                                  f"its VMM {'runs' if running else 'does not run'}")
            expected = model.running.get(vm["name"])
            if expected is not None:
                self.test.assertEqual(running, expected, f"{vm['name']}: acknowledged power "
                                      f"operation undone")
            model.running[vm["name"]] = running
        self.test.assertEqual(len(sockets), sum(1 for vm in vms if vm["state"] != "off"),
                              f"a VMM for no registered VM: {sockets}")


def restart(vireod):
    """Starts vireod and waits until its socket takes connections: the file
    appears at bind(), a moment before listen()."""
    vireod.start()

    def listening():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            return probe.connect_ex(vireod.socket) == 0

    vmtest.wait_until(listening, timeout=30, what="vireod listening")


def vmm_sockets(vireod):
    """The control socket of each vireo-vmm running for `vireod`'s VMs."""
    sockets = []
    for pid in vireod.vmm_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                arguments = file.read().decode().split("\0")
        except OSError:
            continue
        if "--control-socket" in arguments:
            sockets.append(arguments[arguments.index("--control-socket") + 1])
    return sockets


class AgentCrashTest(unittest.TestCase):
    def setUp(self):
        self.agent = agent.Agent()
        self.addCleanup(self.agent.close)
        restart(self.agent)

    def test_kills_during_create_delete_and_reconfigure(self):
        seed = int(os.environ.get("VIREO_CRASH_SEED", str(random.randrange(1 << 32))))
        operations = [operation for operation in OPERATIONS if not operation.needs_kvm]
        CrashLoop(self, operations, KILLS, seed).run()


if __name__ == "__main__":
    vmtest.main()
