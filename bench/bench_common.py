"""What the benchmark scripts share: children in their own process groups,
timed runs, medians and verdicts, host facts, and the rewrite of one
script's section of docs/benchmarks.md between its markers."""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import re
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

EXIT_SKIP = 77


class BenchError(Exception):
    """A run that did not do what it must (wrong exit status, failed check, timeout)."""


class Interrupted(Exception):
    """SIGTERM or SIGINT."""


# ---------------------------------------------------------------- processes


class Children:
    """Every process the benchmark starts, each the leader of its own process
    group, so that `vireo run` and the vireo-vmm it starts die together.
    SIGINT/SIGTERM/SIGHUP raise Interrupted, but not between the fork and the
    bookkeeping of a child: there they are held until the child is recorded."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []
        self._spawning = False
        self._pending: str | None = None

    def on_signal(self, signum, _frame) -> None:
        name = signal.Signals(signum).name
        if self._spawning:
            self._pending = name
            return
        raise Interrupted(name)

    def spawn(self, argv: list[str], stdin, stderr) -> subprocess.Popen:
        self._spawning = True
        try:
            proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr,
                                    start_new_session=True)
            self._procs.append(proc)
        finally:
            self._spawning = False
        if self._pending:
            raise Interrupted(self._pending)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        # Only while the leader is unreaped: its group id cannot have been reused.
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def finish(self, proc: subprocess.Popen) -> None:
        self.kill(proc)
        self._procs.remove(proc)

    def kill_all(self) -> None:
        for proc in list(self._procs):
            self.finish(proc)


class Namespace:
    """A network namespace of the benchmark's own, loopback up, for the far
    side of a VM's TAP; deleted, with every interface in it, on exit. A
    subclass builds its wire in setup()."""

    def __init__(self, prefix: str) -> None:
        self.namespace = f"{prefix}-{os.getpid()}"

    def in_namespace(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *argv]

    def run(self, *argv: str) -> str:
        """argv's output, run in the namespace; BenchError if it fails."""
        result = subprocess.run(self.in_namespace(list(argv)), capture_output=True, text=True)
        if result.returncode != 0:
            raise BenchError(f"{shlex.join(argv)} failed in {self.namespace}: {result.stderr.strip()}")
        return result.stdout

    def setup(self) -> None:
        """What the namespace holds besides its loopback."""

    def __enter__(self):
        subprocess.run(["ip", "netns", "add", self.namespace], check=True)
        try:
            self.run("ip", "link", "set", "lo", "up")
            self.setup()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        subprocess.run(["ip", "netns", "delete", self.namespace], capture_output=True)

    def frames_received(self, tap: str) -> int:
        """Frames `tap` has taken from its VMM so far."""
        return int(self.run("cat", f"/sys/class/net/{tap}/statistics/rx_packets"))


@dataclasses.dataclass
class RunResult:
    status: int
    output: str
    stderr: str
    first_byte_ns: int | None  # all from just before the spawn
    last_byte_ns: int | None
    exit_ns: int
    mark_ns: int | None = None  # when run(mark=...) appeared on stdout


