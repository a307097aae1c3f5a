// Stable Diffusion v1.5's UNet (the CompVis UNet, preset sd15) against diffusers 0.24 and
// DeepCache's SD code: every `tests/fixtures/sd15` case with a `unet_config` (the plain forward
// with its intermediate activations; the modified UNet's (cache_layer_id L, cache_block_id B)
// passes at our skip index k = 3L + B + 1; the plug-in helper's branch b at k = b). The fixture
// weights carry diffusers' names: they load through the renaming computed from the model
// (models/sd_diffusers.h), which is checked here against the full-size map traced through
// diffusers' own converter, in both directions, and against the full-size manifests.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "harness/policies/deepcache.h"
#include "harness/policies/deepcache_schedules.h"
#include "harness/denoiser.h"
#include "harness/sampling/call_schedule.h"
#include "harness/sampling/samplers.h"
#include "harness/sampling/schedule.h"
#include "tests/support/deepcache_cut.h"
#include "models/autoencoder.h"
#include "models/clip_text.h"
#include "models/deepcache_io.h"
#include "models/model.h"
#include "models/weights/tensor_io.h"
#include "models/openai_unet.h"
#include "models/sd_diffusers.h"
#include "models/weights/manifest.h"
#include "models/weights/strict_loader.h"
#include "support/fixtures.h"
#include "support/ldm.h"

namespace fs = std::filesystem;
using dc::models::OpenAIUNet;
using dc::models::OpenAIUNetConfig;

namespace {

bool is_sd15_unet_case(const dc::test::Case& c) {
  return c.family == "sd15" && c.json.contains("unet_config") && !c.json.contains("pipeline");  // the pipeline has its own suite
}
const bool kSd15UNetSuite = dc::test::register_fixture_suite("Sd15UNetCase", is_sd15_unet_case);
std::vector<dc::test::Case> sd15_unet_cases() { return dc::test::cases_where("sd15", is_sd15_unet_case); }

dc::models::KLModel load_vae(const dc::test::Case& c) {
  const auto cfg = dc::models::kl_config_from_diffusers(c.json.at("vae_config"), c.id() + ": vae_config");
  dc::models::KLModel vae(cfg);
  dc::weights::LoadOptions lo;
  lo.mapping = dc::models::diffusers_vae_mapping(*vae, cfg);
  lo.module_name = "SD VAE (" + c.id() + ")";
  const std::string weights = c.dir + "/" + c.json.value("vae_weights_file", c.json.value("weights_file", std::string()));
  dc::weights::load_strict(*vae, dc::st::SafetensorsFile::open(weights), lo);
  vae->eval();
  return vae;
}

// A scalar timestep (stored as [1]) for every sample of the batch, as diffusers broadcasts it.
torch::Tensor batch_t(const torch::Tensor& t, int64_t batch) { return t.numel() == 1 ? t.reshape({1}).expand({batch}).contiguous() : t; }

bool has_tensor(const dc::test::Case& c, const std::string& name) {
  for (const auto& s : c.io_specs())
    if (s.name == name) return true;
  return false;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  return nlohmann::json::parse(in);
}

}  // namespace

class Sd15UNetCase : public ::testing::TestWithParam<dc::test::Case> {};

