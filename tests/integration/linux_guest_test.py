"""The Linux guest image tool, scripts/build-linux-guest.sh: what it writes is a
64-bit bzImage (Debian's), a cpio initramfs with busybox, an /init script and
the virtio modules with their dependencies, and a console command line; a
second run writes the same bytes. Needs no KVM. Skipped (77) when Debian's
kernel cannot be fetched. The boot itself is checked under QEMU's TCG (pure
emulation, no KVM) when qemu-system-x86_64 is installed."""

import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import vmtest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(REPO, "scripts", "build-linux-guest.sh")
FETCH = os.path.join(REPO, "scripts", "fetch-debian-kernel.sh")
TOOLS_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def run_script(output, tmpdir):
    """Runs the tool with its temporary files under tmpdir; returns (stdout, seconds)."""
    started = time.monotonic()
    result = subprocess.run([SCRIPT, "--output", output], capture_output=True, text=True,
                            timeout=240, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, TMPDIR=tmpdir))
    if result.returncode != 0:
        raise AssertionError(f"{SCRIPT} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout, time.monotonic() - started


def decompress(path):
    with open(path, "rb") as file:
        magic = file.read(4)
    if magic == b"\x28\xb5\x2f\xfd":
        command = ["zstd", "-qdc", path]
    elif magic[:2] == b"\x1f\x8b":
        command = ["gzip", "-dc", path]
    else:
        raise AssertionError(f"{path}: neither zstd nor gzip (magic {magic.hex()})")
    return subprocess.run(command, capture_output=True, check=True).stdout


def modinfo(path, field):
    return subprocess.run(["modinfo", "-F", field, path], capture_output=True, text=True,
                          check=True, env=dict(os.environ, PATH=TOOLS_PATH)).stdout.strip()


def module_name(path):
    return os.path.basename(path)[:-len(".ko")].replace("-", "_")


def has_interpreter(elf):
    """True when a 64-bit ELF has a PT_INTERP program header (is dynamically linked)."""
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    return any(struct.unpack_from("<I", elf, phoff + i * phentsize)[0] == 3 for i in range(phnum))


class LinuxGuestImage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.TemporaryDirectory(prefix="vireo-linux-guest-test-")
        cls.tmpdir = os.path.join(cls.folder.name, "tmp")
        os.mkdir(cls.tmpdir)
        cls.output = os.path.join(cls.folder.name, "guest")
        cls.first_stdout, cls.first_seconds = run_script(cls.output, cls.tmpdir)
        cls.first = {}
        for name in ("vmlinuz", "initrd.img", "cmdline.txt"):
            with open(os.path.join(cls.output, name), "rb") as file:
                cls.first[name] = file.read()
        print(f"build-linux-guest.sh took {cls.first_seconds:.1f} s")

        cls.tree = os.path.join(cls.folder.name, "initrd")
        os.mkdir(cls.tree)
        cls.archive = decompress(os.path.join(cls.output, "initrd.img"))
        listing = subprocess.run(["cpio", "-t", "--quiet"], input=cls.archive, capture_output=True,
                                 check=True)
        cls.names = set(listing.stdout.decode().split("\n")) - {""}
        subprocess.run(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], input=cls.archive,
                       cwd=cls.tree, check=True, capture_output=True)

        vmlinuz = cls.first["vmlinuz"]
        version_offset, = struct.unpack_from("<H", vmlinuz, 0x20E)
        version = vmlinuz[0x200 + version_offset:0x200 + version_offset + 256]
        cls.release = version.split(b"\0")[0].split(b" ")[0].decode()
        cls.modules = os.path.join(cls.tree, "lib", "modules", cls.release)

    @classmethod
    def tearDownClass(cls):
        cls.folder.cleanup()

    def path(self, name):
        return os.path.join(self.tree, name)

    def test_writes_the_three_files_and_prints_the_boot_command(self):
        for name in ("vmlinuz", "initrd.img", "cmdline.txt"):
            self.assertGreater(len(self.first[name]), 0, name)
        kernel = os.path.join(self.output, "vmlinuz")
        initrd = os.path.join(self.output, "initrd.img")
        self.assertIn(f"vireo run --kernel {kernel} --initrd {initrd} --cmdline \"console=ttyS0",
                      self.first_stdout)

    def test_vmlinuz_is_a_64_bit_bzimage(self):
        vmlinuz = self.first["vmlinuz"]
        self.assertEqual(struct.unpack_from("<H", vmlinuz, 0x1FE)[0], 0xAA55)
        self.assertEqual(vmlinuz[0x202:0x206], b"HdrS")
        protocol, = struct.unpack_from("<H", vmlinuz, 0x206)
        self.assertGreaterEqual(protocol, 0x20C, "xloadflags needs boot protocol 2.12")
        xloadflags, = struct.unpack_from("<H", vmlinuz, 0x236)
        self.assertTrue(xloadflags & 1, f"XLF_KERNEL_64 clear in xloadflags {xloadflags:#x}")
        self.assertRegex(self.release, r"^\d+\.\d+\.\d+-\d+-amd64$")

    def test_vmlinuz_is_debians(self):
        cache = os.environ.get("VIREO_KERNEL_CACHE", "/var/cache/vireo/linux")
        with open(os.path.join(cache, "boot", f"vmlinuz-{self.release}"), "rb") as file:
            self.assertEqual(file.read(), self.first["vmlinuz"])

    def test_cmdline_puts_the_console_on_the_serial_port(self):
        arguments = self.first["cmdline.txt"].decode().split()
        self.assertIn("console=ttyS0", arguments)
        self.assertIn("panic=-1", arguments)
        self.assertNotIn("vireo.poweroff", arguments, "the default is the interactive shell")

    def test_init_is_an_executable_shell_script(self):
        self.assertIn("init", self.names)
        init = self.path("init")
        self.assertTrue(os.path.isfile(init) and os.access(init, os.X_OK))
        with open(init) as file:
            text = file.read()
        self.assertTrue(text.startswith("#!/bin/sh\n"))
        for needed in ("mount -t proc", "mount -t sysfs", "mount -t devtmpfs", "insmod",
                       "/sys/bus/virtio/devices", "uname -r", "vireo.poweroff", "poweroff -f",
                       "cttyhack sh"):
            self.assertIn(needed, text)
        # busybox's own shell is the one that runs it in the guest.
        syntax = subprocess.run([self.path("bin/busybox"), "sh", "-n", init], capture_output=True,
                                text=True)
        self.assertEqual(syntax.returncode, 0, syntax.stderr)

    def test_busybox_is_static_with_its_applets(self):
        self.assertIn("bin/busybox", self.names)
        busybox = self.path("bin/busybox")
        with open(busybox, "rb") as file:
            elf = file.read()
        self.assertEqual(elf[:4], b"\x7fELF")
        self.assertFalse(has_interpreter(elf), "bin/busybox is dynamically linked")
        self.assertTrue(os.access(busybox, os.X_OK))
        for applet in ("bin/sh", "sbin/insmod", "sbin/modprobe", "sbin/poweroff", "bin/mount",
                       "sbin/acpid", "usr/bin/setsid", "bin/cttyhack"):
            self.assertEqual(os.readlink(self.path(applet)), "/bin/busybox", applet)

    def test_virtio_modules_are_packed_uncompressed_with_their_dependencies(self):
        packed = {}
        for folder, _, files in os.walk(self.modules):
            for name in files:
                self.assertFalse(re.search(r"\.ko\.(xz|zst|gz)$", name), f"{name} is compressed")
                if name.endswith(".ko"):
                    packed[module_name(name)] = os.path.join(folder, name)
        for needed in ("virtio", "virtio_ring", "virtio_pci", "virtio_pci_modern_dev", "virtio_blk",
                       "virtio_net", "virtio_rng", "virtio_balloon", "virtio_console"):
            self.assertIn(needed, packed)
        for name, path in packed.items():
            with open(path, "rb") as file:
                self.assertEqual(file.read(4), b"\x7fELF", path)
            self.assertTrue(modinfo(path, "vermagic").startswith(self.release + " "), path)
            for dependency in filter(None, modinfo(path, "depends").split(",")):
                self.assertIn(dependency, packed, f"{name} needs {dependency}")

        # depmod's modules.dep agrees, so modprobe works in the guest's shell.
        with open(os.path.join(self.modules, "modules.dep")) as file:
            dep = {module_name(line.split(":")[0]): line.split(":")[1].split()
                   for line in file if ":" in line}
        self.assertEqual(set(dep), set(packed))
        for name in ("virtio_pci", "virtio_blk"):
            for dependency in dep[name]:
                self.assertTrue(os.path.isfile(os.path.join(self.modules, dependency)), dependency)
        self.assertIn("kernel/drivers/virtio/virtio_ring.ko", dep["virtio_blk"])

    def test_init_loads_every_module_after_its_dependencies(self):
        with open(self.path("etc/vireo/modules")) as file:
            order = [line.strip() for line in file if line.strip()]
        loaded = set()
        for entry in order:
            path = os.path.join(self.modules, entry)
            self.assertTrue(os.path.isfile(path), entry)
            for dependency in filter(None, modinfo(path, "depends").split(",")):
                self.assertIn(dependency, loaded, f"{entry} is loaded before {dependency}")
            loaded.add(module_name(entry))
        self.assertEqual(len(order), len(loaded), "a module is listed twice")
        self.assertIn("virtio_pci", loaded)
        self.assertIn("virtio_blk", loaded)

    def test_power_button_handler_powers_off(self):
        handler = self.path("etc/acpi/PWRF/00000080")
        self.assertTrue(os.access(handler, os.X_OK))
        with open(handler) as file:
            self.assertIn("poweroff -f", file.read())

    def test_second_run_writes_the_same_bytes_and_leaves_no_temporary_files(self):
        run_script(self.output, self.tmpdir)
        for name, data in self.first.items():
            with open(os.path.join(self.output, name), "rb") as file:
                self.assertEqual(file.read(), data, f"{name} differs after a second run")
        self.assertEqual(os.listdir(self.tmpdir), [])
        self.assertEqual(sorted(os.listdir(self.output)), ["cmdline.txt", "initrd.img", "vmlinuz"])

    def test_boots_under_qemu_tcg_and_powers_off(self):
        # TCG emulates every instruction itself: unlike this machine's nested
        # KVM, it runs a stock kernel's ring-0 code (slowly, ~15 s here).
        qemu = shutil.which("qemu-system-x86_64")
        if qemu is None:
            self.skipTest("qemu-system-x86_64 is not installed")
        disk = os.path.join(self.folder.name, "disk.raw")
        with open(disk, "wb") as file:
            file.truncate(16 << 20)
        cmdline = self.first["cmdline.txt"].decode().strip() + " vireo.poweroff"
        command = [qemu, "-accel", "tcg", "-machine", "q35", "-cpu", "max", "-m", "512",
                   "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
                   "-kernel", os.path.join(self.output, "vmlinuz"),
                   "-initrd", os.path.join(self.output, "initrd.img"), "-append", cmdline,
                   "-device", "virtio-rng-pci,disable-legacy=on",
                   "-drive", f"if=none,id=disk,format=raw,file={disk}",
                   "-device", "virtio-blk-pci,drive=disk,disable-legacy=on"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=200,
                                stdin=subprocess.DEVNULL)
        console = result.stdout + result.stderr
        self.assertEqual(result.returncode, 0, console)
        self.assertIn(f"vireo-guest: Linux {self.release},", console)
        self.assertRegex(console, r"virtio\d+: rng \(device 0x0004\), driver virtio_rng")
        self.assertRegex(console, r"virtio\d+: block \(device 0x0002\), driver virtio_blk vda "
                                  r"\(32768 sectors\)")
        self.assertNotIn("could not load", console)
        self.assertIn("reboot: Power down", console)


def require_debian_kernel():
    fetch = subprocess.run([FETCH], capture_output=True, text=True, timeout=600,
                           stdin=subprocess.DEVNULL)
    if fetch.returncode != 0:
        why = (fetch.stderr.strip() or fetch.stdout.strip()).splitlines()
        why = why[-1] if why else f"exit status {fetch.returncode}"
        print(f"SKIP: {FETCH} could not fetch Debian's kernel (no apt access?): {why}")
        sys.exit(vmtest.SKIP)


if __name__ == "__main__":
    require_debian_kernel()
    vmtest.main()
