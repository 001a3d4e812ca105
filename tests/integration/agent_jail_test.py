"""The VMM jail of vireod, checked from outside: each VMM runs as a uid of its
own (not root, another for each VM, the same at each start), with seccomp and
no_new_privs, in a cgroup of its own that is gone once the VM is off, and in a
mount namespace of its own that shows its folder, its boot files and its
devices but nothing else of the host. A guest-kit VM writes its disk and
powers off under the jail; vireod killed with SIGKILL adopts the jailed VMM.
vNICs under the jail: real Linux pings the host side of its TAP (vhost-net,
two queue pairs) and a far host through a port group's switch, also after
the guest took another MAC (vireod's table follows, asked by the VMM through
its port channel), with vireod making the TAPs for the unprivileged VMM and
deleting them when the VM is off, also after it was killed and adopted the VMM; a TAP that is not the
VM's is refused."""

import json
import os
import signal
import time
import unittest

import agent
import linux_vm
import vmtest
from far_network import FarNetwork, Vireo
from vmtest import host

ECHO = vmtest.guest("uart_echo.elf")  # runs until stopped
DISK_GUEST = vmtest.guest("virtio_blk.elf")  # writes a fixed layout to its disk, exits
SECTOR = 512
DISK_BYTES = 1 << 20


def cgroup2_mounted():
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def proc_status(pid):
    with open(f"/proc/{pid}/status") as status:
        return dict(line.split(":\t", 1) for line in status.read().splitlines() if ":\t" in line)


def cgroup_of(pid):
    """The folder of `pid`'s cgroup (v2) under /sys/fs/cgroup."""
    with open(f"/proc/{pid}/cgroup") as cgroups:
        for line in cgroups:
            if line.startswith("0::/"):
                return "/sys/fs/cgroup" + line[3:].strip().rstrip("/")
    raise AssertionError(f"/proc/{pid}/cgroup names no cgroup v2")


