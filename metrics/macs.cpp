#include "metrics/macs.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/error.h"
#include "models/unet_call.h"

namespace dc::metrics {

namespace {
// One image, as the paper counts: x, t = 500 and the model's example conditioning at batch 1.
struct OneImage {
  torch::Tensor x, t, cond;
};
OneImage one_image(models::UNet& net) {
  const auto p = net.parameters().front();
  std::vector<int64_t> shape = net.sample_shape();
  shape.insert(shape.begin(), 1);
  return {torch::zeros(shape, p.options()), torch::full({1}, 500.0f, p.options().dtype(torch::kFloat32)),
          net.example_conditioning(1, p.options())};
}
}  // namespace

CallMacs call_macs(models::UNet& net, int partial_k) {
  torch::NoGradGuard no_grad;
  const OneImage in = one_image(net);
  models::Trace trace;
  trace.count_macs = true;
  if (partial_k < 0) {
    net.forward(in.x, in.t, in.cond, nullptr, nullptr, &trace);
  } else {
    models::StageCache cache;
    const models::CallRequest full = models::deepcache_request(net.num_skips(), partial_k, false);
    const models::CallRequest partial = models::deepcache_request(net.num_skips(), partial_k, true);
    net.forward(in.x, in.t, in.cond, &full, &cache, nullptr);
    net.forward(in.x, in.t, in.cond, &partial, &cache, &trace);
  }
  return {trace.macs, trace.macs_all, trace.macs_by_block};
}

StageMacs stage_macs(models::UNet& net) {
  torch::NoGradGuard no_grad;
  const OneImage in = one_image(net);
  models::Trace trace;
  trace.count_macs = true;
  models::CallRecord record;
  net.forward(in.x, in.t, in.cond, nullptr, nullptr, &trace, &record);
  StageMacs m;
  m.stage = record.stage_macs;
  m.stage_all = record.stage_macs_all;
  m.fixed = record.embed_macs + record.head_macs;
  m.fixed_all = record.embed_macs_all + record.head_macs_all;
  return m;
}

CallMacs StageMacs::of(const std::vector<uint8_t>& computed, bool network) const {
  CallMacs c;
  if (!network) return c;
  if (computed.size() != stage.size())
    throw Error(fmt::format("MACs of a call: {} stage flags for a UNet of {} stages", computed.size(), stage.size()));
  c.total = fixed;
  c.all = fixed_all;
  for (std::size_t s = 0; s < stage.size(); ++s)
    if (computed[s]) c.total += stage[s], c.all += stage_all[s];
  return c;
}

MacsTable macs_table(models::UNet& net) { return macs_table(stage_macs(net)); }

MacsTable macs_table(const StageMacs& stages) {
  MacsTable m;
  const CallMacs full = stages.full();
  m.full = full.total;
  m.full_all = full.all;
  for (int k = 0; k < stages.num_skips(); ++k) {
    const models::CallPlan plan = models::deepcache_plan(stages.num_skips(), k, true);
    const CallMacs part = stages.of(&plan);
    m.partial.push_back(part.total);
    m.partial_all.push_back(part.all);
  }
  return m;
}

double step_average_macs(double full, double partial, const std::vector<int>& full_steps, int num_calls) {
  if (num_calls <= 0) return 0.0;
  const auto n_full = std::count_if(full_steps.begin(), full_steps.end(), [&](int s) { return s >= 0 && s < num_calls; });
  return (static_cast<double>(n_full) * full + static_cast<double>(num_calls - n_full) * partial) / num_calls;
}

}  // namespace dc::metrics
