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

namespace {
int64_t get_int(const nlohmann::json& j, const char* key, const std::string& where, std::optional<int64_t> fallback = {}) {
  if (!j.contains(key)) {
    if (fallback) return *fallback;
    throw Error(fmt::format("{}: missing key '{}'", where, key));
  }
  if (!j.at(key).is_number_integer()) throw Error(fmt::format("{}: '{}' must be an integer, got {}", where, key, j.at(key).dump()));
  return j.at(key).get<int64_t>();
}
}  // namespace

ClipConfig ClipConfig::from_open_clip(const nlohmann::json& m, const std::string& where) {
  static const std::set<std::string> supported_vision = {"image_size", "layers", "width", "head_width", "mlp_ratio", "patch_size"};
  static const std::set<std::string> supported_text = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"};
  ClipConfig c;
  c.name = "custom";
  c.embed_dim = get_int(m, "embed_dim", where);
  const auto& v = m.at("vision_cfg");
  for (const auto& [k, _] : v.items())
    if (!supported_vision.count(k)) throw Error(fmt::format("{}: vision_cfg.{} is not supported", where, k));
  c.vision.image_size = get_int(v, "image_size", where + " vision_cfg");
  c.vision.patch_size = get_int(v, "patch_size", where + " vision_cfg");
  c.vision.width = get_int(v, "width", where + " vision_cfg");
  c.vision.layers = get_int(v, "layers", where + " vision_cfg");
  const int64_t head_width = get_int(v, "head_width", where + " vision_cfg", 64);
  if (c.vision.width % head_width) throw Error(fmt::format("{}: vision width {} is not a multiple of head_width {}", where, c.vision.width, head_width));
  c.vision.heads = c.vision.width / head_width;
  c.vision.mlp_width = static_cast<int64_t>(static_cast<double>(c.vision.width) * v.value("mlp_ratio", 4.0));
  const auto& t = m.at("text_cfg");
  for (const auto& [k, _] : t.items())
    if (!supported_text.count(k)) throw Error(fmt::format("{}: text_cfg.{} is not supported", where, k));
  c.text.context_length = get_int(t, "context_length", where + " text_cfg", 77);
  c.text.vocab_size = get_int(t, "vocab_size", where + " text_cfg", 49408);
  c.text.width = get_int(t, "width", where + " text_cfg");
  c.text.heads = get_int(t, "heads", where + " text_cfg");
  c.text.layers = get_int(t, "layers", where + " text_cfg");
  c.text.mlp_width = static_cast<int64_t>(static_cast<double>(c.text.width) * t.value("mlp_ratio", 4.0));
  c.act = m.value("quick_gelu", false) ? ClipActivation::QuickGelu : ClipActivation::Gelu;
  return c;
}

HfClipTextConfig HfClipTextConfig::sd15() { return {}; }

HfClipTextConfig HfClipTextConfig::from_hf(const nlohmann::json& j, const std::string& where) {
  HfClipTextConfig c;
  c.vocab_size = get_int(j, "vocab_size", where, c.vocab_size);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", where, c.max_position_embeddings);
  c.hidden_size = get_int(j, "hidden_size", where);
  c.intermediate_size = get_int(j, "intermediate_size", where);
  c.num_attention_heads = get_int(j, "num_attention_heads", where);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", where);
  c.layer_norm_eps = j.value("layer_norm_eps", 1e-5);
  const std::string act = j.value("hidden_act", "quick_gelu");
  if (act == "quick_gelu") c.act = ClipActivation::QuickGelu;
  else if (act == "gelu") c.act = ClipActivation::Gelu;
  else throw Error(fmt::format("{}: hidden_act '{}' is not supported (quick_gelu or gelu)", where, act));
  return c;
}

// ---- building blocks -----------------------------------------------------------------------------

namespace {
torch::Tensor activate(const torch::Tensor& x, ClipActivation act) {
  return act == ClipActivation::QuickGelu ? x * torch::sigmoid(1.702 * x) : torch::gelu(x);
}

torch::nn::LayerNorm layer_norm(int64_t width, double eps = 1e-5) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps));
}

// softmax(q k^T * d^-1/2 + mask) v over heads; q, k, v [B, L, W].
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t heads, const torch::Tensor& mask) {
  const int64_t B = q.size(0), L = q.size(1), W = q.size(2), d = W / heads;
  auto split = [&](const torch::Tensor& t) { return t.view({B, L, heads, d}).transpose(1, 2); };
  auto s = torch::matmul(split(q), split(k).transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(d)));
  if (mask.defined()) s = s + mask;
  return torch::matmul(s.softmax(-1), split(v)).transpose(1, 2).reshape({B, L, W});
}

torch::Tensor causal_mask(int64_t n) {
  return torch::full({n, n}, -std::numeric_limits<float>::infinity()).triu(1);
}
}  // namespace

ClipAttentionImpl::ClipAttentionImpl(int64_t width, int64_t h) : heads(h) {
  if (width % h) throw Error(fmt::format("CLIP attention: width {} is not a multiple of {} heads", width, h));
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * width, width}));
  in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * width}));
  torch::nn::init::xavier_uniform_(in_proj_weight);
  out_proj = register_module("out_proj", torch::nn::Linear(width, width));
}

torch::Tensor ClipAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  const auto qkv = F::linear(x, in_proj_weight, in_proj_bias).chunk(3, -1);
  return out_proj(attention(qkv[0], qkv[1], qkv[2], heads, mask));
}

