#!/usr/bin/env bash
# A throwaway one-node Ceph cluster (1 mon + 1 osd, a mgr with --mgr) on 127.0.0.1, all state under one directory.
#
#   scripts/ceph-cluster.sh start DIR PORT [--bluestore] [--clone-v2] [--stock-features] [--mgr] [--reef]
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
# --reef runs the cluster's daemons, its mkfs steps and its setup CLI calls from the Debian 13 root
# (scripts/trixie-root.sh: Ceph 18.2 Reef) with DIR bind-mounted at the same path, instead of the host's
# Ceph 16 (Pacific); the root shares the host's network and PID namespace, so the pid files hold host PIDs
# and stop works the same. DIR/ceph-release says `reef` for start-mgr. The host's Pacific `ceph`/`rbd` CLI
# and librbd talk to a Reef cluster as they do to any (test/versions checks that).
set -euo pipefail

usage() { echo "usage: $0 start DIR PORT [--bluestore] [--clone-v2] [--stock-features] [--mgr] [--reef] | start-mgr DIR | stop DIR | status DIR" >&2; exit 2; }

TRIXIE_ROOT="$(dirname "${BASH_SOURCE[0]}")/trixie-root.sh"
# The command prefix every Ceph tool of a cluster runs under: nothing for the host's Pacific, the Reef root
# (DIR bind-mounted) for a cluster started with --reef. Set by use_release.
CEPH_IN=()

