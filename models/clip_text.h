// The Stable Diffusion v1.5 text encoder: transformers' CLIPTextModel (CLIP ViT-L/14's text tower,
// the `cond_stage` of the sd family) with its own names: text_model.embeddings.{token,position}_embedding,
// text_model.encoder.layers.N.{layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1/fc2},
// text_model.final_layer_norm (manifest fixtures/clip/sd15_text_encoder.keys.json). The UNet gets
// last_hidden_state [B, 77, 768] of the prompt's tokens (ClipTokenizer, padded with <|endoftext|>).
// open_clip / OpenAI CLIP (the CLIP score models) are in models/clip.h.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "models/clip.h"
#include "models/weights/key_mapping.h"

namespace dc::models {

struct HfClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t max_position_embeddings = 77;
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_attention_heads = 12;
  int64_t num_hidden_layers = 12;
  double layer_norm_eps = 1e-5;
  ClipActivation act = ClipActivation::QuickGelu;

  static HfClipTextConfig sd15();
  // From a transformers config.json object (hidden_act "quick_gelu" or "gelu").
  static HfClipTextConfig from_hf(const nlohmann::json& cfg, const std::string& where);
};

struct HfClipTextOutput {
  torch::Tensor last_hidden_state;            // [B, 77, W] after final_layer_norm (what the UNet gets)
  torch::Tensor pooler_output;                // [B, W] at the first argmax(ids) (the first EOT)
  std::vector<torch::Tensor> hidden_states;   // output of each layer (1-based: [0] = layer 1), when asked
};

// One encoder layer: layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1/fc2.
struct HfClipLayerImpl : torch::nn::Module {
  HfClipLayerImpl(const HfClipTextConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask);
  int64_t heads;
  ClipActivation act;
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr}, fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(HfClipLayer);

class HfClipTextModelImpl : public torch::nn::Module {
 public:
  explicit HfClipTextModelImpl(const HfClipTextConfig& cfg);
  // ids int64 [B, L]; causal mask, no padding mask (SD1.5 passes none).
  HfClipTextOutput forward(const torch::Tensor& ids, bool keep_hidden_states = false);
  const HfClipTextConfig& config() const { return cfg_; }

 private:
  HfClipTextConfig cfg_;
  torch::nn::Embedding token_embedding_{nullptr}, position_embedding_{nullptr};
  std::vector<HfClipLayer> layers_;
  torch::nn::LayerNorm final_layer_norm_{nullptr};
};
TORCH_MODULE(HfClipTextModel);

// The SD1.5 file may or may not hold text_model.embeddings.position_ids (a buffer transformers
// once saved): accepted either way.
weights::KeyMapping hf_clip_text_mapping();

}  // namespace dc::models
