"""Crash-consistent snapshots of a running VM, as real Linux sees them. The
guest's shell writes a counter to its two disks in turn, each write direct
(O_DIRECT), the second disk's only after the first's completed, and reports
each round on its console, while vireod has the VMM snapshot both disks
three times. Each snapshot must hold what a crash at one instant would: the
first disk's counter equal to the second's, or one ahead; never below what
the guest had reported written before the snapshot was asked for. The guest
goes on writing after each snapshot (the VM resumed), and qemu-img reads every
snapshot and finds the images clean."""

import os
import re
import subprocess
import tempfile
import unittest

import agent
import linux_vm
import vmtest

WRITTEN = re.compile(r"written (\d+)")
DIGITS = 15


class AgentSnapshotTest(unittest.TestCase):
    """Real Linux (scripts/build-linux-guest.sh), built once."""

    @classmethod
    def setUpClass(cls):
        cls.image = linux_vm.Image()

    @classmethod
    def tearDownClass(cls):
        cls.image.close()

    def setUp(self):
        self.agent = agent.Agent()
        self.addCleanup(self.agent.close)
        self.agent.start()

    def written(self, console):
        """The last round the guest reported done (0: none yet)."""
        rounds = [int(n) for n in WRITTEN.findall(console.text())]
        return max(rounds, default=0)

    def counter_in_snapshot(self, disk, snapshot):
        """The counter that disk image `disk` holds in `snapshot`, read by qemu-img."""
        with tempfile.NamedTemporaryFile(prefix="vireo-snapshot-") as raw:
            subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", "-l",
                            f"snapshot.name={snapshot}", disk, raw.name], check=True,
                           capture_output=True)
            head = raw.read(DIGITS)
        self.assertTrue(head.isdigit(), f"{disk} in {snapshot}: {head!r} is no counter")
        return int(head)

    def test_snapshots_of_a_running_linux_are_crash_consistent_across_disks(self):
        image = self.image
        status, answer = self.agent.request("POST", "/v1/vms", {
            "name": "db", "datastore": "ds1",
            "definition": {"vcpus": 1, "memory_mib": 256,
                           "boot": {"kernel": image.kernel, "initrd": image.initrd,
                                    "cmdline": f"{image.cmdline} loglevel=4"}}})
        self.assertEqual(status, 201, answer)
        for _ in range(2):
            self.assertEqual(self.agent.request("POST", "/v1/vms/db/disks",
                                                {"size": "16M"})[0], 201)
        status, vm = self.agent.request("POST", "/v1/vms/db/start")
        self.assertEqual(status, 200, vm)

        console = agent.GuestConsole(self.agent, "db")
        console.expect(r"vireo-guest: shell on the console", linux_vm.BOOT_TIMEOUT,
                       "the guest's shell banner")
        console.expect(r"# ", 30, "the shell prompt")
        console.type("stty -echo cols 1000 rows 50")
        write = (f'printf "%0{DIGITS}d\\n" $i | dd bs=512 count=1 conv=sync,notrunc '
                 f'oflag=direct 2>/dev/null of=')
        console.type(f"i=0; while :; do i=$((i+1)); {write}/dev/vda && {write}/dev/vdb && "
                     f"echo written $i; done &")

        asked = {}
        for number in range(1, 4):
            floor = self.written(console)
            vmtest.wait_until(lambda: self.written(console) > floor + 2, timeout=120,
                              what="the guest writing")
            name = f"s{number}"
            asked[name] = self.written(console)
            status, made = self.agent.request("POST", "/v1/vms/db/snapshots", {"name": name})
            self.assertEqual(status, 201, made)
            self.assertEqual(made["disks"], 2)
            self.assertEqual(self.agent.request("GET", "/v1/vms/db")[1]["state"], "running")
        last = self.written(console)
        vmtest.wait_until(lambda: self.written(console) > last + 2, timeout=120,
                          what="the guest writing after the last snapshot")
        self.assertEqual(self.agent.request("POST", "/v1/vms/db/stop")[0], 200)

        folder = os.path.join(self.agent.datastore, "db")
        disks = [os.path.join(folder, f"disk{i}.qcow2") for i in range(2)]
        for disk in disks:
            result = subprocess.run(["qemu-img", "check", disk], capture_output=True, text=True)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        previous = 0
        for name, reported in asked.items():
            first, second = (self.counter_in_snapshot(disk, name) for disk in disks)
            with self.subTest(snapshot=name, reported=reported, first=first, second=second):
                self.assertIn(first - second, (0, 1))  # never the second ahead, nor two apart
                self.assertGreaterEqual(second, reported)  # what the guest saw done is kept
                self.assertGreater(first, previous)  # each snapshot later than the last
            previous = first


if __name__ == "__main__":
    vmtest.require_kvm(linux=True)
    vmtest.main()
