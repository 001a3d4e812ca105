#!/usr/bin/env python3
"""Checks of net_bench.py's parts that need no VM: the guest's lines are
parsed into MiB/s, a round trip and frame rates, a missing or failed figure
is an error, and the table compares Vireo's medians with each peer's, the
round trip the other way round (lower is better)."""
import sys
import types
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import net_bench  # noqa: E402
from bench_common import BenchError  # noqa: E402

GUEST_OUTPUT = """vireo-guest: Linux 6.1.0, 2 CPU(s)
vireo-guest: net-bench tcp-up-1 bytes=33554432 seconds=2
vireo-guest: net-bench tcp-down-1 bytes=33554432 seconds=4
vireo-guest: net-bench tcp-up-4 bytes=33554432 seconds=1.6
vireo-guest: net-bench tcp-down-4 bytes=33554432 seconds=3.2
vireo-guest: net-bench rtt-ms=0.250
vireo-guest: net-bench frames-out frames=250000 seconds=5.000000
vireo-guest: net-bench frames-in frames=60000 seconds=4.8
vireo-guest: net-bench done: powering off
"""


class ParseRun(unittest.TestCase):
    def test_figures_are_mib_per_second_and_the_round_trip(self):
        found = net_bench.parse_run(GUEST_OUTPUT)
        self.assertEqual(found, {"tcp-up-1": 16.0, "tcp-down-1": 8.0, "tcp-up-4": 20.0,
                                 "tcp-down-4": 10.0, "rtt-ms": 0.25, "frames-out": 50.0,
                                 "frames-in": 12.5})
        self.assertEqual(net_bench.frames_sent(GUEST_OUTPUT), 250000)

    def test_small_frames_that_failed_are_an_error(self):
        failed = GUEST_OUTPUT.replace("frames-in frames=60000 seconds=4.8", "frames-in failed: no answer")
        with self.assertRaisesRegex(BenchError, "no figure for frames-in"):
            net_bench.parse_run(failed)
        no_pktgen = GUEST_OUTPUT.replace("frames-out frames=250000 seconds=5.000000",
                                         "frames-out failed: no pktgen in this image")
        with self.assertRaisesRegex(BenchError, "no figure for frames-out"):
            net_bench.parse_run(no_pktgen)

    def test_a_guest_measuring_another_guest_gives_tcp_and_the_round_trip_only(self):
        tcp_only = "".join(line + "\n" for line in GUEST_OUTPUT.splitlines() if "frames-" not in line)
        self.assertEqual(set(net_bench.parse_run(tcp_only, tcp_only=True)), {*net_bench.FIGURES, "rtt-ms"})
        with self.assertRaisesRegex(BenchError, "no figure for frames-out, frames-in"):
            net_bench.parse_run(tcp_only)

    def test_a_failed_or_missing_figure_or_an_unfinished_run_is_an_error(self):
        failed = GUEST_OUTPUT.replace("tcp-down-4 bytes=33554432 seconds=3.2", "tcp-down-4 failed")
        with self.assertRaisesRegex(BenchError, "no figure for tcp-down-4"):
            net_bench.parse_run(failed)
        with self.assertRaisesRegex(BenchError, "no figure for rtt-ms"):
            net_bench.parse_run(GUEST_OUTPUT.replace("rtt-ms=0.250", "rtt-ms="))
        with self.assertRaisesRegex(BenchError, "did not finish"):
            net_bench.parse_run(GUEST_OUTPUT.replace("net-bench done", "panic"))


