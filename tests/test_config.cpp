// Experiment YAML: strict schema errors naming file, key path and expected form; includes and
// overrides; sweep (grid) and zip expansion; baselines; stable run ids.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/error.h"
#include "harness/config.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using dc::harness::parse_experiment;

namespace {
std::string error_of(const std::string& yaml, const std::string& dir = ".") {
  try {
    parse_experiment(yaml, "exp.yaml", dir);
  } catch (const dc::Error& e) {
    return e.what();
  }
  return "";
}
const char* kBase = R"(experiment: t
base:
  model: {family: ddpm, preset: cifar10, weights: random}
  sampler: {name: ddim, steps: 10, spacing: quad}
  samples: {n: 2, batch: 2, seed: 0}
)";
}  // namespace

TEST(Config, SchemaErrorsNameFileKeyAndExpectedForm) {
  struct Bad { std::string yaml, phrase; };
  const std::vector<Bad> bad = {
      {std::string(kBase) + "  cache: {intervall: 3}\n", "exp.yaml:6: base.cache.intervall: unknown key (known here: enabled, k, interval"},
      {std::string(kBase) + "  cache: {enabled: true, k: 12}\n", "cache.k: skip index 12 is out of range for the ddpm 'cifar10' UNet: valid k are 0..11"},
      {std::string(kBase) + "  cache: {enabled: true, interval: 0}\n", "cache.interval: 0 must be at least 1"},
      {std::string(kBase) + "  cache: {enabled: true, interval: two}\n", "cache.interval: expected an integer, got a string (\"two\")"},
      {std::string(kBase) + "  cache: {enabled: true, interval: 2, schedule: nonuniform, center: 5, power: 1.01}\n",
       "cache.schedule: impossible non-uniform schedule"},
      {std::string(kBase) + "  cache: {enabled: yes}\n", "cache.enabled: expected true or false"},
      {"experiment: t\nbase: {sampler: {name: heun}}\n", "sampler.name: 'heun' is not one of: ddim, ddpm, ldm_ddim, plms, pndm, diffusers_ddim, dpmpp_2m, euler"},
      {"experiment: t\nbase: {model: {preset: imagenet}}\n", "model.preset: unknown ddpm preset 'imagenet'"},
      {std::string(kBase) + "  sampler: {steps: 5}\n", "key 'base.sampler' appears twice"},
      {std::string(kBase) + "sweeps: {cache.k: [1]}\n", "unknown top-level key 'sweeps'"},
      {std::string(kBase) + "sweep: {cache.k: 3}\n", "sweep.cache.k: expected a non-empty list of values"},
      {std::string(kBase) + "zip:\n  - {cache.interval: [2, 3], cache.power: [1.4]}\n", "need equal lengths"},
      {"experiment: t\nbase: {model: [1, 2]}\n", "model: expected a mapping"},
      {"base: {}\n", "'experiment' (the experiment's name, a string) is required"},
      {"experiment: t\nbase: {a: 1\n", "not valid YAML"},
      {std::string(kBase) + "  metrics: {fid: {reference: r.npz, weights: a.st}, sfid: {reference: s.npz, weights: b.st}}\n",
       "metrics.sfid.weights: b.st differs from metrics.fid.weights (a.st): FID, sFID, the Inception Score and precision/recall share one"},
      {std::string(kBase) + "  metrics: {sfid: {weights: a.st}}\n", "metrics.sfid.reference: missing"},
      {std::string(kBase) + "  metrics: {precision_recall: {weights: a.st}}\n", "metrics.precision_recall.reference: missing"},
      {std::string(kBase) + "  metrics: {precision_recall: {reference: r.npz, k: 5}}\n", "metrics.precision_recall.k: unknown key"},
      {std::string(kBase) + "  metrics: {inception_score: {weights: a.st}, precision_recall: {reference: r.npz, weights: c.st}}\n",
       "metrics.precision_recall.weights: c.st differs from metrics.inception_score.weights (a.st)"},
  };
  for (const auto& b : bad) {
    const std::string e = error_of(b.yaml);
    EXPECT_NE(e.find(b.phrase), std::string::npos) << "yaml:\n" << b.yaml << "\nerror: " << e;
    EXPECT_NE(e.find("exp.yaml"), std::string::npos) << e;
  }
}

