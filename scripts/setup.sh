#!/usr/bin/env bash
# Installs everything Vireo's build, tests and benchmarks need on Debian 12,
# then configures and builds. Safe to run again: it installs only what is missing.
#
#   scripts/setup.sh              build into build/
#   scripts/setup.sh --sanitize   build with AddressSanitizer + UBSan into build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # build
  cmake ninja-build g++ clang-14 clang libclang-rt-14-dev clang-format pkg-config
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev liburing-dev libseccomp-dev zlib1g-dev libnftables-dev libmnl-dev
  libsqlite3-dev libboost-dev libssl-dev
  # tests, oracles and benchmark peers
  qemu-system-x86 qemu-utils python3 python3-jsonschema hyperfine wrk iproute2 nftables procps acpica-tools socat e2fsprogs
  # the Linux guest image tool, and the emulated KVM's initramfs
  busybox-static cpio kmod zstd
)

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# A real Debian kernel for the loader tests and the Linux guest image tool,
# unpacked (not installed) into a cache folder.
scripts/fetch-debian-kernel.sh

# Line tables only (-g1): file and line in backtraces and sanitizer reports,
# without the full debug info that took a third of the build (Boost.Beast's
# files most); the sanitized build at -O1, as AddressSanitizer suggests, half.
build_dir=build
optimize=-O2
if [[ ${1:-} == --sanitize ]]; then
  build_dir=build-asan
  optimize=-O1
fi
cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=$optimize -g1 -DNDEBUG")
if [[ ${1:-} == --sanitize ]]; then
  cmake_args+=(-DVIREO_SANITIZE=ON)
fi
cmake -S . -B "$build_dir" "${cmake_args[@]}" >/dev/null
ninja -C "$build_dir"
