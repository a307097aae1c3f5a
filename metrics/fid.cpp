#include "metrics/fid.h"

#include <cmath>

#include <fmt/format.h>

#include "common/error.h"
#include "metrics/npz.h"

namespace dc::metrics {

FeatureStats::FeatureStats(int64_t dims) : sum_(dims), outer_(dims * (dims + 1) / 2) {}

namespace {
std::size_t lower_index(int64_t i, int64_t j) { return static_cast<std::size_t>(i * (i + 1) / 2 + j); }  // j <= i
}  // namespace

void FeatureStats::add(const torch::Tensor& feats) {
  TORCH_CHECK(feats.dim() == 2, "FeatureStats::add: need [N, D], got ", feats.sizes());
  if (sum_.size() == 0 && count_ == 0) *this = FeatureStats(feats.size(1));
  if (feats.size(1) != dims())
    throw Error(fmt::format("FID statistics: features have {} dimensions, the statistics {}", feats.size(1), dims()));
  const int64_t d = dims();
  const Eigen::MatrixXd x = to_eigen_matrix(feats);  // [N, D]
  const Eigen::VectorXd s = x.colwise().sum().transpose();
  Eigen::MatrixXd outer = Eigen::MatrixXd::Zero(d, d);
  outer.selfadjointView<Eigen::Lower>().rankUpdate(x.transpose());  // lower triangle of x^T x
  sum_.add(s.data(), static_cast<std::size_t>(d), "a feature sum");
  std::vector<double> lower(outer_.size());
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j <= i; ++j) lower[lower_index(i, j)] = outer(i, j);
  outer_.add(lower.data(), lower.size(), "a feature outer product");
  count_ += feats.size(0);
}

void FeatureStats::merge(const FeatureStats& o) {
  if (o.count_ == 0) return;
  if (count_ == 0 && sum_.size() == 0) {
    *this = o;
    return;
  }
  if (o.dims() != dims())
    throw Error(fmt::format("FID statistics: cannot merge {}-dimensional statistics into {}-dimensional ones", o.dims(), dims()));
  count_ += o.count_;
  sum_.merge(o.sum_);
  outer_.merge(o.outer_);
}

FeatureStats FeatureStats::from_state(int64_t count, ExactSum sum, ExactSum outer_lower, const std::string& what) {
  const auto d = static_cast<int64_t>(sum.size());
  if (count < 0 || static_cast<int64_t>(outer_lower.size()) != d * (d + 1) / 2)
    throw Error(fmt::format("{}: FID statistics of {} dimensions need {} outer-product entries, the file has {} (count {})", what,
                            d, d * (d + 1) / 2, outer_lower.size(), count));
  FeatureStats s;
  s.count_ = count;
  s.sum_ = std::move(sum);
  s.outer_ = std::move(outer_lower);
  return s;
}

Eigen::VectorXd FeatureStats::mean() const {
  if (count_ < 1) throw Error("FID statistics: no features");
  const std::vector<double> s = sum_.values();
  return Eigen::Map<const Eigen::VectorXd>(s.data(), dims()) / static_cast<double>(count_);
}

Eigen::MatrixXd FeatureStats::covariance() const {
  if (count_ < 2) throw Error(fmt::format("FID statistics: a covariance needs at least 2 samples, have {}", count_));
  const int64_t d = dims();
  const Eigen::VectorXd m = mean();
  const std::vector<double> lower = outer_.values();
  Eigen::MatrixXd outer(d, d);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j <= i; ++j) outer(i, j) = outer(j, i) = lower[lower_index(i, j)];
  // (sum x x^T - N m m^T) / (N - 1)
  return (outer - static_cast<double>(count_) * m * m.transpose()) / static_cast<double>(count_ - 1);
}

Eigen::MatrixXd to_eigen_matrix(const torch::Tensor& t) {
  const torch::Tensor d = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  return Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(d.data_ptr<double>(), d.size(0), d.size(1));
}

