"""`vireo run` on a real terminal (a pty): the guest's console is interactive,
Ctrl-] stops the VM, and the terminal's settings come back afterwards."""

import os
import pty
import select
import subprocess
import termios
import time
import unittest

import vmtest

STOPPED = 6


class Terminal(unittest.TestCase):
    def setUp(self):
        self.master, self.slave = pty.openpty()
        self.addCleanup(os.close, self.master)
        self.addCleanup(os.close, self.slave)
        self.original = termios.tcgetattr(self.slave)

    def start(self):
        process = subprocess.Popen([vmtest.VIREO, "run", "--kernel", vmtest.guest("uart_echo.elf")],
                                   stdin=self.slave, stdout=self.slave, stderr=subprocess.PIPE,
                                   start_new_session=True)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        self.addCleanup(lambda: process.stderr.close())
        return process

    def read_until(self, text, timeout=30):
        seen = b""
        deadline = time.monotonic() + timeout
        while text.encode() not in seen:
            remaining = deadline - time.monotonic()
            self.assertGreater(remaining, 0, f"no {text!r} on the terminal; saw {seen!r}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                seen += os.read(self.master, 4096)
        return seen.decode(errors="replace")

    def test_typing_reaches_the_guest_and_escape_stops_it(self):
        process = self.start()
        self.read_until("READY")
        # Raw mode: the guest, not the terminal, echoes what is typed.
        os.write(self.master, b"typed on a terminal\r")
        self.read_until("echo: typed on a terminal")
        os.write(self.master, b"\x1d")  # Ctrl-]
        self.assertEqual(process.wait(timeout=30), STOPPED)
        self.assertIn(b"escape key", process.stderr.read())
        self.assertEqual(termios.tcgetattr(self.slave), self.original,
                         "the terminal was not restored")


if __name__ == "__main__":
    vmtest.require_kvm()
    vmtest.main()
