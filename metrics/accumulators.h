// Quality metrics as accumulators fed batch by batch while sampling (DESIGN.md §6): the images
// need not be kept. Every state is exact (metrics/exact_sum.h: fixed-point sums, counts) and
// converts to and from named tensors for storage, so the states of shards merge into the state
// one process would have made, bit for bit, and a merged run computes its values from them.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "metrics/clip_score.h"
#include "metrics/exact_sum.h"
#include "metrics/fid.h"
#include "metrics/fid_fmnist.h"
#include "metrics/inception_score.h"

namespace dc::metrics {

// A metric's state as named tensors (stored under state/<metric>/ in the results): int64 words and
// counts, except the per-sample features of precision/recall (float16).
using MetricState = std::map<std::string, torch::Tensor>;

// FID statistics: {count [1], sum [D, 2], outer [D (D + 1) / 2, 2]} (exact words, lower triangle).
MetricState to_state(const FeatureStats& s);
FeatureStats feature_stats_from_state(const MetricState& s, const std::string& what);

// FID-FMNIST: the statistics plus {n, confident, classes [10]}.
MetricState to_state(const FmnistEval& e);
FmnistEval fmnist_eval_from_state(const MetricState& s, const std::string& what);
void merge_into(FmnistEval& into, const FmnistEval& other);

// Inception Score over a run of `total` samples in `splits` splits fixed by the global sample
// index ([s N / splits, (s + 1) N / splits), as the references cut the whole array), so shards and
// batches do not change them. Per split: the count, the sum over samples of sum_y p log p, and the
// sum over samples of p(y|x) (softmax of the logits in double); the split's score is
// exp((sum p log p - sum_y P_y log(P_y / n)) / n), the reference's mean KL(p(y|x) || p(y)).
class InceptionScoreAccumulator {
 public:
  InceptionScoreAccumulator(int splits, int64_t total, int64_t classes);
  // logits [B, C] of samples [first, first + B).
  void add(const torch::Tensor& logits, int64_t first);
  void merge(const InceptionScoreAccumulator& o);  // dc::Error when splits, total or classes differ
  MetricState state() const;
  static InceptionScoreAccumulator from_state(const MetricState& s, const std::string& what);
  // Needs every split to hold samples (dc::Error otherwise: a partial run has no score).
  InceptionScore result() const;

 private:
  int splits_;
  int64_t total_, classes_;
  std::vector<int64_t> count_;
  ExactSum plogp_;  // [splits]
  ExactSum p_;      // [splits * classes]
};

// CLIP score (metrics/clip_score.h): the per-pair scores max(100 cos(image, text), 0) summed
// exactly, with their count; state {count [1], sum [1, 2]}. The value is sum / count.
class ClipScoreAccumulator {
 public:
  // image_features, text_features [B, D] of the batch's (image, prompt) pairs.
  void add(const torch::Tensor& image_features, const torch::Tensor& text_features);
  void add_scores(const torch::Tensor& per_pair);  // [B] scores already computed
  void merge(const ClipScoreAccumulator& o);
  int64_t count() const { return count_; }
  double mean() const;  // dc::Error when empty
  MetricState state() const;
  static ClipScoreAccumulator from_state(const MetricState& s, const std::string& what);

 private:
  int64_t count_ = 0;
  ExactSum sum_{1};
};

// Per-sample features with each sample's global index, so that shards concatenate in sample order.
// Precision and recall (metrics/precision_recall.h) need the k-nearest-neighbour manifold of the
// whole sample set: float16 (the ADM evaluator's first try; a 2048-d pool feature is 4 KiB). The
// bootstrap interval of a sharded run's Frechet metric (`<metric>_features`) resamples them:
// float32, the features the metric's statistics were summed from. The fidelity metric's per-image
// (PSNR, SSIM): float64. State {features [n, D] float16, float32 or float64, index [n] int64}.
class SampleFeatures {
 public:
  explicit SampleFeatures(int64_t dims = 2048, torch::ScalarType dtype = torch::kFloat16) : dims_(dims), dtype_(dtype) {}
  // features [B, D] of samples [first, first + B).
  void add(const torch::Tensor& features, int64_t first);
  // dc::Error naming `what` when dims differ or a sample index is held twice (overlapping slices).
  void merge(const SampleFeatures& o, const std::string& what);
  int64_t count() const;
  // [n, D] float32 (float64 when stored so) in global sample order, and those sample indices.
  torch::Tensor features() const;
  torch::Tensor indices() const;
  MetricState state() const;
  static SampleFeatures from_state(const MetricState& s, const std::string& what);

 private:
  void settle() const;  // concatenates the parts in sample order
  int64_t dims_;
  torch::ScalarType dtype_;
  mutable std::vector<torch::Tensor> features_, index_;  // parts; one after settle()
  mutable bool sorted_ = true;                            // false: one part, not known to be in order
};

// The state name of a metric's per-sample features ("fid" -> "fid_features"), and whether a state
// name is one.
std::string features_state(const std::string& metric);
bool is_features_state(const std::string& name);

// Adds two states of metric `name` (fid, sfid, inception_score, fid_fmnist, clip_score, precision_recall, and the per-sample
// features <metric>_features) exactly; dc::Error (naming `what`) for an unknown metric or states that do not fit together.
MetricState merge_states(const std::string& name, const MetricState& a, const MetricState& b, const std::string& what);

}  // namespace dc::metrics
