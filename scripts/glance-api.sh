#!/usr/bin/env bash
# A real glance-api (sqlite, no keystone: every request is admin) on 127.0.0.1 against the `images` pool of
# a cluster started by ceph-cluster.sh, as client.glance, thin provisioning on.
#
#   scripts/glance-api.sh start DIR PORT CEPH_DIR [--no-multiple-locations] [--size-cap BYTES] [--multi-store] [--keystone URL]
#                                              [--pool POOL] [--user USER] [--ceph-conf PATH]
#   scripts/glance-api.sh stop DIR
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

usage() { echo "usage: $0 start DIR PORT CEPH_DIR [--no-multiple-locations] [--size-cap BYTES] [--multi-store] [--keystone URL] [--pool POOL] [--user USER] [--ceph-conf PATH] | stop DIR" >&2; exit 2; }

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

cmd_start() {
  local dir=$1 port=$2 ceph_dir=$3; shift 3
  local multiple=True size_cap=1099511627776 multi=0 keystone='' pool=images user=glance ceph_conf=''
  while [[ $# -gt 0 ]]; do
    case $1 in
      --no-multiple-locations) multiple=False ;;
      --size-cap) [[ ${2:-} =~ ^[0-9]+$ ]] || usage; size_cap=$2; shift ;;
      --multi-store) multi=1 ;;
      --keystone) [[ -n ${2:-} ]] || usage; keystone=$2; shift ;;
      --pool) [[ ${2:-} =~ ^[A-Za-z0-9._-]+$ ]] || usage; pool=$2; shift ;;
      --user) [[ ${2:-} =~ ^[A-Za-z0-9._-]+$ ]] || usage; user=$2; shift ;;
      --ceph-conf) [[ -n ${2:-} ]] || usage; ceph_conf=$2; shift ;;
      *) usage ;;
    esac
    shift
  done
  [[ $port =~ ^[0-9]+$ ]] || usage
  if [[ -n $keystone && -z ${GLANCE_KEYSTONE_PASSWORD:-} ]]; then echo "--keystone needs GLANCE_KEYSTONE_PASSWORD" >&2; exit 2; fi
  [[ -r $ceph_dir/ceph.conf ]] || { echo "no ceph.conf in $ceph_dir" >&2; exit 2; }
  mkdir -p "$dir"/{staging,image-cache,locks,tasks,local}
  dir=$(cd "$dir" && pwd)
  ceph_dir=$(cd "$ceph_dir" && pwd)
  if [[ -z $ceph_conf ]]; then ceph_conf=$ceph_dir/ceph.conf; fi
  [[ -r $ceph_conf ]] || { echo "cannot read $ceph_conf" >&2; exit 2; }
  ceph_conf=$(cd "$(dirname "$ceph_conf")" && pwd)/$(basename "$ceph_conf")
  local paste=/etc/glance/glance-api-paste.ini
  if [[ -n $keystone ]]; then
    sed 's/^delay_auth_decision *= *true/delay_auth_decision = false/' "$paste" >"$dir/glance-api-paste.ini"
    paste=$dir/glance-api-paste.ini
  fi
  local conf=$dir/glance-api.conf
  # The rbd store's options: in [glance_store] for a single store, in the store's own section for multi-store.
  local rbd_options="rbd_store_pool = $pool
rbd_store_user = $user
rbd_store_ceph_conf = $ceph_conf
rbd_store_chunk_size = 8
rbd_thin_provisioning = True
rados_connect_timeout = 10"
  local backends="" stores
  if [[ $multi -eq 1 ]]; then
    backends="enabled_backends = ceph:rbd, local:file"
    stores="[glance_store]
default_backend = ceph
[ceph]
$rbd_options
[local]
filesystem_store_datadir = $dir/local"
  else
    stores="[glance_store]
stores = rbd,http
default_store = rbd
$rbd_options"
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
  glance-manage --config-file "$conf" db_sync >"$dir/db_sync.log" 2>&1
  setsid glance-api --config-file "$conf" >"$dir/glance-api.out" 2>&1 </dev/null &
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

[[ $# -ge 2 ]] || usage
case $1 in
  start) [[ $# -ge 4 ]] || usage; cmd_start "${@:2}" ;;
  stop) cmd_stop "$2" ;;
  *) usage ;;
esac