TEST(Config, SweepGridZipAndBaselines) {
  const auto e = parse_experiment(std::string(kBase) + R"(sweep:
  cache.k: [0, 2, 5]
zip:
  - {cache.interval: [2, 5], samples.seed: [0, 1]}
)",
                                  "exp.yaml");
  // 3 (grid) x 2 (zipped pairs) cached runs + one baseline per distinct samples block (seed 0, 1).
  ASSERT_EQ(e.runs.size(), 8u);
  EXPECT_TRUE(e.runs[0].baseline && e.runs[1].baseline);
  EXPECT_EQ(e.runs[0].samples.seed, 0u);
  EXPECT_EQ(e.runs[1].samples.seed, 1u);
  int cached = 0;
  for (const auto& r : e.runs) cached += r.cache.enabled ? 1 : 0;
  EXPECT_EQ(cached, 6);
  // Order: grid outer, zip inner; zipped values move together.
  EXPECT_EQ(e.runs[2].resolved["cache"]["k"], 0);
  EXPECT_EQ(e.runs[2].resolved["cache"]["interval"], 2);
  EXPECT_EQ(e.runs[2].samples.seed, 0u);
  EXPECT_EQ(e.runs[3].resolved["cache"]["k"], 0);
  EXPECT_EQ(e.runs[3].resolved["cache"]["interval"], 5);
  EXPECT_EQ(e.runs[3].samples.seed, 1u);
  EXPECT_EQ(e.runs[7].resolved["cache"]["k"], 5);
  // Settings that do not apply (center/power of a uniform schedule) do not make distinct runs.
  const auto same = parse_experiment(std::string(kBase) + "sweep: {cache.center: [1, 2, 3]}\n", "exp.yaml");
  EXPECT_EQ(same.runs.size(), 2u);
  // No baseline when asked.
  const auto nb = parse_experiment(std::string(kBase) + "baseline: false\nsweep: {cache.k: [0, 1]}\n", "exp.yaml");
  EXPECT_EQ(nb.runs.size(), 2u);
}

TEST(Config, RunIdsAreStableAndIgnoreBatchAndName) {
  const auto a = parse_experiment(std::string(kBase) + "sweep: {cache.k: [2]}\n", "exp.yaml");
  std::string yaml_b = kBase;
  yaml_b.replace(yaml_b.find("batch: 2"), 8, "batch: 1");
  const auto b = parse_experiment(yaml_b + "runs:\n  - {name: renamed, cache.k: 2}\n", "exp.yaml");
  ASSERT_EQ(a.runs.size(), 2u);
  ASSERT_EQ(b.runs.size(), 2u);
  EXPECT_EQ(a.runs[1].run_id, b.runs[1].run_id) << "batch size and name stay out of the run id (docs/experiments.md, How runs are formed)";
  EXPECT_EQ(a.runs[0].run_id, b.runs[0].run_id);
  EXPECT_EQ(a.runs[1].run_id.size(), 16u);
  const auto c = parse_experiment(std::string(kBase) + "sweep: {cache.k: [3]}\n", "exp.yaml");
  EXPECT_NE(a.runs[1].run_id, c.runs[1].run_id);
  EXPECT_EQ(a.runs[0].run_id, c.runs[0].run_id) << "the baseline is shared";
  // The id is a pure function of the resolved config (same text, same id, run after run).
  EXPECT_EQ(parse_experiment(std::string(kBase) + "sweep: {cache.k: [2]}\n", "exp.yaml").runs[1].run_id, a.runs[1].run_id);
}

