// The faster_diffusion policy's per-call state: the schedule's request (faster_diffusion.h).
#include "harness/policies/faster_diffusion.h"
#include "harness/policies/policy_state.h"

namespace dc::harness::policies {
namespace {

class FasterDiffusionPolicy final : public Policy {
 public:
  explicit FasterDiffusionPolicy(const FasterDiffusionSettings& s) : s_(s) {}
  models::CallRequest decide(int call, const torch::Tensor&, const torch::Tensor&) override { return s_.plan(call); }

 private:
  const FasterDiffusionSettings s_;
};

}  // namespace

std::unique_ptr<Policy> FasterDiffusionSettings::make() const { return std::make_unique<FasterDiffusionPolicy>(*this); }

}  // namespace dc::harness::policies