class Section(unittest.TestCase):
    def test_ratios_and_verdicts_of_each_vireo_path_against_its_peer(self):
        frames = net_bench.FIGURES + net_bench.FRAME_FIGURES
        vireo = {f: [10.0, 12.0, 11.0] for f in frames} | {"rtt-ms": [0.2, 0.3, 0.25]}
        qemu = {f: [10.0] for f in frames} | {"rtt-ms": [0.5]}
        vhost = {f: [22.0] for f in frames} | {"rtt-ms": [0.125]}
        results = {net_bench.VIREO: vireo, net_bench.QEMU: qemu, net_bench.VIREO_VHOST: vireo,
                   net_bench.QEMU_VHOST: vhost}
        wire = types.SimpleNamespace(namespace="ns1", in_namespace=lambda argv: ["ip", "netns", "exec", "ns1", *argv])
        guest = types.SimpleNamespace(kernel=Path("/g/vmlinuz"), initrd=Path("/g/initrd.img"), cmdline="console=ttyS0")
        cmds = net_bench.Commands(Path("/b"), "qemu", Path("/w"), guest, wire)
        cmds.vireo = lambda vhost, role: ["/b/bin/vireo-vmm", "--config", f"/w/vm{'-vhost' if vhost else ''}.json"]
        lines = net_bench.section(results, Path("/b"), cmds, 3, None)
        rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
        # Medians 11 against 10 and 22; the round trip 0.25 against 0.5 and 0.125.
        self.assertTrue(rows["TCP guest → host, 1 stream"].endswith("| 1.10 | 0.50 |"), rows)
        self.assertTrue(rows["round trip (ms)"].endswith("| 0.50 | 2.00 |"), rows)
        self.assertTrue(rows["60-byte frames host → guest (k/s)"].endswith("| 1.10 | 0.50 |"), rows)
        goals = [line for line in lines if ": throughput" in line or ": round trip" in line
                 or ": small-frame" in line]
        self.assertEqual([line.rstrip(" |").rsplit("| ", 1)[-1] for line in goals],
                         ["PASS", "PASS", "PASS", "MISS", "MISS", "MISS"])
        commands = "\n".join(lines)
        self.assertIn("ip netns exec NS /b/bin/vireo-vmm --config vm.json", commands)
        self.assertIn("ip netns exec NS /b/bin/vireo-vmm --config vm-vhost.json", commands)


    def test_the_guest_pair_adds_its_rows_and_joins_the_goals(self):
        figures = net_bench.FIGURES + net_bench.FRAME_FIGURES
        pair = {net_bench.PAIR + f: [10.0] for f in net_bench.FIGURES} | {net_bench.PAIR + "rtt-ms": [1.0]}
        vireo = {f: [10.0] for f in figures} | {"rtt-ms": [0.5]} | pair | {"pair-tcp-up-4": [8.0]}
        qemu = {f: [10.0] for f in figures} | {"rtt-ms": [0.5]} | pair | {"pair-rtt-ms": [2.0]}
        results = {net_bench.VIREO: vireo, net_bench.QEMU: qemu}
        wire = types.SimpleNamespace(namespace="ns1", in_namespace=lambda argv: ["ip", "netns", "exec", "ns1", *argv])
        guest = types.SimpleNamespace(kernel=Path("/g/vmlinuz"), initrd=Path("/g/initrd.img"), cmdline="console=ttyS0")
        cmds = net_bench.Commands(Path("/b"), "qemu", Path("/w"), guest, wire)
        cmds.vireo = lambda vhost, role: ["/b/bin/vireo-vmm", "--config", "/w/vm.json"]
        lines = net_bench.section(results, Path("/b"), cmds, 1, None)
        rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
        self.assertTrue(rows["TCP guest → guest, 4 streams"].endswith("| 0.80 |"), rows)
        self.assertTrue(rows["round trip guest ↔ guest (ms)"].endswith("| 0.50 |"), rows)
        self.assertIn("| Vireo: throughput ≥ 1.0 × QEMU, every row | lowest 0.80 | MISS |", lines)
        self.assertIn("| Vireo: round trip ≤ 1.0 × QEMU, both | highest 1.00 | PASS |", lines)
        server = cmds.argv(net_bench.QEMU, "server")
        self.assertIn("console=ttyS0 loglevel=4 vireo.net-serve=10.99.0.3", server)
        self.assertIn("tap,id=n0,ifname=vnbench1,script=no,downscript=no,vhost=off", server)
        client = cmds.argv(net_bench.QEMU, "client")
        self.assertIn("console=ttyS0 loglevel=4 vireo.net-bench=10.99.0.3 vireo.net-bench-tcp-only", client)


    def test_one_vmm_alone_gives_a_table_without_empty_columns(self):
        figures = net_bench.FIGURES + net_bench.FRAME_FIGURES
        results = {net_bench.VIREO: {f: [10.0] for f in figures} | {"rtt-ms": [0.5]}}
        wire = types.SimpleNamespace(namespace="ns1", in_namespace=lambda argv: ["ip", "netns", "exec", "ns1", *argv])
        guest = types.SimpleNamespace(kernel=Path("/g/vmlinuz"), initrd=Path("/g/initrd.img"), cmdline="console=ttyS0")
        cmds = net_bench.Commands(Path("/b"), "qemu", Path("/w"), guest, wire)
        cmds.vireo = lambda vhost, role: ["/b/bin/vireo-vmm", "--config", "/w/vm.json"]
        lines = net_bench.section(results, Path("/b"), cmds, 1, None)
        self.assertIn("| figure | Vireo |", lines)
        self.assertIn("| --- | ---: |", lines)
        self.assertIn("| TCP guest → host, 1 stream | 10.0 (10.0–10.0) |", lines)


if __name__ == "__main__":
    unittest.main()
