#!/usr/bin/env python3
"""Real Linux boot: Vireo side by side with QEMU q35 and QEMU microvm, on the
same kernel, the same initramfs and the same KVM, in one run.

    python3 bench/linux_boot_bench.py --build build --runs 10 --output docs/benchmarks.md

The guest is scripts/build-linux-guest.sh's image (Debian's kernel, a busybox
initramfs) with `vireo.poweroff` on its command line: its /init loads the
virtio modules, prints its banner and powers off. Two measurements, each run
interleaved (Vireo, q35, microvm, Vireo, ...) so that all see the same load:

  boot    process start -> the line that ends /init ("vireo.poweroff on the
          command line"), and -> process exit after the ACPI power-off
  memory  the VMM's resident memory beyond the guest RAM it touched, with the
          guest idle at its shell prompt (/proc/<pid>/smaps, guest RAM
          anonymous memory in every VMM)

On a machine without /dev/kvm, run it inside the emulated KVM:
scripts/emulated-kvm --share docs python3 bench/linux_boot_bench.py ...
Figures there are at emulation speed: only the ratios mean anything.
Exits 77 (skip) when /dev/kvm or qemu-system-x86_64 is missing.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import bench_common
from bench_common import (EXIT_SKIP, BenchError, Children, Runner, Sample, host_facts, linux_kvm_missing, load_average,
                          ratio, run_checked, run_guarded, shown_command, verdict)
from vmm_bench import MemoryUse, parse_smaps

BEGIN_MARKER = "<!-- linux-boot-bench:begin -->"
END_MARKER = "<!-- linux-boot-bench:end -->"
TITLE = "Linux boot: Vireo against QEMU q35 and microvm"

# Goals (issue "Real Linux guests under Vireo").
Q35_GOAL = 0.5  # Vireo start -> end of init <= 0.5 x QEMU q35's
MICROVM_GOAL = 1.0  # ... <= 1.0 x QEMU microvm's
OVERHEAD_GOAL_KIB = 5 * 1024

VCPUS = 2
MEMORY_MIB = 512
END_OF_INIT = b"vireo.poweroff on the command line"
SHELL_READY = b"shell on the console"
VMMS = ("Vireo", "QEMU q35", "QEMU microvm")


def progress(message: str) -> None:
    print(f"[linux-boot-bench] {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Guest:
    kernel: Path
    initrd: Path
    cmdline: str


def build_guest(workdir: Path, modules: tuple[str, ...] = ()) -> Guest:
    """scripts/build-linux-guest.sh's image, with `modules` loaded at boot too."""
    output = workdir / "guest"
    script = Path(__file__).resolve().parent.parent / "scripts" / "build-linux-guest.sh"
    extra = [argument for module in modules for argument in ("--module", module)]
    result = subprocess.run([str(script), "--output", str(output), *extra], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise BenchError(f"{script} failed:\n{result.stdout}\n{result.stderr}")
    return Guest(output / "vmlinuz", output / "initrd.img", (output / "cmdline.txt").read_text().strip())


class Commands:
    def __init__(self, build: Path, qemu: str, workdir: Path, guest: Guest) -> None:
        self.build, self.qemu, self.workdir, self.guest = build, qemu, workdir, guest
        self._configs = 0

    def vireo(self, cmdline: str) -> list[str]:
        """vireo-vmm with a VM definition, as `vireo run` starts it (and as the
        memory measurement needs: the VMM process itself)."""
        definition = {
            "vcpus": VCPUS,
            "memory_mib": MEMORY_MIB,
            "boot": {"kernel": str(self.guest.kernel), "initrd": str(self.guest.initrd),
                     "cmdline": cmdline},
            "console": {"output": "stdio", "input": True},
        }
        self._configs += 1
        path = self.workdir / f"vm{self._configs}.json"
        path.write_text(json.dumps(definition))
        return [str(self.build / "bin" / "vireo-vmm"), "--config", str(path)]

    def qemu_vm(self, machine: str, cmdline: str) -> list[str]:
        # The same devices as Vireo's VM: a serial console and a virtio-rng on
        # PCI; guest RAM anonymous memory, as Vireo's; no NIC, no display.
        machine_arg = {"QEMU q35": "q35", "QEMU microvm": "microvm,pcie=on,rtc=on"}[machine]
        return [self.qemu, "-nodefaults", "-no-user-config", "-accel", "kvm", "-cpu", "host",
                "-smp", str(VCPUS), "-M", machine_arg, "-m", f"{MEMORY_MIB}M",
                "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
                "-device", "virtio-rng-pci,disable-legacy=on",
                "-kernel", str(self.guest.kernel), "-initrd", str(self.guest.initrd),
                "-append", cmdline]

    def argv(self, vmm: str, cmdline: str) -> list[str]:
        return self.vireo(cmdline) if vmm == "Vireo" else self.qemu_vm(vmm, cmdline)


def display(argv: list[str], build: Path, guest: Guest) -> str:
    text = shown_command(argv, build, {str(guest.kernel.parent) + "/": "guest/"})
    for index in range(1, 100):
        text = text.replace(f"{guest.kernel.parent.parent}/vm{index}.json", "vm.json")
    return text


@dataclasses.dataclass
class BootRuns:
    init_ms: list[float] = dataclasses.field(default_factory=list)
    exit_ms: list[float] = dataclasses.field(default_factory=list)


def bench_boot(runner: Runner, cmds: Commands, runs: int) -> dict[str, BootRuns]:
    cmdline = f"{cmds.guest.cmdline} vireo.poweroff"
    results = {vmm: BootRuns() for vmm in VMMS}
    for i in range(runs):
        for vmm in VMMS:
            argv = cmds.argv(vmm, cmdline)

            def powered_off(result, vmm=vmm, argv=argv) -> None:
                if result.mark_ns is None or result.status != 0:
                    raise BenchError(f"{vmm}: no power-off after the end of init (status {result.status}):"
                                     f" {shlex.join(argv)}\n{result.output[-3000:]}\n{result.stderr[-1500:]}")

            result = run_checked(runner, argv, powered_off, progress, mark=END_OF_INIT)
            results[vmm].init_ms.append(result.mark_ns / 1e6)
            results[vmm].exit_ms.append(result.exit_ns / 1e6)
        progress(f"boot: round {i + 1} of {runs} done")
    return results


def bench_memory(runner: Runner, cmds: Commands, runs: int, settle_s: float) -> dict[str, list[MemoryUse]]:
    results: dict[str, list[MemoryUse]] = {vmm: [] for vmm in VMMS}
    for i in range(runs):
        for vmm in VMMS:
            argv = cmds.argv(vmm, cmds.guest.cmdline)
            measured: list[MemoryUse] = []

            def measure(pid: int, measured=measured) -> None:
                time.sleep(settle_s)
                measured[:] = [parse_smaps(Path(f"/proc/{pid}/smaps").read_text(), MEMORY_MIB * 1024)]

            def powered_off(result, vmm=vmm, argv=argv) -> None:
                if result.status != 0:
                    raise BenchError(f"{vmm}: the shell's poweroff did not power off (status {result.status}):"
                                     f" {shlex.join(argv)}\n{result.output[-3000:]}")

            run_checked(runner, argv, powered_off, progress, wait_for=SHELL_READY, on_ready=measure,
                        then_send=b"poweroff\n")
            results[vmm] += measured
        progress(f"memory: round {i + 1} of {runs} done")
    return results


def fmt(values: list[float]) -> str:
    sample = Sample(values)
    return f"{sample.median:.0f} ({sample.spread('{:.0f}')})"


def boot_section(boot: dict[str, BootRuns], memory: dict[str, list[MemoryUse]], build: Path,
                 cmds: Commands) -> list[str]:
    vireo_init = Sample(boot["Vireo"].init_ms).median
    q35 = ratio(vireo_init, Sample(boot["QEMU q35"].init_ms).median)
    microvm = ratio(vireo_init, Sample(boot["QEMU microvm"].init_ms).median)
    lines = [
        "### Linux: start to the end of init, to power-off, and memory (real Linux guest)",
        "",
        f"scripts/build-linux-guest.sh's image, {VCPUS} vCPUs, {MEMORY_MIB} MiB, command line "
        f"`{cmds.guest.cmdline} vireo.poweroff`. End of init = the line `vireo.poweroff on the command "
        "line` read from the VMM's stdout; power-off = `waitpid` returned. Median (min–max), ms; "
        "ratio of medians to Vireo's.",
        "",
        "| VMM | runs | start → end of init | start → power-off | Vireo / this (end of init) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for vmm in VMMS:
        runs = boot[vmm]
        lines.append(f"| {vmm} | {len(runs.init_ms)} | {fmt(runs.init_ms)} | {fmt(runs.exit_ms)} | "
                     f"{ratio(vireo_init, Sample(runs.init_ms).median):.2f} |")
    lines += [
        "",
        "Memory with the guest at its shell prompt: Rss beyond the guest RAM's (MiB, median).",
        "",
        "| VMM | runs | total Rss | guest-RAM Rss | overhead (Rss) | of which file / anon |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for vmm in VMMS:
        samples = memory[vmm]
        med = lambda field: Sample([getattr(s, field) for s in samples]).median / 1024
        overhead = Sample([s.overhead_kib for s in samples]).median / 1024
        lines.append(f"| {vmm} | {len(samples)} | {med('total_kib'):.1f} | {med('guest_ram_kib'):.1f} | "
                     f"{overhead:.1f} | {med('file_kib'):.1f} / {med('anon_kib'):.1f} |")
    vireo_overhead = Sample([s.overhead_kib for s in memory["Vireo"]]).median
    lines += [
        "",
        "| goal | measured | verdict |",
        "| --- | --- | --- |",
        f"| start → end of init ≤ 0.5 × QEMU q35 | {q35:.2f} | {verdict(q35 <= Q35_GOAL)} |",
        f"| start → end of init ≤ 1.0 × QEMU microvm | {microvm:.2f} | {verdict(microvm <= MICROVM_GOAL)} |",
        f"| VMM overhead ≤ 5 MiB | {vireo_overhead / 1024:.1f} MiB | "
        f"{verdict(vireo_overhead <= OVERHEAD_GOAL_KIB)} |",
        "",
        "Commands (`vm.json`: the same kernel, initrd and command line, "
        f"{VCPUS} vCPUs, {MEMORY_MIB} MiB; `guest/` is the image folder):",
        "",
        "```sh",
    ]
    lines += [display(cmds.argv(vmm, f"{cmds.guest.cmdline} vireo.poweroff"), build, cmds.guest)
              for vmm in VMMS]
    lines += ["```", ""]
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build", help="build directory (bin/ inside)")
    parser.add_argument("--runs", type=int, default=10, help="runs per VMM and figure")
    parser.add_argument("--output", help="Markdown file whose linux-boot-bench section is rewritten")
    parser.add_argument("--qemu", default="qemu-system-x86_64", help="QEMU binary")
    parser.add_argument("--timeout", type=float, default=300, help="seconds allowed per VM run")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds between the shell prompt and reading smaps")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    repo = Path(__file__).resolve().parent.parent
    build = Path(args.build)
    if why := linux_kvm_missing(build):
        print(f"SKIP: {why}", file=sys.stderr)
        return EXIT_SKIP
    if shutil.which(args.qemu) is None:
        print(f"SKIP: {args.qemu} is not installed", file=sys.stderr)
        return EXIT_SKIP
    if not (build / "bin" / "vireo-vmm").exists():
        print(f"linux_boot_bench: {build}/bin/vireo-vmm is not built (ninja -C {build})", file=sys.stderr)
        return 2
    build = build.resolve()
    command = shlex.join(["python3", "bench/linux_boot_bench.py", *argv])

    def measure(children: Children, workdir: Path) -> None:
        guest = build_guest(workdir)
        runner = Runner(children, workdir, args.timeout)
        cmds = Commands(build, args.qemu, workdir, guest)
        facts = host_facts(args.qemu, repo, build)
        started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        load_start = load_average()
        boot = bench_boot(runner, cmds, args.runs)
        memory = bench_memory(runner, cmds, args.runs, args.settle)
        section = boot_section(boot, memory, build, cmds)
        bench_common.publish(
            args.output, section, title=TITLE, script="bench/linux_boot_bench.py",
            markers=(BEGIN_MARKER, END_MARKER), command=command, started=started,
            interleaving="Runs interleaved (Vireo, q35, microvm, Vireo, ...), the same files for all three.",
            facts=facts, load_start=load_start, progress=progress)

    return run_guarded(measure, progress, "linux-boot-bench-")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
