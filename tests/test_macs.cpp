// MACs counted as the paper counts them: the CIFAR-10 and LSUN presets against the paper's
// numbers (DeepCache Table 2 / Table 12; the paper quotes these values, they are not fixtures).
#include <gtest/gtest.h>

#include "harness/policies/deepcache_schedules.h"
#include "metrics/macs.h"
#include "models/ddpm_unet.h"
#include "models/model.h"

using dc::models::DdpmConfig;
using dc::models::DdpmUNet;

namespace {
// Relative error |a/b - 1|.
double rel(double a, double b) { return std::abs(a / b - 1.0); }
}  // namespace

TEST(Macs, Cifar10FullAndStepAveragedPartialCallsMatchThePaper) {
  DdpmUNet net(DdpmConfig::preset("cifar10"));
  net->eval();
  const auto table = dc::metrics::macs_table(*net);
  // Paper: 6.1 G MACs for the CIFAR-10 DDPM (one call, one image).
  EXPECT_LT(rel(table.full, 6.1e9), 0.01) << table.full / 1e9 << " G";
  // Paper Table 12: uniform N = 5 over 100 steps, branch m = k + 1 = 1..12.
  const std::vector<double> paper = {1.60, 2.24, 3.01, 3.89, 4.58, 5.31, 5.45, 5.60, 5.88, 5.95, 5.99, 6.03};
  ASSERT_EQ(table.partial.size(), paper.size());
  const auto full_steps = dc::deepcache::uniform_full_steps(100, 5);
  for (std::size_t k = 0; k < paper.size(); ++k) {
    const double avg = dc::metrics::step_average_macs(table.full, table.partial[k], full_steps, 100);
    EXPECT_LT(rel(avg, paper[k] * 1e9), 0.025) << "k=" << k << ": " << avg / 1e9 << " G vs paper " << paper[k];
    if (k > 0) {
      EXPECT_GT(table.partial[k], table.partial[k - 1]) << "a deeper skip index must cost more";
    }
    EXPECT_LT(table.partial[k], table.full);
  }
}

// Every multiply-accumulate (issue 31's bound): the paper's count plus the attention matmuls. The
// CIFAR-10 DDPM attends at 16x16 (L = 256 positions) over 256 channels, one head, in 5 blocks
// (2 down, 3 up), and in the middle at 4x4 (L = 16): q k^T and softmax(.) v add 2 L^2 C each. A
// partial call at k = 0 runs no attention block: both counts agree.
TEST(Macs, EveryMultiplyAccumulateAddsTheAttentionMatmuls) {
  DdpmUNet net(DdpmConfig::preset("cifar10"));
  net->eval();
  const auto full = dc::metrics::call_macs(*net);
  const double attention = 5 * 2.0 * 256 * 256 * 256 + 2.0 * 16 * 16 * 256;
  EXPECT_DOUBLE_EQ(full.all - full.total, attention);
  const auto part = dc::metrics::call_macs(*net, 0);
  EXPECT_DOUBLE_EQ(part.all, part.total);
  const auto table = dc::metrics::macs_table(*net);
  ASSERT_EQ(table.partial_all.size(), table.partial.size());
  EXPECT_DOUBLE_EQ(table.full_all, full.all);
  for (std::size_t k = 0; k < table.partial.size(); ++k) EXPECT_GE(table.partial_all[k], table.partial[k]) << k;
  EXPECT_GT(table.partial_all.back(), table.partial.back()) << "the deepest partial call runs the up path's attention";
}

TEST(Macs, LsunFullCallMatchesThePaper) {
  DdpmUNet net(DdpmConfig::preset("lsun_church"));
  net->eval();
  const double full = dc::metrics::call_macs(*net).total;
  EXPECT_LT(rel(full, 248.7e9), 0.01) << full / 1e9 << " G";
}

