"""How a VM ends, and what the operator can do to a VM that will not: the
machine_exits guest drives the machine into each ending (reset, triple fault,
KVM emulation failure, ACPI power-off after the power button) or into a state
only the VMM can end (a vCPU that never leaves KVM_RUN, spinning in ring 0 with
interrupts off; a busy ring-3 loop), and each test checks the VMM's exit status and what it said."""

import datetime
import json
import os
import re
import signal
import socket
import subprocess
import time
import unittest

import vmtest

POWERED_OFF = 0
RESET = 4
STOPPED = 6
TRIPLE_FAULT = 8
KVM_FAILURE = 10

# Generous bounds for a loaded 2-core machine; what they guard is "answers at
# all" (a VMM that cannot kick a vCPU out of KVM_RUN never answers).
CONTROL_TIMEOUT = 5
END_TIMEOUT = 10


def definition(action, vcpus=1):
    return json.dumps({
        "name": "exits-test",
        "vcpus": vcpus,
        "memory_mib": 128,
        "boot": {"kernel": vmtest.guest("machine_exits.elf"), "cmdline": f"vireo.action={action}"},
        "console": {"output": "file", "path": "@CONSOLE@", "input": False},
        "control_socket": "@SOCKET@",
    })


class MachineExits(unittest.TestCase):
    def start(self, action, vcpus=1):
        """A vireo-vmm running machine_exits with `action`, past its READY line."""
        vmm = vmtest.VmmProcess(definition(action, vcpus))
        self.addCleanup(vmm.close)
        vmm.wait_for(lambda: "READY" in vmm.console_text(), timeout=60,
                     what=f"the guest's READY line ({action})")
        return vmm

    def finish(self, vmm, timeout=END_TIMEOUT):
        """Waits for the VMM to end; returns (status, console, stderr)."""
        try:
            status = vmm.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"vireo-vmm did not end within {timeout}s\n"
                                 f"--- console ---\n{vmm.console_text()}")
        return status, vmm.console_text(), vmm.process.stderr.read()

    def request_within(self, vmm, command, seconds=CONTROL_TIMEOUT):
        """A control-socket request that must be answered within `seconds`."""
        began = time.monotonic()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(seconds)
            client.connect(vmm.socket)
            client.sendall((json.dumps({"command": command}) + "\n").encode())
            try:
                reply = json.loads(client.makefile().readline())
            except TimeoutError:
                raise AssertionError(f"no answer to '{command}' within {seconds}s")
        took = time.monotonic() - began
        self.assertTrue(reply["ok"], reply)
        self.assertLess(took, seconds, f"'{command}' took {took:.1f}s")
        return reply["result"]

    def run_to_end(self, action):
        vmm = self.start(action)
        return self.finish(vmm)

    # Endings the guest chooses.

    def test_i8042_reset_line_resets_the_machine(self):
        status, console, errors = self.run_to_end("reset_i8042")
        self.assertEqual(status, RESET, f"{console}\n{errors}")
        self.assertNotIn("FAIL:", console)
        self.assertIn("reset", errors)

    def test_triple_fault(self):
        status, console, errors = self.run_to_end("triple_fault")
        self.assertEqual(status, TRIPLE_FAULT, f"{console}\n{errors}")
        self.assertNotIn("FAIL:", console)
        self.assertIn("triple", errors)
        self.assertIn("vCPU 0", errors)

    def test_emulation_failure_names_the_vcpu_rip_and_instruction(self):
        status, console, errors = self.run_to_end("emulation_failure")
        self.assertEqual(status, KVM_FAILURE, f"{console}\n{errors}")
        # The guest printed where its pxor is, and its encoding.
        insn = re.search(r"^INSN (0x[0-9a-f]+)((?: [0-9a-f]{2})+)\s*$", console, re.MULTILINE)
        self.assertIsNotNone(insn, console)
        address = int(insn.group(1), 16)
        encoding = insn.group(2).split()
        self.assertEqual(encoding, ["66", "0f", "ef", "0f"], "pxor (%rdi),%xmm1")

        self.assertRegex(errors, r"emulation failure|internal error")
        self.assertIn("vCPU 0", errors)
        rip = re.search(r"RIP (0x[0-9a-f]+)", errors)
        self.assertIsNotNone(rip, errors)
        self.assertEqual(int(rip.group(1), 16), address, errors)
        printed = re.search(r"instruction bytes: ((?:[0-9a-f]{2} ?)+)", errors)
        self.assertIsNotNone(printed, errors)
        self.assertEqual(printed.group(1).split()[:len(encoding)], encoding, errors)

    def test_power_button_ends_in_acpi_power_off(self):
        vmm = self.start("power_button")
        self.assertNotIn("FAIL:", vmm.console_text())
        self.assertEqual(self.request_within(vmm, "shutdown")["state"], "power button pressed")
        status, console, errors = self.finish(vmm)
        self.assertEqual(status, POWERED_OFF, f"{console}\n{errors}")
        self.assertNotIn("FAIL:", console)
        for line in ("PASS: SCI: GSI 9, level-triggered and active high",
                     "PASS: SCI arrived",
                     "PASS: PWRBTN_STS was set in PM1a status",
                     "PASS: PWRBTN_STS clear after writing 1 to it",
                     "PASS: the SCI stopped once the status was cleared",
                     "PASS: IOAPIC pin 9: remote IRR clear",
                     "Powering off (ACPI S5)."):
            self.assertIn(line, console)

    def test_rtc_reads_the_host_clock_in_utc(self):
        vmm = self.start("rtc")
        status, console, errors = self.finish(vmm)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertEqual(status, 1, f"{console}\n{errors}")  # debug-exit 0: all passed
        self.assertNotIn("FAIL:", console)
        for mode in ("bcd", "binary"):
            found = re.search(rf"^RTC {mode} (\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d)", console,
                              re.MULTILINE)
            self.assertIsNotNone(found, console)
            rtc = datetime.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S").replace(
                tzinfo=datetime.timezone.utc)
            self.assertLess(abs((rtc - now).total_seconds()), 60, f"{mode}: {rtc} vs host {now}")

    # Endings the operator chooses, while the guest will not cooperate.

    def test_pause_resume_stop_a_vcpu_stuck_in_ring0(self):
        vmm = self.start("stuck_in_ring0")
        time.sleep(0.5)  # let the vCPU get into its loop
        self.assertEqual(self.request_within(vmm, "pause")["state"], "paused")
        self.assertEqual(self.request_within(vmm, "info")["state"], "paused")
        self.assertEqual(self.request_within(vmm, "resume")["state"], "running")
        time.sleep(0.5)  # back inside the loop
        self.assertEqual(self.request_within(vmm, "stop")["state"], "stopping")
        status, console, errors = self.finish(vmm, timeout=CONTROL_TIMEOUT)
        self.assertEqual(status, STOPPED, f"{console}\n{errors}")
        self.assertNotIn("FAIL", console)
        self.assertFalse(os.path.exists(vmm.socket), "the socket file was left behind")

    def test_sigterm_stops_a_vcpu_stuck_in_ring0(self):
        vmm = self.start("stuck_in_ring0")
        time.sleep(0.5)
        vmm.process.send_signal(signal.SIGTERM)
        status, console, errors = self.finish(vmm, timeout=CONTROL_TIMEOUT)
        self.assertEqual(status, STOPPED, f"{console}\n{errors}")

    def test_a_paused_guest_does_not_run(self):
        vmm = self.start("spin")

        def last_tick():
            found = re.findall(r"^tick (\d+) count (\d+)\r?\n", vmm.console_text(), re.MULTILINE)
            return (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)

        vmm.wait_for(lambda: last_tick()[0] >= 3, timeout=30, what="3 ticks")
        self.assertEqual(self.request_within(vmm, "pause")["state"], "paused")
        paused_at = vmm.console_text()
        time.sleep(1.0)  # ten ticks' worth
        self.assertEqual(vmm.console_text(), paused_at, "the console grew while paused")
        tick, count = last_tick()

        self.assertEqual(self.request_within(vmm, "resume")["state"], "running")
        vmm.wait_for(lambda: last_tick()[0] >= tick + 3, timeout=30, what="3 more ticks")
        later_tick, later_count = last_tick()
        self.assertGreater(later_count, count)

        self.assertEqual(self.request_within(vmm, "stop")["state"], "stopping")
        status, console, errors = self.finish(vmm, timeout=CONTROL_TIMEOUT)
        self.assertEqual(status, STOPPED, f"{console}\n{errors}")


if __name__ == "__main__":
    vmtest.require_kvm()
    vmtest.main()
