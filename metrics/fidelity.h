// Fidelity of a cached run to the uncached ("plain") run of the same seeds, per image: PSNR and
// SSIM of the uint8 images (what the caching-policy papers report next to FID). PSNR = 10 log10(255²
// / MSE) over every pixel and channel (identical images: 100 dB, so that a mean stays finite; the
// count of identical images is its own value). SSIM (Wang, Bovik, Sheikh, Simoncelli 2004): the
// reference code's Gaussian window (11 x 11, σ = 1.5, 'valid': no padding; smaller images take the
// largest odd window that fits), K1 = 0.01, K2 = 0.03, L = 255, per channel, averaged over the map
// and the channels. The per-image values are kept with their sample indices (SampleFeatures), so a
// sharded run merges exactly and runs of the same seeds can be compared sample by sample.
#pragma once
#include <torch/torch.h>

#include "metrics/accumulators.h"

namespace dc::metrics {

constexpr double kPsnrIdentical = 100.0;

// [B, 2] float64: per image (PSNR dB, SSIM) of images against reference, both uint8 [B, C, H, W].
torch::Tensor fidelity_values(const torch::Tensor& images_u8, const torch::Tensor& reference_u8);

struct FidelitySummary {
  int64_t n = 0, identical = 0;
  double psnr = 0, psnr_sd = 0, ssim = 0, ssim_sd = 0;  // means and sample standard deviations
};
// From the per-image values of a run (SampleFeatures of dims 2), summed in sample order.
FidelitySummary summarize_fidelity(const SampleFeatures& values);

}  // namespace dc::metrics
