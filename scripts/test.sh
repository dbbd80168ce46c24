#!/usr/bin/env bash
# `npm test`: installs whatever is missing (scripts/prepare.sh), type-checks, then runs the whole vitest
# suite against a test bed of real Ceph clusters and a real glance-api that the suite starts and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/prepare.sh
npm run typecheck
npm run lint

# The suite's global setup stops the test bed it started; this trap covers the runner being killed.
export SNAPSTORE_TESTBED_DIR=${SNAPSTORE_TESTBED_DIR:-$(mktemp -d /tmp/snapstore-testbed-XXXXXX)}
trap 'node scripts/testbed.mjs down "$SNAPSTORE_TESTBED_DIR" || true; [[ ${SNAPSTORE_KEEP_TESTBED:-} == 1 ]] || rm -rf "$SNAPSTORE_TESTBED_DIR"' EXIT
npx vitest run "$@"
