// CUDA: the same reference fixtures on the GPU (skipped, with a message, where torch sees no CUDA
// device). TF32 is switched off for the parity checks: the fixtures were made in float32, and
// cuDNN's TF32 convolutions (PyTorch's default on Ampere and newer) would exceed their tolerance.
// Also: a DeepCache sampling run on CUDA equals the same run on the CPU.
#include <gtest/gtest.h>

#include <ATen/Context.h>

#include "harness/sample.h"
#include "models/deepcache_io.h"
#include "models/ddpm_unet.h"
#include "support/ddpm.h"
#include "support/fixtures.h"

using dc::deepcache::CacheRequest;
using dc::deepcache::FeatureCache;

// The fixture outside the anonymous namespace: its tests derive from it (-Wsubobject-linkage in a
// unity build).
class Cuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible to torch: CUDA checks skipped";
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);
  }
};

namespace {
const torch::Device kCuda(torch::kCUDA);
torch::Tensor on_gpu(const torch::Tensor& t) { return t.to(kCuda); }
}  // namespace

TEST_F(Cuda, DdpmForwardAndDeepCacheBranchesEqualTheReference) {
  torch::NoGradGuard ng;
  int checked = 0;
  for (const auto& c : dc::test::find_cases("ddpm")) {
    if (!c.json.contains("config") || !c.json["config"].contains("model")) continue;
    SCOPED_TRACE(c.id());
    auto net = dc::test::load_ddpm_case_model(c);
    net->to(kCuda);
    if (c.json.contains("call") && !c.json["call"].is_null()) {
      const auto eps = net->forward(on_gpu(c.io_tensor("x")), on_gpu(c.io_tensor("t"))).cpu();
      EXPECT_TRUE(dc::test::matches_reference(c, "eps", eps, c.io_tensor("eps")));
      ++checked;
    }
    if (c.json.contains("branch") && !c.json["branch"].is_null()) {
      const int k = dc::deepcache::k_from_ddpm_branch(c.json["branch"]["id"].get<int>());
      FeatureCache cache;
      const CacheRequest full{k, false}, partial{k, true};
      const auto eps_full = net->forward(on_gpu(c.io_tensor("x_full")), on_gpu(c.io_tensor("t_full")), &full, &cache).cpu();
      EXPECT_TRUE(dc::test::matches_reference(c, "eps_full", eps_full, c.io_tensor("eps_full")));
      EXPECT_TRUE(dc::test::matches_reference(c, "cached_feature", cache.get(k, eps_full.size(0)).cpu(), c.io_tensor("cached_feature")));
      FeatureCache ref_cache;
      ref_cache.store(k, on_gpu(c.io_tensor("cached_feature")));
      const auto eps_shallow =
          net->forward(on_gpu(c.io_tensor("x_shallow")), on_gpu(c.io_tensor("t_shallow")), &partial, &ref_cache).cpu();
      EXPECT_TRUE(dc::test::matches_reference(c, "eps_shallow", eps_shallow, c.io_tensor("eps_shallow")));
      ++checked;
    }
  }
  EXPECT_GT(checked, 0) << "no DDPM call/branch case under " << dc::test::fixtures_root();
}

TEST_F(Cuda, DeepCacheSamplingOnCudaEqualsTheCpu) {
  dc::harness::SampleOptions o;
  o.preset = "cifar10";
  o.steps = 10;
  o.cache_k = 3;
  o.interval = 3;
  o.n = 4;
  o.batch = 4;
  o.seed = 7;
  const auto cpu = dc::harness::sample_images(o);
  o.device = "cuda";
  const auto gpu = dc::harness::sample_images(o);
  ASSERT_EQ(cpu.images.sizes(), gpu.images.sizes());
  EXPECT_EQ(cpu.model_calls, gpu.model_calls);
  EXPECT_EQ(cpu.full_calls, gpu.full_calls);
  // uint8 images: float differences between the devices may move a value across a rounding edge.
  const auto d = (cpu.images.to(torch::kInt32) - gpu.images.cpu().to(torch::kInt32)).abs();
  EXPECT_LE(d.max().item<int>(), 1);
  EXPECT_LT(d.gt(0).to(torch::kDouble).mean().item<double>(), 0.01);
}
