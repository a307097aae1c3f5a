// One pipeline for every family (DESIGN.md §3-5): the model registry describes each preset as its
// UNet does; every sampler of the registry is reachable from YAML and runs through the one loop;
// a run is resolved once (timesteps, full-step list) and executed as resolved; `--set` overrides
// any setting and is part of the run's config.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "harness/config.h"
#include "harness/policies/deepcache_schedules.h"
#include "harness/runner.h"
#include "harness/sampling/call_schedule.h"
#include "harness/sampling/schedule.h"
#include "models/model.h"
#include "harness/policies/deepcache.h"
#include "harness/policies/policy_state.h"
#include "models/deepcache_io.h"
#include "models/unet_call.h"
#include "support/agreement.h"
#include "support/cli.h"
#include "support/fixtures.h"

using dc::harness::parse_experiment;

namespace {

const char* kFmnist = R"(experiment: t
base:
  model: {family: ddpm, preset: fmnist, weights: random}
  sampler: {name: ddim, steps: 5, spacing: uniform}
  samples: {n: 2, batch: 2, seed: 3, grid: 0}
)";
}  // namespace

TEST(Registry, EveryPresetIsDescribedAsItsUNetIsBuilt) {
  const auto families = dc::models::family_names();
  ASSERT_FALSE(families.empty());
  for (const auto& f : families)
    for (const auto& p : dc::models::preset_names(f)) {
      const auto info = dc::models::model_info(f, p);
      const auto m = dc::models::build_model(f, p, "random");
      EXPECT_EQ(info.num_skips, m.unet->num_skips()) << f << "/" << p;
      EXPECT_EQ(info.tap_names, m.unet->tap_names()) << f << "/" << p;
      EXPECT_EQ(info.sample_shape, m.unet->sample_shape()) << f << "/" << p;
      EXPECT_FALSE(m.unet->is_training()) << "built models are in eval mode";
      EXPECT_NO_THROW(dc::sampling::sampler_info(info.default_sampler)) << f << "/" << p;
      EXPECT_EQ(dc::sampling::alphas_cumprod(info.schedule).size(0), info.schedule.num_timesteps);
    }
  EXPECT_NE(dc::test::error_text([] { dc::models::model_info("sdxl", "base"); }).find("unknown model family 'sdxl' (known: ddpm"),
            std::string::npos);
  EXPECT_NE(dc::test::error_text([] { dc::models::build_model("ddpm", "cifar10", "/nonexistent/w.safetensors"); })
                .find("/nonexistent/w.safetensors: weights file not found for ddpm preset 'cifar10'"),
            std::string::npos);
}

