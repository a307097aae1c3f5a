#!/usr/bin/env bash
# Smoke run of every shipped experiment: each runs at full size with random weights, one sample
# and two sampler steps (`run --set`), into a scratch results folder. It checks that every
# experiment plans, builds its models, samples, measures and commits; its numbers mean nothing.
# Every run of every experiment is planned (resolved and validated); of an experiment with more
# than SMOKE_MAX_RUNS runs, that many are run, spread evenly over its list from the first to the
# last (the schedule-parameter grids repeat the same code with other numbers); with 1, the last.
# The full-size policy zoos (experiments/policy_zoo_{ldm4g,sd15}.yaml: one run per caching policy,
# each other code) run every run, with four sampler steps so the adaptive policies have calls to skip or reuse, at 64 px
# (the full-size modules on smaller latents: model.image_size).
#   BUILD_DIR        build folder with deepcache-bench (default build)
#   SMOKE_DIR        where the results go (default: a fresh temporary folder, removed afterwards)
#   SMOKE_MAX_RUNS   runs executed per experiment (default 4; 0 = all; 1 = the last)
#   SMOKE_ONLY       a glob of the experiments to run (default '*': every one)
#   SMOKE_JOBS       experiments run at once (default 1), each with cores/SMOKE_JOBS torch threads
#   SMOKE_SD_FULL    1: Stable Diffusion experiments at their full 512x512 too (about 100 s per image
#                    on a 2-core machine: CFG doubles every UNet call and the VAE decodes 512x512);
#                    by default they run at 128x128 pixels (model.image_size: the same modules on
#                    16x16 latents). Their prompts, tokenizer and CLIP score model are stand-ins
#                    (a 3-line prompt file, the fixtures' CLIP tokenizer and tiny open_clip model)
#                    unless DEEPCACHE_PARTI_PROMPTS, DEEPCACHE_COCO_PROMPTS, DEEPCACHE_CLIP_TOKENIZER
#                    and DEEPCACHE_CLIP_WEIGHTS are set.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD_DIR:-build}/deepcache-bench
dir=${SMOKE_DIR:-$(mktemp -d)}
[ -n "${SMOKE_DIR:-}" ] || trap 'rm -rf "$dir"' EXIT
max=${SMOKE_MAX_RUNS:-4}
set_args=(--set model.weights=random samples.n=1 sampler.steps=2)
fail=0
# Experiments with Inception metrics check their inputs before sampling: the FID Inception weights
# (DEEPCACHE_INCEPTION_WEIGHTS, or the large fixtures' copy) and a reference .npz, here a generated
# one of the right shape (with one sample no FID is computed; tests/test_runner_metrics.cpp's
# RunnerMetrics.PaperTablesComputeFidInRun computes it for table2 and table12).
if [ -z "${DEEPCACHE_INCEPTION_WEIGHTS:-}" ] && [ -f "${DEEPCACHE_FIXTURES_LARGE:-../shared/fixtures/fid/large}/inception_fid.weights.safetensors" ]; then
  export DEEPCACHE_INCEPTION_WEIGHTS="$(cd "${DEEPCACHE_FIXTURES_LARGE:-../shared/fixtures/fid/large}" && pwd)/inception_fid.weights.safetensors"
fi
fid_ref="$dir/fid_reference_2048.npz"
/usr/bin/python3 -c "import numpy as np, sys; np.savez(sys.argv[1], mu=np.zeros(2048), sigma=np.eye(2048))" "$fid_ref"
# The LDM-4-G tables read the ADM evaluator's reference batch (configs/metrics/adm_imagenet256.yaml):
# a stand-in of its layout (arr_0 images, mu/sigma, mu_s/sigma_s) unless a real one is set.
if [ -z "${DEEPCACHE_ADM_REFERENCE:-}" ]; then
  export DEEPCACHE_ADM_REFERENCE="$dir/adm_reference_standin.npz"
  /usr/bin/python3 -c "import numpy as np, sys; r = np.random.default_rng(0); np.savez(sys.argv[1], arr_0=r.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8), mu=np.zeros(2048), sigma=np.eye(2048), mu_s=np.zeros(2023), sigma_s=np.eye(2023))" "$DEEPCACHE_ADM_REFERENCE"
