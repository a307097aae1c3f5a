// The CompVis UNet (LDM-4-G) against the latent-diffusion reference: every `tests/fixtures/ldm`
// case with a UNet config (plain forward with every block's output; the released DeepCache pass,
// whose layers 1 and 2 equal layer 0: trap 1), DeepCache at every skip index k (a partial call
// reading what a full call at the same input stored equals that full call), and the full-size
// preset against the cin256-v2 checkpoint manifest.
#include <gtest/gtest.h>

#include <filesystem>

#include "models/openai_unet.h"
#include "models/weights/manifest.h"
#include "models/weights/strict_loader.h"
#include "support/fixtures.h"

using dc::models::ClassConditionedUNet;
using dc::models::OpenAIUNetConfig;

namespace {

OpenAIUNetConfig config_from_case(const dc::test::Case& c) {
  const auto& u = c.json.at("config").at("unet");
  OpenAIUNetConfig cfg;
  cfg.image_size = u.at("image_size").get<int64_t>();
  cfg.in_channels = u.at("in_channels").get<int64_t>();
  cfg.out_channels = u.at("out_channels").get<int64_t>();
  cfg.model_channels = u.at("model_channels").get<int64_t>();
  cfg.attention_resolutions = u.at("attention_resolutions").get<std::vector<int64_t>>();
  cfg.num_res_blocks = u.at("num_res_blocks").get<int64_t>();
  cfg.channel_mult = u.at("channel_mult").get<std::vector<int64_t>>();
  cfg.num_heads = u.value("num_heads", int64_t{1});
  cfg.num_head_channels = u.value("num_head_channels", int64_t{-1});
  cfg.transformer_depth = u.value("transformer_depth", int64_t{1});
  cfg.context_dim = u.at("context_dim").get<int64_t>();
  cfg.legacy = u.value("legacy", true);
  if (!u.value("use_spatial_transformer", true)) throw std::runtime_error(c.id() + ": only the spatial-transformer UNet is built");
  return cfg;
}

ClassConditionedUNet load_case_model(const dc::test::Case& c) {
  ClassConditionedUNet net(config_from_case(c), c.json.at("config").at("cond_stage").at("n_classes").get<int64_t>());
  dc::weights::LoadOptions opt;
  opt.module_name = "LDM UNet (" + c.id() + ")";
  dc::weights::load_strict(*net, dc::st::SafetensorsFile::open(*c.weights_path()), opt);
  net->eval();
  return net;
}

std::vector<dc::test::Case> unet_cases() {
  std::vector<dc::test::Case> out;
  for (auto& c : dc::test::find_cases("ldm"))
    if (c.json.contains("config") && c.json["config"].contains("unet")) out.push_back(c);
  return out;
}

}  // namespace

class LdmUNetCase : public ::testing::TestWithParam<dc::test::Case> {};

TEST_P(LdmUNetCase, EqualsTheReference) {
  const auto& c = GetParam();
  torch::NoGradGuard ng;
  auto net = load_case_model(c);
  const auto labels = c.io_tensor("class_label");
  EXPECT_TRUE(dc::test::matches_reference(c, "context", net->embedder()->forward(labels), c.io_tensor("context")));
  dc::models::Trace trace;
  trace.tap_all = true;
  if (c.json["config"].contains("replicate_layer")) {
    // The released DeepCache pass (`replicate_layer` L): a full pass fills the cache; the shallow
    // pass at another (x, t) runs input_blocks[0] and reads the second-to-last output block's
    // output, i.e. our skip index k = 0, whatever L is (trap 1: layers 1 and 2 equal layer 0).
    const int S = net->num_skips();
    dc::deepcache::FeatureCache cache;
    const dc::deepcache::CacheRequest fill{0, false}, shallow{0, true};
    const auto eps_full = net->forward(c.io_tensor("x_full"), c.io_tensor("t_full"), labels, &fill, &cache, nullptr);
    EXPECT_TRUE(dc::test::matches_reference(c, "eps_full", eps_full, c.io_tensor("eps_full")));
    const std::string read = "cache.prv_feature." + std::to_string(S - 2);
    EXPECT_TRUE(dc::test::matches_reference(c, read, cache.get(0, labels.size(0)), c.io_tensor(read)));
    const auto eps_shallow = net->forward(c.io_tensor("x_shallow"), c.io_tensor("t_shallow"), labels, &shallow, &cache, &trace);
    EXPECT_TRUE(dc::test::matches_reference(c, "eps_shallow", eps_shallow, c.io_tensor("eps_shallow")));
    for (const std::string& block : std::vector<std::string>{"input_blocks.0", "output_blocks." + std::to_string(S - 1)})
      EXPECT_TRUE(dc::test::matches_reference(c, "shallow.feat." + block, trace.taps.at(block), c.io_tensor("shallow.feat." + block)));
  } else {
    const auto eps = net->forward(c.io_tensor("x"), c.io_tensor("t"), labels, nullptr, nullptr, &trace);
    for (const auto& spec : c.io_specs()) {
      if (spec.name.rfind("feat.", 0) != 0) continue;
      const std::string block = spec.name.substr(5);
      ASSERT_TRUE(trace.taps.count(block)) << "no block named " << block;
      EXPECT_TRUE(dc::test::matches_reference(c, spec.name, trace.taps.at(block), c.io_tensor(spec.name)));
    }
    EXPECT_TRUE(dc::test::matches_reference(c, "eps", eps, c.io_tensor("eps")));
  }
}

