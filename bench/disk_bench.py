#!/usr/bin/env python3
"""Disk benchmarks: Vireo's block layer and virtio-blk side by side with QEMU's, on the same files.

    python3 bench/disk_bench.py --build build --runs 10 --output docs/benchmarks.md

Two measurements, each interleaved run by run (Vireo, QEMU, QEMU, Vireo, ...;
the order rotates every round) so that both see the same host load:

  tools   `vireo disk bench` against `qemu-img bench`, the same options meaning
          the same thing (count, depth, request size, read/write, step, cache
          mode), on the same files: 4 KiB "random" read and write at depth 1
          and 32, 1 MiB sequential at depth 8; on raw, on qcow2 pre-filled
          (every cluster allocated), qcow2 fresh (writes allocate) and a
          qcow2 overlay on a pre-filled qcow2 backing file (reads fall
          through, writes copy the rest of the cluster up). Cache mode none
          (O_DIRECT) where the file system allows it, and writeback. qemu-img runs with each of its AIO engines; a figure is
          compared with the fastest one (the median of each engine's runs).
  guest   the blk_bench guest's virtio-blk I/O loop (4 KiB sequential and
          scattered reads and writes at depth 1 and 32, 1 MiB sequential;
          polled, timed with the TSC; kicks as Linux decides them, with
          VIRTIO_F_EVENT_IDX) under vireo-vmm and QEMU -M microvm
          (aio=io_uring) on the same raw and qcow2 images.
  linux   real Linux (scripts/build-linux-guest.sh's image) running dd with
          O_DIRECT on /dev/vda, 4 KiB one at a time and eight at once, 1 MiB,
          under vireo-vmm and QEMU microvm, raw and qcow2.

Before every write run on a fresh or overlay image the tool gets a fresh copy
of the same template; in writeback mode every write run is followed by an
fsync of the file (outside the timing) so that no run inherits the previous
one's dirty pages.

Prints the tables and, with --output, rewrites for each part measured the
text between the markers <!-- disk-bench-PART:begin --> and
<!-- disk-bench-PART:end --> of that Markdown file (creating the file or
appending the section if needed); the rest is kept. On a machine without
/dev/kvm, run the guest and linux parts inside the emulated KVM:
scripts/emulated-kvm --share docs python3 bench/disk_bench.py --only guest ...
Exits 77 (skip) when a peer is missing: qemu-img for the tools part, /dev/kvm
or qemu-system-x86_64 for the guest and linux parts. Every child runs in its own process
group, killed on any failure, Ctrl-C or SIGTERM.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import mmap
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from bench_common import (EXIT_SKIP, BenchError, Children, Runner, Sample, check_guest_passed, host_facts, run_checked,
                          linux_kvm_missing,
                          load_average, print_tables, ratio, run_guarded, shown_build, shown_command, update_document,
                          verdict)
from linux_boot_bench import build_guest as build_linux_guest


# Goals (from the benchmark issue): Vireo's throughput against qemu-img's.
RAW_GOAL = 0.95
QCOW2_GOAL = 1.0

MIB = 1 << 20
IMAGE_SIZE = 1 << 30
FILL = 0xa5  # every byte of the pre-filled images
PATTERN = 0x5a  # what write runs write: not zero, so no tool may skip it as zeroes
# qemu-img bench has no random mode: "random" is a fixed step of an odd number
# of 4 KiB blocks (~158 MiB), which wraps at the end of the image (both tools
# do). On a power-of-two image it visits every 4 KiB block once before any
# block twice, each request far from the previous one, in the same order in
# both tools.
RANDOM_STEP = 40503 * 4096

GUEST_IMAGE_SIZE = 128 * MIB
GUEST_MEMORY_MIB = 256


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    size: int
    depth: int
    step: int | None  # None: sequential (step = size)
    # Requests per run, by (cache mode, write): each run a few tenths of a second here.
    counts: dict

    def count(self, cache: str, write: bool, scale: float) -> int:
        return max(1, int(self.counts[(cache, write)] * scale))


WORKLOADS = [
    Workload("4k-rand-qd1", 4096, 1, RANDOM_STEP,
             {("none", False): 3000, ("none", True): 2000,
              ("writeback", False): 50000, ("writeback", True): 10000}),
    Workload("4k-rand-qd32", 4096, 32, RANDOM_STEP,
             {("none", False): 20000, ("none", True): 20000,
              ("writeback", False): 100000, ("writeback", True): 20000}),
    Workload("1m-seq-qd8", MIB, 8, None,
             {("none", False): 1000, ("none", True): 1000,
              ("writeback", False): 5000, ("writeback", True): 1000}),
]


@dataclasses.dataclass(frozen=True)
class ImageKind:
    name: str
    format: str
    goal: float
    reads: bool
    writes: bool
    copy_per_write: bool  # a fresh copy of the template before every write run
    description: str


IMAGE_KINDS = [
    ImageKind("raw", "raw", RAW_GOAL, True, True, False,
              f"raw, 1 GiB, every byte {FILL:#x}; writes overwrite in place"),
    ImageKind("qcow2-full", "qcow2", QCOW2_GOAL, True, True, False,
              "qcow2 (64 KiB clusters) converted from the raw file: every cluster allocated; "
              "writes overwrite allocated clusters"),
    ImageKind("qcow2-fresh", "qcow2", QCOW2_GOAL, False, True, True,
              "new empty qcow2 (`qemu-img create`): the first write to a cluster allocates it "
              "(reads would only find holes, so none are measured)"),
    ImageKind("qcow2-backing", "qcow2", QCOW2_GOAL, True, True, True,
              "new empty qcow2 overlay on a copy of qcow2-full: reads fall through to the "
              "backing file; the first write to a cluster allocates it and copies the rest of "
              "the cluster up"),
]


# ---------------------------------------------------------------- files


def fill_file(path: Path, size: int, byte: int) -> None:
    chunk = bytes([byte]) * MIB
    with open(path, "wb") as file:
        for _ in range(size // MIB):
            file.write(chunk)
        file.flush()
        os.fsync(file.fileno())


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_synced(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    fsync_path(target)


def warm(path: Path) -> None:
    """Reads the file through the page cache (writeback reads then hit memory in both tools)."""
    with open(path, "rb") as file:
        while file.read(8 * MIB):
            pass


def direct_io_works(folder: Path) -> str | None:
    """None if O_DIRECT reads and writes work on `folder`'s file system, else why not."""
    probe = folder / ".odirect-probe"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600)
    except OSError as error:
        return f"open(O_DIRECT): {error.strerror}"
    try:
        buffer = mmap.mmap(-1, 4096)  # page-aligned
        buffer.write(b"\xa5" * 4096)
        os.pwrite(fd, buffer, 0)
        os.preadv(fd, [buffer], 0)
        return None
    except OSError as error:
        return f"O_DIRECT I/O: {error.strerror}"
    finally:
        os.close(fd)
        probe.unlink()


