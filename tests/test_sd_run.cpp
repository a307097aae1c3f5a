// Stable Diffusion through the one runner: prompts from a file (sample i from line i + 1), the
// negative prompt as guidance's unconditional half, per-sample and paper seeds, CLIP score of
// (image, prompt) pairs accumulated in `run`, stored per shard and merged exactly. The full-size
// SD1.5 network with random weights at 64x64 pixels (8x8 latents: the same modules, little
// arithmetic), the real CLIP tokenizer of the fixtures, the tiny open_clip fixture for CLIP score.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common/error.h"
#include "common/image_io.h"
#include "harness/config.h"
#include "harness/hdf5.h"
#include "harness/merge.h"
#include "harness/results_store.h"
#include "harness/runner.h"
#include "harness/sampling/released_stream.h"
#include "metrics/clip_score.h"
#include "metrics/sha256.h"
#include "models/weights/safetensors.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace dc::harness;

namespace {

std::string tokenizer_dir() { return dc::test::fixtures_root() + "/clip/tokenizer"; }

// The tiny open_clip case (its model config and weights).
std::optional<dc::test::Case> tiny_clip() {
  for (const auto& c : dc::test::find_cases("clip"))
    if (c.json.contains("config") && c.json["config"].contains("model_cfg") && c.weights_path()) return c;
  return std::nullopt;
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// One sd run's settings (the layout of an experiment's base) at 64x64 pixels.
nlohmann::json sd_settings(const std::string& prompts, int n, int batch) {
  return {{"model", {{"family", "sd"}, {"preset", "sd15"}, {"weights", "random"}, {"image_size", 64}, {"tokenizer", tokenizer_dir()}}},
          {"sampler", {{"steps", 3}}},
          {"cache", {{"enabled", true}, {"k", 1}, {"interval", 2}}},
          {"samples", {{"n", n}, {"batch", batch}, {"seed", 5}, {"save_images", true}, {"grid", 0}}},
          {"conditioning", {{"prompts", prompts}}}};
}

float max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat32) - b.to(torch::kFloat32)).abs().max().item<float>();
}

}  // namespace

// samples.seed_mode paper: a generator seeded `seed` before every batch, x_T then the sampler's
// noise from it: Python's torch.manual_seed(42); torch.randn(2, 4, 8, 8) twice, bit for bit.
TEST(SdRun, PaperSeedsAreTheReleasedScriptsManualSeedThenRandn) {
  const auto noise = dc::sampling::paper_batch_noise(42, torch::kCPU);
  const torch::Tensor like = torch::empty({2, 4, 8, 8});
  const torch::Tensor first = noise(like), second = noise(like);
  EXPECT_TRUE(torch::equal(dc::sampling::paper_batch_noise(42, torch::kCPU)(like), first));  // every batch: the same draw
  EXPECT_FALSE(torch::equal(first, second));
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) GTEST_SKIP() << "python3-torch absent";
  const std::string dir = dc::test::temp_dir();
  const std::string cmd = "/usr/bin/python3 -c \"import torch,sys; torch.manual_seed(42); a=torch.randn(2,4,8,8); b=torch.randn(2,4,8,8); "
                          "open(sys.argv[1],'wb').write(torch.cat([a,b]).numpy().tobytes())\" " + dir + "/r.bin";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(dir + "/r.bin", std::ios::binary);
  std::vector<float> v(2 * 2 * 4 * 8 * 8);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  ASSERT_TRUE(in.good());
  const torch::Tensor py = torch::from_blob(v.data(), {4, 4, 8, 8}, torch::kFloat32).clone();
  EXPECT_TRUE(torch::equal(py.slice(0, 0, 2), first));
  EXPECT_TRUE(torch::equal(py.slice(0, 2, 4), second));
}

