"""virtio-blk end to end: the virtio_blk guest writes a fixed layout to its
disks, flushes, discards, zeroes and sends bad requests; afterwards the host
checks the images' bytes with qemu-io and `qemu-img compare` (and `qemu-img
check` for qcow2). Disks: raw (writable and read-only at once) and a qcow2
overlay on a raw backing file. Also: a disk another VMM holds is refused at
start (exit status 2) with the block layer's message, and --disk's errors.

The layout (sectors of 512 bytes) is the guest's, see guest/tests/virtio_blk.c."""

import json
import os
import shutil
import subprocess
import unittest

import vmtest

SECTOR = 512
BAD_INPUT = 2
GUEST = vmtest.guest("virtio_blk.elf")

# (first sector, sectors, byte) the guest leaves behind on a writable disk.
def written_layout(sectors):
    layout = [(0, 8, 0xa1)]
    layout += [(16 + n, 1, 0xb0 + n) for n in range(8)]
    layout += [(32, 4, 0xc3), (80, 8, 0), (96, 8, 0)]
    layout += [(120, 4, 0), (124, 6, 0x99), (130, 4, 0), (134, 2, 0x99)]
    layout += [(sectors - 1, 1, 0xf7)]
    return layout


DISCARDED = (64, 8)  # written 0xd4, then discarded
DISCARDED_BYTE = 0xd4


def tool(name):
    path = shutil.which(name)
    if path is None:
        raise unittest.SkipTest(f"{name} is not installed (Debian package qemu-utils)")
    return path


def run(*command):
    return subprocess.run(command, capture_output=True, text=True)


def fill_image(path, size, byte, fmt="raw"):
    """A new image of `size` bytes, every byte `byte`."""
    result = run(tool("qemu-img"), "create", "-q", "-f", fmt, path, str(size))
    assert result.returncode == 0, result.stderr
    if byte:
        result = run(tool("qemu-io"), "-f", fmt, "-c", f"write -P {byte:#x} 0 {size}", path)
        assert result.returncode == 0, result.stderr


