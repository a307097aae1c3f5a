// The CompVis UNet (LDM-4-G) against the latent-diffusion reference: every `tests/fixtures/ldm`
// case with a UNet config (plain forward with every block's output; the released DeepCache pass,
// whose layers 1 and 2 equal layer 0: trap 1), DeepCache at every skip index k (a partial call
// reading what a full call at the same input stored equals that full call), and the full-size
// preset against the cin256-v2 checkpoint manifest.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/error.h"
#include "common/image_io.h"
#include "harness/policies/deepcache.h"
#include "harness/policies/deepcache_schedules.h"
#include "harness/denoiser.h"
#include "harness/sampling/call_schedule.h"
#include "harness/sampling/samplers.h"
#include "harness/sampling/schedule.h"
#include "models/autoencoder.h"
#include "models/model.h"
#include "models/openai_unet.h"
#include "models/weights/manifest.h"
#include "models/weights/tensor_io.h"
#include "models/weights/strict_loader.h"
#include "support/fixtures.h"
#include "support/ldm.h"

using dc::models::ClassConditionedUNet;
using dc::models::OpenAIUNetConfig;

namespace {

bool is_ldm_unet_case(const dc::test::Case& c) {
  return c.family == "ldm" && c.json.contains("config") && c.json["config"].contains("unet");
}
const bool kLdmUNetSuite = dc::test::register_fixture_suite("LdmUNetCase", is_ldm_unet_case);
std::vector<dc::test::Case> ldm_unet_cases() { return dc::test::cases_where("ldm", is_ldm_unet_case); }

}  // namespace

class LdmUNetCase : public ::testing::TestWithParam<dc::test::Case> {};