INSTANTIATE_TEST_SUITE_P(All, LdmUNetCase, ::testing::ValuesIn(unet_cases()), [](const auto& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(LdmUNetCase);

// The fixtures cover k = 0 only; for every k, a partial call reading the cache a full call filled
// at the same (x, t, cond) recomputes the same output (within float reordering, 1e-5).
TEST(LdmUNet, PartialCallAtEverySkipIndexEqualsTheFullCall) {
  const auto cases = unet_cases();
  if (cases.empty()) GTEST_SKIP() << "no ldm UNet case under " << dc::test::fixtures_root();
  torch::NoGradGuard ng;
  auto net = load_case_model(cases.front());
  const auto& cfg = net->unet()->config();
  torch::manual_seed(5);
  const auto x = torch::randn({2, cfg.in_channels, cfg.image_size, cfg.image_size});
  const auto t = torch::tensor({901, 17}, torch::kInt64);
  const auto labels = torch::tensor({3, 1000}, torch::kInt64);
  const auto plain = net->forward(x, t, labels, nullptr, nullptr, nullptr);
  for (int k = 0; k < net->num_skips(); ++k) {
    dc::deepcache::FeatureCache cache;
    const dc::deepcache::CacheRequest fill{k, false}, partial{k, true};
    const auto full = net->forward(x, t, labels, &fill, &cache, nullptr);
    EXPECT_TRUE(torch::equal(full, plain)) << "k=" << k << ": storing must not change the full call";
    const auto part = net->forward(x, t, labels, &partial, &cache, nullptr);
    EXPECT_LT((part - full).abs().max().item<double>(), 1e-5) << "k=" << k;
  }
  // Negative control: a cache filled from another input gives another output.
  dc::deepcache::FeatureCache other;
  const dc::deepcache::CacheRequest fill{2, false}, partial{2, true};
  net->forward(torch::randn_like(x), t, labels, &fill, &other, nullptr);
  EXPECT_GT((net->forward(x, t, labels, &partial, &other, nullptr) - plain).abs().max().item<double>(), 1e-3);
}

// The full-size preset has exactly the parameters of the released cin256-v2 checkpoint.
TEST(LdmUNet, Cin256PresetEqualsTheCheckpointManifest) {
  const std::string manifest = dc::test::fixtures_root() + "/ldm/ldm_cin256_v2.keys.json";
  if (!std::filesystem::exists(manifest)) GTEST_SKIP() << manifest << " is absent";
  ClassConditionedUNet net(OpenAIUNetConfig::preset("cin256_v2"), 1001);
  const auto m = dc::weights::Manifest::load(manifest);
  std::vector<dc::weights::KeyShape> wanted;
  int64_t unet_elements = 0;
  for (const auto& k : m.keys)
    if (k.name.rfind("model.diffusion_model.", 0) == 0 || k.name.rfind("cond_stage_model.", 0) == 0) {
      wanted.push_back(k);
      if (k.name.rfind("model.diffusion_model.", 0) == 0) {
        int64_t n = 1;
        for (auto d : k.shape) n *= d;
        unet_elements += n;
      }
    }
  const auto diff = dc::weights::check_module(*net, wanted);
  EXPECT_TRUE(diff.ok() && diff.missing.empty() && diff.unexpected.empty()) << diff.summary();
  int64_t params = 0;
  for (const auto& p : net->unet()->parameters()) params += p.numel();
  EXPECT_EQ(params, unet_elements);
  EXPECT_EQ(params, 400920579) << "the README's UNet size";
}
