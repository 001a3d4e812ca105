"""NIC teaming of a virtual switch's uplinks: two uplinks (up0, up1) to the
"physical network" of far_network.py, a host port on the switch standing for
a VM's port, and for notify switches a guest-kit VM on a port group.

Failover order: the far side is a plain switch (a bridge joining far0 and
far1); the active uplink's far end goes down (its link with it), the standby
uplink takes over within a second, and takes back its place on failback.
IP hash: the far side bundles far0 and far1 as a static EtherChannel (a bond
in balance-xor), and flows to many far addresses leave by both uplinks.
Notify switches: after a failover, the VM's MAC is announced (a RARP) out of
the uplink that took over, so the far switch learns at once where it went;
also by a VM that vireod runs (jailed, told its switch's team by vireod).

The test runs in a network namespace of its own (unshare at start), so no
bridge, bond or interface it makes outlives it; its state folder is temporary."""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

import agent
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
# Prints, once done, each source MAC and the interfaces (of those given)
# that received frames from it; outgoing frames (the far switch flooding)
# are not counted.
SOURCE_CAPTURE = """
import json, select, socket, sys, time
seconds, interfaces = float(sys.argv[1]), sys.argv[2:]
captures = {}
for interface in interfaces:
    capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    capture.bind((interface, 0))
    captures[capture] = interface
print("ready", flush=True)
seen = {}
deadline = time.monotonic() + seconds
while (left := deadline - time.monotonic()) > 0:
    for capture in select.select(list(captures), [], [], left)[0]:
        frame, address = capture.recvfrom(2048)
        if address[2] != socket.PACKET_OUTGOING:
            seen.setdefault(frame[6:12].hex(":"), set()).add(captures[capture])
print(json.dumps({mac: sorted(names) for mac, names in seen.items()}), flush=True)
"""
PING_INTERVAL = 0.05


def mac_of(interface):
    # Not /sys/class/net: sysfs shows the namespace it was mounted in.
    return json.loads(host("ip", "-json", "link", "show", "dev", interface).stdout)[0]["address"]


def stop_keepers(state):
    """Ends the steering keepers `vireo switch` started (they would end by
    themselves once their state folder is gone, within two seconds)."""
    folder = os.path.join(state, "steering")
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        if name.endswith(".lock"):
            with open(os.path.join(folder, name)) as lock:
                text = lock.read().strip()
            if text.isdigit():
                try:
                    os.kill(int(text), 15)
                except ProcessLookupError:
                    pass
                vmtest.wait_until(lambda: not os.path.exists(f"/proc/{text}"),
                                  what=f"steering keeper {text}'s end")