TEST(Config, IncludedBlocksAreOverriddenByBase) {
  const std::string dir = dc::test::temp_dir();
  fs::create_directories(dir + "/configs");
  std::ofstream(dir + "/configs/model.yaml") << "model: {family: ddpm, preset: lsun_church, weights: '${DEEPCACHE_WEIGHTS}/church.safetensors'}\nsampler: {steps: 50}\n";
  const auto e = parse_experiment("experiment: t\ninclude: [configs/model.yaml]\nbase: {sampler: {steps: 20}}\n", "exp.yaml", dir);
  ASSERT_EQ(e.runs.size(), 1u);
  EXPECT_EQ(e.runs[0].model.preset, "lsun_church");
  EXPECT_EQ(e.runs[0].sampler.steps, 20);
  EXPECT_EQ(e.runs[0].model.weights, "${DEEPCACHE_WEIGHTS}/church.safetensors") << "expanded only when a run starts";
  EXPECT_NE(error_of("experiment: t\ninclude: [missing.yaml]\n", dir).find("missing.yaml: cannot open included config block"),
            std::string::npos);
  ::setenv("DC_TEST_WEIGHTS_DIR", "/data/w", 1);
  EXPECT_EQ(dc::harness::expand_env("${DC_TEST_WEIGHTS_DIR}/a.safetensors", "w"), "/data/w/a.safetensors");
  ::unsetenv("DC_TEST_UNSET_VAR");
  try {
    dc::harness::expand_env("${DC_TEST_UNSET_VAR}/a", "model.weights");
    FAIL();
  } catch (const dc::Error& e2) {
    EXPECT_NE(std::string(e2.what()).find("DC_TEST_UNSET_VAR is not set"), std::string::npos);
  }
}

// The run ids of the shipped experiments are pinned (tests/golden/run_ids.txt): a refactor that
// changed how settings resolve would silently stop existing results files from resuming. Every
// experiments/*.yaml must have its line. To change the ids on purpose (a new setting that changes
// results), rerun with DEEPCACHE_UPDATE_GOLDEN=1, which rewrites the file, and say why in the commit.
TEST(Config, ShippedExperimentsKeepTheirRunIds) {
  const std::string golden_path = "tests/golden/run_ids.txt";
  std::map<std::string, std::string> golden;  // experiment file -> "id id id"
  {
    std::ifstream in(golden_path);
    ASSERT_TRUE(in) << golden_path << " is missing (run from the source tree; DEEPCACHE_UPDATE_GOLDEN=1 creates it)";
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] == '#') continue;
      const auto sp = line.find(' ');
      golden[line.substr(0, sp)] = sp == std::string::npos ? "" : line.substr(sp + 1);
    }
  }
  std::map<std::string, std::string> now;
  for (const auto& f : dc::test::find_files("experiments", ".yaml")) {
    const auto e = dc::harness::load_experiment(f);
    std::string ids;
    for (const auto& r : e.runs) ids += (ids.empty() ? "" : " ") + r.run_id;
    now[fs::path(f).lexically_normal().string()] = ids;
  }
  ASSERT_FALSE(now.empty()) << "no experiments/*.yaml found from " << fs::current_path();
  if (const char* u = std::getenv("DEEPCACHE_UPDATE_GOLDEN"); u && std::string(u) == "1") {
    std::ofstream out(golden_path);
    out << "# Run ids of the shipped experiments in plan order, pinned by Config.ShippedExperimentsKeepTheirRunIds\n"
        << "# (tests/test_config.cpp). Changing one means existing results files no longer resume that run.\n";
    for (const auto& [f, ids] : now) out << f << " " << ids << "\n";
    GTEST_SKIP() << "rewrote " << golden_path << " with " << now.size() << " experiments";
  }
  for (const auto& [f, ids] : now) {
    const auto it = golden.find(f);
    if (it == golden.end()) {
      ADD_FAILURE() << f << ": no line in " << golden_path << " (a new experiment: DEEPCACHE_UPDATE_GOLDEN=1 adds it)";
      continue;
    }
    EXPECT_EQ(ids, it->second) << f << ": run ids changed; existing results files would no longer resume these runs";
  }
  for (const auto& [f, ids] : golden) EXPECT_TRUE(now.count(f)) << golden_path << " lists " << f << ", which no longer exists";
}

