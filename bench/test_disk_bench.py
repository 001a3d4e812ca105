#!/usr/bin/env python3
"""Checks of disk_bench.py's parts that need neither a VM nor the tools: the
two tools get the same request pattern, results are parsed, write runs on
allocating images start from identical copies, rows are compared with the
fastest qemu-img engine."""
import hashlib
import subprocess
import sys
import tempfile
import types
import unittest.mock
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common  # noqa: E402
import disk_bench  # noqa: E402

KIND = {k.name: k for k in disk_bench.IMAGE_KINDS}
WORKLOAD = {w.name: w for w in disk_bench.WORKLOADS}
VIREO = disk_bench.Tool("vireo", "vireo")
QEMU_IMG = disk_bench.Tool("qemu-img aio=io_uring", "qemu-img", "io_uring")


def cell(image="raw", workload="4k-rand-qd32", write=False, cache="none", count=100):
    return disk_bench.Cell(KIND[image], WORKLOAD[workload], write, cache, count, [VIREO, QEMU_IMG])


def options(argv):
    """The options of a bench command line as {flag: value}, flags alone as True."""
    found, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--pattern="):
            found["--pattern"] = arg.split("=", 1)[1]
        elif arg in ("-w", "--json"):
            found[arg] = True
        elif arg.startswith("-"):
            found[arg] = argv[i + 1]
            i += 1
        i += 1
    return found


class ArgvTest(unittest.TestCase):
    def test_both_tools_get_the_same_request_pattern(self):
        for c in (cell(write=True), cell("qcow2-full", "1m-seq-qd8", False, "writeback", 7)):
            v = options(disk_bench.tool_argv(VIREO, Path("/b/vireo"), "qemu-img", c, Path("/f/x")))
            q = options(disk_bench.tool_argv(QEMU_IMG, Path("/b/vireo"), "qemu-img", c, Path("/f/x")))
            for flag in ("-f", "-t", "-c", "-d", "-s", "-S", "-w", "--pattern"):
                self.assertEqual(v.get(flag), q.get(flag), f"{flag} differs for {c.workload.name}")
            self.assertEqual(q["-i"], "io_uring")

    def test_random_is_a_step_that_visits_every_block_once(self):
        w = WORKLOAD["4k-rand-qd1"]
        blocks = disk_bench.IMAGE_SIZE // w.size
        self.assertEqual(w.step % w.size, 0)
        step_blocks = w.step // w.size
        # gcd 1 with a power-of-two block count: an odd step in blocks.
        self.assertEqual(step_blocks % 2, 1)
        self.assertEqual(blocks & (blocks - 1), 0)
        self.assertNotIn("-S", options(disk_bench.tool_argv(VIREO, Path("v"), "q", cell(workload="1m-seq-qd8"),
                                                            Path("f"))))


class ClustersTest(unittest.TestCase):
    def test_clusters_a_write_run_allocates(self):
        self.assertEqual(disk_bench.clusters_touched(WORKLOAD["1m-seq-qd8"], 1000), 16000)
        # The random step visits 4 KiB blocks, 16 to a cluster: 20000 of them cover all 16384.
        self.assertEqual(disk_bench.clusters_touched(WORKLOAD["4k-rand-qd32"], 20000), 16384)
        self.assertEqual(disk_bench.clusters_touched(WORKLOAD["4k-rand-qd1"], 1), 1)


class ParseTest(unittest.TestCase):
    def test_vireo_json(self):
        c = cell(count=100)
        out = 'Sending...\n{"count": 100, "elapsed_seconds": 0.25, "iops": 400.0}\n'
        self.assertEqual(disk_bench.parse_seconds(VIREO, out, c, ["vireo"]), 0.25)

    def test_vireo_short_run_refused(self):
        out = '{"count": 99, "elapsed_seconds": 0.25}\n'
        with self.assertRaises(disk_bench.BenchError):
            disk_bench.parse_seconds(VIREO, out, cell(count=100), ["vireo"])

    def test_qemu_img_line(self):
        out = ("Sending 100 read requests, 4096 bytes each, 32 in parallel (starting at offset 0, step size 4096)\n"
               "Run completed in 0.123 seconds.\n")
        self.assertEqual(disk_bench.parse_seconds(QEMU_IMG, out, cell(), ["qemu-img"]), 0.123)
        with self.assertRaises(disk_bench.BenchError):
            disk_bench.parse_seconds(QEMU_IMG, "nothing\n", cell(), ["qemu-img"])


