// CLIP family: the BPE tokenizer (every prompt of every tokenizer case), the open_clip / OpenAI
// CLIP model (presets against the full-size manifest; tiny-case image features, text features and
// scores), PIL-exact preprocessing, the SD1.5 text encoder, the clip-score command and SHA-256.
// Every case found under $DEEPCACHE_FIXTURES/clip is run; configs come from the case json.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/image_io.h"
#include "metrics/clip_preprocess.h"
#include "metrics/clip_score.h"
#include "metrics/sha256.h"
#include "models/clip.h"
#include "models/clip_text.h"
#include "models/clip_tokenizer.h"
#include "models/weights/manifest.h"
#include "models/weights/strict_loader.h"
#include "support/cli.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using dc::models::ClipTokenizer;

namespace {

// The clip suites below select by what a case's config holds; together they read every case that
// has one of these.
bool is_clip_case(const dc::test::Case& c) {
  if (c.family != "clip" || !c.json.contains("config")) return false;
  const auto& cfg = c.json["config"];
  return cfg.contains("vocab_file") || cfg.contains("model_cfg") || cfg.contains("hf_config") ||
         (cfg.contains("preprocess") && cfg.contains("image_sizes_hw"));
}
const bool kClipSuites = dc::test::register_fixture_suite("Clip*", is_clip_case);

std::vector<dc::test::Case> clip_cases(const std::function<bool(const nlohmann::json&)>& keep) {
  std::vector<dc::test::Case> out;
  for (auto& c : dc::test::find_cases("clip"))
    if (c.json.contains("config") && keep(c.json["config"])) out.push_back(c);
  return out;
}

// The tokenizer files: a case's own vocab/merges when its config names them, else the family's
// tokenizer/ folder.
ClipTokenizer tokenizer_for(const dc::test::Case& c) {
  const auto& cfg = c.json["config"];
  if (cfg.contains("vocab_file") && cfg.contains("merges_file"))
    return ClipTokenizer::load(c.dir + "/" + cfg["vocab_file"].get<std::string>(), c.dir + "/" + cfg["merges_file"].get<std::string>());
  return ClipTokenizer::from_dir(c.dir + "/tokenizer");
}

torch::Tensor ids_tensor(const std::vector<std::vector<int64_t>>& rows) {
  std::vector<int64_t> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return torch::tensor(flat, torch::kInt64).view({static_cast<int64_t>(rows.size()), -1});
}

}  // namespace

// ---- tokenizer ------------------------------------------------------------------------------------

TEST(ClipTokenizer, EveryPromptOfEveryTokenizerCaseMatches) {
  const auto cases = clip_cases([](const nlohmann::json& cfg) { return cfg.contains("vocab_file") && cfg.contains("prompts"); });
  ASSERT_FALSE(cases.empty()) << "no tokenizer case under " << dc::test::fixtures_root() << "/clip";
  for (const auto& c : cases) {
    SCOPED_TRACE(c.id());
    const auto& cfg = c.json["config"];
    const auto tok = tokenizer_for(c);
    EXPECT_EQ(tok.sot(), cfg.value("bos", int64_t{49406}));
    EXPECT_EQ(tok.eot(), cfg.value("eos", int64_t{49407}));
    const int64_t pad = cfg.value("pad", tok.eot());
    ASSERT_TRUE(pad == tok.eot() || pad == 0) << "pad " << pad;
    const auto padding = pad == 0 ? ClipTokenizer::Padding::Zero : ClipTokenizer::Padding::EndToken;
    const auto prompts = cfg["prompts"].get<std::vector<std::string>>();
    const int ctx = cfg.value("context_length", 77);
    const auto expected = c.io_tensor("input_ids");
    ASSERT_EQ(expected.size(0), static_cast<int64_t>(prompts.size()));
    const dc::st::SafetensorsFile io = dc::st::SafetensorsFile::open(c.io_path());
    const bool has_lengths = io.find("bpe_length") != nullptr;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      int64_t n = -1;
      const auto ids = tok.tokenize(prompts[i], ctx, padding, &n);
      const auto row = expected[static_cast<int64_t>(i)];
      EXPECT_TRUE(torch::equal(torch::tensor(ids, torch::kInt64), row)) << "prompt " << i << " '" << prompts[i] << "'";
      if (has_lengths) {
        EXPECT_EQ(n, c.io_tensor("bpe_length")[static_cast<int64_t>(i)].item<int64_t>()) << "prompt " << i;
      }
    }
  }
}

