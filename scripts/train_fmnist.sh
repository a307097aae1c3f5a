#!/usr/bin/env bash
# Regenerates everything the Fashion-MNIST quick start uses (docs/fmnist.md), in weights/fmnist/:
#   classifier.safetensors   the FID-FMNIST feature network (+ classifier.train.h5: loss curve, test accuracy)
#   test_stats.npz           FID-FMNIST reference statistics of the 10,000 test images
#   ddpm_ema.safetensors     the DDPM's EMA weights (+ ddpm_ema.train.h5: loss curve, settings)
# and prints the FID-FMNIST floor (1,000 real training images against the test statistics).
# Seeded: a rerun gives the same files on the same machine and LibTorch build. Interrupted
# training resumes from runs/train/<name>/checkpoint.safetensors; --fresh starts over.
# Time on 2 CPU cores: classifier ~3 minutes, DDPM (8,000 steps) ~1 h 25 min (docs/fmnist.md).
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/deepcache-bench
FRESH=${1:-}
[ -x "$B" ] || { echo "build first: bash scripts/setup.sh" >&2; exit 2; }
$B train configs/train/fmnist_classifier.yaml $FRESH
$B fmnist-stats --classifier weights/fmnist/classifier.safetensors --split test --out weights/fmnist/test_stats.npz
$B fmnist-stats --classifier weights/fmnist/classifier.safetensors --split train --n 1000 --against weights/fmnist/test_stats.npz
$B train configs/train/fmnist_ddpm.yaml $FRESH
