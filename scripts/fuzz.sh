#!/usr/bin/env bash
# Builds every libFuzzer target with clang (ASan + UBSan) into build-fuzz/ and
# runs each for VIREO_FUZZ_SECONDS (default 20) seconds, two at a time.
#   scripts/fuzz.sh                  all targets
#   scripts/fuzz.sh virtqueue        one target (fuzz/virtqueue_fuzzer.cc), e.g. for longer runs
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${VIREO_FUZZ_SECONDS:-20}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" -DVIREO_FUZZ=ON \
  -DVIREO_FUZZ_SECONDS="$seconds" >/dev/null
ninja -C build-fuzz fuzzers  # the fuzz targets only, not the unit tests
cd build-fuzz
if [[ $# -gt 0 ]]; then
  exec ctest --output-on-failure -R "fuzz.$1_fuzzer"
fi
ctest --output-on-failure -j2 -L fuzz
