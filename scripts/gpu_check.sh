#!/usr/bin/env bash
# One-call GPU check for a machine with PyTorch 2.x (CUDA) for python3 and no apt: builds against
# PyTorch's LibTorch (stopping at once if that fails), runs the CUDA tests, then the benchmarks in
# priority order (UNet full/partial ratios and end-to-end speedups of the three families at the
# paper's settings, fp32 then fp16, each eager and with CUDA graphs; the quick start's FID-FMNIST
# fp32/fp16), writes OUT/table.md (scripts/gpu_table.py) after every step, and last runs every test.
#
# Prepare here (Debian, has apt):
#   mkdir -p .devdeps && cp ../shared/tools/bundle-debs.sh .devdeps/ && \
#     bash .devdeps/bundle-debs.sh download .devdeps/debs && \
#     bash .devdeps/bundle-debs.sh download .devdeps/debs zlib1g-dev zlib1g libbz2-1.0 libcurl4 libssl3 \
#       libbrotli1 libldap-2.5-0 libnghttp2-14 libpsl5 librtmp1 libsasl2-2 libsasl2-modules-db libssh2-1 \
#       libgnutls30 libnettle8 libhogweed6 libgmp10 libidn2-0 libunistring2 libtasn1-6 libp11-kit0 libffi8 \
#       libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2 libzstd1 \
#       libjemalloc-dev libjemalloc2
#   (the second list: what libhdf5 (libcurl, libcrypto) and libzip (libbz2) link to, for a node that lacks them,
#   and jemalloc, the executables' malloc: common/malloc_config.cpp)
#   (.devdeps/ is git-ignored; pass it to the device tool with carry: [".devdeps"])
# There:
#   bash scripts/gpu_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu-out}}
mkdir -p "$OUT"
for t in cmake ninja g++ dpkg ar; do echo "$t: $(command -v $t || echo missing)"; done | tee "$OUT/tools.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt" || true
TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda, "cxx11 abi", torch._C._GLIBCXX_USE_CXX11_ABI)' | tee -a "$OUT/gpu.txt"
if [ -d .devdeps/debs ]; then
  if ! command -v dpkg >/dev/null; then
    # No dpkg on the node: a stand-in for `dpkg -x DEB DIR` (a .deb is an ar archive holding data.tar.*).
    mkdir -p /tmp/dc-shim
    cat > /tmp/dc-shim/dpkg <<'PY'
#!/usr/bin/env python3
import io, sys, tarfile
assert sys.argv[1] == "-x", sys.argv
data = open(sys.argv[2], "rb").read()
assert data[:8] == b"!<arch>\n"
pos = 8
while pos < len(data):
    name = data[pos:pos + 16].decode().strip().rstrip("/")
    size = int(data[pos + 48:pos + 58].decode().strip())
    body = data[pos + 60:pos + 60 + size]
    if name.startswith("data.tar"):
        tarfile.open(fileobj=io.BytesIO(body)).extractall(sys.argv[3])
    pos += 60 + size + (size & 1)
PY
    chmod +x /tmp/dc-shim/dpkg; export PATH=/tmp/dc-shim:$PATH
  fi
  eval "$(bash .devdeps/bundle-debs.sh unpack .devdeps/debs /tmp/dc-deps)"
else
  DEPS_PREFIX=/usr; DEPS_CMAKE_ARGS=""
fi
GEN=""; command -v ninja >/dev/null && GEN="-G Ninja"
step() { echo "== $(date +%T) $*" | tee -a "$OUT/steps.txt"; }
# 1. Compile only, and stop at the first failure: a broken 2.x build costs a minute, not the session.
step "configure and build"
# shellcheck disable=SC2086
cmake -S . -B build-gpu $GEN -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$DEPS_PREFIX" $DEPS_CMAKE_ARGS > "$OUT/configure.log" 2>&1 \
  || { tail -30 "$OUT/configure.log"; echo "configure failed"; exit 1; }
