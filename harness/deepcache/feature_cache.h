// The tensor DeepCache carries from a full step to the partial steps after it.
#pragma once
#include <torch/torch.h>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::deepcache {

// What one model call does with the cache: a full call (partial == false) runs the whole UNet and
// stores the main-branch tensor entering the up block that consumes hs[k]; a partial call runs
// hs[0..k] and the up path from that block, starting from the stored tensor.
struct CacheRequest {
  int skip_index = 0;
  bool partial = false;
};

class FeatureCache {
 public:
  // Called at the start of every generation.
  void reset() {
    feature_ = torch::Tensor();
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
  int64_t fills() const { return fills_; }

 private:
  torch::Tensor feature_;
  int skip_index_ = -1;
  int64_t fills_ = 0;
};

}  // namespace dc::deepcache
