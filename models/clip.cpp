#include "models/clip.h"

#include <cmath>
#include <limits>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace dc::models {
namespace F = torch::nn::functional;

// ---- configs -------------------------------------------------------------------------------------

std::vector<std::string> ClipConfig::preset_names() { return {"vit-g-14", "vit-l-14"}; }

ClipConfig ClipConfig::preset(const std::string& name) {
  ClipConfig c;
  c.name = name;
  if (name == "vit-g-14") {  // open_clip model_configs/ViT-g-14.json
    c.embed_dim = 1024;
    c.vision = {224, 14, 1408, 40, 1408 / 88, static_cast<int64_t>(1408 * 4.3637)};
    c.text = {77, 49408, 1024, 16, 24, 4096};
    c.act = ClipActivation::Gelu;
  } else if (name == "vit-l-14") {  // OpenAI ViT-L/14 (open_clip model_configs/ViT-L-14.json + quick_gelu)
    c.embed_dim = 768;
    c.vision = {224, 14, 1024, 24, 1024 / 64, 4096};
    c.text = {77, 49408, 768, 12, 12, 3072};
    c.act = ClipActivation::QuickGelu;
  } else {
    throw Error(fmt::format("unknown CLIP model '{}' (expected one of: vit-g-14, vit-l-14)", name));
  }
  return c;
}

int64_t clip_config_int(const nlohmann::json& j, const char* key, const std::string& where, std::optional<int64_t> fallback) {
  if (!j.contains(key)) {
    if (fallback) return *fallback;
    throw Error(fmt::format("{}: missing key '{}'", where, key));
  }
  if (!j.at(key).is_number_integer()) throw Error(fmt::format("{}: '{}' must be an integer, got {}", where, key, j.at(key).dump()));
  return j.at(key).get<int64_t>();
}

ClipConfig ClipConfig::from_open_clip(const nlohmann::json& m, const std::string& where) {
  static const std::set<std::string> supported_vision = {"image_size", "layers", "width", "head_width", "mlp_ratio", "patch_size"};
  static const std::set<std::string> supported_text = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"};
  ClipConfig c;
  c.name = "custom";
  c.embed_dim = clip_config_int(m, "embed_dim", where);
  const auto& v = m.at("vision_cfg");
  for (const auto& [k, _] : v.items())
    if (!supported_vision.count(k)) throw Error(fmt::format("{}: vision_cfg.{} is not supported", where, k));
  c.vision.image_size = clip_config_int(v, "image_size", where + " vision_cfg");
  c.vision.patch_size = clip_config_int(v, "patch_size", where + " vision_cfg");
  c.vision.width = clip_config_int(v, "width", where + " vision_cfg");
  c.vision.layers = clip_config_int(v, "layers", where + " vision_cfg");
  const int64_t head_width = clip_config_int(v, "head_width", where + " vision_cfg", 64);
  if (c.vision.width % head_width) throw Error(fmt::format("{}: vision width {} is not a multiple of head_width {}", where, c.vision.width, head_width));
  c.vision.heads = c.vision.width / head_width;
  c.vision.mlp_width = static_cast<int64_t>(static_cast<double>(c.vision.width) * v.value("mlp_ratio", 4.0));
  const auto& t = m.at("text_cfg");
  for (const auto& [k, _] : t.items())
    if (!supported_text.count(k)) throw Error(fmt::format("{}: text_cfg.{} is not supported", where, k));
  c.text.context_length = clip_config_int(t, "context_length", where + " text_cfg", 77);
  c.text.vocab_size = clip_config_int(t, "vocab_size", where + " text_cfg", 49408);
  c.text.width = clip_config_int(t, "width", where + " text_cfg");
  c.text.heads = clip_config_int(t, "heads", where + " text_cfg");
  c.text.layers = clip_config_int(t, "layers", where + " text_cfg");
  c.text.mlp_width = static_cast<int64_t>(static_cast<double>(c.text.width) * t.value("mlp_ratio", 4.0));
  c.act = m.value("quick_gelu", false) ? ClipActivation::QuickGelu : ClipActivation::Gelu;
  return c;
}

