#!/usr/bin/env bash
# Sets everything up and boots the demo guest under `vireo run`, its console on
# this terminal. Press Ctrl-] to leave early. On a host without a usable KVM it
# says so at once, and runs the same command inside the emulated KVM
# (scripts/emulated-kvm: QEMU's TCG with Debian's kvm-amd inside).
set -euo pipefail
cd "$(dirname "$0")/.."
emulated=0
if [[ ! -c /dev/kvm || ! -r /dev/kvm || ! -w /dev/kvm ]]; then
  emulated=1
  echo "demo: this host has no usable /dev/kvm: after the build, the demo runs inside an"
  echo "demo: emulated KVM (QEMU TCG with Debian's kvm-amd; slower, the same Vireo)."
fi
scripts/setup.sh
if ((!emulated)) && ! build/bin/vireo host check >/dev/null; then
  emulated=1
  echo "demo: $(build/bin/vireo host check | tail -1)"
  echo "demo: so the demo runs inside an emulated KVM (QEMU TCG with Debian's kvm-amd)."
fi
demo=(build/bin/vireo run --kernel build/guest/demo.elf --cpus 2 --memory 256M)
if ((emulated)); then
  echo "demo: starting the emulated KVM (about 10 s), then the demo guest inside it:"
  exec scripts/emulated-kvm -- "${demo[@]}"
fi
exec "${demo[@]}"
