// One batch of a run sampled and timed: samples [start, start + b) from their noise to uint8 images,
// the clock running from the noise draw (the text encoder included) to the images on the host,
// device-synchronised; per-call times from the CallTimer; on the first batch, the similarity taps'
// features (their copying left out of the time). The batch loop (harness/runner.cpp) commits what
// comes back; timing.repeats samples the first batch again through the same object.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "harness/call_timer.h"
#include "harness/config.h"
#include "harness/denoiser.h"
#include "harness/run/conditioner.h"
#include "harness/run/noise_source.h"
#include "harness/run/tap_collector.h"
#include "harness/sampling/call_schedule.h"
#include "models/model.h"

namespace dc::harness {

struct Sampled {
  torch::Tensor images, labels;  // uint8 [b, C, H, W] on the CPU; labels: class-conditional families only
  std::vector<std::string> prompts;
  double seconds = 0.0;
  std::vector<double> step_ms;                 // per model call
  std::vector<int> is_full;                    // per model call
  std::vector<std::vector<uint8_t>> computed;  // per model call: the stages it computed
};

class BatchSampler {
 public:
  struct Parts {
    const RunSpec& spec;
    const models::Model& model;
    const sampling::CallSchedule& schedule;  // with its alphas attached
    const Conditioner& conditioner;
    sampling::CondEpsFn denoiser;            // harness/denoiser.h, logging into `log`
    std::shared_ptr<DenoiserLog> log;
    CallTimer& timer;
    TapCollector& taps;
    torch::Device device;
  };
  explicit BatchSampler(Parts parts) : p_(std::move(parts)) {}
  // Progress within a batch: called after each model call (nullptr: none).
  void on_call(std::function<void(int)> f) { on_call_ = std::move(f); }
  // `tap`: collect the similarity taps' features on this batch.
  Sampled sample(int64_t start, int64_t b, NoiseSource& noise, bool tap = false);

 private:
  Parts p_;
  std::function<void(int)> on_call_;
};

}  // namespace dc::harness
