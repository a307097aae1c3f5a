// The deepcache policy made from code (its YAML is read by the registry entry, deepcache.cpp): for
// tests and programs that drive the denoiser without an experiment.
#pragma once
#include <memory>
#include <vector>

#include "harness/policies/policy.h"

namespace dc::harness::policies {

struct DeepCacheOptions {
  int num_skips = 0;            // S of the UNet
  int k = 0;                    // skip index
  std::vector<int> full_calls;  // sorted model-call indices that run the whole UNet (0 among them)
  int num_calls = 0;            // calls of one generation (schedule())
  bool zero_feature = false;    // the paper's Table 5 ablation
  bool ldm_released = false;    // the released LDM code's pass (k = its replicate_layer)
};
std::shared_ptr<const PolicySettings> deepcache_settings(const DeepCacheOptions& options);

}  // namespace dc::harness::policies
