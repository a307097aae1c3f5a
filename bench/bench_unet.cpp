// Full vs partial UNet call of every model in the table below (random init, full size), at each
// batch and skip index k listed: the time ratio full/partial is reported next to the MAC ratio in
// the same run. BM_UNetFullOverPartial/<family>/<preset>/batch/k times a full and a partial call
// alternately in one loop and reports time_ratio = full/partial, mac_ratio (the MACs as the paper
// counts them), bound (every multiply-accumulate, attention matmuls included: metrics/macs.h) and
// of_bound = time_ratio / bound, the fraction of the bound a partial call reaches (1: as fast as
// its multiply-accumulates allow; above 1: cheaper than direct arithmetic, e.g. Winograd in the
// layers a partial call keeps; docs/performance.md). BM_UNetCall times one
// kind of call alone (k = -1: a full call). For SD at batch 2 (one image with guidance) it also
// reports PLMS-50's UNet seconds per image, plain and at N = 5, from the measured means.
// Models come from the registry (models/model.h); DEEPCACHE_BENCH_MODELS=family/preset,... selects
// some of the table. DEEPCACHE_BENCH_DEVICE=cuda runs them on the GPU (every timed call is
// followed by a device synchronisation, so the times are the calls' real durations);
// DEEPCACHE_BENCH_GRAPHS=1 (with cuda) replays each kind of call from a CUDA graph
// (models/unet_graphs.h, captured before the timed loop).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>

#include "bench/bench_device.h"
#include "harness/runtime.h"
#include "metrics/macs.h"
#include "models/deepcache_io.h"
#include "models/model.h"
#include "models/unet_graphs.h"

namespace {

struct BenchModel {
  std::string family, preset;
  std::vector<int64_t> batches;
  std::vector<int> ks;
  int64_t paper_batch;  // UNet rows of the paper's generation batch (SD: 4 images x 2 for guidance)
};

// The paper's settings and the ends of each UNet: DDPM k = 2 (Table 2), LDM-4-G k = 0, SD1.5 k = 1
// (SD code layer 0, block 0) on 64x64 latents, batch 2 being one image with classifier-free guidance.
const std::vector<BenchModel>& table() {
  static const std::vector<BenchModel> t = {
      {"ddpm", "fmnist", {1, 8, 128}, {1, 3}, 128},  // the quick start's model, k and batch
      {"ddpm", "cifar10", {1, 8, 64}, {0, 2, 5, 11}, 200},
      {"ldm", "cin256_v2", {1, 8}, {0, 2, 5}, 16},
      {"sd", "sd15", {1, 2}, {0, 1, 3}, 8},
  };
  return t;
}

struct Loaded {
  dc::models::Model model;
  dc::metrics::MacsTable macs;
  torch::Device device{torch::kCPU};
  torch::ScalarType dtype = torch::kFloat;
  std::unique_ptr<dc::models::UNetGraphs> graphs;  // DEEPCACHE_BENCH_GRAPHS=1
  std::string label;
  // One call of the UNet: replayed from its graph, or eager.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond,
                        const dc::models::CallRequest* req, dc::models::StageCache* cache) {
    return graphs ? graphs->forward(x, t, cond, req, cache) : model.unet->forward(x, t, cond, req, cache, nullptr);
  }
};

Loaded& loaded(const std::string& family, const std::string& preset) {
  static std::map<std::string, std::unique_ptr<Loaded>> cache;
  auto& slot = cache[family + "/" + preset];
  if (!slot) {
    dc::harness::configure_threads();
    slot = std::make_unique<Loaded>();
    slot->model = dc::models::build_model(family, preset, "random");
    slot->macs = dc::metrics::macs_table(*slot->model.unet);
    slot->device = dc::bench::bench_device();
    slot->dtype = dc::bench::bench_dtype(slot->device);
    slot->model.unet->to(slot->device, slot->dtype);
    slot->label = dc::bench::device_label(slot->device) + " " + dc::bench::dtype_name(slot->dtype);
    if (dc::bench::bench_graphs(slot->device)) {
      slot->graphs = std::make_unique<dc::models::UNetGraphs>(slot->model.unet);
      slot->label += " graphs";
    }
  }
  return *slot;
}

struct Inputs {
  torch::Tensor x, t, cond;
};
Inputs inputs(const Loaded& f, int64_t batch) {
  std::vector<int64_t> shape = f.model.info.sample_shape;
  shape.insert(shape.begin(), batch);
  const auto opts = torch::TensorOptions().device(f.device);
  torch::Tensor cond = f.model.unet->example_conditioning(batch, opts);
  if (cond.defined() && cond.is_floating_point()) cond = cond.to(f.dtype);
  return {torch::randn(shape, opts.dtype(f.dtype)), torch::full({batch}, 500.0f, opts), cond};
}

