#!/usr/bin/env bash
# One-call GPU check for a machine with PyTorch 2.x (CUDA) for python3 and no apt: builds against
# PyTorch's LibTorch, runs the tests and the benchmarks, and prints the card.
#
# Prepare here (Debian, has apt):
#   mkdir -p .devdeps && cp ../shared/tools/bundle-debs.sh .devdeps/ && \
#     bash .devdeps/bundle-debs.sh download .devdeps/debs && \
#     bash .devdeps/bundle-debs.sh download .devdeps/debs zlib1g-dev zlib1g libbz2-1.0 libcurl4 libssl3 \
#       libbrotli1 libldap-2.5-0 libnghttp2-14 libpsl5 librtmp1 libsasl2-2 libsasl2-modules-db libssh2-1 \
#       libgnutls30 libnettle8 libhogweed6 libgmp10 libidn2-0 libunistring2 libtasn1-6 libp11-kit0 libffi8 \
#       libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2 libzstd1
#   (the second list: what libhdf5 (libcurl, libcrypto) and libzip (libbz2) link to, for a node that lacks them)
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
# shellcheck disable=SC2086
cmake -S . -B build-gpu $GEN -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$DEPS_PREFIX" $DEPS_CMAKE_ARGS 2>&1 | tee "$OUT/configure.log" | tail -5
cmake --build build-gpu --parallel "$(nproc)" 2>&1 | tee "$OUT/build.log" | tail -20
[ -x build-gpu/dc_tests ] || { echo "build failed"; exit 1; }
# What only the GPU shows first: the Cuda.* suite (DDPM fixtures and a DeepCache sampling run on
# the GPU), the GPU benchmarks, the quick start on the GPU; then every test of the 2.x build.
./build-gpu/dc_tests --gtest_filter='Cuda.*' 2>&1 | tee "$OUT/cuda_tests.log" | tail -8 || true
DEEPCACHE_BENCH_DEVICE=cuda ./build-gpu/dc_bench --benchmark_filter='FullOverPartial|Inception|Clip' --benchmark_min_time=0.5 \
  --benchmark_format=console 2>&1 | tee "$OUT/bench_cuda.txt" || true
./build-gpu/deepcache-bench run experiments/quickstart.yaml --device cuda --results "$OUT/quickstart_cuda.h5" 2>&1 | tail -8 || true
./build-gpu/deepcache-bench report "$OUT/quickstart_cuda.h5" 2>&1 | tee "$OUT/quickstart_cuda.md" || true
# Two threads per test process: 8 processes x all cores each oversubscribed the node ~8x.
OMP_NUM_THREADS=2 ctest --test-dir build-gpu --output-on-failure --parallel 8 2>&1 | tee "$OUT/ctest.log" | tail -25