// cache.index: PNDM's N steps make N + 1 calls. DeepCache's SD pipeline builds the full set over
// the steps and reads it as call indices (its default here for pndm: PLMS-50 at N = 5 is 10 full
// calls, the 51st partial); `calls` computes it over all 51 calls (11 full). The index is part of
// the run id only where it can matter (pndm) or when set.
TEST(Config, PndmFullCallsFollowTheSdReferenceIndexingOrAllCalls) {
  const std::string yaml = R"(experiment: t
base:
  model: {family: ddpm, preset: cifar10, weights: random}
  sampler: {name: pndm, steps: 50}
  cache: {enabled: true, k: 1, interval: 5}
baseline: false
runs:
  - {}
  - {cache.index: calls}
)";
  const auto e = parse_experiment(yaml, "exp.yaml");
  ASSERT_EQ(e.runs.size(), 2u);
  EXPECT_EQ(e.runs[0].plan.calls.num_calls(), 51);
  EXPECT_EQ(e.runs[0].plan.full_calls, (std::vector<int>{0, 5, 10, 15, 20, 25, 30, 35, 40, 45}));
  EXPECT_EQ(e.runs[1].plan.full_calls, (std::vector<int>{0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50}));
  EXPECT_NE(e.runs[0].run_id, e.runs[1].run_id);
  EXPECT_EQ(e.runs[0].resolved["cache"]["index"], "steps");
  EXPECT_NE(error_of(std::string(kBase) + "  cache: {enabled: true, index: step}\n").find("cache.index: 'step' is not one of: calls, steps"),
            std::string::npos);
}

// Text-to-image settings: prompts (a file or one text, exactly one), the negative prompt, guidance
// 7.5 by default, seed_mode paper (the batch then changes the samples, so it is in the run id),
// CLIP score, the tokenizer and the image size; each misuse is one error naming its key.
TEST(Config, TextToImageSettingsAndTheirErrors) {
  const std::string sd = R"(experiment: t
base:
  model: {family: sd, preset: sd15, weights: random}
  sampler: {steps: 10}
  samples: {n: 2, batch: 2, seed: 0}
)";
  const auto e = parse_experiment(sd + "  conditioning: {prompts: parti.txt}\n", "exp.yaml");
  const auto& r = e.runs.at(0);
  EXPECT_EQ(r.conditioning.guidance, 7.5);  // the SD pipeline's default
  EXPECT_EQ(r.resolved["conditioning"]["prompts"], "parti.txt");
  EXPECT_EQ(r.resolved["conditioning"]["negative_prompt"], "");
  EXPECT_FALSE(r.resolved["conditioning"].contains("classes"));
  EXPECT_EQ(r.sampler.name, "pndm");
  // Per-sample seeds: the batch is not in the run id; paper seeds: it is.
  const std::string p = "  conditioning: {prompt: a cat}\n";
  EXPECT_EQ(parse_experiment(sd + p, "exp.yaml").runs[0].run_id,
            parse_experiment(std::string(sd).replace(sd.find("batch: 2"), 8, "batch: 1") + p, "exp.yaml").runs[0].run_id);
  const std::string paper = std::string(sd).replace(sd.find("seed: 0}"), 8, "seed: 42, seed_mode: paper}");
  const std::string paper_b1 = std::string(paper).replace(paper.find("batch: 2"), 8, "batch: 1");
  const auto pa = parse_experiment(paper + p, "exp.yaml").runs.at(0), pb = parse_experiment(paper_b1 + p, "exp.yaml").runs.at(0);
  EXPECT_NE(pa.run_id, pb.run_id);
  EXPECT_EQ(pa.resolved["samples"]["seed_mode"], "paper");
  // Resized SD and its tokenizer are recorded.
  const auto sized = parse_experiment(std::string(sd).replace(sd.find("weights: random}"), 16, "weights: random, image_size: 256, tokenizer: tok}") + p,
                                      "exp.yaml").runs.at(0);
  EXPECT_EQ(sized.plan.model.sample_shape, (std::vector<int64_t>{4, 32, 32}));
  EXPECT_EQ(sized.plan.model.image_shape, (std::vector<int64_t>{3, 256, 256}));
  EXPECT_EQ(sized.resolved["model"]["image_size"], 256);
  EXPECT_EQ(sized.resolved["model"]["tokenizer"], "tok");
  // CLIP score: the paper's ViT-g-14 by default.
  const auto clip = parse_experiment(sd + p + "  metrics: {clip_score: {weights: g.st}}\n", "exp.yaml").runs.at(0);
  EXPECT_TRUE(clip.metrics.clip_score);
  EXPECT_EQ(clip.resolved["metrics"]["clip_score"]["model"], "vit-g-14");

  const std::string ldm = R"(experiment: t