TEST(ClipTokenizer, BadFilesAreClearErrors) {
  const std::string dir = dc::test::temp_dir();
  auto expect_error = [](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const dc::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([&] { ClipTokenizer::from_dir(dir); }, "vocab.json");
  // The fixture's vocabulary with damaged merges, then a damaged vocabulary.
  const auto cases = clip_cases([](const nlohmann::json& cfg) { return cfg.contains("vocab_file"); });
  ASSERT_FALSE(cases.empty());
  const std::string vocab = cases.front().dir + "/" + cases.front().json["config"]["vocab_file"].get<std::string>();
  fs::copy_file(vocab, dir + "/vocab.json");
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\ni n</w>\nnot-a-pair\n";
  expect_error([&] { ClipTokenizer::from_dir(dir); }, "merges.txt");
  std::ofstream(dir + "/merges.txt", std::ios::trunc) << "#version: 0.2\ni n</w>\nq zzzz</w>\n";  // "qzzzz</w>" is no token
  expect_error([&] { ClipTokenizer::from_dir(dir); }, "merges.txt");
  std::ofstream(dir + "/merges.txt", std::ios::trunc) << "#version: 0.2\ni n</w>\n";
  const auto tok = ClipTokenizer::from_dir(dir);  // one merge: "in" is one token, the rest single bytes
  EXPECT_EQ(tok.encode("in").size(), 1u);
  EXPECT_EQ(tok.encode("tin").size(), 2u);
  EXPECT_EQ(tok.tokenize("in", 4, ClipTokenizer::Padding::Zero)[3], 0);
  EXPECT_EQ(tok.tokenize("in", 4, ClipTokenizer::Padding::EndToken)[3], tok.eot());
  EXPECT_THROW(tok.encode(std::string("bad \xff utf-8")), dc::Error);
  std::ofstream(dir + "/vocab.json", std::ios::trunc) << "{not json";
  expect_error([&] { ClipTokenizer::from_dir(dir); }, "vocab.json");
}

// ---- preprocessing --------------------------------------------------------------------------------

TEST(ClipPreprocess, ResizeCropAndPixelValuesEqualTheReference) {
  const auto cases = clip_cases([](const nlohmann::json& cfg) { return cfg.contains("preprocess") && cfg.contains("image_sizes_hw"); });
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    SCOPED_TRACE(c.id());
    const int64_t S = c.json["config"]["model_cfg"]["vision_cfg"]["image_size"].get<int64_t>();
    const auto n = c.json["config"]["image_sizes_hw"].size();
    std::vector<torch::Tensor> pixels;
    for (std::size_t i = 0; i < n; ++i) {
      const auto raw = c.io_tensor(fmt::format("raw_image.{}", i));
      const auto resized = dc::metrics::resize_shortest_side(raw, S);
      EXPECT_TRUE(dc::test::matches_reference(c, fmt::format("resized_image.{}", i), resized, c.io_tensor(fmt::format("resized_image.{}", i))));
      const auto cropped = dc::metrics::center_crop(resized, S);
      EXPECT_TRUE(dc::test::matches_reference(c, fmt::format("cropped_image.{}", i), cropped.contiguous(), c.io_tensor(fmt::format("cropped_image.{}", i))));
      pixels.push_back(dc::metrics::clip_pixel_values(raw, S));
    }
    EXPECT_TRUE(dc::test::matches_reference(c, "pixel_values", torch::stack(pixels), c.io_tensor("pixel_values")));
    const dc::st::SafetensorsFile io = dc::st::SafetensorsFile::open(c.io_path());
    if (io.find("sd_output_float")) {
      EXPECT_TRUE(torch::equal(dc::metrics::float_image_to_uint8_truncating(c.io_tensor("sd_output_float")), c.io_tensor("sd_output_uint8")));
    }
  }
}

TEST(ClipPreprocess, ClosedFormProperties) {
  // Crop offsets round half to even as Python's round: (41 - 32) / 2 = 4.5 -> 4, (43 - 32) / 2 = 5.5 -> 6.
  const auto img = torch::arange(43 * 41 * 3, torch::kInt32).remainder(251).to(torch::kUInt8).view({43, 41, 3});
  const auto crop = dc::metrics::center_crop(img, 32);
  EXPECT_TRUE(torch::equal(crop, img.slice(0, 6, 38).slice(1, 4, 36)));
  // A constant image stays constant through the bicubic (weights sum to one), up and down.
  const auto flat = torch::full({20, 30, 3}, 77, torch::kUInt8);
  EXPECT_TRUE(torch::equal(dc::metrics::pil_bicubic_resize(flat, 7, 11), torch::full({7, 11, 3}, 77, torch::kUInt8)));
  EXPECT_TRUE(torch::equal(dc::metrics::pil_bicubic_resize(flat, 41, 64), torch::full({41, 64, 3}, 77, torch::kUInt8)));
  // Same size: nothing is resampled.
  EXPECT_TRUE(torch::equal(dc::metrics::pil_bicubic_resize(img, 43, 41), img));
  EXPECT_EQ(dc::metrics::shortest_side_size(48, 64, 32), (std::pair<int64_t, int64_t>{32, 42}));
  EXPECT_EQ(dc::metrics::shortest_side_size(80, 40, 32), (std::pair<int64_t, int64_t>{64, 32}));
  EXPECT_THROW(dc::metrics::center_crop(torch::zeros({10, 40, 3}, torch::kUInt8), 32), dc::Error);
  EXPECT_THROW(dc::metrics::pil_bicubic_resize(torch::zeros({10, 10, 4}, torch::kUInt8), 5, 5), dc::Error);
  EXPECT_THROW(dc::metrics::pil_bicubic_resize(torch::zeros({10, 10, 3}), 5, 5), dc::Error);
}

// ---- model ------------------------------------------------------------------------------------------

// A case's weights, loaded strictly under the checkpoint's key names; the model is left in eval mode.
template <typename Case, typename Mapping>
void load_case_weights(torch::nn::Module& model, const Case& c, Mapping mapping) {
  dc::weights::LoadOptions lo;
  lo.mapping = std::move(mapping);
  dc::weights::load_strict(model, dc::st::SafetensorsFile::open(*c.weights_path()), lo);
  model.eval();
}

TEST(ClipModel, TinyCaseFeaturesAndScoresEqualTheReference) {
  const auto cases = clip_cases([](const nlohmann::json& cfg) { return cfg.contains("model_cfg"); });
  ASSERT_FALSE(cases.empty());
  torch::NoGradGuard ng;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.id());
    const auto cfg = dc::models::ClipConfig::from_open_clip(c.json["config"]["model_cfg"], c.json_path);
    dc::models::ClipModel model(cfg);
    load_case_weights(*model, c, dc::models::clip_checkpoint_mapping());
    // Image features from the reference's own pixel values, then through our preprocessing.
    const auto img_ref = model->encode_image(c.io_tensor("pixel_values"));
    EXPECT_TRUE(dc::test::matches_reference(c, "image_features", img_ref, c.io_tensor("image_features")));
    // Text: our tokens equal open_clip's, and the features from them equal the reference.
    const auto prompts = c.json["config"]["prompts"].get<std::vector<std::string>>();
    const auto tok = tokenizer_for(c);
    std::vector<std::vector<int64_t>> rows;
    for (const auto& p : prompts) rows.push_back(tok.tokenize(p, static_cast<int>(cfg.text.context_length), ClipTokenizer::Padding::Zero));
    EXPECT_TRUE(dc::test::matches_reference(c, "text_tokens", ids_tensor(rows), c.io_tensor("text_tokens")));
    const auto txt = model->encode_text(ids_tensor(rows));
    EXPECT_TRUE(dc::test::matches_reference(c, "text_features", txt, c.io_tensor("text_features")));
    // The scorer end to end from the raw uint8 images.
    dc::metrics::ClipScorer scorer(model, tok, torch::kCPU);
    std::vector<torch::Tensor> raw;
    for (std::size_t i = 0; i < c.json["config"]["image_sizes_hw"].size(); ++i) raw.push_back(c.io_tensor(fmt::format("raw_image.{}", i)));
    const auto img = scorer.image_features(raw, 3);  // batch 3: a partial last batch too
    EXPECT_TRUE(dc::test::matches_reference(c, "image_features", img, c.io_tensor("image_features")));
    EXPECT_TRUE(dc::test::matches_reference(c, "clip_score", dc::metrics::clip_score_pairs(img, scorer.text_features(prompts, 2)),
                                            c.io_tensor("clip_score")));
    EXPECT_TRUE(dc::test::matches_reference(c, "clip_score_matrix", dc::metrics::clip_score_matrix(img, txt), c.io_tensor("clip_score_matrix")));
  }
}

