#!/usr/bin/env bash
# For machines WITH internet access (the development machines have none): downloads the released
# DDPM checkpoints used by the DeepCache DDPM experiments and converts them to safetensors under
# $DEEPCACHE_WEIGHTS (default ./weights). Needs curl and PyTorch for Python.
#   bash scripts/fetch_weights.sh [cifar10|lsun_bedroom|lsun_church ...]
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${DEEPCACHE_WEIGHTS:-$PWD/weights}
mkdir -p "$DEST"
# The EMA checkpoints of the ddim repo (ermongroup/ddim functions/ckpt_util.py URL_MAP / MD5_MAP,
# keys ema_cifar10, ema_lsun_bedroom, ema_lsun_church), as the DeepCache DDPM runner loads them.
declare -A URL=(
  [cifar10]="https://heibox.uni-heidelberg.de/f/2e4f01e2d9ee49bab1d5/?dl=1"
  [lsun_bedroom]="https://heibox.uni-heidelberg.de/f/b95206528f384185889b/?dl=1"
  [lsun_church]="https://heibox.uni-heidelberg.de/f/44ccb50ef3c6436db52e/?dl=1"
)
declare -A MD5=(
  [cifar10]="1fa350b952534ae442b1d5235cce5cd3"
  [lsun_bedroom]="1921fa46b66a3665e450e42f36c2720f"
  [lsun_church]="fdc68a23938c2397caba4a260bc2445f"
)
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(cifar10)
for m in "${models[@]}"; do
  url=${URL[$m]:-}
  [ -n "$url" ] || { echo "unknown model '$m' (known: ${!URL[*]})" >&2; exit 2; }
  ckpt="$DEST/ddpm_ema_$m.ckpt"
  [ -f "$ckpt" ] || curl -L --fail -o "$ckpt" "$url"
  if [ -n "${MD5[$m]:-}" ]; then
    echo "${MD5[$m]}  $ckpt" | md5sum -c - || { echo "checksum mismatch for $ckpt" >&2; exit 1; }
  fi
  python3 scripts/convert_ckpt_to_safetensors.py "$ckpt" "$DEST/ddpm_ema_$m.safetensors"
done
echo "weights in $DEST; export DEEPCACHE_WEIGHTS=$DEST"
