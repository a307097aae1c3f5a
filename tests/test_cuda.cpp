// CUDA: the same reference fixtures on the GPU (skipped, with a message, where torch sees no CUDA
// device). TF32 is switched off for the parity checks: the fixtures were made in float32, and
// cuDNN's TF32 convolutions (PyTorch's default on Ampere and newer) would exceed their tolerance.
// Also: a DeepCache sampling run on CUDA equals the same run on the CPU.
#include <gtest/gtest.h>

#include <ATen/Context.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "harness/config.h"
#include "harness/runner.h"
#include "harness/sample.h"
#include "tests/support/deepcache_cut.h"
#include "models/deepcache_io.h"
#include "models/ddpm_unet.h"
#include "models/unet_graphs.h"
#include "support/ddpm.h"
#include "support/fixtures.h"
#include "support/half.h"

using dc::models::StageCache;

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
      StageCache cache;
      const dc::test::DeepCacheCut cut(net->num_skips(), k);
      const auto &full = cut.full, &partial = cut.partial;
      const auto eps_full = net->forward(on_gpu(c.io_tensor("x_full")), on_gpu(c.io_tensor("t_full")), &full, &cache).cpu();
      EXPECT_TRUE(dc::test::matches_reference(c, "eps_full", eps_full, c.io_tensor("eps_full")));
      EXPECT_TRUE(dc::test::matches_reference(c, "cached_feature", cache.get(cut.stage, eps_full.size(0), "").cpu(), c.io_tensor("cached_feature")));
      StageCache ref_cache;
      ref_cache.store(cut.stage, on_gpu(c.io_tensor("cached_feature")));
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

// fp16 on the GPU against fp32, per family (support/half.h: the tolerances and where they come from).
TEST_F(Cuda, Fp16CallsStayWithinEachFamilysTolerance) { dc::test::expect_fp16_within_tolerance(kCuda); }

// model.cuda_graphs: the same run with and without graphs, for each family and for a plain run,
// gives the same images (a graph replays the kernels the eager call launched; stated tolerance:
// uint8 within one level on at most 0.1% of values, as between two GPU runs whose cuDNN choices
// differ), and the graphs of every kind of call are captured before the first batch: n = 5 in
// batches of 3 has a last batch of 2, so a DeepCache run captures full and partial graphs at two
// batch sizes, and nothing more during the timed batches.
TEST_F(Cuda, GraphReplayEqualsEagerForEveryFamily) {
  const std::string tok = dc::test::fixtures_root() + "/clip/tokenizer";
  using nlohmann::json;
  struct GraphCase {
    std::string name;
    json run;
    int captures;  // expected before the first batch and in all
  };
  const std::vector<GraphCase> cases = {
      {"ddpm plain", {{"model", {{"family", "ddpm"}, {"preset", "cifar10"}}}, {"sampler", {{"name", "ddim"}, {"steps", 6}}},
                      {"samples", {{"n", 5}, {"batch", 3}}}}, 2},
      {"ddpm k=2 N=3", {{"model", {{"family", "ddpm"}, {"preset", "cifar10"}}}, {"sampler", {{"name", "ddim"}, {"steps", 6}}},
                        {"cache", {{"enabled", true}, {"k", 2}, {"interval", 3}}}, {"samples", {{"n", 5}, {"batch", 3}}}}, 4},
      {"ldm k=0 N=2 guidance 1.5", {{"model", {{"family", "ldm"}, {"preset", "cin256_v2"}}}, {"sampler", {{"name", "ldm_ddim"}, {"steps", 4}}},
                                    {"conditioning", {{"guidance", 1.5}}}, {"cache", {{"enabled", true}, {"k", 0}, {"interval", 2}}},
                                    {"samples", {{"n", 2}, {"batch", 2}}}}, 2},
      {"sd k=1 N=2 pndm", {{"model", {{"family", "sd"}, {"preset", "sd15"}, {"image_size", 64}, {"tokenizer", tok}}},
                           {"sampler", {{"name", "pndm"}, {"steps", 4}}}, {"conditioning", {{"prompt", "a red cube on a table"}}},
                           {"cache", {{"enabled", true}, {"k", 1}, {"interval", 2}}}, {"samples", {{"n", 2}, {"batch", 2}}}}, 2},
  };
  for (const auto& gc : cases) {
    SCOPED_TRACE(gc.name);
    json j = gc.run;
    j["device"] = "cuda";
    j["model"]["weights"] = "random";
    j["samples"]["save_images"] = true;
    j["samples"]["grid"] = 0;
    const auto eager = dc::harness::execute_run(dc::harness::resolve_run(j, "t"));
    j["model"]["cuda_graphs"] = true;
    const auto graphed = dc::harness::execute_run(dc::harness::resolve_run(j, "t"));
    ASSERT_TRUE(eager.images.defined() && graphed.images.defined());
    ASSERT_EQ(eager.images.sizes(), graphed.images.sizes());
    const auto d = (eager.images.to(torch::kInt32) - graphed.images.to(torch::kInt32)).abs();
    EXPECT_LE(d.max().item<int>(), 1);
    EXPECT_LE(d.gt(0).to(torch::kDouble).mean().item<double>(), 1e-3);
    const std::string notes = fmt::format("{}", fmt::join(graphed.notes, "\n"));
    EXPECT_NE(notes.find(fmt::format("CUDA graphs: {} captured before the first batch", gc.captures)), std::string::npos) << notes;
    EXPECT_NE(notes.find(fmt::format("CUDA graphs: {} captured in all", gc.captures)), std::string::npos) << notes;
    EXPECT_EQ(eager.is_full, graphed.is_full);
  }
}

