#!/usr/bin/env bash
# A real Keystone (Debian's `keystone`, sqlite, fernet tokens) served by uwsgi on 127.0.0.1, with the users
# snapstore's tests need:
#   admin   (bootstrap)                        admin of project admin
#   member  password                           member of project demo (an operator's user)
#   glance  password                           admin in project service (Glance's keystonemiddleware user)
#   nova    password                           `service` role in project service (sends service tokens)
# and, with --image-url, an `image` service with public and internal endpoints in RegionOne.
#
#   scripts/keystone.sh start DIR [--port PORT] [--token-expiration SECONDS] [--image-url URL]
#   scripts/keystone.sh stop DIR
#
# start writes DIR/keystone.env (url, the users' passwords, project ids; mode 600) and prints its `url=`
# line. uwsgi runs in its own session with one process and ONE thread (sqlite answers "database is locked"
# to concurrent writes). uwsgi's http-socket closes every connection after its answer: the answers say so
# (Connection: close), or clients that pool connections (keystonemiddleware's requests, undici) reuse a
# closed one and fail with "Remote end closed connection". stop sends SIGINT to the master recorded in DIR/keystone.pid (SIGTERM would only
# make it reload), then SIGKILL to the group if it lingers.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR [--port PORT] [--token-expiration SECONDS] [--image-url URL] | stop DIR" >&2
  exit 2
}

# shellcheck source=lib/alive.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/alive.sh"

cmd_stop() {
  local dir=$1 pid i
  [[ -s $dir/keystone.pid ]] || return 0
  pid=$(<"$dir/keystone.pid")
  if alive "$pid"; then
    kill -INT "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.05; done
    if alive "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
    for ((i = 0; i < 40; i++)); do alive "$pid" || break; sleep 0.05; done
  fi
  rm -f "$dir/keystone.pid"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

write_conf() {
  local dir=$1 expiration=$2
  cat >"$dir/keystone.conf" <<EOF
[DEFAULT]
log_file = $dir/keystone.log
[database]
connection = sqlite:///$dir/keystone.db
[token]
provider = fernet
expiration = $expiration
[fernet_tokens]
key_repository = $dir/fernet-keys
[fernet_receipts]
key_repository = $dir/fernet-keys
[credential]
key_repository = $dir/credential-keys
EOF
}

cmd_start() {
  local dir=$1; shift
  local port='' expiration=3600 image_url=''
  while [[ $# -gt 0 ]]; do
    case $1 in
      --port) [[ $# -ge 2 ]] || usage; port=$2; shift 2 ;;
      --token-expiration) [[ $# -ge 2 ]] || usage; expiration=$2; shift 2 ;;
      --image-url) [[ $# -ge 2 ]] || usage; image_url=$2; shift 2 ;;
      *) usage ;;
    esac
  done
  [[ -z $port ]] && port=$(free_port)
  [[ $port =~ ^[0-9]+$ && $expiration =~ ^[0-9]+$ ]] || usage
  mkdir -p "$dir"/{fernet-keys,credential-keys}
  dir=$(cd "$dir" && pwd)
  chmod 700 "$dir"
  write_conf "$dir" "$expiration"
  local conf=$dir/keystone.conf url=http://127.0.0.1:$port
  local admin_pw
  admin_pw=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
  if ! {
    keystone-manage --config-file "$conf" db_sync
    # Write-ahead logging (kept in the file): a read transaction left open on one pooled connection then no
    # longer blocks another connection's write, which otherwise fails with 500 "database is locked".
    python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL")' "$dir/keystone.db"
    keystone-manage --config-file "$conf" fernet_setup --keystone-user root --keystone-group root
    keystone-manage --config-file "$conf" credential_setup --keystone-user root --keystone-group root
    keystone-manage --config-file "$conf" bootstrap --bootstrap-password "$admin_pw" \
      --bootstrap-admin-url "$url/v3/" --bootstrap-public-url "$url/v3/" --bootstrap-internal-url "$url/v3/" \
      --bootstrap-region-id RegionOne
  } >"$dir/setup.log" 2>&1; then
    echo "keystone-manage failed; the end of $dir/setup.log:" >&2
    grep -v getcurrent "$dir/setup.log" | tail -n 5 >&2
    exit 1
  fi
  # The daemon must not inherit this script's descriptors above 2: a caller's pipe would never close.
  OS_KEYSTONE_CONFIG_FILES=$conf setsid bash -c 'for fd in /proc/$$/fd/*; do fd=${fd##*/}; ((fd > 2)) && eval "exec $fd>&-"; done; exec "$@"' _ \
    uwsgi --plugin python3 --http-socket "127.0.0.1:$port" --wsgi-file /usr/bin/keystone-wsgi-public \
    --processes 1 --threads 1 --master --die-on-term --add-header 'Connection: close' \
    >"$dir/uwsgi.out" 2>&1 </dev/null &
  echo $! >"$dir/keystone.pid"
  local i
  for ((i = 0; i < 300; i++)); do
    curl -fsS -o /dev/null "$url/v3" 2>/dev/null && break
    alive "$(<"$dir/keystone.pid")" || break
    sleep 0.1
  done
  if ! curl -fsS -o /dev/null "$url/v3" 2>/dev/null; then
    echo "keystone did not answer on $url; the end of $dir/uwsgi.out:" >&2
    tail -n 5 "$dir/uwsgi.out" >&2
    cmd_stop "$dir"
    exit 1
  fi
  if ! KS_URL=$url KS_ADMIN_PW=$admin_pw KS_IMAGE_URL=$image_url KS_ENV=$dir/keystone.env \
    python3 "$(dirname "$0")/keystone-provision.py" >>"$dir/setup.log" 2>&1; then
    echo "provisioning keystone failed; the ends of $dir/setup.log and uwsgi.out:" >&2
    tail -n 3 "$dir/setup.log" >&2
    tail -n 5 "$dir/uwsgi.out" >&2
    cmd_stop "$dir"
    exit 1
  fi
  chmod 600 "$dir/keystone.env"
  grep '^url=' "$dir/keystone.env"
}

[[ $# -ge 2 ]] || usage
case $1 in
  start) cmd_start "${@:2}" ;;
  stop) cmd_stop "$2" ;;
  *) usage ;;
esac
