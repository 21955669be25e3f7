# Sourced by images/guest/build.sh and images/host/build.sh: the steps both images share.

# ensure_keys OUT: the management key pair (dropbear format, OpenSSH format for the npm ssh2
# client, public line) and the image's SSH host key. Kept across rebuilds so the clients of
# running VMs and hosts stay valid; made anew when any of them is missing.
ensure_keys() {
  local out=$1
  if [ ! -f "$out/client_key.dropbear" ] || [ ! -f "$out/client_key" ] || [ ! -f "$out/host_key.dropbear" ]; then
    rm -f "$out/client_key.dropbear" "$out/client_key" "$out/client_key.pub" "$out/host_key.dropbear"
    dropbearkey -t ed25519 -f "$out/client_key.dropbear" 2>/dev/null | grep '^ssh-ed25519' > "$out/client_key.pub"
    # ssh2 (npm) cannot read dropbear's own key format.
    dropbearconvert dropbear openssh "$out/client_key.dropbear" "$out/client_key" 2>/dev/null
    dropbearkey -t ed25519 -f "$out/host_key.dropbear" >/dev/null 2>&1
    chmod 600 "$out/client_key" "$out/client_key.dropbear" "$out/host_key.dropbear"
  fi
}

# pack_initramfs ROOT CPIO DEST [zstd|none]: a reproducibly ordered newc cpio of ROOT into CPIO
# (kept, so its size can be reported), zstd-compressed (default) or copied as is into DEST. Its
# last entry is /.vpc-initramfs-complete:
# a kernel that runs out of room while unpacking (guest RAM too small) still starts init with the
# files it got, so the boot script checks for that marker instead of failing later and obscurely.
pack_initramfs() {
  local root=$1 cpio=$2 dest=$3 compression=${4:-zstd}
  : > "$root/.vpc-initramfs-complete"
  (cd "$root" && { find . ! -path ./.vpc-initramfs-complete -print0 | sort -z; printf './.vpc-initramfs-complete\0'; } \
    | cpio --null -o -H newc --quiet) > "$cpio"
  case $compression in
    zstd) zstd -q -T0 -12 -f "$cpio" -o "$dest" ;;
    none) cp "$cpio" "$dest" ;;
    *) log "pack_initramfs: unknown compression $compression" && exit 1 ;;
  esac
}

size() { stat -c %s "$1"; }

# json_list A B ...: a JSON array of the arguments as strings (they hold no quotes or backslashes).
json_list() {
  local first=1
  printf '['
  for x in "$@"; do
    [ $first = 1 ] || printf ', '
    printf '"%s"' "$x"
    first=0
  done
  printf ']'
}
