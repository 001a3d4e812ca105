"""Virtual switches on the host kernel, without VMs: `vireo switch`,
`vireo portgroup` and `vireo hostport` make Linux bridges with VLAN
filtering and veth pairs. A network namespace behind the uplink stands for
the physical switch and its hosts (one untagged, one on VLAN 10, one on
VLAN 20, as sub-interfaces); a host port stands for a port of the switch.

The test runs in a network namespace of its own (unshare at start), so no
bridge or interface it makes outlives it; its state folder is temporary."""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

import vmtest
from far_network import FarNetwork, Vireo, isolate
from vmtest import SBIN, host


class Switches(unittest.TestCase):
    def setUp(self):
        state = tempfile.TemporaryDirectory(prefix="vireo-switch-state.")
        self.addCleanup(state.cleanup)
        self.state = state.name
        self.vireo = Vireo(self, state.name)
        self.vireo_json = self.vireo.json
        self.far = FarNetwork(self)

    def reaches(self, address):
        return host("busybox", "ping", "-c", "2", "-W", "2", address,
                    check=False).returncode == 0

    def set_hostport(self, address):
        self.vireo("hostport", "delete", "hp0")
        self.vireo("hostport", "create", "hp0", "--portgroup", "pg", "--address", address)

    def test_a_port_reaches_exactly_its_vlan_through_the_uplink(self):
        created = self.vireo_json("switch", "create", "vs0", "--uplink", "up0")
        self.assertEqual((created["mtu"], created["uplinks"], created["applied"]),
                         (1500, ["up0"], True))
        self.vireo("portgroup", "create", "pg", "--switch", "vs0", "--vlan", "10")
        self.vireo("hostport", "create", "hp0", "--portgroup", "pg", "--address", "10.10.0.2/24")
        self.assertTrue(self.reaches("10.10.0.1"), "VLAN 10 to VLAN 10")
        self.assertFalse(self.reaches("10.0.0.1"), "VLAN 10 reached the untagged network")

        self.set_hostport("10.20.0.2/24")
        self.assertFalse(self.reaches("10.20.0.1"), "VLAN 10 reached VLAN 20")
        # The port follows its port group.
        self.vireo("portgroup", "set", "pg", "--vlan", "20")
        self.assertTrue(self.reaches("10.20.0.1"), "VLAN 20 after the port group moved")

        self.vireo("portgroup", "set", "pg", "--vlan", "0")
        self.set_hostport("10.0.0.2/24")
        self.assertTrue(self.reaches("10.0.0.1"), "VLAN 0: untagged")
        self.assertFalse(self.reaches("10.10.0.1"))

        # A trunk hands the tags to the port: a VLAN device on it reaches VLAN 10.
        self.vireo("portgroup", "set", "pg", "--vlan", "4095")
        host("ip", "link", "add", "link", "hp0", "name", "hp0.10", "type", "vlan", "id", "10")
        host("ip", "addr", "add", "10.10.0.2/24", "dev", "hp0.10")
        host("ip", "link", "set", "hp0.10", "up")
        self.assertTrue(self.reaches("10.10.0.1"), "a trunk's tagged VLAN 10")
        self.assertTrue(self.reaches("10.0.0.1"), "a trunk's untagged frames")

    def test_shaping_holds_average_peak_and_burst(self):
        # 2000 kbit/s average, 4000 peak, 512 KiB burst, on what the port sends.
        self.vireo("switch", "create", "vs0", "--uplink", "up0")
        self.vireo("portgroup", "create", "pg", "--switch", "vs0", "--shaping",
                   "average=2000,peak=4000,burst=512")
        self.vireo("hostport", "create", "hp0", "--portgroup", "pg", "--address", "10.0.0.2/24")
        self.assertTrue(self.reaches("10.0.0.1"))
        receiver = subprocess.Popen(
            ["ip", "netns", "exec", self.far.name, sys.executable, "-c", UDP_RECEIVER, "10.0.0.1",
             "5001", "10"], stdout=subprocess.PIPE, text=True, env=dict(os.environ, PATH=SBIN))
        self.addCleanup(receiver.kill)
        time.sleep(1)
        # Offered at 10 Mbit/s, well above the peak, for longer than the measurement.
        subprocess.run([sys.executable, "-c", UDP_SENDER, "10.0.0.1", "5001", "10000", "12"],
                       check=True, timeout=60)
        measured = json.loads(receiver.communicate(timeout=60)[0])
        print(f"shaped: {measured}", flush=True)
        # The bucket: 10 s at the average plus the burst; the first half
        # second at the peak (plus its 64 KiB bucket), not at the burst.
        average_bytes = 2000 * 1000 // 8 * 10 + 512 * 1024
        self.assertAlmostEqual(measured["bytes"], average_bytes, delta=average_bytes * 0.1,
                               msg=measured)
        peak_bytes = 4000 * 1000 // 8 // 2 + 64 * 1024
        self.assertLess(measured["first_half_second"], peak_bytes * 1.15, measured)
        self.assertGreater(measured["first_half_second"], peak_bytes * 0.7, measured)
        ports = {p["name"]: p for p in self.vireo_json("switch", "stats", "vs0")["ports"]}
        self.assertGreater(ports["hp0-sw"]["shaped_away"], 0)
        self.assertEqual(ports["hp0-sw"]["shaping"],
                         "average 2000 kbit/s, peak 4000 kbit/s, burst 512 KiB")

        # Off again: the port sends what it is offered, and show agrees.
        self.vireo("portgroup", "set", "pg", "--shaping", "off")
        shown = self.vireo_json("switch", "show", "vs0")
        self.assertTrue(shown["applied"], shown["differences"])
        ports = {p["name"]: p for p in shown["ports"]}
        self.assertEqual(ports["hp0-sw"]["shaping"], "off")

    def test_show_finds_what_differs_and_apply_repairs_it(self):
        self.vireo("switch", "create", "vs0", "--uplink", "up0", "--mtu", "9000")
        self.vireo("portgroup", "create", "pg", "--switch", "vs0", "--vlan", "10")
        self.vireo("hostport", "create", "hp0", "--portgroup", "pg", "--address", "10.10.0.2/24")
        shown = self.vireo_json("switch", "show", "vs0")
        self.assertTrue(shown["applied"], shown["differences"])
        ports = {port["name"]: port for port in shown["ports"]}
        self.assertEqual(ports["up0"]["kind"], "uplink")
        self.assertEqual(ports["up0"]["vlans"], "1 untagged pvid, 2-4094 tagged")
        self.assertEqual((ports["hp0-sw"]["kind"], ports["hp0-sw"]["portgroup"],
                          ports["hp0-sw"]["vlans"], ports["hp0-sw"]["mtu"]),
                         ("port", "pg", "10 untagged pvid", 9000))
        self.assertEqual(self.vireo_json("portgroup", "list")["portgroups"][0]["ports"], ["hp0-sw"])

        host("bridge", "vlan", "del", "dev", "up0", "vid", "10")
        host("ip", "link", "set", "vs0", "mtu", "1500")
        shown = self.vireo_json("switch", "show", "vs0")
        self.assertFalse(shown["applied"])
        self.assertTrue(any("uplink up0: VLANs" in d for d in shown["differences"]),
                        shown["differences"])
        self.assertTrue(any("MTU 1500, configured 9000" in d for d in shown["differences"]),
                        shown["differences"])
        self.vireo("switch", "apply")
        self.assertTrue(self.vireo_json("switch", "show", "vs0")["applied"])

        # As after a reboot: the kernel lost everything; the stored file brings it back.
        host("ip", "link", "del", "vs0")
        host("ip", "link", "del", "hp0")
        self.assertIn("no bridge vs0", self.vireo_json("switch", "show", "vs0")["differences"][0])
        self.vireo("switch", "apply")
        self.assertTrue(self.vireo_json("switch", "show", "vs0")["applied"])
        self.assertTrue(self.reaches("10.10.0.1"))
        with open(os.path.join(self.state, "network.json")) as stored:
            self.assertEqual(json.load(stored)["version"], 1)

        # Applying again changes nothing.
        before = host("bridge", "-json", "vlan", "show").stdout
        self.vireo("switch", "apply")
        self.assertEqual(host("bridge", "-json", "vlan", "show").stdout, before)

        # The native VLAN moves when a port group takes it; the uplink follows.
        self.vireo("portgroup", "create", "one", "--switch", "vs0", "--vlan", "1")
        shown = self.vireo_json("switch", "show", "vs0")
        self.assertEqual(shown["native_vlan"], 2)
        ports = {port["name"]: port for port in shown["ports"]}
        self.assertEqual(ports["up0"]["vlans"], "1 tagged, 2 untagged pvid, 3-4094 tagged")
        self.assertTrue(shown["applied"], shown["differences"])

    def test_a_promiscuous_port_group_makes_its_switch_a_hub(self):
        self.vireo("switch", "create", "vs0", "--uplink", "up0")
        self.vireo("portgroup", "create", "pg", "--switch", "vs0")
        self.assertEqual(self.vireo_json("portgroup", "list")["portgroups"][0]["security"],
                         "promiscuous reject, MAC changes accept, forged transmits accept")

        def ageing():
            link = json.loads(host("ip", "-json", "-details", "link", "show", "vs0").stdout)[0]
            return link["linkinfo"]["info_data"]["ageing_time"]

        self.assertNotEqual(ageing(), 0)
        self.vireo("portgroup", "set", "pg", "--security", "promiscuous=accept")
        self.assertEqual(ageing(), 0)  # every frame to every port of the VLAN
        shown = self.vireo_json("switch", "show", "vs0")
        self.assertTrue(shown["applied"], shown["differences"])
        host("ip", "link", "set", "vs0", "type", "bridge", "ageing_time", "30000")
        self.assertIn("bridge vs0 does not flood every frame",
                      " ".join(self.vireo_json("switch", "show", "vs0")["differences"]))
        self.vireo("portgroup", "set", "pg", "--security", "inherit")
        self.assertNotEqual(ageing(), 0)
        refused = self.vireo("portgroup", "set", "pg", "--security", "promiscuous=maybe", status=2)
        self.assertIn("'promiscuous=maybe' is not promiscuous=", refused.stderr)

    def test_refusals_name_the_problem_and_change_nothing(self):
        refused = self.vireo("switch", "create", "vs0", "--uplink", "nosuch0", status=2)
        self.assertIn("uplink nosuch0: no such interface on this host", refused.stderr)
        self.assertEqual(self.vireo_json("switch", "list")["switches"], [])
        refused = self.vireo("switch", "create", "lo", status=2)
        self.assertIn("this host has an interface lo already", refused.stderr)

        self.vireo("switch", "create", "vs0", "--uplink", "up0")
        refused = self.vireo("switch", "uplink", "add", "vs0", "far9", "--standby", status=2)
        self.assertIn("uplink far9: no such interface on this host", refused.stderr)
        refused = self.vireo("portgroup", "create", "pg", "--switch", "vs9", status=2)
        self.assertIn("switch vs9: no such switch", refused.stderr)
        refused = self.vireo("portgroup", "create", "pg", "--switch", "vs0", "--vlan", "4096",
                             status=2)
        self.assertIn("4096", refused.stderr)
        self.vireo("portgroup", "create", "pg", "--switch", "vs0", "--vlan", "10")
        refused = self.vireo("hostport", "create", "hp0", "--portgroup", "pg", "--address",
                             "10.10.0.300/24", status=2)
        self.assertIn("'10.10.0.300/24' is not an address", refused.stderr)
        self.vireo("hostport", "create", "hp0", "--portgroup", "pg")
        for command in (("portgroup", "delete", "pg"), ("switch", "delete", "vs0")):
            refused = self.vireo(*command, status=2)
            self.assertIn("port group pg has ports in use (hp0-sw)", refused.stderr)

        self.vireo("hostport", "delete", "hp0")
        self.assertNotEqual(host("ip", "link", "show", "hp0", check=False).returncode, 0)
        self.vireo("switch", "uplink", "remove", "vs0", "up0")
        self.assertNotIn("master", host("ip", "-json", "link", "show", "up0").stdout)
        deleted = self.vireo_json("switch", "delete", "vs0")
        self.assertEqual(deleted["portgroups"], ["pg"])
        self.assertNotEqual(host("ip", "link", "show", "vs0", check=False).returncode, 0)


# Sends UDP datagrams to ADDRESS PORT at KBITS kbit/s (of wire bytes) for SECONDS.
UDP_SENDER = """
import socket, sys, time
address, port, kbits, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
payload = bytes(1400)
wire = len(payload) + 42  # UDP, IPv4 and Ethernet headers: what a policer counts
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.monotonic()
sent = 0
while time.monotonic() - start < seconds:
    due = (time.monotonic() - start) * kbits * 1000 / 8
    while sent < due:
        sock.sendto(payload, (address, port))
        sent += wire
    time.sleep(0.005)
"""

# Counts the wire bytes that arrive in SECONDS from the first datagram, and in
# its first half second; prints them as JSON.
UDP_RECEIVER = """
import json, socket, sys, time
address, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
sock.bind((address, port))
sock.settimeout(30)
total = first = 0
start = None
while True:
    data = sock.recv(65536)
    now = time.monotonic()
    start = now if start is None else start
    if now - start >= seconds:
        break
    total += len(data) + 42
    if now - start < 0.5:
        first += len(data) + 42
print(json.dumps({"bytes": total, "first_half_second": first}))
"""

if __name__ == "__main__":
    isolate()
    vmtest.main()