base:
  model: {family: ldm, preset: cin256_v2, weights: random}
  sampler: {steps: 10}
)";
  struct Bad { std::string yaml, phrase; };
  const std::vector<Bad> bad = {
      {sd, "conditioning.prompts: missing: the sd family generates from text"},
      {sd + "  conditioning: {prompts: a.txt, prompt: a cat}\n", "conditioning.prompt: give conditioning.prompts (a file) or conditioning.prompt"},
      {sd + "  conditioning: {prompts: \"\"}\n", "conditioning.prompts: empty path"},
      {sd + "  conditioning: {prompt: a cat, classes: balanced}\n", "conditioning.classes: unknown key"},
      {ldm + "  conditioning: {prompts: a.txt}\n", "conditioning.prompts: unknown key"},
      {ldm + "  samples: {seed_mode: paper}\n", "samples.seed_mode: paper reproduces the released Stable Diffusion script"},
      {ldm + "  metrics: {clip_score: {weights: g.st}}\n", "metrics.clip_score: CLIP score pairs each image with its prompt; the ldm family"},
      {"experiment: t\nbase:\n  model: {family: ddpm, preset: cifar10, image_size: 64}\n", "model.image_size: the ddpm family generates at its preset's size"},
      {"experiment: t\nbase:\n  model: {family: ldm, preset: cin256_v2, image_size: 100}\n", "model.image_size: 100 must be a multiple of 32"},
      {"experiment: t\nbase:\n  model: {family: ldm, preset: cin256_v2, tokenizer: t}\n", "model.tokenizer: the ldm family takes no text"},
      {std::string(sd).replace(sd.find("weights: random}"), 16, "weights: random, image_size: 520}") + p,
       "model.image_size: 520 must be a multiple of 64"},
      {sd + p + "  metrics: {clip_score: {model: vit-b-32}}\n", "metrics.clip_score.model: 'vit-b-32' is not one of: vit-g-14, vit-l-14"},
      {sd + p + "  metrics: {clip_score: {model: vit-l-14, model_config: m.json}}\n", "metrics.clip_score.model: give model (a preset) or model_config"},
      {sd + "  conditioning: {prompt: a cat, guidance: 0.5}\n", "conditioning.guidance: 0.5 must be at least 1"},
  };
  for (const auto& b : bad) {
    const std::string err = error_of(b.yaml);
    EXPECT_NE(err.find(b.phrase), std::string::npos) << "want: " << b.phrase << "\ngot:  " << err;
  }
}

