"""What `vireo run`, `vireo-vmm` and `vireo host check` refuse before any KVM is
opened, so on every host alike: bad options, files that are no kernel, and a
host without KVM. Each refusal is status 2 and one line prefixed `vireo:`
that names the option or file and says what is allowed. Needs no KVM (where
there is one, `vireo host check` opens it: its status must match its report)."""

import json
import os
import subprocess
import tempfile
import unittest

import vmtest


class Refusals(unittest.TestCase):
    def setUp(self):
        folder = tempfile.TemporaryDirectory(prefix="vireo-input-errors-")
        self.addCleanup(folder.cleanup)
        self.folder = folder.name

    def file(self, name, data):
        path = os.path.join(self.folder, name)
        with open(path, "wb") as file:
            file.write(data)
        return path

    def vireo(self, *arguments):
        return subprocess.run([vmtest.VIREO, *arguments], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)

    def refuse(self, arguments, *expected):
        result = self.vireo("run", *arguments)
        self.assertEqual(result.returncode, 2, result)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        for text in expected:
            self.assertIn(text, result.stderr)
        return result.stderr


class KernelFiles(Refusals):
    def test_missing_kernel(self):
        message = self.refuse(["--kernel", "/nonexistent/vmlinuz"])
        self.assertEqual(message, "vireo: kernel /nonexistent/vmlinuz: no such file\n")

    def test_a_directory_is_named_as_one(self):
        message = self.refuse(["--kernel", "/etc"])
        self.assertEqual(message, "vireo: kernel /etc: is a directory, not a file\n")

    def test_a_file_that_is_no_kernel(self):
        kernel = self.file("notes.txt", b"hello world\n" * 100)
        self.refuse(["--kernel", kernel], f"kernel {kernel}: not a Linux bzImage or a PVH ELF")

    def test_an_empty_kernel(self):
        kernel = self.file("empty", b"")
        self.refuse(["--kernel", kernel], f"kernel {kernel}: file is empty")

    def test_a_missing_initrd(self):
        self.refuse(["--kernel", vmtest.guest("smoke.elf"), "--initrd", "/nonexistent/initrd"],
                    "initrd /nonexistent/initrd: no such file")

    def test_the_vmm_checks_its_definition_the_same_way(self):
        config = self.file("vm.json", json.dumps({"boot": {"kernel": "/etc"}}).encode())
        result = subprocess.run([vmtest.VMM, "--config", config], capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 2, result)
        self.assertEqual(result.stderr, "vireo: kernel /etc: is a directory, not a file\n")


class Options(Refusals):
    def test_bad_memory_size(self):
        kernel = vmtest.guest("smoke.elf")
        self.refuse(["--kernel", kernel, "--memory", "12X"], "--memory", "12X")
        self.refuse(["--kernel", kernel, "--memory", "1M"], "--memory", "out of range")

    def test_cpu_counts_say_what_is_allowed(self):
        kernel = vmtest.guest("smoke.elf")
        for value, why in (("0", "0 is out of range"), ("65", "65 is out of range"),
                           ("x", "'x' is not a whole number")):
            result = self.vireo("run", "--kernel", kernel, "--cpus", value)
            self.assertEqual(result.returncode, 2, result)
            self.assertIn(f"--cpus: {why}", result.stderr)
            self.assertIn("1 to 64 virtual CPUs", result.stderr)

    def test_the_poll_window_says_what_is_allowed(self):
        kernel = vmtest.guest("smoke.elf")
        for value, why in (("1001", "1001 is out of range"), ("-1", "'-1' is not a whole number")):
            result = self.vireo("run", "--kernel", kernel, "--poll-max-us", value)
            self.assertEqual(result.returncode, 2, result)
            self.assertIn(f"--poll-max-us: {why}", result.stderr)
            self.assertIn("0 to 1000 microseconds", result.stderr)

    def test_help_names_values_as_a_person_would(self):
        help_text = self.vireo("run", "--help").stdout
        self.assertIn("--cpus N", help_text)
        self.assertIn("--kernel PATH", help_text)
        self.assertIn("--memory SIZE", help_text)
        self.assertIn("--poll-max-us US", help_text)
        for machine_talk in ("TEXT", "UINT", "in ["):
            self.assertNotIn(machine_talk, help_text)
        disk_help = self.vireo("disk", "create", "--help").stdout
        self.assertNotIn("TEXT", disk_help)
        self.assertIn("FILE", disk_help)


class HostCheck(Refusals):
    """Holds on every host: --unmodified-guests passes exactly where the
    report says KVM is usable and has hardware virtualization."""

    def test_unmodified_guests_need_hardware_virtualization(self):
        report = json.loads(self.vireo("host", "check", "--json").stdout)
        expected = 0 if report["kvm_usable"] and report["hardware_virtualization"] else 2
        check = self.vireo("host", "check", "--unmodified-guests")
        self.assertEqual(check.returncode, expected, (report, check))
        as_json = self.vireo("host", "check", "--unmodified-guests", "--json")
        self.assertEqual(as_json.returncode, expected, as_json)
        if report["kvm_usable"] and not report["hardware_virtualization"]:
            self.assertIn("no vmx or svm flag", check.stdout)
            self.assertIn("hardware virtualization", json.loads(as_json.stdout)["reason"])


class HostWithoutKvm(Refusals):
    """Run where KVM is not usable (the build machines' host side)."""

    def setUp(self):
        super().setUp()
        usable, _ = vmtest.kvm_usable()
        if usable:
            self.skipTest("KVM is usable here; these are the refusals of a host without it")

    def test_host_check_and_run_agree_on_status_2(self):
        check = self.vireo("host", "check")
        self.assertEqual(check.returncode, 2, check)
        self.assertIn("KVM is not usable", check.stdout)
        run = self.vireo("run", "--kernel", vmtest.guest("smoke.elf"))
        self.assertEqual(run.returncode, 2, run)
        self.assertTrue(run.stderr.startswith("vireo: "), run.stderr)
        self.assertIn("/dev/kvm", run.stderr)

    def test_json_calls_it_a_host_problem(self):
        run = self.vireo("run", "--kernel", vmtest.guest("smoke.elf"), "--json")
        report = json.loads(run.stdout)
        self.assertEqual(report["reason"], "host-error")
        self.assertEqual(report["exit_status"], 2)
        check = json.loads(self.vireo("host", "check", "--json").stdout)
        self.assertFalse(check["kvm_usable"])

    def test_a_bad_kernel_is_named_before_the_missing_kvm(self):
        kernel = self.file("notes.txt", b"hello world\n" * 100)
        self.refuse(["--kernel", kernel], "not a Linux bzImage or a PVH ELF")


if __name__ == "__main__":
    vmtest.main()
