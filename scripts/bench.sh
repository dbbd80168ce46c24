#!/usr/bin/env bash
# `npm run bench`: install what is missing, compile src/ and bench/, then run every benchmark. Each one
# starts and stops its own clusters; results print as tables and land as JSON in bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prepare.sh >&2
npx tsc -p tsconfig.bench.json
# Benchmarks import the test bed helpers as ../scripts/testbed.mjs, relative to build/bench/.
ln -sfn ../scripts build/scripts
mkdir -p bench/results
if [[ $# -gt 0 ]]; then
  benches=("$@")
else
  benches=()
  for b in build/bench/*.js; do [[ $b == */lib.js || $b == */link.js ]] || benches+=("$b"); done
fi
for b in "${benches[@]}"; do
  echo "== $(basename "$b" .js)"
  node --expose-gc "$b"
done
