"""Every guest-kit guest under vireo-vmm: the exit status and the guest's own
SUMMARY line both have to say it passed."""

import os
import re
import tempfile
import unittest

import vmtest

PASSED = 1  # debug-exit code 0 -> status (0 << 1) | 1


def fnv1a32(data):
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


class Guests(unittest.TestCase):
    def assertPassed(self, run):
        self.assertEqual(run.status, PASSED, run)
        summary = re.search(r"SUMMARY: (\d+) tests, (\d+) failures", run.output)
        self.assertIsNotNone(summary, run)
        self.assertGreater(int(summary.group(1)), 0, run)
        self.assertEqual(int(summary.group(2)), 0, run)
        self.assertNotIn("FAIL:", run.output)

    def test_smoke(self):
        run = vmtest.run_vm(vmtest.guest("smoke.elf"), cpus=2, memory="256M",
                            cmdline="vireo.cpus=2 vireo.mem_mib=256")
        self.assertPassed(run)
        self.assertIn("Vireo guest kit: smoke", run.output)
        self.assertIn("PASS: cpus == vireo.cpus (2)", run.output)
        self.assertIn("~ vireo.mem_mib (256)", run.output)
        self.assertNotIn("SKIP:", run.output)

    def test_demo_powers_off_through_acpi(self):
        run = vmtest.run_vm(vmtest.guest("demo.elf"), cpus=2)
        self.assertEqual(run.status, 0, run)

    def conformance(self, kernel, cpus, memory_mib):
        with tempfile.NamedTemporaryFile(prefix="vireo-initrd-") as initrd:
            data = os.urandom(300 * 1024 + 123)
            initrd.write(data)
            initrd.flush()
            cmdline = (f"console=ttyS0 vireo.cpus={cpus} vireo.mem_mib={memory_mib} "
                       f"vireo.initrd_size={len(data)} vireo.initrd_sum={fnv1a32(data):x}")
            return vmtest.run_vm(kernel, cpus=cpus, memory=f"{memory_mib}M", cmdline=cmdline,
                                 initrd=initrd.name)

    def test_boot_conformance_through_the_bzimage_path(self):
        self.assertPassed(self.conformance(vmtest.guest("boot_conformance.bzImage"), 2, 256))

    def test_boot_conformance_with_ram_above_4g(self):
        self.assertPassed(self.conformance(vmtest.guest("boot_conformance.bzImage"), 4, 5120))

    def test_boot_conformance_through_the_pvh_path(self):
        self.assertPassed(self.conformance(vmtest.guest("boot_conformance.elf"), 3, 512))

    def test_smp_starts_every_cpu(self):
        run = vmtest.run_vm(vmtest.guest("smp.elf"), cpus=8, cmdline="vireo.cpus=8")
        self.assertPassed(run)
        self.assertIn("PASS: MADT lists 8 CPUs == vireo.cpus (8)", run.output)
        self.assertNotIn("SKIP:", run.output)

    def test_smp_with_the_most_vcpus(self):
        run = vmtest.run_vm(vmtest.guest("smp.elf"), cpus=64, memory="512M",
                            cmdline="vireo.cpus=64")
        self.assertPassed(run)
        self.assertIn("PASS: MADT lists 64 CPUs == vireo.cpus (64)", run.output)
        self.assertIn("63 APs reported in", run.output)

    def test_timers_pit_through_the_ioapic_lapic_modes_and_pm_timer(self):
        # Vireo offers the TSC-deadline timer wherever KVM emulates it (every
        # KVM since Linux 3.x), so its absence is a failure here.
        run = vmtest.run_vm(vmtest.guest("timers.elf"), cmdline="vireo.expect_tsc_deadline=1")
        self.assertPassed(run)
        for check in ("PIT: IRQ 0 arrives at IOAPIC pin 2", "nothing arrives at IOAPIC pin 0",
                      "LAPIC one-shot: fired once", "LAPIC periodic:", "TSC deadline: fired once",
                      "PM timer: 3.579545 MHz"):
            self.assertIn(check, run.output)

    def test_uart_echo(self):
        run = vmtest.run_vm(vmtest.guest("uart_echo.elf"),
                            stdin_text="hello vireo\nsecond line\nquit\n")
        self.assertPassed(run)
        self.assertIn("echo: hello vireo", run.output)
        self.assertIn("echo: second line", run.output)

    def test_virtio_rng(self):
        self.assertPassed(vmtest.run_vm(vmtest.guest("virtio_rng.elf")))

    def test_hostile_virtqueues_break_the_device_not_the_vmm(self):
        run = vmtest.run_vm(vmtest.guest("virtio_hostile.elf"), cmdline="vireo.hostile_expect=broken")
        self.assertPassed(run)
        # Each defect is logged once, naming the device, the queue and the defect.
        self.assertIn("virtio-rng: queue 0: buffer outside guest memory", run.errors)
        self.assertIn("descriptor chain loops", run.errors)
        self.assertIn("available index moved by more than the queue size", run.errors)

    def test_exit_bench_reports_figures(self):
        run = vmtest.run_vm(vmtest.guest("exit_bench.elf"))
        self.assertPassed(run)
        for figure in ("pio_ring0_ns", "mmio_ring0_ns", "pio_ring3_ns", "mmio_ring3_ns"):
            self.assertRegex(run.output, rf"BENCH {figure}=\d+")


if __name__ == "__main__":
    vmtest.require_kvm()
    vmtest.main()
