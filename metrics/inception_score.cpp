#include "metrics/inception_score.h"

#include <cmath>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::metrics {

InceptionScore inception_score(const torch::Tensor& logits, int splits) {
  TORCH_CHECK(logits.dim() == 2, "inception_score: need [N, C] logits, got ", logits.sizes());
  const int64_t n = logits.size(0);
  if (splits < 1) throw Error(fmt::format("Inception Score: splits must be at least 1, got {}", splits));
  if (n < splits) throw Error(fmt::format("Inception Score: {} samples cannot make {} splits", n, splits));
  const torch::Tensor p = torch::softmax(logits.to(torch::kFloat64), 1);      // [N, C]
  const torch::Tensor logp = torch::log_softmax(logits.to(torch::kFloat64), 1);
  std::vector<double> scores;
  for (int i = 0; i < splits; ++i) {
    const int64_t a = i * n / splits, b = (i + 1) * n / splits;
    const torch::Tensor part = p.slice(0, a, b), lpart = logp.slice(0, a, b);
    const torch::Tensor py = part.mean(0, true);                               // [1, C]
    // 0 log 0 = 0: a class whose probability underflows to 0 in every sample of the split adds
    // nothing (NumPy's reference gives NaN there: 0 * inf).
    const torch::Tensor terms = part * (lpart - torch::log(py));
    const torch::Tensor kl = torch::where(part > 0, terms, torch::zeros_like(terms)).sum(1);  // [n_i]
    scores.push_back(std::exp(kl.mean().item<double>()));
  }
  return summarize_splits(scores, n);
}

InceptionScore summarize_splits(const std::vector<double>& scores, int64_t samples) {
  InceptionScore r;
  r.splits = static_cast<int>(scores.size());
  r.samples = samples;
  for (double s : scores) r.mean += s / r.splits;
  for (double s : scores) r.std += (s - r.mean) * (s - r.mean) / r.splits;
  r.std = std::sqrt(r.std);
  return r;
}

}  // namespace dc::metrics
