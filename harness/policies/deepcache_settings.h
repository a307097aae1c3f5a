// The deepcache policy's settings (read in deepcache.cpp, torch-free; its per-call state is in
// deepcache_policy.cpp). Only the policy's own files include this.
#pragma once
#include <string>
#include <vector>

#include "harness/policies/policy.h"

namespace dc::harness::policies {

// The dynamic gate (cache-dit's DBCache rule on DeepCache's cut): every call computes the shallow
// input blocks 0..k; d = the relative L1 change of input block k's output since the last full call.
// The call reuses the cached deep feature (DeepCache's partial call) when d < threshold, else it
// computes the deep part too and becomes the new full call. Always full: calls before `warmup`, a
// call without a previous full call, and a call after max_cached reusing calls in a row.
struct GateRule {
  double threshold = 0.08;
  int warmup = 8;
  int max_cached = 0;  // 0: no limit
  void begin() { run = 0; }
  // d NaN: unknown (full).
  bool reuse(int call, double d) {
    if (call < warmup || !(d < threshold) || (max_cached > 0 && run >= max_cached)) {
      run = 0;
      return false;
    }
    ++run;
    return true;
  }
  int run = 0;
};

struct DeepCacheSettings final : PolicySettings {
  int num_skips = 0;
  int k = 2;
  int interval = 5;
  std::string schedule_name = "uniform";  // uniform | nonuniform | ldm_nonuniform | explicit
  int center = 0;
  double power = 1.4;
  std::vector<int> explicit_steps;
  std::string mode = "chained";    // chained | ldm_released
  std::string feature = "cached";  // cached | zero
  std::string index;               // calls | steps
  bool pndm = false;               // the sampler is pndm (its index is then part of the run id)
  int num_calls = 0;
  std::vector<int> full_steps;     // resolved when enabled
  double final_power = 0.0;
  double gate = 0.0;               // > 0: the dynamic gate's threshold (then no schedule)
  int gate_warmup = 8, gate_max_cached = 0;

  nlohmann::json resolved() const override;
  std::string describe() const override;
  std::optional<std::vector<models::CallPlan>> schedule() const override;
  nlohmann::json facts() const override;
  std::string plan_note() const override;
  std::vector<ReportColumn> report_columns() const override;  // k, m, N, schedule
  std::string uncomputed_note() const override;
  std::unique_ptr<Policy> make() const override;  // deepcache_policy.cpp
  bool decides_per_batch() const override { return gate > 0; }
  GateRule gate_rule() const { return {gate, gate_warmup, gate_max_cached}; }

  bool is_full(int call) const;
  models::CallPlan plan(int call) const;  // what call `call` computes
};

}  // namespace dc::harness::policies
