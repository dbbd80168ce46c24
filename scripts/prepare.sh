#!/usr/bin/env bash
# Everything `npm test`, `npm run demo` and `npm run bench` need on a Debian 12 machine: the system
# packages, the npm packages, the native addon and the compiled TypeScript. Each step is skipped when
# its result is already up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-system-deps.sh

# The Debian 13 root (Glance 30, Ceph 18) the newer-stack tests run in: made once per machine (a few
# minutes), a no-op afterwards. When it cannot be made, the tests that need it fail naming what is missing;
# everything else still runs.
if ! bash scripts/trixie-root.sh ensure >/dev/null; then
  echo "snapstore: the trixie root could not be made; the Glance 30 / Ceph 18 tests will fail" >&2
fi

# npm ci also runs native/'s install script: node-gyp (tolerated to fail) and tsc -b (native/lib -> dist).
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi

# The addon is an optional dependency, so npm ci tolerates a failed build; snapstore's own runs must not.
addon=native/build/Release/ceph_rbd.node
if [[ ! -f $addon ]] || [[ -n $(find native/src native/binding.gyp -newer "$addon" 2>/dev/null | head -1) ]]; then
  npm run build:native
fi

# Compiles native/lib (tsc -b: incremental, a no-op when dist/ is current) and then src/.
npm run build
