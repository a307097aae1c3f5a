// Each caching policy's own per-call cost next to the UNet call it may save. BM_PolicyOverhead/
// <family>/<preset>/<batch>/<setting> runs generations of 20 model calls (DDIM-20 timesteps; the
// input moves by the output like a sampler step) under the policy, and times apart what the policy
// does per call (decide, observe, the gate's measurement inside a call, TaylorSeer's forecast) and
// the UNet calls. Counters: policy_ms_per_call, full_call_ms (a full call at this batch, timed in
// the same run), overhead = policy_ms_per_call / full_call_ms (the measurement must cost little next
// to the call it saves), and calls_computing_all (the share of calls that ran the whole UNet).
// Calibrating policies are given a calibration (all ratios 1, all changes 0.1), so no calibration
// run is timed. Random weights: the decisions mean nothing, the costs do.
#include <benchmark/benchmark.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_device.h"
#include "harness/config.h"
#include "harness/policies/policy_state.h"
#include "harness/runtime.h"
#include "models/model.h"
#include "models/registry.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kCalls = 20;

struct Setting {
  std::string name, cache;  // the run's cache block (flow YAML, without enabled)
};

std::vector<Setting> settings(int stages) {
  std::string changes = "[";
  for (int c = 0; c < kCalls; ++c) {
    changes += c ? ", [" : "[";
    for (int s = 0; s < stages; ++s) changes += s ? ", 0.1" : "0.1";
    changes += "]";
  }
  changes += "]";
  std::string ratios = "[";
  for (int c = 0; c < kCalls; ++c) ratios += c ? ", 1.0" : "1.0";
  ratios += "]";
  return {{"deepcache_N5", "k: 1, interval: 5"},
          {"deepcache_gate", "k: 1, gate: 0.08, gate_warmup: 2"},
          {"deepcache_taylorseer2", "policy: [deepcache, taylorseer], k: 1, interval: 5, order: 2"},
          {"step_skip_input_change", "policy: step_skip, indicator: input_change"},
          {"step_skip_first_block", "policy: step_skip, indicator: first_block"},
          {"step_skip_magnitude", "policy: step_skip, indicator: magnitude, calibration: " + ratios},
          {"step_skip_transformation_rate", "policy: step_skip, indicator: transformation_rate"},
          {"faster_diffusion", "policy: faster_diffusion"},
          {"block_cache", "policy: block_cache, delta: 0.3, calibration: " + changes}};
}

struct Bench {
  std::string family, preset;
  int64_t batch;
};

std::shared_ptr<const dc::harness::policies::PolicySettings> policy_of(const Bench& b, const Setting& s) {
  const std::string yaml = fmt::format(R"(experiment: overhead
base:
  model: {{family: {}, preset: {}, weights: random}}
  sampler: {{name: ddim, steps: {}, spacing: uniform}}
  cache: {{enabled: true, {}}}
)",
                                       b.family, b.preset, kCalls, s.cache);
  return dc::harness::parse_experiment(yaml, "overhead.yaml").runs.back().cache.settings;
}

void overhead(benchmark::State& state, const Bench& b, const Setting& setting) {
  torch::NoGradGuard ng;
  dc::harness::configure_threads();
  static std::map<std::string, dc::models::Model> models;
  auto it = models.find(b.family + b.preset);
  if (it == models.end()) it = models.emplace(b.family + b.preset, dc::models::build_model(b.family, b.preset, "random")).first;
  auto& net = *it->second.unet;
  const torch::Device device = dc::bench::bench_device();
  net.to(device);
  const auto policy_settings = policy_of(b, setting);
  std::vector<int64_t> shape = it->second.info.sample_shape;
  shape.insert(shape.begin(), b.batch);
  const auto opts = torch::TensorOptions().device(device);
  const torch::Tensor x0 = torch::randn(shape, opts), cond = net.example_conditioning(b.batch, opts);
  // A full call's time at this batch, from the same loop's machine state.
  double full_ms = 0;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    net.forward(x0, torch::full({b.batch}, 500.0f, opts), cond, nullptr, nullptr, nullptr);
    dc::bench::sync(device);
    if (i > 0) full_ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / 2;
  }
  double policy_ms = 0;
  int64_t calls = 0, full_calls = 0;
  for (auto _ : state) {
    auto policy = policy_settings->make();
    dc::models::StageCache cache;
    torch::Tensor x = x0;
    policy->begin(b.batch);
    for (int c = 0; c < kCalls; ++c) {
      const torch::Tensor t = torch::full({b.batch}, 999.0f - 50.0f * c, opts);
      auto t0 = Clock::now();
      dc::models::CallRequest req = policy->decide(c, t, x);
      policy_ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (req.gate) {  // the gate's measurement is the policy's too
        auto rule = req.gate->reuse;
        req.gate->reuse = [&policy_ms, rule](const torch::Tensor& h, const std::vector<torch::Tensor>& hs) {
          const auto g0 = Clock::now();
          const bool r = rule(h, hs);
          policy_ms += std::chrono::duration<double, std::milli>(Clock::now() - g0).count();
          return r;
        };
      }
      dc::models::CallRecord record;
      const torch::Tensor eps = net.forward(x, t, cond, &req, &cache, nullptr, &record);
      dc::bench::sync(device);
      t0 = Clock::now();
      policy->observe(c, record, cache);
      dc::bench::sync(device);
      policy_ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      full_calls += record.network && std::all_of(record.computed.begin(), record.computed.end(), [](uint8_t v) { return v == 1; });
      ++calls;
      x = x - 0.02 * eps;
    }
  }
  state.counters["policy_ms_per_call"] = policy_ms / static_cast<double>(calls);
  state.counters["full_call_ms"] = full_ms;
  state.counters["overhead"] = policy_ms / static_cast<double>(calls) / full_ms;
  state.counters["calls_computing_all"] = static_cast<double>(full_calls) / static_cast<double>(calls);
  state.SetLabel(dc::bench::device_label(device));
}

const bool kRegistered = [] {
  for (const Bench& b : {Bench{"ddpm", "fmnist", 125}, Bench{"ddpm", "cifar10", 8}}) {
    const int stages = dc::models::num_stages(dc::models::model_info(b.family, b.preset).num_skips);
    for (const Setting& s : settings(stages))
      benchmark::RegisterBenchmark(fmt::format("BM_PolicyOverhead/{}/{}/{}/{}", b.family, b.preset, b.batch, s.name).c_str(),
                                   [b, s](benchmark::State& st) { overhead(st, b, s); })
          ->Unit(benchmark::kMillisecond)
          ->Iterations(2);
  }
  return true;
}();

}  // namespace
