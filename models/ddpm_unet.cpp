#include "models/ddpm_unet.h"

#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>  // "{}" of a vector: [1, 2, 2, 2]

#include "common/error.h"
#include "models/deepcache_io.h"

namespace dc::models {

namespace nn = torch::nn;
namespace tr = trace;

namespace {
nn::GroupNorm normalize(int64_t ch) { return nn::GroupNorm(nn::GroupNormOptions(32, ch).eps(1e-6).affine(true)); }
nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(pad));
}
}  // namespace

// ---- config ---------------------------------------------------------------------------------
DdpmConfig DdpmConfig::preset(const std::string& name) {
  DdpmConfig c;
  if (name == "cifar10") return c;  // configs/cifar10.yml: ch 128, ch_mult [1,2,2,2], attn 16, dropout 0.1, 32x32
  if (name == "lsun_bedroom" || name == "lsun_church") {
    // configs/{bedroom,church}.yml: ch 128, ch_mult [1,1,2,2,4,4], attn 16, dropout 0.0, 256x256
    c.ch_mult = {1, 1, 2, 2, 4, 4};
    c.dropout = 0.0;
    c.resolution = 256;
    return c;
  }
  if (name == "fmnist") {
    // This project's Fashion-MNIST model (configs/train/fmnist_ddpm.yaml): grey 28x28 padded to
    // 32x32, small enough to train on two CPU cores in under an hour; S = 9 skip indices. No
    // attention: at 16x16 it cost a third of a training step (bench_train) for little on this data.
    c.in_channels = 1;
    c.out_ch = 1;
    c.ch = 32;
    c.ch_mult = {1, 2, 2};
    c.num_res_blocks = 2;
    c.attn_resolutions = {};
    c.dropout = 0.1;
    return c;
  }
  std::string names;
  for (const auto& n : preset_names()) names += (names.empty() ? "" : ", ") + n;
  throw Error(fmt::format("unknown DDPM preset '{}' (known: {})", name, names));
}

std::vector<std::string> DdpmConfig::preset_names() { return {"cifar10", "lsun_bedroom", "lsun_church", "fmnist"}; }

void DdpmConfig::validate() const {
  auto bad = [](const std::string& what) { return Error("DDPM config: " + what); };
  if (ch < 1 || ch % 32 != 0) throw bad(fmt::format("ch={} must be a positive multiple of 32 (GroupNorm(32))", ch));
  if (ch_mult.empty()) throw bad("ch_mult is empty");
  for (int64_t m : ch_mult)
    if (m < 1) throw bad(fmt::format("ch_mult {} has an entry below 1", ch_mult));
  if (num_res_blocks < 1) throw bad(fmt::format("num_res_blocks={} must be at least 1", num_res_blocks));
  if (in_channels < 1 || out_ch < 1) throw bad("in_channels and out_ch must be at least 1");
  if (resolution < 1 || resolution % (int64_t{1} << (num_levels() - 1)) != 0)
    throw bad(fmt::format("resolution={} must be divisible by 2^(levels-1) = {}", resolution,
                          int64_t{1} << (num_levels() - 1)));
  if (dropout < 0 || dropout >= 1) throw bad(fmt::format("dropout={} must be in [0, 1)", dropout));
}

std::string DdpmConfig::describe() const {
  return fmt::format("ch={}, ch_mult={}, num_res_blocks={}, attn_resolutions={}, resolution={}, in={}, out={}", ch,
                     ch_mult, num_res_blocks, attn_resolutions, resolution, in_channels, out_ch);
}

std::vector<std::string> DdpmConfig::up_block_names() const {
  std::vector<std::string> names;
  for (int64_t l = num_levels() - 1; l >= 0; --l)
    for (int64_t i = 0; i <= num_res_blocks; ++i) names.push_back(fmt::format("up.{}.block.{}", l, i));
  return names;
}

torch::Tensor timestep_frequencies(int64_t dim) {
  const int64_t half = dim / 2;
  const double step = std::log(10000.0) / static_cast<double>(half - 1);
  return torch::exp(torch::arange(half, torch::TensorOptions().dtype(torch::kFloat32)) * -step);
}

torch::Tensor timestep_embedding(const torch::Tensor& t, const torch::Tensor& freqs, int64_t dim) {
  TORCH_CHECK(t.dim() == 1, "timestep_embedding: t must be 1-D, got ", t.sizes());
  torch::Tensor args = t.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);  // [B, half]
  torch::Tensor emb = torch::cat({torch::sin(args), torch::cos(args)}, 1);       // [B, 2*half]
  if (dim % 2 == 1) emb = torch::constant_pad_nd(emb, {0, 1, 0, 0});
  return emb;
}

