// The block_cache policy (Block Caching, Wimbauer et al., arXiv 2312.03209), torch-free side: the
// schedule from a calibration and its settings. Each stage (input block, middle, output block) is a
// block. A calibration run of the uncached network measures, per call c and block i, the relative
// change of the block's output L1rel(i, c) = ‖o(i,c) − o(i,c−1)‖₁ / ‖o(i,c)‖₁ (per sample, averaged
// over the calibration samples). The schedule: call 0 computes every block; at every later call a
// block adds L1rel(i, c) to what it accumulated since it was last computed, and is computed (and its
// output stored) when that exceeds δ, else its stored output is reused. The paper's learned
// scale-shift adjustment needs training: left out.
#pragma once
#include <vector>

#include "harness/policies/policy.h"

namespace dc::harness::policies {

// The calls' requests for a change matrix [call][stage] (stage count 2S+1) and δ.
std::vector<models::CallPlan> block_cache_schedule(const std::vector<std::vector<double>>& change, double delta);

struct BlockCacheSettings final : PolicySettings {
  double delta = 0.5;
  int calibration_samples = 4;
  std::vector<std::vector<double>> changes;      // [call][stage]: measured, or given as cache.calibration
  double calibration_seconds = -1;               // measured here (-1: given or none)
  int num_skips = 0, num_calls = 0;

  nlohmann::json resolved() const override;
  std::string describe() const override;
  std::optional<std::vector<models::CallPlan>> schedule() const override;  // once calibrated
  nlohmann::json facts() const override;
  std::vector<ReportColumn> report_columns() const override;  // delta
  std::string uncomputed_note() const override { return "a block whose change stays under delta reuses its output"; }
  std::unique_ptr<Policy> make() const override;              // block_cache_policy.cpp
  std::shared_ptr<Calibration> calibration() const override;  // block_cache_policy.cpp
};

}  // namespace dc::harness::policies
