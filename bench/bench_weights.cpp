// Weights I/O throughput: header validation of a checkpoint-sized header, and tensor loads with
// and without dtype conversion (bytes/s). Thread settings are printed with the results.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>

#include "harness/runtime.h"
#include "models/weights/safetensors.h"
#include "models/weights/tensor_io.h"

namespace fs = std::filesystem;

namespace {

const std::string& bench_dir() {
  static const std::string dir = [] {
    fs::path p = fs::temp_directory_path() / fmt::format("dc_bench_{}", ::getpid());
    fs::create_directories(p);
    dc::harness::configure_threads();
    return p.string();
  }();
  return dir;
}

// ~1,000 small tensors: the header size of a Stable Diffusion single-file checkpoint.
const std::string& many_tensors_file() {
  static const std::string path = [] {
    dc::st::NamedTensors t;
    for (int i = 0; i < 1000; ++i)
      t.emplace_back(fmt::format("model.diffusion_model.output_blocks.{}.1.transformer_blocks.0.attn{}.to_q.weight", i / 2, i % 2),
                     torch::zeros({8, 8}));
    const std::string p = bench_dir() + "/many.safetensors";
    dc::st::save_tensors(p, t);
    return p;
  }();
  return path;
}

const std::string& big_file() {
  static const std::string path = [] {
    const std::string p = bench_dir() + "/big.safetensors";
    dc::st::save_tensors(p, {{"f16", torch::randn({16, 1024, 1024}).to(torch::kHalf)},
                             {"f32", torch::randn({16, 1024, 1024})}});
    return p;
  }();
  return path;
}

void BM_OpenAndValidateHeader1000Tensors(benchmark::State& state) {
  const std::string& p = many_tensors_file();
  for (auto _ : state) {
    auto f = dc::st::SafetensorsFile::open(p);
    benchmark::DoNotOptimize(f.tensors().size());
  }
  state.SetLabel(dc::harness::thread_settings());
}
BENCHMARK(BM_OpenAndValidateHeader1000Tensors)->Unit(benchmark::kMicrosecond);

void BM_LoadTensor(benchmark::State& state, const char* name, std::optional<c10::ScalarType> to) {
  const auto f = dc::st::SafetensorsFile::open(big_file());
  const auto& info = f.at(name);
  for (auto _ : state) {
    torch::Tensor t = dc::st::load_tensor(f, info, to);
    benchmark::DoNotOptimize(t.data_ptr());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * info.nbytes()));
}
BENCHMARK_CAPTURE(BM_LoadTensor, f32_as_stored, "f32", std::nullopt)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_LoadTensor, f16_as_stored, "f16", std::nullopt)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_LoadTensor, f16_to_f32, "f16", torch::kFloat32)->Unit(benchmark::kMillisecond);

}  // namespace
