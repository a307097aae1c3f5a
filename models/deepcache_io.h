// What a model sees of DeepCache (DESIGN.md §3-4): the per-call cache request, the feature cache a
// full call fills and partial calls read, and the skip-index convention with its translations.
// The policy (which calls are full: uniform, non-uniform, explicit) lives in harness/deepcache;
// this header is below models/ so that no model includes harness/.
//
// One convention for where DeepCache caches: the skip index k (DESIGN.md §4).
// The UNet pushes skip tensors hs[0..S-1] in forward order: hs[0] is the conv_in output, then one
// per down ResBlock (+ its attention), one per downsampler. Caching at k means a partial step
// computes hs[0..k], takes the cached main-branch tensor that enters the up block consuming hs[k],
// and runs the up path from there to the output head. Every k in [0, S-1] is valid.
//
// Other numberings, translated at the edges:
//   paper branch m             = k + 1           (Table 12 numbers branches 1..S)
//   DDPM code --branch b       : k = b + 1       (b in [0, S-2]; k = 0 is not selectable there)
//   SD code (layer L, block B) : k = 3L + B + 1
//   pip plug-in cache_branch_id b : k = b
//   LDM code                   : k = 0 only
#pragma once
#include <torch/torch.h>

#include <fmt/format.h>

#include <vector>

#include "common/error.h"

namespace dc::deepcache {

// ---- the skip index k ---------------------------------------------------------------------------
inline int paper_branch_from_k(int k) { return k + 1; }
inline int k_from_paper_branch(int m) { return m - 1; }
inline int k_from_ddpm_branch(int b) { return b + 1; }
inline int ddpm_branch_from_k(int k) { return k - 1; }  // -1 for k = 0: the DDPM code cannot express it
inline int k_from_sd_layer_block(int layer, int block) { return 3 * layer + block + 1; }
inline int k_from_plugin_branch(int b) { return b; }

inline void check_skip_index(int k, int num_skips, const char* model) {
  if (k < 0 || k >= num_skips)
    throw Error(fmt::format("skip index k={} is out of range for {}: valid k are 0..{} (paper branch m = k+1 "
                            "in 1..{})", k, model, num_skips - 1, num_skips));
}

// ---- the cache ------------------------------------------------------------------------------------
// What one model call does with the cache: a full call (partial == false) runs the whole UNet and
// stores the main-branch tensor entering the up block that consumes hs[k]; a partial call runs
// hs[0..k] and the up path from that block, starting from the stored tensor.
struct CacheRequest {
  int skip_index = 0;
  bool partial = false;
  // The released LDM code's own pass (DeepCache experiments/ldm openaimodel.py, `replicate_layer`
  // = skip_index): a full call keeps every output block's output (prv_f); a partial call runs
  // input blocks 0..L and output blocks S-1-L..S-1, each fed cat([prv_f[i-1], hs.pop()]) instead of
  // the chained h. Only the CompVis UNet has it; its output equals k = 0's for every L.
  bool ldm_released = false;
};

class FeatureCache {
 public:
  // Called at the start of every generation.
  void reset() {
    feature_ = torch::Tensor();
    outputs_.clear();
    skip_index_ = -1;
  }
  void store(int skip_index, torch::Tensor feature) {
    feature_ = std::move(feature);
    skip_index_ = skip_index;
    ++fills_;
  }
  // The stored tensor for a partial call at k with the given batch size. Throws dc::Error when
  // no full call has filled the cache, or it was filled for another k or batch.
  const torch::Tensor& get(int skip_index, int64_t batch) const {
    if (!feature_.defined())
      throw Error("DeepCache: a partial step came before any full step filled the cache (the full-step list must "
                  "start with step 0)");
    if (skip_index != skip_index_)
      throw Error(fmt::format("DeepCache: the cache holds skip index k={}, a partial step asked for k={}", skip_index_,
                              skip_index));
    if (feature_.size(0) != batch)
      throw Error(fmt::format("DeepCache: the cache holds a batch of {}, a partial step has {}", feature_.size(0), batch));
    return feature_;
  }
  bool filled() const { return feature_.defined(); }
  // The released LDM pass: every output block's output of the last full call (prv_f).
  void store_all(int skip_index, std::vector<torch::Tensor> outputs) {
    outputs_ = std::move(outputs);
    skip_index_ = skip_index;
    feature_ = outputs_.empty() ? torch::Tensor() : outputs_.back();
    ++fills_;
  }
  const torch::Tensor& output(std::size_t i) const {
    if (i >= outputs_.size())
      throw Error(fmt::format("DeepCache (released LDM pass): no stored output of output block {} (a full call keeps {})", i,
                              outputs_.size()));
    return outputs_[i];
  }
  // The ablation without reuse (paper Table 5): what partial calls read becomes zeros of the same shape.
  void zero_out() {
    if (feature_.defined()) feature_ = torch::zeros_like(feature_);
  }
  int64_t fills() const { return fills_; }

 private:
  torch::Tensor feature_;
  std::vector<torch::Tensor> outputs_;
  int skip_index_ = -1;
  int64_t fills_ = 0;
};

}  // namespace dc::deepcache
