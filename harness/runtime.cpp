#include "harness/runtime.h"

#include <dlfcn.h>
#include <sched.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <cstdlib>

#include <fmt/format.h>

#include "models/cpu_conv.h"
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

// The line "  - CPU capability usage: AVX2" of at::show_config(): ATen's dispatch level
// (at::native::get_cpu_capability() is not exported by Debian's libtorch).
std::string aten_capability() {
  std::istringstream in(at::show_config());
  const std::string key = "CPU capability usage:";
  for (std::string line; std::getline(in, line);) {
    const auto p = line.find(key);
    if (p == std::string::npos) continue;
    std::string v = line.substr(p + key.size());
    v.erase(0, v.find_first_not_of(' '));
    return v;
  }
  return "unknown";
}

// oneDNN (linked by LibTorch for convolutions): dnnl_get_effective_cpu_isa() and its name.
std::string onednn_isa() {
  using Isa = int (*)();
  using Name = const char* (*)(int);
  const auto isa = reinterpret_cast<Isa>(::dlsym(RTLD_DEFAULT, "dnnl_get_effective_cpu_isa"));
  const auto name = reinterpret_cast<Name>(::dlsym(RTLD_DEFAULT, "dnnl_cpu_isa2str"));
  if (!isa || !name) return "n/a";
  std::string s = name(isa());
  if (s.rfind("cpu_isa_", 0) == 0) s = s.substr(8);
  return s;
}

std::string openblas_core() {
  using Core = char* (*)();
  const auto core = reinterpret_cast<Core>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return core ? std::string(core()) : std::string("n/a");
}
}  // namespace

int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

void configure_threads(int torch_threads) {
  dc::models::cpu_conv::check_environment();  // $DEEPCACHE_CONV*: a bad value is exit 2 before any work
  if (auto set = openblas_set()) set(1);
  // Debian's torch starts with OpenMP's default, which is 1 thread on some machines (seen here:
  // omp_get_max_threads() = 1 on 2 cores): without an explicit OMP_NUM_THREADS, use every core.
  if (torch_threads <= 0 && !std::getenv("OMP_NUM_THREADS")) torch_threads = usable_cpus();
  if (torch_threads > 0) torch::set_num_threads(torch_threads);
}

std::string thread_settings() {
  const char* omp = std::getenv("OMP_NUM_THREADS");
  auto get = openblas_get();
  return fmt::format("torch intra-op threads={}, inter-op={}, OpenBLAS threads={}, OMP_NUM_THREADS={}, malloc={}",
                     torch::get_num_threads(), torch::get_num_interop_threads(),
                     get ? std::to_string(get()) : std::string("n/a"), omp ? omp : "unset", malloc_description());
}

std::string malloc_description() {
  using Mallctl = int (*)(const char*, void*, size_t*, void*, size_t);
  if (const auto mallctl = reinterpret_cast<Mallctl>(::dlsym(RTLD_DEFAULT, "mallctl"))) {
    const char* version = nullptr;
    size_t len = sizeof(version);
    ssize_t dirty = 0, muzzy = 0;
    size_t dlen = sizeof(dirty), mlen = sizeof(muzzy);
    const bool ok = mallctl("version", &version, &len, nullptr, 0) == 0 && version &&
                    mallctl("opt.dirty_decay_ms", &dirty, &dlen, nullptr, 0) == 0 &&
                    mallctl("opt.muzzy_decay_ms", &muzzy, &mlen, nullptr, 0) == 0;
    if (ok) {
      const std::string v(version);
      return fmt::format("jemalloc {} (decay dirty {} ms, muzzy {} ms)", v.substr(0, v.find('-')), dirty, muzzy);
    }
    return "jemalloc (settings unreadable)";
  }
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  return tunables && *tunables ? fmt::format("glibc (GLIBC_TUNABLES={})", tunables) : "glibc (defaults)";
}

std::string cpu_description() {
  std::string model = "unknown CPU";
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto p = line.find(':');
    if (p != std::string::npos) model = line.substr(line.find_first_not_of(' ', p + 1));
    break;
  }
  std::vector<std::string> ext;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) ext.push_back("AVX-512");
  if (__builtin_cpu_supports("avx2")) ext.push_back("AVX2");
  if (__builtin_cpu_supports("fma")) ext.push_back("FMA");
  if (ext.empty() && __builtin_cpu_supports("sse4.1")) ext.push_back("SSE4.1");
  const std::string arch = "x86-64";
#else
  const std::string arch = "non-x86";
#endif
  std::string out = model + " (" + arch;
  for (const auto& e : ext) out += ", " + e;
  return out + ")";
}

std::string cpu_kernels() {
  return fmt::format("ATen={}, oneDNN={}, OpenBLAS={}, conv3x3={}", aten_capability(), onednn_isa(), openblas_core(),
                     dc::models::cpu_conv::kernel_name());
}

c10::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda") {
    if (!torch::cuda::is_available()) throw Error("device cuda: no CUDA device is available to this LibTorch build");
    return torch::kCUDA;
  }
  throw Error(fmt::format("device '{}': expected cpu or cuda", name));
}

void device_sync(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

}  // namespace dc::harness