fi
# Stable Diffusion: stand-in prompt files and tokenizer; the tiny open_clip fixture for CLIP score.
fixtures=${DEEPCACHE_FIXTURES:-tests/fixtures}
printf 'a red cube on a wooden table\na lighthouse on a cliff at dusk\na bowl of ramen, studio photo\n' >"$dir/prompts_standin.txt"
export DEEPCACHE_PARTI_PROMPTS=${DEEPCACHE_PARTI_PROMPTS:-$dir/prompts_standin.txt}
export DEEPCACHE_COCO_PROMPTS=${DEEPCACHE_COCO_PROMPTS:-$dir/prompts_standin.txt}
export DEEPCACHE_CLIP_TOKENIZER=${DEEPCACHE_CLIP_TOKENIZER:-$(cd "$fixtures/clip/tokenizer" && pwd)}
clip_set=()
if [ -z "${DEEPCACHE_CLIP_WEIGHTS:-}" ]; then
  /usr/bin/python3 -c "import json, sys; json.dump(json.load(open(sys.argv[1]))['config']['model_cfg'], open(sys.argv[2], 'w'))" \
    "$fixtures/clip/openclip_vitg14_tiny.json" "$dir/clip_tiny.json"
  clip_set=(metrics.clip_score.model_config="$dir/clip_tiny.json" metrics.clip_score.weights="$(cd "$fixtures/clip" && pwd)/openclip_vitg14_tiny.weights.safetensors")
fi
# One experiment: plan every run, run the chosen ones; its lines go to $dir/<name>.status, and it
# returns 1 when it failed.
smoke_one() {
  local e=$1 name start n ids
  name=$(basename "$e" .yaml)
  start=$(date +%s)
  local extra=() only=() runs_max=$max
  if [[ $name == policy_zoo_* ]] && grep -Eq 'configs/models/(ldm_cin256_v2|sd15)' "$e"; then
    extra=(sampler.steps=4 model.image_size=64); runs_max=0
  fi
  if grep -Eq '^ *fid: *\{|adm_imagenet256' "$e"; then
    if [ -z "${DEEPCACHE_INCEPTION_WEIGHTS:-}" ]; then
      echo "smoke: $e FAILED: it computes FID and no Inception weights are set (DEEPCACHE_INCEPTION_WEIGHTS or DEEPCACHE_FIXTURES_LARGE)"; return 1
    fi
    if grep -Eq '^ *fid: *\{' "$e"; then extra+=(metrics.fid.reference="$fid_ref"); fi
  fi
  if grep -Eq 'configs/models/sd15' "$e"; then
    if [ "${SMOKE_SD_FULL:-}" != 1 ] && [[ $name != policy_zoo_* ]]; then extra+=(model.image_size=128); fi
    if grep -Eq 'clip_score' "$e"; then extra+=("${clip_set[@]}"); fi
  fi
  if ! ids=$("$BIN" plan "$e" "${set_args[@]}" "${extra[@]}" 2>&1 | awk '$1 ~ /^[0-9]+$/ && $2 ~ /^[0-9a-f]+$/ && length($2) == 16 {print $2}'); then
    echo "smoke: $e FAILED to plan:"; "$BIN" plan "$e" "${set_args[@]}" "${extra[@]}" 2>&1 | tail -n 5; return 1
  fi
  n=$(echo "$ids" | grep -c .) || true
  if [ "$runs_max" -eq 1 ] && [ "$n" -gt 1 ]; then  # the last run: the list's cached variant (a baseline comes first)
    only=(--only "$(echo "$ids" | tail -n 1)")
  elif [ "$runs_max" -gt 0 ] && [ "$n" -gt "$runs_max" ]; then  # runs 0, (n-1)/(max-1), ..., n-1
    only=(--only $(echo "$ids" | awk -v n="$n" -v m="$runs_max" '{ids[NR-1]=$0} END {for (j = 0; j < m; j++) print ids[int(j * (n - 1) / (m - 1))]}'))
  fi
  if "$BIN" run "$e" --results "$dir/$name.h5" "${set_args[@]}" "${extra[@]}" "${only[@]}" >"$dir/$name.log" 2>&1; then
    echo "smoke: $e ok ($n planned, $(grep -o '([0-9]* runs\?, [0-9]* skipped as complete, [0-9]* failed)' "$dir/$name.log"), $(( $(date +%s) - start ))s)"
  else
    echo "smoke: $e FAILED:"; tail -n 20 "$dir/$name.log"; return 1
  fi
}
# SMOKE_JOBS experiments at once, each with cores / SMOKE_JOBS torch threads: a run's model building,
# file I/O and start-up are single-threaded, so two one-thread processes keep two cores busier than
# one two-thread process (measured here: two LDM-4-G runs 53 s side by side, 64 s one after the other).
jobs=${SMOKE_JOBS:-1}
if [ "$jobs" -gt 1 ] && [ -z "${OMP_NUM_THREADS:-}" ]; then export OMP_NUM_THREADS=$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 )); fi
names=()
for e in experiments/${SMOKE_ONLY:-*}.yaml; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  name=$(basename "$e" .yaml)
  names+=("$name")
  ( rc=0; smoke_one "$e" >"$dir/$name.status" 2>&1 || rc=$?; echo "$rc" >"$dir/$name.rc" ) &
done
wait
for name in "${names[@]}"; do  # in the experiments' order
  cat "$dir/$name.status"
  [ "$(cat "$dir/$name.rc" 2>/dev/null)" = 0 ] || fail=1
done
exit $fail
