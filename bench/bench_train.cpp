// One DDPM training step (forward, backward, clipping, Adam, EMA) on Fashion-MNIST-shaped data at
// batch 64, for the fmnist preset and smaller variants: what decides how long training takes.
//   arg 0: 0 = preset fmnist (no attention), 1 = with attention at 16x16, 2 = one res block per
//   level, 3 = both. Measured here (2 cores, batch 64): attention at 16 cost 0.90 vs 0.61 s/step.
#include <benchmark/benchmark.h>

#include "bench/bench_device.h"
#include "harness/train/train.h"

namespace {

void BM_DdpmTrainStep(benchmark::State& state) {
  dc::harness::configure_threads();
  auto cfg = dc::models::DdpmConfig::preset("fmnist");
  const int variant = static_cast<int>(state.range(0));
  if (variant & 1) cfg.attn_resolutions = {16};
  if (variant & 2) cfg.num_res_blocks = 1;
  auto spec = dc::train::parse_train_spec("train: {name: b, kind: ddpm, out: /tmp/b, export: /tmp/b/w.safetensors, ema: 0.999}", "bench");
  dc::train::DdpmTrainer trainer(cfg, spec);
  torch::manual_seed(0);
  const auto x0 = torch::rand({state.range(1), 1, 32, 32}) * 2 - 1;
  int64_t step = 0;
  for (auto _ : state) benchmark::DoNotOptimize(trainer.step(x0, step++));
  state.SetItemsProcessed(state.iterations() * state.range(1));
  state.SetLabel(fmt::format("S={} {}", cfg.num_skips(), dc::harness::thread_settings()));
}
BENCHMARK(BM_DdpmTrainStep)->Args({0, 64})->Args({1, 64})->Args({2, 64})->Args({3, 64})->Args({0, 32})->Unit(benchmark::kMillisecond)->MinTime(3.0);

}  // namespace
