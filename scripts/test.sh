#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite.
#   scripts/test.sh              the normal build (build/)
#   scripts/test.sh --sanitize   AddressSanitizer + UBSan build (build-asan/)
#
# The tests labelled kvm boot VMs. They run on this host's /dev/kvm when it is
# usable, and inside the emulated KVM (scripts/emulated-kvm: QEMU's TCG with
# Debian's kvm-amd inside) when it is not; a VM test that finds no KVM fails
# rather than skips (VIREO_REQUIRE_KVM=1), so no run passes without them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh "$@"
build_dir=build
[[ ${1:-} == --sanitize ]] && build_dir=build-asan

export VIREO_REQUIRE_KVM=1
ctest_args=(--output-on-failure --timeout 900 -j2 --no-tests=error)
cd "$build_dir"
if [[ -c /dev/kvm && -r /dev/kvm && -w /dev/kvm ]] && bin/vireo host check >/dev/null 2>&1; then
  echo "KVM: this host's /dev/kvm; every test runs here"
  ctest "${ctest_args[@]}"
  exit
fi

echo "KVM: none usable on this host ($(bin/vireo host check 2>&1 | tail -1))"
echo "KVM: the tests labelled kvm run inside the emulated KVM (scripts/emulated-kvm)"
status=0
echo "== tests without KVM, on this host"
ctest -LE kvm "${ctest_args[@]}" || status=$?
echo "== tests labelled kvm, inside the emulated KVM"
# QEMU's emulation of SVM has rare faults of its own under load (real Linux
# guests seen panicking in interrupt entry, or hanging silently at boot, about
# once in ten long runs): there, and only there, a failed test runs once more.
# Its first failure stays in the output above its second run.
../scripts/emulated-kvm --timeout 3600 -- ctest -L kvm "${ctest_args[@]}" --repeat until-pass:2 ||
  status=$?
exit "$status"
