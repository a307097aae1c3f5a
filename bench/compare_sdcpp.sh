#!/usr/bin/env bash
# Side-by-side CPU timing of Stable Diffusion v1.5 (512x512, one image) in stable-diffusion.cpp
# (leejet/stable-diffusion.cpp, ggml) and in deepcache-bench (LibTorch), plain and with DeepCache.
# Both read the same random-initialised single-file checkpoint (bench/make_random_sd15.py: CompVis
# names + the CLIP text encoder under cond_stage_model.transformer., as v1-5-pruned-emaonly).
#
# Same on both sides: weights file (fp32 by default), Euler sampler over the "discrete"/linspace SD
# schedule with STEPS steps = STEPS denoiser evaluations, classifier-free guidance CFG (7.5) with the
# negative prompt "", the prompt, 512x512, THREADS threads. sd.cpp's own caches (--cache-mode
# easycache/ucache/dbcache/taylorseer/cache-dit/spectrum) stay off: the option is never passed and
# its default is SD_CACHE_DISABLED (src/stable-diffusion.cpp sd_cache_params_init); the -v log shows
# `cache_mode: ""`.
# Guidance: sd.cpp runs the UNet twice per step (cond, then uncond, batch 1 each: src/stable-diffusion.cpp,
# the denoise lambda of sample(): run_condition(cond) and run_condition(uncond)); deepcache-bench runs
# it once per step with the batch doubled ([uncond; cond], harness/runner.cpp). So the comparable unit
# is one denoising STEP (2 images through the UNet), not one UNet call.
#
# Usage:
#   SDCPP_SRC=/tmp/sdcpp bench/compare_sdcpp.sh            # build sd-cli, write weights, time both
# Environment (defaults in brackets):
#   SDCPP_SRC      stable-diffusion.cpp checkout with ggml/ checked out at the pinned commit (required)
#   SDCPP_BUILD    [$SDCPP_SRC/build-cpu]   build folder; sd-cli ends up in $SDCPP_BUILD/bin/sd-cli
#   BUILD_JOBS     [2]                      parallel compile jobs
#   OUT            [/tmp/sdcpp_compare]     logs, images, results, the table (compare.md)
#   WEIGHTS_DTYPE  [fp32]                   fp32 | fp16 (fp16: sd.cpp gets --type f32 so both compute in fp32)
#   WEIGHTS        [$OUT/sd15_random_$WEIGHTS_DTYPE.safetensors]  written when missing (~45 s, 4.3 GB fp32)
#   STEPS [20]  THREADS [2]  CFG [7.5]  SEED [42]  SIZE [512]  PROMPT ["a photograph of an astronaut riding a horse"]
#   CACHE_K [1]  INTERVAL [5]               DeepCache skip index k (paper branch m = k+1) and interval N
#   OURS_BIN       [<repo>/build/deepcache-bench]
#   TOKENIZER      [<repo>/../shared/fixtures/clip/tokenizer]  CLIP vocab.json + merges.txt (the file has none)
#   PYTHON         [/usr/bin/python3]       needs numpy and h5py (Debian's python3-numpy, python3-h5py)
#   TASKSET        [""]                     e.g. "taskset -c 0,1" to pin both programs to the same cores
#   DO_BUILD=1 DO_SDCPP=1 DO_OURS=1         set one to 0 to skip that part (e.g. re-time without rebuilding)
#   SDCPP_EXTRA    [""]                     extra sd-cli options (e.g. --diffusion-fa to try flash attention)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${SDCPP_SRC:?set SDCPP_SRC to a stable-diffusion.cpp checkout (ggml/ in place)}"
SDCPP_SRC=$(cd "$SDCPP_SRC" && pwd)
SDCPP_BUILD=${SDCPP_BUILD:-$SDCPP_SRC/build-cpu}
BUILD_JOBS=${BUILD_JOBS:-2}
OUT=${OUT:-/tmp/sdcpp_compare}
WEIGHTS_DTYPE=${WEIGHTS_DTYPE:-fp32}
WEIGHTS=${WEIGHTS:-$OUT/sd15_random_$WEIGHTS_DTYPE.safetensors}
STEPS=${STEPS:-20}
THREADS=${THREADS:-2}
CFG=${CFG:-7.5}
SEED=${SEED:-42}
SIZE=${SIZE:-512}
PROMPT=${PROMPT:-a photograph of an astronaut riding a horse}
CACHE_K=${CACHE_K:-1}
INTERVAL=${INTERVAL:-5}
OURS_BIN=${OURS_BIN:-$REPO/build/deepcache-bench}
TOKENIZER=${TOKENIZER:-$(cd "$REPO/.." && pwd)/shared/fixtures/clip/tokenizer}
PYTHON=${PYTHON:-/usr/bin/python3}
TASKSET=${TASKSET:-}
DO_BUILD=${DO_BUILD:-1}
DO_SDCPP=${DO_SDCPP:-1}
DO_OURS=${DO_OURS:-1}
SDCPP_EXTRA=${SDCPP_EXTRA:-}
SDCLI=$SDCPP_BUILD/bin/sd-cli
STAMP=$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
say() { printf '[compare_sdcpp] %s\n' "$*" >&2; }
now() { date +%s.%N; }

