#include "metrics/fidelity.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace dc::metrics {
namespace {

// The reference code's normalised 2-D Gaussian window [1, 1, w, w].
torch::Tensor gaussian_window(int64_t w, double sigma) {
  const auto x = torch::arange(w, torch::kDouble) - static_cast<double>(w - 1) / 2;
  auto g = torch::exp(-(x * x) / (2 * sigma * sigma));
  g = g / g.sum();
  return torch::outer(g, g).reshape({1, 1, w, w});
}

}  // namespace

torch::Tensor fidelity_values(const torch::Tensor& images_u8, const torch::Tensor& reference_u8) {
  if (images_u8.sizes() != reference_u8.sizes() || images_u8.dim() != 4)
    throw Error(fmt::format("fidelity: images {} and their plain reference {} differ in shape", c10::str(images_u8.sizes()),
                            c10::str(reference_u8.sizes())));
  const int64_t B = images_u8.size(0), C = images_u8.size(1), H = images_u8.size(2), W = images_u8.size(3);
  const auto x = images_u8.to(torch::kCPU, torch::kDouble), y = reference_u8.to(torch::kCPU, torch::kDouble);
  const auto mse = (x - y).pow(2).reshape({B, -1}).mean(1);
  auto psnr = torch::where(mse > 0, 10.0 * torch::log10(255.0 * 255.0 / mse.clamp_min(1e-300)), torch::full_like(mse, kPsnrIdentical));
  int64_t w = std::min<int64_t>({11, H, W});
  if (w % 2 == 0) --w;
  const auto win = gaussian_window(w, 1.5);
  const auto filt = [&](const torch::Tensor& t) { return torch::conv2d(t.reshape({B * C, 1, H, W}), win); };
  const auto mx = filt(x), my = filt(y);
  const auto sxx = filt(x * x) - mx * mx, syy = filt(y * y) - my * my, sxy = filt(x * y) - mx * my;
  const double c1 = std::pow(0.01 * 255, 2), c2 = std::pow(0.03 * 255, 2);
  const auto map = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2));
  const auto ssim = map.reshape({B, -1}).mean(1);
  return torch::stack({psnr, ssim}, 1).contiguous();
}

FidelitySummary summarize_fidelity(const SampleFeatures& values) {
  FidelitySummary s;
  s.n = values.count();
  if (s.n == 0) return s;
  const auto v = values.features().to(torch::kDouble);  // in sample order: the same sums for any shard layout
  const auto mean_sd = [&](int col, double& mean, double& sd) {
    const auto c = v.select(1, col).contiguous();
    const double* p = c.data_ptr<double>();
    double sum = 0;
    for (int64_t i = 0; i < s.n; ++i) sum += p[i];
    mean = sum / static_cast<double>(s.n);
    double ss = 0;
    for (int64_t i = 0; i < s.n; ++i) ss += (p[i] - mean) * (p[i] - mean);
    sd = s.n > 1 ? std::sqrt(ss / static_cast<double>(s.n - 1)) : 0.0;
  };
  mean_sd(0, s.psnr, s.psnr_sd);
  mean_sd(1, s.ssim, s.ssim_sd);
  const auto psnr = v.select(1, 0);
  s.identical = (psnr >= kPsnrIdentical).sum().item<int64_t>();
  return s;
}

}  // namespace dc::metrics
