"""Bad guests and definitions that `vireo-vmm` finds while it builds the VM
(on KVM): each is refused with status 2 and a one-line message, prefixed
`vireo:`, that names the file or field and the reason."""

import os
import struct
import subprocess
import tempfile
import unittest

import vmtest


class Refusals(unittest.TestCase):
    """A temp folder for bad files, and `refuse`: vireo run must exit 2 and say why."""

    def setUp(self):
        self.folder = tempfile.TemporaryDirectory(prefix="vireo-errors-")
        self.addCleanup(self.folder.cleanup)

    def file(self, name, data):
        path = os.path.join(self.folder.name, name)
        with open(path, "wb") as file:
            file.write(data)
        return path

    def refuse(self, arguments, *expected):
        result = subprocess.run([vmtest.VIREO, "run", *arguments], capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 2, result)
        self.assertTrue(result.stderr.startswith("vireo: "), result.stderr)
        for text in expected:
            self.assertIn(text, result.stderr)


class BadKernels(Refusals):
    """Kernels whose defects show only while they load, which is after the VMM
    opened KVM (input_errors_test.py has the refusals that come before)."""

    def test_truncated_guest(self):
        with open(vmtest.guest("smoke.elf"), "rb") as file:
            data = file.read()
        # Cut the file in the middle of the last loadable segment's bytes.
        phoff, = struct.unpack_from("<Q", data, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
        ends = []
        for index in range(phnum):
            kind, _, offset, _, _, filesz = struct.unpack_from("<IIQQQQ", data, phoff + index * phentsize)
            if kind == 1 and filesz > 0:  # PT_LOAD
                ends.append((offset, filesz))
        offset, filesz = max(ends)
        kernel = self.file("truncated.elf", data[: offset + filesz // 2])
        self.refuse(["--kernel", kernel], kernel, "truncated")

    def test_truncated_bzimage(self):
        with open(vmtest.guest("boot_conformance.bzImage"), "rb") as file:
            data = file.read()
        kernel = self.file("truncated.bzImage", data[:2048])
        self.refuse(["--kernel", kernel], kernel)

    def test_initrd_too_large_for_ram(self):
        initrd = os.path.join(self.folder.name, "huge.img")
        with open(initrd, "wb") as file:
            file.truncate(64 * 1024 * 1024)
        self.refuse(["--kernel", vmtest.guest("smoke.elf"), "--memory", "32M", "--initrd", initrd],
                    initrd)

    def test_bad_definition_for_vmm(self):
        config = self.file("vm.json", b'{"boot": {"kernel": "/k"}, "vcpus": 99}')
        result = subprocess.run([vmtest.VMM, "--config", config], capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn(f"{config}: vcpus: 99 is out of range (1 to 64)", result.stderr)


if __name__ == "__main__":
    vmtest.require_kvm()
    vmtest.main()
