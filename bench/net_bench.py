#!/usr/bin/env python3
"""Networking: real Linux's virtio_net under Vireo against QEMU, each with its
userspace path and with vhost-net, the same image, the same TAP, in one run.

    python3 bench/net_bench.py --build build --runs 5 --output docs/benchmarks.md

The guest is scripts/build-linux-guest.sh's image with `vireo.net-bench=HOST`
on its command line: its /init gives eth0 an address and moves data over TCP
with busybox nc to servers on the far side (socat, on the host), one stream
and four at once each way, measures ping's round trip, then the rate of
60-byte frames each way (the guest's from the kernel's packet generator,
pktgen; the far side's from bench/frame_blaster.py on the TAP), and powers
off.
The far side is a network namespace of the benchmark's own holding a bridge
with the host's address and two persistent TAPs on it; each VMM runs in that
namespace and attaches to the first TAP, one after the other (Vireo, QEMU,
Vireo vhost-net, QEMU vhost-net, Vireo, ...), so all see the same wire and
the same load. Then the guest pair: a second guest under the same VMM and
path, on the second TAP, serves the same TCP ports (`vireo.net-serve`), and
the first measures TCP and the round trip against it, guest to guest over
the bridge (`--no-pair` leaves the pair out).

On a machine without /dev/kvm, run it inside the emulated KVM:
scripts/emulated-kvm --share docs python3 bench/net_bench.py ...
Figures there are at emulation speed: only the ratios mean anything.
Exits 77 (skip) when /dev/kvm, qemu-system-x86_64 or socat is missing.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_common import (EXIT_SKIP, BenchError, Children, Namespace, Runner, Sample, host_facts, linux_kvm_missing, load_average,
                          publish, ratio, run_checked, run_guarded, shown_command, verdict, vhost_net_problem)
from linux_boot_bench import Guest, build_guest

BEGIN_MARKER = "<!-- net-bench:begin -->"
END_MARKER = "<!-- net-bench:end -->"
TITLE = "Networking: real Linux on virtio-net against QEMU"
MIB = 1 << 20

VCPUS = 2
MEMORY_MIB = 512
TAP = "vnbench0"
HOST_ADDRESS = "10.99.0.1"
GUEST_MAC = "02:76:69:be:00:01"
# Port: bytes each connection takes (up) or gets (down); the guest's /init
# (scripts/build-linux-guest.sh) uses the same ports and sizes.
SERVERS = {5001: ("up", 32 * MIB), 5002: ("down", 32 * MIB),
           5003: ("up", 8 * MIB), 5004: ("down", 8 * MIB)}
# The guest connects here for its small frames in: the far side's
# frame_blaster.py sends to it for 5 s and answers "seconds=S" (the /init's
# frames_in).
FRAMES_IN_PORT = 5006
GUEST_ADDRESS = "10.99.0.2"
BRIDGE = "vnbenchbr"
# The guest pair's server: a second guest on its own TAP on the bridge.
PEER_TAP = "vnbench1"
PEER_ADDRESS = "10.99.0.3"
PEER_MAC = "02:76:69:be:00:03"
PEER_READY = "vireo-guest: net-serve ready"
FIGURES = ("tcp-up-1", "tcp-down-1", "tcp-up-4", "tcp-down-4")
# The same, guest to guest: the figure's name with this prefix.
PAIR = "pair-"
# Thousands of 60-byte frames a second.
FRAME_FIGURES = ("frames-out", "frames-in")
FIGURE_TEXT = {
    "tcp-up-1": "TCP guest → host, 1 stream",
    "tcp-down-1": "TCP host → guest, 1 stream",
    "tcp-up-4": "TCP guest → host, 4 streams",
    "tcp-down-4": "TCP host → guest, 4 streams",
    "frames-out": "60-byte frames guest → host (k/s)",
    "frames-in": "60-byte frames host → guest (k/s)",
    "rtt-ms": "round trip (ms)",
    "pair-tcp-up-1": "TCP guest → guest, 1 stream",
    "pair-tcp-down-1": "TCP guest ← guest, 1 stream",
    "pair-tcp-up-4": "TCP guest → guest, 4 streams",
    "pair-tcp-down-4": "TCP guest ← guest, 4 streams",
    "pair-rtt-ms": "round trip guest ↔ guest (ms)",
}
DONE = "vireo-guest: net-bench done"
VIREO = "Vireo"
QEMU = "QEMU"
VIREO_VHOST = "Vireo vhost-net"
QEMU_VHOST = "QEMU vhost-net"
# Each Vireo variant and the peer it is held against.
PAIRS = ((VIREO, QEMU), (VIREO_VHOST, QEMU_VHOST))
# What vireo-vmm logs when it cannot hand a vNIC to vhost-net.
NO_VHOST = "not in vhost-net"


def progress(message: str) -> None:
    print(f"[net-bench] {message}", file=sys.stderr, flush=True)


class Wire(Namespace):
    """The far side: a bridge at HOST_ADDRESS with the two TAPs on it, and a
    socat server per port. Removed, servers and all, on exit."""

    def __init__(self, children: Children, workdir: Path) -> None:
        super().__init__("vireo-net-bench")
        self.children, self.workdir = children, workdir
        self.servers: list[subprocess.Popen] = []

    def serve(self, port: int, child: str) -> None:
        """A socat server on port that runs child (shell) for each connection.
        busybox nc shuts its side down as soon as its input ends, and socat
        would then give a child that has not answered yet only 0.5 s: -t
        gives it 30."""
        self.servers.append(self.children.spawn(
            self.in_namespace(["socat", "-t", "30", f"TCP-LISTEN:{port},bind={HOST_ADDRESS},fork,reuseaddr,backlog=16",
                               f"SYSTEM:{child}"]), subprocess.DEVNULL, subprocess.DEVNULL))

    def setup(self) -> None:
        self.run("ip", "link", "add", BRIDGE, "type", "bridge")
        self.run("ip", "addr", "add", f"{HOST_ADDRESS}/24", "dev", BRIDGE)
        self.run("ip", "link", "set", BRIDGE, "up")
        for tap in (TAP, PEER_TAP):
            self.run("ip", "tuntap", "add", "dev", tap, "mode", "tap")
            self.run("ip", "link", "set", tap, "master", BRIDGE)
            self.run("ip", "link", "set", tap, "up")
        for port, (direction, size) in SERVERS.items():
            # Each connection: a child that takes `size` bytes, or sends them, and ends it.
            self.serve(port, f"head -c {size} >/dev/null" if direction == "up"
                       else f"head -c {size} /dev/zero")
        # In a script: socat would cut the command at the MAC's first colon.
        blaster = Path(__file__).resolve().parent / "frame_blaster.py"
        sender = self.workdir / "frames-in.sh"
        sender.write_text(shlex.join([sys.executable, str(blaster), "--interface", TAP, "--to-mac",
                                      GUEST_MAC, "--to", GUEST_ADDRESS, "--from", HOST_ADDRESS,
                                      "--seconds", "5"]) + "\n")
        self.serve(FRAMES_IN_PORT, f"sh {sender}")

    def __exit__(self, *_exc) -> None:
        for server in self.servers:
            self.children.finish(server)
        super().__exit__()


class Commands:
    def __init__(self, build: Path, qemu: str, workdir: Path, guest: Guest, wire: Wire,
                 vcpus: int = VCPUS, append: str = "") -> None:
        self.build, self.qemu, self.workdir, self.guest, self.wire = build, qemu, workdir, guest, wire
        self.vcpus = vcpus
        base = f"{guest.cmdline} loglevel=4"
        # Each role's command line, TAP and MAC: the guest that measures
        # against the host, the same against the pair's server, the server.
        self.roles = {
            "host": (f"{base} vireo.net-bench={HOST_ADDRESS} {append}".strip(), TAP, GUEST_MAC),
            "client": (f"{base} vireo.net-bench={PEER_ADDRESS} vireo.net-bench-tcp-only {append}".strip(),
                       TAP, GUEST_MAC),
            "server": (f"{base} vireo.net-serve={PEER_ADDRESS}", PEER_TAP, PEER_MAC),
        }

    def vireo(self, vhost: bool, role: str) -> list[str]:
        cmdline, tap, mac = self.roles[role]
        definition = {
            "vcpus": self.vcpus,
            "memory_mib": MEMORY_MIB,
            "boot": {"kernel": str(self.guest.kernel), "initrd": str(self.guest.initrd),
                     "cmdline": cmdline},
            "console": {"output": "stdio", "input": False},
            "nics": [{"tap": tap, "mac": mac, "vhost": vhost}],
        }
        name = "vm" + ("" if role == "host" else f"-{role}") + ("-vhost" if vhost else "")
        path = self.workdir / f"{name}.json"
        path.write_text(json.dumps(definition))
        return [str(self.build / "bin" / "vireo-vmm"), "--config", str(path)]

    def qemu_vm(self, vhost: bool, role: str) -> list[str]:
        cmdline, tap, mac = self.roles[role]
        return [self.qemu, "-nodefaults", "-no-user-config", "-accel", "kvm", "-cpu", "host",
                "-smp", str(self.vcpus), "-M", "microvm,pcie=on,rtc=on", "-m", f"{MEMORY_MIB}M",
                "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
                "-kernel", str(self.guest.kernel), "-initrd", str(self.guest.initrd),
                "-append", cmdline,
                "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no,vhost={'on' if vhost else 'off'}",
                "-device", f"virtio-net-pci,netdev=n0,mac={mac},disable-legacy=on"]

    def argv(self, vmm: str, role: str = "host") -> list[str]:
        vhost = vmm in (VIREO_VHOST, QEMU_VHOST)
        inner = self.vireo(vhost, role) if vmm in (VIREO, VIREO_VHOST) else self.qemu_vm(vhost, role)
        return self.wire.in_namespace(inner)


def rate(amount: float, seconds: str) -> float:
    return amount / float(seconds) if float(seconds) > 0 else float("inf")


def parse_run(output: str, tcp_only: bool = False) -> dict[str, float]:
    """MiB/s per TCP figure, the round trip in ms ("rtt-ms") and (unless
    tcp_only) thousands of frames a second each way; a figure that failed or
    is missing is an error."""
    if DONE not in output:
        raise BenchError(f"the guest did not finish its network benchmark:\n{output[-3000:]}")
    found = {name: rate(int(size) / MIB, seconds)
             for name, size, seconds in re.findall(r"net-bench (\S+) bytes=(\d+) seconds=([\d.]+)", output)}
    for name, frames, seconds in re.findall(r"net-bench (\S+) frames=(\d+) seconds=([\d.]+)", output):
        found[name] = rate(int(frames) / 1000, seconds)
    rtt = re.search(r"net-bench rtt-ms=([\d.]+)", output)
    if rtt:
        found["rtt-ms"] = float(rtt.group(1))
    wanted = (*FIGURES, "rtt-ms") if tcp_only else (*FIGURES, "rtt-ms", *FRAME_FIGURES)
    missing = [figure for figure in wanted if figure not in found]
    if missing:
        raise BenchError(f"no figure for {', '.join(missing)} from the guest:\n{output[-3000:]}")
    return found


def frames_sent(output: str) -> int:
    """How many frames the guest's pktgen counted as sent (0 if none)."""
    sent = re.search(r"net-bench frames-out frames=(\d+) ", output)
    return int(sent.group(1)) if sent else 0