def filesystem_of(path: Path) -> str:
    """'ext4 on /dev/vda (block device vda: ...), mounted rw,...', from /proc/mounts and sysfs."""
    st_dev = path.stat().st_dev
    best = (("?", "?"), "?")
    best_len = -1
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount, fstype, options = line.split()[:4]
        mount = mount.replace("\\040", " ")
        try:
            if os.stat(mount).st_dev != st_dev:
                continue
        except OSError:
            continue
        if len(mount) > best_len:
            best, best_len = ((fstype, device), options), len(mount)
    (fstype, device), options = best
    block = Path(f"/sys/dev/block/{os.major(st_dev)}:{os.minor(st_dev)}")
    details = []
    if block.exists():
        disk = block.resolve()
        if (disk / "partition").exists():
            disk = disk.parent
        rotational = disk / "queue" / "rotational"
        scheduler = disk / "queue" / "scheduler"
        if rotational.exists():
            details.append("rotational" if rotational.read_text().strip() == "1" else "not rotational")
        if scheduler.exists():
            chosen = re.search(r"\[(\S+)\]", scheduler.read_text())
            details.append(f"scheduler {chosen.group(1) if chosen else '?'}")
        device = f"{device} (block device {disk.name}{': ' + ', '.join(details) if details else ''})"
    return f"{fstype} on {device}, mounted {options}"


