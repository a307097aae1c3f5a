// The quality metrics a run computes while it samples (YAML `metrics:`): accumulators fed batch by
// batch (metrics/accumulators.h), so the images need not be kept. Their exact states are stored
// with the run (runs/<id>/state/<metric>/); the values are computed when the run holds all its
// samples (a shard stores states only; merging shards adds them exactly).
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness/config.h"
#include "harness/results_store.h"

namespace dc::harness {

class RunQuality {
 public:
  // Checks every input the metrics need (weights, reference statistics, image shape) before
  // anything is sampled: a dc::Error names the key and the file.
  // `prompts_file`: the run's prompt file (CLIP score's provenance), empty for a single prompt.
  RunQuality(const RunSpec& spec, const torch::Device& device, const std::string& prompts_file = "");
  ~RunQuality();
  bool empty() const;
  // The accumulators' inputs from images uint8 [B, C, H, W] (C = 1 or 3): the Inception's pool
  // features (`fid/features`, float32 [B, dims]) and logits (`inception_score/logits`), the
  // classifier's exact batch state (`fid_fmnist/<state>`), the CLIP scores of (image, prompt)
  // pairs (`clip_score/scores`, float64 [B]; `prompts` are the batch's). They are what a run's journal
  // stores per batch (harness/journal.h): applying the same inputs again gives the same exact state.
  // `plain`: the plain run's images of the same samples (metrics.fidelity: `fidelity/values`, [B, 2]
  // float64 per-image PSNR and SSIM; harness/run/plain_reference.h).
  std::map<std::string, torch::Tensor> measure(const torch::Tensor& images_u8, const std::vector<std::string>& prompts = {},
                                               const torch::Tensor& plain = {});
  // Whether measure() needs the plain run's images.
  bool needs_plain() const;
  // Adds the inputs of samples [first, first + B) to the accumulators.
  void apply(const std::map<std::string, torch::Tensor>& inputs, int64_t first);
  // Stores the states in r.metric_states; when `complete` (this process made every sample), also
  // the values in r.quality, their provenance, and the arrays (FID-FMNIST's class histogram).
  void finish(RunResult& r, bool complete) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The metric values of complete states (a merged run's): what finish() computes, from stored states,
// and the Frechet metrics' bootstrap intervals where <metric>_features states (the per-sample
// features shards keep) are present. Precision/recall's distances run on `device`.
void quality_from_states(const RunSpec& spec, RunResult& r, const torch::Device& device = torch::kCPU);

// Resamples of a Frechet metric's bootstrap interval at `dims` features: metrics.bootstrap, or (-1)
// 100 up to 256 features and none above (one Frechet distance per resample: seconds at 2048 dims).
int bootstrap_resamples(const MetricsSpec& m, int64_t dims);

}  // namespace dc::harness