// A graph's outputs are copied out: a multistep sampler keeps past eps (PLMS), and a full call's
// cached feature stays valid until the next full call replaces it. DeepCache's reference branch
// cases on the GPU through the graphs equal the eager calls.
TEST_F(Cuda, GraphedCallsEqualEagerCallsOnTheFixtureBranches) {
  torch::NoGradGuard ng;
  int checked = 0;
  for (const auto& c : dc::test::find_cases("ddpm")) {
    if (!c.json.contains("branch") || c.json["branch"].is_null() || !c.json.contains("config")) continue;
    SCOPED_TRACE(c.id());
    auto net = dc::test::load_ddpm_case_model(c);
    net->to(kCuda);
    const int k = dc::deepcache::k_from_ddpm_branch(c.json["branch"]["id"].get<int>());
    dc::models::UNetGraphs graphs(net.ptr());
    StageCache eager_cache, graph_cache;
    const dc::test::DeepCacheCut cut(net->num_skips(), k);
    const auto &full = cut.full, &partial = cut.partial;
    const auto x_full = on_gpu(c.io_tensor("x_full")), t_full = on_gpu(c.io_tensor("t_full"));
    const auto x_shallow = on_gpu(c.io_tensor("x_shallow")), t_shallow = on_gpu(c.io_tensor("t_shallow"));
    const auto e_full = net->forward(x_full, t_full, &full, &eager_cache);
    const auto e_part = net->forward(x_shallow, t_shallow, &partial, &eager_cache);
    const auto g_full = graphs.forward(x_full, t_full, {}, &full, &graph_cache);
    const auto g_part = graphs.forward(x_shallow, t_shallow, {}, &partial, &graph_cache);
    const auto g_part2 = graphs.forward(x_shallow, t_shallow, {}, &partial, &graph_cache);  // a replay
    EXPECT_TRUE(dc::test::matches_reference(c, "eps_full", g_full.cpu(), e_full.cpu()));
    EXPECT_TRUE(dc::test::matches_reference(c, "eps_shallow", g_part.cpu(), e_part.cpu()));
    EXPECT_TRUE(torch::equal(g_part, g_part2));
    EXPECT_NE(g_part.data_ptr(), g_part2.data_ptr()) << "eps must be a copy of the graph's output";
    EXPECT_EQ(graphs.captures(), 2);
    EXPECT_EQ(graphs.replays(), 3);
    ++checked;
  }
  EXPECT_GT(checked, 0) << "no DDPM branch case under " << dc::test::fixtures_root();
}
