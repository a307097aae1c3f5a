#include "models/clip_text.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace dc::models {

HfClipTextConfig HfClipTextConfig::sd15() { return {}; }

HfClipTextConfig HfClipTextConfig::from_hf(const nlohmann::json& j, const std::string& where) {
  HfClipTextConfig c;
  c.vocab_size = clip_config_int(j, "vocab_size", where, c.vocab_size);
  c.max_position_embeddings = clip_config_int(j, "max_position_embeddings", where, c.max_position_embeddings);
  c.hidden_size = clip_config_int(j, "hidden_size", where);
  c.intermediate_size = clip_config_int(j, "intermediate_size", where);
  c.num_attention_heads = clip_config_int(j, "num_attention_heads", where);
  c.num_hidden_layers = clip_config_int(j, "num_hidden_layers", where);
  c.layer_norm_eps = j.value("layer_norm_eps", 1e-5);
  const std::string act = j.value("hidden_act", "quick_gelu");
  if (act == "quick_gelu") c.act = ClipActivation::QuickGelu;
  else if (act == "gelu") c.act = ClipActivation::Gelu;
  else throw Error(fmt::format("{}: hidden_act '{}' is not supported (quick_gelu or gelu)", where, act));
  return c;
}

HfClipLayerImpl::HfClipLayerImpl(const HfClipTextConfig& c) : heads(c.num_attention_heads), act(c.act) {
  const int64_t w = c.hidden_size;
  layer_norm1 = clip_layer_norm(w, c.layer_norm_eps);
  layer_norm2 = clip_layer_norm(w, c.layer_norm_eps);
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
  const auto y = x + out_proj(clip_attention(q_proj(h), k_proj(h), v_proj(h), heads, mask));
  return y + fc2(clip_activate(fc1(layer_norm2(y)), act));
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
  final_layer_norm_ = text_model->register_module("final_layer_norm", clip_layer_norm(c.hidden_size, c.layer_norm_eps));
}

HfClipTextOutput HfClipTextModelImpl::forward(const torch::Tensor& ids, bool keep_hidden_states) {
  if (ids.dim() != 2 || ids.scalar_type() != torch::kInt64 || ids.size(1) > cfg_.max_position_embeddings)
    throw Error(fmt::format("CLIP text model: expected int64 token ids [B, <= {}], got {} {}", cfg_.max_position_embeddings,
                            std::string(c10::toString(ids.scalar_type())), fmt::join(ids.sizes().vec(), "x")));
  const int64_t L = ids.size(1);
  auto x = token_embedding_(ids) + position_embedding_(torch::arange(L, ids.options()));
  const auto mask = clip_causal_mask(L).to(x.device(), x.scalar_type());
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
