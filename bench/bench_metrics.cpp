// Feature-extraction throughput of the metric networks, from uint8 images as the metrics take
// them (images/s = items_per_second). Random-initialised weights: the time does not depend on them.
//   BM_InceptionFidFeatures/batch/size: pytorch-fid's InceptionV3 pool3 (2048) features, images of
//   size x size resized to 299 inside the network (32: CIFAR-10 samples, 256: LSUN/ImageNet).
//   BM_ClipImageFeatures/preset/batch: CLIP image tower (0: OpenAI ViT-L/14, 1: open_clip ViT-g-14,
//   the paper's CLIP-score model) from 512x512 uint8 images (SD1.5's output size) through the
//   PIL-exact preprocessing; ClipPreprocess alone times that preprocessing.
#include <benchmark/benchmark.h>

#include <map>

#include "bench/bench_device.h"
#include "metrics/fid_pipeline.h"
#include "metrics/clip_preprocess.h"
#include "metrics/inception_fid.h"
#include "models/clip.h"

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

struct ClipFixture {
  dc::models::ClipVision vision{nullptr};
  int64_t size = 224;
};

ClipFixture& clip(int preset) {
  static std::map<int, ClipFixture> cache;
  auto it = cache.find(preset);
  if (it != cache.end()) return it->second;
  dc::harness::configure_threads();
  torch::manual_seed(0);
  const auto cfg = dc::models::ClipConfig::preset(preset == 0 ? "vit-l-14" : "vit-g-14");
  ClipFixture f;
  f.vision = dc::models::ClipVision(cfg.vision, cfg.embed_dim, cfg.act);
  f.vision->eval();
  f.vision->to(dc::bench::bench_device());
  f.size = cfg.vision.image_size;
  return cache.emplace(preset, f).first->second;
}

void BM_ClipImageFeatures(benchmark::State& state) {
  torch::NoGradGuard ng;
  const torch::Device device = dc::bench::bench_device();
  auto& f = clip(static_cast<int>(state.range(0)));
  const int64_t batch = state.range(1);
  std::vector<torch::Tensor> images;
  for (int64_t i = 0; i < batch; ++i) images.push_back(torch::randint(0, 256, {512, 512, 3}, torch::kUInt8));
  for (auto _ : state) {
    std::vector<torch::Tensor> px;
    for (const auto& im : images) px.push_back(dc::metrics::clip_pixel_values(im, f.size));
    auto feats = f.vision(torch::stack(px).to(device));
    benchmark::DoNotOptimize(feats.data_ptr());
    dc::bench::sync(device);
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetLabel(std::string(state.range(0) == 0 ? "ViT-L/14 " : "ViT-g-14 ") + dc::bench::device_label(device));
}
BENCHMARK(BM_ClipImageFeatures)->Args({0, 4})->Args({1, 4})->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_ClipPreprocess(benchmark::State& state) {
  const auto image = torch::randint(0, 256, {512, 512, 3}, torch::kUInt8);
  for (auto _ : state) benchmark::DoNotOptimize(dc::metrics::clip_pixel_values(image, 224).data_ptr());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ClipPreprocess)->Unit(benchmark::kMillisecond);

}  // namespace