// ---- blocks ---------------------------------------------------------------------------------
DdpmResBlockImpl::DdpmResBlockImpl(int64_t in, int64_t out, int64_t temb_ch, double dropout_p) : dropout(dropout_p) {
  norm1 = register_module("norm1", normalize(in));
  conv1 = register_module("conv1", conv(in, out, 3, 1, 1));
  if (temb_ch > 0) temb_proj = register_module("temb_proj", nn::Linear(temb_ch, out));  // 0: the autoencoders' blocks
  norm2 = register_module("norm2", normalize(out));
  conv2 = register_module("conv2", conv(out, out, 3, 1, 1));
  if (in != out) nin_shortcut = register_module("nin_shortcut", conv(in, out, 1, 1, 0));
}

torch::Tensor DdpmResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& temb_act, Trace* t,
                                        const std::string& name) {
  torch::Tensor h = torch::silu(tr::group_norm(norm1, x, t, name));           // [B, Cin, H, W]
  h = tr::conv(conv1, h, t, name);                                             // [B, Cout, H, W]
  if (temb_proj) h = h + tr::linear(temb_proj, temb_act, t, name).unsqueeze(-1).unsqueeze(-1);  // + temb_proj(swish(temb))
  h = torch::silu(tr::group_norm(norm2, h, t, name));
  if (dropout > 0 && is_training()) h = torch::dropout(h, dropout, true);
  h = tr::conv(conv2, h, t, name);
  const torch::Tensor skip = nin_shortcut ? tr::conv(nin_shortcut, x, t, name) : x;
  torch::Tensor out = skip + h;
  tr::done(t, name, out);
  return out;
}

DdpmAttnBlockImpl::DdpmAttnBlockImpl(int64_t ch) {
  norm = register_module("norm", normalize(ch));
  q = register_module("q", conv(ch, ch, 1, 1, 0));
  k = register_module("k", conv(ch, ch, 1, 1, 0));
  v = register_module("v", conv(ch, ch, 1, 1, 0));
  proj_out = register_module("proj_out", conv(ch, ch, 1, 1, 0));
}

torch::Tensor DdpmAttnBlockImpl::forward(const torch::Tensor& x, Trace* t, const std::string& name) {
  const torch::Tensor h_ = tr::group_norm(norm, x, t, name);
  const int64_t b = x.size(0), c = x.size(1), hh = x.size(2), ww = x.size(3);
  torch::Tensor qq = tr::conv(q, h_, t, name).reshape({b, c, hh * ww}).permute({0, 2, 1});  // [B, HW, C]
  torch::Tensor kk = tr::conv(k, h_, t, name).reshape({b, c, hh * ww});                     // [B, C, HW]
  torch::Tensor vv = tr::conv(v, h_, t, name).reshape({b, c, hh * ww});                     // [B, C, HW]
  // softmax(q k^T / sqrt(C)) v as one head of width C (models/trace.h: attention).
  torch::Tensor out = tr::attention(qq, kk.transpose(1, 2), vv.transpose(1, 2), b, t).transpose(1, 2).reshape({b, c, hh, ww});  // [B, C, H, W]
  out = x + tr::conv(proj_out, out, t, name);
  tr::done(t, name, out);
  return out;
}

DdpmResampleImpl::DdpmResampleImpl(int64_t ch, bool with_conv, bool is_down) : down(is_down) {
  if (with_conv) conv = register_module("conv", is_down ? dc::models::conv(ch, ch, 3, 2, 0) : dc::models::conv(ch, ch, 3, 1, 1));
}

torch::Tensor DdpmResampleImpl::forward(const torch::Tensor& x, Trace* t, const std::string& name) {
  torch::Tensor h;
  if (down) {
    // Downsample: zero-pad right and bottom (0,1,0,1), 3x3 stride-2 conv; or 2x2 average pooling.
    h = conv ? tr::conv(conv, torch::constant_pad_nd(x, {0, 1, 0, 1}), t, name) : torch::avg_pool2d(x, 2, 2);
  } else {
    // Upsample: nearest x2, then a 3x3 conv.
    h = torch::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2});
    if (conv) h = tr::conv(conv, h, t, name);
  }
  tr::done(t, name, h);
  return h;
}

DdpmLevelImpl::DdpmLevelImpl() {
  block = register_module("block", nn::ModuleList());
  attn = register_module("attn", nn::ModuleList());
}

void DdpmLevelImpl::add_block(int64_t in, int64_t out, int64_t temb_ch, double dropout, bool with_attn) {
  blocks.push_back(DdpmResBlock(in, out, temb_ch, dropout));
  block->push_back(blocks.back());
  if (with_attn) {
    attns.push_back(DdpmAttnBlock(out));
    attn->push_back(attns.back());
  }
}

void DdpmLevelImpl::set_resample(int64_t ch, bool with_conv, bool down) {
  resample = register_module(down ? "downsample" : "upsample", DdpmResample(ch, with_conv, down));
}