def run_guest(runner: Runner, cmds: Commands, vmm: str, role: str) -> dict[str, float]:
    """One measuring guest's run (role "host" or "client"), checked: it
    finished, used vhost-net if asked, and every frame its pktgen sent
    reached the TAP. Its figures."""
    argv = cmds.argv(vmm, role)
    tcp_only = role == "client"

    def finished(result) -> None:
        if result.status != 0:
            raise BenchError(f"{vmm}: exit status {result.status}: {shlex.join(argv)}\n"
                             f"{result.output[-3000:]}\n{result.stderr[-1500:]}")
        if vmm == VIREO_VHOST and NO_VHOST in result.stderr:
            raise BenchError(f"{vmm}: vireo-vmm did not use vhost-net:\n{result.stderr[-1500:]}")
        parse_run(result.output, tcp_only)

    received_before = cmds.wire.frames_received(TAP)
    result = run_checked(runner, argv, finished, progress)
    # pktgen counts a frame sent once the driver took it: the TAP must have them all.
    received = cmds.wire.frames_received(TAP) - received_before
    if received < frames_sent(result.output):
        raise BenchError(f"{vmm}: the TAP received {received} frames, fewer than the guest's "
                         f"pktgen sent:\n{result.output[-3000:]}")
    return parse_run(result.output, tcp_only)


