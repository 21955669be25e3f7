#!/usr/bin/env bash
# Build the VPC guest image: the Debian kernel (uncompressed, booted through its PVH entry)
# and an initramfs holding busybox, dropbear, the virtio-net modules, the guest programs in
# programs/*.c and, when NPB binaries exist, the MPICH runtime with them. Nothing is installed
# on the host: the kernel package is fetched with `apt-get download` and unpacked with
# `dpkg-deb -x`.
#
#   bash images/guest/build.sh OUTDIR
#
# Env: NPB_BIN_DIR (default OUTDIR/../../npb/bin), VARIANT=full (default: MPI and NPB when
# built, zstd initramfs) or slim (no MPI/NPB, ~9 MB initramfs stored uncompressed: the guest
# for nested hosts, where every instruction of unpacking costs), FORCE=1 to rebuild regardless
# of the cache.
# Outputs in OUTDIR: vmlinux, initrd.img, client_key (OpenSSH format, for ssh2),
# client_key.dropbear, client_key.pub, manifest.json. Rebuilds only when the hash of its
# inputs (this script, rootfs/, programs/, package versions, NPB binaries, variant) changes.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:?usage: build.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
NPB_BIN_DIR=${NPB_BIN_DIR:-$(dirname "$OUT")/../npb/bin}
VARIANT=${VARIANT:-full}
case $VARIANT in
  full) compression=zstd ;;
  slim) compression=none ;;
  *) echo "guest: VARIANT must be full or slim, not $VARIANT" >&2 && exit 1 ;;
esac
MODULES="drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev
drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci net/core/failover
drivers/net/net_failover drivers/net/virtio_net"

log() { echo "guest: $*" >&2; }

# shellcheck source=../lib/debian-kernel.sh
source "$HERE/../lib/debian-kernel.sh"
# shellcheck source=../lib/image.sh
source "$HERE/../lib/image.sh"
resolve_kernel

npb_files=()
if [ "$VARIANT" = full ] && [ -d "$NPB_BIN_DIR" ]; then
  while IFS= read -r -d '' f; do npb_files+=("$f"); done \
    < <(find "$NPB_BIN_DIR" -maxdepth 1 -type f -perm -u+x -print0 | sort -z)
fi
with_mpi=0
[ ${#npb_files[@]} -gt 0 ] && with_mpi=1

pkg_versions=$(dpkg-query -W -f='${Package}=${Version}\n' busybox-static dropbear-bin libc6 gcc \
  $([ $with_mpi = 1 ] && echo mpich libmpich12 libucx0) 2>/dev/null | sort)
inputs_hash=$(
  {
    echo "kernel=$kernel_pkg=$kernel_ver variant=$VARIANT"
    echo "$pkg_versions"
    (cd "$HERE" && find build.sh ../lib rootfs programs -type f -print0 | sort -z | xargs -0 sha256sum)
    if [ $with_mpi = 1 ]; then
      (cd "$NPB_BIN_DIR" && sha256sum "${npb_files[@]##*/}")
    fi
  } | sha256sum | cut -d' ' -f1
)

if [ "${FORCE:-0}" != 1 ] && [ -f "$OUT/manifest.json" ] && [ -f "$OUT/vmlinux" ] && [ -f "$OUT/initrd.img" ] \
  && [ -f "$OUT/client_key" ] && grep -q "\"inputsHash\": \"$inputs_hash\"" "$OUT/manifest.json"; then
  log "up to date ($OUT)"
  exit 0
fi

started=$(date +%s)
WORK="$OUT/.work"
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT/cache"
ROOT="$WORK/root"

# --- kernel ---------------------------------------------------------------
unpack_kernel "$OUT/cache" "$WORK/kernel"
extract_vmlinux "$WORK/kernel/boot/vmlinuz-$kernel_release" "$OUT/vmlinux.new"

# --- root filesystem ----------------------------------------------------------
# Merged /usr like the host, so library paths from ldd and UCX's plugin lookup (next to
# libucs, under .../x86_64-linux-gnu/ucx) resolve the same way in the guest.
mkdir -p "$ROOT"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc/dropbear,proc,sys,dev,tmp,run,root/.ssh,var/log,opt}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$ROOT/$d"; done
chmod 700 "$ROOT/root" "$ROOT/root/.ssh"
chmod 1777 "$ROOT/tmp"
cp -a "$HERE/rootfs/." "$ROOT/"

cp /bin/busybox "$ROOT/bin/busybox"
for applet in $(/bin/busybox --list-full); do
  [ -e "$ROOT/$applet" ] || ln -s /bin/busybox "$ROOT/$applet"
done
ln -sf /bin/busybox "$ROOT/init"

# Copy the shared libraries a binary needs (ldd prints the full closure). A statically linked
# binary needs none (ldd exits 1 for it: under pipefail that used to stop the build silently); any
# other ldd failure, or a library this machine lacks, stops the build with ldd's words.
copy_libs() {
  local f lib deps
  for f in "$@"; do
    if ! deps=$(ldd "$f" 2>&1); then
      case $deps in
        *"not a dynamic executable"* | *"statically linked"*) continue ;;
      esac
      echo "build.sh: ldd $f failed: $deps" >&2
      exit 1
    fi
    if grep -q "not found" <<<"$deps"; then
      echo "build.sh: $f needs libraries this machine does not have:" >&2
      grep "not found" <<<"$deps" >&2
      exit 1
    fi
    awk '/=> \// {print $3} /^\t\// {print $1}' <<<"$deps" | while read -r lib; do
      if [ ! -e "$ROOT$lib" ]; then
        mkdir -p "$ROOT$(dirname "$lib")"
        cp -L "$lib" "$ROOT$lib"
      fi
    done
  done
}
# Copy binaries to the same path in the guest, with their libraries.
copy_with_libs() {
  local f
  for f in "$@"; do
    mkdir -p "$ROOT$(dirname "$f")"
    cp -L "$f" "$ROOT$f"
  done
  copy_libs "$@"
}
copy_with_libs /usr/sbin/dropbear /usr/bin/dbclient

