// FID statistics and the Fréchet distance, in double (pytorch-fid src/pytorch_fid/fid_score.py:
// calculate_activation_statistics, calculate_frechet_distance).
//
// Statistics are kept mergeable and exact: count, the sum of the features and the sum of their
// outer products, each batch's sums computed in double and then added as fixed-point integers
// (metrics/exact_sum.h), so statistics made in any grouping of the same batches (shards, resumed
// runs) merge into the same bits. Mean and covariance (denominator N-1, as np.cov) are derived on
// demand.
//
// tr sqrt(s1 s2) is computed in the numerically robust symmetric form
//   tr sqrt(s1 s2) = tr sqrt(A s2 A),  A = s1^(1/2)
// with self-adjoint eigendecompositions (negative round-off eigenvalues clipped to 0). pytorch-fid
// uses scipy's Schur sqrtm instead: the two agree to ~1e-10 on full-rank covariances and to ~1e-6
// relative on rank-deficient ones. The reference retries with s + eps I when its sqrtm is not
// finite; the symmetric form is always finite, so that fallback is only taken on request
// (FrechetOptions::force_eps_offset) or when the inputs themselves are not finite. Its
// complex-part check maps to: the most negative eigenvalue of A s2 A must satisfy
// sqrt(-lambda_min) <= 1e-3 (an imaginary diagonal beyond 1e-3 is an error there too), unless it is
// within the eigensolver's round-off, 8 D eps lambda_max (then it is clipped to 0): an absolute
// 1e-3 alone fails rank-deficient covariances of large features (few samples of saturated images).
#pragma once
#include <Eigen/Dense>
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "metrics/exact_sum.h"

namespace dc::metrics {

class FeatureStats {
 public:
  FeatureStats() = default;
  explicit FeatureStats(int64_t dims);
  // feats: [N, D] (any float dtype; the batch's sums in double, then added exactly).
  void add(const torch::Tensor& feats);
  void merge(const FeatureStats& other);  // throws dc::Error when dims differ
  int64_t count() const { return count_; }
  int64_t dims() const { return static_cast<int64_t>(sum_.size()); }
  Eigen::VectorXd mean() const;
  Eigen::MatrixXd covariance() const;  // denominator N-1; needs N >= 2

  // The exact state: sum [D] and the lower triangle of sum x x^T, row by row [D (D + 1) / 2].
  const ExactSum& exact_sum() const { return sum_; }
  const ExactSum& exact_outer() const { return outer_; }
  // Throws dc::Error (naming `what`) when the sizes do not describe one dimension D.
  static FeatureStats from_state(int64_t count, ExactSum sum, ExactSum outer_lower, const std::string& what);

 private:
  int64_t count_ = 0;
  ExactSum sum_;
  ExactSum outer_;
};

struct FrechetOptions {
  double eps = 1e-6;
  bool force_eps_offset = false;  // use (s1 + eps I), (s2 + eps I) as the reference's fallback does
};

struct FrechetResult {
  double fid = 0.0;
  double mean_term = 0.0;      // |mu1 - mu2|^2
  double trace_sigma1 = 0.0;
  double trace_sigma2 = 0.0;
  double trace_covmean = 0.0;  // tr sqrt(s1 s2)
  bool eps_offset_used = false;
};

// Throws dc::Error for mismatched shapes, non-finite input, or an imaginary part beyond 1e-3 and
// beyond round-off.
FrechetResult frechet_distance(const Eigen::VectorXd& mu1, const Eigen::MatrixXd& sigma1, const Eigen::VectorXd& mu2,
                               const Eigen::MatrixXd& sigma2, const FrechetOptions& options = {});

// A 95% bootstrap interval of the Frechet distance `estimate` of samples' features [n, D] to a
// reference (mu, sigma): `resamples` draws of n samples with replacement (std::mt19937_64 seeded
// `seed`, so an interval is reproducible from the same features), each one's distance; the
// interval is estimate -/+ 1.96 standard deviations of those distances (low clipped at 0). Not the
// percentiles: a resample repeats samples, which lowers the covariance's rank and raises the
// distance, so at small n the resampled distances lie above the estimate and their percentile
// interval need not contain it. What it measures: how much the value moves with the samples drawn,
// at this n (not the bias of small n).
struct FrechetInterval {
  double low = 0.0, high = 0.0, sd = 0.0;
  int resamples = 0;
};
FrechetInterval frechet_bootstrap(const torch::Tensor& features, double estimate, const Eigen::VectorXd& mu_ref,
                                  const Eigen::MatrixXd& sigma_ref, int resamples, uint64_t seed = 0);

// A paired bootstrap of a Frechet metric's difference between runs of the same seeds: run a's value
// minus the weighted sum of the reference runs' values (weights summing to 1: one plain run, or two
// interpolated at a's MACs). Every resample draws the same sample indices for every run (sample i of
// each came from the same noise), so the variation the runs share cancels. `estimate`: the
// difference on all samples; the interval is estimate -/+ 1.96 sd of the resampled differences (not
// clipped: a difference may be negative). Features [n, D] in the same sample order for every run.
FrechetInterval frechet_paired_bootstrap(const torch::Tensor& a, const std::vector<std::pair<torch::Tensor, double>>& reference,
                                         double estimate, const Eigen::VectorXd& mu_ref, const Eigen::MatrixXd& sigma_ref,
                                         int resamples, uint64_t seed = 0);

Eigen::MatrixXd to_eigen_matrix(const torch::Tensor& t);  // [R, C] -> double
Eigen::VectorXd to_eigen_vector(const torch::Tensor& t);

// pytorch-fid statistics (`mu`, `sigma` float64) of an Eigen mean and covariance, as an .npz.
void write_fid_stats(const std::string& path, const Eigen::VectorXd& mu, const Eigen::MatrixXd& sigma);

}  // namespace dc::metrics