// generate.py's uint8 rule truncates; torchvision's rounds.
TEST(SdRun, PaperImagesTruncateToUint8AsGenerateDotPy) {
  const torch::Tensor x = torch::tensor({-1.0f, 1.0f, 0.0f, 2.0f * 127.9f / 255.0f - 1.0f, 5.0f, -3.0f});
  const torch::Tensor t = dc::image::to_uint8_truncated(x), r = dc::image::to_uint8(x);
  EXPECT_EQ(t[0].item<uint8_t>(), 0);
  EXPECT_EQ(t[1].item<uint8_t>(), 255);
  EXPECT_EQ(t[2].item<uint8_t>(), 127);  // 127.5 truncated
  EXPECT_EQ(r[2].item<uint8_t>(), 128);  // rounded
  EXPECT_EQ(t[3].item<uint8_t>(), 127);
  EXPECT_EQ(r[3].item<uint8_t>(), 128);
  EXPECT_EQ(t[4].item<uint8_t>(), 255);
  EXPECT_EQ(t[5].item<uint8_t>(), 0);
}

// Prompts, the negative prompt and guidance, the two seed modes, through execute_run with one
// model for all the runs.
TEST(SdRun, PromptsNegativePromptGuidanceAndSeedModes) {
  torch::NoGradGuard ng;
  const std::string dir = dc::test::temp_dir();
  const std::string prompts = dir + "/prompts.txt";
  write_text(prompts, "a red cube on a table\na blue sphere in the rain\na red cube on a table\na green cone in the snow\na fifth, unused\n");
  ModelCache models;
  auto images_of = [&](nlohmann::json s) {
    const RunSpec spec = resolve_run(s, "test");
    return execute_run(spec, 0, -1, nullptr, &models);
  };
  const auto base = images_of(sd_settings(prompts, 4, 2));
  ASSERT_EQ(base.images.sizes(), (std::vector<int64_t>{4, 3, 64, 64}));
  bool noted = false;
  for (const auto& n : base.notes) noted = noted || n.find("the first 4 of the 5 prompts") != std::string::npos;
  EXPECT_TRUE(noted);
  EXPECT_EQ(base.full_calls, (std::vector<int>{0, 2}));  // PLMS-3 (4 calls), N = 2, indexed by steps
  EXPECT_GT(max_diff(base.images[0], base.images[2]), 0.0f);  // same prompt, another sample's noise
  // The same samples whatever the batch (per-sample seeds), within float rounding of another batch shape.
  auto by4 = sd_settings(prompts, 4, 4);
  EXPECT_LE(max_diff(images_of(by4).images, base.images), 2.0f);
  // The negative prompt is guidance's other half: it changes the images; without guidance it is unused.
  auto neg = sd_settings(prompts, 2, 2);  // the first batch is enough for what follows
  neg["conditioning"]["negative_prompt"] = "blurry, low quality";
  const torch::Tensor first_batch = base.images.slice(0, 0, 2);
  EXPECT_GT(max_diff(images_of(neg).images, first_batch), 0.0f);
  auto g1 = sd_settings(prompts, 2, 2), g1neg = neg;
  g1["conditioning"]["guidance"] = 1.0;
  g1neg["conditioning"]["guidance"] = 1.0;
  const auto plain = images_of(g1);
  EXPECT_TRUE(torch::equal(plain.images, images_of(g1neg).images));
  EXPECT_GT(max_diff(plain.images, first_batch), 0.0f);
  // Paper seeds: every batch from manual_seed(42), so sample 2 (first of the second batch, same
  // prompt as sample 0) repeats sample 0; samples 1 and 3 have other prompts.
  auto paper = sd_settings(prompts, 4, 2);
  paper["samples"]["seed"] = 42;
  paper["samples"]["seed_mode"] = "paper";
  const auto p = images_of(paper);
  EXPECT_LE(max_diff(p.images[0], p.images[2]), 1.0f);
  EXPECT_GT(max_diff(p.images[1], p.images[3]), 0.0f);
  EXPECT_GT(max_diff(p.images[0], base.images[0]), 0.0f);
  // One prompt for every sample.
  auto one = sd_settings(prompts, 2, 2);
  one["conditioning"] = {{"prompt", "a red cube on a table"}};
  one["samples"]["seed"] = 42;
  one["samples"]["seed_mode"] = "paper";
  const auto single = images_of(one);
  EXPECT_LE(max_diff(single.images[0], p.images[0]), 1.0f);  // the same prompt on the same noise row
  EXPECT_GT(max_diff(single.images[1], p.images[1]), 0.0f);  // the same noise row, another prompt

  // Errors before any sampling, naming the file or key.
  auto error_of = [&](nlohmann::json s) -> std::string {
    try {
      images_of(std::move(s));
    } catch (const dc::Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of(sd_settings(prompts, 6, 2)).find("prompts.txt holds 5 prompts and samples.n is 6"), std::string::npos);
  write_text(dir + "/blank.txt", "a cat\n\na dog\n");
  EXPECT_NE(error_of(sd_settings(dir + "/blank.txt", 2, 2)).find("blank.txt:2: an empty line"), std::string::npos);
  EXPECT_NE(error_of(sd_settings(dir + "/none.txt", 2, 2)).find("none.txt: prompt file not found"), std::string::npos);
  auto no_tok = sd_settings(prompts, 2, 2);
  no_tok["model"]["tokenizer"] = dir + "/no_tokenizer";
  EXPECT_NE(error_of(no_tok).find("model.tokenizer: " + dir + "/no_tokenizer is not a folder"), std::string::npos);
}

// CLIP score in `run`: per (image, prompt) pair with the configured CLIP (here the tiny open_clip
// fixture), the exact sum stored per run and per shard, the value equal to scoring the stored
// images against their prompts at once, and two shards merged equal to the one-process run.
TEST(SdRun, ClipScoreInRunShardsMergeExactly) {
  const auto clip = tiny_clip();
  if (!clip) GTEST_SKIP() << "no tiny open_clip case under " << dc::test::fixtures_root();
  torch::NoGradGuard ng;
  const std::string dir = dc::test::temp_dir();
  write_text(dir + "/prompts.txt", "a red cube on a table\na blue sphere in the rain\na photo of a cat\na green cone in the snow\n");
  write_text(dir + "/clip.json", clip->json["config"]["model_cfg"].dump());
  // The tiny CLIP's text projection negated: with the fixture's own, every (random SD image,
  // prompt) cosine here is negative, so every score would be clamped to 0 and the comparison below
  // would test nothing; negated, the same cosines are positive.
  const std::string clip_weights = dir + "/clip_flipped.safetensors";
  {
    auto model = dc::metrics::load_clip_model("", dir + "/clip.json", *clip->weights_path(), torch::kCPU);
    model->text_projection.neg_();
    std::vector<torch::Tensor> keep;
    std::vector<dc::st::TensorBytes> out;
    const auto params = model->named_parameters();
    keep.reserve(params.size());
    for (const auto& item : params) {
      keep.push_back(item.value().detach().to(torch::kFloat32).contiguous());
      dc::st::TensorBytes b;
      b.name = item.key();
      b.shape = keep.back().sizes().vec();
      b.data = keep.back().data_ptr();
      b.nbytes = static_cast<std::size_t>(keep.back().nbytes());
      out.push_back(b);
    }
    dc::st::write_safetensors(clip_weights, out);
  }
  const std::string yaml = fmt::format(R"(experiment: sdclip
base:
  model: {{family: sd, preset: sd15, weights: random, image_size: 64, tokenizer: {tok}}}
  sampler: {{steps: 2}}
  samples: {{n: 4, batch: 2, seed: 3, save_images: true, grid: 0}}
  conditioning: {{prompts: {dir}/prompts.txt}}
  metrics:
    clip_score: {{model_config: {dir}/clip.json, weights: {w}, tokenizer: {tok}}}
baseline: false
runs:
  - {{cache.enabled: true, cache.k: 1, cache.interval: 2}}
)",
                                       fmt::arg("tok", tokenizer_dir()), fmt::arg("dir", dir), fmt::arg("w", clip_weights));
  const auto e = parse_experiment(yaml, dir + "/e.yaml", dir);
  const std::string id = e.runs.at(0).run_id, g = "runs/" + id;
  std::ostringstream log;
  ModelCache models;  // one SD network for the three runs below
  RunOptions whole;
  whole.models = &models;
  whole.results_path = dir + "/whole.h5";
  ASSERT_EQ(run_experiment(e, whole, log, false).complete, 1) << log.str();
  auto f = dc::h5::open_file(whole.results_path);
  const double score = dc::h5::read_scalar(f.id(), g + "/metrics/clip_score");
  EXPECT_EQ(dc::h5::read_tensor(f.id(), g + "/state/clip_score/count").item<int64_t>(), 4);
  // The stored images scored at once against their prompts.
  const torch::Tensor images = dc::h5::read_tensor(f.id(), g + "/images");
  dc::metrics::ClipScorer scorer(dc::metrics::load_clip_model("", dir + "/clip.json", clip_weights, torch::kCPU),
                                 dc::models::ClipTokenizer::from_dir(tokenizer_dir()), torch::kCPU);
  std::vector<torch::Tensor> hwc;
  for (int64_t i = 0; i < images.size(0); ++i) hwc.push_back(images[i].permute({1, 2, 0}).contiguous());
  const torch::Tensor pairs = dc::metrics::clip_score_pairs(scorer.image_features(hwc, 4),
                                                            scorer.text_features(dc::metrics::read_prompts(dir + "/prompts.txt"), 4));
  EXPECT_GT(pairs.max().item<float>(), 0.0f) << "every pair clamped to 0: the comparison would not test anything";
  EXPECT_NEAR(score, pairs.to(torch::kFloat64).mean().item<double>(), 1e-4);
  const auto prov = dc::h5::open_group(f.id(), g + "/provenance/clip_score");
  EXPECT_EQ(dc::h5::get_attr_string(prov.id(), "reference"), dir + "/prompts.txt");
  EXPECT_EQ(dc::h5::get_attr_string(prov.id(), "reference_sha256"), dc::metrics::sha256_file(dir + "/prompts.txt"));
  EXPECT_NE(dc::h5::get_attr_string(prov.id(), "uint8_rule").find("torchvision"), std::string::npos);
  // Two shards, the second first, merged: the one-process run's state and value, exactly.
  RunOptions s;
  s.models = &models;
  s.results_path = dir + "/shards.h5";
  s.shard_count = 2;
  for (int i : {1, 0}) {
    s.shard_index = i;
    ASSERT_EQ(run_experiment(e, s, log, false).complete, 1) << log.str();
  }
  {
    auto sf = dc::h5::open_file(s.results_path);
    EXPECT_EQ(dc::h5::read_tensor(sf.id(), "runs/" + result_key(id, 1, 2) + "/state/clip_score/count").item<int64_t>(), 2);
    EXPECT_FALSE(dc::h5::exists(sf.id(), "runs/" + result_key(id, 1, 2) + "/metrics/clip_score"));
  }
  MergeOptions mo;
  mo.inputs = {s.results_path};
  mo.out = dir + "/merged.h5";
  std::ostringstream mlog;
  merge_results(mo, mlog);
  auto m = dc::h5::open_file(mo.out);
  EXPECT_TRUE(torch::equal(dc::h5::read_tensor(m.id(), g + "/state/clip_score/sum"), dc::h5::read_tensor(f.id(), g + "/state/clip_score/sum")));
  EXPECT_EQ(dc::h5::read_scalar(m.id(), g + "/metrics/clip_score"), score);
}
