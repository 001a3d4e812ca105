#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite.
#   scripts/test.sh              the normal build (build/)
#   scripts/test.sh --sanitize   AddressSanitizer + UBSan build (build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh "$@"
build_dir=build
[[ ${1:-} == --sanitize ]] && build_dir=build-asan

if [[ -c /dev/kvm && -r /dev/kvm && -w /dev/kvm ]] && "$build_dir/bin/vireo" host check >/dev/null 2>&1; then
  echo "KVM: usable (/dev/kvm opened and a VM created); kvm-labelled tests run"
else
  echo "KVM: NOT usable ($("$build_dir/bin/vireo" host check 2>&1 | tail -1)); kvm-labelled tests skip"
fi
cd "$build_dir"
ctest --output-on-failure --timeout 300 -j2
