#!/usr/bin/env bash
# A Debian 13 (trixie) root with the newer stack people run now: glance-api 2:30 (Epoxy, image API 2.17)
# and Ceph 18 (Reef), beside the Debian 12 system's Glance 25 and Ceph 16. The packages cannot be mixed
# into bookworm, so they live in a root of their own made once with debootstrap and cached.
#
#   scripts/trixie-root.sh ensure          make the root if it is not complete (idempotent, locked); prints its path
#   scripts/trixie-root.sh path            prints the root's path (made or not)
#   scripts/trixie-root.sh check           exit 0 when the root is complete, else 1 with what is missing on stderr
#   scripts/trixie-root.sh exec [--bind DIR]... -- CMD [ARG...]
#                                          runs CMD inside the root, each DIR bind-mounted at the same path
#
# The root is ${SNAPSTORE_TRIXIE_ROOT:-/var/cache/snapstore/trixie}. It shares the host's network (so its
# daemons listen on 127.0.0.1 like the others) and its PID namespace (so they are stopped by PID like the
# others). `exec` runs in a mount namespace of its own (unshare -m): /proc, /dev, /sys and the --bind
# directories are mounted into the root only for the processes started there, and vanish with the last of
# them; nothing stays mounted on the host, so the cache can be removed with rm -rf at any time.
#
# Making it needs root, debootstrap (scripts/install-system-deps.sh installs it) and the Debian mirror apt
# already uses: ~1 min for debootstrap and ~2.5 min for the packages, once per machine.
set -euo pipefail

ROOT=${SNAPSTORE_TRIXIE_ROOT:-/var/cache/snapstore/trixie}
# Bump when PACKAGES change: a root made for an older list is made again.
PACKAGES=(glance-api python3-glance-store python3-keystonemiddleware ceph-mon ceph-osd ceph-mgr ceph-common curl)
STAMP="$ROOT/.snapstore-ready"
STAMP_TEXT="trixie ${PACKAGES[*]}"

usage() { echo "usage: $0 ensure | path | check | exec [--bind DIR]... -- CMD [ARG...]" >&2; exit 2; }

die() { echo "snapstore: trixie root: $*" >&2; exit 1; }

complete() { [[ -f $STAMP && $(<"$STAMP") == "$STAMP_TEXT" ]]; }

# What is missing for making the root, one line, or nothing when it can be made.
missing_for_make() {
  [[ $(id -u) -eq 0 ]] || { echo "making the trixie root needs root (it runs debootstrap and chroot)"; return; }
  command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)"; return; }
  command -v unshare >/dev/null || { echo "unshare (util-linux) is not installed"; return; }
}

# The Debian mirror the host's apt already uses (deb822 sources or sources.list; a URI ending in /debian,
# not the security archive nor a third-party repository), so no other network is needed.
# SNAPSTORE_DEBIAN_MIRROR overrides it.
mirror() {
  local m
  m=${SNAPSTORE_DEBIAN_MIRROR:-$(grep -rhoE 'https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
    /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | head -1 | tr -d '[:space:]')}
  echo "${m:-http://deb.debian.org/debian}"
}

# Runs "$@" inside the root in a private mount namespace with /proc, /dev, /sys and the given binds.
in_root() {
  local binds=() d
  while [[ ${1:-} == --bind ]]; do binds+=("$2"); shift 2; done
  [[ ${1:-} == -- ]] && shift
  local script='set -e; r=$1; shift; n=$1; shift
    mount --make-rprivate / 2>/dev/null || true
    mount -t proc proc "$r/proc"; mount --rbind /dev "$r/dev"; mount --rbind /sys "$r/sys"
    for ((i = 0; i < n; i++)); do mkdir -p "$r$1"; mount --bind "$1" "$r$1"; shift; done
    exec chroot "$r" "$@"'
  for d in "${binds[@]}"; do [[ -d $d ]] || die "--bind $d: no such directory"; done
  exec unshare --mount --propagation private -- bash -c "$script" trixie-root "$ROOT" "${#binds[@]}" "${binds[@]}" "$@"
}

make_root() {
  local why; why=$(missing_for_make)
  [[ -z $why ]] || die "$why"
  local tmp="$ROOT.new"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$ROOT")"
  echo "snapstore: making the trixie root at $ROOT (debootstrap, then glance-api 30 and Ceph 18; a few minutes, once)" >&2
  debootstrap --variant=minbase trixie "$tmp" "$(mirror)" >"$tmp.log" 2>&1 || die "debootstrap failed (log: $tmp.log)"
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod +x "$tmp/usr/sbin/policy-rc.d"
  cp /etc/hosts "$tmp/etc/hosts"
  ( ROOT=$tmp in_root -- /bin/sh -c "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
      apt-get install -y -qq --no-install-recommends ${PACKAGES[*]} && apt-get clean" ) >>"$tmp.log" 2>&1 \
    || die "installing the packages in the root failed (log: $tmp.log)"
  echo "$STAMP_TEXT" >"$tmp/.snapstore-ready"
  rm -rf "$ROOT" "$tmp.log"
  mv "$tmp" "$ROOT"
  echo "snapstore: trixie root ready" >&2
}

cmd=${1:-}; shift || true
case $cmd in
  path) echo "$ROOT" ;;
  check)
    complete && exit 0
    why=$(missing_for_make)
    die "not made at $ROOT (run scripts/trixie-root.sh ensure${why:+; but $why})" ;;
  ensure)
    if ! complete; then
      mkdir -p "$(dirname "$ROOT")"
      exec 9>"$ROOT.lock"
      flock 9
      complete || make_root
    fi
    echo "$ROOT" ;;
  exec)
    complete || die "not made at $ROOT (run scripts/trixie-root.sh ensure)"
    in_root "$@" ;;
  *) usage ;;
esac
