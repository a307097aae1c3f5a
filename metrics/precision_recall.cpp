#include "metrics/precision_recall.h"

#include <fmt/format.h>

#include "common/error.h"

namespace dc::metrics {

namespace {

// Squared Euclidean distances [|u|, |v|] in float32, clamped at 0.
torch::Tensor squared_distances(const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& nu, const torch::Tensor& nv) {
  return (nu.unsqueeze(1) - 2 * torch::matmul(u, v.t()) + nv.unsqueeze(0)).clamp_min(0);
}

torch::Tensor prepare(const torch::Tensor& f, const char* what, const torch::Device& device) {
  if (f.dim() != 2 || f.size(0) == 0) throw Error(fmt::format("precision/recall: {} features must be [N, D] with N > 0, are {}", what, c10::str(f.sizes())));
  const torch::Tensor x = f.detach().to(device, torch::kFloat32).contiguous();
  if (!torch::isfinite(x).all().item<bool>()) throw Error(fmt::format("precision/recall: {} features are not finite", what));
  return x;
}

// Radii of prepared features with their squared norms.
torch::Tensor radii_of(const torch::Tensor& x, const torch::Tensor& norms, int k, int64_t block) {
  const int64_t n = x.size(0);
  if (k < 1 || n <= k) throw Error(fmt::format("precision/recall: a k = {} nearest-neighbour manifold needs more than {} points, has {}", k, k, n));
  std::vector<torch::Tensor> radii;
  for (int64_t b = 0; b < n; b += block) {
    const int64_t e = std::min(n, b + block);
    const torch::Tensor d = squared_distances(x.slice(0, b, e), x, norms.slice(0, b, e), norms);
    radii.push_back(std::get<0>(d.kthvalue(k + 1, 1)));  // sorted index k (0-based): the k-th neighbour, self at 0
  }
  return torch::cat(radii);
}

}  // namespace

torch::Tensor manifold_radii(const torch::Tensor& features, int k, int64_t block, const torch::Device& device) {
  const torch::Tensor x = prepare(features, "the", device);
  torch::NoGradGuard ng;
  return radii_of(x, x.pow(2).sum(1), k, block).to(torch::kCPU);
}

PrecisionRecall precision_recall(const torch::Tensor& reference, const torch::Tensor& samples, int k, int64_t block, const torch::Device& device) {
  const torch::Tensor ref = prepare(reference, "reference", device), smp = prepare(samples, "sample", device);
  if (ref.size(1) != smp.size(1))
    throw Error(fmt::format("precision/recall: reference features have {} dimensions, samples {}", ref.size(1), smp.size(1)));
  torch::NoGradGuard ng;
  const torch::Tensor n_ref = ref.pow(2).sum(1), n_smp = smp.pow(2).sum(1);
  const torch::Tensor r_ref = radii_of(ref, n_ref, k, block), r_smp = radii_of(smp, n_smp, k, block);
  const auto opts = torch::TensorOptions().dtype(torch::kBool).device(device);
  torch::Tensor sample_in = torch::zeros({smp.size(0)}, opts);  // inside the reference manifold
  torch::Tensor ref_in = torch::zeros({ref.size(0)}, opts);     // inside the sample manifold
  for (int64_t b = 0; b < ref.size(0); b += block) {
    const int64_t e = std::min(ref.size(0), b + block);
    const torch::Tensor d = squared_distances(ref.slice(0, b, e), smp, n_ref.slice(0, b, e), n_smp);  // [refs, samples]
    sample_in |= (d <= r_ref.slice(0, b, e).unsqueeze(1)).any(0);
    ref_in.slice(0, b, e) |= (d <= r_smp.unsqueeze(0)).any(1);
  }
  PrecisionRecall out;
  out.precision = sample_in.to(torch::kFloat64).mean().item<double>();
  out.recall = ref_in.to(torch::kFloat64).mean().item<double>();
  out.reference = ref.size(0);
  out.samples = smp.size(0);
  return out;
}

}  // namespace dc::metrics