# ---- 1. sd.cpp: source checks, CPU-only Release build of sd-cli --------------------------------
if [[ $DO_BUILD == 1 ]]; then
  [[ -f $SDCPP_SRC/ggml/CMakeLists.txt ]] || { say "$SDCPP_SRC/ggml is empty: check out the submodule (git -C \$SDCPP_SRC ls-tree HEAD ggml gives the commit)"; exit 2; }
  # Snapshots without the large tokenizer tables (T5, Qwen, Mistral, Gemma, GPT-OSS vocabularies)
  # cannot compile src/tokenizers/vocab/vocab.cpp. SD1.5 only needs clip_merges.hpp: the missing
  # headers are replaced by one-byte stubs (in the sd.cpp checkout only; models that need those
  # tokenizers would then fail, SD1.x does not touch them). Nothing happens when all are present.
  "$PYTHON" - "$SDCPP_SRC/src/tokenizers/vocab" <<'EOF'
import os, re, sys
d = sys.argv[1]
src = open(os.path.join(d, "vocab.cpp")).read()
headers = re.findall(r'#include\s+"([^"]+\.hpp)"', src)
missing = [h for h in headers if not os.path.exists(os.path.join(d, h))]
if not missing:
    sys.exit(0)
if "clip_merges.hpp" in missing:
    sys.exit("clip_merges.hpp is missing too: SD1.5's tokenizer cannot be stubbed; get a complete checkout")
used = set(re.findall(r"reinterpret_cast<const char\*>\((\w+)\)", src))
defined = set()
for h in headers:
    p = os.path.join(d, h)
    if os.path.exists(p):
        with open(p, errors="replace") as f:
            defined |= set(re.findall(r"(\w+)\s*\[\]\s*=", f.read(4096)))
undefined = sorted(used - defined)
for i, h in enumerate(missing):
    with open(os.path.join(d, h), "w") as f:
        f.write("// STUB written by deepcache-bench bench/compare_sdcpp.sh: the snapshot lacked this table.\n#pragma once\n")
        if i == 0:
            for s in undefined:
                f.write(f"static const unsigned char {s}[] = {{0}};\n")
print(f"[compare_sdcpp] stubbed {len(missing)} missing tokenizer tables ({', '.join(missing)}); symbols {', '.join(undefined)}", file=sys.stderr)
EOF
  say "configuring $SDCPP_BUILD (Release, CPU only)"
  t=$(now)
  cmake -S "$SDCPP_SRC" -B "$SDCPP_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DSD_CUDA=OFF -DSD_HIPBLAS=OFF -DSD_METAL=OFF -DSD_VULKAN=OFF -DSD_OPENCL=OFF -DSD_SYCL=OFF -DSD_MUSA=OFF \
    -DSD_WEBP=OFF -DSD_WEBM=OFF -DSD_BUILD_SHARED_LIBS=OFF -DSD_SERVER_BUILD_FRONTEND=OFF \
    -DGGML_NATIVE=ON -DGGML_BLAS=OFF > "$OUT/sdcpp_cmake.log" 2>&1 || { tail -30 "$OUT/sdcpp_cmake.log"; exit 1; }
  say "building sd-cli with $BUILD_JOBS jobs (log: $OUT/sdcpp_build.log)"
  cmake --build "$SDCPP_BUILD" --target sd-cli -j "$BUILD_JOBS" > "$OUT/sdcpp_build.log" 2>&1 || { tail -40 "$OUT/sdcpp_build.log"; exit 1; }
  say "sd-cli built in $(awk -v a="$t" -v b="$(now)" 'BEGIN{printf "%.0f", b-a}') s"
