#!/usr/bin/env bash
# Builds a Linux guest from Debian packages only: Debian's amd64 kernel
# (unpacked by fetch-debian-kernel.sh, not installed) and a busybox initramfs
# that loads the virtio, ext4 and pvpanic modules, prints the kernel release
# and the virtio devices it found, then gives a shell on ttyS0, or powers off
# when the kernel command line has `vireo.poweroff`. See docs/linux-guest.md.
#
#   scripts/build-linux-guest.sh [--output DIR] [--module NAME]... [--program PATH]...
#
#   --output DIR     where to write vmlinuz, initrd.img, cmdline.txt
#                    (default: build/linux-guest/ in the repository)
#   --module NAME    also pack this kernel module and its dependencies (repeatable)
#   --program PATH   also pack this program of the host's, with its shared
#                    libraries, at the same path (repeatable; e.g. /usr/bin/iperf3)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# depmod and modinfo live in /sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"
export LC_ALL=C

die() {
  echo "build-linux-guest: $*" >&2
  exit 1
}
usage() {
  sed -n '8,14s/^# \{0,1\}//p' "$0"
}

output="$repo/build/linux-guest"
# The virtio drivers (dependencies are added and ordered below), what the
# ACPI power button needs to reach busybox acpid (button raises a key event,
# evdev exposes it), pvpanic (a kernel panic is reported to the VMM), and
# ext4 with the checksum its metadata needs.
modules=(virtio virtio_ring virtio_pci_modern_dev virtio_pci virtio_rng virtio_blk virtio_net
  virtio_balloon virtio_console button evdev pvpanic_mmio crc32c_generic ext4)
