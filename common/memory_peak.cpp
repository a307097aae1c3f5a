#include "common/memory_peak.h"

#include <c10/core/Allocator.h>
#include <c10/util/ThreadLocalDebugInfo.h>
#include <torch/version.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <memory>
#include <fstream>
#include <sstream>

namespace dc {

// Named (not in the anonymous namespace): MemoryPeak::Impl, a type with external linkage, holds it.
namespace memory_peak_detail {

// Both signatures of the hook (int64_t totals up to LibTorch 2.0, size_t after): the one the base
// declares overrides it.
struct Reporter : c10::MemoryReportingInfoBase {
  std::atomic<int64_t> current{0}, peak{0};
  void add(int64_t alloc_size, const c10::Device& device) {
    if (!device.is_cpu()) return;
    const int64_t now = current.fetch_add(alloc_size) + alloc_size;
    int64_t p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
  }
  void reportMemoryUsage(void*, int64_t alloc_size, int64_t, int64_t, c10::Device device) { add(alloc_size, device); }  // NOLINT
  void reportMemoryUsage(void*, int64_t alloc_size, size_t, size_t, c10::Device device) { add(alloc_size, device); }    // NOLINT
  bool memoryProfilingEnabled() const override { return true; }
};

}  // namespace memory_peak_detail

namespace {

// A "Key:   123 kB" line of /proc/<file>, in bytes (0 when absent).
uint64_t proc_kb(const char* file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream s(line.substr(key.size() + 1));
      uint64_t kb = 0;
      s >> kb;
      return kb * 1024;
    }
  return 0;
}

}  // namespace

struct MemoryPeak::Impl {
  std::shared_ptr<memory_peak_detail::Reporter> reporter = std::make_shared<memory_peak_detail::Reporter>();
  c10::DebugInfoGuard guard{c10::DebugInfoKind::PROFILER_STATE, reporter};
};

MemoryPeak::MemoryPeak() : impl_(new Impl) {}
MemoryPeak::~MemoryPeak() { delete impl_; }
uint64_t MemoryPeak::bytes() const { return static_cast<uint64_t>(std::max<int64_t>(impl_->reporter->peak.load(), 0)); }

uint64_t resident_bytes() { return proc_kb("/proc/self/status", "VmRSS"); }

uint64_t memory_usable() {
  const uint64_t rss = resident_bytes();
  const uint64_t avail = proc_kb("/proc/meminfo", "MemAvailable");
  uint64_t usable = avail ? avail + rss : 0;
  // A cgroup v2 limit (a Slurm job's --mem, a container's): what is left under it.
  std::ifstream cg("/proc/self/cgroup");
  std::string line;
  while (std::getline(cg, line)) {
    if (line.rfind("0::", 0) != 0) continue;
    const std::string dir = "/sys/fs/cgroup" + line.substr(3);
    uint64_t max = 0, current = 0;
    std::ifstream m(dir + "/memory.max"), c(dir + "/memory.current");
    if ((m >> max) && (c >> current) && max > 0) {
      const uint64_t left = (max > current ? max - current : 0) + rss;
      if (usable == 0 || left < usable) usable = left;
    }
  }
  return usable;
}

}  // namespace dc
