#include "metrics/tensor_compare.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::metrics {

namespace {
std::vector<int64_t> unravel(int64_t flat, const std::vector<int64_t>& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  return idx;
}
std::string idx_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}
}  // namespace

CompareResult compare_tensors(const torch::Tensor& actual, const torch::Tensor& expected,
                              const Tolerance& tol, int max_report) {
  CompareResult r;
  if (!actual.defined() || !expected.defined()) {
    r.problem = "undefined tensor";
    return r;
  }
  if (actual.sizes() != expected.sizes()) {
    r.problem = fmt::format("shape {} differs from expected {}", idx_str(actual.sizes().vec()),
                            idx_str(expected.sizes().vec()));
    return r;
  }
  const torch::Tensor a = actual.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const torch::Tensor b = expected.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const double* pa = a.data_ptr<double>();
  const double* pb = b.data_ptr<double>();
  const std::vector<int64_t> shape = a.sizes().vec();
  r.numel = a.numel();
  long double err2 = 0, ref2 = 0;
  for (int64_t i = 0; i < r.numel; ++i) {
    const double x = pa[i], y = pb[i];
    bool pass;
    double diff;
    if (std::isnan(x) || std::isnan(y)) {
      pass = std::isnan(x) && std::isnan(y);
      diff = pass ? 0.0 : std::numeric_limits<double>::infinity();
    } else if (std::isinf(x) || std::isinf(y)) {
      pass = x == y;
      diff = pass ? 0.0 : std::numeric_limits<double>::infinity();
    } else {
      diff = std::fabs(x - y);
      const double allowed = tol.exact ? 0.0 : tol.abs + tol.rel * std::fabs(y);
      pass = tol.exact ? x == y : diff <= allowed;
      const double ratio = allowed > 0 ? diff / allowed : (diff > 0 ? std::numeric_limits<double>::infinity() : 0.0);
      r.worst_ratio = std::max(r.worst_ratio, ratio);
      err2 += static_cast<long double>(diff) * diff;
      ref2 += static_cast<long double>(y) * y;
    }
    r.max_abs_diff = std::max(r.max_abs_diff, diff);
    if (!pass) {
      if (!std::isfinite(diff)) r.worst_ratio = std::numeric_limits<double>::infinity();
      ++r.mismatches;
      if (static_cast<int>(r.first.size()) < max_report) r.first.push_back({unravel(i, shape), x, y});
    }
  }
  r.nmse = ref2 > 0 ? static_cast<double>(err2 / ref2) : (err2 > 0 ? std::numeric_limits<double>::infinity() : 0.0);
  r.ok = r.mismatches == 0;
  return r;
}

std::string CompareResult::describe(const std::string& name, const Tolerance& tol) const {
  if (!problem.empty()) return fmt::format("{}: FAIL: {}", name, problem);
  const std::string rule = tol.exact ? "exact" : fmt::format("|d| <= {:g} + {:g}|ref|", tol.abs, tol.rel);
  std::string s = fmt::format("{}: {} {}/{} outside {}, max|d|={:.3g}, NMSE={:.3g}, worst |d|/allowed={:.3g}",
                              name, ok ? "ok" : "FAIL", mismatches, numel, rule, max_abs_diff, nmse, worst_ratio);
  if (!first.empty()) {
    s += ", first:";
    for (const auto& m : first) s += fmt::format(" {} {:.9g} vs {:.9g};", idx_str(m.index), m.actual, m.expected);
  }
  return s;
}

std::string ImageAgreement::describe() const {
  return fmt::format("{} of {} values differ ({:.3f}%), by at most {} level{}", differing, values, 100.0 * differing_fraction(),
                     max_level_diff, max_level_diff == 1 ? "" : "s");
}

ImageAgreement compare_images(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined() || !b.defined() || a.scalar_type() != torch::kUInt8 || b.scalar_type() != torch::kUInt8)
    throw Error("compare_images: expected two uint8 image tensors");
  if (a.sizes() != b.sizes())
    throw Error(fmt::format("compare_images: shapes {} and {} differ", idx_str(a.sizes().vec()), idx_str(b.sizes().vec())));
  const torch::Tensor d = (a.to(torch::kCPU, torch::kInt16) - b.to(torch::kCPU, torch::kInt16)).abs();
  ImageAgreement r;
  r.values = d.numel();
  r.differing = d.ne(0).sum().item<int64_t>();
  r.max_level_diff = r.values ? d.max().item<int>() : 0;
  return r;
}

}  // namespace dc::metrics