// The presets against the full-size manifests without building 1.4 billion parameters: a one-layer
// version of each tower has exactly the manifest's non-block keys and the keys of one block; the
// manifest's block count equals the preset's, and parameters add up to the manifest's total.
TEST(ClipModel, VitG14PresetEqualsTheFullSizeManifest) {
  const std::string path = dc::test::fixtures_root() + "/clip/openclip_vit_g14.keys.json";
  if (!fs::exists(path)) GTEST_SKIP() << path << " absent";
  const auto m = dc::weights::Manifest::load(path);
  auto cfg = dc::models::ClipConfig::preset("vit-g-14");
  const auto full = cfg;
  cfg.vision.layers = 1;
  cfg.text.layers = 1;
  dc::models::ClipModel one(cfg);
  std::map<std::string, std::vector<int64_t>> ours;
  for (const auto& k : dc::weights::module_keys(*one)) ours[k.name] = k.shape;
  const std::regex block(R"(^(visual\.)?transformer\.resblocks\.(\d+)\.(.*)$)");
  std::set<int> vis_blocks, txt_blocks;
  std::size_t checked = 0;
  for (const auto& k : m.keys) {
    std::smatch sm;
    std::string name = k.name;
    if (std::regex_match(k.name, sm, block)) {
      (sm[1].matched ? vis_blocks : txt_blocks).insert(std::stoi(sm[2]));
      name = std::string(sm[1]) + "transformer.resblocks.0." + std::string(sm[3]);
    }
    ASSERT_TRUE(ours.count(name)) << k.name << " is not in the preset";
    EXPECT_EQ(ours[name], k.shape) << k.name;
    ++checked;
  }
  EXPECT_EQ(static_cast<int64_t>(vis_blocks.size()), full.vision.layers);
  EXPECT_EQ(static_cast<int64_t>(txt_blocks.size()), full.text.layers);
  int64_t params = 0, vis_block = 0, txt_block = 0;
  for (const auto& item : one->named_parameters()) {
    const std::string& name = item.key();
    const auto& p = item.value();
    params += p.numel();
    if (name.rfind("visual.transformer.resblocks.0.", 0) == 0) vis_block += p.numel();
    if (name.rfind("transformer.resblocks.0.", 0) == 0) txt_block += p.numel();
  }
  ASSERT_TRUE(m.num_params.has_value());
  EXPECT_EQ(params + (full.vision.layers - 1) * vis_block + (full.text.layers - 1) * txt_block, *m.num_params);
  EXPECT_EQ(checked, m.keys.size());
  EXPECT_THROW(dc::models::ClipConfig::preset("vit-b-32"), dc::Error);
}

