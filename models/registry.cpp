#include "models/registry.h"

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

// One registry entry per family.
struct Family {
  std::string name;
  std::vector<std::string> presets;
  std::function<ModelInfo(const std::string& preset)> info;
  // The UNet of a preset; latent_size > 0: at that latent side instead of the preset's (families
  // with ModelInfo::image_size_multiple).
  std::function<std::shared_ptr<UNet>(const std::string& preset, int64_t latent_size)> make_unet;
  // Strict, from a safetensors file (+ an optional separate first-stage file).
  std::function<void(Model&, const std::string& path, const std::string& first_stage_path)> load;
  // Latent families: the first stage and how it turns samples into images (none: pixels).
  std::function<std::shared_ptr<torch::nn::Module>(const std::string& preset)> make_first_stage;
  std::function<torch::Tensor(const Model&, const torch::Tensor&)> to_images;
  // Text families: the text encoder the runner turns prompts into context with.
  std::function<std::shared_ptr<torch::nn::Module>(const std::string& preset)> make_cond_stage;
  std::function<torch::Tensor(const Model&, const std::vector<std::string>& prompts)> encode_text;
  int64_t latent_factor = 1;  // pixels per sample element (the first stage's downsampling)
};

// ---- ddpm: the ermongroup/ddim UNet (DeepCache experiments/ddpm) -------------------------------
Family ddpm_family() {
  Family f;
  f.name = "ddpm";
  f.presets = DdpmConfig::preset_names();
  f.info = [](const std::string& preset) {
    const DdpmConfig c = DdpmConfig::preset(preset);
    ModelInfo i;
    i.family = "ddpm";
    i.preset = preset;
    i.description = fmt::format("DDPM UNet (ermongroup/ddim models/diffusion.py), {}", c.describe());
    i.num_skips = static_cast<int>(c.num_skips());
    i.sample_shape = {c.in_channels, c.resolution, c.resolution};
    i.image_shape = i.sample_shape;
    i.tap_names = c.up_block_names();
    i.schedule = {"ddpm_linear", 1000, 1e-4, 0.02, "float32"};  // ddim repo configs: linear 1e-4..0.02, T = 1000
    i.default_sampler = "ddim";
    i.weights_hint = preset == "fmnist" ? "the repository ships it as weights/fmnist/ddpm_ema.safetensors; scripts/train_fmnist.sh "
                                          "remakes it (docs/fmnist.md)"
                                        : "the released checkpoint: scripts/fetch_weights.sh on a machine with internet, "
                                          "then scripts/convert_ckpt_to_safetensors.py";
    return i;
  };
  f.make_unet = [](const std::string& preset, int64_t) { return std::make_shared<DdpmUNetImpl>(DdpmConfig::preset(preset)); };
  f.load = [](Model& m, const std::string& path, const std::string& first_stage_path) {
    if (!first_stage_path.empty()) throw Error("model.first_stage_weights: the ddpm family has no first stage");
    weights::LoadOptions lo;
    lo.module_name = "DDPM UNet preset '" + m.info.preset + "'";
    weights::load_strict(*m.unet, st::SafetensorsFile::open(path), lo);
  };
  return f;
}

// ---- ldm: LDM-4-G, the CompVis UNet with class context + the VQ-f4 first stage ------------------
// The converted cin256-v2 single file holds `model.diffusion_model.*`, `cond_stage_model.*`,
// `first_stage_model.*` and 12 schedule buffers (trap 9 of fixtures/ldm/README.md).
const std::vector<std::string>& ldm_schedule_buffers() {
  static const std::vector<std::string> names = {
      "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
      "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
      "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2"};
  return names;
}

