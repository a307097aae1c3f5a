#include "metrics/exact_sum.h"

#include <cmath>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::metrics {

namespace {
constexpr int kFraction = 64;       // units of 2^-64
constexpr double kLimit = 0x1p62;   // per value and per total
constexpr int128 kTotalLimit = static_cast<int128>(1) << (62 + kFraction);

int128 to_fixed(double x, const char* what) {
  if (!std::isfinite(x) || std::fabs(x) >= kLimit)
    throw Error(fmt::format("exact sum: {} {} is not a finite number below 2^62", what, x));
  return static_cast<int128>(std::ldexp(x, kFraction));  // exact scaling, then toward zero
}

void check_total(int128 v, const char* what) {
  if (v >= kTotalLimit || v <= -kTotalLimit) throw Error(fmt::format("exact sum: the total of {} passed 2^62", what));
}
}  // namespace

void ExactSum::add(std::size_t i, double x, const char* what) {
  v_.at(i) += to_fixed(x, what);
  check_total(v_[i], what);
}

void ExactSum::add(const double* x, std::size_t n, const char* what) {
  if (n != v_.size()) throw Error(fmt::format("exact sum: {} values added to a sum of {}", n, v_.size()));
  for (std::size_t i = 0; i < n; ++i) {
    v_[i] += to_fixed(x[i], what);
    check_total(v_[i], what);
  }
}

void ExactSum::merge(const ExactSum& o) {
  if (o.v_.size() != v_.size()) throw Error(fmt::format("exact sum: cannot merge {} values into {}", o.v_.size(), v_.size()));
  for (std::size_t i = 0; i < v_.size(); ++i) {
    v_[i] += o.v_[i];
    check_total(v_[i], "a merge");
  }
}

double ExactSum::value(std::size_t i) const { return std::ldexp(static_cast<double>(v_.at(i)), -kFraction); }

std::vector<double> ExactSum::values() const {
  std::vector<double> out(v_.size());
  for (std::size_t i = 0; i < v_.size(); ++i) out[i] = value(i);
  return out;
}

std::vector<int64_t> ExactSum::words() const {
  std::vector<int64_t> w(2 * v_.size());
  for (std::size_t i = 0; i < v_.size(); ++i) {
    const auto u = static_cast<uint128>(v_[i]);
    w[2 * i] = static_cast<int64_t>(static_cast<uint64_t>(u >> 64));
    w[2 * i + 1] = static_cast<int64_t>(static_cast<uint64_t>(u));
  }
  return w;
}

ExactSum ExactSum::from_words(const std::vector<int64_t>& w, const std::string& what) {
  if (w.size() % 2) throw Error(fmt::format("{}: an exact sum is stored as (high, low) pairs; {} words", what, w.size()));
  ExactSum s(w.size() / 2);
  for (std::size_t i = 0; i < s.v_.size(); ++i) {
    const uint128 u = (static_cast<uint128>(static_cast<uint64_t>(w[2 * i])) << 64) |
                                static_cast<uint64_t>(w[2 * i + 1]);
    s.v_[i] = static_cast<int128>(u);
    if (s.v_[i] >= kTotalLimit || s.v_[i] <= -kTotalLimit) throw Error(fmt::format("{}: value {} is out of range", what, i));
  }
  return s;
}

}  // namespace dc::metrics
