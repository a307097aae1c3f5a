#include "models/call_plan.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/error.h"
#include "models/deepcache_io.h"

namespace dc::models {

// ---- CallPlan ----------------------------------------------------------------------------------
bool CallPlan::computes_everything() const {
  return !skip_all && std::all_of(stages.begin(), stages.end(), [](StageAction a) { return a == StageAction::Compute; });
}

std::string CallPlan::kind() const {
  if (skip_all) return "skip";
  std::string s;
  if (computes_everything()) {
    s = "full";
  } else {
    std::vector<int> computed, reused, discarded;
    for (std::size_t i = 0; i < stages.size(); ++i) {
      if (stages[i] == StageAction::Compute) computed.push_back(static_cast<int>(i));
      if (stages[i] == StageAction::Reuse) reused.push_back(static_cast<int>(i));
      if (stages[i] == StageAction::ComputeDiscard) discarded.push_back(static_cast<int>(i));
    }
    const auto ids = [](const std::vector<int>& v) { return v.empty() ? std::string("-") : compact_ids(v); };
    s = fmt::format("reuse {} compute {}", ids(reused), ids(computed));
    if (!discarded.empty()) s += fmt::format(" discard {}", compact_ids(discarded));
  }
  if (!store.empty()) s += fmt::format(" store {}", compact_ids(store));
  if (store_residual) s += " store residual";
  return s;
}

std::string compact_ids(const std::vector<int>& ids_in) {
  std::vector<int> v = ids_in;
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  std::string out;
  for (std::size_t i = 0; i < v.size();) {
    std::size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + (j == i ? std::to_string(v[i]) : j == i + 1 ? fmt::format("{},{}", v[i], v[j])
                                                                                 : fmt::format("{}-{}", v[i], v[j]));
    i = j + 1;
  }
  return out;
}

std::string generic_stage_name(int num_skips, int stage) {
  if (stage < num_skips) return fmt::format("input {}", stage);
  if (stage == num_skips) return "middle";
  return fmt::format("output {}", stage - num_skips - 1);
}

std::vector<uint8_t> computed_stages(const CallPlan* req, int S) {
  if (req && req->skip_all) return {};
  std::vector<uint8_t> v(num_stages(S), 1);
  if (req && !req->stages.empty())
    for (int s = 0; s < num_stages(S); ++s)
      v[s] = req->stages[s] == StageAction::Compute || req->stages[s] == StageAction::ComputeDiscard ? 1 : 0;
  return v;
}

// ---- DeepCache's cut ------------------------------------------------------------------------------
int deepcache_stage(int S, int k) {
  deepcache::check_skip_index(k, S, "this UNet");
  return k == S - 1 ? middle_stage(S) : output_stage(S, S - 2 - k);
}

CallPlan deepcache_plan(int S, int k, bool partial) {
  const int feature = deepcache_stage(S, k);
  CallPlan r;
  r.stages.assign(num_stages(S), StageAction::Compute);
  if (!partial) {
    r.store = {feature};
    return r;
  }
  for (int s = k + 1; s < feature; ++s) r.stages[s] = StageAction::Skip;  // deep input blocks, middle, deep output blocks
  r.stages[feature] = StageAction::Reuse;
  return r;
}

CallPlan released_ldm_plan(int S, int L, bool partial) {
  deepcache::check_skip_index(L, S, "this UNet");
  CallPlan r;
  r.stages.assign(num_stages(S), StageAction::Compute);
  if (!partial) {
    for (int s = middle_stage(S); s < output_stage(S, S - 1); ++s) r.store.push_back(s);
    return r;
  }
  const int first = output_stage(S, S - 1 - L);  // the first output block the shallow pass runs
  for (int s = L + 1; s < first - 1; ++s) r.stages[s] = StageAction::Skip;
  r.stages[first - 1] = StageAction::Reuse;
  for (int s = first; s < output_stage(S, S - 1); ++s) r.stages[s] = StageAction::ComputeDiscard;
  return r;
}

}  // namespace dc::models
