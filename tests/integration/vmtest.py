"""Shared helpers for the integration tests: find the binaries, skip without
KVM (exit status 77, which ctest reports as skipped), run a VM with a timeout
and always clean up after it."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

SKIP = 77
BUILD = os.environ.get("VIREO_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
VIREO = os.path.join(BUILD, "bin", "vireo")
VMM = os.path.join(BUILD, "bin", "vireo-vmm")
GUESTS = os.path.join(BUILD, "guest")


# Administration tools (ip, debugfs, modprobe) live in the sbin folders.
SBIN = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def host(*command, check=True):
    """Runs a command on the host (sbin folders on its PATH); its
    CompletedProcess, text. check: fail the test unless it exits 0."""
    result = subprocess.run(command, capture_output=True, text=True,
                            env=dict(os.environ, PATH=SBIN))
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def guest(name):
    return os.path.join(GUESTS, name)


def direct_io_folder(prefix):
    """A TemporaryDirectory on a file system that takes O_DIRECT (disk cache
    mode none needs it; tmpfs before Linux 6.6 refuses it): under the system's
    temporary folder when it does, else under the build tree, which is on disk."""
    for parent in (tempfile.gettempdir(), BUILD):
        try:
            probe = tempfile.NamedTemporaryFile(dir=parent, prefix=".vireo-direct-io-")
        except OSError:
            continue
        with probe:
            try:
                os.close(os.open(probe.name, os.O_RDWR | os.O_DIRECT))
            except OSError:
                continue
        return tempfile.TemporaryDirectory(prefix=prefix, dir=parent)
    raise AssertionError(f"neither {tempfile.gettempdir()} nor {BUILD} takes O_DIRECT")


def kvm_usable(linux=False):
    """Whether this host's KVM runs the guest kit (linux: and an unmodified
    Linux kernel, which needs hardware virtualization), and why not."""
    result = subprocess.run([VIREO, "host", "check", "--json"], capture_output=True, text=True)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        return False, result.stderr.strip() or result.stdout.strip()
    if not report.get("kvm_usable"):
        return False, report.get("reason", "vireo host check failed")
    if linux and not report.get("hardware_virtualization"):
        return False, ("this CPU has no vmx or svm flag: /dev/kvm is a software-assisted KVM "
                       "(such as PVM), which cannot boot real Linux (scripts/with-kvm --needs linux "
                       "runs such a test in an emulated KVM)")
    return True, ""


def require_kvm(linux=False):
    """Skips the test (77) without a usable KVM (linux: one that runs real
    Linux guests), or fails it when the run said that VM tests must run
    (VIREO_REQUIRE_KVM=1, as scripts/test.sh sets)."""
    usable, why = kvm_usable(linux)
    if not usable:
        if os.environ.get("VIREO_REQUIRE_KVM") == "1":
            print(f"FAIL: KVM is not usable here, and VIREO_REQUIRE_KVM=1: {why}")
            sys.exit(1)
        print(f"SKIP: KVM is not usable here: {why}")
        sys.exit(SKIP)


class Run:
    """The outcome of one VM run."""

    def __init__(self, status, output, errors):
        self.status = status
        self.output = output
        self.errors = errors

    def __repr__(self):
        return f"status {self.status}\n--- console ---\n{self.output}\n--- stderr ---\n{self.errors}"


def run_vm(kernel, *, cpus=1, memory="256M", cmdline=None, initrd=None, stdin_text="",
           timeout=120, extra=()):
    """Runs `vireo run` to completion and returns a Run. Kills it on timeout."""
    command = [VIREO, "run", "--kernel", kernel, "--cpus", str(cpus), "--memory", memory]
    if cmdline is not None:
        command += ["--cmdline", cmdline]
    if initrd is not None:
        command += ["--initrd", initrd]
    command += list(extra)
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        output, errors = process.communicate(stdin_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, errors = process.communicate()
        raise AssertionError(f"VM did not end within {timeout}s\n{output}\n{errors}")
    return Run(process.returncode, output, errors)


def wait_until(predicate, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class SocketClient:
    """Talks to a vireo-vmm control socket: one JSON line each way."""

    def __init__(self, path):
        self.path = path

    def request(self, command, **fields):
        import json
        import socket
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(30)
            client.connect(self.path)
            client.sendall((json.dumps({"command": command, **fields}) + "\n").encode())
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = client.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return json.loads(reply)


class VmmProcess:
    """A vireo-vmm started in the background from a definition; killed (with its
    socket and files) when the test ends, whatever happened."""

    def __init__(self, definition_json):
        self.folder = tempfile.TemporaryDirectory(prefix="vireo-test-")
        self.config = os.path.join(self.folder.name, "vm.json")
        self.socket = os.path.join(self.folder.name, "control.sock")
        self.console = os.path.join(self.folder.name, "console.log")
        with open(self.config, "w") as file:
            file.write(definition_json.replace("@SOCKET@", self.socket)
                       .replace("@CONSOLE@", self.console))
        self.process = subprocess.Popen([VMM, "--config", self.config], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, start_new_session=True)

    def wait_for(self, predicate, timeout=60, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"vireo-vmm ended early waiting for {what}: "
                                     f"{self.process.returncode} {self.process.stderr.read()}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def console_text(self):
        try:
            with open(self.console) as file:
                return file.read()
        except FileNotFoundError:
            return ""

    def request(self, command, **fields):
        return SocketClient(self.socket).request(command, **fields)

    def wait(self, timeout=60):
        return self.process.wait(timeout=timeout)

    def close(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            stream.close()
        self.folder.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main():
    """unittest's main, with exit status 77 when every test was skipped."""
    program = unittest.main(exit=False, verbosity=2)
    result = program.result
    if not result.wasSuccessful():
        sys.exit(1)
    # A class skipped in setUpClass counts as one skip and no test run.
    if len(result.skipped) >= result.testsRun:
        sys.exit(SKIP)
    sys.exit(0)
