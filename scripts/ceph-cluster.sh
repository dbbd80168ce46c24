#!/usr/bin/env bash
# A throwaway one-node Ceph cluster (1 mon + 1 osd, a mgr with --mgr) on 127.0.0.1, all state under one directory.
#
#   scripts/ceph-cluster.sh start DIR PORT [--bluestore] [--clone-v2] [--stock-features] [--mgr]
#   scripts/ceph-cluster.sh start-mgr DIR   (starts the cluster's mgr.x again, e.g. after it was killed)
#   scripts/ceph-cluster.sh stop DIR
#   scripts/ceph-cluster.sh status DIR
#
# start prints `fsid=...`, `conf=...` and writes them to DIR/cluster.env. Pools `vms` and `images`
# exist afterwards, and these cephx users, made as operators make them:
#   client.admin    everything
#   client.glance   rbd profile on images
#   client.nova     rbd profile on vms and images (the direct snapshot path needs write on images)
#   client.nova-ro  rbd profile on vms, read-only rbd profile on images
# Each has its own DIR/<name>.keyring, referenced from ceph.conf. --clone-v2 sets
# require-min-compat-client mimic, which makes librbd default to clone format 2.
# New images get features layering,deep-flatten unless --stock-features keeps Ceph's own default
# (layering, exclusive-lock, object-map, fast-diff, deep-flatten), as most deployments run: with an object
# map, flatten and diff skip unallocated objects (the benchmarks use it).
# --mgr also starts ceph-mgr (mgr.x, data under DIR/mgr/x) and waits until its always-on rbd_support module
# answers `rbd task list`: the mgr runs Ceph's own flatten queue (`ceph rbd task add flatten`). Without it
# the cluster has no mgr, which librados clients never notice except for mgr commands. client.glance then
# also gets `mgr 'profile rbd pool=images'` (what Ceph's OpenStack guide gives it) and client.glance-nomgr
# the same caps without it.
# SNAPSTORE_MEMSTORE_BYTES sets the memstore OSD's capacity (default 4 GiB, held in RAM).
# Daemons run daemonized with pid files under DIR/run and are stopped by PID, OSD first.
set -euo pipefail

usage() { echo "usage: $0 start DIR PORT [--bluestore] [--clone-v2] [--stock-features] [--mgr] | start-mgr DIR | stop DIR | status DIR" >&2; exit 2; }

# shellcheck source=lib/alive.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/alive.sh"

stop_pidfile() {
  local pidfile=$1 pid i
  [[ -s $pidfile ]] || return 0
  pid=$(<"$pidfile")
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.05; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    for ((i = 0; i < 40; i++)); do alive "$pid" || break; sleep 0.05; done
  fi
  rm -f "$pidfile"
}

cmd_stop() {
  local dir=$1
  [[ -d $dir/run ]] || return 0
  stop_pidfile "$dir/run/mgr.x.pid"
  stop_pidfile "$dir/run/osd.0.pid"
  stop_pidfile "$dir/run/mon.a.pid"
}

