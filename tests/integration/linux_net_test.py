"""Real Linux's own virtio_net on a Vireo vNIC: the guest and a network
namespace on the host, joined by the vNIC's TAP, ping each other and move a
few MiB over TCP both ways with the data intact (checksum and segmentation
offloads on, the frames far larger than one receive buffer), and the link
unplugged and plugged back from the control socket. The guest has two vCPUs
and the vNIC two queue pairs (multiqueue): the driver takes both, and a
flow sent from the second vCPU goes out and comes back on the second pair.
The namespace
stands for the host at the far end of a wire; the TAP is moved into it once
vireo-vmm has made it."""

import hashlib
import os
import re
import subprocess
import sys
import time

import linux_vm
import vmtest
from vmtest import SBIN, host

GUEST_MAC = "02:76:69:aa:00:01"
HOST_ADDRESS = "10.99.0.1"
GUEST_ADDRESS = "10.99.0.2"


def md5_in(output):
    """The MD5 sum md5sum printed, among the console's other lines."""
    found = re.search(r"\b[0-9a-f]{32}\b", output)
    if not found:
        raise AssertionError(f"no MD5 sum in:\n{output}")
    return found.group(0)


class LinuxNetwork(linux_vm.LinuxTestCase):
    def setUp(self):
        if not os.path.exists("/dev/net/tun"):
            host("modprobe", "tun", check=False)  # inside the emulated KVM
        self.namespace = f"vireo-net-{os.getpid()}"
        self.tap = f"vtap{os.getpid() % 100000}"
        host("ip", "netns", "add", self.namespace)
        self.addCleanup(host, "ip", "netns", "delete", self.namespace, check=False)

    def in_namespace(self, *command, check=True):
        return host("ip", "netns", "exec", self.namespace, *command, check=check)

    def boot_on_the_wire(self):
        vm = self.boot(cpus=2, memory="256M",
                       extra=["--nic", f"tap={self.tap},mac={GUEST_MAC},queues=2"])
        host("ip", "link", "set", self.tap, "netns", self.namespace)
        self.in_namespace("ip", "addr", "add", f"{HOST_ADDRESS}/24", "dev", self.tap)
        self.in_namespace("ip", "link", "set", self.tap, "up")
        self.in_namespace("ip", "link", "set", "lo", "up")
        vm.check("ip link set eth0 up && ip addr add 10.99.0.2/24 dev eth0")
        return vm

    def test_guest_and_namespace_ping_and_move_tcp_data_both_ways(self):
        vm = self.boot_on_the_wire()
        self.assertEqual(vm.check("cat /sys/class/net/eth0/address").strip(), GUEST_MAC)
        self.assertIn("virtio_net", vm.check("readlink /sys/class/net/eth0/device/driver"))
        # The host kernel's vhost-net moves the frames wherever it is there.
        self.assertEqual(vm.request("info")["result"]["nics"][0]["vhost"],
                         os.path.exists("/dev/vhost-net"))
        output = vm.check(f"ping -c 3 -W 5 {HOST_ADDRESS}", timeout=60)
        self.assertIn("3 packets received", output)

        # Multiqueue: Linux uses one pair per vCPU; transmit follows the
        # sending vCPU, and the TAP sends a flow's replies to the queue it
        # came from, so a ping from vCPU 1 moves on the second pair both ways.
        nic = vm.request("info")["result"]["nics"][0]
        self.assertEqual((nic["queue_pairs"], nic["queue_pairs_in_use"]), (2, 2))
        self.assertEqual(vm.check("ls /sys/class/net/eth0/queues").split(),
                         ["rx-0", "rx-1", "tx-0", "tx-1"])
        before = vm.queue_interrupts(("input.1", "output.1"))
        output = vm.check(f"taskset -c 1 ping -c 3 -W 5 {HOST_ADDRESS}", timeout=60)
        self.assertIn("3 packets received", output)
        after = vm.queue_interrupts(("input.1", "output.1"))
        self.assertGreater(after["input.1"], before["input.1"], "no reply came in on pair 1")
        self.assertGreater(after["output.1"], before["output.1"], "nothing went out on pair 1")

        # Larger than the MTU: fragments, each a frame of its own.
        output = vm.check(f"ping -c 2 -s 4000 -W 5 {HOST_ADDRESS}", timeout=60)
        self.assertIn("2 packets received", output)
        result = self.in_namespace("busybox", "ping", "-c", "3", "-W", "5", GUEST_ADDRESS)
        self.assertIn("3 packets received", result.stdout)

        # TCP moves data intact both ways.
        size = 4 << 20
        # Namespace -> guest: the guest listens and hashes what arrives. Its
        # stdin is not the console's: nc would swallow the next typed line;
        # and it is not the shell's job (LinuxVm.run says why).
        vm.check("(nc -l -p 5001 </dev/null | md5sum > /tmp/received &)")
        time.sleep(2)
        payload = bytes((i * 7 + 3) % 251 for i in range(size))
        self.in_namespace(sys.executable, "-c", SEND, GUEST_ADDRESS, "5001", str(size))
        # The sender is done once its kernel holds the data: wait for the hash.
        self.assertEqual(md5_in(vm.check("for i in $(seq 60); do [ -s /tmp/received ] && break; "
                                         "sleep 1; done; cat /tmp/received", timeout=90)),
                         hashlib.md5(payload).hexdigest())
        # Guest -> namespace: the namespace takes `size` bytes and hashes them.
        listener = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, sys.executable, "-c", RECEIVE, HOST_ADDRESS,
             "5002", str(size)],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PATH=SBIN))
        self.addCleanup(listener.kill)
        # Python may take seconds to start in an emulated machine: wait for
        # the listener's own word that it listens.
        self.assertEqual(listener.stdout.readline().strip(), "listening")
        vm.check(f"dd if=/dev/urandom of=/tmp/out bs=64k count={size // 65536} 2>/dev/null")
        sent = md5_in(vm.check("md5sum /tmp/out"))
        vm.check(f"nc {HOST_ADDRESS} 5002 < /tmp/out", timeout=120)
        output, _ = listener.communicate(timeout=120)
        self.assertEqual(output.strip(), sent)

        # vhost-net raised those interrupts through KVM's irqfds itself: the
        # VMM relays only what comes while a vector is masked, which Linux
        # does not do while the device runs.
        if os.path.exists("/dev/vhost-net"):
            taken = sum(vm.queue_interrupts(("input.0", "output.0", "input.1", "output.1"))
                        .values())
            relayed = vm.request("info")["result"]["nics"][0]["vhost_signals_relayed"]
            self.assertGreater(taken, 100)
            self.assertLess(relayed, 10, f"{relayed} of {taken} interrupts went through the VMM")

        # The cable unplugged from the control socket: Linux sees no carrier
        # and nothing passes; plugged back, the link returns.
        info = vm.request("set-link", nic=0, up=False)["result"]
        self.assertEqual(info["nics"][0]["link"], "down")
        vm.check("for i in $(seq 50); do [ $(cat /sys/class/net/eth0/carrier) = 0 ] && break; "
                 "sleep 0.1; done")
        self.assertEqual(vm.check("cat /sys/class/net/eth0/carrier").strip(), "0")
        unplugged = self.in_namespace("busybox", "ping", "-c", "2", "-W", "2", GUEST_ADDRESS,
                                      check=False)
        self.assertIn("0 packets received", unplugged.stdout)
        vm.request("set-link", nic=0, up=True)
        vm.check("for i in $(seq 50); do [ $(cat /sys/class/net/eth0/carrier) = 1 ] && break; "
                 "sleep 0.1; done")
        self.assertEqual(vm.check("cat /sys/class/net/eth0/carrier").strip(), "1")
        output = vm.check(f"ping -c 2 -W 5 {HOST_ADDRESS}", timeout=60)
        self.assertIn("2 packets received", output)


# The far host's ends of the TCP tests, run inside the namespace.
SEND = """
import socket, sys
address, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
payload = bytes((i * 7 + 3) % 251 for i in range(size))
with socket.create_connection((address, port), timeout=60) as connection:
    connection.sendall(payload)
"""
RECEIVE = """
import hashlib, socket, sys
address, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with socket.create_server((address, port)) as server:
    server.settimeout(120)
    print("listening", flush=True)
    connection, _ = server.accept()
    digest, left = hashlib.md5(), size
    while left > 0:
        chunk = connection.recv(min(left, 1 << 16))
        if not chunk:
            break
        digest.update(chunk)
        left -= len(chunk)
    connection.close()
print(digest.hexdigest())
"""


if __name__ == "__main__":
    vmtest.require_kvm(linux=True)
    vmtest.main()