// ---- building blocks -----------------------------------------------------------------------------

torch::Tensor clip_activate(const torch::Tensor& x, ClipActivation act) {
  return act == ClipActivation::QuickGelu ? x * torch::sigmoid(1.702 * x) : torch::gelu(x);
}

torch::nn::LayerNorm clip_layer_norm(int64_t width, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps));
}

torch::Tensor clip_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t heads, const torch::Tensor& mask) {
  const int64_t B = q.size(0), L = q.size(1), W = q.size(2), d = W / heads;
  auto split = [&](const torch::Tensor& t) { return t.view({B, L, heads, d}).transpose(1, 2); };
  auto s = torch::matmul(split(q), split(k).transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(d)));
  if (mask.defined()) s = s + mask;
  return torch::matmul(s.softmax(-1), split(v)).transpose(1, 2).reshape({B, L, W});
}

torch::Tensor clip_causal_mask(int64_t n) {
  return torch::full({n, n}, -std::numeric_limits<float>::infinity()).triu(1);
}

ClipAttentionImpl::ClipAttentionImpl(int64_t width, int64_t h) : heads(h) {
  if (width % h) throw Error(fmt::format("CLIP attention: width {} is not a multiple of {} heads", width, h));
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * width, width}));
  in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * width}));
  torch::nn::init::xavier_uniform_(in_proj_weight);
  out_proj = register_module("out_proj", torch::nn::Linear(width, width));
}

torch::Tensor ClipAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  const auto qkv = F::linear(x, in_proj_weight, in_proj_bias).chunk(3, -1);
  return out_proj(clip_attention(qkv[0], qkv[1], qkv[2], heads, mask));
}

ClipMlpImpl::ClipMlpImpl(int64_t width, int64_t hidden, ClipActivation a) : act(a) {
  c_fc = register_module("c_fc", torch::nn::Linear(width, hidden));
  c_proj = register_module("c_proj", torch::nn::Linear(hidden, width));
}

torch::Tensor ClipMlpImpl::forward(const torch::Tensor& x) { return c_proj(clip_activate(c_fc(x), act)); }

ClipResidualBlockImpl::ClipResidualBlockImpl(int64_t width, int64_t heads, int64_t mlp_width, ClipActivation act) {
  ln_1 = register_module("ln_1", clip_layer_norm(width));
  attn = register_module("attn", ClipAttention(width, heads));
  ln_2 = register_module("ln_2", clip_layer_norm(width));
  mlp = register_module("mlp", ClipMlp(width, mlp_width, act));
}

torch::Tensor ClipResidualBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  const auto y = x + attn(ln_1(x), mask);
  return y + mlp(ln_2(y));
}

ClipTransformerImpl::ClipTransformerImpl(int64_t width, int64_t layers, int64_t heads, int64_t mlp_width, ClipActivation act) {
  resblocks = register_module("resblocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < layers; ++i) resblocks->push_back(ClipResidualBlock(width, heads, mlp_width, act));
}

torch::Tensor ClipTransformerImpl::forward(torch::Tensor x, const torch::Tensor& mask) {
  for (const auto& b : *resblocks) x = b->as<ClipResidualBlockImpl>()->forward(x, mask);
  return x;
}

// ---- open_clip / OpenAI CLIP ---------------------------------------------------------------------

ClipVisionImpl::ClipVisionImpl(const ClipVisionConfig& c, int64_t embed_dim, ClipActivation act) : cfg(c) {
  if (c.image_size % c.patch_size)
    throw Error(fmt::format("CLIP vision: image_size {} is not a multiple of patch_size {}", c.image_size, c.patch_size));
  const int64_t grid = c.image_size / c.patch_size;
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.width));
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, c.width, c.patch_size).stride(c.patch_size).bias(false)));
  class_embedding = register_parameter("class_embedding", torch::randn({c.width}) * scale);
  positional_embedding = register_parameter("positional_embedding", torch::randn({grid * grid + 1, c.width}) * scale);
  ln_pre = register_module("ln_pre", clip_layer_norm(c.width));
  transformer = register_module("transformer", ClipTransformer(c.width, c.layers, c.heads, c.mlp_width, act));
  ln_post = register_module("ln_post", clip_layer_norm(c.width));
  proj = register_parameter("proj", torch::randn({c.width, embed_dim}) * scale);
}

