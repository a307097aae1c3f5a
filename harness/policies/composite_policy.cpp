// The composed policies' per-call state (composite.h): the first decides, the modifiers change its
// request in turn, all observe.
#include "harness/policies/composite.h"
#include "harness/policies/policy_state.h"

namespace dc::harness::policies {
namespace {

class CompositePolicy final : public Policy {
 public:
  explicit CompositePolicy(std::vector<std::unique_ptr<Policy>> members) : members_(std::move(members)) {}
  void begin(int64_t batch) override {
    for (auto& m : members_) m->begin(batch);
  }
  models::CallRequest decide(int call, const torch::Tensor& t, const torch::Tensor& x) override {
    models::CallRequest r = members_.front()->decide(call, t, x);
    for (std::size_t i = 1; i < members_.size(); ++i) members_[i]->modify(call, t, x, r);
    return r;
  }
  void observe(int call, const models::CallRecord& record, const models::StageCache& cache) override {
    for (auto& m : members_) m->observe(call, record, cache);
  }

 private:
  std::vector<std::unique_ptr<Policy>> members_;
};

}  // namespace

std::unique_ptr<Policy> CompositeSettings::make() const {
  std::vector<std::unique_ptr<Policy>> v;
  for (const auto& m : members_) v.push_back(m->make());
  return std::make_unique<CompositePolicy>(std::move(v));
}

}  // namespace dc::harness::policies
