// deepcache-bench clip-score: the CLIP score of a folder of images against prompts.
#include <fmt/format.h>

#include <cstdlib>
#include <iostream>
#include <memory>

#include "common/error.h"
#include "harness/cli/command.h"
#include "harness/runtime.h"
#include "metrics/clip_score.h"
#include "metrics/fid_pipeline.h"
#include "metrics/provenance.h"
#include "metrics/sha256.h"
#include "models/clip_tokenizer.h"

namespace dc::cli {

namespace {
struct ClipState {
  std::string images, prompts, model = "vit-g-14", model_config, weights, tokenizer, json, device = "cpu";
  int64_t batch = 32;
  bool per_pair = false;
};

int clip_score_command(const ClipState& s) {
  const torch::Device device = harness::parse_device(s.device);
  if (s.tokenizer.empty())
    throw Error("--tokenizer: no tokenizer folder given (vocab.json + merges.txt of CLIP; or set $DEEPCACHE_CLIP_TOKENIZER)");
  metrics::list_images(s.images);  // inputs first: no model load for a bad path
  metrics::read_prompts(s.prompts);
  auto tokenizer = models::ClipTokenizer::from_dir(s.tokenizer);
  const auto model = metrics::load_clip_model(s.model, s.model_config, s.weights, device);
  metrics::ClipScorer scorer(model, tokenizer, device);
  auto r = metrics::clip_score_folder(scorer, s.images, s.prompts, s.batch);
  r.provenance.implementation = metrics::clip_score_implementation(s.model, s.model_config);
  r.provenance.weights_file = s.weights;
  r.provenance.weights_sha256 = metrics::sha256_file(s.weights);
  if (s.per_pair)
    for (std::size_t i = 0; i < r.per_pair.size(); ++i) std::cout << fmt::format("pair {:>5}  {:.4f}\n", i, r.per_pair[i]);
  std::cout << fmt::format("CLIP score:  {:.4f}  ({} pairs)\n", r.mean, r.per_pair.size());
  if (!s.json.empty()) {
    metrics::write_metric_json(s.json, r.mean, {{"per_pair", r.per_pair}}, r.provenance);
    std::cout << fmt::format("json        {}\n", s.json);
  }
  return 0;
}
}  // namespace

Command add_clip_score(CLI::App& app) {
  auto s = std::make_shared<ClipState>();
  if (const char* t = std::getenv("DEEPCACHE_CLIP_TOKENIZER")) s->tokenizer = t;
  auto* cmd = app.add_subcommand("clip-score",
                                 "CLIP score of images against prompts (the i-th image in sorted order with the i-th line), "
                                 "max(100 cos, 0) averaged, as the DeepCache paper computes it with open_clip ViT-g-14.");
  cmd->add_option("--images", s->images, "folder of images (PNG)")->required();
  cmd->add_option("--prompts", s->prompts, "text file, one prompt per line")->required();
  cmd->add_option("--model", s->model, "vit-g-14 (open_clip laion2b_s34b_b88k) or vit-l-14 (OpenAI)");
  cmd->add_option("--model-config", s->model_config, "an open_clip model config JSON instead of a preset");
  cmd->add_option("--weights", s->weights, "the model's weights (safetensors; convert .bin/.pt with scripts/convert_ckpt_to_safetensors.py)")
      ->required();
  cmd->add_option("--tokenizer", s->tokenizer, "folder with vocab.json and merges.txt (default $DEEPCACHE_CLIP_TOKENIZER)");
  cmd->add_option("--batch-size", s->batch, "images / prompts per batch");
  cmd->add_option("--device", s->device, "cpu or cuda");
  cmd->add_option("--json", s->json, "also write the value, the per-pair scores and the provenance to this JSON file");
  cmd->add_flag("--per-pair", s->per_pair, "print every pair's score");
  return {cmd, [s] { return clip_score_command(*s); }};
}

}  // namespace dc::cli
