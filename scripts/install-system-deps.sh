#!/usr/bin/env bash
# Installs the Debian 12 packages snapstore needs (Ceph mon/osd/mgr/common + librbd/librados headers for the
# native addon, glance-api and keystone (served by uwsgi) for the integration tests) when any are missing. Idempotent and quiet when
# everything is present. Package init scripts are kept from starting daemons (they would bind glance-api
# to 0.0.0.0:9292) by a policy-rc.d guard for the duration of the install.
set -euo pipefail

PACKAGES=(ceph-mon ceph-osd ceph-mgr ceph-common librbd-dev librados-dev glance-api python3-glance-store uuid-runtime curl
  keystone python3-keystonemiddleware uwsgi-core uwsgi-plugin-python3 debootstrap)
if [[ "${1:-}" == "--no-glance" ]]; then
  PACKAGES=(ceph-mon ceph-osd ceph-mgr ceph-common librbd-dev librados-dev uuid-runtime curl)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  cat >&2 <<MSG
snapstore: missing Debian packages: ${missing[*]}
Install them as root (the policy-rc.d guard stops their init scripts from starting daemons):
  sudo sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
  sudo apt-get update
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}
MSG
  exit 1
fi

echo "snapstore: installing ${missing[*]}" >&2
guard=/usr/sbin/policy-rc.d
created_guard=0
if [[ ! -e $guard ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$guard"
  chmod +x "$guard"
  created_guard=1
fi
cleanup() { if [[ $created_guard -eq 1 ]]; then rm -f "$guard"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "snapstore: system packages installed" >&2
