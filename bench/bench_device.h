// The device the benchmarks run on: DEEPCACHE_BENCH_DEVICE=cpu (default) or cuda; the UNet's dtype:
// DEEPCACHE_BENCH_DTYPE; DEEPCACHE_BENCH_BATCHES=paper: batch 1 and the paper's generation batch. Timed calls on
// CUDA are followed by sync(), so a time is a call's duration, not its launch time.
#pragma once
#include <torch/torch.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "harness/runtime.h"

namespace dc::bench {

inline torch::Device bench_device() {
  const char* d = std::getenv("DEEPCACHE_BENCH_DEVICE");
  const std::string name = d ? d : "cpu";
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda" && torch::cuda::is_available()) return torch::kCUDA;
  throw std::runtime_error("DEEPCACHE_BENCH_DEVICE=" + name + ": expected cpu, or cuda on a machine where torch sees a CUDA device");
}

// DEEPCACHE_BENCH_DTYPE=fp32 (default) | fp16 | bf16: the UNet's precision (model.dtype).
inline torch::ScalarType bench_dtype(const torch::Device& d) {
  const char* v = std::getenv("DEEPCACHE_BENCH_DTYPE");
  const std::string name = v ? v : "fp32";
  if (name == "fp32") return torch::kFloat;
  if (name == "bf16") return torch::kBFloat16;
  if (name == "fp16" && d.is_cuda()) return torch::kHalf;
  throw std::runtime_error("DEEPCACHE_BENCH_DTYPE=" + name + ": expected fp32, bf16, or fp16 on cuda");
}
inline std::string dtype_name(torch::ScalarType t) {
  return t == torch::kHalf ? "fp16" : t == torch::kBFloat16 ? "bf16" : "fp32";
}

// DEEPCACHE_BENCH_GRAPHS=1: the UNet's calls replayed from CUDA graphs (model.cuda_graphs; cuda only).
inline bool bench_graphs(const torch::Device& d) {
  const char* v = std::getenv("DEEPCACHE_BENCH_GRAPHS");
  if (!v || std::string(v) == "0" || std::string(v).empty()) return false;
  if (!d.is_cuda()) throw std::runtime_error("DEEPCACHE_BENCH_GRAPHS=1 needs DEEPCACHE_BENCH_DEVICE=cuda");
  return true;
}

inline void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// The label every benchmark carries: the device, and on the CPU the thread settings.
inline std::string device_label(const torch::Device& d) { return d.is_cuda() ? "cuda" : dc::harness::thread_settings(); }

}  // namespace dc::bench
