// Denoiser = UNet + caching policy + stage cache (+ taps): the epsilon function the sampler loop
// calls. Per model call it asks the policy (harness/policies) what the call computes, runs the UNet
// under that request (models::run_call, or its CUDA graph), tells the policy what the call did and
// logs it: the stages each call computed are the run's cost (MACs are counted from them). Family-
// and policy-agnostic. With classifier-free guidance (sampling::classifier_free_guidance around
// cond_denoiser) the cache holds the doubled batch.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "harness/policies/policy_state.h"
#include "harness/sampling/samplers.h"
#include "models/unet.h"
#include "models/unet_call.h"
#include "models/unet_graphs.h"

namespace dc::harness {

struct DenoiserLog {
  // One entry per model call of the current generation (cleared when its call 0 comes).
  std::vector<int> is_full;                   // 1: the call computed every stage (or ran uncached), else 0
  std::vector<std::vector<uint8_t>> computed;  // the stages it computed (models/unet_call.h ids; empty: skipped whole)
  std::vector<torch::Tensor> cached;          // the tensor a full call stored (when keep_cached)
  bool keep_cached = false;
  models::Trace* trace = nullptr;             // optional, passed to every call
};

// policy == nullptr: the plain network at every call. A fresh Policy (settings->make()) serves every
// generation: its begin() and the cache's reset come with call 0. `graphs` (model.cuda_graphs;
// models/unet_graphs.h): the calls replay CUDA graphs of `net`, except those with a trace (taps, MAC
// counting) and requests graphs do not serve, which run eagerly.
sampling::CondEpsFn cond_denoiser(std::shared_ptr<models::UNet> net, std::shared_ptr<const policies::PolicySettings> policy,
                                  std::shared_ptr<DenoiserLog> log = nullptr, std::shared_ptr<models::UNetGraphs> graphs = nullptr);
// An unconditional model (no conditioning tensor).
sampling::EpsFn denoiser(std::shared_ptr<models::UNet> net, std::shared_ptr<const policies::PolicySettings> policy,
                         std::shared_ptr<DenoiserLog> log = nullptr);

}  // namespace dc::harness
