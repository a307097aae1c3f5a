// The per-call side of a caching policy (harness/policies/policy.h has the settings side, torch-free):
// one generation's state, asked per model call what the call computes and told what it did.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>

#include "harness/policies/policy.h"
#include "models/unet_call.h"

namespace dc::harness::policies {

class Policy {
 public:
  virtual ~Policy() = default;
  // A new generation of `batch` samples (the UNet's batch: doubled under classifier-free guidance)
  // starts; the StageCache has been reset.
  virtual void begin(int64_t /*batch*/) {}
  // What model call `call` (0 = the noisiest) computes. x is the UNet's input, t its timesteps. A
  // modifier's (PolicyType::modifier) is the plain call, modified.
  virtual models::CallRequest decide(int call, const torch::Tensor& t, const torch::Tensor& x) {
    models::CallRequest r;
    modify(call, t, x, r);
    return r;
  }
  // A modifier's change to the request the policy before it decided (composite.cpp).
  virtual void modify(int /*call*/, const torch::Tensor& /*t*/, const torch::Tensor& /*x*/, models::CallRequest& /*request*/) {}
  // After the call: the stages it computed and the outputs the request asked to observe; `cache`
  // holds what this generation's calls stored.
  virtual void observe(int /*call*/, const models::CallRecord& /*record*/, const models::StageCache& /*cache*/) {}
};

}  // namespace dc::harness::policies