TEST_P(Sd15UNetCase, EqualsTheReference) {
  const auto& c = GetParam();
  torch::NoGradGuard ng;
  auto net = dc::test::load_sd15_case_unet(c);
  const auto& cfg = net->config();
  const torch::Tensor ehs = c.io_tensor("encoder_hidden_states");
  if (c.json.contains("deepcache")) {
    const auto& d = c.json["deepcache"];
    // The modified UNet's (layer, block), or the plug-in helper's branch.
    const int k = d.contains("cache_branch_id") ? dc::deepcache::k_from_plugin_branch(d["cache_branch_id"].get<int>())
                                                : dc::deepcache::k_from_sd_layer_block(d.at("cache_layer_id").get<int>(), d.at("cache_block_id").get<int>());
    const torch::Tensor x_full = c.io_tensor("sample_full"), x_shallow = c.io_tensor("sample_shallow");
    const int64_t b = x_full.size(0);
    dc::models::StageCache cache;
    const dc::test::DeepCacheCut cut(net->num_skips(), k);
    const auto &fill = cut.full, &partial = cut.partial;
    const auto eps_full = net->forward(x_full, batch_t(c.io_tensor("timestep_full"), b), ehs, &fill, &cache, nullptr);
    EXPECT_TRUE(dc::test::matches_reference(c, "eps_full", eps_full, c.io_tensor("eps_full")));
    if (has_tensor(c, "cached_feature")) {  // the tensor entering the up block that consumes hs[k]
      EXPECT_TRUE(dc::test::matches_reference(c, "cached_feature", cache.get(cut.stage, b, ""), c.io_tensor("cached_feature")));
    }
    const auto eps_shallow = net->forward(x_shallow, batch_t(c.io_tensor("timestep_shallow"), b), ehs, &partial, &cache, nullptr);
    EXPECT_TRUE(dc::test::matches_reference(c, "eps_shallow", eps_shallow, c.io_tensor("eps_shallow")));
    if (has_tensor(c, "eps_full_at_shallow_input")) {  // the contrast: caching changed the output
      EXPECT_FALSE(torch::allclose(eps_shallow, c.io_tensor("eps_full_at_shallow_input"), 1e-3, 1e-4));
    }
    return;
  }
  const torch::Tensor x = c.io_tensor("sample");
  dc::models::Trace trace;
  trace.tap_all = true;
  const auto out = net->forward(x, batch_t(c.io_tensor("timestep"), x.size(0)), ehs, nullptr, nullptr, &trace);
  EXPECT_TRUE(dc::test::matches_reference(c, "out", out, c.io_tensor("out")));
  if (has_tensor(c, "timestep_pair")) {
    EXPECT_TRUE(dc::test::matches_reference(c, "out_pair", net->forward(x, c.io_tensor("timestep_pair"), ehs, nullptr, nullptr, nullptr),
                                            c.io_tensor("out_pair")));
  }
  // Intermediate activations: diffusers' blocks against the CompVis blocks ending where they end.
  const int64_t per_level = cfg.num_res_blocks + 1, L = cfg.num_levels();
  std::map<std::string, std::string> blocks = {{"dbg.conv_in", "input_blocks.0"}, {"dbg.mid_block", "middle_block"}};
  for (int64_t l = 0; l < L; ++l) {
    blocks[fmt::format("dbg.down_blocks.{}", l)] = fmt::format("input_blocks.{}", l * per_level + (l == L - 1 ? cfg.num_res_blocks : per_level));
    blocks[fmt::format("dbg.up_blocks.{}", l)] = fmt::format("output_blocks.{}", l * per_level + cfg.num_res_blocks);
  }
  int compared = 0;
  for (const auto& [tensor, block] : blocks) {
    if (!has_tensor(c, tensor)) continue;
    ASSERT_TRUE(trace.taps.count(block)) << "no block named " << block;
    EXPECT_TRUE(dc::test::matches_reference(c, tensor, trace.taps.at(block), c.io_tensor(tensor))) << block;
    ++compared;
  }
  EXPECT_GE(compared, 2 * L);
}

