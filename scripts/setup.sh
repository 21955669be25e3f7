#!/usr/bin/env bash
# Installs everything the testbed needs on Debian 12 / Ubuntu: Debian packages and the
# npm dependencies from the lock file. Idempotent; run as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  qemu-system-x86 qemu-utils
  mpich libmpich-dev
  busybox-static dropbear-bin
  cpio xz-utils zstd kmod
  gcc make libc6-dev
  iproute2 ca-certificates
  # scripts/store.sh: a one-node Ceph with radosgw, the S3 store @vpc/storage's int tests run against
  ceph-mon ceph-osd radosgw ceph-common
)

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi
echo "setup: ok"
