// The interface every UNet family implements (DESIGN.md §3, §4b): its stages (the embedding, the
// input blocks, the middle, the output blocks, the head), the number of skips S, the tap names, the
// sample shape. A call runs through models::run_call (models/unet_call.h), which executes the stages
// a CallRequest asks for: no family file knows about caching. MACs are traced through the same
// stages (models/trace.h: Trace::count_macs), so the counter in metrics/macs works for every family.
// The denoiser, runner, `sample`, `macs`, `plan --macs` and the benches see only this interface
// (and the registry's bundle, models/model.h).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/deepcache_io.h"
#include "models/trace.h"
#include "models/unet_call.h"

namespace dc::models {

class UNet : public torch::nn::Module {
 public:
  // What every stage of one call shares: the timestep embedding and the conditioning as the
  // blocks consume it (the cross-attention context; undefined for unconditional models).
  struct Embedding {
    torch::Tensor emb;
    torch::Tensor context;
  };

  // eps = UNet(x, t, cond), running the stages `request` asks for (nullptr: every stage; `cache`
  // may then be null).
  //   x:    [B, sample_shape...] (pixels for DDPM, latents for LDM/SD)
  //   t:    [B] timesteps (float or integer)
  //   cond: the family's conditioning, undefined for unconditional models (class labels [B]
  //         int64 for LDM-4-G, text context [B, L, D] for SD)
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond,
                        const CallRequest* request, StageCache* cache, Trace* trace, CallRecord* record = nullptr) {
    return run_call(*this, x, t, cond, request, cache, trace, record);
  }

  // ---- the stages (models/unet_call.h numbers them) ----
  // Checks x and cond, computes what the blocks share.
  virtual Embedding embed(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond, Trace* trace) = 0;
  // Input block j: h is x for j = 0, else hs[j-1]; returns hs[j].
  virtual torch::Tensor input_block(int j, const torch::Tensor& h, const Embedding& e, Trace* trace) = 0;
  virtual torch::Tensor middle(const torch::Tensor& h, const Embedding& e, Trace* trace) = 0;
  // Output block i on cat(h, skip) (skip = hs[S-1-i]), its upsampler included.
  virtual torch::Tensor output_block(int i, const torch::Tensor& h, const torch::Tensor& skip, const Embedding& e,
                                     Trace* trace) = 0;
  virtual torch::Tensor head(const torch::Tensor& h, Trace* trace) = 0;
  // The family's name of a stage ("down.0.block.1", "input_blocks.4", "mid", "output_blocks.2").
  virtual std::string stage_name(int stage) const = 0;

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
