#include "metrics/fid.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <random>
#include <vector>

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

// LAPACK and BLAS from OpenBLAS (libopenblas-dev; blocked and multi-threaded: a 2048-dimensional
// symmetric eigendecomposition takes ~1 s instead of Eigen's single-threaded ~7 s).
extern "C" {
void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w, double* work, const int* lwork,
             int* iwork, const int* liwork, int* info);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha, const double* a,
            const int* lda, const double* b, const int* ldb, const double* beta, double* c, const int* ldc);
}

// Eigenvalues (ascending) of the symmetric matrix `a`, and its eigenvectors in `a` when `vectors`.
Eigen::VectorXd sym_eig(Eigen::MatrixXd& a, bool vectors) {
  const int n = static_cast<int>(a.rows());
  Eigen::VectorXd w(n);
  if (n == 0) return w;
  const char jobz = vectors ? 'V' : 'N', uplo = 'L';
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  dsyevd_(&jobz, &uplo, &n, a.data(), &n, w.data(), &work_query, &lwork, &iwork_query, &liwork, &info);
  lwork = static_cast<int>(work_query);
  liwork = iwork_query;
  std::vector<double> work(static_cast<std::size_t>(std::max(lwork, 1)));
  std::vector<int> iwork(static_cast<std::size_t>(std::max(liwork, 1)));
  dsyevd_(&jobz, &uplo, &n, a.data(), &n, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info);
  if (info != 0) throw Error(fmt::format("Fréchet distance: the symmetric eigensolver (LAPACK dsyevd) failed (info {})", info));
  return w;
}

// c = op(a) * op(b) (column-major, Eigen's layout).
Eigen::MatrixXd gemm(const Eigen::MatrixXd& a, bool ta, const Eigen::MatrixXd& b, bool tb) {
  const int m = static_cast<int>(ta ? a.cols() : a.rows()), k = static_cast<int>(ta ? a.rows() : a.cols());
  const int n = static_cast<int>(tb ? b.rows() : b.cols());
  Eigen::MatrixXd c(m, n);
  if (m == 0 || n == 0) return c;
  if (k == 0) return Eigen::MatrixXd::Zero(m, n);
  const double one = 1.0, zero = 0.0;
  const int lda = static_cast<int>(a.rows()), ldb = static_cast<int>(b.rows());
  dgemm_(ta ? "T" : "N", tb ? "T" : "N", &m, &n, &k, &one, a.data(), &lda, b.data(), &ldb, &zero, c.data(), &m);
  return c;
}

struct TraceSqrt {
  double trace = 0.0;
  double min_eigenvalue = 0.0;
  double max_eigenvalue = 0.0;
};

// tr sqrt(s1 s2) = tr sqrt(W^1/2 V^T s2 V W^1/2) with s1 = V W V^T (negative round-off eigenvalues
// of s1 clipped to 0, their columns dropped: a rank-r s1 makes the inner matrix r x r). The inner
// matrix is similar to sqrt(s1) s2 sqrt(s1), so its eigenvalues are the same.
TraceSqrt trace_sqrt_product(const Eigen::MatrixXd& s1, const Eigen::MatrixXd& s2) {
  Eigen::MatrixXd v = 0.5 * (s1 + s1.transpose());
  const Eigen::VectorXd w = sym_eig(v, /*vectors=*/true);
  std::vector<Eigen::Index> keep;
  for (Eigen::Index i = 0; i < w.size(); ++i)
    if (w[i] > 0) keep.push_back(i);
  Eigen::MatrixXd vr(v.rows(), static_cast<Eigen::Index>(keep.size()));
  for (std::size_t j = 0; j < keep.size(); ++j) vr.col(static_cast<Eigen::Index>(j)) = v.col(keep[j]) * std::sqrt(w[keep[j]]);
  const Eigen::MatrixXd s2s = 0.5 * (s2 + s2.transpose());
  Eigen::MatrixXd m = gemm(vr, true, gemm(s2s, false, vr, false), false);
  m = 0.5 * (m + m.transpose());
  TraceSqrt r;
  if (m.rows() == 0) return r;
  const Eigen::VectorXd e = sym_eig(m, /*vectors=*/false);
  r.min_eigenvalue = e.minCoeff();
  r.max_eigenvalue = e.maxCoeff();
  r.trace = e.cwiseMax(0.0).cwiseSqrt().sum();
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
  // A negative eigenvalue within the eigensolver's round-off (8 D eps lambda_max: features of
  // large magnitude make it exceed the reference's absolute 1e-3 on sqrt scale, e.g. a
  // rank-deficient covariance of 6 samples with trace 3.7e5 gave -2.2e-6) is clipped to 0.
  const double roundoff = 8.0 * static_cast<double>(d) * std::numeric_limits<double>::epsilon() * std::max(ts.max_eigenvalue, 0.0);
  if (ts.min_eigenvalue < 0 && std::sqrt(-ts.min_eigenvalue) > 1e-3 && -ts.min_eigenvalue > roundoff)
    throw Error(fmt::format("Fréchet distance: imaginary component {:.3g} (eigenvalue {:.3g} of sqrt(s1) s2 sqrt(s1), beyond round-off "
                            "{:.3g}: covariances not positive semi-definite?)",
                            std::sqrt(-ts.min_eigenvalue), ts.min_eigenvalue, roundoff));
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

namespace {

// The Frechet distance of features x [n, D] (float64) weighted by resample counts w [n, 1].
double resampled_fid(const torch::Tensor& x, const torch::Tensor& wt, const Eigen::VectorXd& mu_ref, const Eigen::MatrixXd& sigma_ref) {
  const int64_t n = x.size(0);
  const torch::Tensor mu = (x * wt).sum(0) / static_cast<double>(n);
  const torch::Tensor centred = x - mu;
  const torch::Tensor cov = (centred * wt).t().mm(centred) / static_cast<double>(n - 1);
  return frechet_distance(to_eigen_vector(mu), to_eigen_matrix(cov), mu_ref, sigma_ref).fid;
}

// Resample `resamples` times (n draws with replacement each) and collect f(weights) per resample.
std::vector<double> bootstrap_values(int64_t n, int resamples, uint64_t seed, const std::function<double(const torch::Tensor&)>& f) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, n - 1);
  std::vector<double> values;
  values.reserve(static_cast<std::size_t>(resamples));
  std::vector<double> w(static_cast<std::size_t>(n));
  for (int b = 0; b < resamples; ++b) {
    std::fill(w.begin(), w.end(), 0.0);
    for (int64_t i = 0; i < n; ++i) w[static_cast<std::size_t>(pick(rng))] += 1.0;
    values.push_back(f(torch::from_blob(w.data(), {n, 1}, torch::kFloat64)));
  }
  return values;
}

