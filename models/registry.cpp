#include "models/registry.h"

#include <filesystem>
#include <functional>

#include <fmt/format.h>

#include "common/error.h"
#include "models/autoencoder.h"
#include "models/ddpm_unet.h"
#include "models/openai_unet.h"
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
  std::function<std::shared_ptr<UNet>(const std::string& preset)> make_unet;
  // Strict, from a safetensors file (+ an optional separate first-stage file).
  std::function<void(Model&, const std::string& path, const std::string& first_stage_path)> load;
  // Latent families: the first stage and how it turns samples into images (none: pixels).
  std::function<std::shared_ptr<torch::nn::Module>(const std::string& preset)> make_first_stage;
  std::function<torch::Tensor(const Model&, const torch::Tensor&)> to_images;
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
    i.weights_hint = preset == "fmnist" ? "made by scripts/train_fmnist.sh (docs/fmnist.md)"
                                        : "the released checkpoint: scripts/fetch_weights.sh on a machine with internet, "
                                          "then scripts/convert_ckpt_to_safetensors.py";
    return i;
  };
  f.make_unet = [](const std::string& preset) { return std::make_shared<DdpmUNetImpl>(DdpmConfig::preset(preset)); };
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
  f.make_unet = [](const std::string& preset) {
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

const std::vector<Family>& families() {
  static const std::vector<Family> all = {ddpm_family(), ldm_family()};
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

ModelInfo model_info(const std::string& name, const std::string& preset) {
  const Family& f = family(name);
  if (std::find(f.presets.begin(), f.presets.end(), preset) == f.presets.end())
    throw Error(fmt::format("unknown {} preset '{}' (known: {})", name, preset, join(f.presets)));
  return f.info(preset);
}

torch::Tensor Model::to_images(const torch::Tensor& samples) const {
  const Family& f = family(info.family);
  return f.to_images ? f.to_images(*this, samples) : samples;
}

Model build_model(const std::string& name, const std::string& preset, const std::string& weights,
                  const std::string& first_stage_weights) {
  const Family& f = family(name);
  const ModelInfo info = model_info(name, preset);
  torch::manual_seed(0);  // random init is seeded: every process builds the same network
  auto unet = f.make_unet(preset);
  auto first_stage = f.make_first_stage ? f.make_first_stage(preset) : nullptr;
  return assemble_model(info, std::move(unet), std::move(first_stage), weights, first_stage_weights);
}

Model assemble_model(const ModelInfo& info, std::shared_ptr<UNet> unet, std::shared_ptr<torch::nn::Module> first_stage,
                     const std::string& weights, const std::string& first_stage_weights) {
  const Family& f = family(info.family);
  const std::string& name = info.family;
  const std::string& preset = info.preset;
  Model m;
  m.info = info;
  m.unet = std::move(unet);
  m.first_stage = std::move(first_stage);
  if (weights == "random") {
    m.weights_note = "random init (untrained)";
  } else {
    if (!std::filesystem::exists(weights))
      throw Error(fmt::format("{}: weights file not found for {} preset '{}' ({})", weights, name, preset, m.info.weights_hint));
    if (!first_stage_weights.empty() && !std::filesystem::exists(first_stage_weights))
      throw Error(fmt::format("{}: first-stage weights file not found (model.first_stage_weights)", first_stage_weights));
    f.load(m, weights, first_stage_weights);
    m.weights_note = weights;
  }
  m.unet->eval();
  if (m.first_stage) m.first_stage->eval();
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
