"""vireod running VMs (guest kit): started through the API and the CLI,
confined (Seccomp 2, NoNewPrivs 1), in /metrics, the console in the VM
folder's console.log, pause and resume, a VMM made to call mount(2) (with
ptrace) killed by its seccomp filter and reported as such, a hard stop and
its event; vireod killed with SIGKILL while a VM runs leaves the VM running,
and the next vireod adopts it and can stop it; two clients starting one VM at
once: exactly one succeeds; a VM whose folder another VMM holds is refused;
the serial console both ways over a WebSocket, on the Unix socket and over
TLS with a token (`vireo console`, Ctrl-] detaches); snapshots of a running
(and of a paused) VM taken by its VMM, the VM resumed afterwards, checked
with qemu-img."""

import ctypes
import os
import signal
import subprocess
import threading
import time
import unittest

import agent
import vmtest

KERNEL = vmtest.guest("uart_echo.elf")  # waits for console input: runs until stopped


SYS_MOUNT = 165  # x86-64; not in the VMM's allowlist (src/vmm/seccomp_policy.cc)


class UserRegs(ctypes.Structure):
    """struct user_regs_struct of x86-64 (sys/user.h)."""
    _fields_ = [(name, ctypes.c_ulonglong) for name in (
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
        "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
        "gs_base", "ds", "es", "fs", "gs")]


def make_the_vmm_call(pid, number):
    """Makes the VMM's main thread, waiting in a system call, make system call
    `number` itself (as a debugger's `call` does): stopped with ptrace, its
    instruction pointer moved back onto the `syscall` instruction it came
    from, the call's number in rax, and let go. Its own seccomp filter then
    judges a call the VMM really makes."""
    PTRACE_PEEKTEXT, PTRACE_GETREGS, PTRACE_SETREGS, PTRACE_DETACH = 1, 12, 13, 17
    PTRACE_SEIZE, PTRACE_INTERRUPT = 0x4206, 0x4207
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]

    def ptrace(request, address=None, data=None):
        ctypes.set_errno(0)
        result = libc.ptrace(request, pid, address, data)
        if result == -1 and ctypes.get_errno():
            raise OSError(ctypes.get_errno(), f"ptrace({request}) of {pid}")
        return result

    ptrace(PTRACE_SEIZE)
    ptrace(PTRACE_INTERRUPT)
    os.waitpid(pid, 0x40000000)  # __WALL: a tracee that is not our child
    regs = UserRegs()
    ptrace(PTRACE_GETREGS, None, ctypes.addressof(regs))
    word = ptrace(PTRACE_PEEKTEXT, ctypes.c_void_p(regs.rip - 2)) & 0xFFFF
    if word != 0x050F:  # the bytes 0f 05: syscall
        ptrace(PTRACE_DETACH)
        raise AssertionError(f"the VMM's thread is not stopped after a syscall ({word:#x})")
    regs.rip -= 2
    regs.rax = number
    regs.orig_rax = ctypes.c_ulonglong(-1).value  # no restart of the interrupted call
    ptrace(PTRACE_SETREGS, None, ctypes.addressof(regs))
    ptrace(PTRACE_DETACH)