Family ldm_family() {
  Family f;
  f.name = "ldm";
  f.presets = {"cin256_v2"};
  f.info = [](const std::string& preset) {
    const OpenAIUNetConfig c = OpenAIUNetConfig::preset(preset);
    const AutoencoderConfig vq = AutoencoderConfig::preset("vq_f4");
    ModelInfo i;
    i.family = "ldm";
    i.preset = preset;
    i.description = fmt::format("LDM-4-G (latent-diffusion cin256-v2: CompVis UNet {}; VQ-f4 first stage)", c.describe());
    i.num_skips = static_cast<int>(c.num_skips());
    i.sample_shape = {c.in_channels, c.image_size, c.image_size};
    i.image_shape = {vq.out_ch, c.image_size * vq.downsampling(), c.image_size * vq.downsampling()};
    i.tap_names = c.output_block_names();
    i.schedule = {"ldm_linear", 1000, 0.0015, 0.0195, "float64"};  // cin256-v2.yaml: linear_start/end, T = 1000
    i.default_sampler = "ldm_ddim";
    i.conditioning = "class";
    i.num_classes = 1000;          // ImageNet
    i.unconditional_class = 1000;  // cond_stage_model row 1000
    i.weights_hint = "the released cin256-v2 model.ckpt converted with scripts/convert_ckpt_to_safetensors.py";
    return i;
  };
  f.make_unet = [](const std::string& preset, int64_t) {
    return std::make_shared<ClassConditionedUNetImpl>(OpenAIUNetConfig::preset(preset), 1001);
  };
  f.make_first_stage = [](const std::string&) -> std::shared_ptr<torch::nn::Module> {
    return std::make_shared<VQModelImpl>(AutoencoderConfig::preset("vq_f4"));
  };
  f.load = [](Model& m, const std::string& path, const std::string& first_stage_path) {
    const auto file = st::SafetensorsFile::open(path);
    weights::LoadOptions lo;
    lo.module_name = "LDM-4-G UNet + class embedder (" + m.info.preset + ")";
    lo.mapping.ignore_prefix("first_stage_model.");
    for (const auto& b : ldm_schedule_buffers()) lo.mapping.ignore_prefix(b);
    weights::load_strict(*m.unet, file, lo);
    auto& vq = static_cast<VQModelImpl&>(*m.first_stage);
    const std::string codebook = "first_stage_model.quantize.embedding.weight";
    if (file.find(codebook) && first_stage_path.empty()) {
      weights::LoadOptions vo;
      vo.module_name = "LDM-4-G VQ-f4 first stage";
      vo.mapping.select_prefix("first_stage_model.");
      weights::load_strict(vq, file, vo);
      return;
    }
    // Trap 9: one f4 release lacks the codebook; it comes from the standalone vq-f4 checkpoint.
    if (first_stage_path.empty())
      throw Error(fmt::format("{}: {} is absent (one LDM f4 release omits it): give the standalone vq-f4 checkpoint "
                              "(first_stage_models/vq-f4, converted) as model.first_stage_weights", path, codebook));
    for (const auto& [child, name] : std::vector<std::pair<std::shared_ptr<torch::nn::Module>, std::string>>{
             {vq.encoder.ptr(), "encoder"}, {vq.decoder.ptr(), "decoder"}, {vq.quant_conv.ptr(), "quant_conv"},
             {vq.post_quant_conv.ptr(), "post_quant_conv"}}) {
      weights::LoadOptions vo;
      vo.module_name = "LDM-4-G VQ-f4 " + name;
      vo.mapping.select_prefix("first_stage_model." + name + ".");
      weights::load_strict(*child, file, vo);
    }
    weights::LoadOptions qo;
    qo.module_name = "vq-f4 codebook";
    qo.mapping.select_prefix("quantize.");
    weights::load_strict(*vq.quantize, st::SafetensorsFile::open(first_stage_path), qo);
  };
  f.to_images = [](const Model& m, const torch::Tensor& z) {
    // decode_first_stage: z / scale_factor (1.0), then VQModelInterface.decode, which quantises.
    return std::static_pointer_cast<VQModelImpl>(m.first_stage)->decode(z, true);
  };
  return f;
}

