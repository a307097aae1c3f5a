// Generate images with a DDPM-family model, with or without DeepCache: the work behind
// `deepcache-bench sample --model ddpm` (and, later, one run of an experiment).
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "harness/deepcache/full_steps.h"

namespace dc::harness {

struct DdpmSampleOptions {
  std::string preset = "cifar10";
  std::string weights = "random";  // a safetensors file, or "random" (untrained: images are noise)
  std::string sampler = "ddim";    // "ddim" (ddim repo generalized steps) or "ddpm" (ancestral)
  int steps = 100;
  std::string spacing = "quad";    // "uniform" or "quad" (the ddim repo's skip types)
  double eta = 0.0;                // ddim only
  std::optional<int> cache_k;      // DeepCache skip index; none = no caching
  int interval = 1;                // N
  std::optional<std::pair<int, double>> nonuniform;  // (center, power)
  int n = 16;
  int batch = 16;
  uint64_t seed = 0;
  std::string device = "cpu";
};

struct DdpmSampleResult {
  torch::Tensor images;  // [n, C, H, W] uint8
  std::optional<deepcache::CachePlan> plan;
  int model_calls = 0;        // per generation
  int full_calls = 0;
  double seconds = 0.0;       // sampling wall time (device-synchronised)
  double macs_full = 0.0;     // per image per call
  double macs_partial = 0.0;  // 0 without caching
  double macs_step_average = 0.0;
  std::string weights_note;   // "random init (untrained)" or the file
};

// Throws dc::Error with a clear message for every invalid option (unknown preset, k out of
// range, N < 1, impossible non-uniform schedule, missing weights file...).
DdpmSampleResult ddpm_sample(const DdpmSampleOptions& options);

}  // namespace dc::harness
