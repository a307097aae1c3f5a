// The UNet contract under the one cache mechanism (models/unet_call.h), for the layout of every
// registry preset: the preset's levels, blocks, attention and conditioning at a narrow width and a
// small side (the properties are structural; the full widths are the fixture suites' and the
// manifests' business). For each: a call storing the deep feature equals the plain network
// exactly (N = 1 is no caching); at every skip index k a partial call computes exactly input
// blocks 0..k, the reused feature and output blocks S-1-k..S-1 (its CallRecord and the modules the
// trace saw), reproduces the full output from the same input, and costs less than a full call,
// its MACs from the stages it computed equal to its traced count; the denoiser's cache starts over
// with every generation; a skipped call returns x plus the stored residual at no cost.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "common/error.h"
#include "harness/denoiser.h"
#include "harness/policies/deepcache.h"
#include "metrics/macs.h"
#include "models/ddpm_unet.h"
#include "models/openai_unet.h"
#include "models/registry.h"
#include "models/unet_call.h"

namespace {

using dc::models::CallRecord;
using dc::models::CallRequest;
using dc::models::StageCache;
using dc::models::UNet;

struct Narrow {
  std::shared_ptr<UNet> net;
  torch::Tensor cond;  // for a batch of 2
};

// The preset's layout, narrow: 32 channels at the first level, the side shrunk to at most 32 (the
// attention resolutions scaled with it), contexts of 32. A family without a case here fails the
// test: every registry family must be covered.
Narrow narrow(const std::string& family, const std::string& preset) {
  torch::manual_seed(11);
  if (family == "ddpm") {
    auto cfg = dc::models::DdpmConfig::preset(preset);
    const int64_t side = std::min<int64_t>(cfg.resolution, 32), scale = cfg.resolution / side;
    for (auto& r : cfg.attn_resolutions) r /= scale;
    cfg.resolution = side;
    cfg.ch = 32;
    cfg.dropout = 0;
    return {std::make_shared<dc::models::DdpmUNetImpl>(cfg), torch::Tensor()};
  }
  auto cfg = dc::models::OpenAIUNetConfig::preset(preset);
  cfg.model_channels = 32;
  if (cfg.num_head_channels > 0) cfg.num_head_channels = 16;
  if (cfg.num_heads > 4) cfg.num_heads = 4;
  cfg.context_dim = 32;
  cfg.image_size = std::min<int64_t>(cfg.image_size, 16);
  if (family == "ldm") return {std::make_shared<dc::models::ClassConditionedUNetImpl>(cfg, 11), torch::tensor({3, 10}, torch::kInt64)};
  if (family == "sd") {  // the preset's token count: the MACs of cross-attention's projections follow it
    auto net = std::make_shared<dc::models::OpenAIUNetImpl>(cfg);
    return {net, torch::randn_like(net->example_conditioning(2, torch::TensorOptions()))};
  }
  throw dc::Error(fmt::format("no narrow layout for family '{}': add one to tests/test_unet_contract.cpp", family));
}

// Whether the trace saw a module of `stage` (its name, or a name under it).
bool ran(const std::vector<std::string>& calls, const std::string& stage) {
  return std::any_of(calls.begin(), calls.end(), [&](const std::string& c) { return c == stage || c.rfind(stage + ".", 0) == 0; });
}

void check_contract(const std::string& family, const std::string& preset) {
  SCOPED_TRACE(family + "/" + preset);
  torch::NoGradGuard ng;
  const Narrow n = narrow(family, preset);
  UNet& net = *n.net;
  net.eval();
  const int S = net.num_skips(), stages = dc::models::num_stages(S);
  EXPECT_EQ(S, dc::models::model_info(family, preset).num_skips) << "the narrow layout keeps the preset's skips";
  std::vector<int64_t> shape = net.sample_shape();
  shape.insert(shape.begin(), 2);
  const torch::Tensor x = torch::randn(shape), t = torch::tensor({10.0f, 700.0f});
  const torch::Tensor plain = net.forward(x, t, n.cond, nullptr, nullptr, nullptr);
  const dc::metrics::StageMacs macs = dc::metrics::stage_macs(net);
  ASSERT_EQ(static_cast<int>(macs.stage.size()), stages);
  EXPECT_EQ(macs.full().total, dc::metrics::call_macs(net).total) << "the stages' MACs add up to the traced full call";
  for (int k = 0; k < S; ++k) {
    SCOPED_TRACE(fmt::format("k={}", k));
    StageCache cache;
    const CallRequest full = dc::models::deepcache_request(S, k, false), partial = dc::models::deepcache_request(S, k, true);
    EXPECT_TRUE(torch::equal(net.forward(x, t, n.cond, &full, &cache, nullptr), plain)) << "storing changes nothing";
    dc::models::Trace trace;
    trace.record_calls = true;
    trace.count_macs = true;  // per image: the batch of 2 counts as one
    CallRecord record;
    const torch::Tensor part = net.forward(x, t, n.cond, &partial, &cache, &trace, &record);
    EXPECT_LT((part - plain).abs().max().item<double>(), 1e-5) << "the reused feature is the one the full call made";
    // Exactly input blocks 0..k and output blocks S-1-k..S-1.
    std::vector<uint8_t> want(stages, 0);
    for (int j = 0; j <= k; ++j) want[j] = 1;
    for (int i = S - 1 - k; i < S; ++i) want[dc::models::output_stage(S, i)] = 1;
    EXPECT_EQ(record.computed, want);
    for (int s = 0; s < stages; ++s) EXPECT_EQ(ran(trace.calls, net.stage_name(s)), want[s] == 1) << net.stage_name(s);
    const dc::metrics::CallMacs cost = macs.of(&partial);
    EXPECT_LT(cost.total, macs.full().total);
    EXPECT_EQ(cost.total, trace.macs) << "MACs from the stages computed = the traced partial call";
  }
  // A policy's observed stages come back in the call's record: here the stored deep feature.
  {
    StageCache cache;
    CallRequest full = dc::models::deepcache_request(S, S / 2, false);
    const int stage = dc::models::deepcache_stage(S, S / 2);
    full.observe = {stage};
    CallRecord record;
    net.forward(x, t, n.cond, &full, &cache, nullptr, &record);
    ASSERT_TRUE(record.outputs.count(stage));
    EXPECT_TRUE(record.outputs.at(stage).is_same(cache.peek(stage)));
    EXPECT_TRUE(record.stage_macs.empty()) << "no per-stage MACs without a counting trace";
  }
  // The denoiser resets the cache with every generation: a second generation of another batch size
  // (a partial call at once would fail on the first's cache) equals a fresh denoiser's.
  const auto policy = dc::harness::policies::deepcache_settings({S, S / 2, {0, 2}, 4});
  const auto gen = [&](const dc::sampling::CondEpsFn& eps, int64_t b) {
    std::vector<torch::Tensor> out;
    const torch::Tensor cond = n.cond.defined() ? n.cond.slice(0, 0, b) : torch::Tensor();
    for (int c = 0; c < 4; ++c) out.push_back(eps(x.slice(0, 0, b) * (1 - 0.1 * c), t.slice(0, 0, b), cond, c));
    return torch::stack(out);
  };
  const auto reused = dc::harness::cond_denoiser(n.net, policy);
  gen(reused, 2);
  EXPECT_TRUE(torch::equal(gen(reused, 1), gen(dc::harness::cond_denoiser(n.net, policy), 1)));
  // Step skipping: the whole UNet skipped, the stored residual added to the new input, nothing spent.
  StageCache cache;
  CallRequest keep;
  keep.store_residual = true;
  const torch::Tensor y = net.forward(x, t, n.cond, &keep, &cache, nullptr);
  CallRequest skip;
  skip.skip_all = true;
  CallRecord record;
  const torch::Tensor x2 = x * 0.5;
  EXPECT_TRUE(torch::allclose(net.forward(x2, t, n.cond, &skip, &cache, nullptr, &record), x2 + (y - x)));
  EXPECT_FALSE(record.network);
  EXPECT_EQ(macs.of(&skip).total, 0.0);
}

}  // namespace