// Issue 17: an error names the line a user edits and the key as written there (base:, an included
// block, a sweep axis, a zip group, a runs entry or --set), then which run was being read.
TEST(Config, ErrorsPointAtTheLineThatSetTheKey) {
  const std::string head = "experiment: t\nbase:\n  model: {family: ddpm, preset: fmnist, weights: random}\n"
                           "  sampler: {name: ddim, steps: 10}\n";
  auto msg = error_of(head + "  similarity: {enabled: true, taps: [up.1.blocks.2]}\nsweep:\n  cache.k: [1, 3]\n");
  EXPECT_NE(msg.find("exp.yaml:5: base.similarity.taps: 'up.1.blocks.2' is not a block of the ddpm 'fmnist' UNet (valid taps: "
                     "up.2.block.0"),
            std::string::npos) << msg;
  EXPECT_NE(msg.find("; in run cache.k=1"), std::string::npos) << msg;
  msg = error_of(head + "sweep:\n  cache.interval: [2]\n  cache.k: [1, 12]\n");
  EXPECT_NE(msg.find("exp.yaml:7: sweep.cache.k: skip index 12 is out of range"), std::string::npos) << msg;
  msg = error_of(head + "zip:\n  cache.interval: [2, 3]\n  cache.k: [1, 12]\n");
  EXPECT_NE(msg.find("exp.yaml:7: zip.cache.k: skip index 12"), std::string::npos) << msg;
  msg = error_of(head + "runs:\n  - {cache.k: 1}\n  - {cache.k: 1,\n     cache.schedule: nonuniform, cache.interval: 2, cache.center: 5, cache.power: 1.01}\n");
  EXPECT_NE(msg.find("exp.yaml:8: runs[1].cache.schedule: impossible non-uniform schedule"), std::string::npos) << msg;
  EXPECT_NE(msg.find("; in run runs[1]"), std::string::npos) << msg;
  // A centre outside the calls is accepted (as the reference does, and a smoke run's fewer steps
  // make one), with a warning located like an error (`plan` and `run` print it).
  const auto e = parse_experiment(head + "runs:\n  - {cache.k: 1,\n     cache.schedule: nonuniform, cache.center: 40}\n", "exp.yaml");
  ASSERT_EQ(e.runs.back().plan.warnings.size(), 1u);
  EXPECT_EQ(e.runs.back().plan.warnings[0].rfind("exp.yaml:7: runs[0].cache.center: cache.center 40 is outside [0, 10), the model calls", 0), 0u)
      << e.runs.back().plan.warnings[0];
  EXPECT_TRUE(e.runs.front().plan.warnings.empty()) << "the baseline has no schedule";
  // An impossible schedule: the hint points the way that helps (fewer full steps).
  msg = error_of(head + "  cache: {interval: 2, schedule: nonuniform, center: 5, power: 1.01}\nsweep: {cache.k: [1]}\n");
  EXPECT_NE(msg.find("exp.yaml:5: base.cache.schedule: impossible non-uniform schedule"), std::string::npos) << msg;
  EXPECT_NE(msg.find("try a larger N, a larger power"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("smaller N"), std::string::npos) << msg;
  // --set names itself; an included block names its own file and line.
  try {
    parse_experiment(head + "sweep: {cache.k: [1]}\n", "exp.yaml", ".", {"cache.k=40"});
    ADD_FAILURE() << "--set cache.k=40 accepted";
  } catch (const dc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--set cache.k=40: cache.k: skip index 40"), std::string::npos) << e.what();
  }
  const std::string dir = dc::test::temp_dir() + "/config_origin";
  fs::create_directories(dir);
  std::ofstream(dir + "/block.yaml") << "sampler: {name: ddim}\ncache:\n  k: 1\n  interval: 0\n";
  msg = error_of("experiment: t\ninclude: block.yaml\nbase: {model: {preset: fmnist}}\nsweep: {cache.k: [1]}\n", dir);
  EXPECT_NE(msg.find(dir + "/block.yaml:4: base.cache.interval: 0 must be at least 1"), std::string::npos) << msg;
}
