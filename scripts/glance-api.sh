#!/usr/bin/env bash
# A real glance-api (sqlite, no keystone: every request is admin) on 127.0.0.1 against the `images` pool of
# a cluster started by ceph-cluster.sh, as client.glance, thin provisioning on.
#
#   scripts/glance-api.sh start DIR PORT CEPH_DIR [--no-multiple-locations] [--size-cap BYTES] [--multi-store] [--keystone URL]
#                                              [--pool POOL] [--user USER] [--ceph-conf PATH] [--trixie]
#                                              [--rbd-store ID:POOL:USER:CEPH_CONF]... [--workers N]
#   scripts/glance-api.sh stop DIR
#
# --trixie runs Debian 13's glance-api 30 (Epoxy, image API 2.17) and glance-manage from the root that
# scripts/trixie-root.sh makes (it must be made: `trixie-root.sh ensure`), instead of the system's Glance 25
# (Zed, 2.16). Everything it reads is bind-mounted into the root at the same path: DIR, CEPH_DIR and the
# directories of every ceph.conf and keyring it names. The PID recorded is the server's own: setsid,
# trixie-root.sh, unshare, bash and chroot all exec in place (none forks), so stop works the same.
#
# --rbd-store ID:POOL:USER:CEPH_CONF (with --multi-store, repeatable) adds an rbd backend `ID` on another
# pool or cluster beside `ceph` and `local` (multi-store on two clusters).
#
# --workers N (default 1): API worker processes. Glance 30 hashes a new location (POST /locations) in a
# green thread that never yields: the worker doing it answers nothing else until it is done, so a test
# that talks to Glance while it hashes needs a second worker.
#
# --pool, --user and --ceph-conf (defaults `images`, `glance`, CEPH_DIR/ceph.conf) put the rbd store on a
# pool of a test's own, as a user restricted to it, with a ceph.conf copy naming that user's keyring
# (test/support/own-pools.ts makes all three): the test's leftovers probe then lists that pool whole.
#
# --keystone URL puts the API behind keystonemiddleware (`flavor = keystone`) validating tokens at that
# Keystone as user `glance` of project `service` (password from $GLANCE_KEYSTONE_PASSWORD, never an
# argument: arguments are visible to other users); a service token must carry the `service` role
# (service_token_roles_required), as keystone.sh provisions it. The middleware decides by itself
# (delay_auth_decision = false, in a copy of the paste file): Debian's paste file delays the decision to
# Zed's Glance, which then ignores the service token's verdict, so nothing would show that one was checked.
#
# start prints `url=...` and writes it to DIR/glance.env. show_multiple_locations is on (needed to
# register locations in Zed) unless --no-multiple-locations. --size-cap sets image_size_cap (larger
# uploads answer 413). --multi-store configures two stores by id, as multi-store deployments do
# (`enabled_backends = ceph:rbd, local:file`, default `ceph`; `local` keeps files in DIR/local and, unlike
# the rbd store, serves byte ranges). The server runs in its own session; stop signals that process group
# by the PID recorded in DIR/glance-api.pid.
set -euo pipefail

usage() { echo "usage: $0 start DIR PORT CEPH_DIR [--no-multiple-locations] [--size-cap BYTES] [--multi-store] [--keystone URL] [--pool POOL] [--user USER] [--ceph-conf PATH] [--trixie] [--rbd-store ID:POOL:USER:CEPH_CONF]... [--workers N] | stop DIR" >&2; exit 2; }

# The [keystone_authtoken] section for --keystone (empty without it).
keystone_section() {
  local url=$1
  [[ -n $url ]] || return 0
  cat <<EOF
[keystone_authtoken]
www_authenticate_uri = $url
auth_url = $url
auth_type = password
username = glance
password = $GLANCE_KEYSTONE_PASSWORD
project_name = service
user_domain_id = default
project_domain_id = default
service_token_roles = service
service_token_roles_required = True
# Tokens are validated at every request (no cache), so a revoked one is refused at once.
token_cache_time = -1
EOF
}

# shellcheck source=lib/alive.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/alive.sh"