class CompareTest(unittest.TestCase):
    def test_the_fastest_engine_is_the_reference(self):
        threads = disk_bench.Tool("qemu-img aio=threads", "qemu-img", "threads")
        c = disk_bench.Cell(KIND["raw"], WORKLOAD["4k-rand-qd1"], False, "none", 1000, [VIREO, QEMU_IMG, threads])
        c.seconds = {"vireo": [1.0, 1.1, 0.9], QEMU_IMG.label: [2.0, 2.0, 2.0], threads.label: [0.5, 0.6, 0.4]}
        self.assertEqual(c.best_peer(), threads.label)
        self.assertAlmostEqual(c.iops("vireo").median, 1000.0)
        summary = "\n".join(disk_bench.goal_summary([c]))
        self.assertIn("(0.50)", summary)
        self.assertIn("MISS", summary)

    def test_plan_measures_every_image_in_both_cache_modes(self):
        cells = disk_bench.plan_cells(["none", "writeback"], 1.0, None)
        for cache in ("none", "writeback"):
            self.assertEqual({c.image.name for c in cells if c.cache == cache}, set(KIND))
        self.assertFalse(any(c.image.name == "qcow2-fresh" and not c.write for c in cells))
        none_row = next(c for c in cells if c.cache == "none")
        self.assertIn("native", [t.aio for t in none_row.tools])
        wb_row = next(c for c in cells if c.cache == "writeback")
        self.assertNotIn("native", [t.aio for t in wb_row.tools])  # qemu-img needs O_DIRECT for it


class ImagesTest(unittest.TestCase):
    def test_write_runs_on_allocating_images_start_from_the_template(self):
        if subprocess.run(["which", "qemu-img"], capture_output=True).returncode != 0:
            self.skipTest("qemu-img is not installed")
        with tempfile.TemporaryDirectory() as tmp:
            images = disk_bench.Images(Path(tmp), "qemu-img")
            images.qemu_img_run("create", "-q", "-f", "qcow2", str(images.path("fresh-template.qcow2")), "1G")
            template = hashlib.sha256(images.path("fresh-template.qcow2").read_bytes()).hexdigest()
            first = images.for_write(KIND["qcow2-fresh"])
            with open(first, "r+b") as f:  # what a write run leaves behind
                f.seek(1 << 20)
                f.write(b"x" * 4096)
            second = images.for_write(KIND["qcow2-fresh"])
            self.assertEqual(hashlib.sha256(second.read_bytes()).hexdigest(), template)


class GuestTest(unittest.TestCase):
    def test_every_workload_runs_on_both_images_against_qemu_io_uring(self):
        with tempfile.TemporaryDirectory() as tmp:
            variants = disk_bench.guest_variants(Path("/b"), "qemu", Path(tmp), 8192)
            self.assertEqual(len(variants), 2 * len(disk_bench.GUEST_IMAGES) * len(disk_bench.GUEST_WORKLOADS))
            for vmm, peer in zip(variants[0::2], variants[1::2]):
                self.assertEqual(vmm.label, "vireo-vmm")
                self.assertEqual((peer.image, peer.workload), (vmm.image, vmm.workload))
                drive = peer.argv[peer.argv.index("-drive") + 1]
                self.assertIn(f"format={peer.image}", drive)
                self.assertIn("aio=io_uring", drive)
                cmdline = peer.argv[peer.argv.index("-append") + 1]
                config = disk_bench.json.loads(Path(vmm.argv[-1]).read_text())
                self.assertEqual(config["boot"]["cmdline"], cmdline, "both VMMs run the same test")
                self.assertIn("bench.event_idx=1", cmdline)
            one_mib = next(v for v in variants if v.workload.name == "1 MiB sequential")
            self.assertIn("bench.count=64 ", disk_bench.json.loads(Path(one_mib.argv[-1]).read_text())
                          ["boot"]["cmdline"])

    def test_rows_compare_each_figure_with_qemu(self):
        with tempfile.TemporaryDirectory() as tmp:
            variants = disk_bench.guest_variants(Path("/b"), "qemu", Path(tmp), 8192)
            for n, v in enumerate(variants):
                speed = 100.0 if v.label == "vireo-vmm" else 80.0 + 5 * n  # QEMU faster row by row
                for figure in v.workload.figures:
                    v.iops[figure] = [speed] * 5
                    v.kicks[figure] = [8192.0] * 5
            lines = disk_bench.guest_section(variants, Path("/b"), Path(tmp), 8192, 5)
        rows = [line for line in lines if line.startswith("| raw") or line.startswith("| qcow2")]
        self.assertEqual(len(rows), 2 * sum(len(w.figures) for w in disk_bench.GUEST_WORKLOADS))
        self.assertIn("| 1.18 | ≥ 1.00 | PASS |", rows[0])  # 100 against 85
        self.assertIn("| 0.74 | ≥ 1.00 | MISS |", rows[-1])  # 100 against 135
        self.assertTrue(any("the lowest, qcow2 read_1024k_qd1, at 0.74" in line for line in lines))


