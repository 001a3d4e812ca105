"""Real Linux guests on a virtual switch: `vireo run --nic portgroup=PG`
plugs each vNIC into its port group. Two guests on one port group reach each
other, and the far network's host of their VLAN through the uplink (see
far_network.py), but not another VLAN's; the port follows its port group
when its VLAN changes; a port group in use cannot be deleted; the ports
vanish with their VMs; under MAC changes Reject a guest that changes its MAC
receives nothing until it changes back (the TAP's nftables rules drop it, on
vhost-net where the host has it), or until its port group accepts MAC
changes (a policy change reaches running VMs). Runs in a network namespace of its
own."""

import os
import tempfile

import linux_vm
import vmtest
from far_network import FarNetwork, Vireo, isolate
from vmtest import host

MAC_A = "02:76:69:aa:01:0a"
MAC_B = "02:76:69:aa:01:0b"


class LinuxOnASwitch(linux_vm.LinuxTestCase):
    def setUp(self):
        if not os.path.exists("/dev/net/tun"):
            host("modprobe", "tun", check=False)  # no udev in the emulated KVM to make the node
        state = tempfile.TemporaryDirectory(prefix="vireo-switch-state.")
        self.addCleanup(state.cleanup)
        # vireo run, started by LinuxVm, reads the same state folder.
        os.environ["VIREO_STATE_DIR"] = state.name
        self.vireo = Vireo(self, state.name)
        self.far = FarNetwork(self)
        self.vireo("switch", "create", "vs0", "--uplink", "up0")
        self.vireo("portgroup", "create", "web", "--switch", "vs0", "--vlan", "10")

    def boot_on(self, portgroup, mac, address):
        vm = self.boot(memory="256M", extra=["--nic", f"portgroup={portgroup},mac={mac}"])
        vm.check(f"ip link set eth0 up && ip addr add {address} dev eth0")
        return vm

    @staticmethod
    def pings(vm, address):
        _, status = vm.run(f"ping -c 2 -W 3 {address}", timeout=60)
        return status == 0

    def test_guests_on_a_port_group_and_its_vlan(self):
        a = self.boot_on("web", MAC_A, "10.10.0.11/24")
        b = self.boot_on("web", MAC_B, "10.10.0.12/24")
        ports = self.vireo.json("portgroup", "list")["portgroups"][0]["ports"]
        self.assertEqual(len(ports), 2, ports)

        self.assertTrue(self.pings(a, "10.10.0.12"), "guest to guest on one port group")
        self.assertTrue(self.pings(b, "10.10.0.1"), "guest to the far host of VLAN 10")
        a.check("ip addr add 10.20.0.11/24 dev eth0")
        self.assertFalse(self.pings(a, "10.20.0.1"), "VLAN 10 reached VLAN 20's host")

        refused = self.vireo("portgroup", "delete", "web", status=2)
        self.assertIn("has ports in use", refused.stderr)

        # Both ports follow their port group to VLAN 20.
        self.vireo("portgroup", "set", "web", "--vlan", "20")
        self.assertTrue(self.pings(a, "10.20.0.1"), "VLAN 20 after the port group moved")
        self.assertFalse(self.pings(b, "10.10.0.1"), "VLAN 10 still reached")

        # A port leaves its switch with its VM.
        a.type("exit")  # the guest's init powers off when its shell ends
        self.assertEqual(a.wait(), 0)
        ports = self.vireo.json("portgroup", "list")["portgroups"][0]["ports"]
        self.assertEqual(len(ports), 1, ports)

    def test_mac_changes_rejected_cut_a_guest_off_until_it_changes_back(self):
        self.vireo("portgroup", "create", "strict", "--switch", "vs0", "--vlan", "10",
                   "--security", "mac-changes=reject")
        vm = self.boot_on("strict", MAC_A, "10.10.0.11/24")
        self.assertTrue(self.pings(vm, "10.10.0.1"))
        # The policy is the TAP's (nftables), so vhost-net moves the frames
        # wherever the host has it, Reject or not.
        nic = vm.request("info")["result"]["nics"][0]
        self.assertEqual(nic["vhost"], os.path.exists("/dev/vhost-net"))
        self.assertEqual(nic["security"]["nftables_table"], f"netdev vireo-port-{nic['tap']}")
        dropped = nic["security"]["dropped"]
        vm.check("ip link set eth0 address 02:76:69:aa:01:99")
        self.assertFalse(self.pings(vm, "10.10.0.1"), "inbound frames after a MAC change")
        self.assertGreater(vm.request("info")["result"]["nics"][0]["security"]["dropped"], dropped)
        # The port group's policy changes under the running VM, and its
        # vNIC's rules follow at once. (The far host learns the new MAC from
        # an unsolicited ARP: its cache still names the old one.)
        self.vireo("portgroup", "set", "strict", "--security", "mac-changes=accept")
        vm.check("arping -U -c 2 -I eth0 10.10.0.11", timeout=60)
        self.assertTrue(self.pings(vm, "10.10.0.1"), "MAC changes accepted by now")
        self.vireo("portgroup", "set", "strict", "--security", "mac-changes=reject")
        self.assertFalse(self.pings(vm, "10.10.0.1"), "MAC changes rejected again")
        vm.check(f"ip link set eth0 address {MAC_A}")
        self.assertTrue(self.pings(vm, "10.10.0.1"), "back on its own MAC")


if __name__ == "__main__":
    vmtest.require_kvm(linux=True)
    isolate()
    vmtest.main()
