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

// ---- ldm: LDM-4-G, the CompVis UNet with class context + the VQ-f4 first stage ------------------
// The converted cin256-v2 single file holds `model.diffusion_model.*`, `cond_stage_model.*`,
// `first_stage_model.*` and 12 schedule buffers (trap 9 of fixtures/ldm/README.md).
static const std::vector<std::string>& ldm_schedule_buffers() {
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
    // model.image_size: VQ-f4 times the UNet's downsamplings (the same modules on other latents:
    // the smoke test's plumbing runs at 128 px).
    i.image_size_multiple = static_cast<int>(vq.downsampling() * (int64_t{1} << (c.channel_mult.size() - 1)));
    return i;
  };
  f.make_unet = [](const std::string& preset, int64_t latent_size) {
    OpenAIUNetConfig c = OpenAIUNetConfig::preset(preset);
    if (latent_size > 0) c.image_size = latent_size;
    return std::make_shared<ClassConditionedUNetImpl>(c, 1001);
  };
  f.latent_factor = 4;
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

}  // namespace dc::models
