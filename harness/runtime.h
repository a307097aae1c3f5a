// Process-wide runtime settings: thread counts. On CPU, torch's OpenMP threads and OpenBLAS's
// own threads compete (DESIGN.md, GPU builds): OpenBLAS is held to one thread, torch gets the
// cores. Every timing reports thread_settings().
#pragma once
#include <string>

#include <c10/core/Device.h>

namespace dc::harness {

// torch_threads <= 0: $OMP_NUM_THREADS when set, else one per usable core. Safe to call more than once.
void configure_threads(int torch_threads = 0);

// CPUs this process may run on (its affinity mask).
int usable_cpus();

// "torch intra-op threads=2, inter-op=2, OpenBLAS threads=1, OMP_NUM_THREADS=unset, malloc=..."
std::string thread_settings();

// The process's memory allocator, which decides whether large blocks are page-faulted in again at
// every model call (common/malloc_config.cpp): "jemalloc 5.3.0 (decay dirty -1 ms, muzzy -1 ms)"
// when jemalloc is the process's malloc (linked in, or preloaded), else "glibc (defaults)" or
// "glibc (GLIBC_TUNABLES=...)".
std::string malloc_description();

// The CPU this process runs on: "AMD EPYC (x86-64, AVX-512, AVX2, FMA)" (the model name from
// /proc/cpuinfo and the vector extensions the kernels below may use).
std::string cpu_description();

// The kernels the CPU libraries actually dispatch to in this process, as each library reports it:
// "ATen=AVX2, oneDNN=avx512_core_bf16, OpenBLAS=Cooperlake, conv3x3=winograd" (the last:
// models/cpu_conv.h, $DEEPCACHE_CONV). They follow the CPU and the caps
// ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA and OPENBLAS_CORETYPE; floating-point results depend on
// them (docs/experiments.md, "What is reproducible"), so every run records them.
std::string cpu_kernels();

// "cpu" or "cuda" as a device; "cuda" without a usable CUDA device, or any other name, is an error
// naming the value.
c10::Device parse_device(const std::string& name);

// Waits for the device's queued work (CUDA); nothing on the CPU.
void device_sync(const c10::Device& device);

}  // namespace dc::harness
