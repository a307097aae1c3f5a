// Measuring what a run will need (harness/resources.h) before it samples: the model's bytes and the
// peak of a full call and a decode at batch 1 and 2, and the metric networks' weights, peak and
// per-sample inputs on one and two images. Part of `run`'s check before the first sample.
#pragma once
#include <optional>
#include <torch/torch.h>

#include <map>
#include <string>

#include "harness/config.h"
#include "metrics/macs.h"
#include "models/model.h"

namespace dc::harness {

struct ModelMemory {
  double model_bytes = 0.0;           // parameters and buffers of every stage, fp32
  double call_bytes_per_image = 0.0;  // peak of a full call or a decode per image (batch 2 less batch 1), fp32
  double call_fixed_bytes = 0.0;      // and what does not grow with the batch
};
// Runs the full call at batch 1 and 2 on the CPU in fp32 with its MACs counted (at batch 1: the per-stage
// count stored in `macs`, as the run's MAC count would make it: no call is spent twice) and, for latent families, a decode;
// at batch 1 only when no run of the model makes larger batches (`largest_batch` 1: the smoke runs).
ModelMemory measure_model_memory(const models::Model& m, std::optional<metrics::StageMacs>& macs, int64_t largest_batch);

struct MetricMemory {
  double model_bytes = 0.0, bytes_per_image = 0.0, record_bytes_per_sample = 0.0;
};
// Builds the run's metrics (RunQuality: every input checked, a dc::Error naming it) and measures
// them on one and two blank images.
MetricMemory measure_metric_memory(const RunSpec& spec, const torch::Device& device, const std::string& prompts_file);

}  // namespace dc::harness