torch::Tensor DdpmLevelImpl::run_block(std::size_t i, const torch::Tensor& h, const torch::Tensor& temb, Trace* t,
                                       const std::string& name, const std::string& attn_name) {
  torch::Tensor out = blocks[i]->forward(h, temb, t, name);
  if (!attns.empty()) out = attns[i]->forward(out, t, attn_name);
  return out;
}

// ---- UNet -----------------------------------------------------------------------------------
DdpmUNetImpl::DdpmUNetImpl(DdpmConfig config) : config_(std::move(config)) {
  config_.validate();
  const int64_t ch = config_.ch, temb_ch = 4 * ch, L = config_.num_levels(), nrb = config_.num_res_blocks;
  auto has_attn = [&](int64_t res) {
    return std::find(config_.attn_resolutions.begin(), config_.attn_resolutions.end(), res) != config_.attn_resolutions.end();
  };

  // Stage 1: timestep embedding MLP (temb.dense.{0,1}).
  temb_ = register_module("temb", std::make_shared<nn::Module>());
  temb0_ = nn::Linear(ch, temb_ch);
  temb1_ = nn::Linear(temb_ch, temb_ch);
  temb_dense_ = temb_->register_module("dense", nn::ModuleList(temb0_, temb1_));

  // Stage 2: down path.
  conv_in_ = register_module("conv_in", conv(config_.in_channels, ch, 3, 1, 1));
  down_ = register_module("down", nn::ModuleList());
  std::vector<int64_t> in_ch_mult = {1};
  in_ch_mult.insert(in_ch_mult.end(), config_.ch_mult.begin(), config_.ch_mult.end());
  int64_t res = config_.resolution, block_in = ch;
  for (int64_t l = 0; l < L; ++l) {
    auto level = DdpmLevel();
    block_in = ch * in_ch_mult[l];
    const int64_t block_out = ch * config_.ch_mult[l];
    for (int64_t i = 0; i < nrb; ++i) {
      level->add_block(block_in, block_out, temb_ch, config_.dropout, has_attn(res));
      block_in = block_out;
      down_steps_.push_back({static_cast<int>(l), static_cast<int>(i)});
      down_names_.push_back(fmt::format("down.{}.block.{}", l, i));
      down_attn_names_.push_back(fmt::format("down.{}.attn.{}", l, i));
    }
    if (l != L - 1) {
      level->set_resample(block_in, config_.resamp_with_conv, true);
      res /= 2;
      down_steps_.push_back({static_cast<int>(l), -1});
      down_names_.push_back(fmt::format("down.{}.downsample", l));
      down_attn_names_.push_back("");
    }
    down_->push_back(level);
    down_levels_.push_back(level);
  }

  // Stage 3: middle.
  auto mid = register_module("mid", std::make_shared<nn::Module>());
  mid_block_1_ = mid->register_module("block_1", DdpmResBlock(block_in, block_in, temb_ch, config_.dropout));
  mid_attn_1_ = mid->register_module("attn_1", DdpmAttnBlock(block_in));
  mid_block_2_ = mid->register_module("block_2", DdpmResBlock(block_in, block_in, temb_ch, config_.dropout));

  // Stage 4: up path, built deepest level first, stored by level index (up.0 is the finest).
  std::vector<DdpmLevel> built(L);
  for (int64_t l = L - 1; l >= 0; --l) {
    auto level = DdpmLevel();
    const int64_t block_out = ch * config_.ch_mult[l];
    int64_t skip_in = ch * config_.ch_mult[l];
    for (int64_t i = 0; i < nrb + 1; ++i) {
      if (i == nrb) skip_in = ch * in_ch_mult[l];
      level->add_block(block_in + skip_in, block_out, temb_ch, config_.dropout, has_attn(res));
      block_in = block_out;
      up_names_.push_back(fmt::format("up.{}.block.{}", l, i));
      up_attn_names_.push_back(fmt::format("up.{}.attn.{}", l, i));
      up_resample_names_.push_back(i == nrb && l != 0 ? fmt::format("up.{}.upsample", l) : "");
    }
    if (l != 0) {
      level->set_resample(block_in, config_.resamp_with_conv, false);
      res *= 2;
    }
    built[l] = level;
  }
  up_ = register_module("up", nn::ModuleList());
  for (auto& level : built) up_->push_back(level);
  up_levels_ = built;

  // Stage 5: output head.
  norm_out_ = register_module("norm_out", normalize(block_in));
  conv_out_ = register_module("conv_out", conv(block_in, config_.out_ch, 3, 1, 1));
  TORCH_INTERNAL_ASSERT(static_cast<int64_t>(down_steps_.size()) + 1 == config_.num_skips());
  TORCH_INTERNAL_ASSERT(static_cast<int64_t>(up_names_.size()) == config_.num_skips());
  TORCH_INTERNAL_ASSERT(up_names_ == config_.up_block_names());
}

