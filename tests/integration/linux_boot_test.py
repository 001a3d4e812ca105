"""Real Linux (Debian's kernel, the busybox image of scripts/build-linux-guest.sh)
under Vireo, driven at its serial console through a pty: a shell, timers and
the guest's clock against the host's, every vCPU online, memory as configured,
PCI with MSI-X, /dev/hwrng fed by virtio-rng, and each way a VM ends:
poweroff, reboot, the ACPI power button from the control socket, a kernel panic."""

import re
import time

import linux_vm
import vmtest

RESET = 4
GUEST_PANIC = 14


def uptime(vm):
    """(host seconds when the answer arrived, guest uptime in seconds)."""
    output = vm.check("cat /proc/uptime")
    return time.monotonic(), float(output.split()[0])


def clock_offset(vm, samples=5):
    """The smallest host-minus-guest time over a few readings: the reading
    least delayed on its way out of the guest."""
    return min(host - guest for host, guest in (uptime(vm) for _ in range(samples)))


class LinuxBoots(linux_vm.LinuxTestCase):
    def assertMemory(self, vm, mib):
        # "Memory: 466276K/523896K available": the second figure is the RAM the
        # firmware's map gave the kernel, which is the configured size less the
        # legacy hole below 1 MiB and the page at 0.
        # Only the lines looked for cross the serial console: under emulation
        # each byte is an exit to the VMM, and all of dmesg takes a minute.
        found = re.search(r"Memory: \d+K/(\d+)K available", vm.check("dmesg | grep Memory:"))
        self.assertIsNotNone(found, "no 'Memory:' line in dmesg")
        total_kib = int(found.group(1))
        self.assertLessEqual(total_kib, mib * 1024)
        self.assertGreaterEqual(total_kib, mib * 1024 - 1024, f"{total_kib} KiB of {mib} MiB")

    def assertCpus(self, vm, count):
        self.assertEqual(vm.check("nproc").strip(), str(count))
        online = vm.check("cat /sys/devices/system/cpu/online").strip()
        self.assertEqual(online, "0" if count == 1 else f"0-{count - 1}")
        # Each CPU ticks its own timer: a CPU without timer interrupts hangs
        # Linux's scheduler on that CPU.
        interrupts = vm.check("grep 'Local timer interrupts' /proc/interrupts")
        counts = [int(n) for n in interrupts.split()[1:1 + count]]
        self.assertEqual(len(counts), count, interrupts)
        self.assertTrue(all(n > 0 for n in counts), interrupts)

    def test_one_vcpu_shell_timers_and_power_button(self):
        vm = self.boot(cpus=1, memory="256M")
        self.assertCpus(vm, 1)
        self.assertMemory(vm, 256)
        started = time.monotonic()
        vm.check("sleep 1", timeout=30)
        self.assertGreaterEqual(time.monotonic() - started, 1.0)
        dmesg, _ = vm.run("dmesg | grep -e 'APIC timer' -e 'TSC deadline'")
        self.assertNotIn("APIC timer disabled", dmesg)
        self.assertIn("TSC deadline timer available", dmesg)
        # The control socket's shutdown reaches init as the power button.
        self.assertEqual(vm.request("shutdown")["result"]["state"], "power button pressed")
        vm.expect(r"vireo-guest: power button pressed: powering off", 60, "acpid's action")
        self.assertEqual(vm.wait(), linux_vm.POWERED_OFF, vm.console[-2000:])

    def test_two_vcpus_clock_pci_msix_and_hwrng(self):
        vm = self.boot(cpus=2, memory="512M")
        self.assertCpus(vm, 2)
        self.assertMemory(vm, 512)

        # The guest's clock keeps step with the host's: within 2% over 20 s.
        first = clock_offset(vm)
        began = time.monotonic()
        vm.check("sleep 20", timeout=60)
        elapsed = time.monotonic() - began
        drift = clock_offset(vm) - first
        self.assertLess(abs(drift), 0.02 * elapsed,
                        f"the guest's clock drifted {drift:+.2f} s against the host's in {elapsed:.1f} s")

        # PCI: the virtio devices were enumerated, and each interrupts by MSI-X.
        devices = vm.check("cat /sys/bus/pci/devices/*/vendor /sys/bus/pci/devices/*/device")
        self.assertIn("0x1af4", devices, "no virtio (Red Hat, 0x1af4) PCI device")
        modes = vm.check("cat /sys/bus/pci/devices/*/msi_irqs/*").split()
        self.assertTrue(modes and all(mode == "msix" for mode in modes), modes)
        interrupts = vm.check("grep PCI-MSI /proc/interrupts")
        self.assertRegex(interrupts, r"virtio\d+-(config|requests|input)", interrupts)
        # virtio-rng feeds the kernel's hwrng.
        self.assertEqual(vm.check("cat /sys/class/misc/hw_random/rng_current").strip(),
                         "virtio_rng.0")
        random = vm.check("dd if=/dev/hwrng bs=64 count=4 2>/dev/null | od -An -v -tx1")
        octets = random.split()
        self.assertEqual(len(octets), 256, random)
        self.assertGreater(len(set(octets)), 64, f"not random: {random}")
        self.power_off(vm)

    def test_four_vcpus_memory_above_4g_and_reboot(self):
        vm = self.boot(cpus=4, memory="5G")
        self.assertCpus(vm, 4)
        self.assertMemory(vm, 5 * 1024)
        vm.type("reboot")
        self.assertEqual(vm.wait(), RESET, vm.console[-2000:])

    def test_a_kernel_panic_is_reported(self):
        vm = self.boot(cpus=1, memory="256M")
        vm.type("echo c > /proc/sysrq-trigger")
        self.assertEqual(vm.wait(), GUEST_PANIC, vm.console[-2000:])
        self.assertIn("Kernel panic", vm.console)
        self.assertIn("the guest kernel panicked", vm.errors())


if __name__ == "__main__":
    vmtest.require_kvm(linux=True)
    vmtest.main()
