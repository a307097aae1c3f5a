// Thread settings: torch uses every usable core unless OMP_NUM_THREADS says otherwise; OpenBLAS
// is held to one thread (DESIGN.md: the two thread pools compete on CPU).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>

#include "harness/runtime.h"

TEST(Runtime, ConfigureThreadsUsesEveryCoreAndOneBlasThread) {
  dc::harness::configure_threads();
  const std::string s = dc::harness::thread_settings();
  if (!std::getenv("OMP_NUM_THREADS")) {
    EXPECT_EQ(torch::get_num_threads(), dc::harness::usable_cpus()) << s;
  }
  EXPECT_TRUE(s.find("OpenBLAS threads=1") != std::string::npos || s.find("OpenBLAS threads=n/a") != std::string::npos) << s;
  dc::harness::configure_threads(1);
  EXPECT_EQ(torch::get_num_threads(), 1);
  dc::harness::configure_threads();
}

// What decides the float arithmetic is reported by each CPU library itself (recorded with every run).
TEST(Runtime, CpuKernelsNameEachLibrarysDispatch) {
  const std::string k = dc::harness::cpu_kernels();
  for (const char* lib : {"ATen=", "oneDNN=", "OpenBLAS="}) EXPECT_NE(k.find(lib), std::string::npos) << k;
  EXPECT_EQ(k.find("unknown"), std::string::npos) << "ATen's capability line was not found in at::show_config(): " << k;
  const std::string cpu = dc::harness::cpu_description();
#if defined(__x86_64__)
  EXPECT_NE(cpu.find("(x86-64"), std::string::npos) << cpu;
#endif
  // Under ATEN_CPU_CAPABILITY=default (scripts/test.sh --capped) ATen says so.
  if (const char* cap = std::getenv("ATEN_CPU_CAPABILITY"); cap && std::string(cap) == "default") {
    EXPECT_NE(k.find("ATen=NO AVX"), std::string::npos) << k;
  }
}
