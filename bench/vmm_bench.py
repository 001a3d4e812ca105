#!/usr/bin/env python3
"""VMM benchmarks: vireo-vmm side by side with QEMU/KVM on the same guest file.

    python3 bench/vmm_bench.py --build build --runs 10 --output docs/benchmarks.md

Three measurements, each interleaved run by run (vireo, QEMU, vireo, ...) so
that both see the same host load:

  boot    process start -> first serial byte, and -> process exit, for the
          smoke guest: vireo-vmm, `vireo run`, QEMU -M microvm, QEMU -M q35.
  memory  resident memory of a live VM (uart_echo waiting for input): total
          Rss, Rss of the guest-RAM mapping, and the difference (the VMM's own
          cost), for 256 MiB and 4 GiB of guest RAM.
  exits   the exit_bench guest's PIO / MMIO / virtio-notify round trips, from
          ring 0 and ring 3, vireo-vmm against QEMU microvm.

Prints a table and, with --output, rewrites the text between the markers
<!-- vmm-bench:begin --> and <!-- vmm-bench:end --> of that Markdown file
(creating the file or appending the section if needed); the rest is kept.
Exits 77 (skip) when /dev/kvm or qemu-system-x86_64 is missing. Every child
runs in its own process group, killed on any failure, Ctrl-C or SIGTERM.
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
import statistics
import sys
import time
from pathlib import Path

import bench_common
from bench_common import (EXIT_SKIP, BenchError, Children, Runner, Sample, check_guest_passed, host_facts,
                          load_average, print_tables, ratio, run_guarded, shown_build, shown_command, verdict)

BEGIN_MARKER = "<!-- vmm-bench:begin -->"
END_MARKER = "<!-- vmm-bench:end -->"

# Goals (from the benchmark issue).
BOOT_RATIO_GOAL = 1 / 3  # vireo-vmm time <= 1/3 of QEMU microvm's
OVERHEAD_GOAL_KIB = 5 * 1024  # VMM Rss beyond the guest RAM it touched (Firecracker's bar)
EXIT_RATIO_GOAL = 1.0  # vireo exit cost <= QEMU's

VCPUS = 1
BOOT_MEMORY_MIB = 256
MEMORY_SIZES_MIB = (256, 4096)
EXIT_METRICS = ("pio_ring0", "pio_ring3", "mmio_ring0", "mmio_ring3", "notify_ring0", "notify_ring3")
# Not a VMM exit (a #UD from ring 3 into the guest's own handler): a control
# figure that shows how far the host load alone moves the numbers.
CONTROL_METRIC = "ring0_call"


# QEMU flags common to every run: guest/run-in-qemu.sh's, plus -nodefaults and
# -no-user-config so that QEMU builds no device the guest does not use.
QEMU_COMMON = [
    "-nodefaults", "-no-user-config", "-accel", "kvm", "-smp", str(VCPUS),
    "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
    "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
]
QEMU_MACHINES = {"microvm": "microvm,pcie=on", "q35": "q35"}


# ---------------------------------------------------------------- smaps


@dataclasses.dataclass
class MemoryUse:
    total_kib: int
    guest_ram_kib: int
    guest_ram_size_kib: int
    file_kib: int  # the binary and shared libraries (shared with other processes)
    anon_kib: int  # heap, stacks, anonymous mappings
    pss_kib: int = 0  # proportional set size, shared pages divided among their users
    guest_ram_pss_kib: int = 0
    by_file: dict[str, int] = dataclasses.field(default_factory=dict)  # file-backed Rss per file

    @property
    def overhead_kib(self) -> int:
        return self.total_kib - self.guest_ram_kib

    @property
    def overhead_pss_kib(self) -> int:
        return self.pss_kib - self.guest_ram_pss_kib


def parse_smaps(text: str, ram_size_kib: int) -> MemoryUse:
    """Sums Rss over /proc/<pid>/smaps, splitting off guest RAM and the
    file-backed mappings. Guest RAM is the one anonymous mapping (or memfd)
    of exactly the guest's RAM size: both VMMs map it in one piece, and
    neither names it on a kernel without CONFIG_ANON_VMA_NAME (Debian 12's)."""
    header = re.compile(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$")
    use = MemoryUse(0, 0, 0, 0, 0)
    name = None
    is_ram = False
    ram_mappings = 0
    for line in text.splitlines():
        match = header.match(line)
        if match:
            name = match.group(1)
            is_ram = False
            continue
        if name is None:
            continue
        key, _, value = line.partition(":")
        if key not in ("Rss", "Size", "Pss"):
            continue
        kib = int(value.split()[0])
        if key == "Size":
            is_ram = kib == ram_size_kib and (name == "" or name.startswith("/memfd:"))
            if is_ram:
                use.guest_ram_size_kib += kib
                ram_mappings += 1
            continue
        if key == "Pss":
            use.pss_kib += kib
            if is_ram:
                use.guest_ram_pss_kib += kib
            continue
        use.total_kib += kib
        if is_ram:
            use.guest_ram_kib += kib
        elif name.startswith("/"):
            use.file_kib += kib
            use.by_file[name] = use.by_file.get(name, 0) + kib
        else:
            use.anon_kib += kib
    if ram_mappings != 1:
        raise BenchError(f"{ram_mappings} anonymous mappings of {ram_size_kib} KiB (the guest's RAM) "
                         "in smaps, not one")
    return use


# ---------------------------------------------------------------- VM commands


def vm_definition(kernel: str, memory_mib: int, cmdline: str, console_input: bool) -> dict:
    return {
        "vcpus": VCPUS,
        "memory_mib": memory_mib,
        "boot": {"kernel": kernel, "cmdline": cmdline},
        "console": {"output": "stdio", "input": console_input},
    }


def vm_json_example(build: Path) -> dict:
    return vm_definition(f"{shown_build(build)}/guest/smoke.elf", BOOT_MEMORY_MIB,
                         f"vireo.cpus={VCPUS} vireo.mem_mib={BOOT_MEMORY_MIB}", False)


class Commands:
    def __init__(self, build: Path, qemu: str, workdir: Path) -> None:
        self.build = build
        self.qemu = qemu
        self.workdir = workdir
        self.vmm = build / "bin" / "vireo-vmm"
        self.cli = build / "bin" / "vireo"
        self._configs = 0

    def guest(self, name: str) -> Path:
        return self.build / "guest" / f"{name}.elf"

    def vireo_vmm(self, guest: str, memory_mib: int, cmdline: str, console_input: bool) -> list[str]:
        config = vm_definition(str(self.guest(guest)), memory_mib, cmdline, console_input)
        self._configs += 1
        path = self.workdir / f"vm{self._configs}.json"
        path.write_text(json.dumps(config))
        return [str(self.vmm), "--config", str(path)]

    def vireo_run(self, guest: str, memory_mib: int, cmdline: str) -> list[str]:
        return [str(self.cli), "run", "--kernel", str(self.guest(guest)), "--cpus", str(VCPUS),
                "--memory", f"{memory_mib}M", "--cmdline", cmdline]

    def qemu_vm(self, machine: str, guest: str, memory_mib: int, cmdline: str,
                extra: list[str] | None = None) -> list[str]:
        argv = [self.qemu, *QEMU_COMMON, "-M", QEMU_MACHINES[machine], "-m", f"{memory_mib}M",
                "-kernel", str(self.guest(guest))]
        if cmdline:
            argv += ["-append", cmdline]
        return argv + (extra or [])


def display_command(argv: list[str], build: Path) -> str:
    """argv for the report, with the temporary VM definition shown as vm.json."""
    text = shown_command(argv, build)
    return re.sub(r"/\S+/vm\d+\.json", "vm.json", text)


# ---------------------------------------------------------------- benchmarks


@dataclasses.dataclass
class BootVariant:
    label: str
    argv: list[str]
    runs: int
    first_byte_ms: list[float] = dataclasses.field(default_factory=list)
    last_byte_ms: list[float] = dataclasses.field(default_factory=list)
    exit_ms: list[float] = dataclasses.field(default_factory=list)

    def guest_ms(self) -> list[float]:
        return [last - first for first, last in zip(self.first_byte_ms, self.last_byte_ms)]

    def teardown_ms(self) -> list[float]:
        return [done - last for last, done in zip(self.last_byte_ms, self.exit_ms)]


def bench_boot(runner: Runner, cmds: Commands, runs: int, q35_runs: int) -> list[BootVariant]:
    cmdline = f"vireo.cpus={VCPUS} vireo.mem_mib={BOOT_MEMORY_MIB}"
    variants = [
        BootVariant("vireo-vmm", cmds.vireo_vmm("smoke", BOOT_MEMORY_MIB, cmdline, False), runs),
        BootVariant("vireo run", cmds.vireo_run("smoke", BOOT_MEMORY_MIB, cmdline), runs),
        BootVariant("QEMU microvm", cmds.qemu_vm("microvm", "smoke", BOOT_MEMORY_MIB, cmdline), runs),
        BootVariant("QEMU q35", cmds.qemu_vm("q35", "smoke", BOOT_MEMORY_MIB, cmdline), q35_runs),
    ]
    for i in range(max(v.runs for v in variants)):
        for variant in variants:
            if i >= variant.runs:
                continue
            result = runner.run(variant.argv, timeout=max(runner.timeout, 120))
            check_guest_passed(result, variant.argv)
            if result.first_byte_ns is None:
                raise BenchError(f"no output at all: {shlex.join(variant.argv)}")
            variant.first_byte_ms.append(result.first_byte_ns / 1e6)
            variant.last_byte_ms.append(result.last_byte_ns / 1e6)
            variant.exit_ms.append(result.exit_ns / 1e6)
        progress(f"boot: round {i + 1} done")
    return variants


@dataclasses.dataclass
class MemoryVariant:
    label: str
    memory_mib: int
    argv: list[str]
    samples: list[MemoryUse] = dataclasses.field(default_factory=list)

    def sample(self, field: str) -> Sample:
        return Sample([getattr(s, field) for s in self.samples])


def bench_memory(runner: Runner, cmds: Commands, runs: int, settle_s: float) -> list[MemoryVariant]:
    variants = []
    for memory_mib in MEMORY_SIZES_MIB:
        variants.append(MemoryVariant("vireo-vmm", memory_mib,
                                      cmds.vireo_vmm("uart_echo", memory_mib, "", True)))
        variants.append(MemoryVariant("QEMU microvm", memory_mib,
                                      cmds.qemu_vm("microvm", "uart_echo", memory_mib, "")))
    for i in range(runs):
        for variant in variants:
            def measure(pid: int, variant=variant) -> None:
                time.sleep(settle_s)  # let the VMM's threads reach their idle state
                smaps = Path(f"/proc/{pid}/smaps").read_text()
                variant.samples.append(parse_smaps(smaps, variant.memory_mib * 1024))
            result = runner.run(variant.argv, wait_for=b"READY\r\n", on_ready=measure,
                                then_send=b"hello\nquit\n")
            check_guest_passed(result, variant.argv)
            if "echo: hello" not in result.output:
                raise BenchError(f"uart_echo did not echo its input: {shlex.join(variant.argv)}")
        progress(f"memory: round {i + 1} done")
    return variants


@dataclasses.dataclass
class ExitVariant:
    label: str
    argv: list[str]
    ns: dict[str, list[float]] = dataclasses.field(default_factory=dict)


def bench_exits(runner: Runner, cmds: Commands, runs: int, iters: int) -> list[ExitVariant]:
    cmdline = f"bench.iters={iters}"
    variants = [
        ExitVariant("vireo-vmm", cmds.vireo_vmm("exit_bench", BOOT_MEMORY_MIB, cmdline, False)),
        ExitVariant("QEMU microvm", cmds.qemu_vm("microvm", "exit_bench", BOOT_MEMORY_MIB, cmdline,
                                                 extra=["-device", "virtio-rng-pci,disable-legacy=on"])),
    ]
    for i in range(runs):
        for variant in variants:
            result = runner.run(variant.argv)
            check_guest_passed(result, variant.argv)
            values = dict(re.findall(r"^BENCH (\w+)_ns=(\d+)", result.output, re.M))
            for metric in (*EXIT_METRICS, CONTROL_METRIC):
                if metric not in values:
                    raise BenchError(f"no 'BENCH {metric}_ns=' line (TSC frequency unknown or no "
                                     f"virtio-rng device?): {shlex.join(variant.argv)}\n{result.output}")
                variant.ns.setdefault(metric, []).append(float(values[metric]))
        progress(f"exits: round {i + 1} done")
    return variants


# ---------------------------------------------------------------- report


def fmt_ms(values: list[float]) -> str:
    s = Sample(values)
    return f"{s.median:.1f} ({s.spread('{:.1f}')})"


def fmt_mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def boot_section(variants: list[BootVariant], build: Path) -> list[str]:
    by = {v.label: v for v in variants}
    vmm, micro = by["vireo-vmm"], by["QEMU microvm"]
    lines = [
        "### Boot: process start to first serial byte and to exit (smoke guest)",
        "",
        f"Smoke guest, {VCPUS} vCPU, {BOOT_MEMORY_MIB} MiB, command line "
        f"`vireo.cpus={VCPUS} vireo.mem_mib={BOOT_MEMORY_MIB}`. Clock: `time.monotonic_ns()` just before "
        "the spawn; first/last byte = the read of the child's stdout pipe (unbuffered, `os.read`) that "
        "returned it; exit = `waitpid` returned, after stdout closed. The exit time splits into start → "
        "first byte, guest run (first → last byte: the guest's checks and its serial output, ~2 exits "
        "per byte) and teardown (last byte → exit: VM destruction, process exit). Median (min–max), ms.",
        "",
        "| VMM | runs | first serial byte | guest run | teardown | exit | ratio to QEMU microvm (first byte / exit) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for v in variants:
        rel = (f"{ratio(Sample(v.first_byte_ms).median, Sample(micro.first_byte_ms).median):.2f} / "
               f"{ratio(Sample(v.exit_ms).median, Sample(micro.exit_ms).median):.2f}")
        lines.append(f"| {v.label} | {len(v.exit_ms)} | {fmt_ms(v.first_byte_ms)} | {fmt_ms(v.guest_ms())} | "
                     f"{fmt_ms(v.teardown_ms())} | {fmt_ms(v.exit_ms)} | {rel} |")
    first = ratio(Sample(vmm.first_byte_ms).median, Sample(micro.first_byte_ms).median)
    done = ratio(Sample(vmm.exit_ms).median, Sample(micro.exit_ms).median)
    lines += [
        "",
        "| goal | measured | verdict |",
        "| --- | --- | --- |",
        f"| vireo-vmm: first serial byte ≤ 1/3 of QEMU microvm's | ratio {first:.2f} "
        f"({Sample(vmm.first_byte_ms).median:.1f} vs {Sample(micro.first_byte_ms).median:.1f} ms) | "
        f"{verdict(first <= BOOT_RATIO_GOAL)} |",
        f"| vireo-vmm: smoke guest exit ≤ 1/3 of QEMU microvm's | ratio {done:.2f} "
        f"({Sample(vmm.exit_ms).median:.1f} vs {Sample(micro.exit_ms).median:.1f} ms) | "
        f"{verdict(done <= BOOT_RATIO_GOAL)} |",
        "",
        "Commands (stdin /dev/null; `vm.json` = `" + json.dumps(vm_json_example(build), separators=(",", ":"))
        + "` (the kernel path is absolute in the real file); vireo-vmm has its default virtio-rng device, "
        "QEMU none):",
        "",
        "```sh",
    ]
    lines += [display_command(v.argv, build) for v in variants]
    lines += ["```", ""]
    return lines


def biggest_files(samples: list[MemoryUse], count: int) -> str:
    names = {name for s in samples for name in s.by_file}
    medians = {name: statistics.median(s.by_file.get(name, 0) for s in samples) for name in names}
    top = sorted(medians.items(), key=lambda item: -item[1])[:count]
    return ", ".join(f"{os.path.basename(name)} {kib / 1024:.2f}" for name, kib in top)


def memory_section(variants: list[MemoryVariant], build: Path, settle_s: float) -> list[str]:
    lines = [
        "### Memory: resident set of an idle VM",
        "",
        f"uart_echo guest ({VCPUS} vCPU) after it printed `READY` and is waiting for input "
        f"(stdin a pipe kept open), +{settle_s * 1000:.0f} ms; `/proc/<pid>/smaps` summed. Guest RAM is "
        "anonymous memory in both (QEMU's default RAM), the one mapping of the guest's RAM size. Overhead = total Rss − Rss of the guest-RAM mapping; split into "
        "file-backed (executable and shared libraries, shared with other processes) and anonymous "
        "(heap, stacks). The goal is on the Rss overhead; the Pss overhead (shared pages divided among "
        "the processes mapping them) is given for context. Neither includes KVM's kernel allocations "
        "(page tables, vCPU state). Median over the runs, MiB.",
        "",
        "| VMM | guest RAM | runs | total Rss | guest-RAM Rss | overhead (Rss) | of which file / anon | overhead (Pss) | goal | verdict |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for v in variants:
        overhead = Sample([s.overhead_kib for s in v.samples]).median
        is_vireo = v.label == "vireo-vmm"
        goal = "overhead ≤ 5 MiB" if is_vireo else "—"
        result = verdict(overhead <= OVERHEAD_GOAL_KIB) if is_vireo else "—"
        lines.append(
            f"| {v.label} | {v.memory_mib} MiB | {len(v.samples)} | {fmt_mib(v.sample('total_kib').median)} | "
            f"{fmt_mib(v.sample('guest_ram_kib').median)} | {fmt_mib(overhead)} | "
            f"{fmt_mib(v.sample('file_kib').median)} / {fmt_mib(v.sample('anon_kib').median)} | "
            f"{fmt_mib(Sample([s.overhead_pss_kib for s in v.samples]).median)} | {goal} | {result} |")
    largest = max(v.memory_mib for v in variants)
    idle = [v for v in variants if v.label == "vireo-vmm" and v.memory_mib == largest][0]
    ram_mib = idle.sample("guest_ram_kib").median / 1024
    lines += [
        "",
        f"| goal | measured | verdict |",
        "| --- | --- | --- |",
        f"| an idle {largest // 1024} GiB vireo guest costs the host almost nothing | guest-RAM Rss "
        f"{ram_mib:.1f} MiB of {largest} MiB ({100 * ram_mib / largest:.1f} %) | "
        f"{verdict(ram_mib <= 0.01 * largest)} (≤ 1 %) |",
        "",
    ]
    for v in variants:
        if v.memory_mib == min(MEMORY_SIZES_MIB):
            lines.append(f"Largest file-backed Rss, {v.label} (MiB): {biggest_files(v.samples, 6)}.")
            lines.append("")
    lines += ["Commands (stdin: `hello\\nquit\\n` written after `READY`; vm.json as above with "
              "`uart_echo.elf`, no command line, `\"input\":true` and the memory size):", "", "```sh"]
    lines += [display_command(v.argv, build) for v in variants]
    lines += ["```", ""]
    return lines


def exits_section(variants: list[ExitVariant], build: Path, iters: int) -> list[str]:
    vmm, qemu = variants
    lines = [
        "### Exits: PIO, MMIO and virtio notify round trips (exit_bench guest)",
        "",
        f"exit_bench, {VCPUS} vCPU, {BOOT_MEMORY_MIB} MiB, `bench.iters={iters}`: each run reports, per "
        "figure, the median over 5 batches of the mean cost of one guest write (port 0x80; MMIO "
        "0xd0000000, an unclaimed spot; the virtio-rng queue 0 notify address, an ioeventfd in both "
        "VMMs), loop included. Below: median over runs of those, ns, (min–max); ratio of the medians.",
        "",
        "| figure | vireo-vmm (ns) | QEMU microvm (ns) | vireo / QEMU | goal | verdict |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for metric in (*EXIT_METRICS, CONTROL_METRIC):
        a, b = Sample(vmm.ns[metric]), Sample(qemu.ns[metric])
        r = ratio(a.median, b.median)
        if metric == CONTROL_METRIC:
            goal, result = "control: no VMM involved", "—"
        else:
            goal, result = "≤ 1.0", verdict(r <= EXIT_RATIO_GOAL)
        lines.append(f"| {metric} | {a.median:.0f} ({a.spread('{:.0f}')}) | {b.median:.0f} ({b.spread('{:.0f}')}) "
                     f"| {r:.3f} | {goal} | {result} |")
    lines += ["", f"Runs: {len(vmm.ns[CONTROL_METRIC])} each, interleaved.", "", "```sh"]
    lines += [display_command(v.argv, build) for v in variants]
    lines += ["```", ""]
    return lines


def render(facts: dict[str, str], command: str, started: str, loads: tuple[str, str],
           sections: list[list[str]]) -> str:
    lines = [
        "## VMM: vireo-vmm against QEMU",
        "",
        "Generated by `bench/vmm_bench.py`; do not edit between the markers, re-run instead:",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Measured {started}. Every figure below compares runs made in the same invocation, "
        "interleaved (vireo, QEMU, vireo, ...), on the same guest ELF file.",
        "",
        "| host | |",
        "| --- | --- |",
    ]
    lines += [f"| {key} | {value} |" for key, value in facts.items()]
    lines += [f"| load average (1/5/15 min) | {loads[0]} at start, {loads[1]} at end "
              "(the machine is shared: other builds may run during the benchmark) |", ""]
    for section in sections:
        lines += section
    return "\n".join(lines).rstrip() + "\n"


def update_document(path: Path, section: str) -> None:
    bench_common.update_document(path, section, BEGIN_MARKER, END_MARKER)


# ---------------------------------------------------------------- console output


def progress(message: str) -> None:
    print(f"[vmm-bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build", help="build directory (bin/ and guest/ inside)")
    parser.add_argument("--runs", type=int, default=10, help="runs per VMM and figure (at least 10)")
    parser.add_argument("--boot-runs", type=int,
                        help="boot runs of vireo-vmm, vireo run and QEMU microvm (default: 3 x --runs; they are cheap)")
    parser.add_argument("--q35-runs", type=int, help="boot runs of QEMU q35, ~4 s each (default: --runs)")
    parser.add_argument("--exit-iters", type=int, default=1000, help="exit_bench bench.iters")
    parser.add_argument("--only", action="append", choices=("boot", "memory", "exits"),
                        help="run only this part (repeatable); --output then needs all three")
    parser.add_argument("--output", help="Markdown file whose vmm-bench section is rewritten")
    parser.add_argument("--qemu", default="qemu-system-x86_64", help="QEMU binary")
    parser.add_argument("--timeout", type=float, default=60, help="seconds allowed per VM run")
    parser.add_argument("--settle", type=float, default=0.2, help="seconds between READY and reading smaps")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.exit_iters < 1:
        parser.error("--runs and --exit-iters must be at least 1")
    if args.runs < 10:
        progress(f"warning: --runs {args.runs} is below the 10 runs the published figures need")
    if args.q35_runs is None:
        args.q35_runs = args.runs
    if args.boot_runs is None:
        args.boot_runs = 3 * args.runs
    if args.output and args.only:
        parser.error("--output rewrites the whole VMM section: run all parts (drop --only)")
    return args


def missing_prerequisites(args: argparse.Namespace, build: Path) -> str | None:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is missing or not usable by this user"
    if shutil.which(args.qemu) is None:
        return f"{args.qemu} is not installed"
    return None


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    repo = Path(__file__).resolve().parent.parent
    build = Path(args.build)
    skip = missing_prerequisites(args, build)
    if skip:
        print(f"SKIP: VMM benchmarks: {skip}", file=sys.stderr)
        return EXIT_SKIP
    needed = [build / "bin" / "vireo-vmm", build / "bin" / "vireo"] + [
        build / "guest" / f"{g}.elf" for g in ("smoke", "uart_echo", "exit_bench")]
    absent = [str(p) for p in needed if not p.exists()]
    if absent:
        print(f"vmm_bench: not built: {', '.join(absent)} (ninja -C {build} vireo vireo-vmm guests)",
              file=sys.stderr)
        return 2
    build = build.resolve()

    parts = args.only or ["boot", "memory", "exits"]
    command = shlex.join(["python3", "bench/vmm_bench.py", *argv])

    def measure(children: Children, workdir: Path) -> None:
        runner = Runner(children, workdir, args.timeout)
        cmds = Commands(build, args.qemu, workdir)
        facts = host_facts(args.qemu, repo, build)
        started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        load_start = load_average()
        sections = []
        if "boot" in parts:
            sections.append(boot_section(bench_boot(runner, cmds, args.boot_runs, args.q35_runs), build))
        if "memory" in parts:
            sections.append(memory_section(bench_memory(runner, cmds, args.runs, args.settle), build,
                                           args.settle))
        if "exits" in parts:
            sections.append(exits_section(bench_exits(runner, cmds, args.runs, args.exit_iters), build,
                                          args.exit_iters))
        print_tables(sections)
        if args.output:
            update_document(Path(args.output),
                            render(facts, command, started, (load_start, load_average()), sections))
            progress(f"wrote the VMM section of {args.output}")

    return run_guarded(measure, progress, "vmm-bench-")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
