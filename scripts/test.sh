#!/usr/bin/env bash
# `npm test`: installs whatever is missing on a Debian 12 machine (system packages, npm packages, the
# native addon), builds, type-checks, then runs the whole vitest suite against a test bed of real Ceph
# clusters and a real glance-api that the suite starts and always stops.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-system-deps.sh

# npm ci when node_modules is missing or older than the lock file.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi

# The addon is an optional dependency, so npm ci tolerates a failed build; the tests must not.
addon=native/build/Release/ceph_rbd.node
if [[ ! -f $addon ]] || [[ -n $(find native/src native/binding.gyp -newer "$addon" 2>/dev/null | head -1) ]]; then
  npm run build:native
fi

npm run build
npm run typecheck

# The suite's global setup stops the test bed it started; this trap covers the runner being killed.
export SNAPSTORE_TESTBED_DIR=${SNAPSTORE_TESTBED_DIR:-$(mktemp -d /tmp/snapstore-testbed-XXXXXX)}
trap 'node scripts/testbed.mjs down "$SNAPSTORE_TESTBED_DIR" || true' EXIT
npx vitest run "$@"
