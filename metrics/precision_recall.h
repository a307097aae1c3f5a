// Improved precision and recall (Kynkäänniemi et al. 2019) as the ADM evaluator computes them
// (guided-diffusion evaluations/evaluator.py, ManifoldEstimator with nhood_sizes (3,)): each set's
// manifold is the union of balls around its points whose squared radius is the squared Euclidean
// distance to the point's k-th nearest neighbour in the set (k = 3: the point itself is the 0-th).
//   precision: the fraction of samples inside the reference manifold,
//   recall:    the fraction of reference points inside the sample manifold.
// A point is inside a ball when its squared distance is <= the squared radius. Distances here are
// computed in float32 (max(|u|^2 - 2 u.v + |v|^2, 0), as the evaluator; it tries float16 first),
// in blocks of rows, so 50,000 x 50,000 never needs a full matrix. Values are not bit-comparable
// with the TensorFlow evaluator (other Inception, other arithmetic); identical sets give 1 and 1,
// well-separated sets 0 and 0.
#pragma once
#include <torch/torch.h>

namespace dc::metrics {

// [N] squared distance of every row of `features` [N, D] to its k-th nearest row (itself at 0).
// Needs N > k (dc::Error otherwise).
// Computed on `device` (the run's: a GPU makes 50,000 x 50,000 distances a matter of seconds).
torch::Tensor manifold_radii(const torch::Tensor& features, int k = 3, int64_t block = 4096, const torch::Device& device = torch::kCPU);

struct PrecisionRecall {
  double precision = 0.0, recall = 0.0;
  int64_t reference = 0, samples = 0;
};

PrecisionRecall precision_recall(const torch::Tensor& reference, const torch::Tensor& samples, int k = 3, int64_t block = 4096,
                                 const torch::Device& device = torch::kCPU);

}  // namespace dc::metrics
