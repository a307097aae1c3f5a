#!/usr/bin/env bash
# Set-up for a fresh Debian 12 machine: installs every Debian package deepcache-bench needs (only
# those missing, so it is idempotent), then configures and builds (Release) into build/.
# Debian 13 works the same way (LibTorch 2.6; scripts/check_libtorch2.sh runs it in a Debian 13 root).
#   BUILD_DIR   build folder (default build)
#   JOBS        parallel compile jobs (default: number of cores)
#   --packages-only       install the packages, build nothing
#   --build-packages-only install only what the build needs (no datasets, Slurm, browser, Python)
#   SETUP_TORCH  the LibTorch packages (default libtorch-dev; Debian 13's CUDA build:
#                "libtorch-cuda-dev nvidia-cuda-toolkit", contrib and non-free)
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=all
case "${1:-}" in
  "") ;;
  --packages-only) MODE=packages ;;
  --build-packages-only) MODE=build-packages ;;
  *) echo "setup.sh: unknown option '$1' (expected --packages-only or --build-packages-only)" >&2; exit 2 ;;
esac
# Debian 12 (bookworm): LibTorch 1.13, clang-14; Debian 13 (trixie): LibTorch 2.6, clang 19.
DEBIAN=$( (. /etc/os-release 2>/dev/null && echo "${VERSION_ID:-12}") || echo 12)
if [ "$DEBIAN" = 12 ]; then FUZZ_PKGS=(clang-14 libclang-rt-14-dev); else FUZZ_PKGS=(clang libclang-rt-dev); fi
read -r -a TORCH_PKGS <<< "${SETUP_TORCH:-libtorch-dev}"

PKGS=(
  build-essential cmake ninja-build git ca-certificates
  "${TORCH_PKGS[@]}"  # LibTorch: 1.13 (CPU) on Debian 12, 2.6 on Debian 13
  libopenblas-dev     # without it Debian's torch uses reference BLAS, ~25x slower
  libdnnl-dev         # oneDNN's headers: Winograd 3x3 convolutions on AVX-512 CPUs (models/cpu_conv.h)
  libeigen3-dev libhdf5-dev hdf5-tools libyaml-cpp-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libpng-dev libzip-dev libutf8proc-dev libstb-dev
  libjemalloc-dev     # the process's malloc: glibc's page-faulted every activation in again (common/malloc_config.cpp)
)
[ "$MODE" = build-packages ] || PKGS+=(
  "${FUZZ_PKGS[@]}"  # scripts/fuzz.sh: libFuzzer targets of the parsers (docs/reliability.md)
  dataset-fashion-mnist  # the real dataset the out-of-the-box model is trained on
  python3-torch          # scripts/convert_ckpt_to_safetensors.py (and its test)
  python3-h5py python3-matplotlib  # scripts/plot_similarity.py
  slurmctld slurmd slurm-client munge  # `plan --slurm`; the tests start a one-node Slurm on localhost
  chromium            # the test that renders `report --html` in a real browser (headless)
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all Debian packages present"
fi
[ "$MODE" = all ] || exit 0

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
# A first configure makes a unity build (CMake UNITY_BUILD: 8 sources per unit share one parse of
# the LibTorch headers, about half the compile time of a fresh build). An existing build folder
# keeps its setting; `cmake -B build -DCMAKE_UNITY_BUILD=OFF` suits many small edits.
UNITY=()
[ -f "$BUILD_DIR/CMakeCache.txt" ] || UNITY=(-DCMAKE_UNITY_BUILD=ON)
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "${UNITY[@]}" >/dev/null
echo "setup: building in $BUILD_DIR with $JOBS jobs (a first build takes a few minutes)"
cmake --build "$BUILD_DIR" --parallel "$JOBS"
echo "setup: done; the CLI is $BUILD_DIR/deepcache-bench"