cmd_stop() {
  local dir=$1 pid i
  [[ -s $dir/glance-api.pid ]] || return 0
  pid=$(<"$dir/glance-api.pid")
  if alive "$pid"; then
    # setsid made the server a process group leader: its workers share the group id.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.05; done
    if alive "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    for ((i = 0; i < 40; i++)); do alive "$pid" || break; sleep 0.05; done
  fi
  rm -f "$dir/glance-api.pid"
}

# The rbd store options of one backend: POOL USER CEPH_CONF.
rbd_options() {
  cat <<EOF
rbd_store_pool = $1
rbd_store_user = $2
rbd_store_ceph_conf = $3
rbd_store_chunk_size = 8
rbd_thin_provisioning = True
rados_connect_timeout = 10
EOF
}

# An absolute path of a readable file, or exit 2 naming it.
readable_file() {
  [[ -r $1 ]] || { echo "cannot read $1" >&2; exit 2; }
  echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
}

# The directories a ceph.conf points at (its own, and each absolute keyring's): bound into the trixie root.
ceph_dirs() {
  local conf=$1 k
  dirname "$conf"
  for k in $(sed -nE 's/^[[:space:]]*keyring[[:space:]]*=[[:space:]]*([^[:space:]]+).*/\1/p' "$conf"); do
    if [[ $k == /* && -e $k ]]; then dirname "$k"; fi
  done
}

# Prints the trixie-root.sh exec prefix (NUL-separated) binding DIR, CEPH_DIR and the ceph.confs' directories.
trixie_prefix() {
  local root_sh=$1; shift
  local d
  printf '%s\0' "$root_sh" exec
  for d in $(printf '%s\n' "$@" | sort -u); do printf '%s\0' --bind "$d"; done
  printf '%s\0' --
}

cmd_start() {
  local dir=$1 port=$2 ceph_dir=$3; shift 3
  local multiple=True size_cap=1099511627776 multi=0 keystone='' pool=images user=glance ceph_conf='' trixie=0 workers=1
  local extra=()
  while [[ $# -gt 0 ]]; do
    case $1 in
      --no-multiple-locations) multiple=False ;;
      --size-cap) [[ ${2:-} =~ ^[0-9]+$ ]] || usage; size_cap=$2; shift ;;
      --multi-store) multi=1 ;;
      --keystone) [[ -n ${2:-} ]] || usage; keystone=$2; shift ;;
      --pool) [[ ${2:-} =~ ^[A-Za-z0-9._-]+$ ]] || usage; pool=$2; shift ;;
      --user) [[ ${2:-} =~ ^[A-Za-z0-9._-]+$ ]] || usage; user=$2; shift ;;
      --ceph-conf) [[ -n ${2:-} ]] || usage; ceph_conf=$2; shift ;;
      --trixie) trixie=1 ;;
      --workers) [[ ${2:-} =~ ^[1-9]$ ]] || usage; workers=$2; shift ;;
      --rbd-store) [[ ${2:-} =~ ^[A-Za-z0-9_-]+:[A-Za-z0-9._-]+:[A-Za-z0-9._-]+:/[^:]+$ ]] || usage; extra+=("$2"); shift ;;
      *) usage ;;
    esac
    shift
  done
  [[ $port =~ ^[0-9]+$ ]] || usage
  [[ ${#extra[@]} -eq 0 || $multi -eq 1 ]] || { echo "--rbd-store needs --multi-store" >&2; exit 2; }
  if [[ -n $keystone && -z ${GLANCE_KEYSTONE_PASSWORD:-} ]]; then echo "--keystone needs GLANCE_KEYSTONE_PASSWORD" >&2; exit 2; fi
  [[ -r $ceph_dir/ceph.conf ]] || { echo "no ceph.conf in $ceph_dir" >&2; exit 2; }
  mkdir -p "$dir"/{staging,image-cache,locks,tasks,local}
  dir=$(cd "$dir" && pwd)
  ceph_dir=$(cd "$ceph_dir" && pwd)
  ceph_conf=$(readable_file "${ceph_conf:-$ceph_dir/ceph.conf}")
  local e confs=("$ceph_conf")
  for e in "${extra[@]}"; do confs+=("$(readable_file "${e##*:}")"); done
  # In the trixie root the commands run through trixie-root.sh exec, with everything they read bound in.
  local run=()
  if [[ $trixie -eq 1 ]]; then
    local root_sh c binds=("$dir" "$ceph_dir")
    root_sh=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/trixie-root.sh
    "$root_sh" check || exit 1
    for c in "${confs[@]}"; do while read -r e; do binds+=("$e"); done < <(ceph_dirs "$c"); done
    while IFS= read -r -d '' e; do run+=("$e"); done < <(trixie_prefix "$root_sh" "${binds[@]}")
  fi
  local paste=/etc/glance/glance-api-paste.ini
  if [[ -n $keystone ]]; then
    "${run[@]}" sed 's/^delay_auth_decision *= *true/delay_auth_decision = false/' "$paste" >"$dir/glance-api-paste.ini"
    paste=$dir/glance-api-paste.ini
  fi
  local conf=$dir/glance-api.conf
  write_conf "$conf" "$dir" "$port" "$multiple" "$size_cap" "$multi" "$keystone" "$paste" "$pool" "$user" "${confs[@]}" -- "${extra[@]}"
  sed -i "s/^workers = 1\$/workers = $workers/" "$conf"
  "${run[@]}" glance-manage --config-file "$conf" db_sync >"$dir/db_sync.log" 2>&1
  setsid "${run[@]}" glance-api --config-file "$conf" >"$dir/glance-api.out" 2>&1 </dev/null &
  echo $! >"$dir/glance-api.pid"
  local i url=http://127.0.0.1:$port
  for ((i = 0; i < 300; i++)); do
    if curl -fsS -o /dev/null "$url/healthcheck" 2>/dev/null; then
      printf 'url=%s\nconf=%s\nshow_multiple_locations=%s\n' "$url" "$conf" "$multiple" | tee "$dir/glance.env"
      return 0
    fi
    alive "$(<"$dir/glance-api.pid")" || break
    sleep 0.1
  done
  echo "glance-api did not answer on $url; see $dir/glance-api.log and $dir/glance-api.out" >&2
  cmd_stop "$dir"
  exit 1
}

# write_conf CONF DIR PORT MULTIPLE SIZE_CAP MULTI KEYSTONE PASTE POOL USER CEPH_CONF [EXTRA_CONF...] -- [ID:POOL:USER:CONF...]
write_conf() {
  local conf=$1 dir=$2 port=$3 multiple=$4 size_cap=$5 multi=$6 keystone=$7 paste=$8 pool=$9 user=${10} ceph_conf=${11}
  shift 11
  while [[ $1 != -- ]]; do shift; done
  shift
  # The rbd store's options: in [glance_store] for a single store, in the store's own section for multi-store.
  local backends="" stores e id e_pool e_user e_conf
  if [[ $multi -eq 1 ]]; then
    backends="enabled_backends = ceph:rbd, local:file"
    stores="[glance_store]
default_backend = ceph
[ceph]
$(rbd_options "$pool" "$user" "$ceph_conf")
[local]
filesystem_store_datadir = $dir/local"
    for e in "$@"; do
      IFS=: read -r id e_pool e_user e_conf <<<"$e"
      backends+=", $id:rbd"
      stores+="
[$id]
$(rbd_options "$e_pool" "$e_user" "$e_conf")"
    done
  else
    stores="[glance_store]
stores = rbd,http
default_store = rbd
$(rbd_options "$pool" "$user" "$ceph_conf")"
  fi
  cat >"$conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $port
workers = 1
show_image_direct_url = True
show_multiple_locations = $multiple
node_staging_uri = file://$dir/staging
image_cache_dir = $dir/image-cache
use_keystone_limits = False
image_size_cap = $size_cap
$backends
log_file = $dir/glance-api.log
[database]
connection = sqlite:///$dir/glance.sqlite
[paste_deploy]
flavor = ${keystone:+keystone}
config_file = $paste
[oslo_concurrency]
lock_path = $dir/locks
[oslo_policy]
enforce_scope = False
enforce_new_defaults = False
$stores
[os_glance_staging_store]
filesystem_store_datadir = $dir/staging
[os_glance_tasks_store]
filesystem_store_datadir = $dir/tasks
$(keystone_section "$keystone")
EOF
  chmod 600 "$conf"
}

[[ $# -ge 2 ]] || usage
case $1 in
  start) [[ $# -ge 4 ]] || usage; cmd_start "${@:2}" ;;
  stop) cmd_stop "$2" ;;
  *) usage ;;
esac
