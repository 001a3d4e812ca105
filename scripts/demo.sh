#!/usr/bin/env bash
# Sets everything up and boots the demo guest under `vireo run`, its console on
# this terminal. Press Ctrl-] to leave early.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/bin/vireo run --kernel build/guest/demo.elf --cpus 2 --memory 256M
