"""50 VMs (guest kit) started and stopped concurrently through vireod (issue
10, "Tests and figures"; label kvm): 50 uart_echo VMs of 16 MiB and one vCPU
are created, then started at once from 16 client threads; all 50 must run,
each with exactly one vireo-vmm (counted by its control socket) and its own
pid, and say so in the API; then all are stopped at once from 16 threads,
and none may be left: every VM off, no vireo-vmm, no pid file, no cgroup.

The times of the concurrent start and stop are printed (inside the emulated
KVM only their ratios mean anything). In the emulated KVM (2 vCPUs, 6 GiB)
50 starts took 16-28 s and the stops 5-8 s, the whole test 45 s (90 s with
the emulated machine's boot), depending on the host's load; 50 VMs of
16 MiB fit its memory easily. VmmSupervisor::start waits for each VMM
outside its lock, so the starts overlap; on 2 emulated vCPUs they are
bound by CPU all the same. VIREO_SCALE_VMS sets the count for a trial."""

import concurrent.futures
import json
import os
import time
import unittest

import agent
import agent_crash_test
import vmtest

KERNEL = vmtest.guest("uart_echo.elf")  # waits for console input: runs until stopped
VMS = int(os.environ.get("VIREO_SCALE_VMS", "50"))
CLIENTS = 16


class AgentScaleTest(unittest.TestCase):
    def setUp(self):
        self.agent = agent.Agent()
        self.addCleanup(self.agent.close)
        self.agent.start()

    def request(self, method, target, body=None):
        connection = agent.UnixConnection(self.agent.socket, timeout=600)
        payload = None if body is None else json.dumps(body)
        connection.request(method, target, body=payload)
        response = connection.getresponse()
        answer = json.loads(response.read().decode())
        connection.close()
        self.agent.api.check(method, target, response.status, answer)
        return response.status, answer

    def all_at_once(self, action, names):
        """POSTs /v1/vms/NAME/ACTION for every name from CLIENTS threads;
        returns the seconds it took, failing on any answer but 200."""
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(
                lambda name: (name, *self.request("POST", f"/v1/vms/{name}/{action}")), names))
        seconds = time.monotonic() - started
        failed = [(name, status, answer) for name, status, answer in answers if status != 200]
        self.assertEqual(failed, [], f"{action}: {len(failed)} of {len(names)} refused")
        return seconds

    def vm_cgroups(self, names):
        """Those of the VMs' cgroups that exist (under vireod's own cgroup)."""
        with open(f"/proc/{self.agent.process.pid}/cgroup") as file:
            own = next(line for line in file if line.startswith("0::")).strip()[3:]
        folder = os.path.join("/sys/fs/cgroup", own.lstrip("/"), "vireo-vms")
        return [name for name in names if os.path.exists(os.path.join(folder, name))]

    def test_vms_started_and_stopped_concurrently(self):
        names = [f"scale-{index:02d}" for index in range(VMS)]
        for name in names:
            status, answer = self.request("POST", "/v1/vms", {
                "name": name, "datastore": "ds1",
                "definition": {"vcpus": 1, "memory_mib": 16, "boot": {"kernel": KERNEL}}})
            self.assertEqual(status, 201, answer)

        start_seconds = self.all_at_once("start", names)
        status, listed = self.request("GET", "/v1/vms")
        states = {vm["name"]: vm["state"] for vm in listed["vms"]}
        self.assertEqual(states, {name: "running" for name in names})
        pids = [vm["pid"] for vm in listed["vms"]]
        self.assertEqual(len(set(pids)), VMS, "two VMs share a VMM")
        sockets = agent_crash_test.vmm_sockets(self.agent)
        self.assertEqual(sorted(sockets), sorted(
            os.path.join(self.agent.run_dir, "vms", name, "control.sock") for name in names),
            "not exactly one vireo-vmm per VM")
        self.assertEqual(self.request("GET", "/v1/host")[1]["vms_running"], VMS)
        # Each guest runs: its console says READY.
        def ready(console):
            try:
                with open(console, "rb") as file:
                    return b"READY" in file.read()
            except FileNotFoundError:
                return False

        for name in names:
            console = os.path.join(self.agent.datastore, name, "console.log")
            vmtest.wait_until(lambda: ready(console), timeout=120, what=f"{name}'s READY")

        stop_seconds = self.all_at_once("stop", names)
        status, listed = self.request("GET", "/v1/vms")
        self.assertEqual({vm["name"]: vm["state"] for vm in listed["vms"]},
                         {name: "off" for name in names})
        vmtest.wait_until(lambda: not self.agent.vmm_pids(), timeout=60, what="no VMM left")
        leftovers = [entry for entry in os.listdir(os.path.join(self.agent.run_dir, "vms"))
                     if entry.endswith(".pid")]
        self.assertEqual(leftovers, [], "pid files left")
        self.assertEqual(self.vm_cgroups(names), [], "VM cgroups left")
        print(f"\n{VMS} VMs from {CLIENTS} clients: started in {start_seconds:.1f} s "
              f"({start_seconds / VMS * 1000:.0f} ms a VM), stopped in {stop_seconds:.1f} s "
              f"({stop_seconds / VMS * 1000:.0f} ms a VM)", flush=True)


if __name__ == "__main__":
    vmtest.require_kvm()
    vmtest.main()
