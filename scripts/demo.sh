#!/usr/bin/env bash
# Sets everything up and boots the demo guest through the host agent
# (scripts/agent-demo.sh: vireod, the VM created and started through its API,
# its console followed until the guest powers off). On a host without a usable
# KVM it says so at once, and runs the same inside the emulated KVM
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
demo=(scripts/agent-demo.sh)
if ((emulated)); then
  echo "demo: starting the emulated KVM (about 10 s), then the demo guest inside it:"
  exec scripts/emulated-kvm -- "${demo[@]}"
fi
exec "${demo[@]}"
