// Inception Score from the FID Inception's logits (1008 classes, softmax over all of them as the
// references do): per split, exp(mean_x KL(p(y|x) || p(y))) with p(y) the split's mean; the mean
// and the (population) standard deviation over the splits. Splits are contiguous:
// [i*N/splits, (i+1)*N/splits) (openai/improved-gan inception_score.py). 0 log 0 counts as 0 (the
// reference's NumPy gives NaN when a class's probability underflows to 0 throughout a split).
#pragma once
#include <vector>
#include <torch/torch.h>

namespace dc::metrics {

struct InceptionScore {
  double mean = 0.0;
  double std = 0.0;
  int splits = 0;
  int64_t samples = 0;
};

// The mean and population standard deviation of per-split scores (of `samples` samples in all).
InceptionScore summarize_splits(const std::vector<double>& split_scores, int64_t samples);

// logits: [N, C]. Throws dc::Error when N < splits or splits < 1.
InceptionScore inception_score(const torch::Tensor& logits, int splits = 10);

}  // namespace dc::metrics
