"""`vireo disk ...` end to end, with qemu-img and
qemu-io as the oracles: what `vireo disk info --json` says agrees with
`qemu-img info --output=json`; images Vireo creates, clones, converts and
resizes pass `qemu-img check` and `qemu-img compare` against what they must
hold; snapshots made by either tool are seen and used by the other; `check
--repair` fixes a crafted leak and what a killed writer left; `bench` issues
the requests it reports. Also every command's refusals (exit status 2, a
message naming the file and the defect, nothing changed). No KVM needed."""

import json
import os
import pty
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import unittest

import vmtest

BAD_INPUT = 2
PROBLEMS = 1
MiB = 1 << 20
GiB = 1 << 30


def tool(name):
    path = shutil.which(name)
    if path is None:
        raise unittest.SkipTest(f"{name} is not installed (Debian package qemu-utils)")
    return path


def run(*command, env=None):
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env,
                          timeout=120)


def qemu_img(*args):
    return run(tool("qemu-img"), *args)


def qemu_info(path):
    result = qemu_img("info", "--output=json", "-U", path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def qemu_io(path, *commands, fmt=None):
    args = [tool("qemu-io")]
    if fmt:
        args += ["-f", fmt]
    for command in commands:
        args += ["-c", command]
    result = run(*args, path)
    assert result.returncode == 0 and "fail" not in result.stdout.lower(), \
        result.stdout + result.stderr
    return result.stdout


def expect_bytes(path, expected, fmt=None):
    """qemu-img compare: the image reads exactly as the bytes of `expected`."""
    reference = path + ".expected.raw"
    with open(reference, "wb") as f:
        f.write(expected)
    args = ["compare", "-F", "raw"]
    if fmt:
        args += ["-f", fmt]
    result = qemu_img(*args, path, reference)
    os.unlink(reference)
    assert result.returncode == 0, result.stdout + result.stderr


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def add_leak(path):
    """Counts one cluster past the end of a qcow2 image that nothing uses: a leak."""
    with open(path, "r+b") as f:
        header = f.read(104)
        cluster_size = 1 << struct.unpack(">I", header[20:24])[0]
        table = struct.unpack(">Q", header[48:56])[0]
        f.seek(table)
        block = struct.unpack(">Q", f.read(8))[0]
        f.seek(0, os.SEEK_END)
        cluster = (f.tell() + cluster_size - 1) // cluster_size
        assert cluster < cluster_size // 2, "the test image must be small"
        f.truncate((cluster + 1) * cluster_size)
        f.seek(block + 2 * cluster)
        f.write(struct.pack(">H", 1))


class Cli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="vireo-disk-cli-")
        self.env = dict(os.environ, VIREO_STATE_DIR=os.path.join(self.dir, "state"))

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def vireo(self, *args, status=0):
        result = run(vmtest.VIREO, *args, env=self.env)
        self.assertEqual(result.returncode, status, f"vireo {' '.join(map(str, args))}\n"
                         f"{result.stdout}{result.stderr}")
        return result

    def vireo_json(self, *args, status=0):
        result = self.vireo(*args, "--json", status=status)
        return json.loads(result.stdout)

    def refused(self, *args, message):
        result = self.vireo(*args, status=BAD_INPUT)
        self.assertIn(message, result.stderr)
        self.assertTrue(result.stderr.startswith("vireo: "), result.stderr)
        return result

    def assert_clean(self, path):
        result = qemu_img("check", path)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


