#!/usr/bin/env bash
# A one-node Ceph cluster with radosgw (the S3 API) for @vpc/storage's remote store:
# one mon, one OSD (bluestore on a sparse file, or memstore) and radosgw on 127.0.0.1.
#
#   scripts/store.sh up       start it (prints the endpoint; writes $STORE_DIR/s3.env)
#   scripts/store.sh status   is it up, and where
#   scripts/store.sh down     stop the daemons by their recorded PIDs and remove $STORE_DIR
#   scripts/store.sh doctor   name what is missing to run it
#
# Environment: STORE_DIR (default /var/tmp/vpc-store), STORE_OSD=bluestore|memstore (default
# bluestore: a 4 GiB sparse file; memstore keeps objects in the OSD's memory), STORE_BLOCK_GIB.
# No loop device, no systemd unit, nothing outside STORE_DIR: `down` leaves the machine as it was.
set -euo pipefail

STORE_DIR=${STORE_DIR:-/var/tmp/vpc-store}
STORE_OSD=${STORE_OSD:-bluestore}
STORE_BLOCK_GIB=${STORE_BLOCK_GIB:-4}
CONF="$STORE_DIR/ceph.conf"
ENV_FILE="$STORE_DIR/s3.env"
BINARIES=(ceph ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool node)
DEBIAN_PACKAGES="ceph-mon ceph-osd radosgw ceph-common"

log() { echo "store: $*" >&2; }
die() {
  log "$*"
  exit 1
}
now_ms() { date +%s%3N; }
ceph_cli() { timeout 20 ceph -c "$CONF" --connect-timeout 10 "$@"; }