TEST(HfClipText, Sd15TextEncoderEqualsTheReference) {
  const auto cases = clip_cases([](const nlohmann::json& cfg) { return cfg.contains("hf_config"); });
  ASSERT_FALSE(cases.empty());
  torch::NoGradGuard ng;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.id());
    dc::models::HfClipTextModel model(dc::models::HfClipTextConfig::from_hf(c.json["config"]["hf_config"], c.json_path));
    load_case_weights(*model, c, dc::models::hf_clip_text_mapping());
    const auto ids = c.io_tensor("input_ids");
    if (c.json["config"].contains("prompts")) {  // the SD1.5 tokenizer gives these ids
      const auto tok = tokenizer_for(c);
      std::vector<std::vector<int64_t>> rows;
      for (const auto& p : c.json["config"]["prompts"]) rows.push_back(tok.tokenize(p.get<std::string>(), static_cast<int>(ids.size(1)), ClipTokenizer::Padding::EndToken));
      EXPECT_TRUE(torch::equal(ids_tensor(rows), ids));
    }
    const auto out = model->forward(ids, true);
    EXPECT_TRUE(dc::test::matches_reference(c, "last_hidden_state", out.last_hidden_state, c.io_tensor("last_hidden_state")));
    EXPECT_TRUE(dc::test::matches_reference(c, "pooler_output", out.pooler_output, c.io_tensor("pooler_output")));
    for (std::size_t k = 0; k < out.hidden_states.size(); ++k) {
      const std::string name = fmt::format("hidden_states.{}", k + 1);
      if (dc::st::SafetensorsFile::open(c.io_path()).find(name)) {
        EXPECT_TRUE(dc::test::matches_reference(c, name, out.hidden_states[k], c.io_tensor(name)));
      }
    }
  }
}

TEST(HfClipText, Sd15PresetEqualsTheManifest) {
  const std::string path = dc::test::fixtures_root() + "/clip/sd15_text_encoder.keys.json";
  if (!fs::exists(path)) GTEST_SKIP() << path << " absent";
  const auto m = dc::weights::Manifest::load(path);
  dc::models::HfClipTextModel model(dc::models::HfClipTextConfig::sd15());
  std::vector<dc::weights::KeyShape> keys;
  for (const auto& k : m.keys)
    if (k.name != "text_model.embeddings.position_ids") keys.push_back(k);
  const auto diff = dc::weights::check_module(*model, keys);
  EXPECT_TRUE(diff.ok()) << diff.summary();
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  ASSERT_TRUE(m.num_params.has_value());
  EXPECT_EQ(params, *m.num_params);
}

// ---- score, command, hashing ------------------------------------------------------------------------

TEST(ClipScore, PairsClampAtZeroAndPromptsFileRules) {
  const auto a = torch::tensor({{1.0f, 0.0f}, {1.0f, 0.0f}, {3.0f, 4.0f}});
  const auto b = torch::tensor({{2.0f, 0.0f}, {-1.0f, 0.0f}, {4.0f, 3.0f}});
  const auto s = dc::metrics::clip_score_pairs(a, b);
  EXPECT_NEAR(s[0].item<float>(), 100.0f, 1e-4);
  EXPECT_EQ(s[1].item<float>(), 0.0f);  // cos = -1 -> clamped
  EXPECT_NEAR(s[2].item<float>(), 96.0f, 1e-4);  // (12 + 12) / 25
  EXPECT_THROW(dc::metrics::clip_score_pairs(a, b.slice(0, 0, 2)), dc::Error);
  const std::string dir = dc::test::temp_dir();
  std::ofstream(dir + "/p.txt") << "a cat\r\nthe dog\nlast";
  EXPECT_EQ(dc::metrics::read_prompts(dir + "/p.txt"), (std::vector<std::string>{"a cat", "the dog", "last"}));
  std::ofstream(dir + "/blank.txt") << "a cat\n\nlast\n";  // a blank line would shift the pairs: refused (tests/test_prompts.cpp)
  EXPECT_THROW(dc::metrics::read_prompts(dir + "/blank.txt"), dc::Error);
  EXPECT_THROW(dc::metrics::read_prompts(dir + "/missing.txt"), dc::Error);
}