class Images:
    """The benchmark's files in one folder, made with qemu-img (the reference tool)."""

    def __init__(self, folder: Path, qemu_img: str) -> None:
        self.folder = folder
        self.qemu_img = qemu_img

    def path(self, name: str) -> Path:
        return self.folder / name

    def qemu_img_run(self, *args: str) -> None:
        result = subprocess.run([self.qemu_img, *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise BenchError(f"qemu-img {shlex.join(args)} failed: {result.stderr.strip()}")

    def prepare_tools(self) -> None:
        progress("preparing the images (1 GiB raw, qcow2 copies)")
        fill_file(self.path("raw.img"), IMAGE_SIZE, FILL)
        self.qemu_img_run("convert", "-f", "raw", "-O", "qcow2", str(self.path("raw.img")),
                          str(self.path("full.qcow2")))
        copy_synced(self.path("full.qcow2"), self.path("base.qcow2"))
        self.qemu_img_run("create", "-q", "-f", "qcow2", str(self.path("fresh-template.qcow2")), str(IMAGE_SIZE))
        self.qemu_img_run("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2",
                          str(self.path("overlay-template.qcow2")))
        for name in ("fresh-template.qcow2", "overlay-template.qcow2"):
            fsync_path(self.path(name))
        # The overlay reads as the pre-filled image while it is empty.
        copy_synced(self.path("overlay-template.qcow2"), self.path("overlay.qcow2"))
        info = json.loads(subprocess.run([self.qemu_img, "info", "--output=json", str(self.path("full.qcow2"))],
                                         capture_output=True, text=True).stdout)
        if info.get("actual-size", 0) < IMAGE_SIZE:
            raise BenchError(f"full.qcow2 takes {info.get('actual-size')} bytes: not every cluster allocated")

    def prepare_guest(self) -> None:
        fill_file(self.path("guest.img"), GUEST_IMAGE_SIZE, FILL)
        self.qemu_img_run("convert", "-f", "raw", "-O", "qcow2", str(self.path("guest.img")),
                          str(self.path("guest.qcow2")))

    def prepare_linux(self) -> None:
        fill_file(self.path("linux.img"), LINUX_IMAGE_SIZE, FILL)
        self.qemu_img_run("convert", "-f", "raw", "-O", "qcow2", str(self.path("linux.img")),
                          str(self.path("linux.qcow2")))

    def for_read(self, kind: ImageKind) -> Path:
        return self.path({"raw": "raw.img", "qcow2-full": "full.qcow2", "qcow2-backing": "overlay.qcow2"}[kind.name])

    def for_write(self, kind: ImageKind) -> Path:
        """The file a write run works on; a fresh copy of the template for kinds that allocate."""
        if kind.name == "raw":
            return self.path("raw.img")
        if kind.name == "qcow2-full":
            return self.path("full.qcow2")
        template = "fresh-template.qcow2" if kind.name == "qcow2-fresh" else "overlay-template.qcow2"
        target = self.path("work.qcow2")
        target.unlink(missing_ok=True)
        copy_synced(self.path(template), target)
        return target

    def warm_reads(self) -> None:
        for name in ("raw.img", "full.qcow2", "base.qcow2"):
            warm(self.path(name))


# ---------------------------------------------------------------- tools


@dataclasses.dataclass
class Tool:
    label: str  # "vireo" or "qemu-img (aio=...)"
    kind: str  # "vireo" | "qemu-img"
    aio: str | None = None


@dataclasses.dataclass
class Cell:
    """One workload on one image kind, read or write, in one cache mode."""
    image: ImageKind
    workload: Workload
    write: bool
    cache: str
    count: int
    tools: list[Tool]
    seconds: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    argv: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # the last run's command per tool

    @property
    def op(self) -> str:
        return "write" if self.write else "read"

    def bytes(self) -> int:
        return self.count * self.workload.size

    def mibps(self, tool: str) -> Sample:
        return Sample([self.bytes() / s / MIB for s in self.seconds[tool]])

    def iops(self, tool: str) -> Sample:
        return Sample([self.count / s for s in self.seconds[tool]])

    def best_peer(self) -> str:
        peers = [t.label for t in self.tools if t.kind == "qemu-img"]
        return max(peers, key=lambda label: self.mibps(label).median)


def clusters_touched(workload: Workload, count: int, cluster: int = 64 * 1024) -> int:
    """The distinct clusters `count` requests of `workload` write, from offset 0 (with wrap-around)."""
    step = workload.step or workload.size
    touched = set()
    for i in range(count):
        offset = i * step % IMAGE_SIZE
        touched.update(range(offset // cluster, (offset + workload.size - 1) // cluster + 1))
    return len(touched)


def tool_argv(tool: Tool, cli: Path, qemu_img: str, cell: Cell, path: Path) -> list[str]:
    w = cell.workload
    if tool.kind == "vireo":
        argv = [str(cli), "disk", "bench", str(path), "-f", cell.image.format, "-t", cell.cache,
                "-c", str(cell.count), "-d", str(w.depth), "-s", str(w.size), "--json"]
    else:
        argv = [qemu_img, "bench", "-f", cell.image.format, "-t", cell.cache, "-i", tool.aio,
                "-c", str(cell.count), "-d", str(w.depth), "-s", str(w.size)]
    if w.step is not None:
        argv += ["-S", str(w.step)]
    if cell.write:
        argv += ["-w", f"--pattern={PATTERN}"]
    return argv + ([] if tool.kind == "vireo" else [str(path)])


def parse_seconds(tool: Tool, output: str, cell: Cell, argv: list[str]) -> float:
    """The tool's own timing of its requests (neither counts opening or closing the image)."""
    if tool.kind == "vireo":
        try:
            result = json.loads(output.strip().splitlines()[-1])
            seconds = float(result["elapsed_seconds"])
            done = int(result["count"])
        except (ValueError, KeyError, IndexError) as error:
            raise BenchError(f"no JSON result ({error}) from: {shlex.join(argv)}\n{output[-2000:]}") from error
        if done != cell.count:
            raise BenchError(f"{done} requests completed, {cell.count} asked: {shlex.join(argv)}")
        return seconds
    match = re.search(r"^Run completed in ([\d.]+) seconds", output, re.M)
    if not match:
        raise BenchError(f"no 'Run completed in' line from: {shlex.join(argv)}\n{output[-2000:]}")
    # qemu-img prints milliseconds: a run of 0 ms would be meaningless.
    return max(float(match.group(1)), 0.0005)


def plan_cells(caches: list[str], scale: float, only_images: list[str] | None) -> list[Cell]:
    cells = []
    for cache in caches:
        for image in IMAGE_KINDS:
            if only_images and image.name not in only_images:
                continue
            engines = ["threads", "io_uring"] + (["native"] if cache == "none" else [])
            tools = [Tool("vireo", "vireo")] + [Tool(f"qemu-img aio={a}", "qemu-img", a) for a in engines]
            for write in (False, True):
                if (write and not image.writes) or (not write and not image.reads):
                    continue
                for workload in WORKLOADS:
                    cells.append(Cell(image, workload, write, cache, workload.count(cache, write, scale),
                                      tools))
    return cells


def bench_tools(runner: Runner, cli: Path, qemu_img: str, images: Images, cells: list[Cell],
                runs: int) -> None:
    for i in range(runs):
        warmed = False
        for n, cell in enumerate(cells):
            if cell.cache == "writeback" and not warmed:
                # O_DIRECT writes of the cache=none rows drop the pages they
                # overwrite: read everything back in, or the first tool of a
                # writeback read row would pay for the disk reads of all.
                images.warm_reads()
                warmed = True
            # Rotate the order each round: no tool always runs right after a given other.
            order = cell.tools[i % len(cell.tools):] + cell.tools[:i % len(cell.tools)]
            for tool in order:
                path = images.for_write(cell.image) if cell.write else images.for_read(cell.image)
                argv = tool_argv(tool, cli, qemu_img, cell, path)
                result = runner.run(argv, timeout=max(runner.timeout, 300))
                if result.status != 0:
                    raise BenchError(f"exit status {result.status}: {shlex.join(argv)}\n{result.stderr[-2000:]}")
                cell.seconds.setdefault(tool.label, []).append(parse_seconds(tool, result.output, cell, argv))
                cell.argv[tool.label] = argv
                if cell.write and cell.cache == "writeback":
                    fsync_path(path)  # the next run starts without this one's dirty pages
            progress(f"tools: round {i + 1}/{runs}, {n + 1}/{len(cells)} "
                     f"({cell.image.name} {cell.op} {cell.workload.name} cache={cell.cache})")


# ---------------------------------------------------------------- guest


@dataclasses.dataclass(frozen=True)
class GuestWorkload:
    name: str
    cmdline: str  # blk_bench options besides count, fill and EVENT_IDX
    figures: tuple[str, ...]  # the BENCH blk_<figure>_... names it prints
    count_divisor: int = 1  # 1 MiB requests: fewer of them


GUEST_WORKLOADS = (
    GuestWorkload("4 KiB sequential", "bench.size=4096 bench.depth=32",
                  ("read_4k_qd1", "write_4k_qd1", "read_4k_qd32", "write_4k_qd32")),
    GuestWorkload("4 KiB random", "bench.size=4096 bench.depth=32 bench.random=1",
                  ("read_4k_rand_qd1", "write_4k_rand_qd1", "read_4k_rand_qd32", "write_4k_rand_qd32")),
    GuestWorkload("1 MiB sequential", "bench.size=1048576 bench.depth=1",
                  ("read_1024k_qd1", "write_1024k_qd1"), count_divisor=128),
)
GUEST_IMAGES = (("raw", "guest.img"), ("qcow2", "guest.qcow2"))


@dataclasses.dataclass
class GuestVariant:
    label: str  # "vireo-vmm" or the QEMU peer
    image: str  # a GUEST_IMAGES format
    workload: GuestWorkload
    argv: list[str]
    iops: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    kicks: dict[str, list[float]] = dataclasses.field(default_factory=dict)


QEMU_COMMON = [
    "-nodefaults", "-no-user-config", "-accel", "kvm", "-smp", "1",
    "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
    "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
]
QEMU_PEER = "QEMU microvm aio=io_uring"


def guest_variants(build: Path, qemu: str, workdir: Path, count: int) -> list[GuestVariant]:
    """The driver kicks as Linux does (VIRTIO_F_EVENT_IDX); both VMMs run the
    disk through the host page cache, QEMU with its io_uring engine."""
    kernel = build / "guest" / "blk_bench.elf"
    variants = []
    for fmt, file in GUEST_IMAGES:
        image = workdir / file
        for number, workload in enumerate(GUEST_WORKLOADS):
            cmdline = (f"bench.count={count // workload.count_divisor} {workload.cmdline} "
                       f"bench.fill={FILL:#x} bench.event_idx=1")
            config = {
                "vcpus": 1,
                "memory_mib": GUEST_MEMORY_MIB,
                "boot": {"kernel": str(kernel), "cmdline": cmdline},
                "console": {"output": "stdio", "input": False},
                "disks": [{"path": str(image), "cache": "writeback"}],
            }
            vm_json = workdir / f"vm-{fmt}-{number}.json"
            vm_json.write_text(json.dumps(config))
            variants.append(GuestVariant("vireo-vmm", fmt, workload,
                                         [str(build / "bin" / "vireo-vmm"), "--config", str(vm_json)]))
            variants.append(GuestVariant(QEMU_PEER, fmt, workload, [
                qemu, *QEMU_COMMON, "-M", "microvm,pcie=on", "-m", f"{GUEST_MEMORY_MIB}M", "-kernel", str(kernel),
                "-append", cmdline,
                "-drive", f"file={image},if=none,id=d0,format={fmt},cache=writeback,aio=io_uring",
                "-device", "virtio-blk-pci,drive=d0,disable-legacy=on"]))
    return variants


def bench_guest(runner: Runner, variants: list[GuestVariant], runs: int) -> None:
    for i in range(runs):
        order = variants[i % len(variants):] + variants[:i % len(variants)]
        for variant in order:
            result = run_checked(runner, variant.argv, lambda r, argv=variant.argv: check_guest_passed(r, argv),
                                 progress, timeout=max(runner.timeout, 120))
            for key, store in (("iops", variant.iops), ("kicks", variant.kicks)):
                values = dict(re.findall(rf"^BENCH blk_(\w+)_{key}=(\d+)", result.output, re.M))
                for figure in variant.workload.figures:
                    if figure not in values:
                        raise BenchError(f"no 'BENCH blk_{figure}_{key}=' line: {shlex.join(variant.argv)}\n"
                                         f"{result.output[-3000:]}")
                    store.setdefault(figure, []).append(float(values[figure]))
        progress(f"guest: round {i + 1}/{runs} done")


# ---------------------------------------------------------------- linux


LINUX_IMAGE_SIZE = 256 * MIB
LINUX_VCPUS = 2
LINUX_MEMORY_MIB = 512
# What the guest's /init prints for each figure (scripts/build-linux-guest.sh,
# vireo.disk-bench); O_DIRECT dd on /dev/vda.
LINUX_FIGURES = ("read-4k-qd1", "write-4k-qd1", "read-4k-qd8", "write-4k-qd8", "read-1m-qd1", "write-1m-qd1")
LINUX_DONE = "vireo-guest: disk-bench done"


@dataclasses.dataclass
class LinuxVariant:
    label: str  # "Vireo" or QEMU_PEER
    image: str  # a GUEST_IMAGES format
    argv: list[str]
    mibps: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    queues: set[int] = dataclasses.field(default_factory=set)  # request queues Linux used


def linux_variants(build: Path, qemu: str, workdir: Path, guest) -> list[LinuxVariant]:
    """Real Linux (Debian's kernel and virtio_blk) under vireo-vmm and QEMU
    microvm, the same image, 2 vCPUs, the disk through the host page cache."""
    cmdline = f"{guest.cmdline} loglevel=4 vireo.disk-bench"
    variants = []
    for fmt, file in (("raw", "linux.img"), ("qcow2", "linux.qcow2")):
        image = workdir / file
        config = {
            "vcpus": LINUX_VCPUS,
            "memory_mib": LINUX_MEMORY_MIB,
            "boot": {"kernel": str(guest.kernel), "initrd": str(guest.initrd), "cmdline": cmdline},
            "console": {"output": "stdio", "input": False},
            "disks": [{"path": str(image), "cache": "writeback"}],
        }
        vm_json = workdir / f"linux-{fmt}.json"
        vm_json.write_text(json.dumps(config))
        variants.append(LinuxVariant("Vireo", fmt, [str(build / "bin" / "vireo-vmm"), "--config", str(vm_json)]))
        variants.append(LinuxVariant(QEMU_PEER, fmt, [
            qemu, "-nodefaults", "-no-user-config", "-accel", "kvm", "-cpu", "host", "-smp", str(LINUX_VCPUS),
            "-M", "microvm,pcie=on,rtc=on", "-m", f"{LINUX_MEMORY_MIB}M", "-display", "none",
            "-serial", "stdio", "-monitor", "none", "-no-reboot",
            "-kernel", str(guest.kernel), "-initrd", str(guest.initrd), "-append", cmdline,
            "-drive", f"file={image},if=none,id=d0,format={fmt},cache=writeback,aio=io_uring",
            "-device", "virtio-blk-pci,drive=d0,disable-legacy=on"]))
    return variants


def linux_queues(output: str) -> int:
    """How many request queues the guest's virtio_blk set up (its first line)."""
    found = re.search(r"disk-bench queues=(\d+)", output)
    if not found:
        raise BenchError(f"the guest did not say how many queues /dev/vda has:\n{output[-3000:]}")
    return int(found.group(1))


def parse_linux_run(output: str) -> dict[str, float]:
    """MiB/s per figure from the guest's lines; a figure that failed or is
    missing is an error."""
    if LINUX_DONE not in output:
        raise BenchError(f"the guest did not finish its disk benchmark:\n{output[-3000:]}")
    found = {name: int(size) / float(seconds) / MIB if float(seconds) > 0 else float("inf")
             for name, size, seconds in re.findall(r"disk-bench (\S+) bytes=(\d+) seconds=([\d.]+)", output)}
    missing = [figure for figure in LINUX_FIGURES if figure not in found]
    if missing:
        raise BenchError(f"no figure for {', '.join(missing)} from the guest:\n{output[-3000:]}")
    return found


def bench_linux(runner: Runner, variants: list[LinuxVariant], runs: int) -> None:
    for i in range(runs):
        order = variants[i % len(variants):] + variants[:i % len(variants)]
        for variant in order:

            def finished(result, argv=variant.argv) -> None:
                if result.status != 0:
                    raise BenchError(f"exit status {result.status}: {shlex.join(argv)}\n"
                                     f"{result.output[-3000:]}\n{result.stderr[-1500:]}")
                parse_linux_run(result.output)

            result = run_checked(runner, variant.argv, finished, progress, timeout=max(runner.timeout, 600))
            for figure, value in parse_linux_run(result.output).items():
                variant.mibps.setdefault(figure, []).append(value)
            variant.queues.add(linux_queues(result.output))
        progress(f"linux: round {i + 1}/{runs} done")


def queue_counts(variants: list[LinuxVariant]) -> str:
    """'Vireo 2, QEMU 2', or each image's counts where they differ."""
    by_vmm: dict[str, set[int]] = {}
    for variant in variants:
        by_vmm.setdefault(variant.label, set()).update(variant.queues)
    return ", ".join(f"{label} {'/'.join(str(n) for n in sorted(counts))}" for label, counts in by_vmm.items())


def linux_section(variants: list[LinuxVariant], runs: int) -> list[str]:
    lines = [
        "### Real Linux: dd on /dev/vda under vireo-vmm and QEMU microvm",
        "",
        f"scripts/build-linux-guest.sh's image (Debian's kernel, its virtio_blk driver), {LINUX_VCPUS} vCPUs, "
        f"{LINUX_MEMORY_MIB} MiB; one disk on a {LINUX_IMAGE_SIZE // MIB} MiB file (raw, and qcow2 converted "
        "from it, every cluster allocated) through the host page cache; QEMU with aio=io_uring. With "
        "`vireo.disk-bench` on its command line the guest's /init runs busybox dd with O_DIRECT (no guest "
        "page cache): 4 KiB reads and writes one at a time (16 MiB), eight such dd processes at once "
        "(32 MiB), and 1 MiB requests (32 MiB), timed with the guest's /proc/uptime, then powers off. "
        f"{runs} runs of each, interleaved; median MiB/s (min–max). Request queues Linux set up on "
        f"/dev/vda: {queue_counts(variants)}.",
        "",
        "| image | figure | Vireo MiB/s | QEMU MiB/s | Vireo / QEMU |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for vmm, peer in zip(variants[0::2], variants[1::2]):
        for figure in LINUX_FIGURES:
            v, q = Sample(vmm.mibps[figure]), Sample(peer.mibps[figure])
            lines.append(f"| {vmm.image} | {figure} | {fmt_sample(v, '{:.1f}')} | {fmt_sample(q, '{:.1f}')} | "
                         f"{ratio(v.median, q.median):.2f} |")
    return lines + [""]


# ---------------------------------------------------------------- report


def display(argv: list[str], build: Path, workdir: Path) -> str:
    return shown_command(argv, build, {str(workdir) + "/": ""})


def fmt_sample(s: Sample, fmt: str) -> str:
    return f"{fmt.format(s.median)} ({s.spread(fmt)})"


def tools_section(cells: list[Cell], build: Path, workdir: Path, direct_problem: str | None,
                  runs: int) -> list[str]:
    lines = [
        "### `vireo disk bench` against `qemu-img bench`",
        "",
        f"Same files, same options, {runs} runs of each tool per row, interleaved with a rotating "
        "order. Workloads: 4 KiB \"random\" = a step of "
        f"{RANDOM_STEP // 4096} × 4 KiB (~{RANDOM_STEP // MIB} MiB) that wraps at the end of the 1 GiB "
        "image (`qemu-img bench` has no random mode; both tools walk the same permutation of the "
        "image's 4 KiB blocks); 1 MiB sequential from offset 0. Writes write the byte "
        f"{PATTERN:#x}. Time = each tool's own timing of its requests (first submission to last "
        "completion; opening and closing the image not included); MiB/s and IOPS = count / time; "
        "median (min–max). Each Vireo figure is compared with the fastest of qemu-img's AIO "
        "engines for that row (median against median); the other engines' medians are in the "
        "last column.",
        "",
        "Images:",
        "",
    ]
    lines += [f"- **{k.name}**: {k.description}" for k in IMAGE_KINDS]
    allocating = sorted({(c.workload.name, c.count, clusters_touched(c.workload, c.count))
                         for c in cells if c.write and c.image.copy_per_write})
    if allocating:
        lines += ["", "Clusters a write run allocates on qcow2-fresh and qcow2-backing (64 KiB clusters): "
                  + "; ".join(f"{name}: {clusters} for {count} writes" for name, count, clusters in allocating)
                  + "."]
    lines.append("")
    by_cache: dict[str, list[Cell]] = {}
    for cell in cells:
        by_cache.setdefault(cell.cache, []).append(cell)
    for cache, group in by_cache.items():
        title = ("cache=none (O_DIRECT: no host page cache)" if cache == "none"
                 else "cache=writeback (host page cache; reads hit memory, writes are not flushed)")
        lines += [
            f"#### {title}",
            "",
            "| image | op | workload | count | vireo MiB/s | vireo IOPS | qemu-img best MiB/s | qemu-img best IOPS "
            "| vireo / qemu-img | goal | verdict | other engines (MiB/s) |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |",
        ]
        for cell in group:
            best = cell.best_peer()
            v_mib, q_mib = cell.mibps("vireo"), cell.mibps(best)
            r = ratio(v_mib.median, q_mib.median)
            others = ", ".join(f"{t.aio} {cell.mibps(t.label).median:.1f}" for t in cell.tools
                               if t.kind == "qemu-img" and t.label != best)
            lines.append(
                f"| {cell.image.name} | {cell.op} | {cell.workload.name} | {cell.count} | "
                f"{fmt_sample(v_mib, '{:.1f}')} | {cell.iops('vireo').median:.0f} | "
                f"{fmt_sample(q_mib, '{:.1f}')} ({best.split('=')[1]}) | {cell.iops(best).median:.0f} | "
                f"{r:.2f} | ≥ {cell.image.goal:.2f} | {verdict(r >= cell.image.goal)} | {others} |")
        lines.append("")
    lines += goal_summary(cells)
    notes = []
    if direct_problem:
        notes.append(f"The file system of the images refuses O_DIRECT ({direct_problem}): every row is "
                     "cache=writeback, in both tools.")
    if notes:
        lines += [*[f"- {n}" for n in notes], ""]
    example = {}
    for cell in cells:
        for label, argv in cell.argv.items():
            example.setdefault(label.split()[0], argv)
    lines += ["Commands of one row (qcow2-full, read, 4k-rand-qd1, cache=writeback, or the first row "
              "measured); the others differ in the file, `-w --pattern`, counts, depth, size and `-t`:", "",
              "```sh"]
    sample_cell = next((c for c in cells if c.image.name == "qcow2-full" and not c.write
                        and c.workload.name == "4k-rand-qd1" and c.cache == "writeback"), cells[0])
    lines += [display(argv, build, workdir) for argv in sample_cell.argv.values()]
    lines += ["```", ""]
    return lines


def goal_summary(cells: list[Cell]) -> list[str]:
    lines = ["| goal | rows | met | worst row (ratio) | verdict |", "| --- | ---: | ---: | --- | --- |"]
    for fmt, goal in (("raw", RAW_GOAL), ("qcow2", QCOW2_GOAL)):
        rows = [c for c in cells if c.image.format == fmt]
        if not rows:
            continue
        ratios = [(ratio(c.mibps("vireo").median, c.mibps(c.best_peer()).median), c) for c in rows]
        met = sum(1 for r, _ in ratios if r >= goal)
        worst_r, worst = min(ratios, key=lambda item: item[0])
        lines.append(f"| {fmt}: vireo ≥ {goal:.2f}× qemu-img's throughput | {len(rows)} | {met} | "
                     f"{worst.image.name} {worst.op} {worst.workload.name} cache={worst.cache} ({worst_r:.2f}) | "
                     f"{verdict(met == len(rows))} |")
    return lines + [""]


def guest_section(variants: list[GuestVariant], build: Path, workdir: Path, count: int, runs: int) -> list[str]:
    lines = [
        "### virtio-blk: the blk_bench guest's I/O loop, vireo-vmm against QEMU microvm",
        "",
        f"blk_bench guest, 1 vCPU, {GUEST_MEMORY_MIB} MiB, one virtio-blk disk on a "
        f"{GUEST_IMAGE_SIZE // MIB} MiB file (every byte {FILL:#x}): raw, and qcow2 converted from it "
        "(every cluster allocated). Per figure, `bench.count` requests through queue 0 "
        f"({count} of 4 KiB, {count // 128} of 1 MiB), at depth 1 and 32, polled with interrupts "
        "suppressed, timed with the TSC in the guest (ring 3); reads from sector 0 (each buffer "
        "checked), writes to the next region, then a flush; sequential, or scattered over the region "
        "(`bench.random=1`: request k at block k×40503 mod count). The driver kicks as Linux does, "
        "from `VIRTIO_F_EVENT_IDX`'s avail_event. Both VMMs run the disk through the host page "
        "cache (cache=writeback); QEMU with aio=io_uring. "
        f"{runs} runs of each, interleaved; median IOPS (min–max).",
        "",
        "| image | figure | vireo-vmm IOPS | QEMU IOPS | vireo / QEMU | goal | verdict | kicks per request: vireo / QEMU |",
        "| --- | --- | ---: | ---: | ---: | --- | --- | ---: |",
    ]
    met = total = 0
    worst = None
    for vmm, peer in zip(variants[0::2], variants[1::2]):
        requests = count // vmm.workload.count_divisor
        for figure in vmm.workload.figures:
            v, q = Sample(vmm.iops[figure]), Sample(peer.iops[figure])
            r = ratio(v.median, q.median)
            total += 1
            met += r >= 1.0
            if worst is None or r < worst[0]:
                worst = (r, f"{vmm.image} {figure}")
            kicks = " / ".join(f"{Sample(x.kicks[figure]).median / requests:.2f}" for x in (vmm, peer))
            lines.append(f"| {vmm.image} | {figure} | {fmt_sample(v, '{:.0f}')} | {fmt_sample(q, '{:.0f}')} | "
                         f"{r:.2f} | ≥ 1.00 | {verdict(r >= 1.0)} | {kicks} |")
    lines += ["", f"Rows at or above QEMU: {met} of {total}; the lowest, {worst[1]}, at {worst[0]:.2f}.", "",
              "Kicks = notifications the guest sent (it skips those the device said it does not "
              "need); each is a guest exit to an ioeventfd.", "", "```sh"]
    lines += [display(v.argv, build, workdir) for v in variants[:2]]
    example = json.loads((workdir / "vm-raw-0.json").read_text())
    lines += ["```", "", "`vm-raw-0.json` = `" + json.dumps(example, separators=(",", ":"))
              .replace(str(build) + "/", shown_build(build) + "/").replace(str(workdir) + "/", "")
              + "` (absolute paths in the real file); the other rows change the image and "
              "`bench.*` options the same way on both sides.", ""]
    return lines


PART_TITLES = {
    "tools": "## Disks: `vireo disk bench` against `qemu-img bench`",
    "guest": "## Disks: virtio-blk's I/O loop (guest kit) against QEMU",
    "linux": "## Disks: real Linux on virtio-blk against QEMU",
}


def render(title: str, facts: dict[str, str], command: str, started: str, loads: tuple[str, str],
           section: list[str]) -> str:
    lines = [
        title,
        "",
        "Generated by `bench/disk_bench.py`; do not edit between the markers, re-run instead:",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Measured {started}. Every figure below compares runs made in the same invocation, "
        "interleaved, on the same files.",
        "",
        "| host | |",
        "| --- | --- |",
    ]
    lines += [f"| {key} | {value} |" for key, value in facts.items()]
    lines += [f"| load average (1/5/15 min) | {loads[0]} at start, {loads[1]} at end "
              "(the machine is shared: other builds may run during the benchmark) |", ""]
    lines += section
    return "\n".join(lines).rstrip() + "\n"


def save_samples(path: Path, cells: list[Cell], variants: list[GuestVariant]) -> None:
    data = {
        "tools": [{"image": c.image.name, "op": c.op, "workload": c.workload.name, "cache": c.cache,
                   "count": c.count, "size": c.workload.size, "depth": c.workload.depth,
                   "seconds": c.seconds, "argv": c.argv} for c in cells],
        "guest": [{"label": v.label, "image": v.image, "workload": v.workload.name, "argv": v.argv,
                   "iops": v.iops, "kicks": v.kicks}
                  for v in variants],
    }
    path.write_text(json.dumps(data, indent=1))


# ---------------------------------------------------------------- main


def progress(message: str) -> None:
    print(f"[disk-bench] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build", help="build directory (bin/ and guest/ inside)")
    parser.add_argument("--runs", type=int, default=10, help="runs per tool and row (at least 5)")
    parser.add_argument("--guest-runs", type=int, help="runs per VMM of the guest loop (default: --runs)")
    parser.add_argument("--only", action="append", choices=("tools", "guest", "linux"),
                        help="run only this part (repeatable)")
    parser.add_argument("--cache", action="append", choices=("none", "writeback"),
                        help="cache modes of the tools part (repeatable; default both)")
    parser.add_argument("--images", action="append", choices=[k.name for k in IMAGE_KINDS],
                        help="image kinds of the tools part (repeatable; default all)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every request count")
    parser.add_argument("--guest-count", type=int, default=8192, help="blk_bench bench.count")
    parser.add_argument("--workdir", help="folder for the image files (~4 GiB; default: a new one in $TMPDIR)")
    parser.add_argument("--output", help="Markdown file whose disk-bench section is rewritten")
    parser.add_argument("--save", help="also write every sample as JSON to this file")
    parser.add_argument("--qemu", default="qemu-system-x86_64", help="QEMU binary")
    parser.add_argument("--qemu-img", default="qemu-img", help="qemu-img binary")
    parser.add_argument("--timeout", type=float, default=120, help="seconds allowed per run")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.guest_count < 1 or args.scale <= 0:
        parser.error("--runs, --guest-count and --scale must be positive")
    if args.runs < 5:
        progress(f"warning: --runs {args.runs} is below the 5 runs the published figures need")
    if args.guest_runs is None:
        args.guest_runs = args.runs
    if args.output and (args.images or args.cache or args.scale != 1.0):
        parser.error("--output rewrites whole parts of the document: no --images, --cache or --scale")
    return args


def missing_prerequisites(args: argparse.Namespace, parts: list[str]) -> str | None:
    if "tools" in parts and shutil.which(args.qemu_img) is None:
        return f"{args.qemu_img} is not installed"
    if "guest" in parts or "linux" in parts:
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            return "/dev/kvm is missing or not usable by this user"
        if "linux" in parts and (why := linux_kvm_missing(Path(args.build))):
            return why
        if shutil.which(args.qemu) is None:
            return f"{args.qemu} is not installed"
    return None


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    repo = Path(__file__).resolve().parent.parent
    build = Path(args.build)
    parts = args.only or ["tools", "guest", "linux"]
    skip = missing_prerequisites(args, parts)
    if skip:
        print(f"SKIP: disk benchmarks: {skip}", file=sys.stderr)
        return EXIT_SKIP
    needed = []
    if "tools" in parts:
        needed.append(build / "bin" / "vireo")
    if "guest" in parts:
        needed += [build / "bin" / "vireo-vmm", build / "guest" / "blk_bench.elf"]
    if "linux" in parts:
        needed.append(build / "bin" / "vireo-vmm")
    absent = [str(p) for p in needed if not p.exists()]
    if absent:
        print(f"disk_bench: not built: {', '.join(absent)} (ninja -C {build} vireo vireo-vmm guests)",
              file=sys.stderr)
        return 2
    build = build.resolve()
    cli = build / "bin" / "vireo"
    if "tools" in parts:
        probe = subprocess.run([str(cli), "disk", "bench", "--help"], capture_output=True, text=True)
        if probe.returncode != 0:
            print(f"disk_bench: {cli} has no `disk bench` command: {probe.stderr.strip()[-500:]}",
                  file=sys.stderr)
            return 2

    command = shlex.join(["python3", "bench/disk_bench.py", *argv])

    def measure(children: Children, workdir: Path) -> None:
        runner = Runner(children, workdir, args.timeout)
        images = Images(workdir, args.qemu_img)
        binaries = tuple(name for name, used in (("vireo", "tools" in parts),
                                                 ("vireo-vmm", "guest" in parts or "linux" in parts)) if used)
        facts = host_facts(args.qemu, repo, build, binaries)
        img_version = subprocess.run([args.qemu_img, "--version"], capture_output=True, text=True).stdout
        facts["qemu-img"] = img_version.splitlines()[0] if img_version else "unknown"
        facts["image files"] = filesystem_of(workdir)
        direct_problem = direct_io_works(workdir)
        facts["O_DIRECT"] = "works" if direct_problem is None else f"refused: {direct_problem}"
        started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        load_start = load_average()
        sections: dict[str, list[str]] = {}
        cells: list[Cell] = []
        variants: list[GuestVariant] = []
        if "tools" in parts:
            images.prepare_tools()
            caches = args.cache or ["none", "writeback"]
            if direct_problem:
                progress(f"O_DIRECT refused here ({direct_problem}): writeback only")
                caches = ["writeback"]
            cells = plan_cells(caches, args.scale, args.images)
            bench_tools(runner, cli, args.qemu_img, images, cells, args.runs)
            sections["tools"] = tools_section(cells, build, workdir, direct_problem, args.runs)
        if "guest" in parts:
            images.prepare_guest()
            variants = guest_variants(build, args.qemu, workdir, args.guest_count)
            bench_guest(runner, variants, args.guest_runs)
            sections["guest"] = guest_section(variants, build, workdir, args.guest_count, args.guest_runs)
        if "linux" in parts:
            images.prepare_linux()
            linux = linux_variants(build, args.qemu, workdir, build_linux_guest(workdir))
            bench_linux(runner, linux, args.guest_runs)
            sections["linux"] = linux_section(linux, args.guest_runs)
        print_tables(list(sections.values()))
        if args.save:
            save_samples(Path(args.save), cells, variants)
        if args.output:
            loads = (load_start, load_average())
            for part, section in sections.items():
                update_document(Path(args.output), render(PART_TITLES[part], facts, command, started, loads, section),
                                f"<!-- disk-bench-{part}:begin -->", f"<!-- disk-bench-{part}:end -->")
                progress(f"wrote the disk-bench-{part} section of {args.output}")

    return run_guarded(measure, progress, "disk-bench-", args.workdir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
