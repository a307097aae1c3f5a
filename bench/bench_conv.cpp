// 3x3 convolutions of the UNets (batch 8, the CPU's threads): LibTorch's own convolution against
// models/cpu_conv's Winograd path, timed alternately in one loop, so the ratio comes from one run
// under the same conditions (docs/performance.md, "CPU: the convolutions"). Reports direct_ms,
// winograd_ms and direct_over_winograd; where this build or CPU has no Winograd kernel the second
// call is LibTorch's too (the label says which ran: cpu_conv::description()).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <chrono>

#include "harness/runtime.h"
#include "models/cpu_conv.h"
#include "models/winograd_gemm.h"

namespace {

void BM_Conv3x3DirectOverWinograd(benchmark::State& state) {
  torch::NoGradGuard ng;
  dc::harness::configure_threads();
  const int64_t in = state.range(0), out = state.range(1), hw = state.range(2), batch = 8;
  torch::manual_seed(0);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(in, out, 3).padding(1));
  const torch::Tensor x = torch::randn({batch, in, hw, hw});
  dc::models::cpu_conv::forward(*conv, x);  // untimed: the weights' transforms
  const torch::Tensor U = dc::models::winograd::transform_weights(conv->weight);
  double direct_s = 0, wino_s = 0, gemm_s = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(conv->forward(x).data_ptr());
    const auto t1 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(dc::models::cpu_conv::forward(*conv, x).data_ptr());
    const auto t2 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(dc::models::winograd::conv3x3(x, U, conv->bias).data_ptr());
    const auto t3 = std::chrono::steady_clock::now();
    direct_s += std::chrono::duration<double>(t1 - t0).count();
    wino_s += std::chrono::duration<double>(t2 - t1).count();
    gemm_s += std::chrono::duration<double>(t3 - t2).count();
  }
  state.counters["direct_ms"] = 1e3 * direct_s / state.iterations();
  state.counters["selected_ms"] = 1e3 * wino_s / state.iterations();
  state.counters["gemm_winograd_ms"] = 1e3 * gemm_s / state.iterations();
  state.counters["direct_over_selected"] = direct_s / wino_s;
  state.counters["direct_over_gemm_winograd"] = direct_s / gemm_s;
  state.SetLabel(dc::models::cpu_conv::description() + "; " + dc::harness::thread_settings());
}
BENCHMARK(BM_Conv3x3DirectOverWinograd)
    ->Args({128, 128, 32})
    ->Args({256, 128, 32})
    ->Args({256, 256, 16})
    ->Args({256, 256, 8})
    ->Args({512, 512, 8})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(1.0);

}  // namespace