void call(benchmark::State& state, const BenchModel& m, int64_t batch, int k) {
  torch::NoGradGuard ng;
  auto& f = loaded(m.family, m.preset);
  const Inputs in = inputs(f, batch);
  dc::models::StageCache cache;
  const int S = f.model.unet->num_skips();
  const auto fill = dc::models::deepcache_request(S, std::max(k, 0), false);
  const auto partial = dc::models::deepcache_request(S, std::max(k, 0), true);
  const dc::models::CallRequest* req = k < 0 ? nullptr : &partial;
  if (k >= 0) f.forward(in.x, in.t, in.cond, &fill, &cache);
  f.forward(in.x, in.t, in.cond, req, &cache);  // untimed: a graph is captured here
  dc::bench::sync(f.device);
  for (auto _ : state) {
    torch::Tensor y = f.forward(in.x, in.t, in.cond, req, &cache);
    benchmark::DoNotOptimize(y.data_ptr());
    dc::bench::sync(f.device);
  }
  state.SetItemsProcessed(state.iterations() * batch);
  const double macs = k < 0 ? f.macs.full : f.macs.partial[k];
  state.counters["GMACs_per_image"] = macs / 1e9;
  state.counters["mac_ratio"] = f.macs.full / macs;
  state.SetLabel(f.label);
}

// Time ratios need the full call's time: full and partial interleaved in one loop, so the ratio
// comes from one run under the same conditions.
void full_over_partial(benchmark::State& state, const BenchModel& m, int64_t batch, int k) {
  torch::NoGradGuard ng;
  auto& f = loaded(m.family, m.preset);
  const Inputs in = inputs(f, batch);
  dc::models::StageCache cache;
  const int S = f.model.unet->num_skips();
  const auto fill = dc::models::deepcache_request(S, k, false), partial = dc::models::deepcache_request(S, k, true);
  f.forward(in.x, in.t, in.cond, &fill, &cache);
  f.forward(in.x, in.t, in.cond, nullptr, &cache);  // untimed: graphs are captured here
  f.forward(in.x, in.t, in.cond, &partial, &cache);
  dc::bench::sync(f.device);
  double full_s = 0, part_s = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(f.forward(in.x, in.t, in.cond, nullptr, &cache).data_ptr());
    dc::bench::sync(f.device);
    auto t1 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(f.forward(in.x, in.t, in.cond, &partial, &cache).data_ptr());
    dc::bench::sync(f.device);
    auto t2 = std::chrono::steady_clock::now();
    full_s += std::chrono::duration<double>(t1 - t0).count();
    part_s += std::chrono::duration<double>(t2 - t1).count();
  }
  state.counters["full_ms"] = 1e3 * full_s / state.iterations();
  state.counters["partial_ms"] = 1e3 * part_s / state.iterations();
  state.counters["time_ratio"] = full_s / part_s;
  state.counters["mac_ratio"] = f.macs.full / f.macs.partial[k];
  state.counters["bound"] = f.macs.full_all / f.macs.partial_all[k];
  state.counters["of_bound"] = (full_s / part_s) / (f.macs.full_all / f.macs.partial_all[k]);
  if (m.family == "sd" && batch % 2 == 0) {
    // PLMS-50 (51 UNet calls) per image with CFG (two rows per image), from the per-call means:
    // plain, and DeepCache N = 5 as the SD reference indexes it (10 full calls, 41 partial). The
    // text encoder and the VAE decode are not in it (`run` times them end to end).
    const double full = full_s / state.iterations(), part = part_s / state.iterations(), images = batch / 2.0;
    state.counters["plms50_plain_s_per_image"] = 51 * full / images;
    state.counters["plms50_n5_s_per_image"] = (10 * full + 41 * part) / images;
  }
  state.SetLabel(f.label);
}

bool selected(const BenchModel& m) {
  const char* sel = std::getenv("DEEPCACHE_BENCH_MODELS");
  if (!sel || !*sel) return true;
  const std::string list = std::string(",") + sel + ",";
  return list.find("," + m.family + "/" + m.preset + ",") != std::string::npos;
}

const bool registered = [] {
  for (const auto& m : table()) {
    if (!selected(m)) continue;
    const std::string name = m.family + "/" + m.preset;
    std::vector<int64_t> batches = m.batches;
    if (const char* b = std::getenv("DEEPCACHE_BENCH_BATCHES"); b && std::string(b) == "paper") batches = {1, m.paper_batch};
    for (int64_t batch : batches) {
      benchmark::RegisterBenchmark(("BM_UNetCall/" + name + "/" + std::to_string(batch) + "/full").c_str(),
                                   [m, batch](benchmark::State& s) { call(s, m, batch, -1); })
          ->Unit(benchmark::kMillisecond)->MinTime(1.0);
      for (int k : m.ks) {
        const std::string suffix = "/" + std::to_string(batch) + "/k" + std::to_string(k);
        benchmark::RegisterBenchmark(("BM_UNetCall/" + name + suffix).c_str(),
                                     [m, batch, k](benchmark::State& s) { call(s, m, batch, k); })
            ->Unit(benchmark::kMillisecond)->MinTime(1.0);
        benchmark::RegisterBenchmark(("BM_UNetFullOverPartial/" + name + suffix).c_str(),
                                     [m, batch, k](benchmark::State& s) { full_over_partial(s, m, batch, k); })
            ->Unit(benchmark::kMillisecond)->MinTime(2.0);
      }
    }
  }
  return true;
}();

}  // namespace
