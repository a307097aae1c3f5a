// CLIP as open_clip (v2.23.0, src/open_clip/model.py + transformer.py) and openai/CLIP
// (clip/model.py) build it, with their state_dict names (no prefix):
//   visual.conv1 (no bias), visual.class_embedding, visual.positional_embedding, visual.ln_pre,
//   visual.transformer.resblocks.N.{ln_1, attn.in_proj_weight/bias, attn.out_proj, ln_2,
//   mlp.c_fc, mlp.c_proj}, visual.ln_post, visual.proj, token_embedding, positional_embedding,
//   transformer.resblocks.N..., ln_final, text_projection, logit_scale (0-d).
// Presets: "vit-g-14" (open_clip ViT-g-14, laion2b_s34b_b88k: the DeepCache paper's CLIP score
// model; manifest fixtures/clip/openclip_vit_g14.keys.json) and "vit-l-14" (OpenAI ViT-L/14,
// quick_gelu).
//
// Also the Stable Diffusion v1.5 text encoder: transformers' CLIPTextModel with its own names
// (text_model.embeddings.*, text_model.encoder.layers.N.self_attn.{q,k,v,out}_proj, ...,
// text_model.final_layer_norm; manifest fixtures/clip/sd15_text_encoder.keys.json).
#pragma once
#include <torch/torch.h>

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "models/weights/key_mapping.h"

namespace dc::models {

enum class ClipActivation { Gelu /* exact erf GELU (open_clip default) */, QuickGelu /* x * sigmoid(1.702 x) (OpenAI) */ };

struct ClipVisionConfig {
  int64_t image_size = 224;
  int64_t patch_size = 14;
  int64_t width = 1408;
  int64_t layers = 40;
  int64_t heads = 16;
  int64_t mlp_width = 6144;
};

struct ClipTextConfig {
  int64_t context_length = 77;
  int64_t vocab_size = 49408;
  int64_t width = 1024;
  int64_t heads = 16;
  int64_t layers = 24;
  int64_t mlp_width = 4096;
};

struct ClipConfig {
  std::string name = "vit-g-14";
  int64_t embed_dim = 1024;
  ClipVisionConfig vision;
  ClipTextConfig text;
  ClipActivation act = ClipActivation::Gelu;

  static ClipConfig preset(const std::string& name);  // dc::Error lists the presets
  static std::vector<std::string> preset_names();
  // From an open_clip model config (model_configs/*.json layout: embed_dim, vision_cfg {image_size,
  // layers, width, head_width, mlp_ratio, patch_size}, text_cfg {context_length, vocab_size, width,
  // heads, layers, mlp_ratio}, quick_gelu). Unsupported options (attentional pooling, custom text
  // towers...) are errors naming the key.
  static ClipConfig from_open_clip(const nlohmann::json& model_cfg, const std::string& where);
};

// nn.MultiheadAttention's parameters (in_proj_weight = [q; k; v], in_proj_bias, out_proj) and its
// computation for self-attention, batch first.
struct ClipAttentionImpl : torch::nn::Module {
  ClipAttentionImpl(int64_t width, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask = {});
  int64_t heads;
  torch::Tensor in_proj_weight, in_proj_bias;
  torch::nn::Linear out_proj{nullptr};
};
TORCH_MODULE(ClipAttention);

struct ClipMlpImpl : torch::nn::Module {
  ClipMlpImpl(int64_t width, int64_t hidden, ClipActivation act);
  torch::Tensor forward(const torch::Tensor& x);
  ClipActivation act;
  torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(ClipMlp);

struct ClipResidualBlockImpl : torch::nn::Module {
  ClipResidualBlockImpl(int64_t width, int64_t heads, int64_t mlp_width, ClipActivation act);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask = {});
  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  ClipAttention attn{nullptr};
  ClipMlp mlp{nullptr};
};
TORCH_MODULE(ClipResidualBlock);

struct ClipTransformerImpl : torch::nn::Module {
  ClipTransformerImpl(int64_t width, int64_t layers, int64_t heads, int64_t mlp_width, ClipActivation act);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& mask = {});
  torch::nn::ModuleList resblocks;
};
TORCH_MODULE(ClipTransformer);

struct ClipVisionImpl : torch::nn::Module {
  ClipVisionImpl(const ClipVisionConfig& cfg, int64_t embed_dim, ClipActivation act);
  // pixel_values [B, 3, S, S] (normalised) -> [B, embed_dim], unnormalised.
  torch::Tensor forward(const torch::Tensor& pixel_values);
  ClipVisionConfig cfg;
  torch::nn::Conv2d conv1{nullptr};
  torch::Tensor class_embedding, positional_embedding, proj;
  torch::nn::LayerNorm ln_pre{nullptr}, ln_post{nullptr};
  ClipTransformer transformer{nullptr};
};
TORCH_MODULE(ClipVision);

class ClipModelImpl : public torch::nn::Module {
 public:
  explicit ClipModelImpl(const ClipConfig& cfg);
  // encode_image / encode_text of open_clip with normalize=False.
  torch::Tensor encode_image(const torch::Tensor& pixel_values);
  torch::Tensor encode_text(const torch::Tensor& ids);  // int64 [B, context_length]; pooled at argmax(ids) (EOT)
  const ClipConfig& config() const { return cfg_; }

  ClipVision visual{nullptr};
  torch::nn::Embedding token_embedding{nullptr};
  torch::Tensor positional_embedding, text_projection, logit_scale;
  ClipTransformer transformer{nullptr};
  torch::nn::LayerNorm ln_final{nullptr};

 private:
  ClipConfig cfg_;
  torch::Tensor causal_mask_;  // open_clip's non-persistent attn_mask (-inf above the diagonal)
};
TORCH_MODULE(ClipModel);

// Key mapping for released CLIP files: OpenAI's JIT state dicts carry the scalars
// input_resolution, context_length and vocab_size, which are not weights.
weights::KeyMapping clip_checkpoint_mapping();

// ---- Stable Diffusion v1.5 text encoder (transformers CLIPTextModel) ------------------------------

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