fi

# ---- 2. the weights ---------------------------------------------------------------------------
if [[ ! -s $WEIGHTS ]]; then
  say "writing random SD1.5 weights ($WEIGHTS_DTYPE) to $WEIGHTS"
  "$PYTHON" "$REPO/bench/make_random_sd15.py" "$WEIGHTS" --dtype "$WEIGHTS_DTYPE" --seed 0 --std 0.02
fi
"$OURS_BIN" inspect "$WEIGHTS" --no-tensors > "$OUT/inspect.log" 2>&1 || true

# ---- 3. stable-diffusion.cpp ------------------------------------------------------------------
SDLOG=$OUT/sdcpp-$STAMP.log
if [[ $DO_SDCPP == 1 ]]; then
  [[ -x $SDCLI ]] || { say "$SDCLI not built (DO_BUILD=1)"; exit 2; }
  type_opt=()
  [[ $WEIGHTS_DTYPE == fp16 ]] && type_opt=(--type f32)
  # --eager-load: every weight is read at context creation, so generate_image's time holds no file
  # reading (the default loads each model lazily on its first use, i.e. inside sampling).
  cmd=($TASKSET "$SDCLI" -m "$WEIGHTS" -p "$PROMPT" --cfg-scale "$CFG" --sampling-method euler --scheduler discrete
       --steps "$STEPS" -W "$SIZE" -H "$SIZE" -s "$SEED" -t "$THREADS" --eager-load "${type_opt[@]}" -v
       -o "$OUT/sdcpp-$STAMP.png" $SDCPP_EXTRA)
  printf '%q ' "${cmd[@]}" > "$OUT/sdcpp-$STAMP.cmd"; echo >> "$OUT/sdcpp-$STAMP.cmd"
  say "sd.cpp: $(cat "$OUT/sdcpp-$STAMP.cmd")"
  t=$(now)
  env -u OMP_NUM_THREADS "${cmd[@]}" > "$SDLOG" 2>&1 || { tail -30 "$SDLOG"; say "sd-cli failed (log $SDLOG)"; exit 1; }
  echo "PROCESS_WALL_SECONDS $(awk -v a="$t" -v b="$(now)" 'BEGIN{printf "%.3f", b-a}')" >> "$SDLOG"
fi

# ---- 4. deepcache-bench: plain and DeepCache in one `run` (per-call times in the results file) --
OURS_DIR=$OUT/ours-$STAMP
if [[ $DO_OURS == 1 ]]; then
  mkdir -p "$OURS_DIR"
  cat > "$OURS_DIR/sdcpp_compare.yaml" <<EOF
experiment: sdcpp_compare
description: "SD1.5 random weights, euler $STEPS steps, CFG $CFG, ${SIZE}x$SIZE, 1 image: plain vs DeepCache k=$CACHE_K N=$INTERVAL (beside stable-diffusion.cpp)"
base:
  model: {family: sd, preset: sd15, weights: "$WEIGHTS", tokenizer: "$TOKENIZER", image_size: $SIZE}
  sampler: {name: euler, steps: $STEPS}
  conditioning: {prompt: "$PROMPT", negative_prompt: "", guidance: $CFG}
  samples: {n: 1, batch: 1, seed: $SEED, save_images: false, grid: 1}
  device: cpu
baseline: true
runs:
  - {cache.k: $CACHE_K, cache.interval: $INTERVAL}
