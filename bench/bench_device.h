// The device the benchmarks run on: DEEPCACHE_BENCH_DEVICE=cpu (default) or cuda. Timed calls on
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

inline void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// The label every benchmark carries: the device, and on the CPU the thread settings.
inline std::string device_label(const torch::Device& d) { return d.is_cuda() ? "cuda" : dc::harness::thread_settings(); }

}  // namespace dc::bench