class AgentJailTest(unittest.TestCase):
    def setUp(self):
        self.agent = agent.Agent()
        self.vms = []
        # Runs after the agent's close (cleanups run last first): the cgroups
        # of VMMs killed while no vireod watched them.
        self.addCleanup(self.remove_cgroups)
        self.addCleanup(self.agent.close)
        self.agent.start()

    def remove_cgroups(self):
        if not cgroup2_mounted():
            return
        folder = os.path.join(cgroup_of(os.getpid()), "vireo-vms")
        for vm in self.vms:
            path = os.path.join(folder, vm)
            deadline = time.monotonic() + 10
            while os.path.exists(path) and time.monotonic() < deadline:
                try:
                    os.rmdir(path)
                except OSError:
                    time.sleep(0.1)
        try:
            os.rmdir(folder)
        except OSError:
            pass

    def create(self, name, kernel=ECHO, **definition):
        status, answer = self.agent.request("POST", "/v1/vms", {
            "name": name, "datastore": "ds1",
            "definition": {"vcpus": 1, "memory_mib": 64, "boot": {"kernel": kernel},
                           **definition}})
        self.assertEqual(status, 201, answer)
        self.vms.append(name)
        return os.path.join(self.agent.datastore, name)

    def start(self, name):
        status, vm = self.agent.request("POST", f"/v1/vms/{name}/start")
        self.assertEqual(status, 200, vm)
        return vm["pid"]

    def state(self, name):
        return self.agent.request("GET", f"/v1/vms/{name}")[1]

    def test_a_vmm_is_jailed_and_adopted_after_a_kill_of_vireod(self):
        folder = self.create("echo")
        pid = self.start("echo")
        status = proc_status(pid)
        uid = int(status["Uid"].split()[0])
        self.assertNotEqual(uid, 0)
        self.assertEqual(status["Uid"].split(), [str(uid)] * 4)  # real, effective, saved, fs
        self.assertEqual(status["Gid"].split(), [str(uid)] * 4)
        self.assertEqual(status["Groups"].strip(), "")
        self.assertEqual(status["Seccomp"], "2")
        self.assertEqual(status["NoNewPrivs"], "1")
        self.assertEqual(status["CapEff"], "0000000000000000")

        # Its own mount namespace: its folder and devices, nothing else of the host.
        self.assertNotEqual(os.readlink(f"/proc/{pid}/ns/mnt"), os.readlink("/proc/self/ns/mnt"))
        root = f"/proc/{pid}/root"
        self.assertTrue(os.path.exists(root + os.path.join(folder, "vm.json")))
        self.assertTrue(os.path.exists(root + ECHO))
        self.assertFalse(os.path.exists(root + "/etc/passwd"))
        self.assertFalse(os.path.exists(root + os.path.join(self.agent.state, "vireod.db")))
        self.assertFalse(os.path.exists(root + "/home"))
        self.assertEqual(os.stat(root + "/dev/kvm").st_uid, uid)
        self.assertEqual(sorted(os.listdir(root + "/dev")), ["kvm", "null", "urandom"])
        # Its console log is its own; its definition stays root's.
        console = os.path.join(folder, "console.log")
        vmtest.wait_until(lambda: os.path.getsize(console) > 0, what="console output")
        self.assertEqual(os.stat(console).st_uid, uid)
        self.assertEqual(os.stat(os.path.join(folder, "vm.json")).st_uid, 0)

        cgroup = None
        if cgroup2_mounted():
            cgroup = cgroup_of(pid)
            self.assertTrue(cgroup.endswith("/vireo-vms/echo"), cgroup)
            with open(os.path.join(cgroup, "cgroup.procs")) as procs:
                self.assertIn(str(pid), procs.read().split())

        # vireod dies hard; the next one adopts the jailed VMM and stops it.
        self.agent.stop(signal.SIGKILL)
        os.kill(pid, 0)
        self.agent.start()
        self.assertEqual((self.state("echo")["state"], self.state("echo")["pid"]),
                         ("running", pid))
        self.assertEqual(self.agent.request("POST", "/v1/vms/echo/stop")[0], 200)
        self.assertEqual(self.state("echo")["state"], "off")
        vmtest.wait_until(lambda: not os.path.exists(f"/proc/{pid}"), what="the VMM's end")
        if cgroup:
            self.assertFalse(os.path.exists(cgroup), f"{cgroup} is left after the VM stopped")
        else:
            print("note: /sys/fs/cgroup is not cgroup2 here: the cgroup checks were skipped")

        # The same uid at the next start.
        pid = self.start("echo")
        self.assertEqual(int(proc_status(pid)["Uid"].split()[0]), uid)
        self.assertEqual(self.agent.request("POST", "/v1/vms/echo/stop")[0], 200)

    def test_two_vms_have_uids_of_their_own(self):
        self.create("one")
        self.create("two")
        pids = [self.start("one"), self.start("two")]
        uids = [int(proc_status(pid)["Uid"].split()[0]) for pid in pids]
        self.assertNotEqual(uids[0], uids[1])
        self.assertNotIn(0, uids)
        # Neither sees the other's folder.
        other = os.path.join(self.agent.datastore, "two", "vm.json")
        self.assertFalse(os.path.exists(f"/proc/{pids[0]}/root{other}"))
        for name in ("one", "two"):
            self.assertEqual(self.agent.request("POST", f"/v1/vms/{name}/stop")[0], 200)

    def test_a_guest_writes_its_disk_and_powers_off_in_the_jail(self):
        if not os.path.exists(DISK_GUEST):
            raise unittest.SkipTest(f"{DISK_GUEST} is not built (ninja guests)")
        sectors = DISK_BYTES // SECTOR
        folder = self.create("disk", kernel=DISK_GUEST)
        # Its own disk in its folder (writable: handed to its uid), and a
        # read-only one outside it (bound read-only, root's), added to vm.json
        # by hand: the API creates VMs without disks yet.
        disk = os.path.join(folder, "disk.raw")
        shared = os.path.join(self.agent.root, "shared.raw")
        for path in (disk, shared):
            with open(path, "wb") as image:
                image.truncate(DISK_BYTES)
        definition_path = os.path.join(folder, "vm.json")
        with open(definition_path) as file:
            definition = json.load(file)
        definition["disks"] = [{"path": "disk.raw"}, {"path": shared, "readonly": True}]
        definition["boot"]["cmdline"] = (f"vireo.disks=2 vireo.disk0_sectors={sectors} "
                                         f"vireo.disk1_sectors={sectors} vireo.disk1_readonly=1")
        with open(definition_path, "w") as file:
            json.dump(definition, file)
        # The guest may be done before start() sees the control socket (500
        # then); how it ended is in the report either way.
        status, answer = self.agent.request("POST", "/v1/vms/disk/start")
        vmtest.wait_until(lambda: self.state("disk")["state"] == "off", timeout=180,
                          what="the guest's end")
        with open(os.path.join(self.agent.run_dir, "vms", "disk", "report.json")) as file:
            report = json.load(file)
        self.assertEqual((report["reason"], report["exit_status"]), ("guest-exit", 1),
                         (status, answer, report))
        with open(disk, "rb") as image:
            data = image.read()
        self.assertEqual(data[:8 * SECTOR], b"\xa1" * 8 * SECTOR)
        self.assertEqual(data[-SECTOR:], b"\xf7" * SECTOR)
        self.assertNotEqual(os.stat(disk).st_uid, 0)
        self.assertEqual(os.stat(shared).st_uid, 0)
        with open(shared, "rb") as image:
            self.assertEqual(image.read(), bytes(DISK_BYTES))


