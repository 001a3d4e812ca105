"""Real Linux's own virtio_blk and ext4 on Vireo's disks: the driver takes a
request queue per vCPU (MQ) and uses each; a file system made,
written and synced on a raw disk in one boot reads back in the next through a
qcow2 linked clone of it, whose own writes read back in the third; afterwards the host checks the images with its own
tools (qemu-img check, e2fsck) and reads the files' bytes out of them (debugfs)."""

import hashlib
import os

import linux_vm
import vmtest
from vmtest import host

GREETING = "written by Linux under Vireo"


def sha256_file(path):
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


class LinuxDisks(linux_vm.LinuxTestCase):
    def setUp(self):
        self.folder = self.scratch_folder()

    def boot_with(self, disk):
        return self.boot(cpus=2, memory="512M", disks=[disk])

    def guest_sha256(self, vm, path):
        return vm.check(f"sha256sum {path}").split()[0]

    def file_on_host(self, raw_image, path):
        """A file's bytes, read out of a raw ext4 image by the host's debugfs."""
        out = os.path.join(self.folder, "extracted")
        host("debugfs", "-R", f"dump {path} {out}", raw_image)
        with open(out, "rb") as file:
            data = file.read()
        os.unlink(out)
        return data

    def assertCleanExt4(self, raw_image):
        host("e2fsck", "-fn", raw_image)

    def assertUsesAQueuePerCpu(self, vm):
        """Two vCPUs, two request queues (MQ): Linux maps each CPU to a queue
        whose interrupt comes back to it, so direct reads from CPU 1 complete
        on queue 1 and those from CPU 0 on queue 0."""
        self.assertEqual(vm.check("ls /sys/block/vda/mq").split(), ["0", "1"])
        for cpu in (1, 0):
            queue = f"req.{cpu}"
            before = vm.queue_interrupts((queue,))[queue]
            vm.check(f"taskset -c {cpu} dd if=/dev/vda of=/dev/null bs=4k count=32 iflag=direct")
            after = vm.queue_interrupts((queue,))[queue]
            self.assertGreaterEqual(after - before, 16, f"reads from CPU {cpu} missed {queue}")

    def test_ext4_on_raw_then_on_a_qcow2_linked_clone(self):
        base = os.path.join(self.folder, "base.raw")
        with open(base, "wb") as file:
            file.truncate(256 << 20)

        # Boot 1: make the file system and write it.
        vm = self.boot_with(base)
        self.assertIn("vda", vm.check("cat /proc/partitions"))
        self.assertUsesAQueuePerCpu(vm)
        vm.check("mkfs.ext4 -q /dev/vda", timeout=120)
        vm.check("mount -t ext4 /dev/vda /mnt")
        vm.check(f"echo '{GREETING}' > /mnt/hello.txt")
        vm.check("dd if=/dev/urandom of=/mnt/random.bin bs=1M count=8 2>/dev/null", timeout=120)
        random_sha = self.guest_sha256(vm, "/mnt/random.bin")
        vm.check("sync && umount /mnt", timeout=120)
        self.power_off(vm)

        # The host sees a clean ext4 with the very bytes the guest wrote.
        self.assertCleanExt4(base)
        self.assertEqual(self.file_on_host(base, "/hello.txt").decode(), GREETING + "\n")
        self.assertEqual(hashlib.sha256(self.file_on_host(base, "/random.bin")).hexdigest(),
                         random_sha)

        # A qcow2 linked clone of the raw disk: writes go to the clone only.
        clone = os.path.join(self.folder, "clone.qcow2")
        host(vmtest.VIREO, "disk", "clone", "--linked", base, clone)
        base_sha = sha256_file(base)

        # Boot 2: the guest reads the files back through the clone, from its
        # backing file, then writes.
        vm = self.boot_with(clone)
        vm.check("mount -t ext4 /dev/vda /mnt")
        self.assertEqual(vm.check("cat /mnt/hello.txt").strip(), GREETING)
        self.assertEqual(self.guest_sha256(vm, "/mnt/random.bin"), random_sha)
        vm.check("dd if=/dev/urandom of=/mnt/second.bin bs=1M count=4 2>/dev/null", timeout=120)
        second_sha = self.guest_sha256(vm, "/mnt/second.bin")
        vm.check("echo changed > /mnt/hello.txt && sync && umount /mnt", timeout=120)
        self.power_off(vm)

        self.assertEqual(sha256_file(base), base_sha, "the backing file was written to")
        self.assertIn("No errors were found", host("qemu-img", "check", clone).stdout)
        flat = os.path.join(self.folder, "clone-flat.raw")
        host("qemu-img", "convert", "-O", "raw", clone, flat)
        self.assertCleanExt4(flat)
        self.assertEqual(self.file_on_host(flat, "/hello.txt"), b"changed\n")
        self.assertEqual(hashlib.sha256(self.file_on_host(flat, "/second.bin")).hexdigest(),
                         second_sha)
        self.assertEqual(hashlib.sha256(self.file_on_host(flat, "/random.bin")).hexdigest(),
                         random_sha)

        # Boot 3: the clone reads back, old and new files alike.
        vm = self.boot_with(clone)
        vm.check("mount -t ext4 -o ro /dev/vda /mnt")
        self.assertEqual(vm.check("cat /mnt/hello.txt").strip(), "changed")
        self.assertEqual(self.guest_sha256(vm, "/mnt/random.bin"), random_sha)
        self.assertEqual(self.guest_sha256(vm, "/mnt/second.bin"), second_sha)
        vm.check("umount /mnt")
        self.power_off(vm)


if __name__ == "__main__":
    vmtest.require_kvm(linux=True)
    vmtest.main()