TEST(Macs, BreakdownAddsUpAndCountsOnlyWhatRan) {
  DdpmConfig cfg = DdpmConfig::preset("cifar10");
  cfg.ch = 32;
  DdpmUNet net(cfg);
  const auto full = dc::metrics::call_macs(*net);
  double sum = 0;
  for (const auto& [block, m] : full.by_block) sum += m;
  EXPECT_DOUBLE_EQ(sum, full.total);
  const auto part = dc::metrics::call_macs(*net, 0);
  EXPECT_FALSE(part.by_block.count("mid.block_1"));
  EXPECT_TRUE(part.by_block.count("up.0.block.2"));
  // Closed form for conv_in: 3*3*3*32 per position + 32 bias, at 32x32.
  EXPECT_DOUBLE_EQ(full.by_block.at("conv_in"), (3.0 * 3 * 3 * 32 + 32) * 32 * 32);
  EXPECT_DOUBLE_EQ(dc::metrics::step_average_macs(10, 2, {0, 5}, 10), (2 * 10 + 8 * 2) / 10.0);
}

// LDM-4-G (cin256-v2), counted as the paper counts it: the UNet only, one image (guidance not
// doubled). Spec figures: full call 99.82 G, partial at k = 0 4.43 G; DDIM-250 step averages with
// uniform N = 2, 3, 5, 10, 20: 52.12, 36.48, 23.50, 13.97, 9.39 G.
TEST(Macs, Ldm4gFullPartialAndStepAveragesMatchTheSpec) {
  const auto table = dc::metrics::macs_table(*dc::models::build_unet("ldm", "cin256_v2"));  // one traced call (the contract suite: = traced partial calls)
  const double full = table.full, partial = table.partial.at(0);
  EXPECT_LT(rel(full, 99.82e9), 0.01) << full / 1e9 << " G";
  EXPECT_LT(rel(partial, 4.43e9), 0.01) << partial / 1e9 << " G";
  const std::vector<std::pair<int, double>> spec = {{2, 52.12}, {3, 36.48}, {5, 23.50}, {10, 13.97}, {20, 9.39}};
  for (const auto& [n, g] : spec) {
    const double avg = dc::metrics::step_average_macs(full, partial, dc::deepcache::uniform_full_steps(250, n), 250);
    EXPECT_LT(rel(avg, g * 1e9), 0.025) << "N=" << n << ": " << avg / 1e9 << " G vs " << g;
  }
}

// Stable Diffusion v1.5 (64x64 latents, 77 text tokens), counted as the paper counts it: the UNet
// only, one image. Paper: full call 338.8 G, partial at k = 1 (layer 0, block 0) 57.3 G. PLMS-50
// at N = 5: the reference's indexing (cache.index steps) makes 10 of the 51 calls full; the
// paper's 130.45 G step average is what 13 full steps of 50 give, not N = 5's 10 (docs).
TEST(Macs, Sd15FullAndPartialMatchThePaper) {
  const auto table = dc::metrics::macs_table(*dc::models::build_unet("sd", "sd15"));  // one traced call (the contract suite: = traced partial calls)
  const double full = table.full, partial = table.partial.at(1);
  EXPECT_LT(rel(full, 338.8e9), 0.01) << full / 1e9 << " G";
  EXPECT_LT(rel(partial, 57.3e9), 0.025) << partial / 1e9 << " G";
  dc::deepcache::ScheduleSpec spec;
  spec.interval = 5;
  spec.index = "steps";
  const auto plms50 = dc::deepcache::full_calls(spec, 51, 50).steps;
  EXPECT_EQ(plms50.size(), 10u);
  const double over_calls = dc::metrics::step_average_macs(full, partial, plms50, 51);
  const double over_steps = dc::metrics::step_average_macs(full, partial, dc::deepcache::uniform_full_steps(50, 5), 50);
  EXPECT_LT(over_calls, over_steps);  // the 51st call is partial
  const double thirteen = (13 * full + 37 * partial) / 50;
  EXPECT_LT(rel(thirteen, 130.45e9), 0.01) << thirteen / 1e9 << " G";
}
