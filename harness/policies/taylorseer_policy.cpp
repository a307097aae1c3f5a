// The taylorseer policy's per-call state: where the request it modifies reuses a stage, the stage's
// Taylor forecast (taylor_forecast.h) is handed in; the stages the calls compute and store update
// their forecasts.
#include <map>
#include <set>

#include "harness/policies/policy_state.h"
#include "harness/policies/taylor_forecast.h"
#include "harness/policies/taylorseer.h"

namespace dc::harness::policies {
namespace {

class TaylorSeerPolicy final : public Policy {
 public:
  explicit TaylorSeerPolicy(int order) : order_(order) {}
  void begin(int64_t) override { forecasts_.clear(); }
  void modify(int call, const torch::Tensor&, const torch::Tensor&, models::CallRequest& r) override {
    stored_.clear();
    forecast_reused(call, r, r.stages);
    stored_.insert(r.store.begin(), r.store.end());
    if (r.gate) {
      forecast_reused(call, r, r.gate->cached.stages);
      stored_.insert(r.gate->cached.store.begin(), r.gate->cached.store.end());
    }
  }
  void observe(int call, const models::CallRecord& record, const models::StageCache& cache) override {
    for (const int s : stored_)
      if (s < static_cast<int>(record.computed.size()) && record.computed[s] && cache.has(s)) {
        auto it = forecasts_.try_emplace(s, order_).first;
        it->second.update(call, cache.peek(s));
      }
  }

 private:
  void forecast_reused(int call, models::CallRequest& r, const std::vector<models::StageAction>& stages) {
    for (std::size_t s = 0; s < stages.size(); ++s) {
      if (stages[s] != models::StageAction::Reuse || r.given.count(static_cast<int>(s))) continue;
      const auto it = forecasts_.find(static_cast<int>(s));
      if (it != forecasts_.end() && it->second.factors() > 1) r.given[static_cast<int>(s)] = it->second.at(call);
    }
  }
  int order_;
  std::map<int, TaylorForecast> forecasts_;  // by stage
  std::set<int> stored_;                     // the stages the current call may store
};

}  // namespace

std::unique_ptr<Policy> TaylorSeerSettings::make() const { return std::make_unique<TaylorSeerPolicy>(order); }

}  // namespace dc::harness::policies
