#!/bin/sh
# Boot a guest-kit guest under QEMU/KVM, serial on stdio, exit device on port 0xf4.
#
#   run-in-qemu.sh <microvm|q35> <guest.elf> [qemu args...]
#
# microvm means `-M microvm,pcie=on` (ECAM + MCFG, PCI window 0xc0000000, no
# firmware BAR assignment); q35 boots through SeaBIOS (slow here: it runs
# emulated). Defaults (-m 256M -smp 1) come first, so later args override them.
# QEMU's exit status is (code << 1) | 1 for a guest exit(code): 1 = all passed,
# 3 = some check failed; 0 means the guest powered off (ACPI S5) or was reset.
# Environment: QEMU (binary, default qemu-system-x86_64).
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 <microvm|q35> <guest.elf> [qemu args...]" >&2
    exit 2
fi
machine=$1
kernel=$2
shift 2
case "$machine" in
    microvm) machine_args="-M microvm,pcie=on" ;;
    q35) machine_args="-M q35 -nic none" ;;
    *)
        echo "$0: unknown machine '$machine' (microvm or q35)" >&2
        exit 2
        ;;
esac
if [ ! -f "$kernel" ]; then
    echo "$0: no such guest: $kernel" >&2
    exit 2
fi
# shellcheck disable=SC2086 # machine_args is a list of words
exec "${QEMU:-qemu-system-x86_64}" -accel kvm $machine_args -m 256M -smp 1 \
    -display none -serial stdio -monitor none -no-reboot \
    -device isa-debug-exit,iobase=0xf4,iosize=4 \
    -kernel "$kernel" "$@"
