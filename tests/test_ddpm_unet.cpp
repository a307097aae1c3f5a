// DDPM UNet: presets equal the real checkpoints' manifests; forward, taps and DeepCache at every
// branch equal the reference (every case found in tests/fixtures/ddpm); every skip index k,
// including k = 0, runs only the shallow part on partial steps.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "common/error.h"
#include "tests/support/deepcache_cut.h"
#include "models/deepcache_io.h"
#include "models/ddpm_unet.h"
#include "models/weights/manifest.h"
#include "models/weights/strict_loader.h"
#include "support/ddpm.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using dc::models::StageCache;
using dc::models::DdpmConfig;
using dc::models::DdpmUNet;
using dc::models::Trace;

namespace {
std::vector<dc::test::Case> ddpm_cases(const char* key) {
  std::vector<dc::test::Case> out;
  for (auto& c : dc::test::find_cases("ddpm"))
    if (c.json.contains(key) && !c.json[key].is_null() && c.json.contains("config") && c.json["config"].contains("model")) out.push_back(c);
  return out;
}
// The forward and DeepCache-branch suites below: a case with a model config and a `call` or `branch`.
bool is_unet_case(const dc::test::Case& c) {
  auto has = [&](const char* k) { return c.json.contains(k) && !c.json[k].is_null(); };
  return c.family == "ddpm" && c.json.contains("config") && c.json["config"].contains("model") && (has("call") || has("branch"));
}
const bool kUNetSuites = dc::test::register_fixture_suite("DdpmUNet", is_unet_case);
}  // namespace

TEST(DdpmUNet, PresetsEqualTheFullSizeManifests) {
  const std::map<std::string, std::string> manifest_of = {
      {"cifar10", "ddpm_cifar10.keys.json"}, {"lsun_bedroom", "ddpm_bedroom.keys.json"}, {"lsun_church", "ddpm_church.keys.json"}};
  for (const auto& name : DdpmConfig::preset_names()) {
    if (!manifest_of.count(name)) continue;  // this project's own presets (fmnist) have no released checkpoint
    const std::string path = dc::test::fixtures_root() + "/ddpm/" + manifest_of.at(name);
    if (!fs::exists(path)) continue;
    const auto m = dc::weights::Manifest::load(path);
    DdpmUNet net(DdpmConfig::preset(name));
    const auto diff = dc::weights::check_module(*net, m.keys);
    EXPECT_TRUE(diff.ok()) << name << ": " << diff.summary();
    EXPECT_EQ(dc::weights::module_keys(*net).size(), m.keys.size()) << name;
    int64_t params = 0;
    for (const auto& p : net->parameters()) params += p.numel();
    ASSERT_TRUE(m.num_params.has_value());
    EXPECT_EQ(params, *m.num_params) << name;
  }
  EXPECT_THROW(DdpmConfig::preset("imagenet"), dc::Error);
}

TEST(DdpmUNet, ForwardAndEveryBlockEqualTheReference) {
  const auto cases = ddpm_cases("call");
  ASSERT_FALSE(cases.empty());
  torch::NoGradGuard ng;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.id());
    auto net = dc::test::load_ddpm_case_model(c);
    Trace tr;
    tr.record_calls = true;
    tr.tap_all = true;
    const auto eps = net->forward(c.io_tensor("x"), c.io_tensor("t"), nullptr, nullptr, &tr);
    EXPECT_TRUE(dc::test::matches_reference(c, "eps", eps, c.io_tensor("eps")));
    if (c.json["call_order"].is_array()) {
      EXPECT_EQ(tr.calls, c.json["call_order"].get<std::vector<std::string>>());
    }
    const auto io = dc::st::SafetensorsFile::open(c.io_path());
    if (io.find("temb_sinusoidal")) {
      EXPECT_TRUE(dc::test::matches_reference(c, "temb_sinusoidal", dc::models::timestep_embedding(c.io_tensor("t"), net->config().ch),
                                              c.io_tensor("temb_sinusoidal")));
    }
    for (const auto& info : io.tensors()) {
      if (info.name.rfind("act.", 0) != 0) continue;
      const std::string block = info.name.substr(4);
      ASSERT_TRUE(tr.taps.count(block)) << "no tap " << block;
      EXPECT_TRUE(dc::test::matches_reference(c, info.name, tr.taps.at(block), c.io_tensor(info.name)));
    }
  }
}

