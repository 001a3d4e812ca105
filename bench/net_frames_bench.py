#!/usr/bin/env python3
"""Networking: small frames out of the guest kit's endpoint (guest/tests/
net_endpoint.c), Vireo's virtio-net against QEMU's, on this host's KVM, in
one run.

    python3 bench/net_frames_bench.py --build build --runs 5 --output docs/benchmarks.md

The endpoint sends 60-byte UDP frames as fast as its vNIC takes them back,
polling the used ring (no interrupts), and times them with the TSC; so the
figure is the VMM's transmit path: notification, reading the ring, writing
each frame to the TAP, returning the buffer. Two depths: 128 frames in
flight (a driver with a busy queue: few notifications) and 1 (a frame per
notification, the round trip of each); and 128 sent as Linux's driver sends
them (net.interrupts=1: it takes buffers back on transmit interrupts it asks
for once 3/4 of what is in flight is done, and notifies as the device asks),
the pattern a guest kernel makes a VMM serve. Two placements: the VMM free on the
host's CPUs, and the whole VMM process held on one host CPU with taskset,
where its vCPU and its device thread take turns, as on a busy host (or in a
one-CPU emulated machine). Each VMM with its userspace path, and with
vhost-net where /dev/vhost-net exists.

The far side is a network namespace of the benchmark's own holding a
persistent TAP; each VMM runs in that namespace on that TAP, one after the
other, rotating, so all see the same wire. Every run is checked: the guest
passed its checks and the TAP received every frame.
Runs the guest kit only, so any KVM does (PVM included); exits 77 (skip)
without /dev/kvm or qemu-system-x86_64.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

from bench_common import (EXIT_SKIP, BenchError, Namespace, Runner, Sample, check_guest_passed, host_facts, load_average,
                          publish, ratio, run_checked, run_guarded, shown_command, verdict, vhost_net_problem)

BEGIN_MARKER = "<!-- net-frames-bench:begin -->"
END_MARKER = "<!-- net-frames-bench:end -->"
TITLE = "Networking: small frames out of the guest kit, Vireo against QEMU"

TAP = "vnframes0"
HOST_ADDRESS = "10.98.0.1"
GUEST_ADDRESS = "10.98.0.2"
GUEST_MAC = "02:76:69:be:00:02"
REQUEST_PORT = 7777
MEMORY_MIB = 64
VIREO = "Vireo"
QEMU = "QEMU"
VIREO_VHOST = "Vireo vhost-net"
QEMU_VHOST = "QEMU vhost-net"
PAIRS = ((VIREO, QEMU), (VIREO_VHOST, QEMU_VHOST))
NO_VHOST = "not in vhost-net"  # what vireo-vmm logs when it cannot use vhost-net


@dataclasses.dataclass(frozen=True)
class Workload:
    depth: int
    frames: int
    interrupts: bool = False  # as Linux's driver: transmit interrupts, not polling


@dataclasses.dataclass(frozen=True)
class Cell:
    workload: Workload
    one_cpu: bool

    @property
    def name(self) -> str:
        how = ", on interrupts" if self.workload.interrupts else ""
        return f"depth {self.workload.depth}{how}, " + ("one host CPU" if self.one_cpu else "free")


# Frames per run at depth 128 by default; depth 1 sends a tenth of them.
FRAMES = 200000


def workloads(frames: int) -> tuple[Workload, ...]:
    tenth = max(frames // 10, 1)
    return Workload(128, frames), Workload(1, tenth), Workload(128, tenth, interrupts=True)


def progress(message: str) -> None:
    print(f"[net-frames-bench] {message}", file=sys.stderr, flush=True)


class Wire(Namespace):
    """The far side: a persistent TAP at HOST_ADDRESS."""

    def __init__(self) -> None:
        super().__init__("vireo-frames-bench")

    def setup(self) -> None:
        self.run("ip", "tuntap", "add", "dev", TAP, "mode", "tap")
        self.run("ip", "addr", "add", f"{HOST_ADDRESS}/24", "dev", TAP)
        self.run("ip", "link", "set", TAP, "up")

    def ask_for_frames(self, _pid: int) -> None:
        """The endpoint's request: one UDP datagram to its port."""
        self.run(sys.executable, "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                 f".sendto(b'send', ({GUEST_ADDRESS!r}, {REQUEST_PORT}))")


class Commands:
    def __init__(self, build: Path, qemu: str, workdir: Path, wire: Wire, last_cpu: int) -> None:
        self.build, self.qemu, self.workdir, self.wire = build, qemu, workdir, wire
        self.kernel = build / "guest" / "net_endpoint.elf"
        self.last_cpu = last_cpu

    def cmdline(self, workload: Workload) -> str:
        return (f"net.ip={GUEST_ADDRESS} net.count={workload.frames} net.depth={workload.depth}"
                + (" net.interrupts=1" if workload.interrupts else ""))

    def vireo(self, workload: Workload, vhost: bool) -> list[str]:
        definition = {
            "vcpus": 1,
            "memory_mib": MEMORY_MIB,
            "boot": {"kernel": str(self.kernel), "cmdline": self.cmdline(workload)},
            "console": {"output": "stdio", "input": False},
            "nics": [{"tap": TAP, "mac": GUEST_MAC, "vhost": vhost}],
        }
        path = self.workdir / (f"vm-depth{workload.depth}{'-interrupts' if workload.interrupts else ''}"
                               f"{'-vhost' if vhost else ''}.json")
        path.write_text(json.dumps(definition))
        return [str(self.build / "bin" / "vireo-vmm"), "--config", str(path)]

    def qemu_vm(self, workload: Workload, vhost: bool) -> list[str]:
        return [self.qemu, "-nodefaults", "-no-user-config", "-accel", "kvm",
                "-M", "microvm,pcie=on", "-m", f"{MEMORY_MIB}M", "-smp", "1",
                "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
                "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
                "-kernel", str(self.kernel), "-append", self.cmdline(workload),
                "-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no,vhost={'on' if vhost else 'off'}",
                "-device", f"virtio-net-pci,netdev=n0,mac={GUEST_MAC},disable-legacy=on"]

    def argv(self, vmm: str, cell: Cell) -> list[str]:
        vhost = vmm in (VIREO_VHOST, QEMU_VHOST)
        inner = (self.vireo(cell.workload, vhost) if vmm in (VIREO, VIREO_VHOST)
                 else self.qemu_vm(cell.workload, vhost))
        if cell.one_cpu:
            inner = ["taskset", "-c", str(self.last_cpu), *inner]
        return self.wire.in_namespace(inner)


def parse_run(output: str) -> tuple[float, int]:
    """Thousands of frames a second and the notifications the guest sent."""
    fps = re.search(r"^BENCH net_tx_60_fps=(\d+)", output, re.M)
    kicks = re.search(r"^BENCH net_tx_60_kicks=(\d+)", output, re.M)
    if not fps or not kicks:
        raise BenchError(f"no figures from the endpoint:\n{output[-3000:]}")
    return int(fps.group(1)) / 1000, int(kicks.group(1))


def bench(runner: Runner, cmds: Commands, vmms: list[str], cells: list[Cell],
          runs: int) -> dict[Cell, dict[str, list[tuple[float, int]]]]:
    results: dict[Cell, dict[str, list[tuple[float, int]]]] = {cell: {vmm: [] for vmm in vmms} for cell in cells}
    for i in range(runs):
        for cell in cells:
            for vmm in vmms[i % len(vmms):] + vmms[:i % len(vmms)]:
                argv = cmds.argv(vmm, cell)

                def finished(result, vmm=vmm, argv=argv) -> None:
                    check_guest_passed(result, argv)
                    if vmm == VIREO_VHOST and NO_VHOST in result.stderr:
                        raise BenchError(f"{vmm}: vireo-vmm did not use vhost-net:\n{result.stderr[-1500:]}")
                    parse_run(result.output)

                before = cmds.wire.frames_received(TAP)
                result = run_checked(runner, argv, finished, progress, wait_for=b"READY",
                                     on_ready=cmds.wire.ask_for_frames)
                received = cmds.wire.frames_received(TAP) - before
                if received < cell.workload.frames:
                    raise BenchError(f"{vmm}: the TAP received {received} frames of the guest's "
                                     f"{cell.workload.frames}:\n{result.output[-3000:]}")
                results[cell][vmm].append(parse_run(result.output))
        progress(f"round {i + 1} of {runs} done")
    return results


def section(results: dict[Cell, dict[str, list[tuple[float, int]]]], build: Path, cmds: Commands,
            runs: int, vhost_note: str | None) -> list[str]:
    vmms = list(next(iter(results.values())))
    pairs = [(vireo, peer) for vireo, peer in PAIRS if vireo in vmms and peer in vmms]
    lines = [
        "### Small frames out of the guest kit's endpoint",
        "",
        f"guest/tests/net_endpoint.c, 1 vCPU, {MEMORY_MIB} MiB, one vNIC on a persistent TAP in a "
        "network namespace; QEMU microvm with virtio-net-pci (disable-legacy=on). The guest sends "
        "60-byte UDP frames as fast as the device returns them, polling the used ring (no "
        "interrupts), timed with its TSC; it notifies only when the device asks (EVENT_IDX, as "
        "Linux). Depth = frames in flight: 128 is a busy queue, 1 a notification and a round trip "
        "per frame; \"on interrupts\": as Linux's driver sends (net.interrupts=1), buffers taken back "
        "on the transmit interrupts it asks for when 3/4 of what is in flight is done. "
        "\"one host CPU\": the VMM process under `taskset` on one CPU, where its vCPU and "
        "its device thread take turns. Every run checked: the guest passed and the TAP received "
        f"every frame. {runs} runs of each, interleaved; thousands of frames a second, median "
        "(min–max), higher is better; kicks = the guest's notifications (median).",
        "",
        "| workload | frames | " + " | ".join(vmms) + " | "
        + " | ".join(f"{v} / {p}" for v, p in pairs) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in vmms) + " | " + " | ".join("---:" for _ in pairs) + " |",
    ]
    worst: dict[tuple[str, str], float] = {}
    for cell, by_vmm in results.items():
        rates = {vmm: Sample([fps for fps, _ in runs_]) for vmm, runs_ in by_vmm.items()}
        kicks = {vmm: Sample([float(k) for _, k in runs_]).median for vmm, runs_ in by_vmm.items()}
        cells = [f"{rates[vmm].median:.1f} ({rates[vmm].spread('{:.1f}')}), {kicks[vmm]:.0f} kicks" for vmm in vmms]
        ratios = []
        for pair in pairs:
            value = ratio(rates[pair[0]].median, rates[pair[1]].median)
            worst[pair] = min(worst.get(pair, value), value)
            ratios.append(f"{value:.2f}")
        lines.append(f"| {cell.name} | {cell.workload.frames} | " + " | ".join(cells) + " | "
                     + " | ".join(ratios) + " |")
    lines += ["", "| goal | measured | verdict |", "| --- | --- | --- |"]
    for (vireo, peer), value in worst.items():
        lines.append(f"| {vireo}: small-frame rate ≥ 1.0 × {peer}, every row | lowest {value:.2f} | "
                     f"{verdict(value >= 1.0)} |")
    if vhost_note:
        lines += ["", f"vhost-net was not measured: {vhost_note}."]
    lines += ["", "Commands (the first row; `vm-depth128.json` is the same guest, command line and "
              "TAP for vireo-vmm; NS the benchmark's namespace; one host CPU puts "
              f"`taskset -c {cmds.last_cpu}` in front of the VMM):", "", "```sh"]
    for vmm in vmms:
        lines.append(shown_command(cmds.argv(vmm, next(iter(results))), build,
                                   {str(cmds.workdir) + "/": "", cmds.wire.namespace: "NS"}))
    lines += ["```", ""]
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build", help="build directory (bin/ and guest/ inside)")
    parser.add_argument("--runs", type=int, default=5, help="runs per VMM and row")
    parser.add_argument("--output", help="Markdown file whose net-frames-bench section is rewritten")
    parser.add_argument("--qemu", default="qemu-system-x86_64", help="QEMU binary")
    parser.add_argument("--timeout", type=float, default=120, help="seconds allowed per VM run")
    parser.add_argument("--frames", type=int, default=FRAMES,
                        help=f"frames per run at depth 128 (default {FRAMES}); depth 1 sends a tenth")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.frames < 10:
        parser.error("--frames must be at least 10")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    repo = Path(__file__).resolve().parent.parent
    build = Path(args.build)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is missing or not usable (run it inside scripts/emulated-kvm)", file=sys.stderr)
        return EXIT_SKIP
    for program in (args.qemu, "ip", "taskset"):
        if shutil.which(program) is None:
            print(f"SKIP: {program} is not installed", file=sys.stderr)
            return EXIT_SKIP
    for needed in (build / "bin" / "vireo-vmm", build / "guest" / "net_endpoint.elf"):
        if not needed.exists():
            print(f"net_frames_bench: {needed} is not built (ninja -C {build} all guests)", file=sys.stderr)
            return 2
    build = build.resolve()
    command = shlex.join(["python3", "bench/net_frames_bench.py", *argv])

    def measure(children, workdir: Path) -> None:
        vhost_note = vhost_net_problem()
        vmms = [VIREO, QEMU] + ([] if vhost_note else [VIREO_VHOST, QEMU_VHOST])
        cells = [Cell(workload, one_cpu) for one_cpu in (False, True) for workload in workloads(args.frames)]
        facts = host_facts(args.qemu, repo, build)
        started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        load_start = load_average()
        with Wire() as wire:
            cmds = Commands(build, args.qemu, workdir, wire, max(os.sched_getaffinity(0)))
            results = bench(Runner(children, workdir, args.timeout), cmds, vmms, cells, args.runs)
            body = section(results, build, cmds, args.runs, vhost_note)
        publish(args.output, body, title=TITLE, script="bench/net_frames_bench.py",
                markers=(BEGIN_MARKER, END_MARKER), command=command, started=started,
                interleaving="Runs interleaved, the same guest and the same TAP for all.", facts=facts,
                load_start=load_start, progress=progress)

    return run_guarded(measure, progress, "net-frames-bench-")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
