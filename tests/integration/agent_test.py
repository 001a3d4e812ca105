"""vireod, the host agent, without VMs running: the inventory through its
REST API and through `vireo vm`, refusals (400 naming the field, 404, 405,
409, 413) that write nothing, the inventory kept across SIGTERM and SIGKILL,
one agent per state folder, datastores (kept in its database, the old
registry file imported), the network configuration read and replaced with
its revision, remote clients over TLS with admin and
read-only tokens (401, 403), and every answer checked against
docs/api/openapi.json, whose every operation this test calls. Power
operations are called too: on a host without KVM start answers 500 with the
VMM's reason (agent_vm_test.py runs VMs)."""

import hashlib
import json
import os
import signal
import sqlite3
import ssl
import subprocess
import time
import unittest

import agent
import vmtest

KERNEL = vmtest.guest("uart_echo.elf")


def definition(**changes):
    document = {"vcpus": 1, "memory_mib": 64, "boot": {"kernel": KERNEL}}
    document.update(changes)
    return document


class AgentTest(unittest.TestCase):
    checked = set()

    def setUp(self):
        self.agent = agent.Agent()
        self.addCleanup(self.agent.close)
        self.agent.start()

    def tearDown(self):
        AgentTest.checked |= self.agent.api.checked

    def create(self, name, **changes):
        return self.agent.request("POST", "/v1/vms", {"name": name, "datastore": "ds1",
                                                      "definition": definition(**changes)})

    def test_vms_through_the_api_and_the_cli(self):
        result = self.agent.cli("vm", "create", "web-1", "--datastore", "ds1", "--kernel", KERNEL,
                                "--cpus", "2", "--memory", "96M")
        self.assertIn("created web-1: off", result.stdout)
        with open(os.path.join(self.agent.datastore, "web-1", "vm.json")) as file:
            written = json.load(file)
        self.assertEqual((written["vcpus"], written["memory_mib"]), (2, 96))
        self.assertEqual(written["console"], {"output": "file", "path": "console.log",
                                              "input": False})
        status, vm = self.create("db-1")
        self.assertEqual(status, 201)
        self.assertEqual(vm["state"], "off")

        listed = json.loads(self.agent.cli("vm", "list", "--json").stdout)
        self.assertEqual([vm["name"] for vm in listed], ["db-1", "web-1"])
        self.assertIn("web-1", self.agent.cli("vm", "list").stdout)
        status, vm = self.agent.request("GET", "/v1/vms/web-1")
        self.assertEqual((status, vm["state"], vm["datastore"]), (200, "off", "ds1"))
        status, host = self.agent.request("GET", "/v1/host")
        self.assertEqual((status, host["vms"], host["vms_running"]), (200, 2, 0))
        status, metrics = self.agent.request("GET", "/metrics")
        self.assertIn('vireo_vm_running{vm="web-1"} 0\n', metrics)
        self.assertIn("# TYPE vireo_host_vms gauge\nvireo_host_vms 2\n", metrics)

        status, events = self.agent.request("GET", "/v1/events")
        self.assertEqual([e["kind"] for e in events["events"]],
                         ["datastore.added", "vm.created", "vm.created"])
        status, later = self.agent.request("GET", f"/v1/events?after={events['events'][1]['id']}")
        self.assertEqual(len(later["events"]), 1)
        self.assertIn("vm.created", self.agent.cli("event", "list").stdout)

        # Reconfigured while off: the definition changes, checked first.
        self.agent.cli("vm", "reconfigure", "web-1", "--cpus", "4", "--memory", "128M")
        with open(os.path.join(self.agent.datastore, "web-1", "vm.json")) as file:
            written = json.load(file)
        self.assertEqual((written["vcpus"], written["memory_mib"]), (4, 128))
        # Boot fields merge: a new command line keeps the kernel.
        self.agent.cli("vm", "reconfigure", "web-1", "--cmdline", "console=ttyS0 quiet")
        with open(os.path.join(self.agent.datastore, "web-1", "vm.json")) as file:
            written = json.load(file)
        self.assertEqual(written["boot"], {"kernel": KERNEL, "cmdline": "console=ttyS0 quiet"})
        for changes, message in (({"name": "other"}, "name: cannot be changed"),
                                 ({"vcpus": 0}, "definition: vcpus: 0 is out of range"),
                                 ({"boot": {"kernel": "/nope"}}, "boot.kernel: /nope: no such")):
            status, answer = self.agent.request("PATCH", "/v1/vms/web-1", changes)
            self.assertEqual(status, 400, answer)
            self.assertIn(message, answer["error"])
        self.assertEqual(self.agent.request("PATCH", "/v1/vms/ghost", {"vcpus": 1})[0], 404)
        with open(os.path.join(self.agent.datastore, "web-1", "vm.json")) as file:
            self.assertEqual(json.load(file), written)

        # The console, read in pieces from offsets; bytes that are not UTF-8
        # arrive as U+FFFD.
        with open(os.path.join(self.agent.datastore, "web-1", "console.log"), "wb") as log:
            log.write(b"Hello\n\xffworld\n")
        status, chunk = self.agent.request("GET", "/v1/vms/web-1/console")
        self.assertEqual(chunk, {"offset": 13, "text": "Hello\n\ufffdworld\n", "running": False})
        status, chunk = self.agent.request("GET", "/v1/vms/web-1/console?offset=6")
        self.assertEqual(chunk["text"], "\ufffdworld\n")
        self.assertEqual(self.agent.request("GET", "/v1/vms/web-1/console?offset=99")[1]["text"],
                         "")
        self.assertEqual(self.agent.request("GET", "/v1/vms/web-1/console?offset=x")[0], 400)
        self.assertEqual(self.agent.request("GET", "/v1/vms/ghost/console")[0], 404)
        self.assertIn("world", self.agent.cli("vm", "console", "web-1", "--follow").stdout)

        # Kept: unregistered, the folder stays; --files: gone.
        status, deleted = self.agent.request("DELETE", "/v1/vms/db-1")
        self.assertEqual((status, deleted), (200, {"deleted": "db-1", "files": False}))
        self.assertTrue(os.path.exists(os.path.join(self.agent.datastore, "db-1", "vm.json")))
        self.agent.cli("vm", "delete", "web-1", "--files")
        self.assertFalse(os.path.exists(os.path.join(self.agent.datastore, "web-1")))
        self.assertEqual(json.loads(self.agent.cli("vm", "list", "--json").stdout), [])

    def test_refusals_name_the_field_and_write_nothing(self):
        self.create("keep")
        before_files = sorted(os.listdir(self.agent.datastore))
        _, before_events = self.agent.request("GET", "/v1/events")
        cases = [
            ("{not json", 400, "body: not valid JSON"),
            ("[1]", 400, "body: must be a JSON object"),
            (json.dumps({"name": "x", "datastore": "ds1", "definition": definition(),
                         "colour": "blue"}), 400, "colour: unknown field"),
            (json.dumps({"datastore": "ds1", "definition": definition()}), 400, "name: missing"),
            (json.dumps({"name": "../etc", "datastore": "ds1", "definition": definition()}), 400,
             "name: '../etc' is not a VM name"),
            (json.dumps({"name": "a/b", "datastore": "ds1", "definition": definition()}), 400,
             "name: 'a/b' is not a VM name"),
            (json.dumps({"name": "x", "datastore": "nope", "definition": definition()}), 400,
             "datastore: no datastore 'nope'"),
            (json.dumps({"name": "x", "datastore": "ds1",
                         "definition": definition(memory_mib=1 << 40)}), 400,
             "definition: memory_mib: 1099511627776 is out of range"),
            (json.dumps({"name": "x", "datastore": "ds1",
                         "definition": definition(boot={"kernel": "/nonexistent"})}), 400,
             "definition: boot.kernel"),
            (json.dumps({"name": "keep", "datastore": "ds1", "definition": definition()}), 409,
             "already exists"),
            ("x" * (2 << 20), 413, "larger than"),
        ]
        for raw, status, message in cases:
            with self.subTest(body=raw[:60]):
                got, answer = self.agent.request("POST", "/v1/vms", raw=raw)
                self.assertEqual(got, status, answer)
                self.assertIn(message, answer["error"])
        self.assertEqual(sorted(os.listdir(self.agent.datastore)), before_files)
        self.assertEqual(self.agent.request("GET", "/v1/events")[1], before_events)

        self.assertEqual(self.agent.request("GET", "/v1/vms/ghost")[0], 404)
        self.assertEqual(self.agent.request("DELETE", "/v1/vms/ghost")[0], 404)
        self.assertEqual(self.agent.request("DELETE", "/v1/vms/keep?files=maybe")[0], 400)
        self.assertEqual(self.agent.request("PUT", "/v1/vms")[0], 405)
        self.assertEqual(self.agent.request("GET", "/v1/nothing")[0], 404)
        self.assertEqual(self.agent.request("GET", "/v1/events?limit=5000")[0], 400)
        self.assertEqual(self.agent.request("POST", "/v1/vms/keep/explode")[0], 404)
        for action in ("stop", "reset", "shutdown", "pause", "resume"):
            status, answer = self.agent.request("POST", f"/v1/vms/{action}-ghost/{action}")
            self.assertEqual(status, 404)
            status, answer = self.agent.request("POST", f"/v1/vms/keep/{action}")
            self.assertEqual(status, 409, answer)
            self.assertIn("not running", answer["error"])
        result = self.agent.cli("vm", "stop", "keep", check=False)
        self.assertEqual(result.returncode, 2)
        self.assertIn("vireo: VM 'keep' is not running", result.stderr)

    def test_start_without_kvm_says_why(self):
        if vmtest.kvm_usable()[0]:
            self.skipTest("KVM is usable here: agent_vm_test.py starts VMs")
        self.create("vm")
        status, answer = self.agent.request("POST", "/v1/vms/vm/start")
        self.assertEqual(status, 500)
        self.assertIn("did not start", answer["error"])
        self.assertIn("/dev/kvm", answer["error"])
        self.assertEqual(self.agent.request("GET", "/v1/vms/vm")[1]["state"], "off")

    def test_the_inventory_survives_sigterm_and_sigkill(self):
        for name in ("a", "b", "c"):
            self.create(name)
        for sig in (signal.SIGKILL, signal.SIGTERM):
            self.agent.stop(sig)
            self.agent.start()
            status, answer = self.agent.request("GET", "/v1/vms")
            self.assertEqual([vm["name"] for vm in answer["vms"]], ["a", "b", "c"], sig)

    def test_one_agent_per_state_folder(self):
        second = subprocess.run([agent.VIREOD, "--state-dir", self.agent.state, "--run-dir",
                                 self.agent.run_dir, "--socket",
                                 os.path.join(self.agent.root, "other.sock")],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(second.returncode, 2)
        self.assertIn("another vireod already serves", second.stderr)
        self.assertEqual(self.agent.request("GET", "/v1/host")[0], 200)

    def test_without_vireod_the_cli_says_how_to_reach_it(self):
        self.agent.stop()
        result = self.agent.cli("vm", "list", check=False)
        self.assertEqual(result.returncode, 2)
        self.assertIn("cannot reach vireod at", result.stderr)

    def test_remote_clients_need_tls_and_a_token(self):
        self.agent.stop()
        port = self.agent.listen()
        status, host = self.agent.request("GET", "/v1/host")
        with open(self.agent.certificate) as file:
            der = ssl.PEM_cert_to_DER_cert(file.read())
        fingerprint = ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())
        self.assertEqual(host["api"], {"unix": True, "tls": f"127.0.0.1:{port}",
                                       "tls_fingerprint": fingerprint})
        self.assertEqual(os.stat(os.path.join(self.agent.state, "tls", "host.key")).st_mode
                         & 0o777, 0o600)

        # Tokens are made on the Unix socket (root's); their secrets are shown once.
        status, admin = self.agent.request("POST", "/v1/tokens", {"name": "ops", "role": "admin"})
        self.assertEqual(status, 201)
        reader = json.loads(self.agent.cli("token", "create", "viewer", "--role", "read-only",
                                           "--json").stdout)
        self.assertEqual(reader["role"], "read-only")
        self.assertEqual(self.agent.request("POST", "/v1/tokens",
                                            {"name": "ops", "role": "admin"})[0], 409)
        status, answer = self.agent.request("POST", "/v1/tokens", {"name": "x", "role": "root"})
        self.assertEqual(status, 400)
        self.assertIn("role", answer["error"])
        self.assertEqual(self.agent.request("POST", "/v1/tokens",
                                            {"name": "../x", "role": "admin"})[0], 400)
        status, listed = self.agent.request("GET", "/v1/tokens")
        self.assertEqual([token["name"] for token in listed["tokens"]], ["ops", "viewer"])
        # The host keeps hashes only.
        with open(os.path.join(self.agent.state, "vireod.db"), "rb") as file:
            database = file.read()
        for secret in (admin["token"], reader["token"]):
            self.assertNotIn(secret.encode(), database)
        connection = sqlite3.connect(os.path.join(self.agent.state, "vireod.db"))
        hashes = {row[0] for row in connection.execute("SELECT hash FROM tokens")}
        connection.close()
        self.assertEqual(hashes, {hashlib.sha256(token["token"].encode()).hexdigest()
                                  for token in (admin, reader)})

        # Over TCP: no token 401 (with a challenge), a wrong one 401, read-only
        # may GET only, admin everything.
        connection = self.agent.tls_connection()
        connection.request("GET", "/v1/vms")
        response = connection.getresponse()
        self.assertEqual((response.status, response.getheader("WWW-Authenticate")),
                         (401, 'Bearer realm="vireod"'))
        connection.close()
        self.assertEqual(self.agent.request("GET", "/v1/vms", token="")[0], 401)
        self.assertEqual(self.agent.request("GET", "/v1/vms", token="vireo_" + "0" * 64)[0], 401)
        self.assertEqual(self.agent.request("GET", "/metrics", token=reader["token"])[0], 200)
        self.assertEqual(self.agent.request("GET", "/v1/vms", token=reader["token"])[0], 200)
        status, answer = self.agent.request("POST", "/v1/vms", token=reader["token"], body={
            "name": "web", "datastore": "ds1", "definition": definition()})
        self.assertEqual(status, 403)
        self.assertIn("read-only", answer["error"])
        self.assertFalse(os.path.exists(os.path.join(self.agent.datastore, "web")))
        self.assertEqual(self.agent.request("GET", "/v1/tokens", token=reader["token"])[0], 403)
        self.assertEqual(self.agent.request("POST", "/v1/vms", token=admin["token"], body={
            "name": "web", "datastore": "ds1", "definition": definition()})[0], 201)
        status, answer = self.agent.request("POST", "/v1/vms/web/start", token=reader["token"])
        self.assertEqual(status, 403)

        # The CLI from afar: --host with the host's certificate, or the environment.
        remote = ["--host", f"https://localhost:{port}", "--ca-cert", self.agent.certificate]
        listed = self.agent.cli("vm", "list", "--json", *remote, "--token", reader["token"])
        self.assertEqual([vm["name"] for vm in json.loads(listed.stdout)], ["web"])
        env = dict(self.agent.env(), VIREO_HOST=f"https://127.0.0.1:{port}",
                   VIREO_CA_CERT=self.agent.certificate, VIREO_TOKEN=admin["token"])
        shown = subprocess.run([vmtest.VIREO, "host", "show"], env=env, capture_output=True,
                               text=True, timeout=60)
        self.assertEqual(shown.returncode, 0, shown.stderr)
        self.assertIn(fingerprint, shown.stdout)
        refused = self.agent.cli("vm", "delete", "web", *remote, "--token", reader["token"],
                                 check=False)
        self.assertEqual(refused.returncode, 2)
        self.assertIn("read-only", refused.stderr)
        untrusted = self.agent.cli("vm", "list", "--host", f"https://localhost:{port}",
                                   "--token", admin["token"], check=False)
        self.assertIn("certificate verify failed", untrusted.stderr)
        self.assertIn("--ca-cert", untrusted.stderr)
        plain = self.agent.cli("vm", "list", "--host", f"http://localhost:{port}", check=False)
        self.assertIn("give an https:// URL", plain.stderr)
        # A console is typed into: not for read-only tokens, nor for a VM that is off.
        upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
        for token, expected in ((None, 401), (reader["token"], 403), (admin["token"], 409)):
            connection = self.agent.tls_connection()
            headers = dict(upgrade, **({"Authorization": f"Bearer {token}"} if token else {}))
            connection.request("GET", "/v1/vms/web/console", headers=headers)
            self.assertEqual(connection.getresponse().status, expected, token)
            connection.close()
        console = self.agent.cli("console", "web", *remote, "--token", admin["token"],
                                 check=False)
        self.assertIn("VM 'web' is off", console.stderr)

        # Revoked: 401 from now on; tokens survive a restart of the agent.
        self.agent.stop()
        self.agent.listen()
        self.assertEqual(self.agent.request("DELETE", "/v1/tokens/viewer")[0], 200)
        self.assertEqual(self.agent.request("DELETE", "/v1/tokens/viewer")[0], 404)
        self.assertEqual(self.agent.request("GET", "/v1/vms", token=reader["token"])[0], 401)
        self.assertEqual(self.agent.request("GET", "/v1/vms", token=admin["token"])[0], 200)
        self.assertIn("ops", self.agent.cli("token", "list").stdout)
        # The same certificate as before: made once, kept.
        self.assertEqual(self.agent.request("GET", "/v1/host")[1]["api"]["tls_fingerprint"],
                         fingerprint)

    def wait_for_task(self, task):
        while task["state"] == "running":
            time.sleep(0.05)
            status, task = self.agent.request("GET", f"/v1/tasks/{task['id']}")
            self.assertEqual(status, 200)
        return task

    def qemu_io(self, disk, command, check=True):
        result = subprocess.run(["qemu-io", "-c", command, disk], capture_output=True, text=True,
                                timeout=60)
        if check:
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertNotIn("Pattern verification failed", result.stdout)
        return result

    def test_templates_clones_snapshots_and_tasks(self):
        disk = os.path.join(self.agent.root, "base.qcow2")
        subprocess.run(["qemu-img", "create", "-f", "qcow2", disk, "64M"], check=True,
                       capture_output=True)
        self.qemu_io(disk, "write -P 0x5a 0 1M")
        raw = os.path.join(self.agent.root, "base.raw")
        subprocess.run(["qemu-img", "create", "-f", "raw", raw, "16M"], check=True,
                       capture_output=True)
        self.assertEqual(self.create("gold", disks=[{"path": disk}],
                                     nics=[{"tap": "vireo-t0"}])[0], 201)
        self.assertEqual(self.create("rawvm", disks=[{"path": raw}])[0], 201)

        # Snapshots: of every writable disk, while off; revert brings the data back.
        status, made = self.agent.request("POST", "/v1/vms/gold/snapshots", {"name": "s1"})
        self.assertEqual((status, made["disks"]), (201, 1))
        self.assertEqual(self.agent.request("POST", "/v1/vms/gold/snapshots",
                                            {"name": "s1"})[0], 409)
        self.assertEqual(self.agent.request("POST", "/v1/vms/gold/snapshots",
                                            {"name": "123"})[0], 400)
        status, answer = self.agent.request("POST", "/v1/vms/rawvm/snapshots", {"name": "s1"})
        self.assertEqual(status, 409)
        self.assertIn("raw", answer["error"])
        self.assertEqual(self.agent.request("GET", "/v1/vms/rawvm/snapshots")[0], 409)
        self.qemu_io(disk, "write -P 0x77 0 1M")
        self.assertIn("s1", self.agent.cli("vm", "snapshot", "list", "gold").stdout)
        self.assertEqual(self.agent.request("POST", "/v1/vms/gold/snapshots/nope/revert")[0], 404)
        self.assertEqual(self.agent.request("POST", "/v1/vms/gold/snapshots/s1/revert")[0], 200)
        self.qemu_io(disk, "read -P 0x5a 0 1M")
        self.agent.cli("vm", "snapshot", "create", "gold", "s2")

        # A full clone is a task; a VM on a TAP cannot be cloned (it would share it).
        status, answer = self.agent.request("POST", "/v1/vms/gold/clone", {"name": "copy"})
        self.assertEqual(status, 409)
        self.assertIn("vireo-t0", answer["error"])
        self.agent.request("PATCH", "/v1/vms/gold", {"vcpus": 2})  # still clonable after
        with open(os.path.join(self.agent.datastore, "gold", "vm.json")) as file:
            definition_now = json.load(file)
        definition_now["nics"] = [{"portgroup": "web", "tap": "vireo-t0"}]
        with open(os.path.join(self.agent.datastore, "gold", "vm.json"), "w") as file:
            json.dump(definition_now, file)  # as an operator's edit would; port groups clone
        status, task = self.agent.request("POST", "/v1/vms/gold/clone", {"name": "copy"})
        self.assertEqual((status, task["kind"], task["vm"]), (202, "vm.clone", "gold"))
        task = self.wait_for_task(task)
        self.assertEqual(task["state"], "succeeded", task["message"])
        self.assertEqual(task["progress"], 1)
        copy = os.path.join(self.agent.datastore, "copy")
        with open(os.path.join(copy, "vm.json")) as file:
            cloned = json.load(file)
        self.assertEqual(cloned["disks"], [{"path": "disk0.qcow2"}])
        self.assertEqual(cloned["vcpus"], 2)
        self.assertRegex(cloned["nics"][0]["mac"], "^02:76:69:")
        self.assertRegex(cloned["nics"][0]["tap"], "^vnic[0-9a-f]{8}$")
        self.qemu_io(os.path.join(copy, "disk0.qcow2"), "read -P 0x5a 0 1M")
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json",
                                          os.path.join(copy, "disk0.qcow2")],
                                         capture_output=True, text=True, check=True).stdout)
        self.assertNotIn("backing-filename", info)
        self.assertEqual(self.agent.request("POST", "/v1/vms/gold/clone",
                                            {"name": "copy"})[0], 409)
        self.assertEqual(self.agent.request("POST", "/v1/vms/gold/clone",
                                            {"name": "x", "size": 1})[0], 400)

        # Linked clones only from templates, which never run nor change.
        status, answer = self.agent.request("POST", "/v1/vms/gold/clone",
                                            {"name": "thin", "linked": True})
        self.assertEqual(status, 409)
        self.assertIn("not a template", answer["error"])
        status, vm = self.agent.request("POST", "/v1/vms/gold/template")
        self.assertEqual((status, vm["template"]), (200, True))
        self.assertEqual(os.stat(disk).st_mode & 0o222, 0)
        self.assertEqual(self.agent.request("POST", "/v1/vms/gold/template")[0], 409)
        status, answer = self.agent.request("POST", "/v1/vms/gold/start")
        self.assertEqual(status, 409)
        self.assertIn("template", answer["error"])
        self.assertEqual(self.agent.request("POST", "/v1/vms/gold/snapshots",
                                            {"name": "s3"})[0], 409)
        result = self.agent.cli("vm", "clone", "gold", "thin", "--linked")
        self.assertIn("succeeded", result.stdout)
        thin = os.path.join(self.agent.datastore, "thin", "disk0.qcow2")
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", thin],
                                         capture_output=True, text=True, check=True).stdout)
        self.assertEqual(info["backing-filename"], disk)
        self.qemu_io(thin, "read -P 0x5a 0 1M")

        # Snapshot delete is a task; an ended task cannot be cancelled.
        self.agent.cli("vm", "snapshot", "create", "copy", "before")
        status, task = self.agent.request("DELETE", "/v1/vms/copy/snapshots/before")
        self.assertEqual(status, 202)
        task = self.wait_for_task(task)
        self.assertEqual(task["state"], "succeeded", task["message"])
        self.assertEqual(self.agent.request("GET", "/v1/vms/copy/snapshots")[1]["snapshots"], [])
        self.assertEqual(self.agent.request("DELETE", "/v1/vms/copy/snapshots/before")[0], 404)
        self.assertEqual(self.agent.request("POST", f"/v1/tasks/{task['id']}/cancel")[0], 409)
        self.assertEqual(self.agent.request("GET", "/v1/tasks/999")[0], 404)
        self.assertEqual(self.agent.request("GET", "/v1/tasks/x")[0], 404)
        status, listed = self.agent.request("GET", "/v1/tasks")
        self.assertEqual([t["kind"] for t in listed["tasks"]],
                         ["vm.clone", "vm.clone", "vm.snapshot-delete"])
        self.assertEqual(len(self.agent.cli("task", "list").stdout.splitlines()), 3)
        waited = self.agent.cli("task", "wait", str(task["id"]))
        self.assertIn("succeeded", waited.stdout)
        # Tasks and templates survive a restart.
        self.agent.stop(signal.SIGKILL)
        self.agent.start()
        self.assertEqual(len(self.agent.request("GET", "/v1/tasks")[1]["tasks"]), 3)
        self.assertTrue(self.agent.request("GET", "/v1/vms/gold")[1]["template"])

    def test_rename_and_reconfigure_disks_and_nics(self):
        self.assertEqual(self.create("old")[0], 201)
        folder = os.path.join(self.agent.datastore, "old")
        status, vm = self.agent.request("POST", "/v1/vms/old/disks", {"size": "16M"})
        self.assertEqual(status, 201)
        self.agent.request("POST", "/v1/vms/old/disks", {"size": 1048576, "format": "raw"})
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json",
                                          os.path.join(folder, "disk0.qcow2")],
                                         capture_output=True, text=True, check=True).stdout)
        self.assertEqual((info["format"], info["virtual-size"]), ("qcow2", 16 << 20))
        self.assertEqual(os.path.getsize(os.path.join(folder, "disk1.raw")), 1 << 20)
        for body, field in (({"size": "1x"}, "size"), ({"size": 1000}, "size"),
                            ({"size": "1M", "format": "vmdk"}, "format"), ({}, "size"),
                            ({"size": "1M", "bus": "ide"}, "bus")):
            status, answer = self.agent.request("POST", "/v1/vms/old/disks", body)
            self.assertEqual(status, 400, body)
            self.assertIn(field, answer["error"])
        self.assertFalse(os.path.exists(os.path.join(folder, "disk2.qcow2")))
        # vNICs as a whole list: a new one gets its MAC now, kept from then on.
        status, _ = self.agent.request("PATCH", "/v1/vms/old", {"nics": [{"tap": "vt-old"}]})
        self.assertEqual(status, 200)
        with open(os.path.join(folder, "vm.json")) as file:
            definition_now = json.load(file)
        self.assertRegex(definition_now["nics"][0]["mac"], "^02:76:69:")
        self.assertEqual([d["path"] for d in definition_now["disks"]],
                         ["disk0.qcow2", "disk1.raw"])
        self.assertEqual(self.agent.request("PATCH", "/v1/vms/old",
                                            {"nics": [{"tap": "a/b"}]})[0], 400)
        self.assertEqual(self.agent.request("DELETE", "/v1/vms/old/disks/5")[0], 404)
        self.assertEqual(self.agent.request("DELETE", "/v1/vms/old/disks/1?files=true")[0], 200)
        self.assertFalse(os.path.exists(os.path.join(folder, "disk1.raw")))
        self.agent.cli("vm", "disk", "add", "old", "--size", "8M", "--format", "raw")
        self.assertTrue(os.path.exists(os.path.join(folder, "disk1.raw")))

        # Rename: the folder follows; names taken or bad are refused.
        self.assertEqual(self.create("taken")[0], 201)
        self.assertEqual(self.agent.request("POST", "/v1/vms/old/rename", {"name": "taken"})[0],
                         409)
        self.assertEqual(self.agent.request("POST", "/v1/vms/old/rename", {"name": "../x"})[0],
                         400)
        status, vm = self.agent.request("POST", "/v1/vms/old/rename", {"name": "new"})
        self.assertEqual((status, vm["name"]), (200, "new"))
        self.assertFalse(os.path.exists(folder))
        folder = os.path.join(self.agent.datastore, "new")
        with open(os.path.join(folder, "vm.json")) as file:
            self.assertEqual(json.load(file)["name"], "new")
        self.assertEqual(os.listdir(folder).count(".vireo-renamed-from"), 0)
        self.assertEqual(self.agent.request("GET", "/v1/vms/old")[0], 404)
        self.agent.cli("vm", "rename", "new", "newer")
        # A rename a crash cut short (the database still says "newer", the
        # folder has another name and the marker) is undone at the next start.
        self.agent.stop(signal.SIGKILL)
        newer = os.path.join(self.agent.datastore, "newer")
        with open(os.path.join(newer, ".vireo-renamed-from"), "w") as marker:
            marker.write("newer\n")
        os.rename(newer, os.path.join(self.agent.datastore, "half"))
        self.agent.start()
        self.assertEqual(self.agent.request("GET", "/v1/vms/newer")[0], 200)
        self.assertTrue(os.path.exists(os.path.join(newer, "vm.json")))
        self.assertFalse(os.path.exists(os.path.join(newer, ".vireo-renamed-from")))
        self.assertFalse(os.path.exists(os.path.join(self.agent.datastore, "half")))

    def test_a_disk_is_converted_as_a_task(self):
        self.assertEqual(self.create("conv")[0], 201)
        self.agent.request("POST", "/v1/vms/conv/disks", {"size": 4 << 20, "format": "raw"})
        folder = os.path.join(self.agent.datastore, "conv")
        raw = os.path.join(folder, "disk0.raw")
        with open(raw, "r+b") as image:
            image.write(b"vireo")
            image.seek(1 << 20)
            image.write(b"\xa5" * 65536)
        saved = os.path.join(self.agent.root, "saved.raw")
        with open(raw, "rb") as source, open(saved, "wb") as copy:
            copy.write(source.read())

        status, task = self.agent.request("POST", "/v1/vms/conv/disks/0/convert",
                                          {"format": "qcow2"})
        self.assertEqual((status, task["kind"]), (202, "vm.disk-convert"))
        task = self.wait_for_task(task)
        self.assertEqual(task["state"], "succeeded", task["message"])
        qcow2 = os.path.join(folder, "disk0.qcow2")
        with open(os.path.join(folder, "vm.json")) as file:
            self.assertEqual(json.load(file)["disks"], [{"path": "disk0.qcow2"}])
        self.assertFalse(os.path.exists(raw))
        self.assertEqual([f for f in os.listdir(folder) if "converting" in f], [])
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", qcow2],
                                         capture_output=True, text=True, check=True).stdout)
        self.assertEqual(info["format"], "qcow2")
        compare = subprocess.run(["qemu-img", "compare", saved, qcow2], capture_output=True,
                                 text=True)
        self.assertEqual(compare.returncode, 0, compare.stdout + compare.stderr)

        for body, index, status, message in [
            ({"format": "qcow2"}, 0, 409, "is qcow2 already"),
            ({"format": "vmdk"}, 0, 400, "format"),
            ({"format": "raw", "fast": True}, 0, 400, "fast: unknown field"),
            ({"format": "raw"}, 7, 404, "has no disks[7]"),
        ]:
            with self.subTest(body=body, index=index):
                got, answer = self.agent.request("POST", f"/v1/vms/conv/disks/{index}/convert",
                                                 body)
                self.assertEqual(got, status, answer)
                self.assertIn(message, answer["error"])
        # And back, through the CLI, which waits for the task.
        result = self.agent.cli("vm", "disk", "convert", "conv", "0", "--format", "raw")
        self.assertIn("succeeded", result.stdout)
        compare = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", saved, raw],
                                 capture_output=True, text=True)
        self.assertEqual(compare.returncode, 0, compare.stdout + compare.stderr)
        kinds = [event["kind"] for event in self.agent.request("GET", "/v1/events")[1]["events"]]
        self.assertEqual(kinds.count("vm.disk-converted"), 2)
        # What a conversion killed halfway leaves is gone at the next start.
        left = os.path.join(folder, ".disk0.qcow2.vireo-converting")
        open(left, "w").close()
        self.agent.stop(signal.SIGKILL)
        self.agent.start()
        self.assertFalse(os.path.exists(left))

    def test_datastores_through_the_api_and_the_cli(self):
        local = os.path.join(self.agent.root, "local")
        for vm in ("web", "db"):
            os.makedirs(os.path.join(local, vm))
            with open(os.path.join(local, vm, "vm.json"), "w") as file:
                file.write("{}")
        os.makedirs(os.path.join(local, "iso"))  # no vm.json: not a VM folder
        added = json.loads(self.agent.cli("datastore", "add", "local", local, "--json").stdout)
        self.assertEqual((added["name"], added["path"], added["vms"]), ("local", local, ["db", "web"]))
        fs = os.statvfs(local)
        self.assertEqual(added["capacity"], fs.f_blocks * fs.f_frsize)
        self.assertAlmostEqual(added["free"], fs.f_bavail * fs.f_frsize, delta=64 << 20)
        # A relative path is the client's, made absolute before it is sent.
        os.makedirs(os.path.join(self.agent.root, "rel"))
        result = subprocess.run([vmtest.VIREO, "datastore", "add", "rel", "rel"],
                                cwd=self.agent.root, env=self.agent.env(), capture_output=True,
                                text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("datastore 'rel' added", result.stdout)
        listed = json.loads(self.agent.cli("datastore", "list", "--json").stdout)["datastores"]
        self.assertEqual([d["name"] for d in listed], ["ds1", "local", "rel"])
        self.assertEqual(listed[2]["path"], os.path.join(self.agent.root, "rel"))
        self.assertIn(local, self.agent.cli("datastore", "list").stdout)
        self.assertEqual(self.agent.request("GET", "/v1/datastores/local")[1]["vm_folders"], 2)

        for body, status, message in [
            ({"name": "Bad", "path": local}, 400, "name: datastore 'Bad': a name is 1 to 64"),
            ({"name": "x", "path": "relative"}, 400, "path: 'relative' is not an absolute path"),
            ({"name": "x", "path": local + "/missing"}, 400, "no such directory"),
            ({"name": "x", "path": local + "/web/vm.json"}, 400, "not a directory"),
            ({"name": "local", "path": self.agent.root}, 409, "exists already"),
            ({"name": "y", "path": local + "/."}, 409, "is datastore 'local' already"),
            ({"name": "y", "path": local, "nfs": True}, 400, "nfs: unknown field"),
            ({"path": local}, 400, "name: missing"),
        ]:
            with self.subTest(body=body):
                got, answer = self.agent.request("POST", "/v1/datastores", body)
                self.assertEqual(got, status, answer)
                self.assertIn(message, answer["error"])
        self.assertEqual(self.agent.request("GET", "/v1/datastores/nope")[0], 404)
        self.assertEqual(self.agent.request("DELETE", "/v1/datastores/nope")[0], 404)
        self.assertEqual(self.agent.request("PUT", "/v1/datastores/local")[0], 405)

        # Unregistered VM folders hold a removal back unless forced; a
        # registered VM always does.
        result = self.agent.cli("datastore", "remove", "local", check=False)
        self.assertEqual(result.returncode, 2)
        self.assertIn("vireo: datastore remove local: it holds 2 VM folder(s) (db, web)",
                      result.stderr)
        self.create("on-ds1")
        status, answer = self.agent.request("DELETE", "/v1/datastores/ds1?force=true")
        self.assertEqual(status, 409)
        self.assertIn("registered on it (on-ds1)", answer["error"])
        removed = json.loads(self.agent.cli("datastore", "remove", "local", "--force",
                                            "--json").stdout)
        self.assertEqual(removed, {"name": "local", "path": local})
        self.assertTrue(os.path.exists(os.path.join(local, "web", "vm.json")))  # files kept
        self.assertIn("removed", self.agent.cli("datastore", "remove", "rel").stdout)
        kinds = [event["kind"] for event in self.agent.request("GET", "/v1/events")[1]["events"]]
        self.assertEqual(kinds.count("datastore.added"), 3)
        self.assertEqual(kinds.count("datastore.removed"), 2)

        # Kept in the database across a restart; an unreachable one is listed as such.
        gone = os.path.join(self.agent.root, "gone")
        os.makedirs(gone)
        self.agent.cli("datastore", "add", "gone", gone)
        os.rmdir(gone)
        self.agent.stop(signal.SIGKILL)
        self.agent.start()
        entry = self.agent.request("GET", "/v1/datastores/gone")[1]
        self.assertEqual((entry["reachable"], entry["capacity"], entry["free"]),
                         (False, None, None))
        self.assertIn("unreachable", self.agent.cli("datastore", "list").stdout)

    def test_concurrent_datastore_adds_are_all_kept(self):
        processes = []
        for i in range(8):
            folder = os.path.join(self.agent.root, f"d{i}")
            os.makedirs(folder)
            processes.append(subprocess.Popen([vmtest.VIREO, "datastore", "add", f"d{i}", folder],
                                              env=self.agent.env(), stdout=subprocess.DEVNULL))
        self.assertEqual([p.wait(timeout=60) for p in processes], [0] * 8)
        names = [d["name"] for d in self.agent.request("GET", "/v1/datastores")[1]["datastores"]]
        self.assertEqual(sorted(names), sorted(["ds1"] + [f"d{i}" for i in range(8)]))

    def test_datastores_of_the_old_registry_file_are_imported(self):
        # Before vireod had a database, `vireo datastore` kept them in a file.
        older = agent.Agent(datastore=False)
        self.addCleanup(older.close)
        os.makedirs(older.state)
        legacy = os.path.join(older.state, "datastores.json")
        with open(legacy, "w") as file:
            json.dump({"version": 1, "datastores": [{"name": "ds1", "path": older.datastore}]},
                      file)
        older.start()
        listed = older.request("GET", "/v1/datastores")[1]["datastores"]
        self.assertEqual([(d["name"], d["path"]) for d in listed], [("ds1", older.datastore)])
        self.assertFalse(os.path.exists(legacy))
        self.assertTrue(os.path.exists(legacy + ".imported"))
        status, _ = older.request("POST", "/v1/vms", {"name": "vm", "datastore": "ds1",
                                                      "definition": definition()})
        self.assertEqual(status, 201)
        AgentTest.checked |= older.api.checked

    def test_the_network_configuration_through_the_api(self):
        # Refusals and an empty configuration only: switches themselves are
        # made in network namespaces by switch_test.py and teaming_test.py.
        status, network = self.agent.request("GET", "/v1/network")
        self.assertEqual(status, 200)
        self.assertEqual(network["configuration"]["switches"], [])
        wrong = {"revision": "0", "configuration": network["configuration"]}
        status, answer = self.agent.request("PUT", "/v1/network", wrong)
        self.assertEqual(status, 409)
        self.assertIn("changed meanwhile", answer["error"])
        configuration = dict(network["configuration"], switches=[
            {"name": "vs0", "uplinks": ["vireo-no-such-nic"]}])
        for body, message in [
            ({"revision": network["revision"], "configuration": configuration},
             "vireo-no-such-nic"),
            ({"revision": network["revision"], "configuration": {}, "colour": 1},
             "colour: unknown field"),
            ({"configuration": {}}, "revision: missing"),
        ]:
            with self.subTest(body=body):
                status, answer = self.agent.request("PUT", "/v1/network", body)
                self.assertEqual(status, 400, answer)
                self.assertIn(message, answer["error"])
        self.assertEqual(self.agent.request("GET", "/v1/network")[1], network)  # unchanged
        status, stored = self.agent.request("PUT", "/v1/network", network)
        self.assertEqual((status, stored["configuration"]), (200, network["configuration"]))
        self.assertEqual(self.agent.request("POST", "/v1/network/apply"),
                         (200, {"switches": []}))
        self.assertEqual(self.agent.request("GET", "/v1/switches"), (200, {"switches": []}))
        self.assertEqual(self.agent.request("GET", "/v1/switches/vs0")[0], 404)
        self.assertEqual(self.agent.request("GET", "/v1/portgroups"), (200, {"portgroups": []}))
        self.assertEqual(self.agent.request("GET", "/v1/hostports"), (200, {"hostports": []}))
        self.assertIn("no switches", self.agent.cli("switch", "list").stdout)
        result = self.agent.cli("switch", "create", "vs0", "--uplink", "vireo-no-such-nic",
                                check=False)
        self.assertEqual(result.returncode, 2)
        self.assertIn("vireo-no-such-nic", result.stderr)
        kinds = [event["kind"] for event in self.agent.request("GET", "/v1/events")[1]["events"]]
        self.assertEqual(kinds.count("network.changed"), 1)

    @classmethod
    def tearDownClass(cls):
        # Every operation of the document was called and its answer checked.
        api = agent.OpenApi()
        called = {(pattern, method.lower()) for pattern, method, _ in cls.checked}
        for pattern, operations in api.routes:
            for method in operations:
                if method in ("get", "post", "delete", "put"):
                    assert (pattern.pattern, method) in called, \
                        f"{method.upper()} {pattern.pattern} was never called"


if __name__ == "__main__":
    vmtest.main()
