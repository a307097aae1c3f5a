// The DDPM UNet of ermongroup/ddim (models/diffusion.py, class Model), as used by DeepCache
// (experiments/ddpm/ddpm/models/deepcache_diffusion.py), with DeepCache at any skip index k.
// Module names equal the keys of the released converted EMA checkpoints
// (diffusion_models_converted/ema_diffusion_{cifar10,lsun_bedroom,lsun_church}_model).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/deepcache_io.h"
#include "models/device_constant.h"
#include "models/trace.h"
#include "models/unet.h"

namespace dc::models {

struct DdpmConfig {
  int64_t in_channels = 3;
  int64_t out_ch = 3;
  int64_t ch = 128;
  std::vector<int64_t> ch_mult = {1, 2, 2, 2};
  int64_t num_res_blocks = 2;
  std::vector<int64_t> attn_resolutions = {16};
  double dropout = 0.1;  // training only; inference (eval mode) turns it off
  bool resamp_with_conv = true;
  int64_t resolution = 32;

  // Presets with the upstream configs (DeepCache experiments/ddpm/configs/{cifar10,bedroom,church}.yml):
  // "cifar10", "lsun_bedroom", "lsun_church". Throws dc::Error listing them for another name.
  static DdpmConfig preset(const std::string& name);
  static std::vector<std::string> preset_names();

  int64_t num_levels() const { return static_cast<int64_t>(ch_mult.size()); }
  // S, the number of skip tensors: conv_in + one per down block + one per downsampler.
  int64_t num_skips() const { return 1 + num_levels() * num_res_blocks + (num_levels() - 1); }
  // Throws dc::Error naming the field when the config cannot build a model.
  void validate() const;
  std::string describe() const;
  // The up ResBlocks in execution order ("up.3.block.0", ..., "up.0.block.2"): the tap names.
  std::vector<std::string> up_block_names() const;
};

// Sinusoidal timestep embedding [sin, cos] (sin first), frequencies exp(-i*ln(1e4)/(half-1)),
// computed in float32 on the CPU as the reference does. t: [B] (any dtype). Returns [B, dim].
torch::Tensor timestep_frequencies(int64_t dim);  // [dim / 2] float32, CPU
// freqs: timestep_frequencies(dim) on t's device.
torch::Tensor timestep_embedding(const torch::Tensor& t, const torch::Tensor& freqs, int64_t dim);
inline torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim) {
  return timestep_embedding(t, timestep_frequencies(dim).to(t.device()), dim);
}

// The ddim repo's (and taming-transformers' / ldm's autoencoder) building blocks: ResnetBlock
// (temb_ch = 0: no timestep projection, as in the VQ/KL autoencoders), AttnBlock, and
// Downsample/Upsample. models/autoencoder reuses them.
struct DdpmResBlockImpl : torch::nn::Module {
  DdpmResBlockImpl(int64_t in, int64_t out, int64_t temb_ch, double dropout);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb_act, Trace* t, const std::string& name);
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, nin_shortcut{nullptr};
  torch::nn::Linear temb_proj{nullptr};
  double dropout;
};
TORCH_MODULE(DdpmResBlock);

struct DdpmAttnBlockImpl : torch::nn::Module {
  explicit DdpmAttnBlockImpl(int64_t ch);
  torch::Tensor forward(const torch::Tensor& x, Trace* t, const std::string& name);
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv2d q{nullptr}, k{nullptr}, v{nullptr}, proj_out{nullptr};
};
TORCH_MODULE(DdpmAttnBlock);

struct DdpmResampleImpl : torch::nn::Module {
  DdpmResampleImpl(int64_t ch, bool with_conv, bool down);
  torch::Tensor forward(const torch::Tensor& x, Trace* t, const std::string& name);
  torch::nn::Conv2d conv{nullptr};
  bool down;
};
TORCH_MODULE(DdpmResample);