ClipMlpImpl::ClipMlpImpl(int64_t width, int64_t hidden, ClipActivation a) : act(a) {
  c_fc = register_module("c_fc", torch::nn::Linear(width, hidden));
  c_proj = register_module("c_proj", torch::nn::Linear(hidden, width));
}

torch::Tensor ClipMlpImpl::forward(const torch::Tensor& x) { return c_proj(activate(c_fc(x), act)); }

ClipResidualBlockImpl::ClipResidualBlockImpl(int64_t width, int64_t heads, int64_t mlp_width, ClipActivation act) {
  ln_1 = register_module("ln_1", layer_norm(width));
  attn = register_module("attn", ClipAttention(width, heads));
  ln_2 = register_module("ln_2", layer_norm(width));
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
  ln_pre = register_module("ln_pre", layer_norm(c.width));
  transformer = register_module("transformer", ClipTransformer(c.width, c.layers, c.heads, c.mlp_width, act));
  ln_post = register_module("ln_post", layer_norm(c.width));
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
  ln_final = register_module("ln_final", layer_norm(cfg.text.width));
  text_projection = register_parameter("text_projection", torch::randn({cfg.text.width, cfg.embed_dim}) / std::sqrt(static_cast<double>(cfg.text.width)));
  logit_scale = register_parameter("logit_scale", torch::tensor(std::log(1.0 / 0.07), torch::kFloat32));
  causal_mask_ = causal_mask(cfg.text.context_length);
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

// ---- transformers CLIPTextModel (SD1.5) -----------------------------------------------------------

HfClipLayerImpl::HfClipLayerImpl(const HfClipTextConfig& c) : heads(c.num_attention_heads), act(c.act) {
  const int64_t w = c.hidden_size;
  layer_norm1 = layer_norm(w, c.layer_norm_eps);
  layer_norm2 = layer_norm(w, c.layer_norm_eps);
  q_proj = torch::nn::Linear(w, w);
  k_proj = torch::nn::Linear(w, w);
  v_proj = torch::nn::Linear(w, w);
  out_proj = torch::nn::Linear(w, w);
  fc1 = torch::nn::Linear(w, c.intermediate_size);
  fc2 = torch::nn::Linear(c.intermediate_size, w);
  auto attn = std::make_shared<torch::nn::Module>();
  attn->register_module("k_proj", k_proj);
  attn->register_module("out_proj", out_proj);
  attn->register_module("q_proj", q_proj);
  attn->register_module("v_proj", v_proj);
  auto mlp = std::make_shared<torch::nn::Module>();
  mlp->register_module("fc1", fc1);
  mlp->register_module("fc2", fc2);
  register_module("self_attn", attn);
  register_module("layer_norm1", layer_norm1);
  register_module("mlp", mlp);
  register_module("layer_norm2", layer_norm2);
}

torch::Tensor HfClipLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  const auto h = layer_norm1(x);
  const auto y = x + out_proj(attention(q_proj(h), k_proj(h), v_proj(h), heads, mask));
  return y + fc2(activate(fc1(layer_norm2(y)), act));
}

HfClipTextModelImpl::HfClipTextModelImpl(const HfClipTextConfig& c) : cfg_(c) {
  auto text_model = register_module("text_model", std::make_shared<torch::nn::Module>());
  auto embeddings = text_model->register_module("embeddings", std::make_shared<torch::nn::Module>());
  token_embedding_ = embeddings->register_module("token_embedding", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  position_embedding_ = embeddings->register_module("position_embedding", torch::nn::Embedding(c.max_position_embeddings, c.hidden_size));
  auto encoder = text_model->register_module("encoder", std::make_shared<torch::nn::Module>());
  auto layers = encoder->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layers_.push_back(HfClipLayer(c));
    layers->push_back(layers_.back());
  }
  final_layer_norm_ = text_model->register_module("final_layer_norm", layer_norm(c.hidden_size, c.layer_norm_eps));
}

HfClipTextOutput HfClipTextModelImpl::forward(const torch::Tensor& ids, bool keep_hidden_states) {
  if (ids.dim() != 2 || ids.scalar_type() != torch::kInt64 || ids.size(1) > cfg_.max_position_embeddings)
    throw Error(fmt::format("CLIP text model: expected int64 token ids [B, <= {}], got {} {}", cfg_.max_position_embeddings,
                            std::string(c10::toString(ids.scalar_type())), fmt::join(ids.sizes().vec(), "x")));
  const int64_t L = ids.size(1);
  auto x = token_embedding_(ids) + position_embedding_(torch::arange(L, ids.options()));
  const auto mask = causal_mask(L).to(x.device(), x.scalar_type());
  HfClipTextOutput out;
  for (auto& layer : layers_) {
    x = layer(x, mask);
    if (keep_hidden_states) out.hidden_states.push_back(x);
  }
  out.last_hidden_state = final_layer_norm_(x);
  // transformers pools at argmax(ids) while eos_token_id == 2 (SD1.5's legacy config): the first
  // 49407, i.e. the real end token even though the padding is 49407 too.
  out.pooler_output = out.last_hidden_state.index({torch::arange(ids.size(0), ids.options()), ids.argmax(-1)});
  return out;
}

weights::KeyMapping hf_clip_text_mapping() {
  weights::KeyMapping m;
  m.ignore_prefix("text_model.embeddings.position_ids");
  return m;
}

}  // namespace dc::models
