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