// ---- sd: Stable Diffusion v1.5, the CompVis UNet with text context + KL-f8 + CLIP text encoder --
// Weights: the single file (v1-5-pruned-emaonly: `model.diffusion_model.*`, `first_stage_model.*`,
// `cond_stage_model.transformer.text_model.*`, schedule buffers) or a diffusers folder (unet/,
// vae/, text_encoder/ with their config.json, checked against the preset), renamed to the CompVis
// names at load (models/sd_diffusers.h).
Family sd_family() {
  Family f;
  f.name = "sd";
  f.presets = {"sd15"};
  f.info = [](const std::string& preset) {
    const OpenAIUNetConfig c = OpenAIUNetConfig::preset(preset);
    const AutoencoderConfig kl = AutoencoderConfig::preset("kl_f8");
    ModelInfo i;
    i.family = "sd";
    i.preset = preset;
    i.description = fmt::format("Stable Diffusion v1.5 (CompVis UNet {}, text context from CLIP ViT-L/14's text encoder; KL-f8 first stage)",
                                c.describe());
    i.num_skips = static_cast<int>(c.num_skips());
    i.sample_shape = {c.in_channels, c.image_size, c.image_size};
    i.image_shape = {kl.out_ch, c.image_size * kl.downsampling(), c.image_size * kl.downsampling()};
    i.tap_names = c.output_block_names();
    i.schedule = {"scaled_linear", 1000, 0.00085, 0.012, "float32"};  // the diffusers scheduler config (float32 cumprod)
    i.default_sampler = "pndm";
    i.conditioning = "text";
    i.weights_hint = "runwayml/stable-diffusion-v1-5: v1-5-pruned-emaonly.safetensors, or its diffusers folder (unet/, vae/, text_encoder/)";
    // KL-f8 times the UNet's three downsamplings (CompVis's Upsample doubles: odd latent sides do not fit).
    i.image_size_multiple = static_cast<int>(kl.downsampling() * (int64_t{1} << (c.channel_mult.size() - 1)));
    return i;
  };
  f.make_unet = [](const std::string& preset, int64_t latent_size) {
    OpenAIUNetConfig c = OpenAIUNetConfig::preset(preset);
    if (latent_size > 0) c.image_size = latent_size;
    return std::make_shared<OpenAIUNetImpl>(c);
  };
  f.latent_factor = 8;
  f.make_first_stage = [](const std::string&) -> std::shared_ptr<torch::nn::Module> {
    return std::make_shared<KLModelImpl>(AutoencoderConfig::preset("kl_f8"));
  };
  f.make_cond_stage = [](const std::string&) -> std::shared_ptr<torch::nn::Module> {
    return std::make_shared<HfClipTextModelImpl>(HfClipTextConfig::sd15());
  };
  f.load = [](Model& m, const std::string& path, const std::string& first_stage_path) {
    if (!first_stage_path.empty()) throw Error("model.first_stage_weights: the sd family reads its VAE from the same file or folder");
    auto& unet = static_cast<OpenAIUNetImpl&>(*m.unet);
    auto& vae = static_cast<KLModelImpl&>(*m.first_stage);
    auto& text = static_cast<HfClipTextModelImpl&>(*m.cond_stage);
    const std::string position_ids = "text_model.embeddings.position_ids";  // a buffer older transformers saved
    if (std::filesystem::is_directory(path)) {
      namespace fs = std::filesystem;
      auto read_config = [&](const std::string& part) {
        const fs::path p = fs::path(path) / part / "config.json";
        std::ifstream in(p);
        if (!in) throw Error(fmt::format("{}: missing (a diffusers folder has {}/config.json)", p.string(), part));
        const auto j = nlohmann::json::parse(in, nullptr, false);
        if (j.is_discarded()) throw Error(fmt::format("{}: not JSON", p.string()));
        return j;
      };
      auto file_of = [&](const std::string& part, const std::string& name) {
        const fs::path p = fs::path(path) / part / name;
        if (!fs::is_regular_file(p)) throw Error(fmt::format("{}: missing (safetensors weights of the diffusers folder's {})", p.string(), part));
        return p.string();
      };
      const std::string unet_what = (fs::path(path) / "unet" / "config.json").string();
      if (unet_config_from_diffusers(read_config("unet"), unet_what).describe() != unet.config().describe())
        throw Error(fmt::format("{}: describes another UNet than the {} preset ({})", unet_what, m.info.preset, unet.config().describe()));
      weights::LoadOptions lo;
      lo.module_name = "SD UNet (diffusers folder)";
      lo.mapping = diffusers_unet_mapping(unet, unet.config());
      weights::load_strict(unet, st::SafetensorsFile::open(file_of("unet", "diffusion_pytorch_model.safetensors")), lo);
      const std::string vae_what = (fs::path(path) / "vae" / "config.json").string();
      const AutoencoderConfig kl = kl_config_from_diffusers(read_config("vae"), vae_what);
      if (kl.ch != vae.config().ch || kl.ch_mult != vae.config().ch_mult || kl.z_channels != vae.config().z_channels)
        throw Error(fmt::format("{}: describes another autoencoder than KL-f8", vae_what));
      weights::LoadOptions vo;
      vo.module_name = "SD VAE (diffusers folder)";
      vo.mapping = diffusers_vae_mapping(vae, vae.config());
      weights::load_strict(vae, st::SafetensorsFile::open(file_of("vae", "diffusion_pytorch_model.safetensors")), vo);
      const std::string te_what = (fs::path(path) / "text_encoder" / "config.json").string();
      const HfClipTextConfig tc = HfClipTextConfig::from_hf(read_config("text_encoder"), te_what);
      if (tc.hidden_size != text.config().hidden_size || tc.num_hidden_layers != text.config().num_hidden_layers)
        throw Error(fmt::format("{}: describes another text encoder than SD v1's (CLIP ViT-L/14)", te_what));
      weights::LoadOptions to;
      to.module_name = "SD text encoder (diffusers folder)";
      to.mapping.ignore_prefix(position_ids);
      weights::load_strict(text, st::SafetensorsFile::open(file_of("text_encoder", "model.safetensors")), to);
      return;
    }
    const auto file = st::SafetensorsFile::open(path);
    weights::LoadOptions lo;
    lo.module_name = "SD UNet (" + m.info.preset + ")";
    lo.mapping.select_prefix("model.diffusion_model.");
    weights::load_strict(unet, file, lo);
    weights::LoadOptions vo;
    vo.module_name = "SD KL-f8 first stage";
    vo.mapping.select_prefix("first_stage_model.");
    weights::load_strict(vae, file, vo);
    weights::LoadOptions to;
    to.module_name = "SD text encoder";
    to.mapping.select_prefix("cond_stage_model.transformer.");
    to.mapping.ignore_prefix(position_ids);
    weights::load_strict(text, file, to);
  };
  f.encode_text = [](const Model& m, const std::vector<std::string>& prompts) {
    // The diffusers pipeline's _encode_prompt: CLIPTokenizer (max_length 77, padded with
    // <|endoftext|>, truncated keeping the end token), no attention mask, last_hidden_state.
    auto& text = static_cast<HfClipTextModelImpl&>(*m.cond_stage);
    const int64_t L = text.config().max_position_embeddings;
    const auto ids = m.tokenizer->tokenize_batch(prompts, static_cast<int>(L), ClipTokenizer::Padding::EndToken);
    std::vector<int64_t> flat;
    flat.reserve(ids.size() * L);
    for (const auto& row : ids) flat.insert(flat.end(), row.begin(), row.end());
    const auto device = text.parameters().front().device();
    const torch::Tensor t = torch::tensor(flat, torch::kInt64).view({static_cast<int64_t>(ids.size()), L}).to(device);
    return text.forward(t).last_hidden_state;
  };
  f.to_images = [](const Model& m, const torch::Tensor& z) {
    // decode_first_stage: z / scale_factor (0.18215), then the KL decoder.
    return std::static_pointer_cast<KLModelImpl>(m.first_stage)->decode(z / 0.18215);
  };
  return f;
}

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

Model build_model(const std::string& name, const std::string& preset, const std::string& weights,
                  const std::string& first_stage_weights, const ModelOptions& options) {
  const Family& f = family(name);
  const ModelInfo info = model_info(name, preset, options.image_size);
  torch::manual_seed(0);  // random init is seeded: every process builds the same network
  auto unet = f.make_unet(preset, options.image_size > 0 ? options.image_size / f.latent_factor : 0);
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
