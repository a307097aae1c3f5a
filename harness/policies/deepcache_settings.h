// The deepcache policy's settings (read in deepcache.cpp, torch-free; its per-call state is in
// deepcache_policy.cpp). Only the policy's own files include this.
#pragma once
#include <string>
#include <vector>

#include "harness/policies/policy.h"

namespace dc::harness::policies {

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

  nlohmann::json resolved() const override;
  std::string describe() const override;
  std::optional<std::vector<models::CallPlan>> schedule() const override;
  nlohmann::json facts() const override;
  std::string plan_note() const override;
  std::vector<ReportColumn> report_columns() const override;  // k, m, N, schedule
  std::string uncomputed_note() const override;
  std::unique_ptr<Policy> make() const override;  // deepcache_policy.cpp

  bool is_full(int call) const;
  models::CallPlan plan(int call) const;  // what call `call` computes
};

}  // namespace dc::harness::policies
