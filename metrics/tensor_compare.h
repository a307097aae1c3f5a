// Tensor comparison with the fixtures' tolerance rule |a - b| <= abs + rel * |ref| (elementwise),
// reporting what a parity failure needs: max |diff|, NMSE, the worst ratio to the allowance and
// the first mismatching indices.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

namespace dc::metrics {

struct Tolerance {
  double abs = 0.0;
  double rel = 0.0;
  bool exact = false;  // integer outputs, token ids, schedules
};

struct Mismatch {
  std::vector<int64_t> index;
  double actual = 0.0;
  double expected = 0.0;
};

struct CompareResult {
  bool ok = false;
  std::string problem;       // set when shapes differ or the inputs are unusable
  int64_t numel = 0;
  int64_t mismatches = 0;    // elements outside the tolerance
  double max_abs_diff = 0.0;
  double nmse = 0.0;         // sum (a-b)^2 / sum b^2 (0 when both are zero)
  double worst_ratio = 0.0;  // max |a-b| / (abs + rel*|ref|); <= 1 passes (inf for exact mismatches)
  std::vector<Mismatch> first;  // up to max_report mismatches in row-major order
  // One line: "name: FAIL 3/512 outside |d| <= 1e-4 + 1e-4|ref|, max|d|=..., NMSE=..., first: [0,1,2] 1.2 vs 1.3"
  std::string describe(const std::string& name, const Tolerance& tol) const;
};

// NaN equals NaN; any other NaN or infinity mismatch is a failure. Both tensors are compared in
// float64 on the CPU.
CompareResult compare_tensors(const torch::Tensor& actual, const torch::Tensor& expected,
                              const Tolerance& tol, int max_report = 5);

// Agreement of two renderings of the same samples (uint8 images) made in different batch layouts,
// shard layouts, thread counts or CPUs. Their noise is bit-identical, but the kernels that do the
// arithmetic are chosen by shape, thread count and instruction set, so float results differ in
// the last bits and a few uint8 values by one level (docs/experiments.md, "What is reproducible").
// The contract: no value differs by more than kImageMaxLevelDiff and at most a fraction
// kImageMaxDifferingFraction of the values differ at all.
inline constexpr int kImageMaxLevelDiff = 1;
inline constexpr double kImageMaxDifferingFraction = 1e-3;

struct ImageAgreement {
  int64_t values = 0;     // uint8 values compared (pixels x channels)
  int64_t differing = 0;  // values that differ at all
  int max_level_diff = 0; // max |a - b| in uint8 levels
  double differing_fraction() const { return values ? static_cast<double>(differing) / static_cast<double>(values) : 0.0; }
  bool within_contract() const {
    return max_level_diff <= kImageMaxLevelDiff && differing_fraction() <= kImageMaxDifferingFraction;
  }
  // "3 of 9216 values differ (0.033%), by at most 1 level"
  std::string describe() const;
};

// a and b: uint8 tensors of the same shape (dc::Error otherwise).
ImageAgreement compare_images(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace dc::metrics
