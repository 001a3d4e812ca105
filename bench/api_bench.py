#!/usr/bin/env python3
"""The host agent's API under load (issue 10, "Tests and figures").

    python3 bench/api_bench.py --build build --vms 1000 --output docs/benchmarks.md

Two measurements:

  reads   a vireod with --vms registered VMs (created through the API, on a
          datastore in a temporary folder) serving its API on loopback TCP
          with TLS and an admin token; wrk (Debian's package: it reaches no
          Unix socket) with a bounded load, --connections keep-alive
          connections on --threads threads for --seconds, on
          GET /v1/vms/NAME (one VM) and GET /v1/vms (all of them): requests
          per second and the p50/p99 latencies wrk measured. The creation
          rate of the VMs through the Unix socket comes along.
  power   start + stop of guest-kit VMs (uart_echo, 16 MiB, 1 vCPU): one at a
          time by one client, and --parallel VMs at once from as many
          clients, through vireod's API, against the same done without the
          agent (vireo-vmm started directly, "up" once its control socket
          answers, then its stop command and its exit), interleaved round by
          round. This needs KVM: without /dev/kvm the script runs this part
          of itself inside scripts/emulated-kvm, where only the ratios mean
          anything.

Prints the tables and, with --output, rewrites the text between the markers
<!-- api-bench:begin --> and <!-- api-bench:end --> of that Markdown file;
the rest is kept. Every process it starts is killed and its temporary folder
removed, whatever happens. Needs root (vireod jails its VMMs).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import bench_common
from bench_common import EXIT_SKIP, BenchError, Sample, load_average, ratio

BEGIN_MARKER = "<!-- api-bench:begin -->"
END_MARKER = "<!-- api-bench:end -->"
TITLE = "Host agent API: reads with 1000 VMs, power operations"
RESULT_PREFIX = "API-BENCH-POWER "
REPO = Path(__file__).resolve().parent.parent


def progress(message: str) -> None:
    print(f"[api-bench] {message}", file=sys.stderr, flush=True)


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 600) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Agent:
    """A vireod of the benchmark's own: state, run folder and datastore in
    `root`; stopped, with every VMM it started, by close()."""

    def __init__(self, build: Path, root: Path, listen: str | None = None) -> None:
        self.build = build
        self.root = root
        self.state, self.run_dir, self.datastore = root / "state", root / "run", root / "ds1"
        self.socket = self.run_dir / "vireod.sock"
        self.datastore.mkdir(parents=True)
        self.env = dict(os.environ, VIREO_STATE_DIR=str(self.state),
                        VIREO_RUN_DIR=str(self.run_dir), VIREO_SOCKET=str(self.socket))
        self.log = open(root / "vireod.log", "w")
        arguments = ["--listen", listen] if listen else []
        self.process = subprocess.Popen(
            [str(build / "bin" / "vireod"), "--state-dir", str(self.state), "--run-dir",
             str(self.run_dir), *arguments], stdout=self.log, stderr=subprocess.STDOUT,
            env=self.env, start_new_session=True)
        deadline = time.monotonic() + 60
        while not self.socket.exists() or (listen and "with TLS" not in self.log_text()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"vireod did not come up: {self.log_text()[-2000:]}")
            time.sleep(0.05)
        subprocess.run([str(build / "bin" / "vireo"), "datastore", "add", "ds1",
                        str(self.datastore)], env=self.env, check=True, capture_output=True)

    def log_text(self) -> str:
        return (self.root / "vireod.log").read_text(errors="replace")

    def request(self, method: str, target: str, body=None) -> tuple[int, dict]:
        connection = UnixConnection(str(self.socket))
        connection.request(method, target, body=None if body is None else json.dumps(body))
        response = connection.getresponse()
        answer = json.loads(response.read().decode())
        connection.close()
        return response.status, answer

    def checked(self, method: str, target: str, body=None, expect: int = 200) -> dict:
        status, answer = self.request(method, target, body)
        if status != expect:
            raise BenchError(f"{method} {target}: {status} {answer}")
        return answer

    def vmm_pids(self) -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    arguments = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if os.path.basename(arguments[0]) == b"vireo-vmm" and \
                        str(self.run_dir).encode() in b" ".join(arguments):
                    pids.append(int(entry))
        return pids

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()
        for pid in self.vmm_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while self.vmm_pids() and time.monotonic() < deadline:
            time.sleep(0.05)


def definition(build: Path) -> dict:
    return {"vcpus": 1, "memory_mib": 16, "boot": {"kernel": str(build / "guest" / "uart_echo.elf")}}


# ---------------------------------------------------------------- reads


WRK_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
WRK_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
WRK_ERRORS = re.compile(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)")
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> dict:
    latencies = {f"p{m.group(1)}": float(m.group(2)) * UNIT_MS[m.group(3)]
                 for m in WRK_LATENCY.finditer(output)}
    rate = WRK_RATE.search(output)
    if rate is None or set(latencies) != {"p50", "p99"}:
        raise BenchError(f"cannot read wrk's output:\n{output}")
    errors = WRK_ERRORS.search(output)
    if errors:
        raise BenchError(f"wrk saw failed requests:\n{output}")
    return {"rps": float(rate.group(1)), **latencies}


def bench_reads(args, build: Path, workdir: Path) -> dict:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    agent = Agent(build, workdir / "reads", listen=f"127.0.0.1:{port}")
    try:
        started = time.monotonic()
        for index in range(args.vms):
            agent.checked("POST", "/v1/vms", {"name": f"vm-{index:04d}", "datastore": "ds1",
                                              "definition": definition(build)}, expect=201)
        create_seconds = time.monotonic() - started
        progress(f"created {args.vms} VMs in {create_seconds:.1f} s")
        token = agent.checked("POST", "/v1/tokens", {"name": "bench", "role": "admin"},
                              expect=201)["token"]
        listed = agent.checked("GET", "/v1/vms")
        if len(listed["vms"]) != args.vms:
            raise BenchError(f"{len(listed['vms'])} VMs listed, {args.vms} created")
        results = {"create_per_s": args.vms / create_seconds, "targets": {}}
        middle = f"vm-{args.vms // 2:04d}"
        for target in (f"/v1/vms/{middle}", "/v1/vms"):
            rounds = []
            for _ in range(args.rounds):
                command = ["wrk", "--latency", "-t", str(args.threads), "-c",
                           str(args.connections), "-d", f"{args.seconds}s", "-H",
                           f"Authorization: Bearer {token}", f"https://127.0.0.1:{port}{target}"]
                result = subprocess.run(command, capture_output=True, text=True,
                                        timeout=args.seconds + 60)
                if result.returncode != 0:
                    raise BenchError(f"wrk failed ({result.returncode}): {result.stderr}")
                rounds.append(parse_wrk(result.stdout))
                progress(f"GET {target}: {rounds[-1]}")
            results["targets"][target] = rounds
        results["wrk_command"] = shlex.join(
            ["wrk", "--latency", "-t", str(args.threads), "-c", str(args.connections), "-d",
             f"{args.seconds}s", "-H", "Authorization: Bearer TOKEN",
             f"https://127.0.0.1:PORT/v1/vms/{middle}"])
        results["wrk_version"] = subprocess.run(["wrk", "-v"], capture_output=True,
                                                text=True).stdout.splitlines()[0]
        return results
    finally:
        agent.close()


# ---------------------------------------------------------------- power


class DirectVmm:
    """vireo-vmm without the agent: started from a vm.json in `folder`, up once
    its control socket answers; stopped with its stop command."""

    def __init__(self, build: Path, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.socket = folder / "control.sock"
        self.config = folder / "vm.json"
        document = definition(build)
        document["console"] = {"output": "file", "path": str(folder / "console.log"),
                               "input": False}
        self.config.write_text(json.dumps(document))
        self.build = build
        self.process: subprocess.Popen | None = None

    def request(self, command: str, timeout: float) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(timeout)
            client.connect(str(self.socket))
            client.sendall((json.dumps({"command": command}) + "\n").encode())
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = client.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return json.loads(reply)

    def start(self) -> None:
        if self.socket.exists():
            self.socket.unlink()
        self.process = subprocess.Popen(
            [str(self.build / "bin" / "vireo-vmm"), "--config", str(self.config),
             "--control-socket", str(self.socket), "--seccomp"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while True:  # as vireod: poll every 20 ms until info answers
            if self.process.poll() is not None:
                raise BenchError(f"vireo-vmm ended at once ({self.process.returncode})")
            if self.socket.exists():
                try:
                    self.request("info", 0.5)
                    return
                except (OSError, ValueError):
                    pass
            if time.monotonic() > deadline:
                raise BenchError("vireo-vmm did not answer within 60 s")
            time.sleep(0.02)

    def stop(self) -> None:
        try:
            self.request("stop", 10)
        except (OSError, ValueError):
            pass
        self.process.wait(timeout=60)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def timed(body) -> float:
    started = time.monotonic()
    body()
    return time.monotonic() - started


def all_at_once(function, items) -> None:
    with concurrent.futures.ThreadPoolExecutor(len(items)) as pool:
        for future in [pool.submit(function, item) for item in items]:
            future.result()


def bench_power(args, build: Path, workdir: Path) -> dict:
    """Seconds per start+stop cycle (one VM) and per batch of --parallel
    cycles, through the agent and directly, interleaved."""
    agent = Agent(build, workdir / "power")
    direct = [DirectVmm(build, workdir / "direct" / f"vm-{index}")
              for index in range(args.parallel)]
    names = [f"power-{index}" for index in range(args.parallel)]
    figures = {"agent_one": [], "direct_one": [], "agent_many": [], "direct_many": []}
    try:
        for name in names:
            agent.checked("POST", "/v1/vms", {"name": name, "datastore": "ds1",
                                              "definition": definition(build)}, expect=201)

        def agent_cycle(name: str) -> None:
            agent.checked("POST", f"/v1/vms/{name}/start")
            agent.checked("POST", f"/v1/vms/{name}/stop")

        def direct_cycle(vmm: DirectVmm) -> None:
            vmm.start()
            vmm.stop()

        agent_cycle(names[0])  # warm: the first start makes the VM's uid and files
        direct_cycle(direct[0])
        for round_number in range(args.power_rounds):
            figures["agent_one"].append(timed(lambda: agent_cycle(names[0])))
            figures["direct_one"].append(timed(lambda: direct_cycle(direct[0])))
            figures["agent_many"].append(timed(lambda: all_at_once(agent_cycle, names)))
            figures["direct_many"].append(timed(lambda: all_at_once(direct_cycle, direct)))
            progress(f"power round {round_number + 1}: " + ", ".join(
                f"{key} {values[-1]:.2f} s" for key, values in figures.items()))
        if agent.vmm_pids():
            raise BenchError("VMMs left running after the stops")
        return {"seconds": figures, "parallel": args.parallel,
                "emulated": os.environ.get("VIREO_EMULATED_KVM") == "1"}
    finally:
        for vmm in direct:
            vmm.kill()
        agent.close()


def power_in_emulated_kvm(args, build: Path) -> dict:
    """Runs this script's power part inside scripts/emulated-kvm; its result
    comes back as one line on stdout."""
    command = [str(REPO / "scripts" / "emulated-kvm"), "--cpus", "2", "--memory", "4096",
               "--timeout", "3000", "--", sys.executable, str(Path(__file__).resolve()),
               "--build", str(build), "--part", "power", "--parallel", str(args.parallel),
               "--power-rounds", str(args.power_rounds)]
    progress(f"power part inside the emulated KVM: {shlex.join(command)}")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    result = None
    try:
        for line in process.stdout:  # its progress shown as it comes
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX):])
            else:
                print(line, end="", file=sys.stderr, flush=True)
        process.wait()
    finally:
        if process.poll() is None:  # SIGTERM: the runner ends its VM (SIGKILL would orphan it)
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    if result is None:
        raise BenchError(f"the emulated KVM's run gave no result (exit status "
                         f"{process.returncode})")
    return result


# ---------------------------------------------------------------- report


def reads_section(reads: dict, args) -> list[str]:
    lines = [
        f"### Reads: {args.vms} registered VMs, loopback TCP with TLS and a token",
        "",
        f"{args.vms} VMs (off) registered through the API (Unix socket, one client, one after "
        f"the other: {reads['create_per_s']:.0f} creates/s, each a database transaction and "
        f"a synced folder). Then {reads['wrk_version'].split(' [')[0]} against "
        f"`vireod --listen 127.0.0.1:PORT`, keep-alive connections, the token in a header; "
        f"{args.rounds} runs of {args.seconds} s per request, the median run shown "
        f"(min–max over the runs). Latencies as wrk measures them (request sent to answer "
        f"read, its own loop's time included).",
        "",
        "| request | answer | requests/s | p50 (ms) | p99 (ms) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for target, rounds in reads["targets"].items():
        rps = Sample([r["rps"] for r in rounds])
        p50 = Sample([r["p50"] for r in rounds])
        p99 = Sample([r["p99"] for r in rounds])
        answer = f"all {args.vms} VMs" if target == "/v1/vms" else "one VM (off)"
        lines.append(f"| `GET {target}` | {answer} | {rps.median:.0f} ({rps.spread('{:.0f}')}) | "
                     f"{p50.median:.2f} ({p50.spread('{:.2f}')}) | "
                     f"{p99.median:.2f} ({p99.spread('{:.2f}')}) |")
    lines += ["", "```sh", reads["wrk_command"], "```", ""]
    return lines


def power_section(power: dict, args) -> list[str]:
    seconds = {key: Sample(values) for key, values in power["seconds"].items()}
    parallel = power["parallel"]
    where = ("inside the emulated KVM (scripts/emulated-kvm, 2 vCPUs): the rates are at "
             "emulation speed, read the ratio" if power["emulated"] else "on this host's KVM")
    one = ratio(seconds["direct_one"].median, seconds["agent_one"].median)
    many = ratio(seconds["direct_many"].median, seconds["agent_many"].median)
    runs = len(power["seconds"]["agent_one"])
    lines = [
        "### Power operations: start + stop through vireod against vireo-vmm alone",
        "",
        f"uart_echo guest (16 MiB, 1 vCPU; it runs until stopped), {where}. A cycle is a start "
        "answered (through vireod: `POST /v1/vms/NAME/start` answered once the jailed, "
        "confined VMM answers on its control socket; alone: `vireo-vmm --seccomp` spawned and "
        "polled every 20 ms until its control socket answers `info`) then a stop answered "
        "(vireod: `POST .../stop`, answered once the VMM has ended and its cgroup is gone; "
        "alone: the `stop` command, then the process reaped). One VM: one client, cycles one "
        f"after another; {parallel} VMs: {parallel} clients, each cycling its own VM, at once. "
        f"Operations/s = 2 × cycles / seconds. {runs} rounds, each measuring all four "
        "interleaved; median (min–max) of the rounds.",
        "",
        "| cycle | through vireod (ops/s) | vireo-vmm alone (ops/s) | vireod / alone |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, key, factor, share in (("one VM", "one", 2, one),
                                      (f"{parallel} VMs at once", "many", 2 * parallel, many)):
        agent = Sample([factor / s for s in power["seconds"][f"agent_{key}"]])
        alone = Sample([factor / s for s in power["seconds"][f"direct_{key}"]])
        lines.append(f"| {label} | {agent.median:.2f} ({agent.spread('{:.2f}')}) | "
                     f"{alone.median:.2f} ({alone.spread('{:.2f}')}) | {share:.2f} |")
    lines.append("")
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build", help="build directory (bin/ inside)")
    parser.add_argument("--vms", type=int, default=1000, help="VMs registered for the reads")
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads")
    parser.add_argument("--connections", type=int, default=8, help="wrk's connections")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per request")
    parser.add_argument("--parallel", type=int, default=4, help="VMs cycled at once")
    parser.add_argument("--power-rounds", type=int, default=5, help="rounds of power cycles")
    parser.add_argument("--part", choices=("all", "reads", "power"), default="all")
    parser.add_argument("--output", help="Markdown file whose api-bench section is rewritten")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    build = Path(args.build).resolve()
    for binary in ("vireod", "vireo-vmm", "vireo"):
        if not (build / "bin" / binary).exists():
            print(f"api_bench: {build}/bin/{binary} is not built", file=sys.stderr)
            return 2
    if os.geteuid() != 0:
        print("SKIP: vireod must run as root (it jails its VMMs)", file=sys.stderr)
        return EXIT_SKIP
    if args.part != "power" and shutil.which("wrk") is None:
        print("SKIP: wrk is not installed (scripts/setup.sh installs it)", file=sys.stderr)
        return EXIT_SKIP
    kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
    if args.part == "power" and not kvm:  # the inner run, maybe inside the emulated KVM
        print("SKIP: /dev/kvm is missing", file=sys.stderr)
        return EXIT_SKIP
    command = shlex.join(["python3", "bench/api_bench.py", *argv])

    def body(_children, workdir: Path) -> None:
        if args.part == "power":
            print(RESULT_PREFIX + json.dumps(bench_power(args, build, workdir)), flush=True)
            return
        started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        load_start = load_average()
        sections = []
        if args.part in ("all", "reads"):
            sections.append(reads_section(bench_reads(args, build, workdir), args))
        if args.part == "all":
            power = bench_power(args, build, workdir) if kvm else power_in_emulated_kvm(args, build)
            sections.append(power_section(power, args))
        table = [line for section in sections for line in section]
        facts = bench_common.host_facts("qemu-system-x86_64", REPO, build, ("vireod", "vireo-vmm"))
        facts.pop("QEMU", None)
        facts.pop("THP", None)
        bench_common.publish(
            args.output, table, title=TITLE, script="bench/api_bench.py",
            markers=(BEGIN_MARKER, END_MARKER), command=command, started=started,
            interleaving="The reads on this host; the power cycles, through vireod and alone, "
            "interleaved in one run.", facts=facts, load_start=load_start, progress=progress)

    return bench_common.run_guarded(body, progress, "api-bench-")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
