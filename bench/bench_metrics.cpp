// Feature-extraction throughput of the metric networks, from uint8 images as the metrics take
// them (images/s = items_per_second). Random-initialised weights: the time does not depend on them.
//   BM_InceptionFidFeatures/batch/size: pytorch-fid's InceptionV3 pool3 (2048) features, images of
//   size x size resized to 299 inside the network (32: CIFAR-10 samples, 256: LSUN/ImageNet).
#include <benchmark/benchmark.h>

#include "bench/bench_device.h"
#include "metrics/fid_pipeline.h"
#include "metrics/inception_fid.h"

namespace {

struct InceptionFixture {
  dc::metrics::InceptionFid net{nullptr};
  torch::Device device{torch::kCPU};
};

InceptionFixture& inception() {
  static InceptionFixture f = [] {
    dc::harness::configure_threads();
    torch::manual_seed(0);
    InceptionFixture x;
    x.device = dc::bench::bench_device();
    x.net = dc::metrics::InceptionFid();
    x.net->eval();
    x.net->to(x.device);
    return x;
  }();
  return f;
}

void BM_InceptionFidFeatures(benchmark::State& state) {
  torch::NoGradGuard ng;
  auto& f = inception();
  const int64_t batch = state.range(0), size = state.range(1);
  const auto images = torch::randint(0, 256, {batch, 3, size, size}, torch::kUInt8).to(f.device);
  for (auto _ : state) {
    auto feats = dc::metrics::inception_features(f.net, images, 2048);
    benchmark::DoNotOptimize(feats.data_ptr());
    dc::bench::sync(f.device);
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetLabel(dc::bench::device_label(f.device));
}
BENCHMARK(BM_InceptionFidFeatures)->Args({16, 32})->Args({16, 256})->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace
