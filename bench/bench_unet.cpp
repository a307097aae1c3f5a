// Full vs partial UNet call of the DDPM CIFAR-10 preset (random init), batch 1 and 64, skip
// index k in {0, 2, 5, 11}: the time ratio full/partial is reported next to the MAC ratio in the
// same run: BM_DdpmCifar10FullOverPartial times a full and a partial call alternately in one loop
// and reports time_ratio = full/partial, mac_ratio and their quotient (time_over_mac; 1 would be
// a partial call as fast as its MACs promise).
// DEEPCACHE_BENCH_DEVICE=cuda runs them on the GPU (every timed call is followed by a device
// synchronisation, so the times are the calls' real durations, not their launch times).
#include <benchmark/benchmark.h>

#include <chrono>

#include "bench/bench_device.h"
#include "models/deepcache_io.h"
#include "harness/runtime.h"
#include "metrics/macs.h"
#include "models/ddpm_unet.h"

namespace {

struct Fixture {
  dc::models::DdpmUNet net{nullptr};
  dc::metrics::MacsTable macs;
  torch::Device device{torch::kCPU};
  std::string label;
};

Fixture& fixture() {
  static Fixture f = [] {
    dc::harness::configure_threads();
    torch::manual_seed(0);
    Fixture x;
    x.net = dc::models::DdpmUNet(dc::models::DdpmConfig::preset("cifar10"));
    x.net->eval();
    x.macs = dc::metrics::ddpm_macs_table(x.net);
    x.device = dc::bench::bench_device();
    x.net->to(x.device);
    x.label = dc::bench::device_label(x.device);
    return x;
  }();
  return f;
}

// args: batch, k (-1 = full call)
void BM_DdpmCifar10Call(benchmark::State& state) {
  torch::NoGradGuard ng;
  auto& f = fixture();
  const int64_t batch = state.range(0);
  const int k = static_cast<int>(state.range(1));
  const auto x = torch::randn({batch, 3, 32, 32}).to(f.device);
  const auto t = torch::full({batch}, 500.0f).to(f.device);
  dc::deepcache::FeatureCache cache;
  const dc::deepcache::CacheRequest fill{std::max(k, 0), false}, partial{std::max(k, 0), true};
  if (k >= 0) f.net->forward(x, t, &fill, &cache);
  for (auto _ : state) {
    torch::Tensor y = k < 0 ? f.net->forward(x, t) : f.net->forward(x, t, &partial, &cache);
    benchmark::DoNotOptimize(y.data_ptr());
    dc::bench::sync(f.device);
  }
  state.SetItemsProcessed(state.iterations() * batch);
  const double macs = k < 0 ? f.macs.full : f.macs.partial[k];
  state.counters["GMACs_per_image"] = macs / 1e9;
  state.counters["mac_ratio"] = f.macs.full / macs;
  state.SetLabel(f.label);
}

// Time ratios need the full call's time: a second benchmark measures full and partial
// interleaved in one loop, so the ratio comes from one run under the same conditions.
void BM_DdpmCifar10FullOverPartial(benchmark::State& state) {
  torch::NoGradGuard ng;
  auto& f = fixture();
  const int64_t batch = state.range(0);
  const int k = static_cast<int>(state.range(1));
  const auto x = torch::randn({batch, 3, 32, 32}).to(f.device);
  const auto t = torch::full({batch}, 500.0f).to(f.device);
  dc::deepcache::FeatureCache cache;
  const dc::deepcache::CacheRequest fill{k, false}, partial{k, true};
  f.net->forward(x, t, &fill, &cache);
  double full_s = 0, part_s = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(f.net->forward(x, t).data_ptr());
    dc::bench::sync(f.device);
    auto t1 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(f.net->forward(x, t, &partial, &cache).data_ptr());
    dc::bench::sync(f.device);
    auto t2 = std::chrono::steady_clock::now();
    full_s += std::chrono::duration<double>(t1 - t0).count();
    part_s += std::chrono::duration<double>(t2 - t1).count();
  }
  state.counters["full_ms"] = 1e3 * full_s / state.iterations();
  state.counters["partial_ms"] = 1e3 * part_s / state.iterations();
  state.counters["time_ratio"] = full_s / part_s;
  state.counters["mac_ratio"] = f.macs.full / f.macs.partial[k];
  state.counters["time_over_mac"] = (full_s / part_s) / (f.macs.full / f.macs.partial[k]);
  state.SetLabel(f.label);
}

void Args(benchmark::internal::Benchmark* b) {
  for (int64_t batch : {1, 64})
    for (int64_t k : {0, 2, 5, 11}) b->Args({batch, k});
}

}  // namespace

BENCHMARK(BM_DdpmCifar10Call)->Args({1, -1})->Args({64, -1})->Apply(Args)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_DdpmCifar10FullOverPartial)->Apply(Args)->Unit(benchmark::kMillisecond)->MinTime(2.0);