TEST_P(LdmUNetCase, EqualsTheReference) {
  const auto& c = GetParam();
  torch::NoGradGuard ng;
  auto net = dc::test::load_ldm_case_unet(c);
  const auto labels = c.io_tensor("class_label");
  EXPECT_TRUE(dc::test::matches_reference(c, "context", net->embedder()->forward(labels), c.io_tensor("context")));
  dc::models::Trace trace;
  trace.tap_all = true;
  if (c.json["config"].contains("replicate_layer")) {
    // The released DeepCache pass (`replicate_layer` L), reproduced as its named mode
    // (models::released_ldm_request): every stored output the shallow pass reads and every block it
    // computes equal the reference's.
    const int L = c.json["config"]["replicate_layer"].get<int>();
    const int S = net->num_skips();
    dc::models::StageCache cache;
    const auto fill = dc::models::released_ldm_request(S, L, false), shallow = dc::models::released_ldm_request(S, L, true);
    const auto eps_full = net->forward(c.io_tensor("x_full"), c.io_tensor("t_full"), labels, &fill, &cache, nullptr);
    EXPECT_TRUE(dc::test::matches_reference(c, "eps_full", eps_full, c.io_tensor("eps_full")));
    const auto eps_shallow = net->forward(c.io_tensor("x_shallow"), c.io_tensor("t_shallow"), labels, &shallow, &cache, &trace);
    EXPECT_TRUE(dc::test::matches_reference(c, "eps_shallow", eps_shallow, c.io_tensor("eps_shallow")));
    int compared = 0;
    for (const auto& spec : c.io_specs()) {
      if (spec.name.rfind("cache.prv_feature.", 0) == 0) {
        const auto i = std::stoul(spec.name.substr(std::string("cache.prv_feature.").size()));
        EXPECT_TRUE(dc::test::matches_reference(c, spec.name, cache.get(dc::models::output_stage(S, static_cast<int>(i)), c.io_tensor("x_full").size(0), ""), c.io_tensor(spec.name)));
        ++compared;
      } else if (spec.name.rfind("shallow.feat.", 0) == 0) {
        const std::string block = spec.name.substr(std::string("shallow.feat.").size());
        ASSERT_TRUE(trace.taps.count(block)) << "the shallow pass did not run " << block;
        EXPECT_TRUE(dc::test::matches_reference(c, spec.name, trace.taps.at(block), c.io_tensor(spec.name)));
        ++compared;
      }
    }
    EXPECT_GE(compared, 2);
    // Trap 1: whatever L is, the output equals our k = 0 (the second-to-last output block's output,
    // the tensor entering the last one, is what is reused).
    dc::models::StageCache k0;
    const auto fill0 = dc::models::deepcache_request(S, 0, false), partial0 = dc::models::deepcache_request(S, 0, true);
    net->forward(c.io_tensor("x_full"), c.io_tensor("t_full"), labels, &fill0, &k0, nullptr);
    EXPECT_TRUE(dc::test::matches_reference(c, "eps_shallow", net->forward(c.io_tensor("x_shallow"), c.io_tensor("t_shallow"), labels,
                                                                           &partial0, &k0, nullptr),
                                            c.io_tensor("eps_shallow")));
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

INSTANTIATE_TEST_SUITE_P(All, LdmUNetCase, ::testing::ValuesIn(ldm_unet_cases()), [](const auto& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(LdmUNetCase);

// The fixtures cover k = 0 only; for every k, a partial call reading the cache a full call filled
// at the same (x, t, cond) recomputes the same output (within float reordering, 1e-5).
TEST(LdmUNet, PartialCallAtEverySkipIndexEqualsTheFullCall) {
  const auto cases = ldm_unet_cases();
  if (cases.empty()) GTEST_SKIP() << "no ldm UNet case under " << dc::test::fixtures_root();
  torch::NoGradGuard ng;
  auto net = dc::test::load_ldm_case_unet(cases.front());
  const auto& cfg = net->unet()->config();
  torch::manual_seed(5);
  const auto x = torch::randn({2, cfg.in_channels, cfg.image_size, cfg.image_size});
  const auto t = torch::tensor({901, 17}, torch::kInt64);
  const auto labels = torch::tensor({3, 1000}, torch::kInt64);
  const auto plain = net->forward(x, t, labels, nullptr, nullptr, nullptr);
  for (int k = 0; k < net->num_skips(); ++k) {
    dc::models::StageCache cache;
    const auto fill = dc::models::deepcache_request(net->num_skips(), k, false);
    const auto partial = dc::models::deepcache_request(net->num_skips(), k, true);
    const auto full = net->forward(x, t, labels, &fill, &cache, nullptr);
    EXPECT_TRUE(torch::equal(full, plain)) << "k=" << k << ": storing must not change the full call";
    const auto part = net->forward(x, t, labels, &partial, &cache, nullptr);
    EXPECT_LT((part - full).abs().max().item<double>(), 1e-5) << "k=" << k;
  }
  // Negative control: a cache filled from another input gives another output.
  dc::models::StageCache other;
  const auto fill = dc::models::deepcache_request(net->num_skips(), 2, false);
  const auto partial = dc::models::deepcache_request(net->num_skips(), 2, true);
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

// ---- the DeepCache DDIM sampler of the released LDM code, end to end ----------------------------
namespace {
bool is_ldm_trajectory_case(const dc::test::Case& c) {
  return c.family == "ldm" && c.json.contains("config") && c.json["config"].contains("ldm") && c.json["config"].contains("runs");
}
const bool kLdmTrajectorySuite = dc::test::register_fixture_suite("LdmTrajectory", is_ldm_trajectory_case);
std::vector<dc::test::Case> ldm_trajectory_cases() { return dc::test::cases_where("ldm", is_ldm_trajectory_case); }

}  // namespace

class LdmTrajectory : public ::testing::TestWithParam<dc::test::Case> {};

// The tiny LatentDiffusion single file loads through the registry's ldm loader (prefixes and
// schedule buffers as in cin256-v2); the schedule, the +1 timesteps, batched CFG, DeepCache at
// k = 0 with every run's full-step list (uniform and the released non-uniform), the VQ decode
// (quantising) and the stored uint8 image equal the reference.
TEST_P(LdmTrajectory, EqualsTheReferenceStepByStep) {
  const auto& c = GetParam();
  using namespace dc::sampling;
  torch::NoGradGuard ng;
  const auto& cfg = c.json["config"];
  const auto& p = cfg["ldm"]["params"];
  auto info = dc::models::model_info("ldm", "cin256_v2");
  const auto ucfg = dc::test::openai_unet_config(p["unet_config"]["params"]);
  info.sample_shape = {ucfg.in_channels, ucfg.image_size, ucfg.image_size};
  auto unet = std::make_shared<dc::models::ClassConditionedUNetImpl>(ucfg, p["cond_stage_config"]["params"]["n_classes"].get<int64_t>());
  auto vq = std::make_shared<dc::models::VQModelImpl>(dc::test::autoencoder_config(p["first_stage_config"]["params"]));
  const auto model = dc::models::assemble_model(info, unet, vq, *c.weights_path());

  // Schedule: the registry's LDM schedule is the reference's (cin256-v2's linear_start/end).
  const dc::models::NoiseSchedule ns{"ldm_linear", p["timesteps"].get<int>(), p["linear_start"].get<double>(),
                                     p["linear_end"].get<double>(), "float64"};
  const auto ac = alphas_cumprod(ns);
  EXPECT_TRUE(torch::equal(ac, c.io_tensor("alphas_cumprod")));
  EXPECT_TRUE(torch::equal(alphas_cumprod(info.schedule), ac)) << "the ldm family's schedule is cin256-v2's";
  const int steps = cfg["ddim_steps"].get<int>();
  auto sched = make_call_schedule({"ldm_ddim", steps, "", cfg["eta"].get<double>()}, ns.num_timesteps);
  attach_alphas(sched, ac);
  EXPECT_TRUE(torch::equal(torch::tensor(sched.timesteps(), torch::kInt64), c.io_tensor("timesteps")));

  const auto labels = c.io_tensor("class_label");
  const auto uncond = torch::full_like(labels, cfg["uncond_class"].get<int64_t>());
  EXPECT_TRUE(dc::test::matches_reference(c, "c_context", unet->embedder()->forward(labels), c.io_tensor("c_context")));
  EXPECT_TRUE(dc::test::matches_reference(c, "uc_context", unet->embedder()->forward(uncond), c.io_tensor("uc_context")));
  int runs = 0;
  // Both ways of caching at layer 0: our chained k = 0 and the released code's pass (named mode).
  for (const bool released : {false, true})
  for (const auto& [run, spec] : cfg["runs"].items()) {
    SCOPED_TRACE(run + (released ? " (cache.mode ldm_released)" : ""));
    const auto& a = spec["args"];
    std::shared_ptr<const dc::harness::policies::PolicySettings> plan;
    if (!a["replicate_interval"].is_null()) {
      const int n = a["replicate_interval"].get<int>();
      const std::vector<int> full_steps = a["nonuniform"].get<bool>()
                                              ? dc::deepcache::ldm_nonuniform_full_steps(steps, n, a["pow"].get<double>())
                                              : dc::deepcache::uniform_full_steps(steps, n);
      EXPECT_EQ(full_steps, spec["slow_steps(full-pass step indices)"].get<std::vector<int>>());
      // The released LDM code caches at layer 0 only (trap 1).
      plan = dc::harness::policies::deepcache_settings({model.unet->num_skips(), 0, full_steps, steps, false, released});
    }
    auto log = std::make_shared<dc::harness::DenoiserLog>();
    const auto inner = dc::harness::cond_denoiser(model.unet, plan, log);
    std::vector<torch::Tensor> raw;
    const CondEpsFn recorded = [&](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cc, int call) {
      raw.push_back(inner(x, t, cc, call));
      return raw.back();
    };
    const auto eps = classifier_free_guidance(recorded, labels, uncond, cfg["guidance_scale"].get<double>());
    const auto tr = sample(c.io_tensor("x_T"), sched, eps, [](const torch::Tensor& like) { return torch::zeros_like(like); });
    const std::string pre = "traj." + run + ".";
    EXPECT_TRUE(torch::equal(torch::tensor(log->is_full, torch::kInt64), c.io_tensor(pre + "full_step")));
    EXPECT_TRUE(dc::test::matches_reference(c, pre + "model_out", torch::stack(raw), c.io_tensor(pre + "model_out")));
    EXPECT_TRUE(dc::test::matches_reference(c, pre + "latents", torch::stack(tr.xs), c.io_tensor(pre + "latents")));
    EXPECT_TRUE(dc::test::matches_reference(c, pre + "final_latent", tr.final, c.io_tensor(pre + "final_latent")));
    const auto image = model.to_images(tr.final);
    EXPECT_TRUE(dc::test::matches_reference(c, pre + "image", image, c.io_tensor(pre + "image")));
    // The stored image: uint8(clamp(clamp((x+1)/2, 0, 1)*255 + 0.5, 0, 255)), NHWC; the case's
    // rule allows +-1 at rounding edges.
    const auto u8 = dc::image::to_uint8(image).permute({0, 2, 3, 1});
    EXPECT_TRUE(dc::test::matches_reference(c, pre + "image_uint8", u8, c.io_tensor(pre + "image_uint8")));
    ++runs;
  }
  EXPECT_GT(runs, 0);
}

INSTANTIATE_TEST_SUITE_P(All, LdmTrajectory, ::testing::ValuesIn(ldm_trajectory_cases()), [](const auto& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(LdmTrajectory);

TEST(LdmNonUniform, ReleasedScheduleHasNoCentreAndNoRetry) {
  EXPECT_EQ(dc::deepcache::ldm_nonuniform_full_steps(10, 3, 1.5), (std::vector<int>{0, 1, 3, 6}));
  EXPECT_EQ(dc::deepcache::ldm_nonuniform_full_steps(10, 1, 1.0), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_THROW(dc::deepcache::ldm_nonuniform_full_steps(10, 3, 0.0), dc::Error);
}

// Trap 9: a cin256-v2 file without `first_stage_model.quantize.embedding.weight` loads with the
// codebook of the standalone vq-f4 file (model.first_stage_weights), and says what is missing
// without it.
TEST(LdmLoader, CodebookFallsBackToTheStandaloneVqFile) {
  const auto cases = ldm_trajectory_cases();
  if (cases.empty()) GTEST_SKIP() << "no ldm trajectory case under " << dc::test::fixtures_root();
  const auto& c = cases.front();
  torch::NoGradGuard ng;
  const auto& p = c.json["config"]["ldm"]["params"];
  const auto all = dc::st::load_all(dc::st::SafetensorsFile::open(*c.weights_path()));
  const std::string codebook = "first_stage_model.quantize.embedding.weight";
  ASSERT_TRUE(all.count(codebook));
  dc::st::NamedTensors without, vq_only;
  for (const auto& [k, v] : all)
    if (k != codebook) without.emplace_back(k, v);
  vq_only.emplace_back("quantize.embedding.weight", all.at(codebook));
  const std::string dir = dc::test::temp_dir();
  dc::st::save_tensors(dir + "/no_codebook.safetensors", without);
  dc::st::save_tensors(dir + "/vq_f4.safetensors", vq_only);
  auto build = [&](const std::string& main, const std::string& first_stage) {
    auto info = dc::models::model_info("ldm", "cin256_v2");
    auto unet = std::make_shared<dc::models::ClassConditionedUNetImpl>(dc::test::openai_unet_config(p["unet_config"]["params"]), 1001);
    auto vq = std::make_shared<dc::models::VQModelImpl>(dc::test::autoencoder_config(p["first_stage_config"]["params"]));
    return dc::models::assemble_model(info, unet, vq, main, first_stage);
  };
  const auto whole = build(*c.weights_path(), "");
  const auto split = build(dir + "/no_codebook.safetensors", dir + "/vq_f4.safetensors");
  const auto z = torch::randn({1, 3, 16, 16});
  EXPECT_TRUE(torch::equal(whole.to_images(z), split.to_images(z)));
  std::string err;
  try {
    build(dir + "/no_codebook.safetensors", "");
  } catch (const dc::Error& e) {
    err = e.what();
  }
  EXPECT_NE(err.find(codebook + " is absent"), std::string::npos) << err;
  EXPECT_NE(err.find("model.first_stage_weights"), std::string::npos) << err;
}