cmake --build build-gpu --parallel "$(nproc)" > "$OUT/build.log" 2>&1 || { grep -m 20 -B2 -A8 "error" "$OUT/build.log"; echo "build failed"; exit 1; }
BIN=./build-gpu
# 2. What only the GPU shows, first: the Cuda.* suite (fixtures on the GPU with TF32 off, DeepCache
# sampling, fp16 within its tolerance, CUDA-event timing).
step "Cuda.* tests"
timeout 300 $BIN/dc_tests --gtest_filter='Cuda.*' > "$OUT/cuda_tests.log" 2>&1 || true
tail -12 "$OUT/cuda_tests.log"
# 3. Benchmarks in priority order, each a short run after its warm-up (one batch per setting); the
#    table is rewritten after every step, so a run cut short still leaves what it measured. A
#    label is the dtype, with "-graphs" when the UNet's calls replay CUDA graphs (model.cuda_graphs).
table() { python3 scripts/gpu_table.py "$OUT" > "$OUT/table.md" 2>/dev/null || true; }
unet() {  # dtype graphs(0|1): full/partial time ratio next to the MAC ratio, batch 1 and the paper's batch
  local dt=$1 g=$2 label=$1; [ "$g" = 1 ] && label=$1-graphs
  step "UNet full/partial, $label"
  DEEPCACHE_BENCH_DEVICE=cuda DEEPCACHE_BENCH_DTYPE=$dt DEEPCACHE_BENCH_GRAPHS=$g DEEPCACHE_BENCH_BATCHES=paper timeout 420 $BIN/dc_bench \
    --benchmark_filter='BM_UNetFullOverPartial/(ddpm/cifar10/.*/k2|ldm/cin256_v2/.*/k0|sd/sd15/.*/k1)$' --benchmark_min_time=0.3 \
    --benchmark_out="$OUT/bench_unet_$label.json" --benchmark_out_format=json > "$OUT/bench_unet_$label.txt" 2>&1 || true
  tail -8 "$OUT/bench_unet_$label.txt"; table
}
e2e() {  # name label args...: one `sample` at full size with random weights
  local name=$1 label=$2; shift 2
  timeout 300 $BIN/deepcache-bench sample "$@" --device cuda --weights random --out "$OUT/$name.$label.png" \
    > "$OUT/e2e_$name.$label.log" 2>&1 || echo "e2e $name $label failed (exit $?)" >> "$OUT/e2e_$name.$label.log"
  grep -E "^time|^deepcache|failed" "$OUT/e2e_$name.$label.log" || true
}
export DEEPCACHE_CLIP_TOKENIZER=${DEEPCACHE_CLIP_TOKENIZER:-$PWD/tests/fixtures/clip/tokenizer}
ends() {  # dtype graphs(0|1): end to end at the paper's settings, plain and uniform N = 5
  local dt=$1 g=$2 label=$1 flags=(--dtype "$1"); [ "$g" = 1 ] && { label=$1-graphs; flags+=(--cuda-graphs); }
  step "end to end, $label"
  e2e ddpm_plain_b1 "$label" "${flags[@]}" --model ddpm --preset cifar10 --sampler ddim --steps 100 --spacing quad --n 1 --batch 1
  e2e ddpm_n5_b1 "$label" "${flags[@]}" --model ddpm --preset cifar10 --sampler ddim --steps 100 --spacing quad --n 1 --batch 1 --cache-k 2 --interval 5
  e2e ddpm_plain "$label" "${flags[@]}" --model ddpm --preset cifar10 --sampler ddim --steps 100 --spacing quad --n 200 --batch 200
  e2e ddpm_n5 "$label" "${flags[@]}" --model ddpm --preset cifar10 --sampler ddim --steps 100 --spacing quad --n 200 --batch 200 --cache-k 2 --interval 5
  e2e ldm_plain "$label" "${flags[@]}" --model ldm --preset cin256_v2 --sampler ldm_ddim --steps 250 --n 16 --batch 16
  e2e ldm_n5 "$label" "${flags[@]}" --model ldm --preset cin256_v2 --sampler ldm_ddim --steps 250 --n 16 --batch 16 --cache-k 0 --interval 5
  e2e sd_plain "$label" "${flags[@]}" --model sd --preset sd15 --sampler pndm --steps 50 --n 4 --batch 4 --prompt "a photograph of an astronaut riding a horse"
  e2e sd_n5 "$label" "${flags[@]}" --model sd --preset sd15 --sampler pndm --steps 50 --n 4 --batch 4 --prompt "a photograph of an astronaut riding a horse" --cache-k 1 --interval 5
  table
}
#    a. fp32, eager then graphs; b. the same in fp16.
for dt in fp32 fp16; do
  unet "$dt" 0; unet "$dt" 1
  ends "$dt" 0; ends "$dt" 1
done
#    c. the quick start's FID-FMNIST (a real model) in fp32 and fp16.
for dt in fp32 fp16; do
  step "quick start, $dt"
  timeout 300 $BIN/deepcache-bench run experiments/quickstart.yaml --device cuda --set "model.dtype=$dt" \
    --results "$OUT/quickstart_$dt.h5" > "$OUT/quickstart_$dt.log" 2>&1 || true
  $BIN/deepcache-bench report "$OUT/quickstart_$dt.h5" > "$OUT/quickstart_$dt.md" 2>/dev/null || true
done
# 4. One table of everything above.
step "table"
table; cat "$OUT/table.md"
# 5. Every test of the 2.x build. Two threads per test process: 8 processes x all cores each
# oversubscribed the node ~8x.
step "ctest"
OMP_NUM_THREADS=2 timeout 900 ctest --test-dir build-gpu --output-on-failure --parallel 8 > "$OUT/ctest.log" 2>&1 || true
tail -25 "$OUT/ctest.log"
