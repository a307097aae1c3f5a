// The latent-diffusion first stages (ldm/models/autoencoder.py, ldm/modules/diffusionmodules/
// model.py Encoder/Decoder; quantiser from taming-transformers taming/modules/vqvae/quantize.py
// VectorQuantizer2). VQ-f4 serves LDM-4-G (cin256-v2); the KL-f8 of SD shares the Encoder and
// Decoder. The building blocks are the ddim repo's (models/ddpm_unet.h: ResnetBlock without a
// timestep projection, AttnBlock, Downsample/Upsample), which the autoencoders share verbatim.
// Module names equal the checkpoint keys (`encoder.*`, `decoder.*`, `quant_conv`,
// `post_quant_conv`, `quantize.embedding.weight`).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/ddpm_unet.h"
#include "models/trace.h"

namespace dc::models {

struct AutoencoderConfig {
  int64_t embed_dim = 3;       // latent channels after quant_conv
  int64_t n_embed = 8192;      // VQ codebook rows (0: no quantiser, KL)
  int64_t z_channels = 3;
  bool double_z = false;       // KL: the encoder outputs mean and logvar
  int64_t resolution = 256;
  int64_t in_channels = 3, out_ch = 3;
  int64_t ch = 128;
  std::vector<int64_t> ch_mult = {1, 2, 4};
  int64_t num_res_blocks = 2;
  std::vector<int64_t> attn_resolutions = {};

  // "vq_f4" (latent-diffusion models/first_stage_models/vq-f4/config.yaml) and "kl_f8" (Stable
  // Diffusion v1's first stage, stable-diffusion configs/stable-diffusion/v1-inference.yaml).
  static AutoencoderConfig preset(const std::string& name);
  int64_t num_levels() const { return static_cast<int64_t>(ch_mult.size()); }
  int64_t downsampling() const { return int64_t{1} << (num_levels() - 1); }
  void validate() const;
};


struct EncoderImpl : torch::nn::Module {
  explicit EncoderImpl(const AutoencoderConfig& c);
  torch::Tensor forward(const torch::Tensor& x, Trace* t = nullptr);  // [B, in, R, R] -> [B, z(*2), R/f, R/f]
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::GroupNorm norm_out{nullptr};
  std::vector<DdpmLevel> levels;
  DdpmResBlock mid_block_1{nullptr}, mid_block_2{nullptr};
  DdpmAttnBlock mid_attn_1{nullptr};
};
TORCH_MODULE(Encoder);

struct DecoderImpl : torch::nn::Module {
  explicit DecoderImpl(const AutoencoderConfig& c);
  torch::Tensor forward(const torch::Tensor& z, Trace* t = nullptr);  // [B, z, r, r] -> [B, out, r*f, r*f]
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::GroupNorm norm_out{nullptr};
  std::vector<DdpmLevel> levels;  // indexed by level (up.0 is the finest), run from the coarsest
  DdpmResBlock mid_block_1{nullptr}, mid_block_2{nullptr};
  DdpmAttnBlock mid_attn_1{nullptr};
};
TORCH_MODULE(Decoder);

// VectorQuantizer2 (legacy, no remap): nearest codebook row by |z|^2 + |e|^2 - 2 z.e, argmin (first
// index on ties), then z + (z_q - z) as the reference's straight-through form computes it.
struct VectorQuantizerImpl : torch::nn::Module {
  VectorQuantizerImpl(int64_t n_embed, int64_t embed_dim);
  // z: [B, C, H, W] -> quantised [B, C, H, W]; `indices` (optional): [B*H*W] in (b, h, w) order.
  torch::Tensor forward(const torch::Tensor& z, torch::Tensor* indices = nullptr);
  torch::nn::Embedding embedding{nullptr};
};
TORCH_MODULE(VectorQuantizer);

// VQModelInterface: encode(x) = quant_conv(encoder(x)) (no quantisation); decode(h) =
// decoder(post_quant_conv(quantize(h))), or without quantize when `quantize_latents` is false.
struct VQModelImpl : torch::nn::Module {
  explicit VQModelImpl(AutoencoderConfig c);
  torch::Tensor encode(const torch::Tensor& x);
  torch::Tensor decode(const torch::Tensor& h, bool quantize_latents = true);
  const AutoencoderConfig& config() const { return config_; }
  Encoder encoder{nullptr};
  Decoder decoder{nullptr};
  torch::nn::Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};
  VectorQuantizer quantize{nullptr};

 private:
  AutoencoderConfig config_;
};
TORCH_MODULE(VQModel);

// AutoencoderKL (ldm/models/autoencoder.py, SD's first stage): encode(x) = the diagonal Gaussian
// whose moments are quant_conv(encoder(x)) = [mean | logvar] (logvar clamped to [-30, 20]);
// decode(z) = decoder(post_quant_conv(z)). The denoiser's latents are z * scale_factor (SD: 0.18215).
struct KLModelImpl : torch::nn::Module {
  explicit KLModelImpl(AutoencoderConfig c);  // double_z, no quantiser
  torch::Tensor moments(const torch::Tensor& x);                              // [B, 2 embed_dim, h, w]
  std::pair<torch::Tensor, torch::Tensor> mean_logvar(const torch::Tensor& x);  // each [B, embed_dim, h, w]
  torch::Tensor decode(const torch::Tensor& z, Trace* t = nullptr);
  const AutoencoderConfig& config() const { return config_; }
  Encoder encoder{nullptr};
  Decoder decoder{nullptr};
  torch::nn::Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};

 private:
  AutoencoderConfig config_;
};
TORCH_MODULE(KLModel);

}  // namespace dc::models
