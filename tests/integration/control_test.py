"""The control socket of a running vireo-vmm: info, pause, resume, stop; and
the VMM's own end: nothing left behind (process, socket file)."""

import json
import os
import time
import unittest

import vmtest

STOPPED = 6


def definition(kernel, vcpus=1):
    return json.dumps({
        "name": "control-test",
        "vcpus": vcpus,
        "memory_mib": 128,
        "boot": {"kernel": kernel},
        "console": {"output": "file", "path": "@CONSOLE@"},
        "control_socket": "@SOCKET@",
    })


class ControlSocket(unittest.TestCase):
    def start(self, kernel, vcpus=1):
        vmm = vmtest.VmmProcess(definition(kernel, vcpus))
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


if __name__ == "__main__":
    vmtest.require_kvm()
    vmtest.main()