double sample_sd(const std::vector<double>& values) {
  double mean = 0, var = 0;
  for (double v : values) mean += v / static_cast<double>(values.size());
  for (double v : values) var += (v - mean) * (v - mean) / static_cast<double>(values.size() - 1);
  return std::sqrt(var);
}

constexpr double kZ = 1.959963984540054;  // the normal's 97.5% quantile

}  // namespace

FrechetInterval frechet_bootstrap(const torch::Tensor& features, double estimate, const Eigen::VectorXd& mu_ref,
                                  const Eigen::MatrixXd& sigma_ref, int resamples, uint64_t seed) {
  if (features.dim() != 2 || features.size(0) < 2)
    throw Error(fmt::format("FID bootstrap: need features [n >= 2, D], got {}", c10::str(features.sizes())));
  if (resamples < 2 || !std::isfinite(estimate))
    throw Error(fmt::format("FID bootstrap: need at least 2 resamples and a finite estimate, got {} and {}", resamples, estimate));
  torch::NoGradGuard ng;
  const torch::Tensor x = features.to(torch::kCPU, torch::kFloat64).contiguous();
  const auto values = bootstrap_values(x.size(0), resamples, seed, [&](const torch::Tensor& wt) { return resampled_fid(x, wt, mu_ref, sigma_ref); });
  const double sd = sample_sd(values);
  return {std::max(0.0, estimate - kZ * sd), estimate + kZ * sd, sd, resamples};
}

FrechetInterval frechet_paired_bootstrap(const torch::Tensor& a, const std::vector<std::pair<torch::Tensor, double>>& reference,
                                         double estimate, const Eigen::VectorXd& mu_ref, const Eigen::MatrixXd& sigma_ref,
                                         int resamples, uint64_t seed) {
  if (a.dim() != 2 || a.size(0) < 2) throw Error(fmt::format("paired FID bootstrap: need features [n >= 2, D], got {}", c10::str(a.sizes())));
  if (reference.empty() || resamples < 2 || !std::isfinite(estimate))
    throw Error("paired FID bootstrap: need a reference run, at least 2 resamples and a finite estimate");
  for (const auto& [f, w] : reference)
    if (f.sizes() != a.sizes())
      throw Error(fmt::format("paired FID bootstrap: features {} and {} are not of the same samples", c10::str(a.sizes()), c10::str(f.sizes())));
  torch::NoGradGuard ng;
  const torch::Tensor x = a.to(torch::kCPU, torch::kFloat64).contiguous();
  std::vector<std::pair<torch::Tensor, double>> refs;
  for (const auto& [f, w] : reference) refs.emplace_back(f.to(torch::kCPU, torch::kFloat64).contiguous(), w);
  const auto values = bootstrap_values(x.size(0), resamples, seed, [&](const torch::Tensor& wt) {
    double d = resampled_fid(x, wt, mu_ref, sigma_ref);
    for (const auto& [f, w] : refs) d -= w * resampled_fid(f, wt, mu_ref, sigma_ref);
    return d;
  });
  const double sd = sample_sd(values);
  return {estimate - kZ * sd, estimate + kZ * sd, sd, resamples};
}

}  // namespace dc::metrics