for m in $MODULES; do
  src="$WORK/kernel/lib/modules/$kernel_release/kernel/$m.ko"
  mkdir -p "$ROOT/lib/modules/$(dirname "$m")"
  cp "$src" "$ROOT/lib/modules/$m.ko"
  echo "$m.ko" >> "$ROOT/etc/vpc-modules"
done

# --- keys -------------------------------------------------------------------------
ensure_keys "$OUT"
cp "$OUT/client_key.pub" "$ROOT/root/.ssh/authorized_keys"
cp "$OUT/client_key.dropbear" "$ROOT/root/.ssh/id_dropbear"
cp "$OUT/host_key.dropbear" "$ROOT/etc/dropbear/dropbear_ed25519_host_key"
chmod 600 "$ROOT/root/.ssh/"* "$ROOT/etc/dropbear/"*

# --- guest programs ------------------------------------------------------------------
programs=()
for src in "$HERE"/programs/*.c; do
  [ -e "$src" ] || continue
  name=$(basename "$src" .c)
  gcc -O2 -static -Wall -o "$ROOT/usr/bin/$name" "$src"
  programs+=("$name")
done

# --- MPI runtime and NPB ------------------------------------------------------------
npb_names=()
if [ $with_mpi = 1 ]; then
  mkdir -p "$ROOT/opt/npb/bin"
  for f in "${npb_files[@]}"; do
    cp "$f" "$ROOT/opt/npb/bin/"
    npb_names+=("$(basename "$f")")
    copy_libs "$f"
  done
  copy_with_libs /usr/bin/mpiexec.hydra /usr/bin/hydra_pmi_proxy
  ln -sf mpiexec.hydra "$ROOT/usr/bin/mpiexec"
  ln -sf mpiexec.hydra "$ROOT/usr/bin/mpirun"
  # UCX loads its transports with dlopen, so ldd of the binaries does not list them.
  copy_with_libs /usr/lib/x86_64-linux-gnu/ucx/*.so.0
  # mpiexec -launcher ssh runs `ssh HOST hydra_pmi_proxy ...`; dropbear's client is dbclient.
  rm -f "$ROOT/usr/bin/ssh"
  cat > "$ROOT/usr/bin/ssh" <<'EOF'
#!/bin/sh
exec dbclient -y -y -i /root/.ssh/id_dropbear "$@"
EOF
  chmod 755 "$ROOT/usr/bin/ssh"
fi

# --- pack ------------------------------------------------------------------------------
pack_initramfs "$ROOT" "$WORK/initrd.cpio" "$OUT/initrd.img.new" "$compression"
mv "$OUT/vmlinux.new" "$OUT/vmlinux"
mv "$OUT/initrd.img.new" "$OUT/initrd.img"

cat > "$OUT/manifest.json.new" <<EOF
{
  "format": "vpc-guest-image/1",
  "inputsHash": "$inputs_hash",
  "kernelPackage": "$kernel_pkg",
  "kernelVersion": "$kernel_ver",
  "kernelRelease": "$kernel_release",
  "variant": "$VARIANT",
  "kernel": "vmlinux",
  "initrd": "initrd.img",
  "clientKey": "client_key",
  "clientKeyDropbear": "client_key.dropbear",
  "readyMarker": "VPC-GUEST-READY",
  "programs": $(json_list "${programs[@]}"),
  "mpi": $([ $with_mpi = 1 ] && echo true || echo false),
  "npb": $(json_list "${npb_names[@]}"),
  "sizes": {
    "kernelBytes": $(size "$OUT/vmlinux"),
    "initrdBytes": $(size "$OUT/initrd.img"),
    "initrdUncompressedBytes": $(size "$WORK/initrd.cpio")
  },
  "packages": $(json_list $pkg_versions),
  "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
mv "$OUT/manifest.json.new" "$OUT/manifest.json"
rm -rf "$WORK"
log "built in $(($(date +%s) - started)) s: kernel $(size "$OUT/vmlinux") B, initrd $(size "$OUT/initrd.img") B ($compression), variant $VARIANT, mpi=$with_mpi ($OUT)"