def start_server(runner: Runner, cmds: Commands, vmm: str) -> subprocess.Popen:
    """The guest pair's server under `vmm`, once it serves (stopped with
    runner.children.finish)."""
    argv = cmds.argv(vmm, "server")
    server = runner.children.spawn(argv, subprocess.DEVNULL, subprocess.DEVNULL)
    output = b""
    deadline = time.monotonic() + runner.timeout
    while PEER_READY.encode() not in output:
        left = deadline - time.monotonic()
        chunk = os.read(server.stdout.fileno(), 65536) if left > 0 and select.select(
            [server.stdout], [], [], left)[0] else b""
        if not chunk:
            runner.children.finish(server)
            raise BenchError(f"{vmm}: the pair's server did not come up: {shlex.join(argv)}\n"
                             f"{output.decode(errors='replace')[-3000:]}")
        output += chunk
    return server


def bench(runner: Runner, cmds: Commands, vmms: list[str], runs: int,
          pair: bool = True) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {vmm: {} for vmm in vmms}
    for i in range(runs):
        for vmm in vmms[i % len(vmms):] + vmms[:i % len(vmms)]:
            progress(f"round {i + 1} of {runs}: {vmm}")
            for figure, value in run_guest(runner, cmds, vmm, "host").items():
                results[vmm].setdefault(figure, []).append(value)
            if not pair:
                continue
            progress(f"round {i + 1} of {runs}: {vmm}, guest to guest")
            server = start_server(runner, cmds, vmm)
            try:
                figures = run_guest(runner, cmds, vmm, "client")
            finally:
                runner.children.finish(server)
            for figure, value in figures.items():
                results[vmm].setdefault(PAIR + figure, []).append(value)
        progress(f"round {i + 1} of {runs} done")
    return results