cmd_status() {
  local dir=$1 f
  for f in "$dir"/run/*.pid; do
    [[ -e $f ]] || continue
    if alive "$(<"$f")"; then echo "$(basename "$f" .pid) running pid $(<"$f")"; else echo "$(basename "$f" .pid) stopped"; fi
  done
}

cmd_start() {
  local dir=$1 port=$2; shift 2
  local objectstore=memstore clone_v2=0 mgr=0 features="rbd default features = layering,deep-flatten" arg
  for arg in "$@"; do
    case $arg in
      --bluestore) objectstore=bluestore ;;
      --clone-v2) clone_v2=1 ;;
      --stock-features) features="# rbd default features: Ceph's default" ;;
      --mgr) mgr=1 ;;
      *) usage ;;
    esac
  done
  [[ $port =~ ^[0-9]+$ ]] || usage
  if [[ -e $dir/ceph.conf ]]; then echo "$dir already holds a cluster; stop it and remove the directory first" >&2; exit 2; fi
  mkdir -p "$dir"/{run,log,mon,osd/0}
  dir=$(cd "$dir" && pwd)
  local conf=$dir/ceph.conf fsid osd_uuid osd_key
  fsid=$(uuidgen)
  osd_uuid=$(uuidgen)

  local store_conf
  if [[ $objectstore == memstore ]]; then
    store_conf="osd objectstore = memstore
memstore device bytes = ${SNAPSTORE_MEMSTORE_BYTES:-4294967296}"
  else
    store_conf="osd objectstore = bluestore
bluestore block create = true
bluestore block size = 4294967296"
  fi

  cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind msgr2 = true
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $dir/keyring
run dir = $dir/run
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
mon data = $dir/mon/\$name
osd data = $dir/osd/\$id
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 2
mon data avail crit = 1
$features
paxos propose interval = 0.05
paxos min wait = 0.01
[mon]
admin socket = $dir/run/\$name.asok
[osd]
admin socket = $dir/run/\$name.asok
keyring = $dir/osd/\$id/keyring
$store_conf
osd op num shards = 2
osd op num threads per shard = 1
[client.glance]
keyring = $dir/glance.keyring
[client.nova]
keyring = $dir/nova.keyring
[client.nova-ro]
keyring = $dir/nova-ro.keyring
[client.glance-nomgr]
keyring = $dir/glance-nomgr.keyring
[mgr]
admin socket = $dir/run/\$name.asok
mgr data = $dir/mgr/\$id
keyring = $dir/mgr/\$id/keyring
EOF

  # Every key is made offline and imported at mon mkfs: no CLI round trips for users.
  local kr=$dir/keyring
  ceph-authtool --create-keyring "$kr" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$kr" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  make_user() {
    local name=$1; shift
    ceph-authtool --create-keyring "$dir/$name.keyring" --gen-key -n "client.$name" "$@" >/dev/null
    ceph-authtool "$kr" --import-keyring "$dir/$name.keyring" >/dev/null
  }
  if [[ $mgr -eq 1 ]]; then
    make_user glance --cap mon 'profile rbd' --cap osd 'profile rbd pool=images' --cap mgr 'profile rbd pool=images'
    make_user glance-nomgr --cap mon 'profile rbd' --cap osd 'profile rbd pool=images'
    mkdir -p "$dir/mgr/x"
    ceph-authtool --create-keyring "$dir/mgr/x/keyring" --gen-key -n mgr.x \
      --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
    ceph-authtool "$kr" --import-keyring "$dir/mgr/x/keyring" >/dev/null
    chmod 600 "$dir/mgr/x/keyring"
  else
    make_user glance --cap mon 'profile rbd' --cap osd 'profile rbd pool=images'
  fi
  make_user nova --cap mon 'profile rbd' --cap osd 'profile rbd pool=vms, profile rbd pool=images'
  make_user nova-ro --cap mon 'profile rbd' --cap osd 'profile rbd pool=vms, profile rbd-read-only pool=images'
  osd_key=$(ceph-authtool --gen-print-key)
  ceph-authtool --create-keyring "$dir/osd/0/keyring" --name osd.0 --add-key "$osd_key" >/dev/null
  chmod 600 "$dir"/*.keyring "$dir/keyring" "$dir/osd/0/keyring"

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$dir/monmap" >/dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$kr" 2>>"$dir/log/setup.log"
  ceph-mon -c "$conf" -i a 2>>"$dir/log/setup.log"

  local ceph=(ceph -c "$conf" --connect-timeout 15)
  echo "{\"cephx_secret\": \"$osd_key\"}" | "${ceph[@]}" osd new "$osd_uuid" -i - >/dev/null
  ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>>"$dir/log/setup.log" >/dev/null
  ceph-osd -c "$conf" -i 0 2>>"$dir/log/setup.log"

  # Pool creation does not need the OSD up; it runs while the OSD boots.
  local pool pids=() pid
  for pool in vms images; do
    "${ceph[@]}" osd pool create "$pool" 8 8 >>"$dir/log/setup.log" 2>&1 &
    pids+=($!)
  done
  if [[ $clone_v2 -eq 1 ]]; then
    "${ceph[@]}" osd set-require-min-compat-client mimic >>"$dir/log/setup.log" 2>&1 &
    pids+=($!)
  fi
  for pid in "${pids[@]}"; do wait "$pid"; done

  local i up=0
  for ((i = 0; i < 300; i++)); do
    if "${ceph[@]}" osd dump 2>/dev/null | grep -q '^osd.0 up'; then up=1; break; fi
    sleep 0.1
  done
  if [[ $up -ne 1 ]]; then
    echo "osd.0 did not come up; logs in $dir/log" >&2
    cmd_stop "$dir"
    exit 1
  fi
  pids=()
  for pool in vms images; do
    rbd -c "$conf" pool init "$pool" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  if [[ $mgr -eq 1 ]] && ! start_mgr "$dir"; then
    cmd_stop "$dir"
    exit 1
  fi

  printf 'fsid=%s\nconf=%s\nport=%s\nobjectstore=%s\nclone_format=%s\nmgr=%s\n' \
    "$fsid" "$conf" "$port" "$objectstore" "$((clone_v2 + 1))" "$mgr" | tee "$dir/cluster.env"
}

# Starts mgr.x and waits until rbd_support answers (it loads after the mgr went active and scanned the
# pools; `rbd task list` answers ENOTSUP/EAGAIN until then).
start_mgr() {
  local dir=$1 conf=$1/ceph.conf i
  [[ -s $dir/mgr/x/keyring ]] || { echo "$dir was not started with --mgr" >&2; return 1; }
  ceph-mgr -c "$conf" -i x 2>>"$dir/log/setup.log"
  for ((i = 0; i < 600; i++)); do
    # A mgr command waits for a mgr: each try is bounded, the loop decides.
    if timeout 10 ceph -c "$conf" --connect-timeout 5 rbd task list >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "ceph-mgr's rbd_support did not answer within 60 s; logs in $dir/log" >&2
  return 1
}

[[ $# -ge 2 ]] || usage
case $1 in
  start) [[ $# -ge 3 ]] || usage; cmd_start "${@:2}" ;;
  start-mgr) start_mgr "$(cd "$2" && pwd)" ;;
  stop) cmd_stop "$2" ;;
  status) cmd_status "$2" ;;
  *) usage ;;
esac