// One resolution level: block.{i}, attn.{i}, downsample / upsample.
struct DdpmLevelImpl : torch::nn::Module {
  DdpmLevelImpl();  // registers `block` and `attn`
  // Appends block.{i} (and attn.{i} when with_attn), constructed in that order.
  void add_block(int64_t in, int64_t out, int64_t temb_ch, double dropout, bool with_attn);
  // Registers `downsample` or `upsample`.
  void set_resample(int64_t ch, bool with_conv, bool down);
  // block.{i} and its attention, if any.
  torch::Tensor run_block(std::size_t i, const torch::Tensor& h, const torch::Tensor& temb, Trace* t, const std::string& name,
                          const std::string& attn_name);
  torch::nn::ModuleList block, attn;
  DdpmResample resample{nullptr};
  std::vector<DdpmResBlock> blocks;
  std::vector<DdpmAttnBlock> attns;
};
TORCH_MODULE(DdpmLevel);

class DdpmUNetImpl : public UNet {
 public:
  explicit DdpmUNetImpl(DdpmConfig config);

  // eps = UNet(x, t) (unconditional). x: [B, in_channels, R, R]; t: [B] timesteps (float or integer).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const CallRequest* request = nullptr,
                        StageCache* cache = nullptr, Trace* trace = nullptr) {
    return UNet::forward(x, t, torch::Tensor(), request, cache, trace);
  }
  using UNet::forward;

  // models::UNet. The DDPM UNet is unconditional: `cond` must be undefined.
  Embedding embed(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond, Trace* trace) override;
  torch::Tensor input_block(int j, const torch::Tensor& h, const Embedding& e, Trace* trace) override;
  torch::Tensor middle(const torch::Tensor& h, const Embedding& e, Trace* trace) override;
  torch::Tensor output_block(int i, const torch::Tensor& h, const torch::Tensor& skip, const Embedding& e, Trace* trace) override;
  torch::Tensor head(const torch::Tensor& h, Trace* trace) override;
  std::string stage_name(int stage) const override;
  int num_skips() const override { return static_cast<int>(config_.num_skips()); }
  std::vector<std::string> tap_names() const override { return up_names_; }
  std::vector<int64_t> sample_shape() const override {
    return {config_.in_channels, config_.resolution, config_.resolution};
  }

  const DdpmConfig& config() const { return config_; }
  // Name of the up block that consumes hs[k] (its input is what the cache holds), e.g. "up.1.block.2".
  std::string up_block_consuming(int k) const;
  // Name of the block whose output is hs[k], e.g. "conv_in", "down.0.block.1", "down.0.downsample".
  std::string skip_source(int k) const;

 private:
  struct DownStep {
    int level;
    int block;  // -1: the level's downsampler
  };
  torch::Tensor down_step(const DownStep& s, const torch::Tensor& h, const torch::Tensor& temb, Trace* t);

  DdpmConfig config_;
  DeviceConstant temb_freqs_{[ch = config_.ch] { return timestep_frequencies(ch); }};  // after config_
  std::shared_ptr<torch::nn::Module> temb_;
  torch::nn::ModuleList temb_dense_{nullptr};
  torch::nn::Linear temb0_{nullptr}, temb1_{nullptr};
  torch::nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  torch::nn::GroupNorm norm_out_{nullptr};
  torch::nn::ModuleList down_{nullptr}, up_{nullptr};
  std::vector<DdpmLevel> down_levels_, up_levels_;
  DdpmResBlock mid_block_1_{nullptr}, mid_block_2_{nullptr};
  DdpmAttnBlock mid_attn_1_{nullptr};
  std::vector<DownStep> down_steps_;  // hs[j] for j >= 1 is produced by down_steps_[j-1]
  // Precomputed block names (no string formatting in the forward).
  std::vector<std::string> down_names_, down_attn_names_;  // per down step
  std::vector<std::string> up_names_, up_attn_names_, up_resample_names_;  // per up position
};
TORCH_MODULE(DdpmUNet);

}  // namespace dc::models
