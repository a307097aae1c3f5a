// The CompVis `openaimodel.UNetModel` (latent-diffusion ldm/modules/diffusionmodules/openaimodel.py,
// with ldm/modules/attention.py's SpatialTransformer), as DeepCache's LDM code uses it
// (horseee/DeepCache experiments/ldm), with DeepCache at any skip index k. One model serves
// LDM-4-G (cin256-v2: class context through cross-attention, one token) and Stable Diffusion v1
// (text context, 77 tokens). Module names equal the CompVis checkpoint keys under
// `model.diffusion_model.` (ResBlocks `in_layers/emb_layers/out_layers`, `SpatialTransformer`
// `proj_in/transformer_blocks/proj_out`, `Downsample.op`, `Upsample.conv`, `out`).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "models/deepcache_io.h"
#include "models/device_constant.h"
#include "models/trace.h"
#include "models/unet.h"

namespace dc::models {

struct OpenAIUNetConfig {
  int64_t image_size = 64;  // latent side
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t model_channels = 192;
  std::vector<int64_t> attention_resolutions = {8, 4, 2};  // downsampling rates ds with attention
  int64_t num_res_blocks = 2;
  std::vector<int64_t> channel_mult = {1, 2, 3, 5};
  int64_t num_heads = 1;
  int64_t num_head_channels = -1;
  int64_t transformer_depth = 1;
  int64_t context_dim = 512;
  int64_t context_tokens = 1;  // cross-attention tokens of the conditioning (cin256-v2: 1 class token; SD: 77 text tokens)
  bool legacy = true;  // ldm's `legacy`: with a spatial transformer, dim_head = channels / num_heads

  // "cin256_v2" (latent-diffusion configs/latent-diffusion/cin256-v2.yaml) and "sd15"
  // (stable-diffusion configs/stable-diffusion/v1-inference.yaml). Throws dc::Error listing them.
  static OpenAIUNetConfig preset(const std::string& name);
  static std::vector<std::string> preset_names();

  int64_t num_levels() const { return static_cast<int64_t>(channel_mult.size()); }
  // S = len(input_blocks): input_blocks.0 (conv) + num_res_blocks per level + one downsampler per
  // level but the last. hs[j] is the output of input_blocks.j.
  int64_t num_skips() const { return 1 + num_levels() * num_res_blocks + (num_levels() - 1); }
  // "output_blocks.0", ..., "output_blocks.{S-1}": the tap names, in execution order.
  std::vector<std::string> output_block_names() const;
  // (heads, dim_head) of the spatial transformer at `channels`, as UNetModel.__init__ computes them.
  std::pair<int64_t, int64_t> heads(int64_t channels) const;
  void validate() const;
  std::string describe() const;
};

// ldm timestep_embedding: [cos(t f), sin(t f)] (cos first), f_i = exp(-ln(1e4) * i / half) in
// float32 (on the CPU, as the reference computes them). t: [B]. Returns [B, dim].
torch::Tensor compvis_timestep_frequencies(int64_t dim);  // [dim / 2] float32, CPU
// freqs: compvis_timestep_frequencies(dim) on t's device.
torch::Tensor compvis_timestep_embedding(const torch::Tensor& t, const torch::Tensor& freqs, int64_t dim);
inline torch::Tensor compvis_timestep_embedding(const torch::Tensor& t, int64_t dim) {
  return compvis_timestep_embedding(t, compvis_timestep_frequencies(dim).to(t.device()), dim);
}

// ResBlock (use_scale_shift_norm = False): skip(x) + out_layers(in_layers(x) + emb_layers(emb)).
struct CvResBlockImpl : torch::nn::Module {
  CvResBlockImpl(int64_t channels, int64_t emb_channels, int64_t out_channels);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb, Trace* t, const std::string& name);
  torch::nn::GroupNorm in_norm{nullptr}, out_norm{nullptr};
  torch::nn::Conv2d in_conv{nullptr}, out_conv{nullptr}, skip{nullptr};
  torch::nn::Linear emb_linear{nullptr};
};
TORCH_MODULE(CvResBlock);

// CrossAttention (ldm/modules/attention.py): to_q/to_k/to_v without bias, to_out.0 with bias;
// softmax(q k^T * dim_head^-0.5) v per head.
struct CrossAttentionImpl : torch::nn::Module {
  CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t dim_head);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context, Trace* t, const std::string& name);
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr}, to_out{nullptr};
  int64_t heads, dim_head;
};
TORCH_MODULE(CrossAttention);

// BasicTransformerBlock: self-attention, cross-attention on the context, GEGLU feed-forward,
// each pre-LayerNorm with a residual.
struct TransformerBlockImpl : torch::nn::Module {
  TransformerBlockImpl(int64_t dim, int64_t heads, int64_t dim_head, int64_t context_dim);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context, Trace* t, const std::string& name);
  CrossAttention attn1{nullptr}, attn2{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  torch::nn::Linear ff_proj{nullptr}, ff_out{nullptr};
};
TORCH_MODULE(TransformerBlock);

// SpatialTransformer: x + proj_out(blocks(proj_in(norm(x)) as tokens, context)); norm eps 1e-6.
struct SpatialTransformerImpl : torch::nn::Module {
  SpatialTransformerImpl(int64_t channels, int64_t heads, int64_t dim_head, int64_t depth, int64_t context_dim);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context, Trace* t, const std::string& name);
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv2d proj_in{nullptr}, proj_out{nullptr};
  std::vector<TransformerBlock> blocks;
};
TORCH_MODULE(SpatialTransformer);

