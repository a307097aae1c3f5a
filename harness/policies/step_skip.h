// The step_skip policy's settings and its decision rule (torch-free: the experiment reader and the
// rule's tests use them; the per-call measurements are step_skip_policy.cpp's). A call either runs
// the whole UNet (and stores its output residual, output − input) or is skipped whole: its output
// is its input plus the stored residual. Which, is the indicator's rule:
//   input_change         TeaCache (arXiv 2411.19108) on a UNet: m = ‖x_c − x_{c−1}‖₁ / ‖x_{c−1}‖₁ of
//                        the model input between consecutive calls, through the optional polynomial
//                        `rescale`; skip while the sum of m since the last computed call < threshold.
//   first_block          First-Block Cache (ParaAttention): each call computes input blocks 0 and 1;
//                        m = the relative L1 change of block 1's residual (its output − its input)
//                        since the last computed call; skip the rest while m < threshold (decided in
//                        the call: models::CallGate).
//   magnitude            MagCache (arXiv 2506.09045): γ_c = mean ‖r_c‖/‖r_{c−1}‖ of the output
//                        residuals, from a calibration run; skip while Σ|1 − Πγ| since the last
//                        computed call < threshold.
//   transformation_rate  EasyCache (arXiv 2507.02860; stable-diffusion.cpp's easycache): k = mean|Δout| /
//                        mean|Δin| between the last two computed calls; m = k · mean|x_c − x_last| /
//                        mean|out_last|; skip while the sum of m since the last computed call < threshold.
// Always computed: the calls before ceil(warmup · calls) (at least call 0), the last
// ceil(cooldown · calls) (at least the last call), and a call after max_skips skips in a row.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "harness/policies/policy.h"

namespace dc::harness::policies {

class SkipRule {
 public:
  enum class Indicator { input_change, first_block, magnitude, transformation_rate };
  Indicator indicator = Indicator::input_change;
  double threshold = 0.1;
  int max_skips = 0;              // consecutive skips at most (0: no limit)
  int first_free = 1;             // calls before it are computed
  int last_free = 0;              // calls from it on are computed
  std::vector<double> rescale;    // input_change: polynomial coefficients, highest degree first (empty: m itself)

  void begin() { reset(); }
  // Computed whatever is measured (warm-up, cool-down, max_skips reached).
  bool forced(int call) const { return call < first_free || call >= last_free || (max_skips > 0 && run_ >= max_skips); }
  // Call `call` with its measurement m (NaN: unknown, the call computes): true = skip it. A computed
  // call resets what was accumulated.
  bool skip(int call, double m);
  double accumulated() const { return acc_; }
  int skips_in_a_row() const { return run_; }

 private:
  void reset() { acc_ = 0, ratio_ = 1, run_ = 0; }
  double acc_ = 0, ratio_ = 1;
  int run_ = 0;
};

struct StepSkipSettings final : PolicySettings {
  std::string indicator = "input_change";
  double threshold = 0, warmup = 0, cooldown = 0;
  int max_skips = 0;
  std::vector<double> rescale;
  int calibration_samples = 4;       // magnitude: samples of the calibration run
  std::vector<double> ratios;        // magnitude: γ per call (measured, or given as cache.calibration)
  double calibration_seconds = -1;   // measured here (-1: given or none)
  int num_calls = 0;

  SkipRule rule() const;
  nlohmann::json resolved() const override;
  std::string describe() const override;
  std::optional<std::vector<models::CallPlan>> schedule() const override { return std::nullopt; }
  nlohmann::json facts() const override;
  std::vector<ReportColumn> report_columns() const override;  // indicator, threshold
  std::string uncomputed_note() const override { return "skipped calls compute no block"; }
  std::unique_ptr<Policy> make() const override;  // step_skip_policy.cpp
  std::shared_ptr<Calibration> calibration() const override;  // step_skip_policy.cpp
  bool decides_per_batch() const override { return indicator != "magnitude"; }
};

}  // namespace dc::harness::policies
