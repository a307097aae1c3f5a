// Sums of doubles whose result does not depend on the order or grouping of the additions, so
// that metric states made in shards merge into exactly the state one process would have made.
//
// Every added value is converted once to a fixed-point integer in units of 2^-64 (truncated
// toward zero: 5.4e-20 absolute) held in 128 bits; integer addition is associative, so any
// grouping of the same contributions gives the same bits. Magnitudes up to 2^62 (4.6e18) are
// accepted per value and per total; a non-finite or larger value is a dc::Error (a metric fed
// NaN must fail loudly, not merge into garbage).
//
// Torch-free and Eigen-free: the states are stored in HDF5 as int64 pairs (high, low words).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dc::metrics {

__extension__ typedef __int128 int128;            // GCC/Clang; -Wpedantic-clean
__extension__ typedef unsigned __int128 uint128;

class ExactSum {
 public:
  ExactSum() = default;
  explicit ExactSum(std::size_t n) : v_(n, 0) {}
  std::size_t size() const { return v_.size(); }
  // v[i] += x[i] for i < size(); `what` names the quantity in errors.
  void add(const double* x, std::size_t n, const char* what = "value");
  void add(std::size_t i, double x, const char* what = "value");
  void merge(const ExactSum& o);  // sizes must agree (dc::Error otherwise)
  double value(std::size_t i) const;
  std::vector<double> values() const;
  // Storage: [size, 2] int64, row i = (high 64 bits as signed, low 64 bits as their bit pattern).
  std::vector<int64_t> words() const;
  static ExactSum from_words(const std::vector<int64_t>& words, const std::string& what);

 private:
  std::vector<int128> v_;
};

}  // namespace dc::metrics