extra_modules=()
# Host programs packed with their libraries: mkfs.ext4 (busybox makes only ext2).
programs=(/sbin/mke2fs)
while (($#)); do
  case $1 in
    --output)
      (($# >= 2)) || die "--output needs a directory"
      output=$2
      shift 2
      ;;
    --module)
      (($# >= 2)) || die "--module needs a module name (e.g. ext4)"
      extra_modules+=("${2//-/_}")
      shift 2
      ;;
    --program)
      (($# >= 2)) || die "--program needs the path of a program (e.g. /usr/bin/iperf3)"
      [[ -f $2 && -x $2 ]] || die "--program $2: no such executable file"
      programs+=("$2")
      shift 2
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument '$1' (usage: $0 [--output DIR] [--module NAME]...)" ;;
  esac
done

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
package_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
# Installs the Debian packages that are missing, through apt only.
require_packages() {
  local missing=() package
  for package in "$@"; do
    package_installed "$package" || missing+=("$package")
  done
  ((${#missing[@]})) || return 0
  echo "build-linux-guest: installing ${missing[*]}"
  if ! { as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"; } >&2; then
    die "missing Debian packages: ${missing[*]} (apt-get could not install them; install them or run scripts/setup.sh)"
  fi
}

# busybox-static, not busybox: the initramfs has no C library for a dynamic one.
require_packages busybox-static cpio kmod e2fsprogs
[[ -x /bin/busybox ]] || die "/bin/busybox is missing although busybox-static is installed"

cache=${VIREO_KERNEL_CACHE:-/var/cache/vireo/linux}
"$repo/scripts/fetch-debian-kernel.sh" ||
  die "could not fetch Debian's kernel into $cache (needs apt access to a Debian archive)"
kernel=$(find "$cache/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)
[[ -n $kernel ]] || die "no boot/vmlinuz-* in $cache"
release=${kernel##*/vmlinuz-}
moddir=$cache/lib/modules/$release
[[ -d $moddir/kernel ]] || die "$moddir/kernel is missing: the kernel package in $cache is incomplete"
config=$cache/boot/config-$release

work=$(mktemp -d "${TMPDIR:-/tmp}/vireo-linux-guest.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

# Module name -> path relative to $moddir (names use '_' where files may use '-').
declare -A module_path=()
while IFS= read -r path; do
  name=${path##*/}
  name=${name%%.ko*}
  module_path[${name//-/_}]=$path
done < <(cd "$moddir" && find kernel \( -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) | sort)
declare -A builtin=()
if [[ -f $moddir/modules.builtin ]]; then
  while IFS= read -r path; do
    name=${path##*/}
    name=${name%.ko}
    builtin[${name//-/_}]=1
  done <"$moddir/modules.builtin"
fi

# Copies a module into the initramfs uncompressed (busybox insmod and every
# kernel read plain .ko files; the signature stays at the end of the file).
stage_module() {
  local source=$moddir/$1 target=$root/lib/modules/$release/${1%.ko*}.ko
  mkdir -p "${target%/*}"
  case $1 in
    *.ko) cp "$source" "$target" ;;
    *.ko.xz)
      command -v xz >/dev/null || require_packages xz-utils
      xz -dc "$source" >"$target"
      ;;
    *.ko.zst)
      command -v zstd >/dev/null || require_packages zstd
      zstd -qdc "$source" >"$target"
      ;;
    *.ko.gz) gzip -dc "$source" >"$target" ;;
  esac
}

# Depth first, dependencies before the module (the order /init loads them in).
declare -A visited=()
load_order=()
add_module() {
  local name=$1 dependency dependencies
  [[ -z ${visited[$name]:-} ]] || return 0
  visited[$name]=1
  local path=${module_path[$name]}
  stage_module "$path"
  dependencies=$(modinfo -F depends "$root/lib/modules/$release/${path%.ko*}.ko")
  for dependency in ${dependencies//,/ }; do
    [[ -n ${module_path[$dependency]:-} ]] ||
      die "module $name depends on $dependency, which is not in $moddir"
    add_module "$dependency"
  done
  load_order+=("${path%.ko*}.ko")
}

skipped=()
for name in "${modules[@]}"; do
  if [[ -n ${module_path[$name]:-} ]]; then
    add_module "$name"
  elif [[ -n ${builtin[$name]:-} ]]; then
    skipped+=("$name (built in)")
  else
    skipped+=("$name (not in this kernel)")
  fi
done
for name in "${extra_modules[@]}"; do
  if [[ -n ${module_path[$name]:-} ]]; then
    add_module "$name"
  elif [[ -n ${builtin[$name]:-} ]]; then
    skipped+=("$name (built in)")
  else
    die "--module $name: no such module in $moddir and not built in"
  fi
done

# busybox and one symlink per applet, at the paths busybox itself lists.
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,mnt,etc/vireo,var/log}
cp /bin/busybox "$root/bin/busybox"
while IFS= read -r applet; do
  if [[ $applet != bin/busybox && ! -e $root/$applet ]]; then
    ln -s /bin/busybox "$root/$applet"
  fi
done < <(/bin/busybox --list-full)

# A host program at its own path (replacing a busybox applet of that name),
# with every shared library ldd names at the path the loader looks for it.
stage_program() {
  local program=$1 library
  mkdir -p "$root$(dirname "$program")"
  rm -f "$root$program"
  cp -L "$program" "$root$program"
  while read -r library; do
    [[ -n $library && ! -e $root$library ]] || continue
    mkdir -p "$root$(dirname "$library")"
    cp -L "$library" "$root$library"
  done < <(ldd "$program" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
}
for program in "${programs[@]}"; do
  stage_program "$program"
done
ln -sf mke2fs "$root/sbin/mkfs.ext4"

for file in modules.builtin modules.builtin.modinfo modules.order; do
  if [[ -f $moddir/$file ]]; then
    cp "$moddir/$file" "$root/lib/modules/$release/"
  fi
done
# modules.dep and friends, so that modprobe works in the guest's shell too.
depmod -b "$root" "$release" || die "depmod failed on the initramfs module tree"
printf '%s\n' "${load_order[@]}" >"$root/etc/vireo/modules"

# The kernel's built-in initramfs already holds /dev/console, which this
# archive does not need to (and, unprivileged, cannot) create.
cat >"$root/init" <<'EOF'
#!/bin/sh
# PID 1 of the Vireo Linux guest, made by scripts/build-linux-guest.sh.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts

# The build script listed every module after its dependencies.
release=$(uname -r)
while read -r module; do
    insmod "/lib/modules/$release/$module" || echo "vireo-guest: could not load $module"
done </etc/vireo/modules

echo
echo "vireo-guest: Linux $release, $(nproc) CPU(s), $(awk '/^MemTotal/ {print $2}' /proc/meminfo) kB RAM"
echo "vireo-guest: virtio devices:"
found=0
for device in /sys/bus/virtio/devices/*; do
    [ -e "$device" ] || continue
    found=1
    id=$(cat "$device/device")
    case $id in
    0x0001) kind=net ;;
    0x0002) kind=block ;;
    0x0003) kind=console ;;
    0x0004) kind=rng ;;
    0x0005) kind=balloon ;;
    0x0008) kind=scsi ;;
    0x0012) kind=input ;;
    0x0013) kind=vsock ;;
    *) kind=unknown ;;
    esac
    driver=none
    [ -e "$device/driver" ] && driver=$(basename "$(readlink "$device/driver")")
    extra=
    for disk in "$device"/block/*; do
        [ -e "$disk" ] && extra="$extra ${disk##*/} ($(cat "$disk/size") sectors)"
    done
    for interface in "$device"/net/*; do
        [ -e "$interface" ] && extra="$extra ${interface##*/} ($(cat "$interface/address"))"
    done
    echo "  ${device##*/}: $kind (device $id), driver $driver$extra"
done
[ "$found" = 1 ] || echo "  none"
ip link set lo up 2>/dev/null

# vireo.disk-bench on the command line: dd on /dev/vda with O_DIRECT, one
# line of bytes and seconds per figure (bench/disk_bench.py's linux part
# reads them), then power off. Reads cover the first 32 MiB, writes the 32
# MiB from 128 MiB on; "qd8" is eight dd processes at once on their own parts.
uptime_seconds() { cut -d' ' -f1 /proc/uptime; }
timed() {  # name bytes command...
    name=$1 bytes=$2
    shift 2
    start=$(uptime_seconds)
    if "$@"; then
        echo "vireo-guest: $bench $name bytes=$bytes seconds=$(awk "BEGIN {print $(uptime_seconds) - $start}")"
    else
        echo "vireo-guest: $bench $name failed"
    fi
}
dd_read() { dd if=/dev/vda of=/dev/null iflag=direct "$@" 2>/dev/null; }
dd_write() { dd if=/dev/zero of=/dev/vda oflag=direct conv=notrunc "$@" 2>/dev/null; }
eight() {  # dd_read|dd_write first-block: eight processes, 1024 blocks of 4 KiB each
    command=$1 first=$2 i=0 status=0
    pids=
    while [ $i -lt 8 ]; do
        if [ "$command" = dd_read ]; then
            dd_read bs=4k count=1024 skip=$((first + i * 1024)) &
        else
            dd_write bs=4k count=1024 seek=$((first + i * 1024)) &
        fi
        pids="$pids $!"
        i=$((i + 1))
    done
    for pid in $pids; do wait "$pid" || status=1; done
    return $status
}
disk_bench() {
    bench=disk-bench
    echo "vireo-guest: $bench queues=$(ls /sys/block/vda/mq | wc -l)"
    timed read-4k-qd1 16777216 dd_read bs=4k count=4096
    timed write-4k-qd1 16777216 dd_write bs=4k count=4096 seek=32768
    timed read-4k-qd8 33554432 eight dd_read 0
    timed write-4k-qd8 33554432 eight dd_write 32768
    timed read-1m-qd1 33554432 dd_read bs=1M count=32
    timed write-1m-qd1 33554432 dd_write bs=1M count=32 seek=128
}

# vireo.net-bench=HOST on the command line: eth0 becomes 10.99.0.2/24 and
# talks to bench/net_bench.py's servers at HOST, which take 32 MiB on port
# 5001 and 8 MiB a connection on 5003, and send as much on 5002 and 5004:
# TCP one stream and four at once each way, then ping's round trip, then
# small frames each way (below); one line per figure, then power off.
net_up() {  # host port bytes
    dd if=/dev/zero bs=64k count=$(($3 / 65536)) 2>/dev/null | nc "$1" "$2"
}
net_down() {  # host port
    nc "$1" "$2" </dev/null >/dev/null
}
four() {  # command arguments...: four at once
    pids=
    for i in 1 2 3 4; do
        "$@" &
        pids="$pids $!"
    done
    status=0
    for pid in $pids; do wait "$pid" || status=1; done
    return $status
}
net_bench() {
    bench=net-bench host=$1
    ip link set eth0 up && ip addr add 10.99.0.2/24 dev eth0
    tries=0
    until ping -c 1 -W 1 "$host" >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ $tries -lt 60 ] || { echo "vireo-guest: net-bench: $host does not answer"; return; }
    done
    timed tcp-up-1 33554432 net_up "$host" 5001 33554432
    timed tcp-down-1 33554432 net_down "$host" 5002
    timed tcp-up-4 33554432 four net_up "$host" 5003 8388608
    timed tcp-down-4 33554432 four net_down "$host" 5004
    rtt=$(ping -c 50 -i 0.02 "$host" | sed -n 's|.*min/avg/max = [0-9.]*/\([0-9.]*\)/.*|\1|p')
    echo "vireo-guest: net-bench rtt-ms=$rtt"
    if [ -z "$tcp_only" ]; then
        frames_out "$host"
        frames_in "$host"
    fi
}
# vireo.net-serve=ADDRESS: eth0 becomes ADDRESS/24 and serves what net_bench
# above asks of its HOST over TCP (ports 5001-5004, as bench/net_bench.py's
# socat servers do), so that another guest can measure against this one;
# ping answers by itself. Runs until the VM is stopped.
net_serve() {  # address
    ip link set eth0 up && ip addr add "$1/24" dev eth0
    mkdir -p /tmp
    printf '#!/bin/sh\ncat >/dev/null\n' >/tmp/take
    printf '#!/bin/sh\nhead -c 33554432 /dev/zero\n' >/tmp/send-32m
    printf '#!/bin/sh\nhead -c 8388608 /dev/zero\n' >/tmp/send-8m
    chmod +x /tmp/take /tmp/send-32m /tmp/send-8m
    # -ll: keep listening, a child per connection (four at once on 5003, 5004).
    nc -ll -p 5001 -e /tmp/take &
    nc -ll -p 5002 -e /tmp/send-32m &
    nc -ll -p 5003 -e /tmp/take &
    nc -ll -p 5004 -e /tmp/send-8m &
    echo "vireo-guest: net-serve ready"
    wait
}
# Small frames out: the kernel's packet generator (pktgen, in the image when
# it was built with --module pktgen) sends 60-byte UDP frames to HOST for 5 s
# as fast as eth0 takes them, so the VMM's transmit path sets the rate.
pktgen_set() {  # file setting
    echo "$2" >"/proc/net/pktgen/$1"
}
frames_out() {  # host
    if [ ! -d /proc/net/pktgen ]; then
        echo "vireo-guest: net-bench frames-out failed: no pktgen in this image"
        return
    fi
    mac=$(awk -v host="$1" '$1 == host { print $4 }' /proc/net/arp)
    pktgen_set kpktgend_0 rem_device_all
    pktgen_set kpktgend_0 "add_device eth0"
    for setting in "count 0" "pkt_size 60" "delay 0" "dst $1" "dst_mac $mac"; do
        pktgen_set eth0 "$setting"
    done
    pktgen_set pgctrl start &
    sleep 5
    pktgen_set pgctrl stop
    wait
    # "Result: OK: USEC(cBUSY+dIDLE) usec, FRAMES (60byte,0frags)"
    awk '/^Result: OK:/ { printf "vireo-guest: net-bench frames-out frames=%d seconds=%.6f\n", $5, ($3 + 0) / 1e6 }' \
        /proc/net/pktgen/eth0
    pktgen_set kpktgend_0 rem_device_all
}
# Small frames in: HOST's port 5006 sends 60-byte frames from its TAP
# towards eth0 for 5 s and answers with its own "seconds=S"; what eth0
# received meanwhile, over those seconds, is the rate the VMM's receive path
# delivered.
frames_in() {  # host
    before=$(cat /sys/class/net/eth0/statistics/rx_packets)
    sent=$(nc "$1" 5006 </dev/null 2>&1)
    after=$(cat /sys/class/net/eth0/statistics/rx_packets)
    case $sent in
    seconds=*) echo "vireo-guest: net-bench frames-in frames=$((after - before)) $sent" ;;
    *) echo "vireo-guest: net-bench frames-in failed: ${sent:-no answer from $1}" ;;
    esac
}

read -r cmdline </proc/cmdline
# vireo.net-bench-tcp-only: net_bench measures TCP and the round trip only
# (its HOST is another guest, which has no small-frame servers).
case " $cmdline " in
*" vireo.net-bench-tcp-only "*) tcp_only=1 ;;
*) tcp_only= ;;
esac
for argument in $cmdline; do
    if [ "$argument" = vireo.disk-bench ]; then
        disk_bench
        echo "vireo-guest: disk-bench done: powering off"
        poweroff -f
    fi
    if [ "${argument#vireo.net-bench=}" != "$argument" ]; then
        net_bench "${argument#vireo.net-bench=}"
        echo "vireo-guest: net-bench done: powering off"
        poweroff -f
    fi
    if [ "${argument#vireo.net-serve=}" != "$argument" ]; then
        net_serve "${argument#vireo.net-serve=}"
    fi
    if [ "$argument" = vireo.poweroff ]; then
        echo "vireo-guest: vireo.poweroff on the command line: powering off"
        poweroff -f
    fi
done

# The ACPI power button (vireo's control socket `shutdown`) powers off:
# acpid runs /etc/acpi/PWRF/00000080 on the key event.
[ -e /dev/input/event0 ] && acpid -l /var/log/acpid.log

# busybox's poweroff, reboot and halt signal PID 1 (this script) with USR2,
# TERM and USR1, as they would busybox init.
trap 'sync; poweroff -f' USR2
trap 'sync; reboot -f' TERM
trap 'sync; halt -f' USR1

echo "vireo-guest: shell on the console; 'exit' powers the VM off"
setsid cttyhack sh -l </dev/console >/dev/console 2>&1 &
shell=$!
status=unknown
# wait returns early when a trapped signal arrives, and the trap runs then.
while kill -0 "$shell" 2>/dev/null; do
    wait "$shell"
    status=$?
done
# How it ended: exit's status, the last command's at end of input, or 128 + N
# when signal N killed it.
echo "vireo-guest: the shell ended (status $status): powering off"
poweroff -f
EOF
mkdir -p "$root/etc/acpi/PWRF"
cat >"$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "vireo-guest: power button pressed: powering off" >/dev/console
poweroff -f
EOF
chmod 0755 "$root/init" "$root/etc/acpi/PWRF/00000080"

# zstd when the kernel can unpack it (Debian's can), gzip otherwise.
compress=(gzip -9 -n)
if grep -qx 'CONFIG_RD_ZSTD=y' "$config" 2>/dev/null; then
  require_packages zstd
  compress=(zstd -q -19 -T0 --no-progress)
fi
# Same inputs, same bytes: sorted names, fixed owners and times.
find "$root" -exec touch -h -d @0 {} +
mkdir -p "$work/out"
(cd "$root" && find . -mindepth 1 -printf '%P\n' | sort |
  cpio --quiet -o -H newc -R 0:0 --reproducible) | "${compress[@]}" >"$work/out/initrd.img"
cp "$kernel" "$work/out/vmlinuz"
echo "console=ttyS0 panic=-1 reboot=k" >"$work/out/cmdline.txt"

mkdir -p "$output" || die "cannot create the output directory $output"
output=$(cd "$output" && pwd)
for file in vmlinuz initrd.img cmdline.txt; do
  mv -f "$work/out/$file" "$output/$file"
done

echo "build-linux-guest: Debian kernel $release with a busybox initramfs in $output"
echo "  vmlinuz      $(stat -c %s "$output/vmlinuz") bytes (Debian's bzImage, ${kernel##*/})"
echo "  initrd.img   $(stat -c %s "$output/initrd.img") bytes (${compress[0]} newc cpio, ${#load_order[@]} modules)"
echo "  cmdline.txt  $(cat "$output/cmdline.txt")"
echo "  modules      $(printf '%s ' "${load_order[@]##*/}")"
((${#skipped[@]} == 0)) || echo "  not packed   ${skipped[*]}"
echo "Boot it (on a host without /dev/kvm: inside scripts/emulated-kvm; see docs/linux-guest.md):"
echo "  vireo run --kernel $output/vmlinuz --initrd $output/initrd.img --cmdline \"$(cat "$output/cmdline.txt")\" --memory 512M"
echo "Add vireo.poweroff to the command line to power off (exit status 0) right after the banner."
