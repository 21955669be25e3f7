#!/usr/bin/env bash
# Build the VPC host (L1) image: the Debian kernel (uncompressed, booted through its PVH entry:
# no xz decompression inside the TCG guest), a small busybox initramfs that boots on
# THIS machine's root filesystem (shared read-only over 9p, under a tmpfs overlay), and the
# kernel's module tree (for modprobe inside the L1). Nothing is installed on the machine: the
# kernel package is fetched with `apt-get download` and unpacked with `dpkg-deb -x`.
#
#   bash images/host/build.sh OUTDIR
#
# Env: KERNEL_CACHE_DIR (default OUTDIR/../guest/cache, shared with images/guest), FORCE=1 to
# rebuild regardless of the cache.
# Outputs in OUTDIR: vmlinux, initrd.img, modules/lib/modules/RELEASE/, client_key (OpenSSH
# format, for ssh2), client_key.dropbear, client_key.pub, host_key.dropbear, manifest.json.
# Rebuilds only when the hash of its inputs (this script, rootfs/, package versions) changes.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:?usage: build.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CACHE=${KERNEL_CACHE_DIR:-$(dirname "$OUT")/guest/cache}
# Loaded by the initramfs before the root filesystem exists (their dependencies come first).
BOOT_MODULES="virtio_pci virtio_net 9p 9pnet_virtio overlay"
# Module directories kept for the L1 (the whole tree is ~390 MB, mostly hardware drivers).
KEEP_DRIVERS="net virtio char block vhost"

log() { echo "host: $*" >&2; }

# shellcheck source=../lib/debian-kernel.sh
source "$HERE/../lib/debian-kernel.sh"
# shellcheck source=../lib/image.sh
source "$HERE/../lib/image.sh"
resolve_kernel

pkg_versions=$(dpkg-query -W -f='${Package}=${Version}\n' busybox-static dropbear-bin kmod 2>/dev/null | sort)
inputs_hash=$(
  {
    echo "kernel=$kernel_pkg=$kernel_ver"
    echo "$pkg_versions"
    (cd "$HERE" && find build.sh ../lib rootfs -type f -print0 | sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -d' ' -f1
)

if [ "${FORCE:-0}" != 1 ] && [ -f "$OUT/manifest.json" ] && [ -f "$OUT/vmlinux" ] && [ -f "$OUT/initrd.img" ] \
  && [ -f "$OUT/client_key" ] && [ -d "$OUT/modules/lib/modules/$kernel_release" ] \
  && grep -q "\"inputsHash\": \"$inputs_hash\"" "$OUT/manifest.json"; then
  log "up to date ($OUT)"
  exit 0
fi

started=$(date +%s)
WORK="$OUT/.work"
rm -rf "$WORK"
mkdir -p "$WORK" "$CACHE"
ROOT="$WORK/root"

# --- kernel (the .deb is shared with images/guest) ---------------------------------
unpack_kernel "$CACHE" "$WORK/kernel"
extract_vmlinux "$WORK/kernel/boot/vmlinuz-$kernel_release" "$OUT/vmlinux.new"

# --- module tree for the L1: everything but most hardware drivers, with modules.dep --
KSRC="$WORK/kernel/lib/modules/$kernel_release"
MODS="$WORK/modules"
KDST="$MODS/lib/modules/$kernel_release"
mkdir -p "$KDST/kernel/drivers"
cp -a "$KSRC"/modules.* "$KDST/"
for d in "$KSRC"/kernel/*; do
  [ "$(basename "$d")" = drivers ] || [ "$(basename "$d")" = sound ] || cp -a "$d" "$KDST/kernel/"
done
for d in $KEEP_DRIVERS; do
  [ -d "$KSRC/kernel/drivers/$d" ] && cp -a "$KSRC/kernel/drivers/$d" "$KDST/kernel/drivers/"
done
rm -rf "$KDST/kernel/drivers/net/wireless" "$KDST/kernel/drivers/net/ethernet"
depmod -b "$MODS" "$kernel_release"

# --- initramfs ------------------------------------------------------------------------
mkdir -p "$ROOT"/{bin,proc,sys,dev,lib/modules,etc}
cp /bin/busybox "$ROOT/bin/busybox"
cp -a "$HERE/rootfs/." "$ROOT/"
# Boot modules in dependency order, as modprobe would load them.
: > "$ROOT/etc/vpc-modules"
for m in $BOOT_MODULES; do
  modprobe -d "$MODS" -S "$kernel_release" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  rel=${ko#"$MODS/lib/modules/$kernel_release/"}
  mkdir -p "$ROOT/lib/modules/$(dirname "$rel")"
  cp "$ko" "$ROOT/lib/modules/$rel"
  echo "$rel" >> "$ROOT/etc/vpc-modules"
done

# --- keys -------------------------------------------------------------------------------
ensure_keys "$OUT"
cp "$OUT/client_key.pub" "$ROOT/etc/vpc-host/authorized_keys"
cp "$OUT/host_key.dropbear" "$ROOT/etc/vpc-host/host_key"
chmod 600 "$ROOT/etc/vpc-host/host_key"

# --- pack ---------------------------------------------------------------------------------
pack_initramfs "$ROOT" "$WORK/initrd.cpio" "$OUT/initrd.img.new"
rm -rf "$OUT/modules"
mv "$MODS" "$OUT/modules"
mv "$OUT/vmlinux.new" "$OUT/vmlinux"
mv "$OUT/initrd.img.new" "$OUT/initrd.img"

cat > "$OUT/manifest.json.new" <<EOF
{
  "format": "vpc-host-image/1",
  "inputsHash": "$inputs_hash",
  "kernelPackage": "$kernel_pkg",
  "kernelVersion": "$kernel_ver",
  "kernelRelease": "$kernel_release",
  "kernel": "vmlinux",
  "initrd": "initrd.img",
  "modules": "modules",
  "clientKey": "client_key",
  "clientKeyDropbear": "client_key.dropbear",
  "readyMarker": "VPC-HOST-READY",
  "failMarker": "VPC-HOST-FAILED",
  "bootModules": $(json_list $(tr '\n' ' ' < "$ROOT/etc/vpc-modules")),
  "sizes": {
    "kernelBytes": $(size "$OUT/vmlinux"),
    "initrdBytes": $(size "$OUT/initrd.img"),
    "modulesBytes": $(du -sb "$OUT/modules" | cut -f1)
  },
  "packages": $(json_list $pkg_versions),
  "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
mv "$OUT/manifest.json.new" "$OUT/manifest.json"
rm -rf "$WORK"
log "built in $(($(date +%s) - started)) s: kernel $(size "$OUT/vmlinux") B, initrd $(size "$OUT/initrd.img") B, modules $(du -sh "$OUT/modules" | cut -f1) ($OUT)"
