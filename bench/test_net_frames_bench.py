#!/usr/bin/env python3
"""Checks of net_frames_bench.py's parts that need no VM: the endpoint's
lines are parsed into thousands of frames a second and its notifications,
a run without them is an error, and the table holds each row's medians and
each Vireo path's ratio to its peer, the goal judged on the lowest row."""
import sys
import types
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import net_frames_bench as bench  # noqa: E402
from bench_common import BenchError  # noqa: E402

GUEST_OUTPUT = """Vireo guest kit: net_endpoint
BENCH tsc_khz=2600000
READY mac=02:76:69:be:00:02 ip=10.98.0.2
BENCH net_pings=0
PASS: a request came to UDP port 7777
PASS: 200000 frames of 60 bytes sent to 10.98.0.1 port 40000
BENCH net_tx_60_fps=962900
BENCH net_tx_60_kicks=4
SUMMARY: 13 tests, 0 failures
"""


class ParseRun(unittest.TestCase):
    def test_frames_a_second_in_thousands_and_the_kicks(self):
        self.assertEqual(bench.parse_run(GUEST_OUTPUT), (962.9, 4))

    def test_a_run_without_its_figures_is_an_error(self):
        for line in ("BENCH net_tx_60_fps=962900\n", "BENCH net_tx_60_kicks=4\n"):
            with self.assertRaisesRegex(BenchError, "no figures"):
                bench.parse_run(GUEST_OUTPUT.replace(line, ""))


class Section(unittest.TestCase):
    def test_medians_ratios_and_the_lowest_row_judged(self):
        deep, shallow, linux_like = bench.workloads(1000)
        self.assertEqual((deep.depth, deep.frames, shallow.depth, shallow.frames), (128, 1000, 1, 100))
        self.assertEqual((linux_like.depth, linux_like.frames, linux_like.interrupts), (128, 100, True))
        free, pinned = bench.Cell(deep, False), bench.Cell(shallow, True)
        results = {
            free: {bench.VIREO: [(110.0, 4), (130.0, 6), (120.0, 5)], bench.QEMU: [(100.0, 9)],
                   bench.VIREO_VHOST: [(50.0, 2)], bench.QEMU_VHOST: [(100.0, 3)]},
            pinned: {bench.VIREO: [(9.0, 100)], bench.QEMU: [(10.0, 100)],
                     bench.VIREO_VHOST: [(20.0, 100)], bench.QEMU_VHOST: [(10.0, 100)]},
        }
        wire = types.SimpleNamespace(namespace="ns1", in_namespace=lambda argv: ["ip", "netns", "exec", "ns1", *argv])
        cmds = bench.Commands(Path("/b"), "qemu", Path("/w"), wire, last_cpu=1)
        cmds.vireo = lambda workload, vhost: ["/b/bin/vireo-vmm", "--config", f"/w/vm{'-vhost' if vhost else ''}.json"]
        lines = bench.section(results, Path("/b"), cmds, 3, None)
        rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
        self.assertIn("| 120.0 (110.0–130.0), 5 kicks | 100.0 (100.0–100.0), 9 kicks |", rows["depth 128, free"])
        self.assertTrue(rows["depth 128, free"].endswith("| 1.20 | 0.50 |"), rows)
        self.assertTrue(rows["depth 1, one host CPU"].endswith("| 0.90 | 2.00 |"), rows)
        goals = [line for line in lines if ": small-frame rate" in line]
        self.assertEqual(goals, ["| Vireo: small-frame rate ≥ 1.0 × QEMU, every row | lowest 0.90 | MISS |",
                                 "| Vireo vhost-net: small-frame rate ≥ 1.0 × QEMU vhost-net, every row "
                                 "| lowest 0.50 | MISS |"])
        commands = "\n".join(lines)
        self.assertIn("ip netns exec NS /b/bin/vireo-vmm --config vm.json", commands)
        self.assertIn("ip netns exec NS qemu -nodefaults", commands)

    def test_one_host_cpu_puts_the_vmm_under_taskset(self):
        wire = types.SimpleNamespace(namespace="ns1", in_namespace=lambda argv: ["ip", "netns", "exec", "ns1", *argv])
        cmds = bench.Commands(Path("/b"), "qemu", Path("/w"), wire, last_cpu=3)
        argv = cmds.argv(bench.QEMU, bench.Cell(bench.workloads(1000)[1], True))
        self.assertEqual(argv[:8], ["ip", "netns", "exec", "ns1", "taskset", "-c", "3", "qemu"])
        self.assertIn("net.ip=10.98.0.2 net.count=100 net.depth=1", argv)
        self.assertIn("tap,id=n0,ifname=vnframes0,script=no,downscript=no,vhost=off", argv)
        linux_like = cmds.argv(bench.QEMU, bench.Cell(bench.workloads(1000)[2], False))
        self.assertIn("net.ip=10.98.0.2 net.count=100 net.depth=128 net.interrupts=1", linux_like)
        self.assertEqual(bench.Cell(bench.workloads(1000)[2], False).name, "depth 128, on interrupts, free")


if __name__ == "__main__":
    unittest.main()
