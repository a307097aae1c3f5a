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

}  // namespace dc::metrics
