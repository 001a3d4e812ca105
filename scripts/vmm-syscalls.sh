#!/usr/bin/env bash
# Lists the system calls vireo-vmm makes, traced over workloads
# that reach its code paths: the guest kit's demo (boot, SMP, ACPI power-off),
# uart_echo with every control-socket command, the guest kit's disk guest on
# raw and qcow2 disks (writes, discard, write-zeroes), and real
# Linux bringing up a qcow2 disk and a two-queue vNIC on vhost-net and on the
# userspace path. Traced with the kernel's raw_syscalls:sys_enter event for
# the workload's processes and their children (tracefs: set_event_pid,
# event-fork), not strace: ptrace froze the emulated machine. The list is what
# src/vmm/seccomp_policy.cc allows; run this again when the VMM changes and
# compare. Needs KVM: on a host without it,
#   scripts/emulated-kvm --share build -- scripts/vmm-syscalls.sh build/vmm-syscalls.txt
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/vmm-syscalls.sh OUTPUT}
bin=$PWD/build/bin
work=$(mktemp -d /tmp/vireo-syscalls-XXXXXX)
tracing=/sys/kernel/tracing
[[ -e $tracing/trace ]] || mount -t tracefs tracefs "$tracing"
stop_tracing() {
  echo 0 >"$tracing/events/raw_syscalls/sys_enter/enable" || true
  echo >"$tracing/set_event_pid" || true
  if [[ -n ${reader:-} ]]; then kill "$reader" 2>/dev/null || true; fi
  reader=
}
trap 'stop_tracing; rm -rf "$work"' EXIT
echo 1 >"$tracing/options/event-fork"
echo 4096 >"$tracing/buffer_size_kb"
echo >"$tracing/trace"
# The syscall numbers seen, as the events stream by.
grep --line-buffered -o 'NR [0-9]*' "$tracing/trace_pipe" >"$work/numbers" &
reader=$!
echo 1 >"$tracing/events/raw_syscalls/sys_enter/enable"
# Runs a command with its process (and every child) traced.
trace() { sh -c 'echo $$ >>'"$tracing"'/set_event_pid; exec "$@"' sh "$@" >/dev/null 2>&1 || true; }
n=0

trace "$bin/vireo" run --kernel build/guest/demo.elf --cpus 2 --memory 128M
trace "$bin/vireo" run --kernel build/guest/uart_echo.elf --control-socket "$work/c.sock" </dev/null &
echo_vm=$!
for _ in $(seq 100); do [[ -S $work/c.sock ]] && break; sleep 0.1; done
for command in info pause resume info shutdown stop; do
  echo "{\"command\":\"$command\"}" | socat - "UNIX-CONNECT:$work/c.sock" >/dev/null || true
  sleep 0.5
done
wait "$echo_vm" || true

# The guest kit's disk guest: a raw disk (writes, discard, write-zeroes) and a
# read-only one, then a qcow2 overlay on a raw backing file. (Cache none is
# left out: the emulated machine's /tmp is a tmpfs, which refuses O_DIRECT;
# it changes the open flags, not the calls.)
head -c 4M /dev/zero | tr '\0' '\132' >"$work/disk0.raw"
head -c 1M /dev/zero | tr '\0' '\074' >"$work/disk1.raw"
trace "$bin/vireo" run --kernel build/guest/virtio_blk.elf \
  --disk "$work/disk0.raw,serial=vireo-raw-0" --disk "$work/disk1.raw,readonly,serial=ro-disk" \
  --cmdline "vireo.disks=2 vireo.disk0_sectors=8192 vireo.disk0_serial=vireo-raw-0 \
vireo.disk0_fill=0x5a vireo.disk0_discard_zeroes=1 vireo.disk1_readonly=1 \
vireo.disk1_serial=ro-disk vireo.disk1_fill=0x3c vireo.disk1_sectors=2048" </dev/null
qemu-img create -q -f qcow2 -b "$work/disk0.raw" -F raw "$work/top.qcow2"
trace "$bin/vireo" run --kernel build/guest/virtio_blk.elf \
  --disk "$work/top.qcow2,serial=overlay" \
  --cmdline "vireo.disks=1 vireo.disk0_sectors=8192 vireo.disk0_serial=overlay \
vireo.disk0_fill=0x5a" </dev/null

# Real Linux: its drivers bring up a qcow2 disk and a two-queue vNIC, on
# vhost-net and on the userspace path, then it powers off.
scripts/build-linux-guest.sh --output "$work/linux" >/dev/null
cmdline="$(cat "$work/linux/cmdline.txt") vireo.poweroff"
for vhost in on off; do
  trace "$bin/vireo" run --kernel "$work/linux/vmlinuz" --initrd "$work/linux/initrd.img" \
    --cmdline "$cmdline" --cpus 2 --memory 512M --disk "$work/top.qcow2" \
    --nic "tap=vsys$((n))t,vhost=$vhost,queues=2" </dev/null
done
sleep 1
stop_tracing
sleep 1
# Numbers to names, from the kernel headers.
while read -r _ number; do
  sed -n "s/^#define __NR_\([a-z_0-9]*\) $number\$/\1/p" /usr/include/x86_64-linux-gnu/asm/unistd_64.h
done < <(sort -u "$work/numbers") | sort -u >"$out"
echo "$(wc -l <"$out") system calls in $out"