TEST(UNetContract, EveryRegistryPresetUnderTheCacheMechanism) {
  int checked = 0;
  for (const auto& family : dc::models::family_names())
    for (const auto& preset : dc::models::preset_names(family)) {
      check_contract(family, preset);
      ++checked;
    }
  EXPECT_GE(checked, 5);
}

TEST(UNetContract, MalformedRequestsAreErrorsNamingTheStage) {
  const Narrow n = narrow("ddpm", "cifar10");
  UNet& net = *n.net;
  torch::NoGradGuard ng;
  const int S = net.num_skips();
  const torch::Tensor x = torch::randn({1, 3, 32, 32}), t = torch::tensor({5.0f});
  StageCache empty;
  const CallRequest partial = dc::models::deepcache_request(S, 3, true);
  const auto err = [&](const std::function<void()>& f) {
    try {
      f();
    } catch (const dc::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(err([&] { net.forward(x, t, {}, &partial, &empty, nullptr); }).find("reuses the output of up.1.block.1"), std::string::npos)
      << err([&] { net.forward(x, t, {}, &partial, &empty, nullptr); });
  CallRequest gap = dc::models::deepcache_request(S, 3, false);
  gap.stages[2] = dc::models::StageAction::Skip;  // a computed block after a skipped one
  EXPECT_NE(err([&] { net.forward(x, t, {}, &gap, &empty, nullptr); }).find("is computed but"), std::string::npos);
  CallRequest short_request;
  short_request.stages.assign(3, dc::models::StageAction::Compute);
  EXPECT_NE(err([&] { net.forward(x, t, {}, &short_request, &empty, nullptr); }).find("3 stage actions for a UNet of"), std::string::npos);
  EXPECT_THROW(dc::models::deepcache_request(S, S, true), dc::Error);
  EXPECT_EQ(err([&] { net.forward(x, t, {}, &partial, nullptr, nullptr); }), "cache request: a call that stores or reuses needs a StageCache");
}