def table_row(cells) -> str:
    """A Markdown table row: no empty cell when a group of columns is empty."""
    return "| " + " | ".join(cells) + " |"


def cell(values: list[float], fmt: str) -> str:
    sample = Sample(values)
    return f"{fmt.format(sample.median)} ({sample.spread(fmt)})"


def section(results: dict[str, dict[str, list[float]]], build: Path, cmds: Commands, runs: int,
            vhost_note: str | None) -> list[str]:
    vmms = list(results)
    pairs = [(vireo, peer) for vireo, peer in PAIRS if vireo in results and peer in results]
    paired = all(PAIR + FIGURES[0] in results[vmm] for vmm in vmms)
    pair_figures = tuple(PAIR + f for f in (*FIGURES, "rtt-ms")) if paired else ()
    throughput = FIGURES + tuple(PAIR + f for f in FIGURES if paired)
    round_trips = ("rtt-ms", PAIR + "rtt-ms") if paired else ("rtt-ms",)
    lines = [
        "### Real Linux: TCP throughput, round trip and small-frame rate, Vireo against QEMU, "
        "with vhost-net and without",
        "",
        f"scripts/build-linux-guest.sh's image (Debian's kernel, its virtio_net driver), {cmds.vcpus} vCPUs, "
        f"{MEMORY_MIB} MiB, one vNIC on a TAP on a bridge that holds {HOST_ADDRESS} in a network namespace; "
        "QEMU microvm with virtio-net-pci; each VMM with its userspace path and with the host kernel's "
        "vhost-net. The guest's /init sends and receives with busybox nc (32 MiB one stream, "
        "4 × 8 MiB four at once) to socat servers on the far side, timed with its /proc/uptime, then "
        "pings the far side 50 times, 20 ms apart (the average round trip), then measures the rate of "
        "60-byte UDP frames sent as fast as they are taken for 5 s: the guest's, by the kernel's "
        "packet generator (pktgen), towards the far side (pktgen's count; the TAP is checked to have "
        "received them all), and the far side's, by bench/frame_blaster.py on the TAP, towards the "
        "guest (what the guest's eth0 received). "
        + ("Guest ↔ guest: a second guest under the same VMM and path, on a second TAP on the bridge, "
           "serves the same TCP ports with busybox nc (`vireo.net-serve`), and the first measures TCP "
           "and the round trip against it (← : the second guest sends). " if paired else "")
        + f"{runs} runs of each, interleaved; median (min–max). Throughput in MiB/s and thousands of "
        "frames a second, higher is better; the round trip in ms, lower is better.",
        "",
        table_row(["figure", *vmms, *(f"{v} / {p}" for v, p in pairs)]),
        table_row(["---", *("---:" for _ in (*vmms, *pairs))]),
    ]
    median = lambda vmm, figure: Sample(results[vmm][figure]).median
    for figure in (*FIGURES, "rtt-ms", *FRAME_FIGURES, *pair_figures):
        fmt = "{:.3f}" if figure in round_trips else "{:.1f}"
        name = FIGURE_TEXT[figure]
        lines.append(table_row([name, *(cell(results[vmm][figure], fmt) for vmm in vmms),
                                *(f"{ratio(median(v, figure), median(p, figure)):.2f}" for v, p in pairs)]))
    lines += ["", "| goal | measured | verdict |", "| --- | --- | --- |"]
    for vireo, peer in pairs:
        worst = min(ratio(median(vireo, f), median(peer, f)) for f in throughput)
        rtt = max(ratio(median(vireo, f), median(peer, f)) for f in round_trips)
        lines.append(f"| {vireo}: throughput ≥ 1.0 × {peer}, every row | lowest {worst:.2f} | "
                     f"{verdict(worst >= 1.0)} |")
        lines.append(f"| {vireo}: round trip ≤ 1.0 × {peer}{', both' if paired else ''} | "
                     f"{'highest ' if paired else ''}{rtt:.2f} | {verdict(rtt <= 1.0)} |")
        frames = min(ratio(median(vireo, f), median(peer, f)) for f in FRAME_FIGURES)
        lines.append(f"| {vireo}: small-frame rate ≥ 1.0 × {peer}, each way | lowest {frames:.2f} | "
                     f"{verdict(frames >= 1.0)} |")
    if vhost_note:
        lines += ["", f"vhost-net was not measured: {vhost_note}."]
    lines += ["", "Commands (`vm.json`, `vm-vhost.json`: the same kernel, initrd and command line, "
              "`\"vhost\": false` and `true`; `guest/` is the image folder; NS the benchmark's "
              "namespace; the guest pair's VMs differ in their command line, TAP and MAC: "
              f"`{cmds.roles['client'][0].split(' loglevel=4 ')[1]}` and "
              f"`{cmds.roles['server'][0].split(' loglevel=4 ')[1]}` on {PEER_TAP}):", "", "```sh"]
    for vmm in vmms:
        lines.append(shown_command(cmds.argv(vmm), build, {str(cmds.guest.kernel.parent) + "/": "guest/",
                                                           str(cmds.workdir) + "/": "",
                                                           cmds.wire.namespace: "NS"}))
    lines += ["```", ""]
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build", help="build directory (bin/ inside)")
    parser.add_argument("--runs", type=int, default=5, help="runs per VMM")
    parser.add_argument("--output", help="Markdown file whose net-bench section is rewritten")
    parser.add_argument("--qemu", default="qemu-system-x86_64", help="QEMU binary")
    # The guest pair's client in the one-CPU emulated KVM moves its 128 MiB
    # at 0.2-1 MiB/s with both guests on the one CPU: more than 10 minutes.
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per VM run")
    parser.add_argument("--vcpus", type=int, default=VCPUS, help="the guest's vCPUs")
    parser.add_argument("--only", action="append", choices=[VIREO, QEMU, VIREO_VHOST, QEMU_VHOST],
                        help="run only this VMM variant (repeatable; all by default)")
    parser.add_argument("--append", default="", help="more for the guest kernel's command line")
    parser.add_argument("--no-pair", action="store_true", help="leave out the guest pair (guest ↔ guest)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.vcpus < 1:
        parser.error("--vcpus must be at least 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    repo = Path(__file__).resolve().parent.parent
    build = Path(args.build)
    if why := linux_kvm_missing(build):
        print(f"SKIP: {why}", file=sys.stderr)
        return EXIT_SKIP
    for program in (args.qemu, "socat", "ip"):
        if shutil.which(program) is None:
            print(f"SKIP: {program} is not installed", file=sys.stderr)
            return EXIT_SKIP
    if not (build / "bin" / "vireo-vmm").exists():
        print(f"net_bench: {build}/bin/vireo-vmm is not built (ninja -C {build})", file=sys.stderr)
        return 2
    build = build.resolve()
    command = shlex.join(["python3", "bench/net_bench.py", *argv])

    def measure(children: Children, workdir: Path) -> None:
        guest = build_guest(workdir, modules=("pktgen",))
        vhost_note = vhost_net_problem()
        vmms = [VIREO, QEMU] + ([] if vhost_note else [VIREO_VHOST, QEMU_VHOST])
        if args.only:
            vmms = [vmm for vmm in vmms if vmm in args.only]
        facts = host_facts(args.qemu, repo, build)
        started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        load_start = load_average()
        with Wire(children, workdir) as wire:
            cmds = Commands(build, args.qemu, workdir, guest, wire, args.vcpus, args.append)
            results = bench(Runner(children, workdir, args.timeout), cmds, vmms, args.runs, not args.no_pair)
            body = section(results, build, cmds, args.runs, vhost_note)
        publish(args.output, body, title=TITLE, script="bench/net_bench.py",
                markers=(BEGIN_MARKER, END_MARKER), command=command, started=started,
                interleaving="Runs interleaved, the same image and the same TAP for all.", facts=facts,
                load_start=load_start, progress=progress)

    return run_guarded(measure, progress, "net-bench-")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