Eigen::VectorXd to_eigen_vector(const torch::Tensor& t) {
  const torch::Tensor d = t.detach().to(torch::kCPU, torch::kFloat64).contiguous().flatten();
  return Eigen::Map<const Eigen::VectorXd>(d.data_ptr<double>(), d.numel());
}

namespace {

// Symmetric PSD square root (eigenvalues clipped at 0).
Eigen::MatrixXd sym_sqrt(const Eigen::MatrixXd& s) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(s);
  const Eigen::VectorXd r = es.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  return es.eigenvectors() * r.asDiagonal() * es.eigenvectors().transpose();
}

struct TraceSqrt {
  double trace = 0.0;
  double min_eigenvalue = 0.0;
};

TraceSqrt trace_sqrt_product(const Eigen::MatrixXd& s1, const Eigen::MatrixXd& s2) {
  const Eigen::MatrixXd a = sym_sqrt(0.5 * (s1 + s1.transpose()));
  Eigen::MatrixXd m = a * (0.5 * (s2 + s2.transpose())) * a;
  m = 0.5 * (m + m.transpose());
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(m, Eigen::EigenvaluesOnly);
  TraceSqrt r;
  r.min_eigenvalue = es.eigenvalues().minCoeff();
  r.trace = es.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
  return r;
}

}  // namespace

FrechetResult frechet_distance(const Eigen::VectorXd& mu1, const Eigen::MatrixXd& sigma1, const Eigen::VectorXd& mu2,
                               const Eigen::MatrixXd& sigma2, const FrechetOptions& o) {
  const auto d = mu1.size();
  if (mu2.size() != d || sigma1.rows() != d || sigma1.cols() != d || sigma2.rows() != d || sigma2.cols() != d)
    throw Error(fmt::format("Fréchet distance: mean vectors and covariances have different lengths ({}, {}, {}x{}, {}x{})", d, mu2.size(),
                            sigma1.rows(), sigma1.cols(), sigma2.rows(), sigma2.cols()));
  if (!mu1.allFinite() || !mu2.allFinite() || !sigma1.allFinite() || !sigma2.allFinite())
    throw Error("Fréchet distance: the statistics contain NaN or infinity");
  FrechetResult r;
  r.mean_term = (mu1 - mu2).squaredNorm();
  r.trace_sigma1 = sigma1.trace();
  r.trace_sigma2 = sigma2.trace();
  TraceSqrt ts;
  if (o.force_eps_offset) {
    const Eigen::MatrixXd off = o.eps * Eigen::MatrixXd::Identity(d, d);
    ts = trace_sqrt_product(sigma1 + off, sigma2 + off);
    r.eps_offset_used = true;
  } else {
    ts = trace_sqrt_product(sigma1, sigma2);
  }
  if (ts.min_eigenvalue < 0 && std::sqrt(-ts.min_eigenvalue) > 1e-3)
    throw Error(fmt::format("Fréchet distance: imaginary component {:.3g} (covariances not positive semi-definite?)",
                            std::sqrt(-ts.min_eigenvalue)));
  r.trace_covmean = ts.trace;
  r.fid = r.mean_term + r.trace_sigma1 + r.trace_sigma2 - 2.0 * r.trace_covmean;
  return r;
}

void write_fid_stats(const std::string& path, const Eigen::VectorXd& mu, const Eigen::MatrixXd& sigma) {
  torch::Tensor m = torch::empty({mu.size()}, torch::kFloat64);
  Eigen::Map<Eigen::VectorXd>(m.data_ptr<double>(), mu.size()) = mu;
  torch::Tensor s = torch::empty({sigma.rows(), sigma.cols()}, torch::kFloat64);
  Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(s.data_ptr<double>(), sigma.rows(), sigma.cols()) = sigma;
  write_fid_stats(path, m, s);
}

}  // namespace dc::metrics
