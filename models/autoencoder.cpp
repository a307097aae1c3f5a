#include "models/autoencoder.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::models {

namespace nn = torch::nn;
namespace tr = trace;

namespace {
nn::GroupNorm ae_norm(int64_t ch) { return nn::GroupNorm(nn::GroupNormOptions(32, ch).eps(1e-6).affine(true)); }
nn::Conv2d ae_conv(int64_t in, int64_t out, int64_t k, int64_t pad) { return nn::Conv2d(nn::Conv2dOptions(in, out, k).padding(pad)); }
bool contains(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// mid.block_1, mid.attn_1, mid.block_2 (no timestep embedding).
void build_mid(nn::Module& owner, int64_t ch, DdpmResBlock& b1, DdpmAttnBlock& a, DdpmResBlock& b2) {
  auto mid = owner.register_module("mid", std::make_shared<nn::Module>());
  b1 = mid->register_module("block_1", DdpmResBlock(ch, ch, 0, 0.0));
  a = mid->register_module("attn_1", DdpmAttnBlock(ch));
  b2 = mid->register_module("block_2", DdpmResBlock(ch, ch, 0, 0.0));
}
torch::Tensor run_mid(const torch::Tensor& h, DdpmResBlock& b1, DdpmAttnBlock& a, DdpmResBlock& b2, Trace* t) {
  return b2->forward(a->forward(b1->forward(h, {}, t, "mid.block_1"), t, "mid.attn_1"), {}, t, "mid.block_2");
}
std::string name_of(const char* part, std::size_t l, std::size_t i) { return fmt::format("{}.{}.block.{}", part, l, i); }
}  // namespace

AutoencoderConfig AutoencoderConfig::preset(const std::string& name) {
  if (name == "vq_f4") return {};  // vq-f4: embed_dim 3, n_embed 8192, z 3, ch 128, ch_mult [1,2,4], 2 res blocks, no attention
  if (name == "kl_f8") {  // v1-inference.yaml first_stage_config: embed_dim 4, z 4, double_z, ch 128, ch_mult [1,2,4,4], 2 res blocks
    AutoencoderConfig c;
    c.embed_dim = 4;
    c.n_embed = 0;
    c.z_channels = 4;
    c.double_z = true;
    c.ch_mult = {1, 2, 4, 4};
    return c;
  }
  throw Error(fmt::format("unknown autoencoder preset '{}' (known: vq_f4, kl_f8)", name));
}

void AutoencoderConfig::validate() const {
  auto bad = [](const std::string& what) { return Error("autoencoder config: " + what); };
  if (ch < 32 || ch % 32 != 0) throw bad(fmt::format("ch={} must be a positive multiple of 32 (GroupNorm(32))", ch));
  if (ch_mult.empty() || num_res_blocks < 1) throw bad("ch_mult must be non-empty and num_res_blocks at least 1");
  if (z_channels < 1 || embed_dim < 1 || n_embed < 0) throw bad("z_channels and embed_dim must be >= 1, n_embed >= 0");
}

EncoderImpl::EncoderImpl(const AutoencoderConfig& c) {
  c.validate();
  conv_in = register_module("conv_in", ae_conv(c.in_channels, c.ch, 3, 1));
  auto down = register_module("down", nn::ModuleList());
  int64_t res = c.resolution, block_in = c.ch;
  for (int64_t l = 0; l < c.num_levels(); ++l) {
    auto level = DdpmLevel();
    block_in = c.ch * (l == 0 ? 1 : c.ch_mult[l - 1]);
    const int64_t block_out = c.ch * c.ch_mult[l];
    for (int64_t i = 0; i < c.num_res_blocks; ++i) {
      level->add_block(block_in, block_out, 0, 0.0, contains(c.attn_resolutions, res));
      block_in = block_out;
    }
    if (l != c.num_levels() - 1) {
      level->set_resample(block_in, true, true);
      res /= 2;
    }
    down->push_back(level);
    levels.push_back(level);
  }
  build_mid(*this, block_in, mid_block_1, mid_attn_1, mid_block_2);
  norm_out = register_module("norm_out", ae_norm(block_in));
  conv_out = register_module("conv_out", ae_conv(block_in, c.double_z ? 2 * c.z_channels : c.z_channels, 3, 1));
}

torch::Tensor EncoderImpl::forward(const torch::Tensor& x, Trace* t) {
  torch::Tensor h = tr::conv(conv_in, x, t, "encoder.conv_in");
  for (std::size_t l = 0; l < levels.size(); ++l) {
    for (std::size_t i = 0; i < levels[l]->blocks.size(); ++i)
      h = levels[l]->run_block(i, h, {}, t, name_of("encoder.down", l, i), fmt::format("encoder.down.{}.attn.{}", l, i));
    if (levels[l]->resample) h = levels[l]->resample->forward(h, t, fmt::format("encoder.down.{}.downsample", l));
  }
  h = run_mid(h, mid_block_1, mid_attn_1, mid_block_2, t);
  return tr::conv(conv_out, torch::silu(tr::group_norm(norm_out, h, t, "encoder.norm_out")), t, "encoder.conv_out");
}

DecoderImpl::DecoderImpl(const AutoencoderConfig& c) {
  c.validate();
  const int64_t L = c.num_levels();
  int64_t block_in = c.ch * c.ch_mult[L - 1], res = c.resolution / c.downsampling();
  conv_in = register_module("conv_in", ae_conv(c.z_channels, block_in, 3, 1));
  build_mid(*this, block_in, mid_block_1, mid_attn_1, mid_block_2);
  levels.assign(L, DdpmLevel(nullptr));
  for (int64_t l = L - 1; l >= 0; --l) {  // built coarsest first, stored by level (up.0 is the finest)
    auto level = DdpmLevel();
    const int64_t block_out = c.ch * c.ch_mult[l];
    for (int64_t i = 0; i <= c.num_res_blocks; ++i) {
      level->add_block(block_in, block_out, 0, 0.0, contains(c.attn_resolutions, res));
      block_in = block_out;
    }
    if (l != 0) {
      level->set_resample(block_in, true, false);
      res *= 2;
    }
    levels[l] = level;
  }
  auto up = register_module("up", nn::ModuleList());
  for (auto& level : levels) up->push_back(level);
  norm_out = register_module("norm_out", ae_norm(block_in));
  conv_out = register_module("conv_out", ae_conv(block_in, c.out_ch, 3, 1));
}

torch::Tensor DecoderImpl::forward(const torch::Tensor& z, Trace* t) {
  torch::Tensor h = tr::conv(conv_in, z, t, "decoder.conv_in");
  h = run_mid(h, mid_block_1, mid_attn_1, mid_block_2, t);
  for (std::size_t l = levels.size(); l-- > 0;) {
    for (std::size_t i = 0; i < levels[l]->blocks.size(); ++i)
      h = levels[l]->run_block(i, h, {}, t, name_of("decoder.up", l, i), fmt::format("decoder.up.{}.attn.{}", l, i));
    if (levels[l]->resample) h = levels[l]->resample->forward(h, t, fmt::format("decoder.up.{}.upsample", l));
  }
  return tr::conv(conv_out, torch::silu(tr::group_norm(norm_out, h, t, "decoder.norm_out")), t, "decoder.conv_out");
}

VectorQuantizerImpl::VectorQuantizerImpl(int64_t n_embed, int64_t embed_dim) {
  embedding = register_module("embedding", nn::Embedding(n_embed, embed_dim));
}

torch::Tensor VectorQuantizerImpl::forward(const torch::Tensor& z_nchw, torch::Tensor* indices) {
  const torch::Tensor z = z_nchw.permute({0, 2, 3, 1}).contiguous();  // 'b c h w -> b h w c'
  const torch::Tensor& e = embedding->weight;                         // [n, d]
  const torch::Tensor zf = z.view({-1, e.size(1)});                   // [BHW, d]
  // d = |z|^2 + |e|^2 - 2 z.e, evaluated in the reference's order.
  const torch::Tensor d = zf.pow(2).sum(1, true) + e.pow(2).sum(1) - 2 * torch::matmul(zf, e.t());
  const torch::Tensor idx = d.argmin(1);
  if (indices) *indices = idx;
  const torch::Tensor zq = embedding->forward(idx).view(z.sizes());
  return (z + (zq - z)).permute({0, 3, 1, 2}).contiguous();  // straight-through form, as computed
}

VQModelImpl::VQModelImpl(AutoencoderConfig c) : config_(std::move(c)) {
  encoder = register_module("encoder", Encoder(config_));
  decoder = register_module("decoder", Decoder(config_));
  if (config_.n_embed > 0) quantize = register_module("quantize", VectorQuantizer(config_.n_embed, config_.embed_dim));
  quant_conv = register_module("quant_conv", ae_conv(config_.z_channels, config_.embed_dim, 1, 0));
  post_quant_conv = register_module("post_quant_conv", ae_conv(config_.embed_dim, config_.z_channels, 1, 0));
}

torch::Tensor VQModelImpl::encode(const torch::Tensor& x) { return quant_conv->forward(encoder->forward(x)); }

torch::Tensor VQModelImpl::decode(const torch::Tensor& h, bool quantize_latents) {
  const torch::Tensor q = quantize_latents && quantize ? quantize->forward(h) : h;
  return decoder->forward(post_quant_conv->forward(q));
}

KLModelImpl::KLModelImpl(AutoencoderConfig c) : config_(std::move(c)) {
  if (!config_.double_z || config_.n_embed != 0) throw Error("AutoencoderKL: the config must have double_z and no quantiser (n_embed 0)");
  encoder = register_module("encoder", Encoder(config_));
  decoder = register_module("decoder", Decoder(config_));
  quant_conv = register_module("quant_conv", ae_conv(2 * config_.z_channels, 2 * config_.embed_dim, 1, 0));
  post_quant_conv = register_module("post_quant_conv", ae_conv(config_.embed_dim, config_.z_channels, 1, 0));
}

torch::Tensor KLModelImpl::moments(const torch::Tensor& x) { return quant_conv->forward(encoder->forward(x)); }

std::pair<torch::Tensor, torch::Tensor> KLModelImpl::mean_logvar(const torch::Tensor& x) {
  const auto m = moments(x).chunk(2, 1);  // DiagonalGaussianDistribution: torch.chunk(parameters, 2, dim=1)
  return {m[0], torch::clamp(m[1], -30.0, 20.0)};
}

torch::Tensor KLModelImpl::decode(const torch::Tensor& z, Trace* t) { return decoder->forward(post_quant_conv->forward(z), t); }

}  // namespace dc::models
