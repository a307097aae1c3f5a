#include "models/registry.h"

#include "models/families/family.h"

#include <filesystem>
#include <fstream>
#include <cstdlib>
#include <functional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/paths.h"
#include "models/autoencoder.h"
#include "models/ddpm_unet.h"
#include "models/clip_text.h"
#include "models/openai_unet.h"
#include "models/sd_diffusers.h"
#include "models/model.h"
#include "models/weights/safetensors.h"
#include "models/weights/strict_loader.h"

namespace dc::models {

namespace {

const std::vector<Family>& families() {
  static const std::vector<Family> all = {ddpm_family(), ldm_family(), sd_family()};
  return all;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

const Family& family(const std::string& name) {
  for (const auto& f : families())
    if (f.name == name) return f;
  throw Error(fmt::format("unknown model family '{}' (known: {})", name, join(family_names())));
}

}  // namespace

std::vector<std::string> family_names() {
  std::vector<std::string> v;
  for (const auto& f : families()) v.push_back(f.name);
  return v;
}

std::vector<std::string> preset_names(const std::string& name) { return family(name).presets; }

ModelInfo model_info(const std::string& name, const std::string& preset, int image_size) {
  const Family& f = family(name);
  if (std::find(f.presets.begin(), f.presets.end(), preset) == f.presets.end())
    throw Error(fmt::format("unknown {} preset '{}' (known: {})", name, preset, join(f.presets)));
  ModelInfo i = f.info(preset);
  if (image_size == 0) return i;
  return resize_model_info(std::move(i), image_size, f.latent_factor);
}

std::string registry_table_json() {
  std::vector<RegistryEntry> entries;
  for (const auto& f : families())
    for (const auto& preset : f.presets) entries.push_back({f.info(preset), f.latent_factor});
  return registry_table_json(entries);
}

torch::Tensor Model::encode_text(const std::vector<std::string>& prompts) const {
  const Family& f = family(info.family);
  if (!f.encode_text || !cond_stage) throw Error(fmt::format("the {} family takes no text", info.family));
  if (!tokenizer)
    throw Error(fmt::format("model.tokenizer: no tokenizer for the {} family's text encoder: give a folder with vocab.json and merges.txt "
                            "(the tokenizer/ folder of a diffusers SD folder, or openai/clip-vit-large-patch14's) as model.tokenizer "
                            "or $DEEPCACHE_CLIP_TOKENIZER",
                            info.family));
  return f.encode_text(*this, prompts);
}

torch::Tensor Model::to_images(const torch::Tensor& samples) const {
  const Family& f = family(info.family);
  return f.to_images ? f.to_images(*this, samples) : samples;
}

std::shared_ptr<UNet> build_unet(const std::string& name, const std::string& preset, int image_size) {
  const Family& f = family(name);
  (void)model_info(name, preset, image_size);  // checks the preset and the size
  torch::manual_seed(0);  // random init is seeded: every process builds the same network
  auto unet = f.make_unet(preset, image_size > 0 ? image_size / f.latent_factor : 0);
  unet->eval();
  return unet;
}

Model build_model(const std::string& name, const std::string& preset, const std::string& weights,
                  const std::string& first_stage_weights, const ModelOptions& options) {
  const Family& f = family(name);
  const ModelInfo info = model_info(name, preset, options.image_size);
  auto unet = build_unet(name, preset, options.image_size);  // seeded first: every process builds the same network
  auto first_stage = f.make_first_stage ? f.make_first_stage(preset) : nullptr;
  auto cond_stage = f.make_cond_stage ? f.make_cond_stage(preset) : nullptr;
  std::string tokenizer = options.tokenizer;
  if (tokenizer.empty() && f.encode_text) {  // the weights folder's, else the environment's
    if (std::filesystem::is_regular_file(std::filesystem::path(weights) / "tokenizer" / "vocab.json"))
      tokenizer = (std::filesystem::path(weights) / "tokenizer").string();
    else if (const char* env = std::getenv("DEEPCACHE_CLIP_TOKENIZER"); env && *env)
      tokenizer = env;
  }
  return assemble_model(info, std::move(unet), std::move(first_stage), weights, first_stage_weights, std::move(cond_stage), tokenizer);
}

Model assemble_model(const ModelInfo& info, std::shared_ptr<UNet> unet, std::shared_ptr<torch::nn::Module> first_stage,
                     const std::string& weights, const std::string& first_stage_weights, std::shared_ptr<torch::nn::Module> cond_stage,
                     const std::string& tokenizer) {
  const Family& f = family(info.family);
  const std::string& name = info.family;
  const std::string& preset = info.preset;
  Model m;
  m.info = info;
  m.unet = std::move(unet);
  m.first_stage = std::move(first_stage);
  m.cond_stage = std::move(cond_stage);
  if (weights == "random") {
    m.weights_note = "random init (untrained)";
  } else {
    if (!std::filesystem::exists(weights))
      throw Error(fmt::format("{}: weights file not found{} for {} preset '{}' ({})", weights, relative_path_note(weights), name, preset,
                              m.info.weights_hint));
    if (!first_stage_weights.empty() && !std::filesystem::exists(first_stage_weights))
      throw Error(fmt::format("{}: first-stage weights file not found{} (model.first_stage_weights)", first_stage_weights,
                              relative_path_note(first_stage_weights)));
    f.load(m, weights, first_stage_weights);
    m.weights_note = weights;
  }
  if (!tokenizer.empty()) {
    if (!f.encode_text) throw Error(fmt::format("model.tokenizer: the {} family takes no text", name));
    if (!std::filesystem::is_directory(tokenizer))
      throw Error(fmt::format("model.tokenizer: {} is not a folder (one with vocab.json and merges.txt)", tokenizer));
    auto tok = std::make_shared<ClipTokenizer>(ClipTokenizer::from_dir(tokenizer));
    if (const auto* text = dynamic_cast<const HfClipTextModelImpl*>(m.cond_stage.get()); text && tok->vocab_size() > text->config().vocab_size)
      throw Error(fmt::format("model.tokenizer: {}: {} tokens, the text encoder embeds {}", tokenizer, tok->vocab_size(),
                              text->config().vocab_size));
    m.tokenizer = std::move(tok);
    m.tokenizer_path = tokenizer;
  }
  m.unet->eval();
  if (m.first_stage) m.first_stage->eval();
  if (m.cond_stage) m.cond_stage->eval();
  return m;
}

int64_t default_init_draws(const torch::nn::Module& root) {
  int64_t n = 0;
  auto numel = [](const torch::Tensor& t) { return t.defined() ? t.numel() : int64_t{0}; };
  for (const auto& m : root.modules(/*include_self=*/true)) {
    if (const auto* c = dynamic_cast<const torch::nn::Conv2dImpl*>(m.get())) n += numel(c->weight) + numel(c->bias);
    else if (const auto* l = dynamic_cast<const torch::nn::LinearImpl*>(m.get())) n += numel(l->weight) + numel(l->bias);
    else if (const auto* e = dynamic_cast<const torch::nn::EmbeddingImpl*>(m.get()))
      n += e->weight.numel() + (e->weight.numel() % 16 ? 16 : 0);
  }
  return n;
}

int64_t reference_init_draws(const Model& m) {
  int64_t n = default_init_draws(*m.unet);
  if (m.first_stage) {
    n += default_init_draws(*m.first_stage);
    for (const auto& sub : m.first_stage->modules(/*include_self=*/true))
      if (const auto* q = dynamic_cast<const VectorQuantizerImpl*>(sub.get())) n += q->embedding->weight.numel();
  }
  return n;
}

}  // namespace dc::models
