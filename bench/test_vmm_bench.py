#!/usr/bin/env python3
"""Checks of vmm_bench.py's parts that need no VM: smaps accounting, the
document rewrite between markers, and the child-process clean-up."""
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vmm_bench  # noqa: E402

SMAPS = """\
55d0c0000000-55d0c0100000 r-xp 00000000 08:01 1234                       /usr/bin/vireo-vmm
Size:               1024 kB
Rss:                 800 kB
Pss:                 800 kB
7f0000000000-7f0010000000 rw-p 00000000 00:00 0 
Size:             262144 kB
Rss:                7272 kB
Pss:                7272 kB
7f0010000000-7f0010021000 rw-p 00000000 00:00 0 
Size:                132 kB
Rss:                  12 kB
7f0020000000-7f0020200000 r-xp 00000000 08:01 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
Size:               2048 kB
Rss:                1200 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
Rss:                  40 kB
"""


class ParseSmapsTest(unittest.TestCase):
    def test_splits_guest_ram_file_and_anonymous(self):
        use = vmm_bench.parse_smaps(SMAPS, 262144)
        self.assertEqual(use.total_kib, 800 + 7272 + 12 + 1200 + 40)
        self.assertEqual(use.guest_ram_kib, 7272)
        self.assertEqual(use.guest_ram_size_kib, 262144)
        self.assertEqual(use.file_kib, 2000)
        self.assertEqual(use.anon_kib, 52)
        self.assertEqual(use.overhead_kib, 2052)
        self.assertEqual(use.by_file["/usr/lib/x86_64-linux-gnu/libc.so.6"], 1200)

    def test_refuses_smaps_without_the_guest_ram(self):
        with self.assertRaises(vmm_bench.BenchError):
            vmm_bench.parse_smaps(SMAPS, 131072)

    def test_a_file_of_the_guest_ram_size_is_not_guest_ram(self):
        file_of_that_size = SMAPS.replace("rw-p 00000000 00:00 0 \nSize:             262144",
                                          "r--p 00000000 08:01 7 /var/big.img\nSize:             262144")
        with self.assertRaises(vmm_bench.BenchError):
            vmm_bench.parse_smaps(file_of_that_size, 262144)


class UpdateDocumentTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "benchmarks.md"

    def tearDown(self):
        self.dir.cleanup()

    def test_creates_the_file_with_the_section(self):
        vmm_bench.update_document(self.path, "figures\n")
        text = self.path.read_text()
        self.assertTrue(text.startswith("# Benchmarks"))
        self.assertIn(f"{vmm_bench.BEGIN_MARKER}\nfigures\n{vmm_bench.END_MARKER}\n", text)

    def test_replaces_only_the_text_between_the_markers(self):
        self.path.write_text(f"# Title\n\nbefore\n\n{vmm_bench.BEGIN_MARKER}\nold\n{vmm_bench.END_MARKER}\n\n"
                             "## Disks\n\nafter\n")
        vmm_bench.update_document(self.path, "new\n")
        self.assertEqual(self.path.read_text(),
                         f"# Title\n\nbefore\n\n{vmm_bench.BEGIN_MARKER}\nnew\n{vmm_bench.END_MARKER}\n\n"
                         "## Disks\n\nafter\n")

    def test_appends_the_section_to_a_file_without_markers(self):
        self.path.write_text("# Title\n\n## Disks\n")
        vmm_bench.update_document(self.path, "new\n")
        self.assertEqual(self.path.read_text(),
                         f"# Title\n\n## Disks\n\n{vmm_bench.BEGIN_MARKER}\nnew\n{vmm_bench.END_MARKER}\n")

    def test_refuses_a_lone_marker(self):
        self.path.write_text(f"# Title\n{vmm_bench.BEGIN_MARKER}\n")
        with self.assertRaises(vmm_bench.BenchError):
            vmm_bench.update_document(self.path, "new\n")


def process_gone(pid: int) -> bool:
    """Exited: no /proc entry, or a zombie waiting for its reaper."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class ChildrenTest(unittest.TestCase):
    def test_kill_all_ends_the_whole_process_group(self):
        children = vmm_bench.Children()
        # The shell's background sleep stands for the vireo-vmm that `vireo run` starts.
        proc = children.spawn(["sh", "-c", "sleep 60 & echo $!; wait"], subprocess.DEVNULL, subprocess.DEVNULL)
        grandchild = int(proc.stdout.readline())
        children.kill_all()
        self.assertIsNotNone(proc.poll())
        deadline = time.monotonic() + 5
        while not process_gone(grandchild) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertTrue(process_gone(grandchild))


class RunnerTest(unittest.TestCase):
    def test_times_first_and_last_byte_and_exit(self):
        with tempfile.TemporaryDirectory() as tmp:
            runner = vmm_bench.Runner(vmm_bench.Children(), Path(tmp), 10)
            result = runner.run(["sh", "-c", "printf a; sleep 0.2; printf b; exit 3"])
        self.assertEqual(result.status, 3)
        self.assertEqual(result.output, "ab")
        self.assertLess(result.first_byte_ns, result.last_byte_ns)
        self.assertGreaterEqual(result.last_byte_ns - result.first_byte_ns, 150_000_000)
        self.assertLessEqual(result.last_byte_ns, result.exit_ns)

    def test_a_hung_child_times_out_and_is_killed(self):
        with tempfile.TemporaryDirectory() as tmp:
            children = vmm_bench.Children()
            runner = vmm_bench.Runner(children, Path(tmp), 0.3)
            with self.assertRaises(vmm_bench.BenchError):
                runner.run(["sleep", "60"])
            self.assertEqual(children._procs, [])


if __name__ == "__main__":
    unittest.main()
