// What the adaptive policies measure per call (torch side): relative L1 changes and mean magnitudes
// over the whole batch, each one host sync. NaN when undefined (a zero reference, shapes that
// differ): every rule computes the call then.
#pragma once
#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace dc::harness::policies {

// ‖a − b‖₁ / ‖b‖₁ (the relative L1 change of TeaCache, First-Block Cache, DBCache, Block Caching).
inline double relative_l1(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined() || !b.defined() || a.sizes() != b.sizes()) return std::numeric_limits<double>::quiet_NaN();
  const auto both = torch::stack({(a - b).abs().sum().to(torch::kDouble), b.abs().sum().to(torch::kDouble)}).cpu();
  const double num = both[0].item<double>(), den = both[1].item<double>();
  return den > 0 ? num / den : std::numeric_limits<double>::quiet_NaN();
}

// mean |a| (EasyCache's output magnitude and input change).
inline double mean_abs(const torch::Tensor& a) { return a.abs().mean().to(torch::kDouble).item<double>(); }

// MagCache's magnitude: the per-position L2 norm over channels (dim 1), averaged over positions and
// the batch.
inline torch::Tensor channel_norms(const torch::Tensor& r) { return r.to(torch::kFloat).norm(2, {1}); }

}  // namespace dc::harness::policies
