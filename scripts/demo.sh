#!/usr/bin/env bash
# `npm run demo`: install what is missing, then run the demo (scripts/demo.mjs), which tears down all it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prepare.sh >&2
node scripts/demo.mjs
