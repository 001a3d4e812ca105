"""What the virtual switch tests share: a network namespace of the test's own,
and a "physical network" behind an uplink: a veth pair whose far end lives in
another namespace with one address untagged (10.0.0.1/24) and one on each of
VLAN 10 and 20 (10.10.0.1/24, 10.20.0.1/24, as VLAN sub-interfaces)."""

import ctypes
import json
import os
import subprocess

import vmtest
from vmtest import SBIN, host

CLONE_NEWNET = 0x40000000


def isolate():
    """This process and everything it starts get a network namespace of their
    own: the switches, ports and veths die with it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) (the test needs root)")
    host("ip", "link", "set", "lo", "up")


class FarNetwork:
    """The uplink `up0` here; its far end `far0` in the namespace `name`."""

    def __init__(self, test):
        self.name = f"vireo-far-{os.getpid()}"
        host("ip", "netns", "add", self.name)
        test.addCleanup(host, "ip", "netns", "delete", self.name, check=False)
        host("ip", "link", "add", "up0", "type", "veth", "peer", "name", "far0")
        host("ip", "link", "set", "far0", "netns", self.name)
        # Answer ARP only on the interface (the VLAN) that has the address.
        self.run("sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1")
        self.run("ip", "link", "set", "far0", "up")
        self.run("ip", "addr", "add", "10.0.0.1/24", "dev", "far0")
        for vlan in (10, 20):
            self.run("ip", "link", "add", "link", "far0", "name", f"far0.{vlan}", "type", "vlan",
                     "id", str(vlan))
            self.run("ip", "addr", "add", f"10.{vlan}.0.1/24", "dev", f"far0.{vlan}")
            self.run("ip", "link", "set", f"far0.{vlan}", "up")

    def run(self, *command, check=True):
        return host("ip", "netns", "exec", self.name, *command, check=check)


class Vireo:
    """The vireo command with a state folder of its own, and the vireod that
    keeps that folder's network configuration (`vireo switch` goes through
    it): started here and stopped when the test ends, or an agent's own when
    its `socket` is given."""

    def __init__(self, test, state, socket=None):
        self.test = test
        self.environment = dict(os.environ, VIREO_STATE_DIR=state, PATH=SBIN)
        if socket is None:
            socket = self.start_vireod(state)
        self.environment["VIREO_SOCKET"] = socket

    def start_vireod(self, state):
        run = os.path.join(state, "run")
        socket = os.path.join(run, "vireod.sock")
        log = open(os.path.join(state, "vireod.log"), "a")
        vireod = subprocess.Popen([os.path.join(vmtest.BUILD, "bin", "vireod"), "--state-dir",
                                   state, "--run-dir", run], stdout=log, stderr=subprocess.STDOUT,
                                  env=self.environment, start_new_session=True)

        def stop():
            vireod.terminate()
            try:
                vireod.wait(timeout=30)
            except subprocess.TimeoutExpired:
                vireod.kill()
                vireod.wait()
            log.close()

        self.test.addCleanup(stop)
        vmtest.wait_until(lambda: os.path.exists(socket) or vireod.poll() is not None,
                          timeout=30, what="vireod's socket")
        if vireod.poll() is not None:
            with open(os.path.join(state, "vireod.log")) as text:
                raise AssertionError(f"vireod ended at once: {text.read()}")
        return socket

    def __call__(self, *arguments, status=0):
        result = subprocess.run([vmtest.VIREO, *arguments], capture_output=True, text=True,
                                env=self.environment)
        self.test.assertEqual(result.returncode, status,
                              f"vireo {' '.join(arguments)}:\n{result.stdout}\n{result.stderr}")
        return result

    def json(self, *arguments):
        return json.loads(self(*arguments, "--json").stdout)
