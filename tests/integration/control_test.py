"""The control socket of a running vireo-vmm: info, pause, resume, stop; and
the VMM's own end: nothing left behind (process, socket file)."""

import json
import os
import time
import unittest

import vmtest

STOPPED = 6


def definition(kernel, vcpus=1, memory_mib=128):
    return json.dumps({
        "name": "control-test",
        "vcpus": vcpus,
        "memory_mib": memory_mib,
        "boot": {"kernel": kernel},
        "console": {"output": "file", "path": "@CONSOLE@"},
        "control_socket": "@SOCKET@",
    })


class ControlSocket(unittest.TestCase):
    def start(self, kernel, vcpus=1, memory_mib=128):
        vmm = vmtest.VmmProcess(definition(kernel, vcpus, memory_mib))
        self.addCleanup(vmm.close)
        vmm.wait_for(lambda: "READY" in vmm.console_text(), what="the guest's READY line")
        return vmm

    def test_info_pause_resume_stop(self):
        vmm = self.start(vmtest.guest("uart_echo.elf"), vcpus=2)
        info = vmm.request("info")
        self.assertTrue(info["ok"], info)
        self.assertEqual(info["result"]["state"], "running")
        self.assertEqual(info["result"]["vcpus"], 2)
        self.assertEqual(info["result"]["memory_mib"], 128)
        self.assertEqual(info["result"]["pid"], vmm.process.pid)

        paused = vmm.request("pause")
        self.assertEqual(paused["result"]["state"], "paused")
        # A paused guest does not run: input typed now is echoed only after resume.
        vmm.process.stdin.write("while paused\n")
        vmm.process.stdin.flush()
        time.sleep(0.5)
        self.assertNotIn("echo: while paused", vmm.console_text())
        self.assertEqual(vmm.request("resume")["result"]["state"], "running")
        vmm.wait_for(lambda: "echo: while paused" in vmm.console_text(), what="the echo after resume")

        self.assertTrue(vmm.request("stop")["ok"])
        self.assertEqual(vmm.wait(), STOPPED)
        self.assertFalse(os.path.exists(vmm.socket), "the socket file was left behind")

    def test_an_idle_large_guest_costs_the_host_almost_nothing(self):
        vmm = self.start(vmtest.guest("uart_echo.elf"), memory_mib=4096)
        info = vmm.request("info")["result"]
        self.assertEqual(info["memory_mib"], 4096)
        # Guest RAM is allocated on first touch: the guest kit touches a few MiB.
        self.assertLess(info["memory_resident_bytes"], 16 * 1024 * 1024, info)

    def test_bad_requests_get_an_error_not_a_crash(self):
        vmm = self.start(vmtest.guest("uart_echo.elf"))
        unknown = vmm.request("reboot-the-universe")
        self.assertFalse(unknown["ok"])
        self.assertIn("unknown command", unknown["error"])
        import socket
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(vmm.socket)
            client.sendall(b"this is not json\n")
            reply = json.loads(client.makefile().readline())
            self.assertFalse(reply["ok"])
        self.assertTrue(vmm.request("info")["ok"])

    def test_sigterm_stops_the_vm(self):
        vmm = self.start(vmtest.guest("uart_echo.elf"))
        vmm.process.terminate()
        self.assertEqual(vmm.wait(), STOPPED)

    def test_definition_over_the_socket(self):
        """Firecracker-style: start the VMM with only a socket, then boot it."""
        import subprocess
        import tempfile
        with tempfile.TemporaryDirectory(prefix="vireo-test-") as folder:
            socket_path = os.path.join(folder, "control.sock")
            console = os.path.join(folder, "console.log")
            process = subprocess.Popen([vmtest.VMM, "--control-socket", socket_path],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
            try:
                vmm = vmtest.SocketClient(socket_path)
                vmtest.wait_until(lambda: os.path.exists(socket_path), what="the control socket")
                self.assertEqual(vmm.request("info")["result"]["state"], "waiting for a definition")
                refused = vmm.request("pause")
                self.assertFalse(refused["ok"])
                self.assertIn("no VM yet", refused["error"])
                bad = vmm.request("boot", definition={"boot": {"kernel": "/k"}, "vcpus": 0})
                self.assertFalse(bad["ok"])
                self.assertIn("boot request: vcpus: 0 is out of range", bad["error"])
                booted = vmm.request("boot", definition={
                    "vcpus": 2, "memory_mib": 64,
                    "boot": {"kernel": vmtest.guest("smoke.elf")},
                    "console": {"output": "file", "path": console, "input": False}})
                self.assertTrue(booted["ok"], booted)
                self.assertEqual(process.wait(timeout=30), 1)  # smoke passed
                with open(console) as file:
                    self.assertIn("SUMMARY: ", file.read())
            finally:
                if process.poll() is None:
                    process.kill()
                process.communicate()


if __name__ == "__main__":
    vmtest.require_kvm()
    vmtest.main()