std::string DdpmUNetImpl::up_block_consuming(int k) const {
  deepcache::check_skip_index(k, num_skips(), "the DDPM UNet");
  return up_names_[num_skips() - 1 - k];
}

std::string DdpmUNetImpl::skip_source(int k) const {
  deepcache::check_skip_index(k, num_skips(), "the DDPM UNet");
  if (k == 0) return "conv_in";
  const DownStep& s = down_steps_[k - 1];
  if (s.block >= 0 && !down_levels_[s.level]->attns.empty()) return down_attn_names_[k - 1];
  return down_names_[k - 1];
}

torch::Tensor DdpmUNetImpl::down_step(const DownStep& s, const torch::Tensor& h, const torch::Tensor& temb, Trace* t) {
  const std::size_t j = &s - down_steps_.data();
  DdpmLevel level = down_levels_[s.level];
  if (s.block < 0) return level->resample->forward(h, t, down_names_[j]);
  return level->run_block(s.block, h, temb, t, down_names_[j], down_attn_names_[j]);
}

UNet::Embedding DdpmUNetImpl::embed(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond, Trace* trace) {
  if (cond.defined()) throw Error("the DDPM UNet is unconditional: it takes no class labels or text (model.family: ddpm)");
  TORCH_CHECK(x.dim() == 4 && x.size(2) == config_.resolution && x.size(3) == config_.resolution,
              "DDPM UNet: input must be [B, C, ", config_.resolution, ", ", config_.resolution, "], got ", x.sizes());
  // temb = dense1(swish(dense0(sinusoidal(t)))); the blocks take swish(temb).
  torch::Tensor temb = tr::linear(temb0_, timestep_embedding(t, temb_freqs_.on(t.device()), config_.ch).to(x.dtype()), trace, "temb.dense.0");
  tr::done(trace, "temb.dense.0", temb);
  temb = tr::linear(temb1_, torch::silu(temb), trace, "temb.dense.1");
  tr::done(trace, "temb.dense.1", temb);
  return {torch::silu(temb), torch::Tensor()};
}

// hs[0] = conv_in(x), hs[j] = down_steps_[j-1](hs[j-1]).
torch::Tensor DdpmUNetImpl::input_block(int j, const torch::Tensor& h, const Embedding& e, Trace* trace) {
  if (j == 0) {
    torch::Tensor y = tr::conv(conv_in_, h, trace, "conv_in");
    tr::done(trace, "conv_in", y);
    return y;
  }
  return down_step(down_steps_[j - 1], h, e.emb, trace);
}

torch::Tensor DdpmUNetImpl::middle(const torch::Tensor& h_in, const Embedding& e, Trace* trace) {
  torch::Tensor h = mid_block_1_->forward(h_in, e.emb, trace, "mid.block_1");
  h = mid_attn_1_->forward(h, trace, "mid.attn_1");
  return mid_block_2_->forward(h, e.emb, trace, "mid.block_2");
}

// Up position p: block i of level L-1-p/(nrb+1) on cat(h, skip), then the level's upsampler after its last block.
torch::Tensor DdpmUNetImpl::output_block(int p, const torch::Tensor& h, const torch::Tensor& skip, const Embedding& e, Trace* trace) {
  const int nrb1 = static_cast<int>(config_.num_res_blocks) + 1;
  const int level_index = static_cast<int>(config_.num_levels()) - 1 - p / nrb1, i = p % nrb1;
  DdpmLevel level = up_levels_[level_index];
  torch::Tensor y = level->run_block(i, torch::cat({h, skip}, 1), e.emb, trace, up_names_[p], up_attn_names_[p]);  // [B, C_out, H, W]
  if (i == nrb1 - 1 && level_index != 0) y = level->resample->forward(y, trace, up_resample_names_[p]);
  return y;
}

// conv_out(swish(norm_out(h))).
torch::Tensor DdpmUNetImpl::head(const torch::Tensor& h_in, Trace* trace) {
  torch::Tensor h = tr::group_norm(norm_out_, h_in, trace, "norm_out");
  tr::done(trace, "norm_out", h);
  h = tr::conv(conv_out_, torch::silu(h), trace, "conv_out");
  tr::done(trace, "conv_out", h);
  return h;
}

std::string DdpmUNetImpl::stage_name(int stage) const {
  const int S = num_skips();
  if (stage == 0) return "conv_in";
  if (stage < S) return down_names_[stage - 1];
  if (stage == S) return "mid";
  if (stage <= 2 * S) return up_names_[stage - S - 1];
  return generic_stage_name(S, stage);
}

}  // namespace dc::models