GUEST_MAC = "02:76:69:aa:10:01"
PORT_MAC = "02:76:69:aa:10:02"
PORT_MAC_CHANGED = "02:76:69:aa:10:99"
TAP_HOST_ADDRESS = "10.99.0.1"  # the host side of the plain TAP
FAR_ADDRESS = "10.0.0.1"  # behind the switch's uplink (far_network.py)


def tap_owner(tap):
    """The uid a TAP belongs to (None: no one), or False when it is gone."""
    try:
        with open(f"/sys/class/net/{tap}/owner") as file:
            owner = int(file.read())
    except FileNotFoundError:
        return False
    return None if owner == -1 else owner


class AgentJailNetworkTest(unittest.TestCase):
    """vNICs of jailed VMMs: real Linux (scripts/build-linux-guest.sh), built once."""

    @classmethod
    def setUpClass(cls):
        # No udev in the emulated KVM to load the modules and make the nodes.
        if not os.path.exists("/dev/net/tun"):
            host("modprobe", "tun", check=False)
        host("modprobe", "vhost_net", check=False)
        os.environ["PATH"] = vmtest.SBIN  # vireod runs ip and bridge for port groups
        cls.image = linux_vm.Image()

    @classmethod
    def tearDownClass(cls):
        cls.image.close()

    def setUp(self):
        suffix = os.getpid() % 10000
        self.tap = f"vjtap{suffix}"
        self.port_tap = f"vjport{suffix}"
        # Cleanups run last first: the TAPs and the switch go after the
        # agent's VMMs, in case a failure left them behind.
        for interface in (self.tap, self.port_tap, "jvs0"):
            self.addCleanup(host, "ip", "link", "delete", interface, check=False)
        self.agent = agent.Agent()
        self.addCleanup(self.agent.close)
        FarNetwork(self)  # the uplink up0; its far end in a namespace of its own
        self.agent.start()
        vireo = Vireo(self, self.agent.state, self.agent.socket)
        vireo("switch", "create", "jvs0", "--uplink", "up0")
        vireo("portgroup", "create", "jpg", "--switch", "jvs0")

    def create(self, name, definition):
        status, answer = self.agent.request("POST", "/v1/vms", {
            "name": name, "datastore": "ds1", "definition": definition})
        self.assertEqual(status, 201, answer)

    def stop(self, name):
        self.assertEqual(self.agent.request("POST", f"/v1/vms/{name}/stop")[0], 200)

    def test_linux_passes_traffic_on_a_tap_and_a_port_group_under_the_jail(self):
        image = self.image
        self.create("net", {
            "vcpus": 2, "memory_mib": 256,
            "boot": {"kernel": image.kernel, "initrd": image.initrd,
                     "cmdline": f"{image.cmdline} loglevel=4"},
            "nics": [{"tap": self.tap, "mac": GUEST_MAC, "queues": 2},
                     {"tap": self.port_tap, "mac": PORT_MAC, "portgroup": "jpg"}]})
        status, vm = self.agent.request("POST", "/v1/vms/net/start")
        self.assertEqual(status, 200, vm)
        pid = vm["pid"]
        vmm = proc_status(pid)
        uid = int(vmm["Uid"].split()[0])
        self.assertNotEqual(uid, 0)
        self.assertEqual(vmm["CapEff"], "0000000000000000")
        # vireod made both TAPs for the VMM's uid, and plugged the port group's.
        self.assertEqual((tap_owner(self.tap), tap_owner(self.port_tap)), (uid, uid))
        self.assertEqual(os.path.basename(os.readlink(f"/sys/class/net/{self.port_tap}/master")),
                         "jvs0")
        table = f"vireo-port-{self.port_tap}"
        host("nft", "list", "table", "netdev", table)
        host("ip", "addr", "add", f"{TAP_HOST_ADDRESS}/24", "dev", self.tap)

        console = agent.GuestConsole(self.agent, "net")
        console.expect(r"vireo-guest: shell on the console", linux_vm.BOOT_TIMEOUT,
                       "the guest's shell banner")
        console.expect(r"# ", 30, "the shell prompt")
        console.type("stty -echo cols 1000 rows 50")
        console.check("ip link set eth0 up && ip addr add 10.99.0.2/24 dev eth0 && "
                      "ip link set eth1 up && ip addr add 10.0.0.2/24 dev eth1")
        self.assertIn("3 packets received",
                      console.check(f"ping -c 3 -W 5 {TAP_HOST_ADDRESS}", timeout=90))
        self.assertIn("3 packets received",
                      console.check(f"ping -c 3 -W 5 {FAR_ADDRESS}", timeout=90))
        # The guest takes another MAC (MAC changes: Accept, ESX's default):
        # the unprivileged VMM has vireod make the port's table follow, so the
        # frames for the new MAC still reach it (promiscuous: Reject).
        console.check(f"ip link set eth1 address {PORT_MAC_CHANGED}")
        self.assertIn(PORT_MAC_CHANGED,
                      host("nft", "list", "set", "netdev", table, "effective").stdout)
        console.check("arping -U -c 2 -I eth1 10.0.0.2", timeout=60)
        self.assertIn("3 packets received",
                      console.check(f"ping -c 3 -W 5 {FAR_ADDRESS}", timeout=90))
        nic = self.agent.request("GET", "/v1/vms/net")[1]["runtime"]["nics"][0]
        self.assertEqual(nic["vhost"], os.path.exists("/dev/vhost-net"), nic)
        self.assertEqual((nic["queue_pairs"], nic["queue_pairs_in_use"]), (2, 2), nic)

        # vireod dies hard; the next one adopts the VMM, and deletes the TAPs
        # (and the port's table) once the VM is stopped.
        self.agent.stop(signal.SIGKILL)
        self.agent.start()
        self.assertEqual(self.agent.request("GET", "/v1/vms/net")[1]["pid"], pid)
        self.stop("net")
        self.assertEqual((tap_owner(self.tap), tap_owner(self.port_tap)), (False, False))
        self.assertNotEqual(host("nft", "list", "table", "netdev", table, check=False).returncode,
                            0, f"{table} is left after the VM stopped")

    def test_a_tap_of_someone_else_is_refused_and_the_vms_own_goes_with_it(self):
        self.create("echo", {"vcpus": 1, "memory_mib": 64, "boot": {"kernel": ECHO},
                             "nics": [{"tap": self.tap}]})
        host("ip", "tuntap", "add", self.tap, "mode", "tap")  # the host's, owned by no one
        status, answer = self.agent.request("POST", "/v1/vms/echo/start")
        self.assertEqual(status, 409, answer)
        self.assertIn(f"tap {self.tap}: a TAP of that name exists and belongs to someone else",
                      answer["error"])
        self.assertIsNone(tap_owner(self.tap))  # left as it was
        host("ip", "link", "delete", self.tap)

        status, vm = self.agent.request("POST", "/v1/vms/echo/start")
        self.assertEqual(status, 200, vm)
        uid = int(proc_status(vm["pid"])["Uid"].split()[0])
        self.assertEqual(tap_owner(self.tap), uid)
        self.stop("echo")
        self.assertFalse(tap_owner(self.tap), f"{self.tap} is left after the VM stopped")


if __name__ == "__main__":
    vmtest.require_kvm(linux=True)
    vmtest.main()