// One TimestepEmbedSequential: its layers, named "0", "1", ... as in the checkpoint.
struct CvBlockImpl : torch::nn::Module {
  enum class Kind { Conv, Res, Transformer, Down, Up };
  struct Layer {
    Kind kind;
    CvResBlock res{nullptr};
    SpatialTransformer transformer{nullptr};
    torch::nn::Conv2d conv{nullptr};  // Conv (input_blocks.0.0), Down (`op`), Up (`conv`)
  };
  void add_res(CvResBlock r);
  void add_transformer(SpatialTransformer s);
  void add_conv(torch::nn::Conv2d c);
  void add_down(int64_t channels);
  void add_up(int64_t channels);
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& emb, const torch::Tensor& context, Trace* t,
                        const std::string& name);
  std::vector<Layer> layers;
  std::vector<std::string> layer_names;  // "<block>.<i>" filled by the UNet
};
TORCH_MODULE(CvBlock);

class OpenAIUNetImpl : public UNet {
 public:
  explicit OpenAIUNetImpl(OpenAIUNetConfig config);

  // eps = UNet(x, t, context) through UNet::forward. x: [B, in_channels, H, W]; t: [B]; context:
  // [B, L, context_dim] (cross-attention tokens).
  Embedding embed(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& context, Trace* trace) override;
  torch::Tensor input_block(int j, const torch::Tensor& h, const Embedding& e, Trace* trace) override;
  torch::Tensor middle(const torch::Tensor& h, const Embedding& e, Trace* trace) override;
  torch::Tensor output_block(int i, const torch::Tensor& h, const torch::Tensor& skip, const Embedding& e, Trace* trace) override;
  torch::Tensor head(const torch::Tensor& h, Trace* trace) override;
  std::string stage_name(int stage) const override;
  int num_skips() const override { return static_cast<int>(config_.num_skips()); }
  std::vector<std::string> tap_names() const override { return config_.output_block_names(); }
  std::vector<int64_t> sample_shape() const override {
    return {config_.in_channels, config_.image_size, config_.image_size};
  }
  torch::Tensor example_conditioning(int64_t batch, const torch::TensorOptions& o) const override {
    return torch::zeros({batch, config_.context_tokens, config_.context_dim}, o.dtype(torch::kFloat32));
  }
  const OpenAIUNetConfig& config() const { return config_; }

 private:
  OpenAIUNetConfig config_;
  DeviceConstant time_freqs_{[mc = config_.model_channels] { return compvis_timestep_frequencies(mc); }};  // after config_
  torch::nn::Linear time_embed0_{nullptr}, time_embed2_{nullptr};
  std::vector<CvBlock> input_blocks_, output_blocks_;
  CvBlock middle_block_{nullptr};
  torch::nn::GroupNorm out_norm_{nullptr};
  torch::nn::Conv2d out_conv_{nullptr};
  std::vector<std::string> input_names_, output_names_;
};
TORCH_MODULE(OpenAIUNet);

// LDM-4-G's class conditioning (ldm/modules/encoders/modules.py ClassEmbedder): a table of
// n_classes rows (1001 for cin256-v2: row 1000 is the unconditional class of classifier-free
// guidance); context = embedding[label][:, None, :], one cross-attention token.
struct ClassEmbedderImpl : torch::nn::Module {
  ClassEmbedderImpl(int64_t n_classes, int64_t embed_dim);
  torch::Tensor forward(const torch::Tensor& labels);  // [B] int64 -> [B, 1, embed_dim]
  torch::nn::Embedding embedding{nullptr};
};
TORCH_MODULE(ClassEmbedder);

// The class-conditional LDM UNet as the registry's `ldm` family exposes it: cond = class labels
// [B] (int64), turned into the context by `cond_stage_model`. Submodules are named as in the
// cin256-v2 checkpoint: `model.diffusion_model.*`, `cond_stage_model.embedding.weight`.
class ClassConditionedUNetImpl : public UNet {
 public:
  ClassConditionedUNetImpl(OpenAIUNetConfig unet, int64_t n_classes);
  // cond = class labels [B] (int64): the context is cond_stage_model(labels); the stages are the UNet's.
  Embedding embed(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& labels, Trace* trace) override;
  torch::Tensor input_block(int j, const torch::Tensor& h, const Embedding& e, Trace* trace) override {
    return unet_->input_block(j, h, e, trace);
  }
  torch::Tensor middle(const torch::Tensor& h, const Embedding& e, Trace* trace) override { return unet_->middle(h, e, trace); }
  torch::Tensor output_block(int i, const torch::Tensor& h, const torch::Tensor& skip, const Embedding& e, Trace* trace) override {
    return unet_->output_block(i, h, skip, e, trace);
  }
  torch::Tensor head(const torch::Tensor& h, Trace* trace) override { return unet_->head(h, trace); }
  std::string stage_name(int stage) const override { return unet_->stage_name(stage); }
  int num_skips() const override { return unet_->num_skips(); }
  std::vector<std::string> tap_names() const override { return unet_->tap_names(); }
  std::vector<int64_t> sample_shape() const override { return unet_->sample_shape(); }
  torch::Tensor example_conditioning(int64_t batch, const torch::TensorOptions& o) const override {
    return torch::zeros({batch}, o.dtype(torch::kInt64));
  }
  OpenAIUNet& unet() { return unet_; }
  ClassEmbedder& embedder() { return embedder_; }
  int64_t num_classes() const { return n_classes_; }

 private:
  OpenAIUNet unet_{nullptr};
  ClassEmbedder embedder_{nullptr};
  int64_t n_classes_;
};
TORCH_MODULE(ClassConditionedUNet);

}  // namespace dc::models
