"""NIC teaming of a virtual switch's uplinks: two uplinks (up0, up1) to the
"physical network" of far_network.py, a host port on the switch standing for
a VM's port, and for notify switches a guest-kit VM on a port group.

Failover order: the far side is a plain switch (a bridge joining far0 and
far1); the active uplink's far end goes down (its link with it), the standby
uplink takes over within a second, and takes back its place on failback.
IP hash: the far side bundles far0 and far1 as a static EtherChannel (a bond
in balance-xor), and flows to many far addresses leave by both uplinks.
Notify switches: after a failover, the VM's MAC is announced (a RARP) out of
the uplink that took over, so the far switch learns at once where it went.

The test runs in a network namespace of its own (unshare at start), so no
bridge, bond or interface it makes outlives it; its state folder is temporary."""

import os
import subprocess
import tempfile
import time
import unittest

import vmtest
from far_network import FarNetwork, Vireo, isolate
from vmtest import SBIN, host

FAR_ADDRESS = "10.0.0.1"
VM_MAC = "02:76:69:cc:00:01"
# Prints the source MAC of each RARP arriving on an interface, for `seconds`.
# Every protocol is captured: a bridge port's frames never reach a capture
# for one protocol (the bridge takes them first).
RARP_CAPTURE = """
import select, socket, sys, time
interface, seconds = sys.argv[1], float(sys.argv[2])
capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
capture.bind((interface, 0))
print("ready", flush=True)
deadline = time.monotonic() + seconds
while (left := deadline - time.monotonic()) > 0:
    if select.select([capture], [], [], left)[0]:
        frame = capture.recv(2048)
        if frame[12:14] == bytes([0x80, 0x35]):
            print(frame[6:12].hex(":"), flush=True)
"""
PING_INTERVAL = 0.05