EOF
  # The same runs as: deepcache-bench sample --model sd --preset sd15 --weights W --tokenizer T
  #   --sampler euler --steps S --guidance CFG --prompt P --n 1 --seed SEED --out x.png [--cache-k K --interval N]
  # (sample prints only the end-to-end time; run also stores every call's time).
  say "deepcache-bench: OMP_NUM_THREADS=$THREADS run $OURS_DIR/sdcpp_compare.yaml"
  t=$(now)
  OMP_NUM_THREADS=$THREADS $TASKSET "$OURS_BIN" run "$OURS_DIR/sdcpp_compare.yaml" --results "$OURS_DIR/results.h5" \
    > "$OURS_DIR/run.log" 2>&1 || { tail -30 "$OURS_DIR/run.log"; say "deepcache-bench run failed"; exit 1; }
  echo "PROCESS_WALL_SECONDS $(awk -v a="$t" -v b="$(now)" 'BEGIN{printf "%.3f", b-a}')" >> "$OURS_DIR/run.log"
  "$OURS_BIN" report "$OURS_DIR/results.h5" > "$OURS_DIR/report.md" 2>/dev/null || true
fi

# ---- 5. the table -----------------------------------------------------------------------------
SDLOG_USE=$SDLOG; [[ -f $SDLOG_USE ]] || SDLOG_USE=$(ls -t "$OUT"/sdcpp-*.log 2>/dev/null | head -1 || true)
OURS_USE=$OURS_DIR; [[ -f $OURS_USE/results.h5 ]] || OURS_USE=$(ls -td "$OUT"/ours-* 2>/dev/null | head -1 || true)
"$PYTHON" - "$SDLOG_USE" "$OURS_USE" "$STEPS" "$THREADS" "$CFG" "$SIZE" "$WEIGHTS" "$WEIGHTS_DTYPE" <<'EOF' | tee "$OUT/compare-$STAMP.md"
import json, os, re, statistics, sys
sdlog, ours, steps, threads, cfg, size, weights, wdtype = sys.argv[1:9]
steps = int(steps)
rows = {}  # column -> dict
notes = []

def f(x, d=2):
    return "-" if x is None else f"{x:.{d}f}"

if sdlog and os.path.exists(sdlog):
    txt = open(sdlog, errors="replace").read().replace("\r", "\n")
    def grab(pat):
        m = re.findall(pat, txt)
        return float(m[-1]) if m else None
    cond = grab(r"get_learned_condition completed, taking ([0-9.]+)s")
    samp = grab(r"sampling completed, taking ([0-9.]+)s")
    dec = grab(r"decode_first_stage completed, taking ([0-9.]+)s")
    gen = grab(r"generate_image completed in ([0-9.]+)s")
    wall = grab(r"PROCESS_WALL_SECONDS ([0-9.]+)")
    load = grab(r"loading tensors completed, taking ([0-9.]+)s")
    per = {}
    for st, n, v, unit in re.findall(r"\|\s*(\d+)/(\d+) - ([0-9.]+)(s/it|it/s)", txt):
        if int(n) == steps and float(v) > 0:
            per[int(st)] = float(v) if unit == "s/it" else 1.0 / float(v)
    later = [per[s] for s in sorted(per) if s >= 2]
    rows["stable-diffusion.cpp"] = {
        "step": statistics.median(later) if later else (samp / steps if samp else None),
        "step_partial": None, "step_mean": samp / steps if samp else None, "sampling": samp,
        "text": cond, "decode": dec, "other": None, "e2e": gen, "wall": wall,
        "calls": f"{steps} x 2 (cond, uncond; batch 1)"}
    if not later:
        notes.append("sd.cpp: no per-step progress lines found; per step = sampling / steps")
    ver = re.findall(r"Version: ([^\n]+)", txt)
    unk = len(re.findall(r"unknown tensor", txt))
    cm = re.findall(r'cache_mode: "([^"]*)"', txt)
    notes.append(f"sd.cpp log {sdlog}: version {ver[-1].strip() if ver else '?'}; cache_mode {cm[-1]!r} (\"\" = disabled)"
                 f"{'' if cm else ' (not printed)'}; {unk} 'unknown tensor' lines; weights read at load in {f(load)} s (--eager-load)")
    notes.append("sd.cpp per step = median of the progress bar's per-step times, steps 2..N (step 1 also pays the "
                 "compute graph's allocation); sampling = 'sampling completed'; text = get_learned_condition (prompt and negative "
                 "prompt); decode = decode_first_stage; end-to-end = generate_image (text + sampling + decode, no weight "
                 "loading); process = the whole sd-cli run (weight loading and PNG writing included)")