class DiskCreateInfo(Cli):
    def test_created_images_match_qemu_info(self):
        cases = [("a.qcow2", "qcow2", "1G", "64K", GiB, 65536),
                 ("b.qcow2", "qcow2", "10M", "4K", 10 * MiB, 4096),
                 ("c.raw", "raw", "5M", None, 5 * MiB, None)]
        for name, fmt, size, cluster, size_bytes, cluster_bytes in cases:
            with self.subTest(name=name):
                path = self.path(name)
                args = ["disk", "create", path, size, "--format", fmt]
                if cluster:
                    args += ["--cluster-size", cluster]
                info = self.vireo_json(*args)
                qemu = qemu_info(path)
                self.assertEqual(info["format"], qemu["format"])
                self.assertEqual(info["virtual_size"], size_bytes)
                self.assertEqual(qemu["virtual-size"], size_bytes)
                self.assertEqual(info["cluster_size"], cluster_bytes)
                self.assertEqual(info["path"], path)
                self.assertEqual(info["snapshots"], [])
                self.assertIsNone(info["backing_file"])
                if fmt == "qcow2":
                    self.assertEqual(qemu["cluster-size"], cluster_bytes)
                    self.assert_clean(path)
                self.assertEqual(info, self.vireo_json("disk", "info", path))
        human = self.vireo("disk", "info", self.path("a.qcow2")).stdout
        self.assertIn("format: qcow2", human)
        self.assertIn("virtual size: 1.0 GiB (1073741824 bytes)", human)

    def test_info_of_qemu_images_agrees_with_qemu(self):
        base = self.path("base.raw")
        qemu_img("create", "-q", "-f", "raw", base, "32M")
        middle = self.path("middle.qcow2")
        self.assertEqual(qemu_img("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw",
                                  middle).returncode, 0)
        top = self.path("top.qcow2")
        self.assertEqual(qemu_img("create", "-q", "-f", "qcow2", "-b", middle, "-F", "qcow2",
                                  top, "64M").returncode, 0)
        qemu_io(top, "write -P 0x42 0 1M")
        for name in ("before", "after"):
            self.assertEqual(qemu_img("snapshot", "-c", name, top).returncode, 0)
        info = self.vireo_json("disk", "info", top)
        qemu = qemu_info(top)
        self.assertEqual(info["format"], qemu["format"])
        self.assertEqual(info["virtual_size"], qemu["virtual-size"])
        self.assertEqual(info["backing_file"], qemu["backing-filename"])
        self.assertEqual(info["backing_format"], qemu["backing-filename-format"])
        self.assertEqual([s["name"] for s in info["snapshots"]],
                         [s["name"] for s in qemu["snapshots"]])
        self.assertEqual([s["id"] for s in info["snapshots"]],
                         [s["id"] for s in qemu["snapshots"]])
        self.assertEqual([link["path"] for link in info["backing_chain"]], [middle, base])
        self.assertEqual([link["format"] for link in info["backing_chain"]], ["qcow2", "raw"])
        self.assertEqual(info["allocated_size"], qemu["actual-size"])
        middle_info = self.vireo_json("disk", "info", middle)
        self.assertEqual(middle_info["backing_file"], "base.raw")
        self.assertEqual(middle_info["virtual_size"], 32 * MiB)  # the backing file's

    def test_create_with_a_backing_file(self):
        os.mkdir(self.path("vm"))
        base = self.path("base.qcow2")
        self.vireo("disk", "create", base, "16M")
        qemu_io(base, "write -P 0x11 0 4M")
        overlay = self.path("vm/overlay.qcow2")
        info = self.vireo_json("disk", "create", overlay, "--backing", base)
        self.assertEqual(info["virtual_size"], 16 * MiB)
        self.assertEqual(info["backing_file"], base)  # absolute stays absolute
        self.assertEqual(qemu_info(overlay)["backing-filename"], base)
        # A relative name is typed from here and stored from the overlay's folder.
        relative = self.path("vm/relative.qcow2")
        cwd = os.getcwd()
        os.chdir(self.dir)
        try:
            info = self.vireo_json("disk", "create", "vm/relative.qcow2", "32M", "-b",
                                   "base.qcow2", "-F", "qcow2")
        finally:
            os.chdir(cwd)
        self.assertEqual(info["backing_file"], "../base.qcow2")
        self.assertEqual(info["virtual_size"], 32 * MiB)
        qemu = qemu_info(relative)
        self.assertEqual(qemu["backing-filename"], "../base.qcow2")
        self.assertEqual(qemu["full-backing-filename"], os.path.join(self.dir, "vm/../base.qcow2"))
        expect_bytes(relative, b"\x11" * (4 * MiB) + bytes(28 * MiB))
        self.assert_clean(relative)

    def test_create_refusals(self):
        existing = self.path("existing.qcow2")
        self.vireo("disk", "create", existing, "1M")
        before = read_file(existing)
        raw = self.path("r.raw")
        cases = [
            (["create", existing, "2M"], f"disk create {existing}: already exists"),
            (["create", self.path("n.qcow2")], "give a SIZE"),
            (["create", self.path("n.qcow2"), "12Q"], "SIZE: '12Q' is not a size"),
            (["create", self.path("n.qcow2"), "1M", "-f", "vmdk"],
             "--format: unknown image format 'vmdk'"),
            (["create", self.path("n.qcow2"), "1M", "--cluster-size", "3K"],
             "--cluster-size: 3K is not a power of two"),
            (["create", self.path("n.qcow2"), "1M", "--cluster-size", "4M"],
             "--cluster-size: 4M is not a power of two from 512 bytes to 2 MiB"),
            (["create", raw, "1M", "-f", "raw", "--cluster-size", "4K"],
             "--cluster-size applies to qcow2 images only"),
            (["create", raw, "-f", "raw", "-b", existing], "only qcow2 images have a backing"),
            (["create", self.path("n.qcow2"), "-b", self.path("nope.qcow2")],
             f"backing file {self.path('nope.qcow2')} does not exist"),
            (["create", self.path("no/dir.qcow2"), "1M"], "the folder"),
            (["create", self.path("n.qcow2"), "1000"], "multiple of 512"),
            (["create", self.path("n.qcow2"), "1M", "-b", existing, "-F", "vhd"],
             "--backing-format: unknown image format 'vhd'"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                self.refused("disk", *args, message=message)
        self.assertEqual(read_file(existing), before)
        self.assertFalse(os.path.exists(self.path("n.qcow2")))
        self.assertFalse(os.path.exists(raw))
        self.refused("disk", "info", self.path("nope.qcow2"), message="nope.qcow2")


class DiskCloneConvert(Cli):
    def chain(self):
        """A raw base under a qcow2 overlay; returns (overlay, expected bytes)."""
        base = self.path("base.raw")
        qemu_img("create", "-q", "-f", "raw", base, "8M")
        qemu_io(base, "write -P 0xaa 0 2M", "write -P 0xbb 6M 1M", fmt="raw")
        overlay = self.path("overlay.qcow2")
        self.vireo("disk", "create", overlay, "-b", base, "-F", "raw")
        qemu_io(overlay, "write -P 0xcc 1M 2M", "write -z 6M 512K")
        expected = bytearray(8 * MiB)
        expected[0:2 * MiB] = b"\xaa" * (2 * MiB)
        expected[6 * MiB:7 * MiB] = b"\xbb" * MiB
        expected[1 * MiB:3 * MiB] = b"\xcc" * (2 * MiB)
        expected[6 * MiB:6 * MiB + 512 * 1024] = bytes(512 * 1024)
        return overlay, bytes(expected)

    def test_linked_clone(self):
        base = self.path("base.qcow2")
        self.vireo("disk", "create", base, "4M")
        qemu_io(base, "write -P 0x5a 0 4M")
        os.mkdir(self.path("vm1"))
        clone = self.path("vm1/disk.qcow2")
        result = self.vireo_json("disk", "clone", "--linked", base, clone)
        self.assertEqual(result["mode"], "linked")
        self.assertEqual(result["format"], "qcow2")
        self.assertEqual(result["virtual_size"], 4 * MiB)
        self.assertEqual(result["backing_file"], base)
        self.assertEqual(qemu_info(clone)["backing-filename"], base)
        self.assertLess(os.path.getsize(clone), 1 * MiB)  # nothing copied
        self.assertEqual(qemu_img("compare", base, clone).returncode, 0)
        qemu_io(clone, "write -P 0x01 0 64K")
        expect_bytes(base, b"\x5a" * (4 * MiB))  # the source is left as it was
        expect_bytes(clone, b"\x01" * 65536 + b"\x5a" * (4 * MiB - 65536))
        self.assert_clean(clone)
        # Relative names are stored relative to the clone's folder.
        cwd = os.getcwd()
        os.chdir(self.dir)
        try:
            result = self.vireo_json("disk", "clone", "--linked", "base.qcow2", "vm1/rel.qcow2")
        finally:
            os.chdir(cwd)
        self.assertEqual(result["backing_file"], "../base.qcow2")
        self.assertEqual(qemu_img("compare", base, self.path("vm1/rel.qcow2")).returncode, 0)

    def test_full_clone_flattens_and_stays_thin(self):
        overlay, expected = self.chain()
        clone = self.path("full.qcow2")
        result = self.vireo_json("disk", "clone", "--full", overlay, clone)
        self.assertEqual(result["mode"], "full")
        self.assertEqual(result["format"], "qcow2")  # the source's
        self.assertEqual(result["virtual_size"], 8 * MiB)
        # Data at 0-3M and 6.5-7M; the rest reads as zeroes and is left out.
        self.assertEqual(result["data_bytes"], 3 * MiB + 512 * 1024)
        self.assertEqual(result["zero_bytes"], 8 * MiB - result["data_bytes"])
        qemu = qemu_info(clone)
        self.assertNotIn("backing-filename", qemu)
        expect_bytes(clone, expected)
        self.assert_clean(clone)
        self.assertEqual(qemu_img("compare", overlay, clone).returncode, 0)
        raw_clone = self.path("full.raw")
        human = self.vireo("disk", "clone", "--full", overlay, raw_clone, "-f", "raw").stdout
        self.assertIn("full clone", human)
        expect_bytes(raw_clone, expected, fmt="raw")
        self.assertLess(os.stat(raw_clone).st_blocks * 512, 4 * MiB)  # holes where zeroes are

    def test_convert_both_ways(self):
        overlay, expected = self.chain()
        raw = self.path("flat.raw")
        result = self.vireo_json("disk", "convert", overlay, raw, "--format", "raw")
        self.assertEqual(result["format"], "raw")
        self.assertEqual(result["data_bytes"], 3 * MiB + 512 * 1024)
        self.assertEqual(qemu_info(raw)["format"], "raw")
        expect_bytes(raw, expected, fmt="raw")
        back = self.path("back.qcow2")
        result = self.vireo_json("disk", "convert", raw, back, "-f", "qcow2", "--cluster-size",
                                 "4K")
        self.assertEqual(result["format"], "qcow2")
        self.assertEqual(qemu_info(back)["cluster-size"], 4096)
        expect_bytes(back, expected)
        self.assert_clean(back)
        self.assertEqual(qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, back).returncode, 0)
        # Images QEMU made convert too, compressed clusters included.
        compressed = self.path("compressed.qcow2")
        self.assertEqual(qemu_img("convert", "-c", "-O", "qcow2", raw, compressed).returncode, 0)
        again = self.path("again.raw")
        self.vireo("disk", "convert", compressed, again, "-f", "raw")
        expect_bytes(again, expected, fmt="raw")

    def test_progress_only_on_a_terminal(self):
        overlay, _ = self.chain()
        # A pipe: no progress at all.
        result = self.vireo("disk", "convert", overlay, self.path("piped.raw"), "-f", "raw")
        self.assertEqual(result.stderr, "")
        # A terminal: a bar that ends at 100%, and the result on stdout.
        master, slave = pty.openpty()
        process = subprocess.Popen([vmtest.VIREO, "disk", "convert", overlay,
                                    self.path("tty.raw"), "-f", "raw", "--json"],
                                   stdout=subprocess.PIPE, stderr=slave, env=self.env)
        os.close(slave)
        screen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        os.close(master)
        stdout, _ = process.communicate(timeout=60)
        self.assertEqual(process.returncode, 0, screen)
        text = screen.decode()
        self.assertIn("convert [", text)
        self.assertIn("100%", text)
        self.assertIn("8.0 MiB of 8.0 MiB", text)
        self.assertEqual(json.loads(stdout)["virtual_size"], 8 * MiB)

    def test_refusals(self):
        overlay, _ = self.chain()
        taken = self.path("taken.qcow2")
        self.vireo("disk", "create", taken, "1M")
        cases = [
            (["clone", overlay, self.path("x.qcow2")], "choose --linked"),
            (["clone", "--linked", "--full", overlay, self.path("x.qcow2")], "choose --linked"),
            (["clone", "--linked", overlay, taken], f"disk clone {taken}: already exists"),
            (["clone", "--full", overlay, taken], "already exists"),
            (["clone", "--linked", overlay, self.path("x.raw"), "-f", "raw"],
             "a linked clone is a qcow2 image"),
            (["clone", "--linked", self.path("nope"), self.path("x.qcow2")], "does not exist"),
            (["clone", "--full", overlay, self.path("none/x.qcow2")], "the folder"),
            (["convert", overlay, self.path("x.img"), "-f", "vdi"], "unknown image format 'vdi'"),
            (["convert", overlay, taken, "-f", "raw"], "disk convert " + taken + ": already"),
            (["convert", self.path("nope"), self.path("x.img"), "-f", "raw"], "nope"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                self.refused("disk", *args, message=message)
        self.assertFalse(os.path.exists(self.path("x.qcow2")))
        self.assertFalse(os.path.exists(self.path("x.img")))
        # Missing --format on convert is a usage error, also status 2.
        self.vireo("disk", "convert", overlay, self.path("x.img"), status=BAD_INPUT)


class DiskSnapshots(Cli):
    def test_snapshots_interoperate_with_qemu(self):
        disk = self.path("disk.qcow2")
        self.vireo("disk", "create", disk, "4M")
        qemu_io(disk, "write -P 0x01 0 1M")
        made = self.vireo_json("disk", "snapshot", "create", disk, "one")["snapshot"]
        self.assertEqual((made["id"], made["name"], made["disk_size"]), ("1", "one", 4 * MiB))
        qemu_io(disk, "write -P 0x02 0 1M")
        self.assertEqual(qemu_img("snapshot", "-c", "two", disk).returncode, 0)
        qemu_io(disk, "write -P 0x03 0 1M")
        listed = qemu_img("snapshot", "-l", disk).stdout
        self.assertIn("one", listed)
        ours = self.vireo_json("disk", "snapshot", "list", disk)["snapshots"]
        self.assertEqual([(s["id"], s["name"]) for s in ours], [("1", "one"), ("2", "two")])
        self.assertEqual([s["name"] for s in qemu_info(disk)["snapshots"]], ["one", "two"])
        self.assert_clean(disk)

        reverted = self.vireo_json("disk", "snapshot", "revert", disk, "one")["snapshot"]
        self.assertEqual(reverted["name"], "one")
        expect_bytes(disk, b"\x01" * MiB + bytes(3 * MiB))
        self.vireo("disk", "snapshot", "revert", disk, "2")  # QEMU's, by id
        expect_bytes(disk, b"\x02" * MiB + bytes(3 * MiB))
        self.assertEqual(qemu_img("snapshot", "-a", "one", disk).returncode, 0)  # Vireo's
        expect_bytes(disk, b"\x01" * MiB + bytes(3 * MiB))
        self.assert_clean(disk)

        human = self.vireo("disk", "snapshot", "delete", disk, "two").stdout
        self.assertIn("deleted snapshot 'two' (id 2)", human)
        self.assertEqual([s["name"] for s in qemu_info(disk).get("snapshots", [])], ["one"])
        self.assertEqual(qemu_img("snapshot", "-d", "one", disk).returncode, 0)
        self.assertEqual(self.vireo_json("disk", "snapshot", "list", disk)["snapshots"], [])
        self.assertIn("no snapshots", self.vireo("disk", "snapshot", "list", disk).stdout)
        self.assert_clean(disk)

    def test_refusals(self):
        disk = self.path("disk.qcow2")
        self.vireo("disk", "create", disk, "1M")
        self.vireo("disk", "snapshot", "create", disk, "s")
        raw = self.path("disk.raw")
        self.vireo("disk", "create", raw, "1M", "-f", "raw")
        cases = [
            (["create", disk, "s"], "a snapshot named 's' exists already (id 1)"),
            (["create", disk, "42"], "'42': a snapshot name must not be empty nor all digits"),
            (["revert", disk, "nope"], "no snapshot with the id or name 'nope'"),
            (["delete", disk, "7"], "no snapshot with the id or name '7'"),
            (["create", raw, "s"], "a raw image has no internal snapshots"),
            (["list", raw], "a raw image has no internal snapshots"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                self.refused("disk", "snapshot", *args, message=message)
        self.assertEqual(len(qemu_info(disk)["snapshots"]), 1)


class DiskResize(Cli):
    def test_grow_and_shrink_qcow2(self):
        disk = self.path("disk.qcow2")
        self.vireo("disk", "create", disk, "4M")
        qemu_io(disk, "write -P 0x61 0 4M")
        result = self.vireo_json("disk", "resize", disk, "8M")
        self.assertEqual((result["old_size"], result["new_size"]), (4 * MiB, 8 * MiB))
        self.assertEqual(qemu_info(disk)["virtual-size"], 8 * MiB)
        expect_bytes(disk, b"\x61" * (4 * MiB) + bytes(4 * MiB))
        self.assert_clean(disk)

        self.refused("disk", "resize", disk, "2M",
                     message=f"disk resize {disk}: shrinking from 8.0 MiB to 2.0 MiB is refused "
                             "(use --shrink")
        self.assertEqual(qemu_info(disk)["virtual-size"], 8 * MiB)
        self.vireo("disk", "resize", "--shrink", disk, "-6M")
        self.assertEqual(qemu_info(disk)["virtual-size"], 2 * MiB)
        self.assert_clean(disk)
        # Growing again shows zeroes, not what was cut off.
        self.vireo("disk", "resize", disk, "+2M")
        expect_bytes(disk, b"\x61" * (2 * MiB) + bytes(2 * MiB))
        self.assert_clean(disk)
        self.refused("disk", "resize", disk, "1000", message="refused")
        self.refused("disk", "resize", "--shrink", disk, "1000", message="not a multiple of 512")
        self.refused("disk", "resize", disk, "lots", message="SIZE: 'lots' is not a size")

    def test_growth_that_needs_a_larger_l1_table(self):
        # 512-byte clusters: one L1 cluster maps 2 MiB, so 100 MiB needs a new table.
        disk = self.path("small.qcow2")
        self.vireo("disk", "create", disk, "1M", "--cluster-size", "512")
        qemu_io(disk, "write -P 0x33 0 1M")
        self.vireo("disk", "resize", disk, "100M")
        self.assert_clean(disk)
        self.assertEqual(qemu_info(disk)["virtual-size"], 100 * MiB)
        qemu_io(disk, "write -P 0x44 99M 1M")
        expect_bytes(disk, b"\x33" * MiB + bytes(98 * MiB) + b"\x44" * MiB)
        self.assert_clean(disk)

    def test_growth_hides_a_longer_backing_file(self):
        base = self.path("base.raw")
        qemu_img("create", "-q", "-f", "raw", base, "8M")
        qemu_io(base, "write -P 0x77 0 8M", fmt="raw")
        overlay = self.path("overlay.qcow2")
        self.vireo("disk", "create", overlay, "4M", "-b", base, "-F", "raw")
        self.vireo("disk", "resize", overlay, "8M")
        expect_bytes(overlay, b"\x77" * (4 * MiB) + bytes(4 * MiB))
        self.assert_clean(overlay)

    def test_resize_keeps_snapshots_usable(self):
        disk = self.path("disk.qcow2")
        self.vireo("disk", "create", disk, "2M")
        qemu_io(disk, "write -P 0x12 0 2M")
        self.vireo("disk", "snapshot", "create", disk, "small")
        self.vireo("disk", "resize", disk, "6M")
        self.vireo("disk", "snapshot", "revert", disk, "small")
        self.assertEqual(qemu_info(disk)["virtual-size"], 2 * MiB)
        expect_bytes(disk, b"\x12" * (2 * MiB))
        self.assert_clean(disk)

    def test_raw(self):
        disk = self.path("disk.raw")
        self.vireo("disk", "create", disk, "1M", "-f", "raw")
        qemu_io(disk, "write -P 0x21 0 1M", fmt="raw")
        self.vireo("disk", "resize", disk, "3M")
        self.assertEqual(os.path.getsize(disk), 3 * MiB)
        expect_bytes(disk, b"\x21" * MiB + bytes(2 * MiB), fmt="raw")
        self.vireo("disk", "resize", disk, "--shrink", "1000")
        self.assertEqual(os.path.getsize(disk), 1000)


class DiskCheck(Cli):
    def test_clean_images(self):
        disk = self.path("disk.qcow2")
        self.vireo("disk", "create", disk, "1M")
        report = self.vireo_json("disk", "check", disk)
        self.assertEqual((report["leaks"], report["corruptions"], report["clean"]), (0, 0, True))
        self.assertIn("no errors found", self.vireo("disk", "check", disk).stdout)
        raw = self.path("disk.raw")
        self.vireo("disk", "create", raw, "1M", "-f", "raw")
        self.assertEqual(self.vireo_json("disk", "check", raw)["format"], "raw")
        self.refused("disk", "check", self.path("nope.qcow2"), message="nope.qcow2")

    def test_repair_a_crafted_leak(self):
        disk = self.path("leaky.qcow2")
        self.vireo("disk", "create", disk, "4M")
        qemu_io(disk, "write -P 0x66 0 1M")
        add_leak(disk)
        self.assertEqual(qemu_img("check", disk).returncode, 3)  # qemu-img: leaks found
        report = self.vireo_json("disk", "check", disk, status=PROBLEMS)
        self.assertEqual((report["leaks"], report["corruptions"]), (1, 0))
        self.assertFalse(report["clean"])
        human = self.vireo("disk", "check", disk, status=PROBLEMS).stdout
        self.assertIn("1 leaked cluster(s), 0 corruption(s)", human)
        self.assertIn("--repair", human)
        report = self.vireo_json("disk", "check", "--repair", disk)
        self.assertEqual((report["leaks"], report["leaks_fixed"], report["clean"]), (1, 1, True))
        self.assert_clean(disk)
        expect_bytes(disk, b"\x66" * MiB + bytes(3 * MiB))
        self.vireo("disk", "check", disk)

    def test_repair_what_a_killed_writer_left(self):
        # QEMU with lazy refcounts updates refcounts only on a clean close:
        # killed, it leaves an image marked dirty whose refcounts are stale.
        disk = self.path("killed.qcow2")
        self.assertEqual(qemu_img("create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", disk,
                                  "16M").returncode, 0)
        # stdbuf: qemu-io's answers come line by line through the pipe. It
        # takes one command at a time; the read after the flush answers once
        # the writes are on the disk.
        writer = subprocess.Popen(["stdbuf", "-oL", tool("qemu-io"), disk],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)

        def command(text, answer):
            writer.stdin.write(text + "\n")
            writer.stdin.flush()
            while True:
                line = writer.stdout.readline()
                self.assertTrue(line, "qemu-io ended early")
                if answer in line:
                    return

        writes = 4
        for i in range(writes):
            command(f"write -P {0x10 + i} {i}M 1M", "wrote 1048576/1048576")
        writer.stdin.write("flush\n")  # answers nothing: the read after it does
        writer.stdin.flush()
        time.sleep(0.5)  # so that qemu-io reads the two commands apart
        command("read -P 16 0 512", "read 512/512")
        writer.send_signal(signal.SIGKILL)
        writer.communicate()
        self.assertNotEqual(qemu_img("check", disk).returncode, 0)
        self.assertTrue(self.vireo_json("disk", "info", disk)["dirty"])
        found = self.vireo_json("disk", "check", disk, status=PROBLEMS)
        self.assertGreater(found["corruptions"] + found["leaks"], 0)
        repaired = self.vireo_json("disk", "check", "--repair", disk)
        self.assertTrue(repaired["clean"])
        self.assertEqual(repaired["corruptions_fixed"], found["corruptions"])
        self.assert_clean(disk)
        self.assertFalse(self.vireo_json("disk", "info", disk)["dirty"])
        qemu_io(disk, *[f"read -P {0x10 + i} {i}M 1M" for i in range(writes)])


class DiskBench(Cli):
    def test_reports_what_it_did(self):
        for fmt in ("raw", "qcow2"):
            disk = self.path(f"bench.{fmt}")
            self.vireo("disk", "create", disk, "16M", "-f", fmt)
            for write in (False, True):
                with self.subTest(fmt=fmt, write=write):
                    args = ["disk", "bench", disk, "-c", "300", "-d", "4", "-s", "8K"]
                    if write:
                        args.append("-w")
                    result = self.vireo_json(*args)
                    self.assertEqual(result["format"], fmt)
                    self.assertEqual(result["operation"], "write" if write else "read")
                    self.assertEqual(result["access"], "sequential")
                    self.assertEqual(result["pattern"], 0)
                    self.assertEqual(result["count"], 300)
                    self.assertEqual(result["depth"], 4)
                    self.assertEqual(result["request_size"], 8192)
                    self.assertEqual(result["step"], 8192)
                    self.assertEqual(result["offset"], 0)
                    self.assertEqual(result["cache"], "writeback")
                    self.assertEqual(result["bytes"], 300 * 8192)
                    self.assertGreater(result["elapsed_seconds"], 0)
                    self.assertGreater(result["iops"], 0)
                    self.assertAlmostEqual(result["mib_per_second"],
                                           result["bytes"] / MiB / result["elapsed_seconds"],
                                           delta=result["mib_per_second"] * 1e-6)
            if fmt == "qcow2":
                self.assert_clean(disk)
        human = self.vireo("disk", "bench", self.path("bench.raw"), "-c", "100", "-d", "2").stdout
        self.assertIn("Sending 100 read requests, 4096 bytes each, 2 in parallel (starting at "
                      "offset 0, step size 4096)", human)
        self.assertIn("Run completed in", human)
        self.assertIn("MiB/s", human)
        self.assertIn("IOPS", human)

    def test_writes_land_where_the_options_say(self):
        # 20 writes of 4 KiB from 64 KiB, every 12 KiB, 8 at once: exactly
        # those ranges hold the pattern afterwards, nothing else changed.
        disk = self.path("pattern.qcow2")
        self.vireo("disk", "create", disk, "1M")
        result = self.vireo_json("disk", "bench", disk, "-w", "-c", "20", "-d", "8", "-s", "4K",
                                 "-S", "12K", "-o", "64K", "--pattern", "90")
        self.assertEqual(result["bytes"], 20 * 4096)
        expected = bytearray(MiB)
        for i in range(20):
            start = 65536 + i * 12288
            expected[start:start + 4096] = b"\x5a" * 4096
        expect_bytes(disk, bytes(expected))
        self.assert_clean(disk)

    def test_random_writes_stay_aligned_and_inside(self):
        disk = self.path("random.raw")
        self.vireo("disk", "create", disk, "1M", "-f", "raw")
        result = self.vireo_json("disk", "bench", disk, "-w", "--random", "-c", "64", "-d", "4",
                                 "-s", "4K", "-o", "512K", "--pattern", "1")
        self.assertEqual((result["access"], result["step"]), ("random", None))
        self.assertEqual(result["pattern"], 1)
        data = read_file(disk)
        self.assertEqual(data[:512 * 1024], bytes(512 * 1024))
        blocks = [data[i:i + 4096] for i in range(512 * 1024, MiB, 4096)]
        self.assertTrue(all(b in (bytes(4096), b"\x01" * 4096) for b in blocks))
        self.assertGreater(sum(b == b"\x01" * 4096 for b in blocks), 16)

    def test_cache_none(self):
        for fmt in ("raw", "qcow2"):
            with self.subTest(fmt=fmt):
                disk = self.path(f"direct.{fmt}")
                self.vireo("disk", "create", disk, "4M", "-f", fmt)
                # 64 writes of 4 KiB from 8 KiB, then 8 of 64 KiB over the last 512 KiB.
                for args in (["-c", "64", "-o", "8K", "--pattern", "7"],
                             ["-c", "8", "-s", "64K", "-o", "3584K", "--pattern", "9"]):
                    result = run(vmtest.VIREO, "disk", "bench", disk, "-t", "none", "-w", *args,
                                 "--json", env=self.env)
                    if result.returncode != 0 and "cache none needs O_DIRECT" in result.stderr:
                        self.skipTest(f"this file system has no O_DIRECT: {result.stderr}")
                    self.assertEqual(result.returncode, 0, result.stderr)
                    self.assertEqual(json.loads(result.stdout)["cache"], "none")
                read = self.vireo_json("disk", "bench", disk, "-t", "none", "-c", "64", "-d", "8")
                self.assertEqual((read["cache"], read["bytes"]), ("none", 64 * 4096))
                expected = bytearray(4 * MiB)
                expected[8192:8192 + 64 * 4096] = b"\x07" * (64 * 4096)
                expected[3584 * 1024:] = b"\x09" * (512 * 1024)
                expect_bytes(disk, bytes(expected), fmt=fmt)
                if fmt == "qcow2":
                    self.assert_clean(disk)

    def test_refusals(self):
        raw = self.path("b.raw")
        self.vireo("disk", "create", raw, "1M", "-f", "raw")
        qcow2 = self.path("b.qcow2")
        self.vireo("disk", "create", qcow2, "1M")
        cases = [
            ([raw, "-d", "0"], "--depth 0 is out of range (1 to 1024)"),
            ([raw, "-c", "0"], "--count must be at least 1"),
            ([raw, "-s", "2M"], "does not fit in the image's 1048576 bytes"),
            ([raw, "-o", "1M"], "does not fit"),
            ([raw, "--random", "-S", "8K"], "--step and --random exclude each other"),
            ([raw, "-t", "unsafe"], "--cache: 'unsafe' is not a cache mode"),
            ([raw, "-t", "none", "-s", "1000"], "--size must be a multiple of 512"),
            ([qcow2, "-t", "none", "-o", "1000"], "--offset must be a multiple of 512"),
            ([raw, "--pattern", "256"], "--pattern: 256 is not a byte"),
            ([self.path("nope.raw")], "nope.raw"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                result = self.refused("disk", "bench", *args, message=message)
                self.assertNotIn("Sending", result.stdout)


if __name__ == "__main__":
    vmtest.main()
