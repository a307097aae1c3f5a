#include "harness/runtime.h"

#include <dlfcn.h>

#include <cstdlib>

#include <fmt/format.h>
#include <torch/torch.h>

namespace dc::harness {

namespace {
// OpenBLAS is reached through the process's symbol table: Debian's torch links whichever BLAS
// the alternatives system provides, so a hard link dependency on OpenBLAS would be wrong.
using SetThreads = void (*)(int);
using GetThreads = int (*)();
SetThreads openblas_set() { return reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads")); }
GetThreads openblas_get() { return reinterpret_cast<GetThreads>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads")); }
}  // namespace

void configure_threads(int torch_threads) {
  if (auto set = openblas_set()) set(1);
  if (torch_threads > 0) torch::set_num_threads(torch_threads);
}

std::string thread_settings() {
  const char* omp = std::getenv("OMP_NUM_THREADS");
  auto get = openblas_get();
  return fmt::format("torch intra-op threads={}, inter-op={}, OpenBLAS threads={}, OMP_NUM_THREADS={}",
                     torch::get_num_threads(), torch::get_num_interop_threads(),
                     get ? std::to_string(get()) : std::string("n/a"), omp ? omp : "unset");
}

}  // namespace dc::harness
