#!/usr/bin/env bash
# One-call GPU check for a machine with PyTorch 2.x (CUDA) for python3 and no apt: builds against
# PyTorch's LibTorch, runs the tests and the benchmarks, and prints the card.
#
# Prepare here (Debian, has apt):
#   mkdir -p .devdeps && cp ../shared/tools/bundle-debs.sh .devdeps/ && \
#     bash .devdeps/bundle-debs.sh download .devdeps/debs
#   (.devdeps/ is git-ignored; pass it to the device tool with carry: [".devdeps"])
# There:
#   bash scripts/gpu_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu-out}}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt" || true
TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda, "cxx11 abi", torch._C._GLIBCXX_USE_CXX11_ABI)' | tee -a "$OUT/gpu.txt"
if [ -d .devdeps/debs ]; then
  eval "$(bash .devdeps/bundle-debs.sh unpack .devdeps/debs /tmp/dc-deps)"
else
  DEPS_PREFIX=/usr; DEPS_CMAKE_ARGS=""
fi
GEN=""; command -v ninja >/dev/null && GEN="-G Ninja"
# shellcheck disable=SC2086
cmake -S . -B build-gpu $GEN -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$DEPS_PREFIX" $DEPS_CMAKE_ARGS 2>&1 | tee "$OUT/configure.log" | tail -5
cmake --build build-gpu --parallel "$(nproc)" 2>&1 | tee "$OUT/build.log" | tail -20
ctest --test-dir build-gpu --output-on-failure --parallel 8 2>&1 | tee "$OUT/ctest.log" | tail -20
./build-gpu/dc_bench --benchmark_format=console 2>&1 | tee "$OUT/bench.txt"
