#include "harness/run/batch_sampler.h"

#include <chrono>

#include "common/image_io.h"
#include "harness/runtime.h"
#include "harness/sampling/samplers.h"

namespace dc::harness {

Sampled BatchSampler::sample(int64_t start, int64_t b, NoiseSource& noise, bool tap) {
  Sampled out;
  const int calls = p_.schedule.num_calls();
  if (tap) p_.log->trace = p_.taps.arm(b);
  noise.prepare(start);  // the released stream's set-up, before the clock starts
  p_.timer.start_batch(calls);
  double tap_seconds = 0.0;
  device_sync(p_.device);
  const auto t0 = std::chrono::steady_clock::now();
  const NoiseSource::Draw draw = noise.draw(start, b);
  const Conditioner::Batch c = p_.conditioner.make(start, b, draw.labels);
  out.labels = c.labels;
  out.prompts = c.prompts;
  p_.log->is_full.clear();
  const sampling::EpsFn guided = sampling::classifier_free_guidance(p_.denoiser, c.cond, c.uncond, p_.conditioner.guidance());
  const sampling::EpsFn timed = [&](const torch::Tensor& x, const torch::Tensor& t, int call) {
    p_.timer.begin(call);
    torch::Tensor eps = guided(x, t, call);
    p_.timer.end(call);
    if (on_call_) on_call_(call);
    if (p_.log->trace) tap_seconds += p_.taps.collect(b);
    return eps;
  };
  const auto tr = sampling::sample(draw.x_T, p_.schedule, timed, draw.step, false);
  noise.end_batch();
  p_.log->trace = nullptr;
  // uint8 as torchvision's save_image rounds, or (paper mode) as generate.py truncates.
  const torch::Tensor decoded = p_.model.to_images(tr.final);
  out.images = (p_.spec.samples.seed_mode == "paper" ? image::to_uint8_truncated(decoded) : image::to_uint8(decoded)).cpu();
  device_sync(p_.device);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() - tap_seconds;
  out.step_ms = p_.timer.finish_batch();
  out.is_full = p_.log->is_full;
  out.computed = p_.log->computed;
  return out;
}

}  // namespace dc::harness