class Runner:
    def __init__(self, children: Children, workdir: Path, timeout: float) -> None:
        self.children = children
        self.workdir = workdir
        self.timeout = timeout

    def run(self, argv: list[str], *, timeout: float | None = None, wait_for: bytes | None = None,
            on_ready=None, then_send: bytes = b"", mark: bytes | None = None) -> RunResult:
        """Runs argv with stdout on a pipe read unbuffered. With wait_for, stdin
        is a pipe kept open: when wait_for appears on stdout, on_ready(pid) runs
        and then_send is written. With mark, the time at which it appeared is
        kept. Raises BenchError on timeout."""
        deadline_s = timeout or self.timeout
        stderr_path = self.workdir / "stderr.txt"
        with open(stderr_path, "wb") as stderr_file:
            t0 = time.monotonic_ns()
            proc = self.children.spawn(argv, subprocess.PIPE if wait_for else subprocess.DEVNULL,
                                       stderr_file)
        try:
            deadline = time.monotonic() + deadline_s
            fd = proc.stdout.fileno()
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLHUP)
            output = bytearray()
            first_byte_ns = last_byte_ns = mark_ns = None
            ready = wait_for is None
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"timed out after {deadline_s:g} s: {shlex.join(argv)}\n"
                                     f"output so far:\n{output.decode(errors='replace')[-2000:]}")
                if not poller.poll(left * 1000):
                    continue
                chunk = os.read(fd, 65536)
                if first_byte_ns is None and chunk:
                    first_byte_ns = time.monotonic_ns() - t0
                if not chunk:
                    break
                last_byte_ns = time.monotonic_ns() - t0
                output += chunk
                if mark is not None and mark_ns is None and mark in output:
                    mark_ns = last_byte_ns
                if not ready and wait_for in output:
                    ready = True
                    on_ready(proc.pid)
                    try:
                        proc.stdin.write(then_send)
                        proc.stdin.close()
                    except OSError as error:
                        raise BenchError(f"cannot write its input ({error}): {shlex.join(argv)}") from error
            try:
                status = proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired as error:
                raise BenchError(f"did not exit after closing its output: {shlex.join(argv)}") from error
            exit_ns = time.monotonic_ns() - t0
        finally:
            self.children.finish(proc)
        stderr = stderr_path.read_text(errors="replace")
        stderr_path.unlink()
        return RunResult(status, output.decode(errors="replace"), stderr, first_byte_ns, last_byte_ns, exit_ns,
                         mark_ns)


# Inside the emulated KVM a guest sometimes dies of the emulator's own faults
# (a reset early in a Linux boot was seen under QEMU q35): there a failed run
# is run once more, saying so. On real KVM a failure stops the benchmark.
ATTEMPTS = 2 if os.environ.get("VIREO_EMULATED_KVM") == "1" else 1


def run_checked(runner: Runner, argv: list[str], check, progress, **options) -> RunResult:
    """runner.run(argv, **options), then check(result), which raises
    BenchError for a failed run; retried as ATTEMPTS says."""
    for attempt in range(ATTEMPTS):
        try:
            result = runner.run(argv, **options)
            check(result)
            return result
        except BenchError as error:
            if attempt + 1 == ATTEMPTS:
                raise
            progress(f"emulated KVM: a failed run is run once more; it was: {str(error)[:400]}")
    raise AssertionError("unreachable")


def check_guest_passed(result: RunResult, argv: list[str]) -> None:
    """The guest-kit contract: status 1 and one 'SUMMARY: n tests, 0 failures'."""
    if result.status == 1 and re.search(r"^SUMMARY: \d+ tests, 0 failures", result.output, re.M):
        return
    raise BenchError(f"guest run failed (exit status {result.status}): {shlex.join(argv)}\n"
                     f"--- output ---\n{result.output[-3000:]}\n--- stderr ---\n{result.stderr[-2000:]}")


def run_guarded(body, progress, workdir_prefix: str, workdir_parent: str | None = None) -> int:
    """Runs body(children, workdir) with SIGTERM, SIGINT and SIGHUP killing every
    child it spawned, in a temporary folder removed afterwards, whatever
    happens. Returns 0, 1 when a run failed (BenchError), 130 when stopped."""
    children = Children()
    stop_signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    for signum in stop_signals:
        signal.signal(signum, children.on_signal)
    workdir = Path(tempfile.mkdtemp(prefix=workdir_prefix, dir=workdir_parent))
    try:
        body(children, workdir)
    except Interrupted as stop:
        progress(f"stopped by {stop}; every child killed, temporary files removed")
        return 130
    except BenchError as error:
        progress(f"FAILED: {error}")
        return 1
    finally:
        for signum in stop_signals:  # a second Ctrl-C must not cut the clean-up short
            signal.signal(signum, signal.SIG_IGN)
        children.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