INSTANTIATE_TEST_SUITE_P(All, Sd15UNetCase, ::testing::ValuesIn(sd15_unet_cases()), [](const auto& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Sd15UNetCase);

// SD's KL-f8 autoencoder (diffusers AutoencoderKL weights, renamed at load with the 1x1 squeezes
// undone and the decoder's levels reversed): decode of latents / 0.18215, the pipeline's [0, 1]
// postprocess, the encoder's moments, posterior mean and clamped logvar, and the blocks between.
namespace {
bool is_sd15_vae_case(const dc::test::Case& c) { return c.family == "sd15" && c.json.contains("vae_config") && !c.json.contains("pipeline"); }
const bool kSd15VaeSuite = dc::test::register_fixture_suite("Sd15VaeCase", is_sd15_vae_case);
}  // namespace

class Sd15VaeCase : public ::testing::TestWithParam<dc::test::Case> {};

TEST_P(Sd15VaeCase, EqualsTheReference) {
  const auto& c = GetParam();
  torch::NoGradGuard ng;
  dc::models::KLModel vae = load_vae(c);
  const auto& cfg = vae->config();
  const double scale = c.json.at("scaling_factor").get<double>();
  const torch::Tensor z = c.io_tensor("latents") / scale;
  dc::models::Trace trace;
  trace.tap_all = true;
  const torch::Tensor image = vae->decode(z, &trace);
  EXPECT_TRUE(dc::test::matches_reference(c, "image", image, c.io_tensor("image")));
  EXPECT_TRUE(dc::test::matches_reference(c, "image_01", (image / 2 + 0.5).clamp(0, 1), c.io_tensor("image_01")));
  const torch::Tensor pq = vae->post_quant_conv->forward(z);
  EXPECT_TRUE(dc::test::matches_reference(c, "dbg.post_quant_conv", pq, c.io_tensor("dbg.post_quant_conv")));
  EXPECT_TRUE(dc::test::matches_reference(c, "dbg.decoder.conv_in", vae->decoder->conv_in->forward(pq), c.io_tensor("dbg.decoder.conv_in")));
  ASSERT_TRUE(trace.taps.count("mid.block_2"));
  EXPECT_TRUE(dc::test::matches_reference(c, "dbg.decoder.mid_block", trace.taps.at("mid.block_2"), c.io_tensor("dbg.decoder.mid_block")));
  const std::string up0 = fmt::format("decoder.up.{}.upsample", cfg.num_levels() - 1);  // diffusers' up_blocks.0 = the coarsest level
  ASSERT_TRUE(trace.taps.count(up0));
  EXPECT_TRUE(dc::test::matches_reference(c, "dbg.decoder.up_blocks.0", trace.taps.at(up0), c.io_tensor("dbg.decoder.up_blocks.0")));
  const torch::Tensor x = c.io_tensor("enc_image");
  EXPECT_TRUE(dc::test::matches_reference(c, "dbg.encoder", vae->encoder->forward(x), c.io_tensor("dbg.encoder")));
  EXPECT_TRUE(dc::test::matches_reference(c, "enc_moments", vae->moments(x), c.io_tensor("enc_moments")));
  const auto [mean, logvar] = vae->mean_logvar(x);
  EXPECT_TRUE(dc::test::matches_reference(c, "enc_mean", mean, c.io_tensor("enc_mean")));
  EXPECT_TRUE(dc::test::matches_reference(c, "enc_logvar", logvar, c.io_tensor("enc_logvar")));
  EXPECT_TRUE(dc::test::matches_reference(c, "enc_latents_scaled", mean * scale, c.io_tensor("enc_latents_scaled")));
}

INSTANTIATE_TEST_SUITE_P(All, Sd15VaeCase, ::testing::ValuesIn(dc::test::cases_where("sd15", is_sd15_vae_case)),
                         [](const auto& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Sd15VaeCase);

// DeepCache's SD pipeline (CFG 7.5 over the batch [negative, prompt], PNDM with SD1.5's config)
// through this project's one path: the PNDM call schedule, the full calls from cache.index
// "steps" (the reference builds its set over the 10 steps and indexes it with the call counter,
// so the 11th call is partial; interval 1 is every call full), the harness denoiser with the
// cache over the doubled batch, classifier-free guidance, the KL decoder. Per run: the full/partial
// flag, the guided eps and the latents of every call, and the final image.
namespace {
bool is_sd15_pipeline_case(const dc::test::Case& c) { return c.family == "sd15" && c.json.contains("pipeline"); }
const bool kSd15PipelineSuite = dc::test::register_fixture_suite("Sd15PipelineCase", is_sd15_pipeline_case);
}  // namespace

class Sd15PipelineCase : public ::testing::TestWithParam<dc::test::Case> {};

TEST_P(Sd15PipelineCase, TrajectoriesEqualTheReference) {
  const auto& c = GetParam();
  torch::NoGradGuard ng;
  const auto& pl = c.json.at("pipeline");
  ASSERT_EQ(pl.at("scheduler").get<std::string>(), "PNDMScheduler") << "the pipeline suite runs PNDM";
  const auto unet = dc::test::load_sd15_case_unet(c).ptr();
  dc::models::KLModel vae = load_vae(c);
  dc::sampling::SamplerOptions o;
  o.name = "pndm";
  o.steps = pl.at("num_inference_steps").get<int>();
  auto schedule = dc::sampling::make_call_schedule(o, 1000);
  const torch::Tensor ac = dc::sampling::alphas_cumprod({"scaled_linear", 1000, 0.00085, 0.012, "float32"});
  EXPECT_TRUE(dc::test::matches_reference(c, "pndm_alphas_cumprod", ac, c.io_tensor("pndm_alphas_cumprod")));
  dc::sampling::attach_alphas(schedule, ac);
  const double guidance = pl.at("guidance_scale").get<double>();
  const torch::Tensor prompt = c.io_tensor("prompt_embeds"), negative = c.io_tensor("negative_prompt_embeds");
  int runs = 0;
  for (const auto& [run, r] : pl.at("runs").items()) {
    SCOPED_TRACE(run);
    dc::deepcache::ScheduleSpec spec;
    spec.schedule = r.at("uniform").get<bool>() ? "uniform" : "nonuniform";
    spec.interval = r.at("cache_interval").get<int>();
    if (!r.at("center").is_null()) spec.center = r.at("center").get<int>();
    if (!r.at("pow").is_null()) spec.power = r.at("pow").get<double>();
    spec.index = "steps";
    const std::vector<int> full_steps = dc::deepcache::full_calls(spec, schedule.num_calls(), schedule.num_steps()).steps;
    EXPECT_EQ(full_steps, r.at("full_steps").get<std::vector<int>>());
    const auto plan = dc::harness::policies::deepcache_settings(
        {unet->num_skips(), dc::deepcache::k_from_sd_layer_block(r.at("cache_layer_id").get<int>(), r.at("cache_block_id").get<int>()),
         full_steps, schedule.num_calls()});
    auto log = std::make_shared<dc::harness::DenoiserLog>();
    std::vector<torch::Tensor> eps_cfg;
    const auto guided = dc::sampling::classifier_free_guidance(dc::harness::cond_denoiser(unet, plan, log), prompt, negative, guidance);
    const dc::sampling::EpsFn model = [&](const torch::Tensor& x, const torch::Tensor& t, int call) {
      eps_cfg.push_back(guided(x, t, call));
      return eps_cfg.back();
    };
    const auto tr = dc::sampling::sample(c.io_tensor("latents_init"), schedule, model,
                                         [](const torch::Tensor& like) { return torch::zeros_like(like); }, true);
    const torch::Tensor want_full = c.io_tensor(run + ".is_full"), want_eps = c.io_tensor(run + ".eps_cfg"),
                        want_lat = c.io_tensor(run + ".latents"), want_t = c.io_tensor(run + ".timesteps");
    ASSERT_EQ(static_cast<int64_t>(log->is_full.size()), want_full.numel());
    for (int i = 0; i < schedule.num_calls(); ++i) {
      EXPECT_EQ(schedule.calls[i].t, want_t[i].item<int64_t>()) << "call " << i;
      EXPECT_EQ(log->is_full[i], want_full[i].item<int64_t>() != 0) << "call " << i;
      EXPECT_TRUE(dc::test::matches_reference(c, run + ".eps_cfg", eps_cfg[i], want_eps[i])) << "call " << i;
      EXPECT_TRUE(dc::test::matches_reference(c, run + ".latents", tr.xs[i], want_lat[i + 1])) << "call " << i;
    }
    const torch::Tensor image_raw = vae->decode(tr.final / 0.18215);
    EXPECT_TRUE(dc::test::matches_reference(c, run + ".image_raw", image_raw, c.io_tensor(run + ".image_raw")));
    EXPECT_TRUE(dc::test::matches_reference(c, run + ".image", (image_raw / 2 + 0.5).clamp(0, 1), c.io_tensor(run + ".image")));
    ++runs;
  }
  EXPECT_EQ(runs, 3);
}

INSTANTIATE_TEST_SUITE_P(All, Sd15PipelineCase, ::testing::ValuesIn(dc::test::cases_where("sd15", is_sd15_pipeline_case)),
                         [](const auto& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Sd15PipelineCase);

// The reference's non-uniform schedule (sample_from_quad_center: complex powers, int32
// truncation, unique, retries with pow - 0.02) on every example the pipeline case lists.
TEST(Sd15Schedules, NonUniformExamplesOfThePipelineCase) {
  const auto cases = dc::test::cases_where("sd15", is_sd15_pipeline_case);
  if (cases.empty()) GTEST_SKIP() << "no sd15 pipeline case";
  int n = 0;
  for (const auto& c : cases)
    for (const auto& ex : c.json.value("nonuniform_schedule_examples", nlohmann::json::array())) {
      const auto r = dc::deepcache::sample_from_quad_center(ex.at("total_numbers").get<int>(), ex.at("n_samples").get<int>(),
                                                             ex.at("center").get<int>(), ex.at("pow_in").get<double>());
      EXPECT_EQ(r.steps, ex.at("indices").get<std::vector<int>>()) << ex.dump();
      EXPECT_DOUBLE_EQ(r.final_power, ex.at("pow_out").get<double>()) << ex.dump();
      ++n;
    }
  EXPECT_GT(n, 0);
}

// The renaming computed from the model equals the one traced through diffusers' converter, entry
// for entry, for the full-size UNet and VAE; and the full-size modules under the computed names
// are exactly the diffusers manifests (names and shapes after the transforms).
TEST(Sd15Names, ComputedRenamingEqualsTheTracedMapAndTheManifests) {
  const std::string dir = dc::test::fixtures_root() + "/sd15";
  const std::string map_path = dir + "/sd15_single_file_to_diffusers.map.json";
  if (!fs::exists(map_path)) GTEST_SKIP() << "no " << map_path;
  const auto map = read_json(map_path).at("compvis_to_diffusers");
  const OpenAIUNetConfig unet_cfg = OpenAIUNetConfig::preset("sd15");
  // SD1.5's vae/config.json, as far as it matters here, against the kl_f8 preset.
  const dc::models::AutoencoderConfig vae_cfg = dc::models::kl_config_from_diffusers(
      nlohmann::json{{"block_out_channels", {128, 256, 512, 512}}, {"latent_channels", 4}, {"layers_per_block", 2}}, "sd15 vae");
  const auto preset = dc::models::AutoencoderConfig::preset("kl_f8");
  EXPECT_EQ(vae_cfg.ch_mult, preset.ch_mult);
  EXPECT_EQ(vae_cfg.ch, preset.ch);
  EXPECT_EQ(vae_cfg.z_channels, preset.z_channels);
  int unet = 0, vae = 0;
  for (const auto& [compvis, target] : map.items()) {
    const std::string want = target.at(0).get<std::string>(), transform = target.at(1).get<std::string>();
    if (compvis.rfind("model.diffusion_model.", 0) == 0) {
      EXPECT_EQ("unet." + dc::models::diffusers_unet_key(compvis.substr(22), unet_cfg), want) << compvis;
      EXPECT_EQ(transform, "copy") << compvis;
      ++unet;
    } else if (compvis.rfind("first_stage_model.", 0) == 0) {
      const auto [name, t] = dc::models::diffusers_vae_key(compvis.substr(18), vae_cfg);
      EXPECT_EQ("vae." + name, want) << compvis;
      EXPECT_EQ(dc::weights::transform_name(t), transform) << compvis;
      ++vae;
    }
  }
  EXPECT_EQ(unet, 686);
  EXPECT_EQ(vae, 248);
  // The full-size modules against the diffusers manifests, through the load-time mappings.
  OpenAIUNet net(unet_cfg);
  const auto unet_manifest = dc::weights::Manifest::load(dir + "/sd15_unet.keys.json");
  const auto mapped = dc::models::diffusers_unet_mapping(*net, unet_cfg).apply(unet_manifest.keys, "sd15_unet.keys.json");
  std::vector<dc::weights::KeyShape> as_module;
  for (const auto& m : mapped) as_module.push_back({m.target, m.shape, m.dtype});
  const auto diff = dc::weights::check_module(*net, as_module);
  EXPECT_TRUE(diff.ok()) << diff.summary();
  EXPECT_EQ(mapped.size(), 686u);
  // The KL-f8 preset against the diffusers VAE manifest, with the hub file's legacy attention
  // names too (the same tensors under query/key/value/proj_attn).
  dc::models::KLModel kl(dc::models::AutoencoderConfig::preset("kl_f8"));
  const auto vae_manifest = dc::weights::Manifest::load(dir + "/sd15_vae.keys.json");
  const auto vae_mapping = dc::models::diffusers_vae_mapping(*kl, kl->config());
  std::vector<dc::weights::KeyShape> vae_module, legacy_keys;
  for (const auto& m : vae_mapping.apply(vae_manifest.keys, "sd15_vae.keys.json")) vae_module.push_back({m.target, m.shape, m.dtype});
  const auto vae_diff = dc::weights::check_module(*kl, vae_module);
  EXPECT_TRUE(vae_diff.ok()) << vae_diff.summary();
  EXPECT_EQ(vae_module.size(), 248u);
  for (auto k : vae_manifest.keys) {
    for (const auto& [now, old] : std::vector<std::pair<std::string, std::string>>{{".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}})
      if (const auto at = k.name.find(now); at != std::string::npos) k.name = k.name.substr(0, at) + old + k.name.substr(at + now.size());
    legacy_keys.push_back(k);
  }
  std::vector<dc::weights::KeyShape> legacy_module;
  for (const auto& m : vae_mapping.apply(legacy_keys, "legacy names")) legacy_module.push_back({m.target, m.shape, m.dtype});
  EXPECT_TRUE(dc::weights::check_module(*kl, legacy_module).ok());
  // Names outside the layout are refused by name.
  EXPECT_THROW(dc::models::diffusers_unet_key("input_blocks.12.0.in_layers.0.weight", unet_cfg), dc::Error);
  EXPECT_THROW(dc::models::diffusers_unet_key("output_blocks.2.3.conv.weight", unet_cfg), dc::Error);
  EXPECT_THROW(dc::models::diffusers_vae_key("decoder.mid.attn_2.q.weight", vae_cfg), dc::Error);
}

// diffusers configs that are not SD v1's layout are refused with the key named, not built wrong.
TEST(Sd15Names, DiffusersConfigsOutsideSdV1AreRefusedByKey) {
  const auto cases = sd15_unet_cases();
  if (cases.empty()) GTEST_SKIP() << "no sd15 UNet case under " << dc::test::fixtures_root();
  const nlohmann::json base = cases.front().json.at("unet_config");
  const OpenAIUNetConfig ok = dc::models::unet_config_from_diffusers(base, "unet/config.json");
  EXPECT_EQ(ok.num_heads, base.at("attention_head_dim").get<int64_t>());  // the heads trap
  EXPECT_FALSE(ok.legacy);
  struct Bad { const char* key; nlohmann::json value; const char* phrase; };
  const std::vector<Bad> bad = {
      {"use_linear_projection", true, "unet/config.json: use_linear_projection = true"},
      {"attention_head_dim", {5, 10, 20, 20}, "attention_head_dim [5,10,20,20]: one head count"},
      {"upcast_attention", true, "upcast_attention = true"},
      {"down_block_types", {"CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"}, "does not mirror"},
      {"block_out_channels", {32, 48, 32, 64}, "not multiples of the first"},
  };
  for (const auto& b : bad) {
    nlohmann::json j = base;
    j[b.key] = b.value;
    try {
      dc::models::unet_config_from_diffusers(j, "unet/config.json");
      ADD_FAILURE() << b.key << " accepted";
    } catch (const dc::Error& e) {
      EXPECT_NE(std::string(e.what()).find(b.phrase), std::string::npos) << e.what();
    }
  }
}

// The registry's sd family loads a diffusers folder (unet/, vae/, text_encoder/ with their
// config.json, checked against the modules) and the single file (CompVis names under
// model.diffusion_model., first_stage_model., cond_stage_model.transformer.; schedule buffers,
// EMA copies and position_ids left out), here with the tiny fixture networks in place of the
// full-size ones: each part then reproduces its own reference case.
TEST(SdFamily, LoadsADiffusersFolderAndTheSingleFile) {
  const std::string root = dc::test::fixtures_root();
  const auto unet_cases = dc::test::cases_where("sd15", [](const dc::test::Case& c) { return c.name == "unet_forward"; });
  const auto vae_cases = dc::test::cases_where("sd15", [](const dc::test::Case& c) { return c.name == "vae_decode"; });
  const auto text_cases = dc::test::cases_where("clip", [](const dc::test::Case& c) { return c.name == "text_encoder_sd15"; });
  if (unet_cases.empty() || vae_cases.empty() || text_cases.empty()) GTEST_SKIP() << "sd15/clip fixtures absent";
  const auto &uc = unet_cases[0], &vc = vae_cases[0], &tc = text_cases[0];
  torch::NoGradGuard ng;
  const nlohmann::json unet_json = uc.json.at("unet_config"), vae_json = vc.json.at("vae_config"),
                       text_json = tc.json.at("config").at("hf_config");
  auto build = [&](const std::string& weights) {
    auto unet = std::make_shared<dc::models::OpenAIUNetImpl>(dc::models::unet_config_from_diffusers(unet_json, "unet"));
    auto vae = std::make_shared<dc::models::KLModelImpl>(dc::models::kl_config_from_diffusers(vae_json, "vae"));
    auto text = std::make_shared<dc::models::HfClipTextModelImpl>(dc::models::HfClipTextConfig::from_hf(text_json, "text"));
    return dc::models::assemble_model(dc::models::model_info("sd", "sd15"), unet, vae, weights, "", text);
  };
  auto check = [&](const dc::models::Model& m, const std::string& what) {
    SCOPED_TRACE(what);
    const torch::Tensor x = uc.io_tensor("sample");
    const torch::Tensor t = uc.io_tensor("timestep").reshape({1}).expand({x.size(0)}).contiguous();
    EXPECT_TRUE(dc::test::matches_reference(uc, "out", m.unet->forward(x, t, uc.io_tensor("encoder_hidden_states"), nullptr, nullptr, nullptr),
                                            uc.io_tensor("out")));
    const double scale = vc.json.at("scaling_factor").get<double>();
    EXPECT_TRUE(dc::test::matches_reference(vc, "image", m.to_images(vc.io_tensor("latents")), vc.io_tensor("image")));
    EXPECT_EQ(scale, 0.18215);  // what to_images divides by
    auto& text = static_cast<dc::models::HfClipTextModelImpl&>(*m.cond_stage);
    EXPECT_TRUE(dc::test::matches_reference(tc, "last_hidden_state", text.forward(tc.io_tensor("input_ids")).last_hidden_state,
                                            tc.io_tensor("last_hidden_state")));
  };
  // A diffusers folder made of the fixture files.
  const fs::path folder = fs::path(dc::test::temp_dir()) / "sd-diffusers";
  for (const auto& [part, file, src, cfg] : std::vector<std::tuple<std::string, std::string, std::string, nlohmann::json>>{
           {"unet", "diffusion_pytorch_model.safetensors", *uc.weights_path(), unet_json},
           {"vae", "diffusion_pytorch_model.safetensors", vc.dir + "/" + vc.json.at("weights_file").get<std::string>(), vae_json},
           {"text_encoder", "model.safetensors", *tc.weights_path(), text_json}}) {
    fs::create_directories(folder / part);
    fs::copy_file(src, folder / part / file);
    std::ofstream(folder / part / "config.json") << cfg.dump(2);
  }
  const auto from_folder = build(folder.string());
  check(from_folder, "diffusers folder");
  // The single file: the loaded modules' own (CompVis) names under the single file's prefixes,
  // beside what the loader must leave out.
  std::vector<std::pair<std::string, torch::Tensor>> single;
  for (const auto& [prefix, module] : std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>>{
           {"model.diffusion_model.", from_folder.unet}, {"first_stage_model.", from_folder.first_stage},
           {"cond_stage_model.transformer.", from_folder.cond_stage}})
    for (const auto& [name, tensor] : dc::weights::state_dict(*module)) single.emplace_back(prefix + name, tensor);
  single.emplace_back("cond_stage_model.transformer.text_model.embeddings.position_ids", torch::arange(77, torch::kInt64).unsqueeze(0));
  single.emplace_back("betas", torch::zeros({1000}));
  single.emplace_back("model_ema.decay", torch::ones({}));
  const std::string file = (folder / "v1-5-tiny.safetensors").string();
  dc::st::save_tensors(file, single);
  check(build(file), "single file");
  // A folder whose UNet config is not the module's: refused, naming the file.
  nlohmann::json other = unet_json;
  other["block_out_channels"] = {32, 64, 64, 64};
  std::ofstream(folder / "unet" / "config.json") << other.dump(2);
  try {
    build(folder.string());
    ADD_FAILURE() << "a folder of another UNet loaded";
  } catch (const dc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unet/config.json: describes another UNet"), std::string::npos) << e.what();
  }
}
