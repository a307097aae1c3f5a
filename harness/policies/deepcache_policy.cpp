// The deepcache policy's per-call state (its settings: deepcache.cpp). Every decision is the
// schedule's, or with cache.gate the dynamic gate's (deepcache_settings.h: GateRule) from the shallow
// output it compares with; the zero-feature ablation keeps the zeros partial calls read.
#include <limits>

#include "harness/policies/deepcache_settings.h"
#include "harness/policies/measure.h"
#include "harness/policies/policy_state.h"

namespace dc::harness::policies {
namespace {

class DeepCachePolicy final : public Policy {
 public:
  explicit DeepCachePolicy(const DeepCacheSettings& s) : s_(s), stage_(models::deepcache_stage(s.num_skips, s.k)), gate_(s.gate_rule()) {}
  void begin(int64_t) override {
    zeros_ = ref_ = pending_ = torch::Tensor();
    gate_.begin();
  }
  models::CallRequest decide(int call, const torch::Tensor&, const torch::Tensor&) override {
    if (s_.gate > 0) return gated(call);
    models::CallRequest r = s_.plan(call);
    if (s_.feature == "zero" && !s_.is_full(call) && zeros_.defined()) r.given[stage_] = zeros_;
    return r;
  }
  void observe(int call, const models::CallRecord& record, const models::StageCache& cache) override {
    if (s_.gate > 0) {
      if (!record.gated) ref_ = pending_;  // a full call: the shallow output the next calls compare with
      return;
    }
    // The ablation without reuse (paper Table 5): what partial calls read becomes zeros of the
    // stored feature's shape.
    if (s_.feature != "zero" || !s_.is_full(call)) return;
    if (const torch::Tensor& stored = cache.peek(stage_); stored.defined()) zeros_ = torch::zeros_like(stored);
  }

 private:
  // The dynamic gate: a full call whose gate, after input block k, may switch it to the partial call.
  models::CallRequest gated(int call) {
    models::CallRequest r = models::deepcache_plan(s_.num_skips, s_.k, false);
    r.gate = models::CallGate{s_.k,
                              [this, call](const torch::Tensor& h, const std::vector<torch::Tensor>&) {
                                pending_ = h;
                                const double d = ref_.defined() ? relative_l1(h, ref_) : std::numeric_limits<double>::quiet_NaN();
                                return gate_.reuse(call, d);
                              },
                              models::deepcache_plan(s_.num_skips, s_.k, true)};
    return r;
  }

  const DeepCacheSettings s_;  // a copy: the policy outlives nothing it points to
  int stage_;
  GateRule gate_;
  torch::Tensor zeros_, ref_, pending_;
};

}  // namespace

std::unique_ptr<Policy> DeepCacheSettings::make() const { return std::make_unique<DeepCachePolicy>(*this); }

}  // namespace dc::harness::policies