class Teaming(unittest.TestCase):
    def setUp(self):
        state = tempfile.TemporaryDirectory(prefix="vireo-teaming-state.")
        self.addCleanup(state.cleanup)
        self.vireo = Vireo(self, state.name)
        self.addCleanup(stop_keepers, state.name)
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

    def fail_far0_while_pinging(self, what):
        """Takes far0 (up0's link) down in the middle of 6 s of pings; at
        most a second of them may be lost."""
        pinger = self.start_pinging(6)
        time.sleep(2)
        self.far.run("ip", "link", "set", "far0", "down")
        lost = self.lost_seconds(pinger)
        print(f"{what}: {lost:.2f} s of pings lost", flush=True)
        self.assertLess(lost, 1.0)

    def start_rarp_capture(self):
        """Collects the source MACs of RARPs arriving on far1 for 10 s."""
        capture = subprocess.Popen(
            ["ip", "netns", "exec", self.far.name, sys.executable, "-c", RARP_CAPTURE, "far1",
             "10"],
            stdout=subprocess.PIPE, text=True, env={"PATH": SBIN})
        self.addCleanup(capture.kill)
        self.assertEqual(capture.stdout.readline().strip(), "ready")
        return capture

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
        self.fail_far0_while_pinging("failover")
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

        capture = self.start_rarp_capture()
        self.far.run("ip", "link", "set", "far0", "down")
        self.wait_for_carrying("up1")
        vmtest.wait_until(
            lambda: vm.request("info")["result"]["nics"][0]["announcements"] >= 1,
            what="the VM's announcement")
        seen = capture.communicate(timeout=30)[0].split()
        self.assertIn(VM_MAC, seen, "no RARP from the VM's MAC on the uplink that took over")

    def test_a_vm_of_vireod_announces_its_mac_after_a_failover_too(self):
        # Its VMM is jailed and unprivileged; vireod tells it its switch's team.
        vmtest.require_kvm()
        os.environ["PATH"] = SBIN  # vireod runs ip and bridge for port groups
        host_agent = agent.Agent()
        self.addCleanup(host_agent.close)
        self.addCleanup(stop_keepers, host_agent.state)
        host_agent.start()
        self.vireo = Vireo(self, host_agent.state, host_agent.socket)
        self.far_switch()
        self.vireo("switch", "create", "vs0", "--uplink", "up0")
        self.vireo("switch", "uplink", "add", "vs0", "up1", "--standby")
        self.vireo("portgroup", "create", "pg", "--switch", "vs0")
        status, answer = host_agent.request("POST", "/v1/vms", {
            "name": "vm", "datastore": "ds1",
            "definition": {"vcpus": 1, "memory_mib": 64,
                           "boot": {"kernel": vmtest.guest("uart_echo.elf")},
                           "nics": [{"tap": "vmtap0", "mac": VM_MAC, "portgroup": "pg"}]}})
        self.assertEqual(status, 201, answer)
        status, answer = host_agent.request("POST", "/v1/vms/vm/start")
        self.assertEqual(status, 200, answer)

        def announcements():
            return host_agent.request("GET", "/v1/vms/vm")[1]["runtime"]["nics"][0][
                "announcements"]

        self.assertEqual(announcements(), 0)
        capture = self.start_rarp_capture()
        self.far.run("ip", "link", "set", "far0", "down")
        self.wait_for_carrying("up1")
        vmtest.wait_until(lambda: announcements() >= 1, what="the VM's announcement")
        seen = capture.communicate(timeout=30)[0].split()
        self.assertIn(VM_MAC, seen, "no RARP from the VM's MAC on the uplink that took over")
        self.assertEqual(host_agent.request("POST", "/v1/vms/vm/stop")[0], 200)

    def host_ports(self, count):
        """`count` host ports on port group pg, each in a subnet of its own
        (10.0.N.2/24, N from 0) whose far address (10.0.N.1) the far switch has."""
        for n in range(count):
            if n > 0:
                self.far.run("ip", "addr", "add", f"10.0.{n}.1/24", "dev", "phys")
            self.vireo("hostport", "create", f"hp{n}", "--portgroup", "pg", "--address",
                       f"10.0.{n}.2/24")
        return [f"hp{n}-sw" for n in range(count)]

    def steering(self):
        return self.show()["teaming"]["steering"]

    def wait_for_pins(self, wanted, seconds=5):
        deadline = time.monotonic() + seconds
        while self.steering()["pins"] != wanted and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.steering()["pins"], wanted)

    def far_ends_reached(self, action, seconds=6):
        """Runs `action`; returns, for each source MAC, the far ends (far0,
        far1) that received its frames meanwhile."""
        capture = subprocess.Popen(
            ["ip", "netns", "exec", self.far.name, sys.executable, "-c", SOURCE_CAPTURE,
             str(seconds), "far0", "far1"], stdout=subprocess.PIPE, text=True, env={"PATH": SBIN})
        self.addCleanup(capture.kill)
        self.assertEqual(capture.stdout.readline().strip(), "ready")
        action()
        return json.loads(capture.communicate(timeout=30)[0])

    def ping_each(self, count):
        for n in range(count):
            result = self.ping(f"10.0.{n}.1", count=2)
            self.assertEqual(result.returncode, 0, result.stdout)
            self.assertNotIn("DUP", result.stdout)  # each frame arrives once

    def test_port_id_pins_each_port_to_an_active_uplink_and_moves_it_when_that_fails(self):
        self.far_switch()
        # ESX's default load balancing over two active uplinks: no
        # EtherChannel on the far switch, no bond here.
        self.vireo("switch", "create", "vs0", "--uplink", "up0", "--uplink", "up1")
        self.vireo("portgroup", "create", "pg", "--switch", "vs0")
        ports = self.host_ports(2)
        self.assertEqual(self.steering()["keeper"] is None, False, "apply starts a keeper")
        self.wait_for_pins({ports[0]: "up0", ports[1]: "up1"})
        shown = self.show()
        self.assertTrue(shown["applied"], shown["differences"])
        self.assertIsNone(shown["teaming"]["team"])
        self.assertNotEqual(host("ip", "link", "show", "vs0-team", check=False).returncode, 0)

        # Each port's frames leave by its own uplink only, and each once.
        macs = [mac_of(f"hp{n}") for n in range(2)]
        reached = self.far_ends_reached(lambda: self.ping_each(2))
        self.assertEqual(reached.get(macs[0]), ["far0"], reached)
        self.assertEqual(reached.get(macs[1]), ["far1"], reached)

        # up0 loses its link: hp0 moves to up1 within a second, announced
        # there (notify switches); failback brings it home.
        capture = self.start_rarp_capture()
        self.fail_far0_while_pinging("steered failover")
        self.wait_for_pins({ports[0]: "up1", ports[1]: "up1"})
        seen = capture.communicate(timeout=30)[0].split()
        self.assertIn(macs[0], seen, "no RARP from hp0's MAC on the uplink that took it over")
        self.far.run("ip", "link", "set", "far0", "up")
        self.wait_for_pins({ports[0]: "up0", ports[1]: "up1"})
        self.assertEqual(self.ping(FAR_ADDRESS).returncode, 0)

        # A VM's port is steered like any other, and let go when the VM ends.
        vm = self.start_vm("pg")
        vmtest.wait_until(lambda: len(self.steering()["pins"]) == 3, what="the VM's port steered")
        tap = (set(self.steering()["pins"]) - set(ports)).pop()
        self.assertTrue(tap.startswith("vireo"), self.steering())
        self.assertIn(self.steering()["pins"][tap], ("up0", "up1"))
        vm.request("stop")
        self.wait_for_pins({ports[0]: "up0", ports[1]: "up1"})

        # Without failback a port stays on the uplink that took it over...
        self.vireo("switch", "teaming", "vs0", "--failback", "no")
        self.far.run("ip", "link", "set", "far0", "down")
        self.wait_for_pins({ports[0]: "up1", ports[1]: "up1"})
        self.far.run("ip", "link", "set", "far0", "up")
        time.sleep(2)
        self.assertEqual(self.steering()["pins"], {ports[0]: "up1", ports[1]: "up1"})
        # ...even across its keeper's death: that is reported, and `apply`
        # starts another keeper, which leaves the ports where they are.
        os.kill(self.steering()["keeper"], 9)
        vmtest.wait_until(lambda: self.steering()["keeper"] is None, what="the keeper's end")
        self.assertIn("no keeper steers its ports (`vireo switch apply` starts one)",
                      self.show()["differences"])
        self.vireo("switch", "apply")
        vmtest.wait_until(lambda: self.show()["applied"], what="a new keeper")
        self.assertEqual(self.steering()["pins"], {ports[0]: "up1", ports[1]: "up1"})
        self.assertEqual(self.ping(FAR_ADDRESS).returncode, 0)

        # The keeper goes with the steering: explicit failover order makes a team.
        keeper = self.steering()["keeper"]
        self.vireo("switch", "teaming", "vs0", "--load-balancing", "explicit")
        shown = self.show()
        self.assertTrue(shown["applied"], shown["differences"])
        self.assertEqual(shown["teaming"]["team"]["mode"], "active-backup")
        vmtest.wait_until(lambda: not os.path.exists(f"/proc/{keeper}"), what="the keeper's end")
        self.assertEqual(self.ping(FAR_ADDRESS).returncode, 0)

    def test_source_mac_hash_sends_each_mac_through_one_uplink(self):
        self.far_switch()
        self.vireo("switch", "create", "vs0", "--uplink", "up0", "--uplink", "up1",
                   "--load-balancing", "mac")
        self.vireo("portgroup", "create", "pg", "--switch", "vs0")
        ports = self.host_ports(4)
        vmtest.wait_until(lambda: len(self.steering()["pins"]) == 4, what="four steered ports")
        shown = self.show()
        self.assertTrue(shown["applied"], shown["differences"])
        reached = self.far_ends_reached(lambda: self.ping_each(4))
        used = set()
        for n in range(4):
            far_ends = reached.get(mac_of(f"hp{n}"))
            self.assertIsNotNone(far_ends, f"nothing from hp{n}: {reached}")
            self.assertEqual(len(far_ends), 1, f"hp{n}'s MAC left by both uplinks: {reached}")
            used.update(far_ends)
        print(f"source MAC hash: four MACs reached {sorted(used)}", flush=True)
        del ports

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
