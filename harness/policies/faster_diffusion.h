// The faster_diffusion policy's settings (read in faster_diffusion.cpp, torch-free; its per-call
// state is faster_diffusion_policy.cpp's).
#pragma once
#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "harness/policies/policy.h"

namespace dc::harness::policies {

struct FasterDiffusionSettings final : PolicySettings {
  int num_skips = 0, num_calls = 0;
  std::vector<int> key_calls;
  bool given = false;  // key_calls from YAML (part of the run id then)

  bool is_key(int call) const { return std::binary_search(key_calls.begin(), key_calls.end(), call); }
  models::CallPlan plan(int call) const {
    const int S = num_skips;
    models::CallPlan p;
    if (is_key(call)) {
      for (int s = 0; s <= S; ++s) p.store.push_back(s);  // the skip features and the middle's output
      return p;
    }
    p.stages.assign(models::num_stages(S), models::StageAction::Compute);
    for (int s = 0; s <= S; ++s) p.stages[s] = models::StageAction::Reuse;
    return p;
  }
  nlohmann::json resolved() const override { return {{"key_calls", key_calls}}; }
  std::string describe() const override { return fmt::format(" key calls {}", models::compact_ids(key_calls)); }
  std::optional<std::vector<models::CallPlan>> schedule() const override {
    std::vector<models::CallPlan> v;
    for (int c = 0; c < num_calls; ++c) v.push_back(plan(c));
    return v;
  }
  std::vector<ReportColumn> report_columns() const override {
    return {{"key calls", models::compact_ids(key_calls), static_cast<double>(key_calls.size())}};
  }
  std::string uncomputed_note() const override { return "the encoder and middle run only at the key calls"; }
  std::unique_ptr<Policy> make() const override;
};

}  // namespace dc::harness::policies