torch::Tensor ClipVisionImpl::forward(const torch::Tensor& pixel_values) {
  if (pixel_values.dim() != 4 || pixel_values.size(1) != 3 || pixel_values.size(2) != cfg.image_size || pixel_values.size(3) != cfg.image_size)
    throw Error(fmt::format("CLIP image encoder: expected pixel values [B, 3, {}, {}], got {}", cfg.image_size, cfg.image_size,
                            fmt::join(pixel_values.sizes().vec(), "x")));
  auto x = conv1(pixel_values.to(proj.dtype()));
  x = x.flatten(2).transpose(1, 2);  // [B, grid^2, W]
  x = torch::cat({class_embedding.view({1, 1, -1}).expand({x.size(0), 1, -1}), x}, 1) + positional_embedding;
  x = transformer(ln_pre(x));
  return torch::matmul(ln_post(x.select(1, 0)), proj);
}

ClipModelImpl::ClipModelImpl(const ClipConfig& cfg) : cfg_(cfg) {
  visual = register_module("visual", ClipVision(cfg.vision, cfg.embed_dim, cfg.act));
  token_embedding = register_module("token_embedding", torch::nn::Embedding(cfg.text.vocab_size, cfg.text.width));
  positional_embedding = register_parameter("positional_embedding", torch::randn({cfg.text.context_length, cfg.text.width}) * 0.01);
  transformer = register_module("transformer", ClipTransformer(cfg.text.width, cfg.text.layers, cfg.text.heads, cfg.text.mlp_width, cfg.act));
  ln_final = register_module("ln_final", clip_layer_norm(cfg.text.width));
  text_projection = register_parameter("text_projection", torch::randn({cfg.text.width, cfg.embed_dim}) / std::sqrt(static_cast<double>(cfg.text.width)));
  logit_scale = register_parameter("logit_scale", torch::tensor(std::log(1.0 / 0.07), torch::kFloat32));
  causal_mask_ = clip_causal_mask(cfg.text.context_length);
}

torch::Tensor ClipModelImpl::encode_image(const torch::Tensor& pixel_values) { return visual(pixel_values); }

torch::Tensor ClipModelImpl::encode_text(const torch::Tensor& ids) {
  if (ids.dim() != 2 || ids.size(1) != cfg_.text.context_length || ids.scalar_type() != torch::kInt64)
    throw Error(fmt::format("CLIP text encoder: expected int64 token ids [B, {}], got {} {}", cfg_.text.context_length,
                            std::string(c10::toString(ids.scalar_type())), fmt::join(ids.sizes().vec(), "x")));
  auto x = token_embedding(ids) + positional_embedding;
  x = ln_final(transformer(x, causal_mask_.to(x.device(), x.scalar_type())));
  const auto eot = ids.argmax(-1);  // open_clip text_global_pool 'argmax': the EOT token has the largest id
  return torch::matmul(x.index({torch::arange(x.size(0), ids.options()), eot}), text_projection);
}

weights::KeyMapping clip_checkpoint_mapping() {
  weights::KeyMapping m;
  m.ignore_prefix("input_resolution").ignore_prefix("context_length").ignore_prefix("vocab_size");
  return m;
}

}  // namespace dc::models
