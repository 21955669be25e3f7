# Sourced by images/guest/build.sh and images/host/build.sh: the Debian kernel both images boot.
# Needs a `log` function. Nothing is installed on the machine: the package that
# linux-image-amd64 depends on is fetched with `apt-get download` and unpacked with `dpkg-deb -x`.

_kernel_dep() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'; }

# Sets kernel_pkg (e.g. linux-image-6.1.0-56-amd64), kernel_ver and kernel_release.
resolve_kernel() {
  kernel_pkg=$(_kernel_dep)
  if [ -z "$kernel_pkg" ] && [ "$(id -u)" -eq 0 ]; then
    # Fresh machines (CI containers) often have empty apt lists.
    log "apt lists lack linux-image-amd64; running apt-get update"
    apt-get update -qq >&2
    kernel_pkg=$(_kernel_dep)
  fi
  [ -n "$kernel_pkg" ] || { log "cannot resolve linux-image-amd64 (run apt-get update)"; exit 1; }
  kernel_ver=$(apt-cache policy "$kernel_pkg" | awk '/Candidate:/ {print $2}')
  kernel_release=${kernel_pkg#linux-image-}
}

# unpack_kernel CACHE_DIR DEST: downloads the resolved package into CACHE_DIR once (replacing
# older versions there) and unpacks it into DEST.
unpack_kernel() {
  local cache=$1 dest=$2 deb
  deb="$cache/${kernel_pkg}_${kernel_ver//:/%3a}_amd64.deb"
  if [ ! -f "$deb" ]; then
    log "downloading $kernel_pkg $kernel_ver"
    (cd "$cache" && rm -f "${kernel_pkg}"_*.deb && apt-get download -q "$kernel_pkg=$kernel_ver" 2>&1 \
      | grep -v '^W: Download is performed unsandboxed' >&2 || true)
    deb=$(ls "$cache/${kernel_pkg}"_*_amd64.deb)
  fi
  dpkg-deb -x "$deb" "$dest"
}

# extract_vmlinux BZIMAGE DEST: the kernel's uncompressed ELF image, which QEMU boots directly
# through its PVH entry point (CONFIG_PVH, an ELF note). The bzImage would first decompress ~66 MB
# of xz inside the guest: seconds under TCG, minutes for a guest nested in a TCG guest. The
# compressed payload's place is in the boot protocol's setup header (setup_sects at 0x1f1,
# payload_offset and payload_length at 0x248 and 0x24c); its last 4 bytes are the size of the
# decompressed image, not part of the xz stream.
extract_vmlinux() {
  local bz=$1 dest=$2 setup_sects offset length
  _le32() { od -An -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }
  setup_sects=$(od -An -t u1 -j $((0x1f1)) -N 1 "$bz" | tr -d ' ')
  [ "$setup_sects" = 0 ] && setup_sects=4
  offset=$(((setup_sects + 1) * 512 + $(_le32 "$bz" $((0x248)))))
  length=$(_le32 "$bz" $((0x24c)))
  if [ "$(od -An -t x1 -j "$offset" -N 6 "$bz" | tr -d ' ')" != fd377a585a00 ]; then
    log "$bz: the kernel's payload is not xz-compressed; extract_vmlinux knows only xz"
    exit 1
  fi
  dd if="$bz" iflag=skip_bytes,count_bytes skip="$offset" count=$((length - 4)) status=none | xz -dc > "$dest"
  if [ "$(stat -c %s "$dest")" != "$(_le32 "$bz" $((offset + length - 4)))" ]; then
    log "$dest: size differs from the one the bzImage records; extraction failed"
    exit 1
  fi
  # XEN_ELFNOTE_PHYS32_ENTRY (type 0x12) is the PVH entry QEMU needs to boot the ELF.
  if ! readelf -n "$dest" | grep -q 'Xen .*0x00000012'; then
    log "$dest: no PVH entry note (kernel built without CONFIG_PVH); QEMU cannot boot it directly"
    exit 1
  fi
}
