// The peak of CPU tensor memory a piece of work allocates, measured through LibTorch's memory
// reporting (the hook its profiler uses: c10's CPU allocator reports every allocation and free to a
// MemoryReportingInfoBase in the thread-local debug info, which LibTorch's intra-op threads
// inherit), and what the machine can still give. Used by the resource check before a run samples
// (harness/resources.h). A thread-local counter of the allocator (jemalloc's thread.peak) was
// tried first: it misses what intra-op threads allocate, and read 0 to 2.5x the resident growth.
#pragma once
#include <cstdint>
#include <string>

namespace dc {

class MemoryPeak {
 public:
  MemoryPeak();            // starts measuring
  ~MemoryPeak();
  MemoryPeak(const MemoryPeak&) = delete;
  MemoryPeak& operator=(const MemoryPeak&) = delete;
  uint64_t bytes() const;  // the peak of tensor storage allocated since the start, less what was freed
  static std::string method() { return "LibTorch's CPU allocator, measured"; }

 private:
  struct Impl;
  Impl* impl_;
};

// What the kernel says this machine can still give: MemAvailable plus this process's resident set
// (its own memory is usable by itself), or what a cgroup v2 memory limit (a Slurm job's --mem, a
// container's) leaves when that is less, in bytes; 0 when /proc cannot say.
uint64_t memory_usable();
// This process's resident set, bytes.
uint64_t resident_bytes();

}  // namespace dc