class LinuxTest(unittest.TestCase):
    def test_the_guests_lines_become_mib_per_second(self):
        lines = [f"vireo-guest: disk-bench {figure} bytes=16777216 seconds=2.0"
                 for figure in disk_bench.LINUX_FIGURES]
        output = "\n".join(["Linux version 6.1", *lines, "vireo-guest: disk-bench done: powering off"])
        figures = disk_bench.parse_linux_run(output)
        self.assertEqual(figures["read-4k-qd1"], 8.0)
        self.assertEqual(set(figures), set(disk_bench.LINUX_FIGURES))

    def test_the_queue_count_is_read_and_shown_per_vmm(self):
        self.assertEqual(disk_bench.linux_queues("vireo-guest: disk-bench queues=2\n"), 2)
        with self.assertRaises(disk_bench.BenchError):
            disk_bench.linux_queues("vireo-guest: disk-bench done: powering off\n")
        variants = [disk_bench.LinuxVariant("Vireo", "raw", [], queues={2}),
                    disk_bench.LinuxVariant("QEMU", "raw", [], queues={1}),
                    disk_bench.LinuxVariant("Vireo", "qcow2", [], queues={2}),
                    disk_bench.LinuxVariant("QEMU", "qcow2", [], queues={2})]
        self.assertEqual(disk_bench.queue_counts(variants), "Vireo 2, QEMU 1/2")

    def test_a_failed_or_unfinished_run_is_an_error(self):
        with self.assertRaises(disk_bench.BenchError):
            disk_bench.parse_linux_run("vireo-guest: disk-bench read-4k-qd1 bytes=1 seconds=1\n")
        failed = "vireo-guest: disk-bench write-1m-qd1 failed\nvireo-guest: disk-bench done: powering off\n"
        with self.assertRaisesRegex(disk_bench.BenchError, "write-1m-qd1"):
            disk_bench.parse_linux_run(failed)

    def test_both_vmms_boot_the_same_guest_on_the_same_image(self):
        guest = types.SimpleNamespace(kernel=Path("/g/vmlinuz"), initrd=Path("/g/initrd.img"),
                                      cmdline="console=ttyS0")
        with tempfile.TemporaryDirectory() as tmp:
            variants = disk_bench.linux_variants(Path("/b"), "qemu", Path(tmp), guest)
            self.assertEqual([(v.label, v.image) for v in variants],
                             [("Vireo", "raw"), (disk_bench.QEMU_PEER, "raw"),
                              ("Vireo", "qcow2"), (disk_bench.QEMU_PEER, "qcow2")])
            for vmm, peer in zip(variants[0::2], variants[1::2]):
                config = disk_bench.json.loads(Path(vmm.argv[-1]).read_text())
                self.assertEqual(config["boot"]["cmdline"], peer.argv[peer.argv.index("-append") + 1])
                self.assertIn("vireo.disk-bench", config["boot"]["cmdline"])
                drive = peer.argv[peer.argv.index("-drive") + 1]
                self.assertTrue(drive.startswith(f"file={config['disks'][0]['path']},"))
                self.assertIn(f"format={vmm.image}", drive)


class RetryTest(unittest.TestCase):
    def test_a_failed_run_runs_once_more_only_inside_the_emulated_kvm(self):
        class FlakyRunner:
            def __init__(self):
                self.runs = 0

            def run(self, argv, **options):
                self.runs += 1
                return self.runs

        def passes_second_time(result):
            if result < 2:
                raise disk_bench.BenchError("the guest reset")

        said = []
        for attempts, expected_runs in ((2, 2), (1, 1)):
            runner = FlakyRunner()
            with unittest.mock.patch.object(bench_common, "ATTEMPTS", attempts):
                if attempts == 2:
                    self.assertEqual(disk_bench.run_checked(runner, ["vm"], passes_second_time, said.append), 2)
                    self.assertIn("the guest reset", said[0])
                else:
                    with self.assertRaises(disk_bench.BenchError):
                        disk_bench.run_checked(runner, ["vm"], passes_second_time, said.append)
            self.assertEqual(runner.runs, expected_runs)


if __name__ == "__main__":
    unittest.main()
