"""Real Linux guests under `vireo run`, driven through a pty the way a person
types at the console: the image from scripts/build-linux-guest.sh, a shell on
ttyS0, commands sent as typed lines and their output read back."""

import itertools
import os
import pty
import re
import select
import signal
import subprocess
import tempfile
import termios
import time
import unittest

import vmtest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_GUEST = os.path.join(REPO, "scripts", "build-linux-guest.sh")
# busybox ash's prompt as root, at the end of what was printed; its line
# editor follows it with a cursor position query (ESC [6n) until echo is off.
PROMPT = r"# (\x1b\[6n)?$"
# Generous: everything may run inside the emulated KVM, at emulation speed.
BOOT_TIMEOUT = 180
POWERED_OFF = 0  # the VMM's exit status once the guest powered off


class Image:
    """The guest image: the one ctest built on this host before the tests
    (VIREO_LINUX_GUEST, set by tests/integration/CMakeLists.txt), or else one
    built into a temporary folder. Built inside an emulated machine, the image
    costs each test a minute and a half."""

    def __init__(self):
        self.folder = None
        where = os.environ.get("VIREO_LINUX_GUEST")
        if not where:
            self.folder = tempfile.TemporaryDirectory(prefix="vireo-linux-")
            where = self.folder.name
            result = subprocess.run([BUILD_GUEST, "--output", where], capture_output=True,
                                    text=True, stdin=subprocess.DEVNULL, timeout=300)
            if result.returncode != 0:
                raise AssertionError(f"{BUILD_GUEST} failed:\n{result.stdout}\n{result.stderr}")
        self.kernel = os.path.join(where, "vmlinuz")
        self.initrd = os.path.join(where, "initrd.img")
        cmdline = os.path.join(where, "cmdline.txt")
        for path in (self.kernel, self.initrd, cmdline):
            if not os.path.isfile(path):
                raise AssertionError(f"{path}: no such file; VIREO_LINUX_GUEST={where} must hold "
                                     f"what {BUILD_GUEST} --output writes")
        with open(cmdline) as file:
            self.cmdline = file.read().strip()

    def close(self):
        if self.folder:
            self.folder.cleanup()