class AgentVmTest(unittest.TestCase):
    def setUp(self):
        self.agent = agent.Agent()
        self.addCleanup(self.agent.close)
        self.agent.start()
        status, _ = self.agent.request("POST", "/v1/vms", {
            "name": "echo", "datastore": "ds1",
            "definition": {"vcpus": 1, "memory_mib": 64, "boot": {"kernel": KERNEL}}})
        self.assertEqual(status, 201)
        self.console = os.path.join(self.agent.datastore, "echo", "console.log")

    def console_bytes(self):
        with open(self.console, "rb") as file:
            return file.read()

    def state(self):
        return self.agent.request("GET", "/v1/vms/echo")[1]

    def test_power_operations_and_a_restart_of_the_agent(self):
        result = self.agent.cli("vm", "start", "echo")
        self.assertIn("echo: running", result.stdout)
        vm = self.state()
        self.assertEqual(vm["state"], "running")
        self.assertEqual(vm["runtime"]["vcpus"], 1)
        pid = vm["pid"]
        vmtest.wait_until(lambda: os.path.exists(self.console) and
                          os.path.getsize(self.console) > 0, what="console output in the folder")
        with open(f"/proc/{pid}/status") as status:
            self.assertIn("vireo-vmm", status.read().split("\n")[0])

        # Confined: seccomp filter mode, no new privileges.
        with open(f"/proc/{pid}/status") as status:
            lines = status.read()
        self.assertIn("Seccomp:\t2", lines)
        self.assertIn("NoNewPrivs:\t1", lines)
        metrics = self.agent.request("GET", "/metrics")[1]
        self.assertIn('vireo_vm_running{vm="echo"} 1\n', metrics)
        self.assertIn('vireo_vm_vcpus{vm="echo"} 1\n', metrics)
        self.assertIn('vireo_vm_memory_bytes{vm="echo"} 67108864\n', metrics)

        status, vm = self.agent.request("POST", "/v1/vms/echo/pause")
        self.assertEqual((status, self.state()["state"]), (200, "paused"))
        self.agent.request("POST", "/v1/vms/echo/resume")
        self.assertEqual(self.state()["state"], "running")
        self.assertEqual(self.agent.request("POST", "/v1/vms/echo/start")[0], 409)
        self.assertEqual(self.agent.request("DELETE", "/v1/vms/echo")[0], 409)
        self.assertEqual(self.agent.request("PATCH", "/v1/vms/echo", {"vcpus": 2})[0], 409)

        # vireod dies hard; the VM does not notice, the next vireod adopts it.
        self.agent.stop(signal.SIGKILL)
        os.kill(pid, 0)  # still there
        self.agent.start()
        vm = self.state()
        self.assertEqual((vm["state"], vm["pid"]), ("running", pid))
        self.assertEqual(self.agent.request("GET", "/v1/host")[1]["vms_running"], 1)

        # A hard reset: a new VMM boots the VM afresh.
        status, vm = self.agent.request("POST", "/v1/vms/echo/reset")
        self.assertEqual((status, vm["state"]), (200, "running"))
        self.assertNotEqual(vm["pid"], pid)
        vmtest.wait_until(lambda: not os.path.exists(f"/proc/{pid}"), what="the old VMM's end")
        pid = vm["pid"]

        self.agent.cli("vm", "stop", "echo")
        self.assertEqual(self.state()["state"], "off")
        vmtest.wait_until(lambda: not os.path.exists(f"/proc/{pid}"), what="the VMM's end")
        kinds = [event["kind"] for event in self.agent.request("GET", "/v1/events")[1]["events"]]
        self.assertEqual(kinds[-1], "vm.powered-off")
        self.assertIn("vm.paused", kinds)
        self.assertIn("vm.started", kinds)

    def test_the_console_both_ways_locally_and_from_afar(self):
        self.agent.stop()
        port = self.agent.listen()
        token = self.agent.request("POST", "/v1/tokens", {"name": "ops", "role": "admin"})[1]
        self.agent.cli("vm", "start", "echo")
        vmtest.wait_until(lambda: b"READY" in self.console_bytes(), what="the guest's READY")
        # Typed into the console: the guest answers; Ctrl-] detaches, the VM runs on.
        console = subprocess.Popen([vmtest.VIREO, "console", "echo"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=self.agent.env())
        self.addCleanup(console.kill)
        console.stdin.write(b"hello\n")
        console.stdin.flush()
        vmtest.wait_until(lambda: b"echo: hello" in self.console_bytes(),
                          what="the guest's answer")
        time.sleep(0.5)  # a few of the session's polls: the answer reaches the client
        output, errors = console.communicate(b"\x1d", timeout=60)
        self.assertEqual(console.returncode, 0, errors)
        self.assertIn(b"READY", output)  # the last lines, shown at once
        self.assertIn(b"echo: hello", output)
        self.assertIn(b"Detached from echo's console", errors)
        self.assertEqual(self.state()["state"], "running")
        # From afar with a token; the session ends when the guest powers off.
        remote = self.agent.cli("vm", "console", "echo", "--host", f"https://localhost:{port}",
                                "--ca-cert", self.agent.certificate, "--token", token["token"],
                                input="over tls\nquit\n")
        self.assertIn("echo: over tls", remote.stdout)
        vmtest.wait_until(lambda: self.state()["state"] == "off", what="the VM off after quit")
        log = self.agent.cli("vm", "console", "echo", "--log").stdout
        self.assertIn("echo: hello", log)
        self.assertIn("echo: over tls", log)

    def test_snapshots_of_a_running_vm(self):
        status, _ = self.agent.request("POST", "/v1/vms/echo/disks", {"size": "16M"})
        self.assertEqual(status, 201)
        disk = os.path.join(self.agent.datastore, "echo", "disk0.qcow2")
        self.agent.request("POST", "/v1/vms/echo/start")
        status, made = self.agent.request("POST", "/v1/vms/echo/snapshots", {"name": "live-1"})
        self.assertEqual(status, 201, made)
        self.assertEqual((made["name"], made["disks"]), ("live-1", 1))
        self.assertGreater(made["paused_ms"], 0)
        self.assertEqual(self.state()["state"], "running")  # resumed afterwards
        event = self.agent.request("GET", "/v1/events")[1]["events"][-1]
        self.assertEqual(event["kind"], "vm.snapshot-created")
        self.assertIn("the VM paused", event["message"])
        # Listed while the VMM holds the disk; the VMM refuses a taken name.
        listed = self.agent.request("GET", "/v1/vms/echo/snapshots")[1]["snapshots"]
        self.assertEqual([s["name"] for s in listed], ["live-1"])
        status, answer = self.agent.request("POST", "/v1/vms/echo/snapshots", {"name": "live-1"})
        self.assertEqual(status, 409)
        self.assertIn("a snapshot 'live-1' exists already", answer["error"])
        status, answer = self.agent.request("POST", "/v1/vms/echo/snapshots/live-1/revert")
        self.assertEqual(status, 409)
        self.assertIn("is running", answer["error"])
        # Of a paused VM too: it stays paused.
        self.agent.request("POST", "/v1/vms/echo/pause")
        status, made = self.agent.request("POST", "/v1/vms/echo/snapshots", {"name": "paused"})
        self.assertEqual((status, made["paused_ms"]), (201, 0))
        self.assertEqual(self.state()["state"], "paused")
        self.agent.request("POST", "/v1/vms/echo/stop")
        # What qemu-img sees: both snapshots, and a clean image.
        listing = subprocess.run(["qemu-img", "snapshot", "-l", disk], capture_output=True,
                                 text=True, check=True).stdout
        self.assertIn("live-1", listing)
        self.assertIn("paused", listing)
        subprocess.run(["qemu-img", "check", disk], capture_output=True, check=True)

    def test_a_running_vm_with_a_raw_disk_has_no_snapshots(self):
        self.agent.request("POST", "/v1/vms/echo/disks", {"size": 1048576, "format": "raw"})
        self.agent.request("POST", "/v1/vms/echo/start")
        status, answer = self.agent.request("POST", "/v1/vms/echo/snapshots", {"name": "s"})
        self.assertEqual(status, 409)
        self.assertIn("is raw, which has no snapshots", answer["error"])
        self.assertEqual(self.state()["state"], "running")
        self.agent.request("POST", "/v1/vms/echo/stop")

    def test_a_forbidden_system_call_kills_the_vmm_and_is_reported(self):
        self.agent.request("POST", "/v1/vms/echo/start")
        make_the_vmm_call(self.state()["pid"], SYS_MOUNT)
        vmtest.wait_until(lambda: self.state()["state"] == "off", what="the VM off")
        event = self.agent.request("GET", "/v1/events")[1]["events"][-1]
        self.assertEqual(event["kind"], "vm.powered-off")
        self.assertIn("seccomp policy forbids", event["message"])

    def test_a_guest_that_powers_off_at_once_has_started(self):
        # On a fast KVM the demo guest prints and powers off before vireod's
        # first look at the VMM's control socket: that is a start, not a
        # failure, and the end is recorded like any other.
        status, _ = self.agent.request("POST", "/v1/vms", {
            "name": "brief", "datastore": "ds1",
            "definition": {"vcpus": 1, "memory_mib": 64, "boot": {"kernel": vmtest.guest("demo.elf")}}})
        self.assertEqual(status, 201)
        status, body = self.agent.request("POST", "/v1/vms/brief/start")
        self.assertEqual(status, 200, body)
        vmtest.wait_until(lambda: self.agent.request("GET", "/v1/vms/brief")[1]["state"] == "off",
                          what="the VM off")
        events = self.agent.request("GET", "/v1/events")[1]["events"]
        ids = {e["kind"]: e["id"] for e in events if e.get("vm") == "brief"}
        self.assertIn("vm.started", ids)
        self.assertIn("vm.powered-off", ids)
        # Recorded in the order they happened, however fast the guest was.
        self.assertLess(ids["vm.started"], ids["vm.powered-off"], events)

    def test_a_link_left_in_the_run_folder_is_not_followed(self):
        # The VM's uid owns its run folder: a VMM taken over by its guest
        # could leave a link where vireod writes the next definition.
        self.assertEqual(self.agent.request("POST", "/v1/vms/echo/start")[0], 200)
        self.agent.request("POST", "/v1/vms/echo/stop")
        victim = os.path.join(self.agent.root, "victim")
        with open(victim, "w") as file:
            file.write("keep")
        definition = os.path.join(self.agent.run_dir, "vms", "echo", "definition.json")
        os.unlink(definition)
        os.symlink(victim, definition)
        self.assertEqual(self.agent.request("POST", "/v1/vms/echo/start")[0], 200)
        with open(victim) as file:
            self.assertEqual(file.read(), "keep")
        self.assertFalse(os.path.islink(definition))
        self.agent.request("POST", "/v1/vms/echo/stop")

    def test_two_clients_start_one_vm_exactly_once(self):
        answers = []

        def start():
            answers.append(self.agent.request("POST", "/v1/vms/echo/start")[0])

        threads = [threading.Thread(target=start) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(sorted(answers), [200, 409])
        self.assertEqual(len(self.agent.vmm_pids()), 1)
        self.agent.request("POST", "/v1/vms/echo/stop")

    def test_a_folder_held_by_another_vmm_is_refused(self):
        lock = os.path.join(self.agent.datastore, "echo", ".vireo-lock")
        holder = subprocess.Popen(["flock", "--exclusive", lock, "sleep", "60"])
        self.addCleanup(lambda: (holder.kill(), holder.wait()))
        vmtest.wait_until(lambda: subprocess.run(["flock", "--nonblock", lock, "true"])
                          .returncode != 0, what="the lock held")
        status, answer = self.agent.request("POST", "/v1/vms/echo/start")
        self.assertEqual(status, 409)
        self.assertIn("another VMM holds", answer["error"])
        self.assertEqual(self.state()["state"], "off")


if __name__ == "__main__":
    vmtest.require_kvm()
    vmtest.main()
