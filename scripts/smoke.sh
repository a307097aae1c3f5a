#!/usr/bin/env bash
# Smoke run of every shipped experiment: each runs at full size with random weights, one sample
# and two sampler steps (`run --set`), into a scratch results folder. It checks that every
# experiment plans, builds its models, samples, measures and commits; its numbers mean nothing.
#   BUILD_DIR   build folder with deepcache-bench (default build)
#   SMOKE_DIR   where the results go (default: a fresh temporary folder, removed afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD_DIR:-build}/deepcache-bench
dir=${SMOKE_DIR:-$(mktemp -d)}
[ -n "${SMOKE_DIR:-}" ] || trap 'rm -rf "$dir"' EXIT
fail=0
for e in experiments/*.yaml; do
  name=$(basename "$e" .yaml)
  start=$(date +%s)
  if "$BIN" run "$e" --results "$dir/$name.h5" --set model.weights=random samples.n=1 sampler.steps=2 >"$dir/$name.log" 2>&1; then
    echo "smoke: $e ok ($(grep -o '([0-9]* run, [0-9]* skipped as complete, [0-9]* failed)' "$dir/$name.log"), $(( $(date +%s) - start ))s)"
  else
    echo "smoke: $e FAILED:"; tail -n 20 "$dir/$name.log"; fail=1
  fi
done
exit $fail
