"""The guest kit's network endpoint (guest/tests/net_endpoint.c) on a Vireo
vNIC whose TAP sits in a network namespace, the far end of the wire: the
namespace pings the guest (its ARP and echo replies must come back intact),
then asks it for a burst of small UDP frames, which must all reach the TAP,
in order, with the payloads the guest wrote. Through vireo-vmm's own
transmit path, and through the host kernel's vhost-net where it is there."""

import os
import select
import signal
import subprocess
import sys
import time
import unittest

import vmtest
from vmtest import host

TAP = f"vgn{os.getpid() % 100000}"
HOST_ADDRESS = "10.98.7.1"
GUEST_ADDRESS = "10.98.7.2"
GUEST_MAC = "02:76:69:aa:07:02"
REQUEST_PORT = 7777
FRAMES = 10000
PINGS = 3
PASSED = 1  # debug-exit code 0 -> status (0 << 1) | 1
TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "frame_tools.py")
# What vireo-vmm logs when it cannot hand a vNIC to vhost-net.
NO_VHOST = "not in vhost-net"


class GuestKitNetwork(unittest.TestCase):
    def setUp(self):
        if not os.path.exists("/dev/net/tun"):
            host("modprobe", "tun", check=False)  # inside the emulated KVM
        self.namespace = f"vireo-gnet-{os.getpid()}"
        host("ip", "netns", "add", self.namespace)
        self.addCleanup(host, "ip", "netns", "delete", self.namespace, check=False)
        self.in_namespace("ip", "link", "set", "lo", "up")
        self.in_namespace("ip", "tuntap", "add", "dev", TAP, "mode", "tap")
        self.in_namespace("ip", "addr", "add", f"{HOST_ADDRESS}/24", "dev", TAP)
        self.in_namespace("ip", "link", "set", TAP, "up")

    def in_namespace(self, *command, check=True):
        return host("ip", "netns", "exec", self.namespace, *command, check=check)

    def spawn_in_namespace(self, *command):
        process = subprocess.Popen(["ip", "netns", "exec", self.namespace, *command],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True, env=dict(os.environ, PATH=vmtest.SBIN))

        def stop():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()

        self.addCleanup(stop)
        return process

    def frames_received(self):
        """Frames the TAP has taken from the VMM so far."""
        return int(self.in_namespace("cat", f"/sys/class/net/{TAP}/statistics/rx_packets").stdout)

    def read_line(self, process, text, timeout=60):
        """The process's output up to the end of the line that holds `text`."""
        output = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in output.partition(text.encode())[2]:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([process.stdout], [], [], left)[0]:
                raise AssertionError(f"no {text!r} within {timeout} s:\n{output.decode()}")
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError(f"output ended before {text!r} (status {process.wait()}):\n"
                                     f"{output.decode()}\n{process.stderr.read().decode()}")
            output += chunk
        return output.decode()

    def exchange(self, nic_options):
        vm = self.spawn_in_namespace(
            vmtest.VIREO, "run", "--kernel", vmtest.guest("net_endpoint.elf"), "--memory", "64M",
            "--cmdline", f"net.ip={GUEST_ADDRESS} net.count={FRAMES} net.pings={PINGS} net.wait_s=120",
            "--nic", f"tap={TAP},mac={GUEST_MAC}{nic_options}")
        console = self.read_line(vm, "READY")
        self.assertIn(f"READY mac={GUEST_MAC} ip={GUEST_ADDRESS}", console)

        pings = self.in_namespace(sys.executable, TOOLS, "ping", GUEST_ADDRESS, str(PINGS))
        self.assertEqual(pings.stdout.strip(), f"replies {PINGS}")

        capture = self.spawn_in_namespace(sys.executable, TOOLS, "capture", TAP, str(REQUEST_PORT),
                                          str(FRAMES), "120")
        self.read_line(capture, "capturing")
        before = self.frames_received()
        self.in_namespace(sys.executable, TOOLS, "request", GUEST_ADDRESS, str(REQUEST_PORT))
        captured = capture.communicate(timeout=180)[0].decode()
        rest, errors = vm.communicate(timeout=60)
        console += rest.decode()
        self.assertEqual(vm.returncode, PASSED, f"{console}\n{errors.decode()}")
        self.assertRegex(console, r"SUMMARY: \d+ tests, 0 failures")
        self.assertIn(f"BENCH net_pings={PINGS}", console)
        self.assertEqual(captured.split(), ["frames", str(FRAMES), "in_order", str(FRAMES)], console)
        # The burst, and nothing else but the few ARP replies the namespace asked for.
        self.assertIn(self.frames_received() - before, range(FRAMES, FRAMES + 4))
        return errors.decode()

    def test_ping_and_a_burst_through_the_vmm(self):
        errors = self.exchange(",vhost=off")
        self.assertNotIn(NO_VHOST, errors)

    def test_ping_and_a_burst_through_vhost_net(self):
        if not os.path.exists("/dev/vhost-net"):
            host("modprobe", "vhost_net", check=False)
        if not os.path.exists("/dev/vhost-net"):
            self.skipTest("no /dev/vhost-net on this host (no vhost_net module)")
        errors = self.exchange("")
        self.assertNotIn(NO_VHOST, errors)


if __name__ == "__main__":
    vmtest.require_kvm()
    unittest.main()
