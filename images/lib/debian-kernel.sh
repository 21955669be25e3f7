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