class LinuxVm:
    """One `vireo run` of the Linux guest on a pty; killed on close(), whatever
    state it is in. The console's bytes accumulate in self.console."""

    # Kernel messages at loglevel 4 and above only (errors, warnings about to
    # go wrong, panics): notices such as "random: crng init done" would
    # otherwise land in the middle of a command's output.
    def __init__(self, image, *, cpus=1, memory="256M", disks=(), cmdline_extra="loglevel=4",
                 extra=()):
        self.master, self.slave = pty.openpty()
        attributes = termios.tcgetattr(self.slave)
        self.folder = tempfile.TemporaryDirectory(prefix="vireo-linux-vm-")
        self.socket = os.path.join(self.folder.name, "control.sock")
        self.errors_path = os.path.join(self.folder.name, "stderr")
        command = [vmtest.VIREO, "run", "--kernel", image.kernel, "--initrd", image.initrd,
                   "--cmdline", f"{image.cmdline} {cmdline_extra}".strip(),
                   "--cpus", str(cpus), "--memory", memory, "--control-socket", self.socket]
        for disk in disks:
            command += ["--disk", disk]
        command += list(extra)
        self.errors_file = open(self.errors_path, "w+")
        self.process = subprocess.Popen(command, stdin=self.slave, stdout=self.slave,
                                        stderr=self.errors_file, start_new_session=True)
        self.attributes = attributes
        self.console = ""
        self.read_to = 0  # where the next expect() starts looking
        self.started = time.monotonic()

    # Reading the console.

    def pump(self, timeout):
        """Reads what the console printed within `timeout` seconds; False once
        the VMM has ended and nothing more is buffered."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the slave side is gone
                return False
            self.console += chunk.decode(errors="replace").replace("\r", "")
            return True
        return self.process.poll() is None

    def expect(self, pattern, timeout=60, what=None):
        """Waits for `pattern` (a regex) after what earlier expects consumed;
        returns the match."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.console, self.read_to)
            if found:
                self.read_to = found.end()
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.pump(min(remaining, 1.0)):
                if self.process.poll() is None and remaining > 0:
                    continue
                raise AssertionError(
                    f"no {what or repr(pattern)} on the console within {timeout:.0f} s "
                    f"(VMM {'running' if self.process.poll() is None else 'ended ' + str(self.process.returncode)})\n"
                    f"--- console (last 3000 characters) ---\n{self.console[-3000:]}\n"
                    f"--- vireo stderr ---\n{self.errors()}")

    def wait_for_shell(self, timeout=BOOT_TIMEOUT):
        self.expect(r"vireo-guest: shell on the console", timeout, "the guest's shell banner")
        self.expect(PROMPT, 30, "the shell prompt")
        # Echo off: busybox's shell then reads plain lines (no line editor, no
        # echo, no cursor queries), so what follows a command is its output.
        # The serial line has no window size either: give it one.
        self.type("stty -echo cols 1000 rows 50")
        self.expect(PROMPT, 30, "the prompt after stty")

    # Typing.

    def type(self, text):
        """Types `text` and Enter (a carriage return, as a terminal sends)."""
        os.write(self.master, text.encode() + b"\r")

    def run(self, command, timeout=60):
        """Types a shell command; returns its output and exit status once the
        next prompt is up. The end marker is split in the typed line, so that
        the line itself could never match it.

        A background command that may end while the shell waits for its next
        line must start from a subshell, `(command &)`, so that it is not the
        shell's job: with echo off, busybox's shell reads lines with fgets(),
        and a job of its own that ends meanwhile (SIGCHLD interrupting the
        read) ends the shell as end of input would, powering the guest off."""
        marker = f"vireo{os.getpid()}x{int(time.monotonic() * 1000) % 100000}"
        begin = len(self.console)
        self.read_to = begin
        # A command put in the background ends with "&", which takes no ";" after it.
        separator = " " if command.rstrip().endswith("&") else "; "
        self.type(f"{command}{separator}echo \"{marker[:3]}\"'{marker[3:]} '$?")
        found = self.expect(rf"{marker} (\d+)$", timeout, f"the end of `{command}`")
        output = self.console[begin:found.start()]
        self.expect(PROMPT, 30, f"the prompt after `{command}`")
        return output, int(found.group(1))

    def check(self, command, timeout=60):
        """run(), asserting exit status 0; returns the output."""
        output, status = self.run(command, timeout)
        if status != 0:
            raise AssertionError(f"`{command}` exited {status}:\n{output}")
        return output

    # Ending.

    def queue_interrupts(self, queues):
        """Interrupts the guest took for each of `queues`, virtqueue names as
        /proc/interrupts ends them (virtioN-input.1, virtioN-req.0), summed
        over every CPU."""
        counts = {}
        # Only their lines cross the console (each byte an exit to the VMM).
        pattern = "|".join(f"-{queue}" for queue in queues)
        for line in self.check(f"grep -E -e '{pattern}' /proc/interrupts").splitlines():
            fields = line.split()
            for queue in queues:
                if fields and fields[-1].endswith(f"-{queue}"):
                    per_cpu = itertools.takewhile(str.isdigit, fields[1:])
                    counts[queue] = sum(int(field) for field in per_cpu)
        if set(counts) != set(queues):
            raise AssertionError(f"no interrupts of queues {queues} in /proc/interrupts: {counts}")
        return counts

    def wait(self, timeout=120):
        """Waits for the VMM to end, reading the console meanwhile; its status."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"the VM did not end within {timeout} s\n"
                                     f"--- console ---\n{self.console[-3000:]}")
            self.pump(0.2)
        while self.pump(0):
            pass
        return self.process.returncode

    def errors(self):
        self.errors_file.flush()
        with open(self.errors_path) as file:
            return file.read()

    def request(self, command, **fields):
        return vmtest.SocketClient(self.socket).request(command, **fields)

    def close(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.errors_file.close()
        os.close(self.master)
        os.close(self.slave)
        self.folder.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LinuxTestCase(unittest.TestCase):
    """Builds the guest image once per test class. boot() starts a VM, killed
    when the test ends, and returns it at its shell prompt; scratch_folder()
    is a temporary folder removed when the test ends."""

    @classmethod
    def setUpClass(cls):
        cls.image = Image()

    @classmethod
    def tearDownClass(cls):
        cls.image.close()

    def boot(self, **options):
        vm = LinuxVm(self.image, **options)
        self.addCleanup(vm.close)
        vm.wait_for_shell()
        return vm

    def power_off(self, vm):
        """Types `poweroff` at the shell; the VMM must end with status 0."""
        vm.type("poweroff")
        self.assertEqual(vm.wait(), POWERED_OFF, vm.console[-2000:])

    def scratch_folder(self):
        folder = tempfile.TemporaryDirectory(prefix="vireo-linux-test-")
        self.addCleanup(folder.cleanup)
        return folder.name
