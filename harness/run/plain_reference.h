// The uncached ("plain") samples a cached run's fidelity metric (metrics.fidelity: PSNR and SSIM,
// metrics/fidelity.h) compares with: the same model, sampler, samples and conditioning without a
// caching policy, image for image. Read from the run's results file when the plain run is complete
// there with its images (samples.save_images) over this run's slice; else each batch is sampled
// again under the plain network from the same noise, untimed (the run's note says which).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "harness/config.h"
#include "harness/run/batch_sampler.h"

namespace dc::harness {

class PlainReference {
 public:
  // nullptr when the run needs none (no fidelity metric, or the run is plain itself). `parts`: the
  // run's sampling parts (their denoiser and log are replaced by the plain network's).
  static std::unique_ptr<PlainReference> make(const RunSpec& spec, int64_t first, int64_t total, BatchSampler::Parts parts,
                                              const NoiseSource& noise);
  // uint8 [b, C, H, W] of samples [start, start + b).
  torch::Tensor images(int64_t start, int64_t b);
  // "the stored plain run <key>" or "sampled again without caching (...)".
  const std::string& source() const { return source_; }

 private:
  PlainReference(BatchSampler::Parts parts, const NoiseSource& noise);
  torch::Tensor stored_;  // [total, C, H, W] of samples [first_, first_ + total)
  int64_t first_ = 0;
  std::string source_;
  BatchSampler sampler_;
  NoiseSource noise_;
};

// The stored plain run a cached run's fidelity compares with: the key of a complete uncached run in
// `path` with the same model, sampler, samples (seed and seed rules) and conditioning, whose stored
// images cover [first, first + total); "" when there is none.
std::string find_plain_run(const std::string& path, const RunSpec& spec, int64_t first, int64_t total);

}  // namespace dc::harness
