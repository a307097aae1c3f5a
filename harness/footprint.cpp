#include "harness/footprint.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <tuple>

#include "common/memory_peak.h"
#include "harness/quality.h"

namespace dc::harness {

namespace {
double module_bytes(const torch::nn::Module* m) {
  if (!m) return 0.0;
  double b = 0.0;
  for (const auto& p : m->parameters()) b += static_cast<double>(p.numel()) * 4.0;
  for (const auto& p : m->buffers()) b += static_cast<double>(p.numel()) * 4.0;
  return b;
}
double tensors_bytes(const std::map<std::string, torch::Tensor>& ts) {
  double b = 0.0;
  for (const auto& [k, t] : ts) b += static_cast<double>(t.numel()) * static_cast<double>(t.element_size());
  return b;
}
}  // namespace

namespace {
// The peak of `work` at batch 1 and 2: what grows with the batch and what does not (weight
// transforms, workspaces: at batch 1 they can be most of the peak).
// With `largest_batch` 1 the batch-1 peak is all (no second call).
std::pair<double, double> per_image_and_fixed(const std::function<void(int64_t)>& work, int64_t largest_batch) {
  double peak[2] = {0, 0};
  for (int64_t b : {1, 2}) {
    if (b > largest_batch) return {peak[0], 0.0};
    const MemoryPeak p;
    work(b);
    peak[b - 1] = static_cast<double>(p.bytes());
  }
  const double per_image = peak[1] > peak[0] ? peak[1] - peak[0] : peak[0];
  return {per_image, std::max(peak[0] - per_image, 0.0)};
}
}  // namespace

ModelMemory measure_model_memory(const models::Model& m, std::optional<metrics::StageMacs>& macs, int64_t largest_batch) {
  ModelMemory out;
  out.model_bytes = module_bytes(m.unet.get()) + module_bytes(m.first_stage.get()) + module_bytes(m.cond_stage.get());
  torch::NoGradGuard no_grad;
  m.unet->to(torch::kCPU, torch::kFloat);
  std::vector<int64_t> shape = m.unet->sample_shape();
  shape.insert(shape.begin(), 1);
  auto call = [&](int64_t b) {
    if (b == 1) {
      macs = metrics::stage_macs(*m.unet);  // the run's MAC count, made here once
      return;
    }
    shape[0] = b;
    const auto opts = m.unet->parameters().front().options();
    (void)m.unet->forward(torch::zeros(shape, opts), torch::full({b}, 500.0f, opts), m.unet->example_conditioning(b, opts), nullptr, nullptr,
                          nullptr);
  };
  std::tie(out.call_bytes_per_image, out.call_fixed_bytes) = per_image_and_fixed(call, largest_batch);
  if (m.first_stage) {
    m.first_stage->to(torch::kCPU, torch::kFloat);
    const auto [per_image, fixed] = per_image_and_fixed([&](int64_t b) {
      shape[0] = b;
      (void)m.to_images(torch::zeros(shape));
    }, largest_batch);
    out.call_bytes_per_image = std::max(out.call_bytes_per_image, per_image);
    out.call_fixed_bytes = std::max(out.call_fixed_bytes, fixed);
  }
  return out;
}

MetricMemory measure_metric_memory(const RunSpec& spec, const torch::Device& device, const std::string& prompts_file) {
  MetricMemory out;
  std::optional<MemoryPeak> peak;
  peak.emplace();
  RunQuality quality(spec, device, prompts_file);
  out.model_bytes = static_cast<double>(peak->bytes());
  if (quality.empty()) return out;
  std::vector<int64_t> shape = spec.plan.model.image_shape;
  double peaks[2] = {0, 0}, records[2] = {0, 0};
  for (int64_t n : {1, 2}) {
    if (n > std::max<int64_t>(1, std::min<int64_t>(spec.samples.batch, spec.samples.n))) {
      peaks[1] = 2 * peaks[0], records[1] = 2 * records[0];  // a batch of 1: the one measurement is per image
      break;
    }
    shape.insert(shape.begin(), n);
    const torch::Tensor images = torch::zeros(shape, torch::kUInt8);
    shape.erase(shape.begin());
    peak.emplace();
    const auto inputs = quality.measure(images, std::vector<std::string>(static_cast<std::size_t>(n), "a photo"),
                                        quality.needs_plain() ? images : torch::Tensor());  // fidelity: its arithmetic, on any images
    peaks[n - 1] = static_cast<double>(peak->bytes());
    records[n - 1] = tensors_bytes(inputs);
  }
  out.bytes_per_image = peaks[1] > peaks[0] ? peaks[1] - peaks[0] : peaks[0];
  const double slope = std::max(records[1] - records[0], 0.0), per_batch = std::max(records[0] - slope, 0.0);
  out.record_bytes_per_sample = slope + per_batch / static_cast<double>(std::max<int64_t>(spec.samples.batch, 1));
  return out;
}

}  // namespace dc::harness