TEST(ClipScore, CommandScoresAFolderLikeTheReference) {
  const auto cases = clip_cases([](const nlohmann::json& cfg) { return cfg.contains("model_cfg") && cfg.contains("image_sizes_hw"); });
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    SCOPED_TRACE(c.id());
    const std::string dir = dc::test::temp_dir();
    fs::create_directories(dir + "/images");
    const auto prompts = c.json["config"]["prompts"].get<std::vector<std::string>>();
    std::ofstream pf(dir + "/prompts.txt");
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      const auto raw = c.io_tensor(fmt::format("raw_image.{}", i));
      dc::image::write_png(fmt::format("{}/images/{:03d}.png", dir, i), raw.permute({2, 0, 1}).contiguous());
      pf << prompts[i] << "\n";
    }
    pf.close();
    std::ofstream(dir + "/model.json") << c.json["config"]["model_cfg"].dump();
    const std::string tokdir = c.dir + "/tokenizer";
    const auto run = dc::test::run_cli(fmt::format("clip-score --images {} --prompts {} --model-config {} --weights {} --tokenizer {} --json {}",
                                                   dc::test::shell_quote(dir + "/images"), dc::test::shell_quote(dir + "/prompts.txt"),
                                                   dc::test::shell_quote(dir + "/model.json"), dc::test::shell_quote(*c.weights_path()),
                                                   dc::test::shell_quote(tokdir), dc::test::shell_quote(dir + "/out.json")));
    ASSERT_EQ(run.code, 0) << run.out << run.err;
    const auto j = nlohmann::json::parse(dc::test::read_text(dir + "/out.json"));
    const double expected = c.io_tensor("clip_score").to(torch::kDouble).mean().item<double>();
    EXPECT_NEAR(j["value"].get<double>(), expected, 1e-3) << run.out << run.err;
    EXPECT_EQ(j["provenance"]["samples"].get<int64_t>(), static_cast<int64_t>(prompts.size()));
    EXPECT_EQ(j["provenance"]["weights_sha256"].get<std::string>(), dc::metrics::sha256_file(*c.weights_path()));
    EXPECT_EQ(j["provenance"]["reference_sha256"].get<std::string>(), dc::metrics::sha256_file(dir + "/prompts.txt"));
    EXPECT_FALSE(j["provenance"]["resize_rule"].get<std::string>().empty());
    // Count mismatch and missing inputs: one clear line, exit 2.
    std::ofstream(dir + "/short.txt") << "only one prompt\n";
    const auto bad = dc::test::run_cli(fmt::format("clip-score --images {} --prompts {} --model-config {} --weights {} --tokenizer {}",
                                                   dc::test::shell_quote(dir + "/images"), dc::test::shell_quote(dir + "/short.txt"),
                                                   dc::test::shell_quote(dir + "/model.json"), dc::test::shell_quote(*c.weights_path()),
                                                   dc::test::shell_quote(tokdir)));
    EXPECT_EQ(bad.code, 2) << bad.out << bad.err;
    EXPECT_NE(bad.err.find("short.txt"), std::string::npos) << bad.err;
    const auto missing = dc::test::run_cli(fmt::format("clip-score --images {} --prompts {} --weights {} --tokenizer {}",
                                                       dc::test::shell_quote(dir + "/images"), dc::test::shell_quote(dir + "/prompts.txt"),
                                                       dc::test::shell_quote(dir + "/nope.safetensors"), dc::test::shell_quote(tokdir)));
    EXPECT_EQ(missing.code, 2) << missing.out << missing.err;
    EXPECT_NE(missing.err.find("nope.safetensors"), std::string::npos) << missing.err;
  }
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(dc::metrics::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(dc::metrics::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(dc::metrics::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(dc::metrics::sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_THROW(dc::metrics::sha256_file("/nonexistent/file"), dc::Error);
  // Remembered per (path, size, mtime): a rewritten file is hashed again.
  const std::string f = dc::test::temp_dir() + "/h.txt";
  std::ofstream(f) << "abc";
  EXPECT_EQ(dc::metrics::sha256_file(f), dc::metrics::sha256_hex("abc"));
  EXPECT_EQ(dc::metrics::sha256_file(f), dc::metrics::sha256_hex("abc"));
  std::ofstream(f) << "abcd";
  EXPECT_EQ(dc::metrics::sha256_file(f), dc::metrics::sha256_hex("abcd"));
}