class Teaming(unittest.TestCase):
    def setUp(self):
        state = tempfile.TemporaryDirectory(prefix="vireo-teaming-state.")
        self.addCleanup(state.cleanup)
        self.vireo = Vireo(self, state.name)
        self.far = FarNetwork(self)
        host("ip", "link", "add", "up1", "type", "veth", "peer", "name", "far1")
        host("ip", "link", "set", "far1", "netns", self.far.name)
        # The far network's address moves from far0 to what joins far0 and far1.
        self.far.run("ip", "addr", "del", f"{FAR_ADDRESS}/24", "dev", "far0")

    def far_switch(self):
        """far0 and far1 on one bridge, as two ports of a physical switch."""
        self.far.run("ip", "link", "add", "phys", "type", "bridge")
        for port in ("far0", "far1"):
            self.far.run("ip", "link", "set", port, "master", "phys", "up")
        self.far.run("ip", "addr", "add", f"{FAR_ADDRESS}/24", "dev", "phys")
        self.far.run("ip", "link", "set", "phys", "up")

    def far_etherchannel(self, addresses):
        """far0 and far1 bundled as a static EtherChannel with many addresses."""
        self.far.run("ip", "link", "add", "channel", "type", "bond", "mode", "balance-xor",
                     "xmit_hash_policy", "layer2+3", "miimon", "100")
        for port in ("far0", "far1"):
            self.far.run("ip", "link", "set", port, "down")
            self.far.run("ip", "link", "set", port, "master", "channel")
        for address in addresses:
            self.far.run("ip", "addr", "add", f"{address}/24", "dev", "channel")
        self.far.run("ip", "link", "set", "channel", "up")

    def show(self):
        return self.vireo.json("switch", "show", "vs0")

    def ports(self):
        return {port["name"]: port for port in self.show()["ports"]}

    def carrying(self):
        team = self.show()["teaming"]["team"]
        return team["carrying"] if team else None

    def wait_for_carrying(self, uplink, seconds=5):
        deadline = time.monotonic() + seconds
        while self.carrying() != uplink and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.carrying(), uplink)

    def ping(self, address, count=3):
        return host("busybox", "ping", "-c", str(count), "-W", "3", address, check=False)

    def start_pinging(self, seconds):
        """Pings every 50 ms for `seconds`; returns the running busybox ping."""
        pinger = subprocess.Popen(
            ["busybox", "ping", "-i", str(PING_INTERVAL), "-w", str(seconds), FAR_ADDRESS],
            stdout=subprocess.PIPE, text=True, env={"PATH": SBIN})
        self.addCleanup(pinger.kill)
        return pinger

    def lost_seconds(self, pinger):
        output = pinger.communicate(timeout=60)[0]
        summary = [line for line in output.splitlines() if "packets transmitted" in line]
        self.assertTrue(summary, output)
        transmitted, received = (int(word) for word in summary[0].split()
                                 if word.isdigit())
        self.assertGreater(received, 0, output)
        return (transmitted - received) * PING_INTERVAL

    def test_a_standby_uplink_takes_over_within_a_second_and_fails_back(self):
        self.far_switch()
        self.vireo("switch", "create", "vs0", "--uplink", "up0")
        # ESX's default load balancing with one active uplink: a failover order.
        self.vireo("switch", "uplink", "add", "vs0", "up1", "--standby")
        self.vireo("portgroup", "create", "pg", "--switch", "vs0")
        self.vireo("hostport", "create", "hp0", "--portgroup", "pg", "--address", "10.0.0.2/24")
        shown = self.show()
        self.assertTrue(shown["applied"], shown["differences"])
        self.assertEqual(shown["teaming"]["load_balancing"], "portid")
        self.assertEqual((shown["teaming"]["active"], shown["teaming"]["standby"]),
                         (["up0"], ["up1"]))
        self.assertEqual(shown["teaming"]["team"]["mode"], "active-backup")
        ports = self.ports()
        self.assertEqual((ports["vs0-team"]["kind"], ports["up0"]["team"], ports["up1"]["team"]),
                         ("team", "vs0-team", "vs0-team"))
        self.assertEqual(self.carrying(), "up0")

        # Only the active uplink sends.
        before = self.ports()
        self.assertEqual(self.ping(FAR_ADDRESS).returncode, 0)
        after = self.ports()
        self.assertGreaterEqual(
            after["up0"]["sent"]["packets"] - before["up0"]["sent"]["packets"], 3)
        self.assertEqual(after["up1"]["sent"]["packets"], before["up1"]["sent"]["packets"])

        # The active uplink loses its link: the standby one carries on.
        pinger = self.start_pinging(6)
        time.sleep(2)
        self.far.run("ip", "link", "set", "far0", "down")
        lost = self.lost_seconds(pinger)
        print(f"failover: {lost:.2f} s of pings lost", flush=True)
        self.assertLess(lost, 1.0)
        self.assertEqual(self.carrying(), "up1")
        self.assertFalse(self.ports()["up0"]["link"])

        # Its link returns: failback.
        self.far.run("ip", "link", "set", "far0", "up")
        self.wait_for_carrying("up0")
        self.assertEqual(self.ping(FAR_ADDRESS).returncode, 0)

        # Without failback the standby uplink keeps the traffic.
        teaming = self.vireo.json("switch", "teaming", "vs0", "--failback", "no")
        self.assertFalse(teaming["failback"])
        self.far.run("ip", "link", "set", "far0", "down")
        self.wait_for_carrying("up1")
        self.far.run("ip", "link", "set", "far0", "up")
        time.sleep(2)
        self.assertEqual(self.carrying(), "up1")
        self.assertTrue(self.ports()["up0"]["link"])
        self.assertTrue(self.show()["applied"])

        # An unused uplink leaves: one uplink, no team, still reaching.
        self.vireo("switch", "teaming", "vs0", "--unused", "up1")
        shown = self.show()
        self.assertTrue(shown["applied"], shown["differences"])
        self.assertIsNone(shown["teaming"]["team"])
        ports = self.ports()
        self.assertNotIn("up1", ports)
        self.assertEqual(ports["up0"]["kind"], "uplink")
        self.assertNotEqual(host("ip", "link", "show", "vs0-team", check=False).returncode, 0)
        self.assertEqual(self.ping(FAR_ADDRESS).returncode, 0)

    def start_vm(self, portgroup):
        """A guest-kit VM idling on `portgroup`; its control socket's client."""
        vmtest.require_kvm()
        socket_path = os.path.join(self.vireo.environment["VIREO_STATE_DIR"], "vm.sock")
        vm = subprocess.Popen(
            [vmtest.VIREO, "run", "--kernel", vmtest.guest("uart_echo.elf"), "--nic",
             f"portgroup={portgroup},mac={VM_MAC}", "--control-socket", socket_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=self.vireo.environment, start_new_session=True)
        def stop():
            if vm.poll() is None:
                vm.kill()
            vm.wait()
            vm.stderr.close()
        self.addCleanup(stop)
        vmtest.wait_until(lambda: os.path.exists(socket_path) or vm.poll() is not None,
                          what="the VM's control socket")
        self.assertIsNone(vm.poll(), vm.stderr.read().decode() if vm.poll() is not None else "")
        return vmtest.SocketClient(socket_path)

    def test_after_a_failover_the_vm_announces_its_mac_on_the_new_uplink(self):
        self.far_switch()
        self.vireo("switch", "create", "vs0", "--uplink", "up0")
        self.vireo("switch", "uplink", "add", "vs0", "up1", "--standby")
        self.assertTrue(self.show()["teaming"]["notify_switches"], "ESX's default")
        self.vireo("portgroup", "create", "pg", "--switch", "vs0")
        vm = self.start_vm("pg")
        self.assertEqual(vm.request("info")["result"]["nics"][0]["announcements"], 0)

        capture = subprocess.Popen(
            ["ip", "netns", "exec", self.far.name, "python3", "-c", RARP_CAPTURE, "far1", "10"],
            stdout=subprocess.PIPE, text=True, env={"PATH": SBIN})
        self.addCleanup(capture.kill)
        self.assertEqual(capture.stdout.readline().strip(), "ready")
        self.far.run("ip", "link", "set", "far0", "down")
        self.wait_for_carrying("up1")
        vmtest.wait_until(
            lambda: vm.request("info")["result"]["nics"][0]["announcements"] >= 1,
            what="the VM's announcement")
        seen = capture.communicate(timeout=30)[0].split()
        self.assertIn(VM_MAC, seen, "no RARP from the VM's MAC on the uplink that took over")

    def test_ip_hash_spreads_flows_over_both_uplinks_of_an_etherchannel(self):
        addresses = [f"10.0.0.{n}" for n in range(1, 17)]
        self.far_etherchannel(addresses)
        self.vireo("switch", "create", "vs0", "--uplink", "up0", "--uplink", "up1",
                   "--load-balancing", "iphash")
        self.vireo("portgroup", "create", "pg", "--switch", "vs0")
        self.vireo("hostport", "create", "hp0", "--portgroup", "pg", "--address",
                   "10.0.0.100/24")
        shown = self.show()
        self.assertTrue(shown["applied"], shown["differences"])
        self.assertEqual((shown["teaming"]["team"]["mode"],
                          shown["teaming"]["team"]["hash_policy"]),
                         ("balance-xor", "layer2+3"))

        before = self.ports()
        for address in addresses:
            result = self.ping(address, count=2)
            self.assertEqual(result.returncode, 0, result.stdout)
            self.assertNotIn("DUP", result.stdout)  # each frame arrives once
        after = self.ports()
        sent = {uplink: after[uplink]["sent"]["packets"] - before[uplink]["sent"]["packets"]
                for uplink in ("up0", "up1")}
        print(f"IP hash over 16 flows: packets sent {sent}", flush=True)
        self.assertGreater(sent["up0"], 0, sent)
        self.assertGreater(sent["up1"], 0, sent)

        # Applying again changes nothing; a refused change changes nothing.
        self.vireo("switch", "apply")
        self.assertEqual(self.show()["teaming"], shown["teaming"])
        refused = self.vireo("switch", "teaming", "vs0", "--standby", "up1", status=2)
        self.assertIn("IP hash spreads traffic over every active uplink", refused.stderr)
        self.assertEqual(self.show()["teaming"], shown["teaming"])


if __name__ == "__main__":
    isolate()
    vmtest.main()
