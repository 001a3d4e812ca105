#!/usr/bin/env bash
# Unpacks Debian's current amd64 kernel package into /var/cache/vireo/linux
# (boot/vmlinuz-*, lib/modules/*), without installing it on the host.
set -euo pipefail
cache=${VIREO_KERNEL_CACHE:-/var/cache/vireo/linux}
if compgen -G "$cache/boot/vmlinuz-*" >/dev/null; then
  exit 0
fi
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
# linux-image-amd64 is a metapackage; its dependency names the real one.
# An empty or failing lookup (no package lists yet) falls through to apt-get update.
image=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}' || true)
if [[ -z $image ]]; then
  as_root apt-get update -q
  image=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
if [[ -z $image ]]; then
  echo "fetch-debian-kernel: apt knows no linux-image-amd64 (check /etc/apt/sources.list)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q "$image" >/dev/null)
as_root mkdir -p "$cache"
as_root dpkg-deb -x "$work"/*.deb "$cache"
echo "fetch-debian-kernel: $image unpacked into $cache"