TEST(DdpmUNet, DeepCacheAtEveryReferenceBranchEqualsTheReference) {
  const auto cases = ddpm_cases("branch");
  ASSERT_FALSE(cases.empty());
  torch::NoGradGuard ng;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.id());
    auto net = dc::test::load_ddpm_case_model(c);
    const int k = dc::deepcache::k_from_ddpm_branch(c.json["branch"]["id"].get<int>());
    const std::string up = fmt::format("up.{}.block.{}", c.json["branch"]["up_select_layer"].get<int>(),
                                       c.json["branch"]["up_select_block"].get<int>());
    EXPECT_EQ(net->up_block_consuming(k), up);
    StageCache cache;
    Trace full_tr, part_tr;
    full_tr.record_calls = part_tr.record_calls = true;
    const dc::test::DeepCacheCut cut(net->num_skips(), k);
    const auto &full = cut.full, &partial = cut.partial;
    const auto eps_full = net->forward(c.io_tensor("x_full"), c.io_tensor("t_full"), &full, &cache, &full_tr);
    EXPECT_TRUE(dc::test::matches_reference(c, "eps_full", eps_full, c.io_tensor("eps_full")));
    EXPECT_TRUE(dc::test::matches_reference(c, "cached_feature", cache.get(cut.stage, eps_full.size(0), ""), c.io_tensor("cached_feature")));
    EXPECT_EQ(full_tr.calls, c.json["full_pass_modules"].get<std::vector<std::string>>());
    // The partial pass consumes the reference's own cached tensor.
    StageCache ref_cache;
    ref_cache.store(cut.stage, c.io_tensor("cached_feature"));
    const auto eps_shallow = net->forward(c.io_tensor("x_shallow"), c.io_tensor("t_shallow"), &partial, &ref_cache, &part_tr);
    EXPECT_TRUE(dc::test::matches_reference(c, "eps_shallow", eps_shallow, c.io_tensor("eps_shallow")));
    EXPECT_EQ(part_tr.calls, c.json["shallow_pass_modules"].get<std::vector<std::string>>());
  }
}

// For every k of the tiny fixture model and of the CIFAR-10 layout: a partial call fed the cache
// of the same (x, t) reproduces the full output exactly, and no module below k runs.
TEST(DdpmUNet, EverySkipIndexIncludingZeroRunsOnlyTheShallowPart) {
  torch::NoGradGuard ng;
  DdpmConfig cfg = DdpmConfig::preset("cifar10");
  cfg.ch = 32;  // the CIFAR-10 layout (4 levels, S = 12) at a small width
  cfg.dropout = 0;
  DdpmUNet net(cfg);
  net->eval();
  ASSERT_EQ(net->num_skips(), 12);
  torch::manual_seed(0);
  const auto x = torch::randn({2, 3, 32, 32});
  const auto t = torch::tensor({10.0f, 500.0f});
  const auto plain = net->forward(x, t);
  for (int k = 0; k < net->num_skips(); ++k) {
    SCOPED_TRACE(k);
    StageCache cache;
    const dc::test::DeepCacheCut cut(net->num_skips(), k);
    const auto &full = cut.full, &partial = cut.partial;
    const auto eps_full = net->forward(x, t, &full, &cache);
    EXPECT_TRUE(torch::equal(eps_full, plain)) << "a full call must equal the plain network";
    Trace tr;
    tr.record_calls = true;
    const auto eps_part = net->forward(x, t, &partial, &cache, &tr);
    EXPECT_TRUE(torch::allclose(eps_part, plain, 1e-5, 1e-5)) << (eps_part - plain).abs().max().item<float>();
    const std::set<std::string> ran(tr.calls.begin(), tr.calls.end());
    EXPECT_FALSE(ran.count("mid.block_1")) << "the middle block ran on a partial step";
    EXPECT_TRUE(ran.count(net->up_block_consuming(k)));
    EXPECT_TRUE(ran.count(net->skip_source(k)) || k == 0);
    if (k + 1 < net->num_skips()) {
      EXPECT_FALSE(ran.count(net->skip_source(k + 1))) << net->skip_source(k + 1);
    }
    if (k + 1 < net->num_skips()) {
      EXPECT_FALSE(ran.count(net->up_block_consuming(k + 1))) << net->up_block_consuming(k + 1);
    }
  }
  EXPECT_THROW(net->up_block_consuming(12), dc::Error);
  StageCache empty;
  const auto partial0 = dc::models::deepcache_request(net->num_skips(), 0, true);
  EXPECT_THROW(net->forward(x, t, &partial0, &empty), dc::Error);
}
