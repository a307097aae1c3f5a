// Denoiser = UNet + DeepCache plan + feature cache (+ taps): the epsilon function the sampler loop
// calls, deciding per model call whether it is full or partial. The only place, with
// harness/deepcache/full_steps, where the caching policy is applied. Family-agnostic: it sees
// the UNet only through models::UNet. With classifier-free guidance (sampling::
// classifier_free_guidance around cond_denoiser) the cache holds the doubled batch.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "harness/deepcache/full_steps.h"
#include "harness/sampling/samplers.h"
#include "models/deepcache_io.h"
#include "models/unet.h"
#include "models/unet_graphs.h"

namespace dc::harness {

struct DenoiserLog {
  std::vector<int> is_full;                  // one per model call: 1 full (or uncached), 0 partial
  std::vector<torch::Tensor> cached;         // the tensor stored at each full call (when keep_cached)
  bool keep_cached = false;
  models::Trace* trace = nullptr;            // optional, passed to every call
};

// plan == nullptr: the plain network at every call. The cache is reset when call 0 comes, so one
// denoiser serves many generations. `graphs` (model.cuda_graphs; models/unet_graphs.h): the calls
// replay CUDA graphs of `net`, except those with a trace (taps, MAC counting), which run eagerly.
sampling::CondEpsFn cond_denoiser(std::shared_ptr<models::UNet> net, std::shared_ptr<const deepcache::CachePlan> plan,
                                  std::shared_ptr<DenoiserLog> log = nullptr, std::shared_ptr<models::UNetGraphs> graphs = nullptr);
// An unconditional model (no conditioning tensor).
sampling::EpsFn denoiser(std::shared_ptr<models::UNet> net, std::shared_ptr<const deepcache::CachePlan> plan,
                         std::shared_ptr<DenoiserLog> log = nullptr);

}  // namespace dc::harness