if ours and os.path.exists(os.path.join(ours, "results.h5")):
    import h5py
    with h5py.File(os.path.join(ours, "results.h5"), "r") as h:
        runs = sorted(h["runs"].values(), key=lambda g: int(g.attrs["order"]))
        wall = None
        lt = open(os.path.join(ours, "run.log"), errors="replace").read()
        m = re.findall(r"PROCESS_WALL_SECONDS ([0-9.]+)", lt)
        wall = float(m[-1]) if m else None
        for g in runs:
            name = g.attrs["name"]; name = name.decode() if isinstance(name, bytes) else str(name)
            status = g.attrs["status"]; status = status.decode() if isinstance(status, bytes) else str(status)
            if status != "complete":
                notes.append(f"ours: run {name} {status}: {g.attrs.get('error', '')}")
                continue
            st = g["step_time_ms"][()] / 1000.0
            full = g["is_full"][()].astype(bool)
            met = {k: float(g["metrics"][k][()]) for k in g["metrics"]}
            e2e = met["seconds_per_image"]
            cfgj = g.attrs.get("config", "{}"); cfgj = json.loads(cfgj.decode() if isinstance(cfgj, bytes) else str(cfgj))
            cache = cfgj.get("cache", {})
            label = "ours plain" if int(g.attrs["baseline"]) else f"ours DeepCache k={cache.get('k', '?')} N={cache.get('interval', '?')}"
            rows[label] = {
                "step": float(st[full].mean()) if full.any() else None,
                "step_partial": float(st[~full].mean()) if (~full).any() else None,
                "step_mean": float(st.mean()), "sampling": float(st.sum()), "text": None, "decode": None,
                "other": e2e - float(st.sum()), "e2e": e2e, "wall": wall if g is runs[-1] else None,
                "calls": f"{len(st)} x 1 (batch 2), {int(full.sum())} full"}
            ts = g.attrs.get("thread_settings", b""); ts = ts.decode() if isinstance(ts, bytes) else str(ts)
            notes.append(f"ours {name}: {ts}")
    notes.append("ours per step = mean time of the full (or partial) UNet calls, each one call at batch 2 (guidance); an "
                 "untimed warm-up call precedes the run; end-to-end = metrics/seconds_per_image (noise, the prompt's text "
                 "encoding, the sampling, the VAE decode, uint8 images; the negative prompt is encoded once before the "
                 "clock); text+decode+other = end-to-end - sampling; process = the one `run` process for both runs "
                 "(weight loading and the warm-up included), shown on the last row")

cols = list(rows)
def line(label, key, d=2):
    return f"| {label} | " + " | ".join(f(rows[c][key], d) for c in cols) + " |"
print(f"\n## SD1.5 {size}x{size}, Euler {steps} steps, CFG {cfg}, {threads} threads, 1 image, random weights ({wdtype}: {weights})\n")
print("| seconds | " + " | ".join(cols) + " |")
print("|---|" + "---|" * len(cols))
print("| UNet calls | " + " | ".join(rows[c]["calls"] for c in cols) + " |")
print(line("per step, full UNet (both CFG halves)", "step"))
print(line("per step, DeepCache partial", "step_partial"))
print(line("per step, mean over the run", "step_mean"))
print(line("sampling (all steps)", "sampling", 1))
print(line("text encoder", "text"))
print(line("VAE decode", "decode"))
print(line("text + decode + other (derived)", "other"))
print(line("end-to-end per image (no weight loading)", "e2e", 1))
print(line("process wall (incl. weight loading)", "wall", 1))
ref = rows.get("stable-diffusion.cpp")
if ref and ref["step"] and ref["e2e"]:
    print("| speed vs sd.cpp: per full step / end-to-end | " + " | ".join(
        f"{ref['step'] / rows[c]['step']:.2f}x / {ref['e2e'] / rows[c]['e2e']:.2f}x" if rows[c]["step"] and rows[c]["e2e"] else "-"
        for c in cols) + " |")
print()
for n in notes:
    print(f"- {n}")
EOF
say "table: $OUT/compare-$STAMP.md"
