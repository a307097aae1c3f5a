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

}  // namespace dc::models