use_release() {
  local dir=$1
  if [[ -f $dir/ceph-release && $(<"$dir/ceph-release") == reef ]]; then
    CEPH_IN=(bash "$TRIXIE_ROOT" exec --bind "$dir" --)
  else
    CEPH_IN=()
  fi
}

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
  local objectstore=memstore clone_v2=0 mgr=0 reef=0 features="rbd default features = layering,deep-flatten" arg
  for arg in "$@"; do
    case $arg in
      --bluestore) objectstore=bluestore ;;
      --clone-v2) clone_v2=1 ;;
      --stock-features) features="# rbd default features: Ceph's default" ;;
      --mgr) mgr=1 ;;
      --reef) reef=1 ;;
      *) usage ;;
    esac
  done
  [[ $port =~ ^[0-9]+$ ]] || usage
  if [[ -e $dir/ceph.conf ]]; then echo "$dir already holds a cluster; stop it and remove the directory first" >&2; exit 2; fi
  # A Reef cluster needs the root made (`trixie-root.sh ensure`); its check names what is missing.
  if [[ $reef -eq 1 ]] && ! bash "$TRIXIE_ROOT" check; then
    echo "cannot start a Ceph 18 (Reef) cluster: the trixie root is not there (see above)" >&2
    exit 1
  fi
  mkdir -p "$dir"/{run,log,mon,osd/0}
  dir=$(cd "$dir" && pwd)
  local mgr_conf=""
  if [[ $reef -eq 1 ]]; then
    echo reef >"$dir/ceph-release"
    mgr_conf="mgr module path = $dir/mgr/modules"
  fi
  use_release "$dir"
  local C=("${CEPH_IN[@]}")
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
$mgr_conf
EOF

  # Every key is made offline and imported at mon mkfs: no CLI round trips for users.
  local kr=$dir/keyring
  "${C[@]}" ceph-authtool --create-keyring "$kr" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  "${C[@]}" ceph-authtool "$kr" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  make_user() {
    local name=$1; shift
    "${C[@]}" ceph-authtool --create-keyring "$dir/$name.keyring" --gen-key -n "client.$name" "$@" >/dev/null
    "${C[@]}" ceph-authtool "$kr" --import-keyring "$dir/$name.keyring" >/dev/null
  }
  if [[ $mgr -eq 1 ]]; then
    make_user glance --cap mon 'profile rbd' --cap osd 'profile rbd pool=images' --cap mgr 'profile rbd pool=images'
    make_user glance-nomgr --cap mon 'profile rbd' --cap osd 'profile rbd pool=images'
    mkdir -p "$dir/mgr/x"
    "${C[@]}" ceph-authtool --create-keyring "$dir/mgr/x/keyring" --gen-key -n mgr.x \
      --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
    "${C[@]}" ceph-authtool "$kr" --import-keyring "$dir/mgr/x/keyring" >/dev/null
    chmod 600 "$dir/mgr/x/keyring"
  else
    make_user glance --cap mon 'profile rbd' --cap osd 'profile rbd pool=images'
  fi
  make_user nova --cap mon 'profile rbd' --cap osd 'profile rbd pool=vms, profile rbd pool=images'
  make_user nova-ro --cap mon 'profile rbd' --cap osd 'profile rbd pool=vms, profile rbd-read-only pool=images'
  osd_key=$("${C[@]}" ceph-authtool --gen-print-key)
  "${C[@]}" ceph-authtool --create-keyring "$dir/osd/0/keyring" --name osd.0 --add-key "$osd_key" >/dev/null
  chmod 600 "$dir"/*.keyring "$dir/keyring" "$dir/osd/0/keyring"

  "${C[@]}" monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$dir/monmap" >/dev/null
  "${C[@]}" ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$kr" 2>>"$dir/log/setup.log"
  "${C[@]}" ceph-mon -c "$conf" -i a 2>>"$dir/log/setup.log"

  local ceph=("${C[@]}" ceph -c "$conf" --connect-timeout 15)
  echo "{\"cephx_secret\": \"$osd_key\"}" | "${ceph[@]}" osd new "$osd_uuid" -i - >/dev/null
  "${C[@]}" ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>>"$dir/log/setup.log" >/dev/null
  "${C[@]}" ceph-osd -c "$conf" -i 0 2>>"$dir/log/setup.log"

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
    "${C[@]}" rbd -c "$conf" pool init "$pool" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  if [[ $mgr -eq 1 ]] && ! start_mgr "$dir"; then
    cmd_stop "$dir"
    exit 1
  fi

  printf 'fsid=%s\nconf=%s\nport=%s\nobjectstore=%s\nclone_format=%s\nmgr=%s\nrelease=%s\n' \
    "$fsid" "$conf" "$port" "$objectstore" "$((clone_v2 + 1))" "$mgr" "$([[ $reef -eq 1 ]] && echo reef || echo pacific)" | tee "$dir/cluster.env"
}

# Debian 13's ceph-mgr 18.2.7 loads no Python module at all: mgr_util imports bcrypt, a PyO3 (Rust)
# extension that refuses the mgr's subinterpreters ("PyO3 modules do not yet support subinterpreters"), so
# rbd_support never answers. bcrypt only hashes dashboard passwords, which these clusters never use: the
# Reef mgr reads its modules from DIR/mgr/modules — links to every module Debian ships, plus a `bcrypt`
# stand-in found before the real one (mgr_module_path comes first in the modules' sys.path) that fails if
# anything calls it.
reef_mgr_modules() {
  local dir=$1 m=$1/mgr/modules root entry
  root=$(bash "$TRIXIE_ROOT" path)
  mkdir -p "$m/bcrypt"
  for entry in "$root"/usr/share/ceph/mgr/*; do ln -sfn "/usr/share/ceph/mgr/${entry##*/}" "$m/${entry##*/}"; done
  cat >"$m/bcrypt/__init__.py" <<'PY'
# Stand-in for python3-bcrypt in snapstore's test clusters (scripts/ceph-cluster.sh --reef): the real one
# cannot load in ceph-mgr's subinterpreters on Debian 13. Only the dashboard hashes passwords with it.
def _unavailable(*_args, **_kwargs):
    raise RuntimeError('bcrypt stand-in of snapstore test clusters: password hashing is unavailable')
gensalt = hashpw = checkpw = kdf = _unavailable
PY
}

# Starts mgr.x and waits until rbd_support answers (it loads after the mgr went active and scanned the
# pools; `rbd task list` answers ENOTSUP/EAGAIN until then).
start_mgr() {
  local dir=$1 conf=$1/ceph.conf
  [[ -s $dir/mgr/x/keyring ]] || { echo "$dir was not started with --mgr" >&2; return 1; }
  use_release "$dir"
  if [[ -n ${CEPH_IN[*]} ]]; then reef_mgr_modules "$dir"; fi
  "${CEPH_IN[@]}" ceph-mgr -c "$conf" -i x 2>>"$dir/log/setup.log"
  # By the clock, not by tries: tries that each wait out their 10 s made 600 of them last up to 100 min.
  local deadline=$((SECONDS + 120))
  while ((SECONDS < deadline)); do
    # A mgr command waits for a mgr: each try is bounded, the loop decides.
    if timeout 10 "${CEPH_IN[@]}" ceph -c "$conf" --connect-timeout 5 rbd task list >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "ceph-mgr's rbd_support did not answer within 120 s; logs in $dir/log" >&2
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
