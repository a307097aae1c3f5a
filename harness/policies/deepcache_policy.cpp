// The deepcache policy's per-call state (its settings: deepcache.cpp). Every decision is the
// schedule's; only the zero-feature ablation keeps anything: the zeros partial calls read.
#include "harness/policies/deepcache_settings.h"
#include "harness/policies/policy_state.h"

namespace dc::harness::policies {
namespace {

class DeepCachePolicy final : public Policy {
 public:
  explicit DeepCachePolicy(const DeepCacheSettings& s) : s_(s), stage_(models::deepcache_stage(s.num_skips, s.k)) {}
  void begin(int64_t) override { zeros_ = torch::Tensor(); }
  models::CallRequest decide(int call, const torch::Tensor&, const torch::Tensor&) override {
    models::CallRequest r = s_.plan(call);
    if (s_.feature == "zero" && !s_.is_full(call) && zeros_.defined()) r.given[stage_] = zeros_;
    return r;
  }
  void observe(int call, const models::CallRecord&, const models::StageCache& cache) override {
    // The ablation without reuse (paper Table 5): what partial calls read becomes zeros of the
    // stored feature's shape.
    if (s_.feature != "zero" || !s_.is_full(call)) return;
    if (const torch::Tensor& stored = cache.peek(stage_); stored.defined()) zeros_ = torch::zeros_like(stored);
  }

 private:
  const DeepCacheSettings s_;  // a copy: the policy outlives nothing it points to
  int stage_;
  torch::Tensor zeros_;
};

}  // namespace

std::unique_ptr<Policy> DeepCacheSettings::make() const { return std::make_unique<DeepCachePolicy>(*this); }

}  // namespace dc::harness::policies