def expected_image(path, size, fill, discarded_byte):
    """What a writable disk must hold after the guest ran, as a raw file."""
    data = bytearray([fill]) * size
    for first, count, byte in written_layout(size // SECTOR):
        data[first * SECTOR:(first + count) * SECTOR] = bytes([byte]) * (count * SECTOR)
    first, count = DISCARDED
    data[first * SECTOR:(first + count) * SECTOR] = bytes([discarded_byte]) * (count * SECTOR)
    with open(path, "wb") as file:
        file.write(data)


class DiskTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        vmtest.require_kvm()
        if not os.path.exists(GUEST):
            raise unittest.SkipTest(f"{GUEST} is not built (ninja guests)")
        tool("qemu-img")
        tool("qemu-io")

    def setUp(self):
        # One of the runs uses cache mode none, which needs O_DIRECT.
        self.folder = vmtest.direct_io_folder("vireo-disk-test-")
        self.addCleanup(self.folder.cleanup)

    def path(self, name):
        return os.path.join(self.folder.name, name)

    def run_guest(self, disks, cmdline):
        extra = []
        for disk in disks:
            extra += ["--disk", disk]
        result = vmtest.run_vm(GUEST, cmdline=cmdline, extra=extra, timeout=180)
        self.assertEqual(result.status, 1, result)
        self.assertIn("SUMMARY:", result.output, result)
        self.assertNotIn("FAIL:", result.output, result)
        return result

    def assert_pattern(self, image, fmt, first, count, byte):
        result = run(tool("qemu-io"), "-f", fmt, "-c",
                     f"read -P {byte:#x} {first * SECTOR} {count * SECTOR}", image)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("Pattern verification failed", result.stdout,
                         f"{image}: sectors {first}+{count} are not all {byte:#x}")

    def assert_layout(self, image, fmt, size):
        for first, count, byte in written_layout(size // SECTOR):
            self.assert_pattern(image, fmt, first, count, byte)

    def discarded_byte(self, image, fmt, allowed):
        """The byte the discarded range reads as, which must be one of `allowed`."""
        first, count = DISCARDED
        for byte in allowed:
            result = run(tool("qemu-io"), "-f", fmt, "-c",
                         f"read -P {byte:#x} {first * SECTOR} {count * SECTOR}", image)
            if result.returncode == 0 and "Pattern verification failed" not in result.stdout:
                return byte
        self.fail(f"{image}: the discarded sectors read as none of {allowed}")

    def compare(self, expected, image, fmt):
        result = run(tool("qemu-img"), "compare", "-f", "raw", "-F", fmt, expected, image)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_raw_writable_and_read_only(self):
        size, ro_size = 4 << 20, 1 << 20
        disk, ro_disk = self.path("disk0.raw"), self.path("disk1.raw")
        fill_image(disk, size, 0x5a)
        fill_image(ro_disk, ro_size, 0x3c)
        pristine = self.path("pristine1.raw")
        shutil.copy(ro_disk, pristine)
        self.run_guest(
            [f"{disk},serial=vireo-raw-0", f"{ro_disk},readonly,serial=ro-disk"],
            "vireo.disks=2 vireo.disk0_sectors=8192 vireo.disk0_serial=vireo-raw-0 "
            "vireo.disk0_fill=0x5a vireo.disk0_discard_zeroes=1 "
            "vireo.disk1_readonly=1 vireo.disk1_serial=ro-disk vireo.disk1_fill=0x3c "
            "vireo.disk1_sectors=2048")
        self.assert_layout(disk, "raw", size)
        # A raw image punches a hole: the discarded sectors read as zeroes.
        self.assert_pattern(disk, "raw", *DISCARDED, 0)
        expected = self.path("expected.raw")
        expected_image(expected, size, 0x5a, 0)
        self.compare(expected, disk, "raw")
        self.compare(pristine, ro_disk, "raw")

    def test_qcow2_overlay_on_a_raw_backing_file(self):
        size = 4 << 20
        base, top = self.path("base.raw"), self.path("top.qcow2")
        fill_image(base, size, 0x5a)
        pristine = self.path("pristine-base.raw")
        shutil.copy(base, pristine)
        result = run(tool("qemu-img"), "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", top)
        self.assertEqual(result.returncode, 0, result.stderr)
        # Cache mode none (O_DIRECT) on the whole chain; the raw test uses writeback.
        self.run_guest([f"{top},serial=overlay,cache=none"],
                       "vireo.disks=1 vireo.disk0_sectors=8192 vireo.disk0_serial=overlay "
                       "vireo.disk0_fill=0x5a")
        check = run(tool("qemu-img"), "check", "-f", "qcow2", top)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assert_layout(top, "qcow2", size)
        # Discarded data is undefined, but never the backing file's bytes
        # showing through: zeroes, or what was written.
        discarded = self.discarded_byte(top, "qcow2", [0, DISCARDED_BYTE])
        expected = self.path("expected.raw")
        expected_image(expected, size, 0x5a, discarded)
        self.compare(expected, top, "qcow2")
        self.compare(pristine, base, "raw")  # the backing file is never written

    def holder(self, disk, read_only=False):
        """A VMM that keeps `disk` open (its guest spins until killed)."""
        definition = json.dumps({
            "name": "holder",
            "memory_mib": 64,
            "boot": {"kernel": vmtest.guest("machine_exits.elf"), "cmdline": "vireo.action=spin"},
            "console": {"output": "file", "path": "@CONSOLE@", "input": False},
            "control_socket": "@SOCKET@",
            "disks": [{"path": disk, "readonly": read_only}],
        })
        vmm = vmtest.VmmProcess(definition)
        self.addCleanup(vmm.close)
        vmm.wait_for(lambda: "READY" in vmm.console_text(), timeout=60, what="the first VM to run")
        return vmm

    def test_a_disk_in_use_is_refused_at_start(self):
        disk = self.path("shared.raw")
        fill_image(disk, 1 << 20, 0)
        self.holder(disk)
        second = vmtest.run_vm(GUEST, extra=["--disk", disk], timeout=60)
        self.assertEqual(second.status, BAD_INPUT, second)
        self.assertIn(disk, second.errors)
        self.assertIn("in use", second.errors)
        # QEMU's tools see Vireo's lock too: no second writer.
        writer = run(tool("qemu-io"), "-f", "raw", "-c", "write -P 0x11 0 512", disk)
        self.assertNotEqual(writer.returncode, 0, writer.stdout)
        self.assertIn("lock", writer.stderr)
        # A read-only user is refused as well while a writer holds it.
        reader = vmtest.run_vm(GUEST, extra=["--disk", f"{disk},readonly"], timeout=60)
        self.assertEqual(reader.status, BAD_INPUT, reader)

    def test_read_only_disks_are_shared_by_readers_only(self):
        disk = self.path("golden.raw")
        fill_image(disk, 1 << 20, 0x3c)
        self.holder(disk, read_only=True)
        self.run_guest([f"{disk},readonly"],
                       "vireo.disks=1 vireo.disk0_readonly=1 vireo.disk0_fill=0x3c")
        writer = vmtest.run_vm(GUEST, extra=["--disk", disk], timeout=60)
        self.assertEqual(writer.status, BAD_INPUT, writer)
        self.assertIn("in use", writer.errors)

    def test_disk_option_errors(self):
        disk = self.path("d.raw")
        fill_image(disk, 1 << 20, 0)
        cases = [
            (self.path("nope.img"), f"--disk {self.path('nope.img')}: no such file"),
            (f"{disk},rw", "'rw' is not an option of a disk"),
            (f"{disk},serial=" + "x" * 21, "the serial must be 1 to 20 printable ASCII"),
            (",readonly", "no image path"),
            (f"{disk},cache=unsafe", "'cache=unsafe': the cache mode is writeback or none"),
        ]
        for spec, message in cases:
            with self.subTest(spec=spec):
                result = vmtest.run_vm(GUEST, extra=["--disk", spec], timeout=30)
                self.assertEqual(result.status, BAD_INPUT, result)
                self.assertIn(message, result.errors)


if __name__ == "__main__":
    vmtest.main()
