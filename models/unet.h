// The interface every UNet family implements (DESIGN.md §3): one forward with conditioning and
// DeepCache's per-call cache request, the number of skips S, the tap names, the sample shape.
// MACs are traced through the same forward (models/trace.h: Trace::count_macs), so the counter
// in metrics/macs works for every family. The denoiser, runner, `sample`, `macs`, `plan --macs`
// and the benches see only this interface (and the registry's bundle, models/model.h).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/deepcache_io.h"
#include "models/trace.h"

namespace dc::models {

class UNet : public torch::nn::Module {
 public:
  // eps = UNet(x, t, cond).
  //   x:    [B, sample_shape...] (pixels for DDPM, latents for LDM/SD)
  //   t:    [B] timesteps (float or integer)
  //   cond: the family's conditioning, undefined for unconditional models (class labels [B]
  //         int64 for LDM-4-G, text context [B, L, D] for SD)
  //   cache_request == nullptr: the plain network. Otherwise a full call fills `cache` at skip
  //   index k, a partial call reads it (models/deepcache_io.h). `trace` may be null.
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond,
                                const deepcache::CacheRequest* cache_request, deepcache::FeatureCache* cache,
                                Trace* trace) = 0;
  // S: the number of skip tensors hs[0..S-1]; DeepCache's skip index k is in [0, S-1].
  virtual int num_skips() const = 0;
  // Names of the blocks whose outputs can be tapped for similarity maps (every up block, in
  // execution order); any of them is valid in `similarity.taps`.
  virtual std::vector<std::string> tap_names() const = 0;
  // [C, H, W] of one sample as the sampler sees it.
  virtual std::vector<int64_t> sample_shape() const = 0;
  // A conditioning for `batch` samples, for MAC counting, warm-up and benches (undefined for
  // unconditional models).
  virtual torch::Tensor example_conditioning(int64_t /*batch*/, const torch::TensorOptions& /*options*/) const {
    return {};
  }
};

}  // namespace dc::models
