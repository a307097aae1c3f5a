// Where a batch's noise comes from, per `samples.seed_mode` (docs/experiments.md): per_sample (sample
// i's own generator from (seed, i): any batch size, any shards), paper (the released SD script:
// manual_seed(seed) before every batch) or released (the released LDM script's stream, with its class
// labels; harness/sampling/released_stream.h). One object per sampling of a run; the repeats of
// timing.repeats take a fresh() one, so they draw the first batch's noise again.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "harness/config.h"
#include "harness/sampling/released_stream.h"
#include "harness/sampling/samplers.h"
#include "models/model.h"

namespace dc::harness {

class NoiseSource {
 public:
  NoiseSource(const RunSpec& spec, const models::Model& model, int calls, const torch::Device& device);

  struct Draw {
    torch::Tensor x_T;           // [b, sample shape] on the device
    sampling::NoiseFn step;      // the sampler's per-step draws
    torch::Tensor labels;        // released: the stream's class labels (int64, on the CPU); else undefined
  };
  // Set-up ahead of the clock (the released stream's seeding and fast-forward); then draw() inside
  // the batch's time, and end_batch() after its sampling.
  void prepare(int64_t start);
  Draw draw(int64_t start, int64_t b);
  void end_batch();
  // The same source from its beginning (the released stream made again).
  NoiseSource fresh() const;

 private:
  std::string mode_;
  uint64_t seed_ = 0;
  int64_t batch_ = 1;
  std::vector<int64_t> sample_shape_;
  torch::Device device_;
  std::optional<sampling::ReleasedStreamConfig> released_config_;
  std::shared_ptr<sampling::ReleasedStream> released_;
};

}  // namespace dc::harness