// The registry's DDPM noise schedule is the reference's: every DDPM trajectory fixture made with
// the released configs' schedule (linear 1e-4..0.02, T = 1000) has exactly these alphas_cumprod.
// The torch-free fuzz build answers registry questions from fuzz/registry.json (fuzz/registry_table.cpp):
// it must be the live registry's table, or the experiment fuzz target validates against stale presets.
TEST(Registry, FuzzTableIsCurrent) {
  const std::string path = "fuzz/registry.json", live = dc::models::registry_table_json();
  if (std::getenv("DC_WRITE_FUZZ_REGISTRY")) {
    std::ofstream(path) << live;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in) << path << " missing (run from the repository root)";
  const std::string stored((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(nlohmann::json::parse(stored), nlohmann::json::parse(live))
      << path << " differs from the registry: DC_WRITE_FUZZ_REGISTRY=1 build/dc_tests --gtest_filter=Registry.FuzzTableIsCurrent";
  // The fuzz build reads it back with parse_registry_table: every field survives the round trip.
  EXPECT_EQ(dc::models::registry_table_json(dc::models::parse_registry_table(live)), live);
  // The resizing both registries share (models/model_info.cpp), through the real one.
  EXPECT_EQ(dc::models::model_info("sd", "sd15", 512).sample_shape, (std::vector<int64_t>{4, 64, 64}));
  EXPECT_THROW(dc::models::model_info("sd", "sd15", 520), dc::Error);
  EXPECT_THROW(dc::models::model_info("ddpm", "cifar10", 64), dc::Error);
}

TEST(Registry, DdpmNoiseScheduleEqualsTheReference) {
  const auto ac = dc::sampling::alphas_cumprod(dc::models::model_info("ddpm", "cifar10").schedule);
  int compared = 0;
  for (const auto& c : dc::test::find_cases("ddpm")) {
    if (!c.json.contains("step_kinds") || !c.json["config"].contains("diffusion")) continue;  // trajectory cases
    const auto& d = c.json["config"]["diffusion"];
    if (d.value("num_diffusion_timesteps", 0) != 1000 || d.value("beta_start", 0.0) != 1e-4 || d.value("beta_end", 0.0) != 0.02)
      continue;
    EXPECT_TRUE(torch::equal(ac, c.io_tensor("alphas_cumprod"))) << c.id();
    ++compared;
  }
  if (compared == 0) GTEST_SKIP() << "no DDPM case with the released schedule under " << dc::test::fixtures_root();
}

// Every sampler is reachable from YAML and runs end to end through the runner; the model calls
// it makes are the ones the resolved plan lists (PLMS: N steps = N + 1 calls).
TEST(Samplers, EverySamplerOfTheRegistryRunsFromYaml) {
  for (const auto& s : dc::sampling::sampler_registry()) {
    const auto e = parse_experiment(std::string(kFmnist) + "  cache: {enabled: true, k: 2, interval: 2}\n" +
                                        "runs:\n  - {sampler.name: " + s.name + ", sampler.steps: 4}\n",
                                    "exp.yaml");
    ASSERT_EQ(e.runs.size(), 2u) << s.name;  // baseline + the run
    const auto& run = e.runs.back();
    EXPECT_EQ(run.sampler.name, s.name);
    const int calls = run.plan.calls.num_calls();
    const bool extra_call = s.name == "plms" || s.name == "pndm";  // N steps = N + 1 calls
    EXPECT_EQ(calls, extra_call ? 5 : 4) << s.name;
    // pndm: the SD reference's indexing (the set over the 4 steps, read as call indices: the 5th call partial).
    const std::vector<int> want = s.name == "pndm" ? std::vector<int>{0, 2} : dc::deepcache::uniform_full_steps(calls, 2);
    EXPECT_EQ(run.plan.full_calls, want) << s.name;
    const auto r = dc::harness::execute_run(run);
    EXPECT_EQ(r.timesteps, run.plan.calls.timesteps()) << s.name;
    EXPECT_EQ(static_cast<int>(r.is_full.size()), calls) << s.name;
    EXPECT_EQ(r.grid.defined(), false);
    EXPECT_EQ(r.samples, 2);
  }
  // The ddim repo's spacing is the sampler's; ldm's discretisation has the +1.
  const auto ldm = parse_experiment(std::string(kFmnist) + "runs:\n  - {sampler.name: ldm_ddim, sampler.steps: 4}\n", "exp.yaml");
  EXPECT_EQ(ldm.runs.back().plan.calls.timesteps(), (std::vector<int64_t>{751, 501, 251, 1}));
}

TEST(Samplers, OutOfScheduleSettingsAreUserErrors) {
  auto err = [](const std::string& runs) {
    return dc::test::error_text([&] { parse_experiment(std::string(kFmnist) + "runs:\n  - " + runs + "\n", "exp.yaml"); });
  };
  EXPECT_NE(err("{sampler.name: ldm_ddim, sampler.steps: 1000}").find("outside the 1000-step noise schedule"), std::string::npos)
      << err("{sampler.name: ldm_ddim, sampler.steps: 1000}");
  EXPECT_NE(err("{sampler.name: plms, sampler.eta: 0.5}").find(": sampler.eta: PLMS needs eta = 0"), std::string::npos)
      << err("{sampler.name: plms, sampler.eta: 0.5}");
  EXPECT_EQ(err("{sampler.name: plms, sampler.eta: 0.5}").find("sampler.eta: sampler.eta"), std::string::npos) << "one key prefix";
  EXPECT_NE(err("{sampler.name: plms, sampler.eta: 0.5}").find("(set by runs[0].sampler.eta); in run runs[0]"), std::string::npos)
      << "located where the run set it: " << err("{sampler.name: plms, sampler.eta: 0.5}");
  EXPECT_NE(err("{sampler.eta: -1}").find("sampler.eta: -1 must be >= 0"), std::string::npos);
  EXPECT_NE(err("{sampler.steps: 1001}").find("sampler.steps: 1001 must be in [1, 1000]"), std::string::npos);
  EXPECT_NE(err("{sampler.name: heun}").find("is not one of: ddim, ddpm, ldm_ddim, plms, pndm, diffusers_ddim, dpmpp_2m, euler"),
            std::string::npos);
  EXPECT_NE(err("{similarity.enabled: true, similarity.taps: [up.1.blocks.2]}")
                .find("similarity.taps: 'up.1.blocks.2' is not a block of the ddpm 'fmnist' UNet (valid taps: up.2.block.0"),
            std::string::npos)
      << err("{similarity.enabled: true, similarity.taps: [up.1.blocks.2]}");
}

// The non-uniform search runs once, when the experiment is read; the runner executes the
// resolved policy (settings replaced after resolution are what runs).
TEST(Config, RunsAreResolvedOnceAndExecutedAsResolved) {
  const auto e = parse_experiment(std::string(kFmnist) +
                                      "runs:\n  - {cache.enabled: true, cache.k: 1, cache.interval: 3, cache.schedule: nonuniform, "
                                      "cache.center: 2, cache.power: 1.4}\n",
                                  "exp.yaml");
  auto run = e.runs.back();
  const auto nu = dc::deepcache::nonuniform_full_steps(5, 3, 2, 1.4);
  EXPECT_EQ(run.plan.full_calls, nu.steps);
  EXPECT_EQ(run.plan.policy_facts.value("final_power", 0.0), nu.final_power);
  EXPECT_EQ(run.plan.calls.timesteps(), (std::vector<int64_t>{800, 600, 400, 200, 0}));
  run.cache.settings = dc::harness::policies::deepcache_settings({run.plan.model.num_skips, 1, {0, 3}, 5});
  const auto r = dc::harness::execute_run(run);
  EXPECT_EQ(r.full_calls, (std::vector<int>{0, 3}));
  EXPECT_EQ(r.is_full, (std::vector<int>{1, 0, 0, 1, 0}));
}

TEST(Config, SetOverridesAnySettingAndIsPartOfTheRunId) {
  const std::string yaml = std::string(kFmnist) + "sweep:\n  cache.k: [1, 3]\n";
  const auto plain = parse_experiment(yaml, "exp.yaml");
  const auto set = parse_experiment(yaml, "exp.yaml", ".", {"samples.n=1", "sampler.steps=2", "model.weights=random", "cache.interval=4"});
  ASSERT_EQ(plain.runs.size(), set.runs.size());
  for (std::size_t i = 0; i < set.runs.size(); ++i) {
    const auto& r = set.runs[i];
    EXPECT_EQ(r.samples.n, 1);
    EXPECT_EQ(r.sampler.steps, 2);
    EXPECT_EQ(r.resolved["samples"]["n"], 1) << "recorded in the run's config";
    EXPECT_EQ(r.resolved["sampler"]["steps"], 2);
    EXPECT_EQ(r.plan.calls.num_calls(), 2);
    if (r.cache.enabled) {
      EXPECT_EQ(r.resolved["cache"]["interval"], 4) << "--set wins over the YAML and the sweep";
    }
    EXPECT_NE(r.run_id, plain.runs[i].run_id);
  }
  // YAML values: numbers, booleans, lists.
  const auto typed = parse_experiment(yaml, "exp.yaml", ".", {"samples.save_images=true", "cache.schedule=explicit", "cache.full_steps=[0, 2]"});
  EXPECT_TRUE(typed.runs.back().samples.save_images);
  EXPECT_EQ(typed.runs.back().plan.full_calls, (std::vector<int>{0, 2}));
  // Errors name the override.
  const auto bad_key = dc::test::error_text([&] { parse_experiment(yaml, "exp.yaml", ".", {"samples.nn=1"}); });
  EXPECT_NE(bad_key.find("--set samples.nn=1"), std::string::npos) << bad_key;
  EXPECT_NE(bad_key.find("samples.nn: unknown key"), std::string::npos) << bad_key;
  const auto bad_value = dc::test::error_text([&] { parse_experiment(yaml, "exp.yaml", ".", {"samples.n=two"}); });
  EXPECT_NE(bad_value.find("samples.n: expected an integer"), std::string::npos) << bad_value;
  const auto no_eq = dc::test::error_text([&] { parse_experiment(yaml, "exp.yaml", ".", {"samples.n"}); });
  EXPECT_NE(no_eq.find("--set samples.n: expected KEY=VALUE"), std::string::npos) << no_eq;
}

// The CI smoke run in miniature: the quick start at full size with one sample and two steps.
TEST(CliRun, SetMakesASmokeRunOfAShippedExperiment) {
  const std::string results = dc::test::temp_dir() + "/smoke.h5";
  const auto r = dc::test::run_cli("run experiments/quickstart.yaml --results " + results +
                                   " --set model.weights=random samples.n=1 sampler.steps=2");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("(5 run, 0 skipped as complete, 0 failed)"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("FID-FMNIST not computed: it needs at least 2 samples, the run made 1"), std::string::npos) << r.err;
  const auto again = dc::test::run_cli("run experiments/quickstart.yaml --results " + results +
                                       " --set model.weights=random samples.n=1 sampler.steps=2");
  EXPECT_EQ(again.code, 0);
  EXPECT_NE(again.out.find("(0 run, 5 skipped as complete, 0 failed)"), std::string::npos)
      << "the overrides give stable run ids: " << again.out;
  const auto bad = dc::test::run_cli("run experiments/quickstart.yaml --results " + results + " --set samples.nn=1");
  EXPECT_EQ(bad.code, 2);
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
}

// The paper's Table 5 ablation: partial calls read zeros instead of the cached feature. With every
// call full (N = 1) nothing is read and the images equal the cached run's; with reuse they differ.
TEST(Config, ZeroFeatureAblationReplacesOnlyWhatPartialCallsRead) {
  auto images = [](const std::string& overrides) {
    const auto e = parse_experiment(std::string(kFmnist) + "  cache: {enabled: true, k: 3}\n" + "runs:\n  - " + overrides + "\n",
                                    "exp.yaml");
    auto run = e.runs.back();
    run.samples.save_images = true;
    return dc::harness::execute_run(run).images;
  };
  EXPECT_TRUE(torch::equal(images("{cache.interval: 1, cache.feature: zero}"), images("{cache.interval: 1}")));
  EXPECT_TRUE(dc::test::images_differ(images("{cache.interval: 2, cache.feature: zero}"), images("{cache.interval: 2}")));
  // The rule itself: after a full call the policy hands partial calls zeros of the stored feature's
  // shape, in place of the stored feature.
  const auto settings = dc::harness::policies::deepcache_settings({4, 1, {0, 2}, 4, /*zero_feature=*/true});
  const auto policy = settings->make();
  const int stage = dc::models::deepcache_stage(4, 1);
  dc::models::StageCache cache;
  policy->begin(2);
  const auto full = policy->decide(0, {}, {});
  EXPECT_TRUE(full.computes_everything());
  cache.store(stage, torch::ones({2, 3}));
  policy->observe(0, {}, cache);
  const auto partial = policy->decide(1, {}, {});
  ASSERT_TRUE(partial.given.count(stage));
  EXPECT_EQ(partial.given.at(stage).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(partial.given.at(stage).sizes(), (std::vector<int64_t>{2, 3}));
}

TEST(Config, ReleasedLdmPassIsAnLdmOnlyMode) {
  const auto err = dc::test::error_text([] {
    parse_experiment(std::string(kFmnist) + "runs:\n  - {cache.enabled: true, cache.mode: ldm_released}\n", "exp.yaml");
  });
  EXPECT_NE(err.find("cache.mode: ldm_released is the released LDM code's pass; the ddpm family caches chained only"),
            std::string::npos)
      << err;
}

// The report names what changes a run's meaning beyond the columns: the zero-feature ablation
// (and, for conditional families, the guidance scale in the sampler column).
TEST(CliRun, ReportNamesTheZeroFeatureAblation) {
  const std::string results = dc::test::temp_dir() + "/zero.h5";
  const auto r = dc::test::run_cli("run experiments/quickstart.yaml --only 96a27c641869c724 --results " + results +
                                   " --set model.weights=random samples.n=1 sampler.steps=2 cache.feature=zero");
  ASSERT_EQ(r.code, 2) << "--only names a run id without the overrides: " << r.out << r.err;
  const auto run = dc::test::run_cli("run experiments/quickstart.yaml --results " + results +
                                     " --set model.weights=random samples.n=1 sampler.steps=2 cache.feature=zero");
  ASSERT_EQ(run.code, 0) << run.out << run.err;
  const auto rep = dc::test::run_cli("report " + results);
  ASSERT_EQ(rep.code, 0) << rep.err;
  EXPECT_NE(rep.out.find("| uniform zero-feature |"), std::string::npos) << rep.out;
}
