// CLIP as open_clip (v2.23.0, src/open_clip/model.py + transformer.py) and openai/CLIP
// (clip/model.py) build it, with their state_dict names (no prefix):
//   visual.conv1 (no bias), visual.class_embedding, visual.positional_embedding, visual.ln_pre,
//   visual.transformer.resblocks.N.{ln_1, attn.in_proj_weight/bias, attn.out_proj, ln_2,
//   mlp.c_fc, mlp.c_proj}, visual.ln_post, visual.proj, token_embedding, positional_embedding,
//   transformer.resblocks.N..., ln_final, text_projection, logit_scale (0-d).
// Presets: "vit-g-14" (open_clip ViT-g-14, laion2b_s34b_b88k: the DeepCache paper's CLIP score
// model; manifest fixtures/clip/openclip_vit_g14.keys.json) and "vit-l-14" (OpenAI ViT-L/14,
// quick_gelu).
// The Stable Diffusion v1.5 text encoder (transformers' CLIPTextModel) is in models/clip_text.h.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json_fwd.hpp>
#include <optional>
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

// The pieces CLIP's two text towers share (models/clip_text.h uses them too).
torch::Tensor clip_activate(const torch::Tensor& x, ClipActivation act);
torch::nn::LayerNorm clip_layer_norm(int64_t width, double eps = 1e-5);
// softmax(q k^T * d^-1/2 + mask) v over heads; q, k, v [B, L, W].
torch::Tensor clip_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t heads, const torch::Tensor& mask);
torch::Tensor clip_causal_mask(int64_t n);  // -inf above the diagonal
// An integer of a model config (`fallback` when absent); dc::Error naming `where` and the key.
int64_t clip_config_int(const nlohmann::json& j, const char* key, const std::string& where, std::optional<int64_t> fallback = {});

// Key mapping for released CLIP files: OpenAI's JIT state dicts carry the scalars
// input_resolution, context_length and vocab_size, which are not weights.
weights::KeyMapping clip_checkpoint_mapping();

}  // namespace dc::models