# ---------------------------------------------------------------- statistics


@dataclasses.dataclass
class Sample:
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self, fmt: str) -> str:
        return f"{fmt.format(min(self.values))}–{fmt.format(max(self.values))}"


def linux_kvm_missing(build: Path) -> str | None:
    """Why this host's KVM cannot boot real Linux guests (None when it can):
    no usable /dev/kvm, or one without hardware virtualization (PVM runs the
    guest kit only; `vireo host check --json` says which)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is missing or not usable (run it inside scripts/emulated-kvm)"
    vireo = build / "bin" / "vireo"
    if not vireo.exists():
        return f"{vireo} is not built (ninja -C {build})"
    check = subprocess.run([str(vireo), "host", "check", "--json"], capture_output=True, text=True)
    if check.returncode != 0:
        return f"KVM is not usable here ({check.stdout.strip() or check.stderr.strip()})"
    if not json.loads(check.stdout).get("hardware_virtualization"):
        return ("this host's /dev/kvm has no hardware virtualization (no vmx or svm: a software-"
                "assisted KVM such as PVM) and cannot boot real Linux; run it inside scripts/emulated-kvm")
    return None


def vhost_net_problem() -> str | None:
    """Why a VMM cannot use vhost-net here, or None (loads the module if it must)."""
    if not Path("/dev/vhost-net").exists():
        subprocess.run(["modprobe", "vhost_net"], capture_output=True)
    if not Path("/dev/vhost-net").exists():
        return "/dev/vhost-net is missing on this host (no vhost_net module)"
    return None


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# ---------------------------------------------------------------- host facts


def build_type(build: Path) -> str:
    cache = build / "CMakeCache.txt"
    text = cache.read_text() if cache.exists() else ""
    kind = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", text, re.M)
    flags = re.search(r"^CMAKE_CXX_FLAGS:\w+=(.*)$", text, re.M)
    result = kind.group(1) if kind and kind.group(1) else "unknown build type"
    if flags and flags.group(1).strip():
        result += f", CMAKE_CXX_FLAGS `{flags.group(1).strip()}`"
    return result


def host_facts(qemu: str, repo: Path, build: Path, binaries: tuple[str, ...] = ("vireo-vmm",)) -> dict[str, str]:
    """The machine, KVM, QEMU and the Vireo binaries (build/bin/<name>) measured."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    flags_line = re.search(r"^flags\s*:\s*(.*)$", cpuinfo, re.M)
    flags = set(flags_line.group(1).split()) if flags_line else set()
    modules = sorted(m for m in os.listdir("/sys/module") if m.startswith("kvm"))
    virt = ", ".join(sorted(flags & {"vmx", "svm"})) or "none"
    kvm = f"modules {', '.join(modules) or 'none'}; CPU flag vmx/svm: {virt}"
    if "kvm_pvm" in modules:
        kvm += (" — a nested, software-assisted KVM (PVM): guest ring 3 runs natively, guest ring 0 "
                "and real mode are emulated (~1 µs per instruction)")
    version = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.splitlines()
    # The binaries may be older than HEAD: name the last commit before the newest was built.
    newest = max((build / "bin" / name).stat().st_mtime for name in binaries)
    built = datetime.datetime.fromtimestamp(newest).astimezone()
    commit = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%h",
                             f"--before={built.isoformat()}"], capture_output=True, text=True).stdout.strip()
    mem = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M)
    shown = " and ".join(f"`{shown_build(build)}/bin/{name}`" for name in binaries)
    return {
        "CPU": f"{model.group(1) if model else 'unknown'}, {os.cpu_count()} logical CPUs",
        "memory": f"{int(mem.group(1)) // (1024 * 1024)} GiB" if mem else "unknown",
        "kernel": f"{platform.system()} {platform.release()}",
        "KVM": kvm,
        "QEMU": version[0] if version else "unknown",
        "Vireo": f"{shown} built {built.strftime('%Y-%m-%d %H:%M %Z')} from "
                 f"the working tree, last commit then {commit or 'unknown'} ({build_type(build)})",
        "THP": Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
        if Path("/sys/kernel/mm/transparent_hugepage/enabled").exists() else "unknown",
    }


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def shown_command(argv: list[str], build: Path, replacements: dict[str, str] | None = None) -> str:
    """argv as a report shows it: the build folder as shown_build() names it,
    then each key of `replacements` (a temporary path, a namespace) as its value."""
    text = shlex.join(argv).replace(str(build) + "/", shown_build(build) + "/")
    for old, new in (replacements or {}).items():
        text = text.replace(old, new)
    return text


