#include "harness/runtime.h"

#include <dlfcn.h>
#include <sched.h>

#include <algorithm>
#include <thread>

#include <cstdlib>

#include <fmt/format.h>
#include <torch/torch.h>

#include "common/error.h"

namespace dc::harness {

namespace {
// OpenBLAS is reached through the process's symbol table: Debian's torch links whichever BLAS
// the alternatives system provides, so a hard link dependency on OpenBLAS would be wrong.
using SetThreads = void (*)(int);
using GetThreads = int (*)();
SetThreads openblas_set() { return reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads")); }
GetThreads openblas_get() { return reinterpret_cast<GetThreads>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads")); }
}  // namespace

int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

void configure_threads(int torch_threads) {
  if (auto set = openblas_set()) set(1);
  // Debian's torch starts with OpenMP's default, which is 1 thread on some machines (seen here:
  // omp_get_max_threads() = 1 on 2 cores): without an explicit OMP_NUM_THREADS, use every core.
  if (torch_threads <= 0 && !std::getenv("OMP_NUM_THREADS")) torch_threads = usable_cpus();
  if (torch_threads > 0) torch::set_num_threads(torch_threads);
}

std::string thread_settings() {
  const char* omp = std::getenv("OMP_NUM_THREADS");
  auto get = openblas_get();
  return fmt::format("torch intra-op threads={}, inter-op={}, OpenBLAS threads={}, OMP_NUM_THREADS={}",
                     torch::get_num_threads(), torch::get_num_interop_threads(),
                     get ? std::to_string(get()) : std::string("n/a"), omp ? omp : "unset");
}

c10::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda") {
    if (!torch::cuda::is_available()) throw Error("device cuda: no CUDA device is available to this LibTorch build");
    return torch::kCUDA;
  }
  throw Error(fmt::format("device '{}': expected cpu or cuda", name));
}

}  // namespace dc::harness