doctor() {
  local missing=() b
  for b in "${BINARIES[@]}"; do command -v "$b" >/dev/null || missing+=("$b"); done
  if ((${#missing[@]})); then
    echo "store doctor: missing ${missing[*]} (apt-get install $DEBIAN_PACKAGES; node from the README)"
    return 1
  fi
  if [ "$(id -u)" -ne 0 ] && [ ! -w "$(dirname "$STORE_DIR")" ]; then
    echo "store doctor: cannot create $STORE_DIR (not writable by $(id -un))"
    return 1
  fi
  echo "store doctor: ok ($(ceph --version | cut -d' ' -f1-3), STORE_DIR=$STORE_DIR, OSD $STORE_OSD)"
}

# A free TCP port on 127.0.0.1 (the kernel picks it; the short race with another taker is
# caught by the daemon failing to bind, which `up` reports with the daemon's log).
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# Starts "$@" in the background with its output in $STORE_DIR/log/NAME.out and records its PID.
start_daemon() {
  local name=$1
  shift
  "$@" >"$STORE_DIR/log/$name.out" 2>&1 &
  echo $! >"$STORE_DIR/pids/$name"
}

# Is the PID recorded for NAME still that daemon (its command line names our config)?
daemon_pid() {
  local name=$1 pid
  [ -f "$STORE_DIR/pids/$name" ] || return 1
  pid=$(cat "$STORE_DIR/pids/$name")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONF" || return 1
  echo "$pid"
}

# wait_for WHAT SECONDS COMMAND...: polls COMMAND every 0.2 s; on timeout names WHAT and shows logs.
wait_for() {
  local what=$1 secs=$2 deadline
  shift 2
  deadline=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    if (($(date +%s) >= deadline)); then
      log "$what did not happen within ${secs}s; last log lines:"
      tail -n 5 "$STORE_DIR"/log/*.out "$STORE_DIR"/log/*.log >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
}

osd_up() { ceph_cli osd dump -f json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.exit(JSON.parse(s).osds.some(o=>o.up===1)?0:1))'; }
rgw_answers() { node -e 'fetch(process.argv[1]).then(r=>process.exit(r.status<500?0:1),()=>process.exit(1))' "$1"; }

up() {
  doctor >/dev/null || {
    doctor >&2
    exit 1
  }
  if [ -f "$ENV_FILE" ] && daemon_pid rgw >/dev/null; then
    log "already up ($ENV_FILE)"
    cat "$ENV_FILE"
    return 0
  fi
  [ ! -e "$STORE_DIR" ] || die "$STORE_DIR exists but the store is not up: run '$0 down' first"
  local t0 fsid mon_port rgw_port osd_uuid key secret
  t0=$(now_ms)
  mkdir -p "$STORE_DIR"/{log,pids,run,mon,osd/ceph-0,rgw}
  # Whatever stops `up` half way (a failed command, die, ^C) takes down what it started.
  trap 'if [ "$up_done" = 0 ] && [ -z "${STORE_KEEP_FAILED:-}" ]; then log "up failed; cleaning up (STORE_KEEP_FAILED=1 keeps $STORE_DIR)"; down >/dev/null 2>&1 || true; fi' EXIT
  up_done=0
  fsid=$(cat /proc/sys/kernel/random/uuid)
  mon_port=$(free_port)
  rgw_port=$(free_port)
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
run dir = $STORE_DIR/run
admin socket = $STORE_DIR/run/\$name.asok
pid file = $STORE_DIR/run/\$name.pid
log file = $STORE_DIR/log/\$name.log
keyring = $STORE_DIR/keyring
ms bind msgr1 = false
# Daemons (radosgw) default to "secure" mode towards the mon, which auth "none" cannot give.
ms mon client mode = crc
# One OSD: pools of one replica, few PGs, and no warnings about either.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
[mon]
mon data = $STORE_DIR/mon/\$cluster-\$id
[osd]
osd data = $STORE_DIR/osd/\$cluster-\$id
osd objectstore = $STORE_OSD
osd memory target = 1073741824
bluestore block path = $STORE_DIR/osd/\$cluster-\$id.block
bluestore block create = true
bluestore block size = $((STORE_BLOCK_GIB << 30))
bluestore fsck on mkfs = false
memstore device bytes = $((STORE_BLOCK_GIB << 30))
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw data = $STORE_DIR/rgw
EOF
  ceph-authtool --create-keyring "$STORE_DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$STORE_DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$STORE_DIR/monmap" --keyring "$STORE_DIR/keyring"
  start_daemon mon ceph-mon -c "$CONF" -f -i a
  wait_for "mon quorum" 30 ceph_cli quorum_status
  log "mon up after $(($(now_ms) - t0)) ms (port $mon_port)"

  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  [ "$(ceph_cli osd new "$osd_uuid")" = 0 ] || die "ceph osd new did not return osd id 0"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$STORE_DIR/log/osd-mkfs.out" 2>&1 ||
    die "ceph-osd --mkfs failed: $(tail -n 3 "$STORE_DIR/log/osd-mkfs.out")"
  start_daemon osd ceph-osd -c "$CONF" -f -i 0
  wait_for "osd.0 up" 60 osd_up
  log "osd up after $(($(now_ms) - t0)) ms ($STORE_OSD)"

  start_daemon rgw radosgw -c "$CONF" -f -n client.rgw
  wait_for "radosgw answering on 127.0.0.1:$rgw_port" 40 rgw_answers "http://127.0.0.1:$rgw_port/"
  key=vpc$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
  secret=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
  radosgw-admin -c "$CONF" user create --uid=vpc --display-name="vpc store" \
    --access-key="$key" --secret-key="$secret" >/dev/null
  cat >"$ENV_FILE" <<EOF
VPC_S3_ENDPOINT=http://127.0.0.1:$rgw_port
VPC_S3_ACCESS_KEY=$key
VPC_S3_SECRET_KEY=$secret
VPC_S3_REGION=default
EOF
  up_done=1
  log "up in $(($(now_ms) - t0)) ms: S3 at http://127.0.0.1:$rgw_port ($ENV_FILE)"
  cat "$ENV_FILE"
}

down() {
  [ -d "$STORE_DIR" ] || {
    log "not up ($STORE_DIR does not exist)"
    return 0
  }
  [ -f "$CONF" ] || [ ! -d "$STORE_DIR/pids" ] || die "$STORE_DIR has no ceph.conf: not removing a directory this script did not make"
  local name pid pids=()
  for name in rgw osd mon; do
    if pid=$(daemon_pid "$name"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  local deadline=$(($(date +%s) + 15))
  for pid in "${pids[@]}"; do
    while [ -d "/proc/$pid" ] && (($(date +%s) < deadline)); do sleep 0.1; done
    if [ -d "/proc/$pid" ]; then
      log "pid $pid ignored SIGTERM for 15 s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$STORE_DIR"
  log "down (stopped ${#pids[@]} daemons, removed $STORE_DIR)"
}

status() {
  local name pid ok=0
  for name in mon osd rgw; do
    if pid=$(daemon_pid "$name"); then echo "$name: running (pid $pid)"; else
      echo "$name: not running"
      ok=1
    fi
  done
  if [ -f "$ENV_FILE" ]; then
    local endpoint
    endpoint=$(sed -n 's/^VPC_S3_ENDPOINT=//p' "$ENV_FILE")
    if rgw_answers "$endpoint"; then echo "S3: answering at $endpoint"; else
      echo "S3: not answering at $endpoint"
      ok=1
    fi
    cat "$ENV_FILE"
  fi
  return $ok
}

case "${1:-status}" in
up) up ;;
down) down ;;
status) status ;;
doctor) doctor ;;
*) die "usage: $0 up|down|status|doctor" ;;
esac