def shown_build(build: Path) -> str:
    """The build directory as the report names it: relative to the repository."""
    repo = Path(__file__).resolve().parent.parent
    return os.path.relpath(build, repo) if build.is_relative_to(repo) else str(build)


# ---------------------------------------------------------------- report


DOC_HEADER = """# Benchmarks

Vireo measured side by side with its peers on the same guest files. Each
section is written by one benchmark script between its own markers, so that a
script re-run replaces only its section; text outside the markers is kept.

"""


def update_document(path: Path, section: str, begin_marker: str, end_marker: str) -> None:
    """Replaces the text between the markers (creating the file, or appending
    the section, when they are absent); the rest of the file is kept."""
    block = f"{begin_marker}\n{section}{end_marker}\n"
    text = path.read_text() if path.exists() else DOC_HEADER
    begin, end = text.find(begin_marker), text.find(end_marker)
    if begin >= 0 and end > begin:
        after = end + len(end_marker)
        if text[after:after + 1] == "\n":
            after += 1
        text = text[:begin] + block + text[after:]
    elif begin >= 0 or end >= 0:
        raise BenchError(f"{path}: only one of {begin_marker} / {end_marker} is present; fix the file by hand")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def render(title: str, script: str, command: str, started: str, interleaving: str,
           facts: dict[str, str], loads: tuple[str, str], body: list[str]) -> str:
    """A benchmark's section of docs/benchmarks.md: how to re-run it, when and
    where it ran (saying so inside the emulated KVM), the host, then `body`."""
    emulated = os.environ.get("VIREO_EMULATED_KVM") == "1"
    lines = [
        f"## {title}",
        "",
        f"Generated by `{script}`; do not edit between the markers, re-run instead:",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Measured {started}"
        + (" inside the emulated KVM (scripts/emulated-kvm: QEMU TCG with Debian's kvm-amd), where "
           "everything runs at emulation speed: read the ratios, not the times." if emulated else ".")
        + f" {interleaving}",
        "",
        "| host | |",
        "| --- | --- |",
    ]
    lines += [f"| {key} | {value} |" for key, value in facts.items()]
    lines += [f"| load average (1/5/15 min) | {loads[0]} at start, {loads[1]} at end |", ""]
    lines += body
    return "\n".join(lines).rstrip() + "\n"


def publish(output: str | None, body: list[str], *, title: str, script: str, markers: tuple[str, str],
            command: str, started: str, interleaving: str, facts: dict[str, str], load_start: str,
            progress) -> None:
    """Prints the tables of `body`; with `output`, rewrites the script's section
    of that file (render(), between its markers)."""
    print_tables([body])
    if output:
        document = render(title, script, command, started, interleaving, facts, (load_start, load_average()), body)
        update_document(Path(output), document, *markers)
        progress(f"wrote the section \"{title}\" of {output}")


def print_tables(sections: list[list[str]]) -> None:
    for section in sections:
        for line in section:
            if line.startswith("|") or line.startswith("###"):
                print(line)
        print()
