#include "models/openai_unet.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>  // "{}" of a vector: [1, 2, 2, 2]

#include "common/error.h"

namespace dc::models {

namespace nn = torch::nn;
namespace tr = trace;

namespace {
// GroupNorm32 (ResBlocks, `out`): 32 groups, eps 1e-5, computed in float32 (our tensors are).
nn::GroupNorm group_norm32(int64_t ch) { return nn::GroupNorm(nn::GroupNormOptions(32, ch).eps(1e-5)); }
nn::Conv2d cv_conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1, int64_t pad = 0) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(pad));
}
nn::Linear linear(int64_t in, int64_t out, bool bias = true) { return nn::Linear(nn::LinearOptions(in, out).bias(bias)); }
// A parameterless holder so that children get the checkpoint's dotted names.
std::shared_ptr<nn::Module> holder(nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<nn::Module>());
}
}  // namespace

// ---- config ---------------------------------------------------------------------------------
OpenAIUNetConfig OpenAIUNetConfig::preset(const std::string& name) {
  OpenAIUNetConfig c;
  if (name == "cin256_v2") return c;  // cin256-v2.yaml: 64x64x3 latents, 192 ch, [1,2,3,5], attn ds 8/4/2, 1 head, context 512
  if (name == "sd15") {
    // v1-inference.yaml: 64x64x4 latents, 320 ch, [1,2,4,4], attn ds 4/2/1, 8 heads, context 768, legacy False
    c.in_channels = 4;
    c.out_channels = 4;
    c.model_channels = 320;
    c.attention_resolutions = {4, 2, 1};
    c.channel_mult = {1, 2, 4, 4};
    c.num_heads = 8;
    c.context_dim = 768;
    c.context_tokens = 77;  // the CLIP tokenizer's max length
    c.legacy = false;
    return c;
  }
  std::string names;
  for (const auto& n : preset_names()) names += (names.empty() ? "" : ", ") + n;
  throw Error(fmt::format("unknown CompVis UNet preset '{}' (known: {})", name, names));
}

std::vector<std::string> OpenAIUNetConfig::preset_names() { return {"cin256_v2", "sd15"}; }

std::vector<std::string> OpenAIUNetConfig::output_block_names() const {
  std::vector<std::string> v;
  for (int64_t i = 0; i < num_skips(); ++i) v.push_back(fmt::format("output_blocks.{}", i));
  return v;
}

std::pair<int64_t, int64_t> OpenAIUNetConfig::heads(int64_t ch) const {
  int64_t heads = num_heads, dim_head = 0;
  if (num_head_channels == -1) {
    dim_head = ch / num_heads;
  } else {
    heads = ch / num_head_channels;
    dim_head = num_head_channels;
  }
  if (legacy) dim_head = ch / heads;  // use_spatial_transformer: ch // num_heads
  return {heads, dim_head};
}

void OpenAIUNetConfig::validate() const {
  auto bad = [](const std::string& what) { return Error("CompVis UNet config: " + what); };
  if (model_channels < 32 || model_channels % 32 != 0)
    throw bad(fmt::format("model_channels={} must be a positive multiple of 32 (GroupNorm(32))", model_channels));
  if (channel_mult.empty()) throw bad("channel_mult is empty");
  for (int64_t m : channel_mult)
    if (m < 1) throw bad(fmt::format("channel_mult {} has an entry below 1", channel_mult));
  if (num_res_blocks < 1) throw bad(fmt::format("num_res_blocks={} must be at least 1", num_res_blocks));
  if (in_channels < 1 || out_channels < 1) throw bad("in_channels and out_channels must be at least 1");
  if (image_size < 1 || image_size % (int64_t{1} << (num_levels() - 1)) != 0)
    throw bad(fmt::format("image_size={} must be divisible by 2^(levels-1) = {}", image_size, int64_t{1} << (num_levels() - 1)));
  if (num_heads < 1 && num_head_channels == -1) throw bad("num_heads must be at least 1");
  if (context_dim < 1) throw bad("context_dim must be at least 1 (the spatial transformer's cross-attention)");
  if (transformer_depth < 1) throw bad("transformer_depth must be at least 1");
}

std::string OpenAIUNetConfig::describe() const {
  return fmt::format("model_channels={}, channel_mult={}, num_res_blocks={}, attention_resolutions={}, num_heads={}, "
                     "context_dim={}, legacy={}, {}x{}x{} latents",
                     model_channels, channel_mult, num_res_blocks, attention_resolutions, num_heads,
                     context_dim, legacy, in_channels, image_size, image_size);
}

torch::Tensor compvis_timestep_frequencies(int64_t dim) {
  const int64_t half = dim / 2;
  // exp(-math.log(max_period) * arange(half, float32) / half): the product, then the division, in float32.
  return torch::exp(torch::arange(half, torch::TensorOptions().dtype(torch::kFloat32)) * -std::log(10000.0) / static_cast<double>(half));
}

torch::Tensor compvis_timestep_embedding(const torch::Tensor& t, const torch::Tensor& freqs, int64_t dim) {
  TORCH_CHECK(t.dim() == 1, "timestep_embedding: t must be 1-D, got ", t.sizes());
  const torch::Tensor args = t.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);  // [B, half]
  torch::Tensor emb = torch::cat({torch::cos(args), torch::sin(args)}, 1);           // [B, 2*half]
  if (dim % 2 == 1) emb = torch::constant_pad_nd(emb, {0, 1, 0, 0});
  return emb;
}

// ---- blocks ---------------------------------------------------------------------------------
CvResBlockImpl::CvResBlockImpl(int64_t ch, int64_t emb_ch, int64_t out) {
  auto in_layers = holder(*this, "in_layers");
  in_norm = in_layers->register_module("0", group_norm32(ch));  // 1: SiLU
  in_conv = in_layers->register_module("2", cv_conv(ch, out, 3, 1, 1));
  auto emb_layers = holder(*this, "emb_layers");  // 0: SiLU
  emb_linear = emb_layers->register_module("1", linear(emb_ch, out));
  auto out_layers = holder(*this, "out_layers");
  out_norm = out_layers->register_module("0", group_norm32(out));  // 1: SiLU, 2: Dropout
  out_conv = out_layers->register_module("3", cv_conv(out, out, 3, 1, 1));
  if (out != ch) skip = register_module("skip_connection", cv_conv(ch, out, 1));
}

torch::Tensor CvResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& emb, Trace* t, const std::string& name) {
  torch::Tensor h = tr::conv(in_conv, torch::silu(tr::group_norm(in_norm, x, t, name)), t, name);   // [B, out, H, W]
  h = h + tr::linear(emb_linear, torch::silu(emb), t, name).unsqueeze(-1).unsqueeze(-1);           // + emb_out[..., None, None]
  h = tr::conv(out_conv, torch::silu(tr::group_norm(out_norm, h, t, name)), t, name);               // dropout: eval
  return (skip ? tr::conv(skip, x, t, name) : x) + h;
}

CrossAttentionImpl::CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads_, int64_t dim_head_)
    : heads(heads_), dim_head(dim_head_) {
  const int64_t inner = heads * dim_head;
  to_q = register_module("to_q", linear(query_dim, inner, false));
  to_k = register_module("to_k", linear(context_dim, inner, false));
  to_v = register_module("to_v", linear(context_dim, inner, false));
  to_out = holder(*this, "to_out")->register_module("0", linear(inner, query_dim));  // 1: Dropout
}

torch::Tensor CrossAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context, Trace* t, const std::string& name) {
  const int64_t b = x.size(0), n = x.size(1);
  const torch::Tensor& ctx = context.defined() ? context : x;
  // 'b n (h d) -> (b h) n d'
  auto split = [&](const torch::Tensor& y) {
    return y.view({b, y.size(1), heads, dim_head}).permute({0, 2, 1, 3}).reshape({b * heads, y.size(1), dim_head});
  };
  const torch::Tensor q = split(tr::linear(to_q, x, t, name));
  const torch::Tensor k = split(tr::linear(to_k, ctx, t, name));
  const torch::Tensor v = split(tr::linear(to_v, ctx, t, name));
  torch::Tensor out = tr::attention(q, k, v, b, t);                                                               // [(b h), n, d]
  out = out.view({b, heads, n, dim_head}).permute({0, 2, 1, 3}).reshape({b, n, heads * dim_head});          // '(b h) n d -> b n (h d)'
  return tr::linear(to_out, out, t, name);
}

TransformerBlockImpl::TransformerBlockImpl(int64_t dim, int64_t heads, int64_t dim_head, int64_t context_dim) {
  attn1 = register_module("attn1", CrossAttention(dim, dim, heads, dim_head));
  auto ff = holder(*this, "ff");
  auto net = holder(*ff, "net");
  ff_proj = holder(*net, "0")->register_module("proj", linear(dim, dim * 4 * 2));  // GEGLU; 1: Dropout
  ff_out = net->register_module("2", linear(dim * 4, dim));
  attn2 = register_module("attn2", CrossAttention(dim, context_dim, heads, dim_head));
  norm1 = register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({dim})));
  norm2 = register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({dim})));
  norm3 = register_module("norm3", nn::LayerNorm(nn::LayerNormOptions({dim})));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x0, const torch::Tensor& context, Trace* t, const std::string& name) {
  torch::Tensor x = attn1->forward(tr::layer_norm(norm1, x0, t, name), torch::Tensor(), t, name) + x0;  // self-attention
  x = attn2->forward(tr::layer_norm(norm2, x, t, name), context, t, name) + x;                         // cross-attention
  const auto pg = tr::linear(ff_proj, tr::layer_norm(norm3, x, t, name), t, name).chunk(2, -1);         // GEGLU
  return tr::linear(ff_out, pg[0] * torch::gelu(pg[1]), t, name) + x;
}

SpatialTransformerImpl::SpatialTransformerImpl(int64_t ch, int64_t heads, int64_t dim_head, int64_t depth, int64_t context_dim) {
  const int64_t inner = heads * dim_head;
  norm = register_module("norm", nn::GroupNorm(nn::GroupNormOptions(32, ch).eps(1e-6)));
  proj_in = register_module("proj_in", cv_conv(ch, inner, 1));
  auto list = holder(*this, "transformer_blocks");
  for (int64_t d = 0; d < depth; ++d)
    blocks.push_back(list->register_module(std::to_string(d), TransformerBlock(inner, heads, dim_head, context_dim)));
  proj_out = register_module("proj_out", cv_conv(inner, ch, 1));
}

torch::Tensor SpatialTransformerImpl::forward(const torch::Tensor& x, const torch::Tensor& context, Trace* t, const std::string& name) {
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  torch::Tensor y = tr::conv(proj_in, tr::group_norm(norm, x, t, name), t, name);  // [B, inner, H, W]
  const int64_t inner = y.size(1);
  y = y.permute({0, 2, 3, 1}).reshape({b, h * w, inner});                        // 'b c h w -> b (h w) c'
  for (auto& blk : blocks) y = blk->forward(y, context, t, name);
  y = y.view({b, h, w, inner}).permute({0, 3, 1, 2}).contiguous();               // 'b (h w) c -> b c h w'
  return tr::conv(proj_out, y, t, name) + x;
}

void CvBlockImpl::add_res(CvResBlock r) {
  Layer l{Kind::Res};
  l.res = register_module(std::to_string(layers.size()), r);
  layers.push_back(l);
}
void CvBlockImpl::add_transformer(SpatialTransformer s) {
  Layer l{Kind::Transformer};
  l.transformer = register_module(std::to_string(layers.size()), s);
  layers.push_back(l);
}
void CvBlockImpl::add_conv(nn::Conv2d c) {
  Layer l{Kind::Conv};
  l.conv = register_module(std::to_string(layers.size()), c);
  layers.push_back(l);
}
void CvBlockImpl::add_down(int64_t ch) {  // Downsample(use_conv=True): op = conv 3x3 stride 2 padding 1
  Layer l{Kind::Down};
  l.conv = holder(*this, std::to_string(layers.size()))->register_module("op", cv_conv(ch, ch, 3, 2, 1));
  layers.push_back(l);
}
void CvBlockImpl::add_up(int64_t ch) {  // Upsample(use_conv=True): nearest x2, then conv 3x3
  Layer l{Kind::Up};
  l.conv = holder(*this, std::to_string(layers.size()))->register_module("conv", cv_conv(ch, ch, 3, 1, 1));
  layers.push_back(l);
}

torch::Tensor CvBlockImpl::forward(torch::Tensor h, const torch::Tensor& emb, const torch::Tensor& context, Trace* t,
                                   const std::string& name) {
  for (std::size_t i = 0; i < layers.size(); ++i) {
    Layer& l = layers[i];
    const std::string& ln = layer_names[i];
    switch (l.kind) {
      case Kind::Res: h = l.res->forward(h, emb, t, ln); break;
      case Kind::Transformer: h = l.transformer->forward(h, context, t, ln); break;
      case Kind::Conv:
      case Kind::Down: h = tr::conv(l.conv, h, t, ln); break;
      case Kind::Up:
        h = tr::conv(l.conv, torch::upsample_nearest2d(h, {h.size(2) * 2, h.size(3) * 2}), t, ln);
        break;
    }
  }
  tr::done(t, name, h);
  return h;
}

// ---- UNet -----------------------------------------------------------------------------------
OpenAIUNetImpl::OpenAIUNetImpl(OpenAIUNetConfig config) : config_(std::move(config)) {
  config_.validate();
  const int64_t mc = config_.model_channels, emb_ch = 4 * mc, L = config_.num_levels(), nrb = config_.num_res_blocks;
  auto has_attn = [&](int64_t ds) {
    return std::find(config_.attention_resolutions.begin(), config_.attention_resolutions.end(), ds) !=
           config_.attention_resolutions.end();
  };
  auto transformer = [&](int64_t ch) {
    const auto [heads, dim_head] = config_.heads(ch);
    return SpatialTransformer(ch, heads, dim_head, config_.transformer_depth, config_.context_dim);
  };
  // Stage 1: time_embed = Linear, SiLU, Linear.
  auto te = holder(*this, "time_embed");
  time_embed0_ = te->register_module("0", linear(mc, emb_ch));
  time_embed2_ = te->register_module("2", linear(emb_ch, emb_ch));

  // Stage 2: input blocks (every one's output is a skip tensor hs[j]).
  auto inputs = holder(*this, "input_blocks");
  auto add_input = [&]() {
    input_blocks_.push_back(inputs->register_module(std::to_string(input_blocks_.size()), CvBlock()));
    input_names_.push_back(fmt::format("input_blocks.{}", input_blocks_.size() - 1));
    return input_blocks_.back();
  };
  add_input()->add_conv(cv_conv(config_.in_channels, mc, 3, 1, 1));
  std::vector<int64_t> chans = {mc};
  int64_t ch = mc, ds = 1;
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t i = 0; i < nrb; ++i) {
      auto b = add_input();
      b->add_res(CvResBlock(ch, emb_ch, config_.channel_mult[l] * mc));
      ch = config_.channel_mult[l] * mc;
      if (has_attn(ds)) b->add_transformer(transformer(ch));
      chans.push_back(ch);
    }
    if (l != L - 1) {
      add_input()->add_down(ch);
      chans.push_back(ch);
      ds *= 2;
    }
  }
  // Stage 3: middle block.
  middle_block_ = register_module("middle_block", CvBlock());
  middle_block_->add_res(CvResBlock(ch, emb_ch, ch));
  middle_block_->add_transformer(transformer(ch));
  middle_block_->add_res(CvResBlock(ch, emb_ch, ch));

  // Stage 4: output blocks, each consuming one skip (hs popped from the end).
  auto outputs = holder(*this, "output_blocks");
  for (int64_t l = L - 1; l >= 0; --l) {
    for (int64_t i = 0; i <= nrb; ++i) {
      const int64_t ich = chans.back();
      chans.pop_back();
      output_blocks_.push_back(outputs->register_module(std::to_string(output_blocks_.size()), CvBlock()));
      output_names_.push_back(fmt::format("output_blocks.{}", output_blocks_.size() - 1));
      auto& b = output_blocks_.back();
      b->add_res(CvResBlock(ch + ich, emb_ch, mc * config_.channel_mult[l]));
      ch = mc * config_.channel_mult[l];
      if (has_attn(ds)) b->add_transformer(transformer(ch));
      if (l != 0 && i == nrb) {
        b->add_up(ch);
        ds /= 2;
      }
    }
  }
  // Stage 5: out = GroupNorm32, SiLU, conv.
  auto out = holder(*this, "out");
  out_norm_ = out->register_module("0", group_norm32(ch));
  out_conv_ = out->register_module("2", cv_conv(mc, config_.out_channels, 3, 1, 1));

  auto name_layers = [](CvBlock& b, const std::string& block) {
    for (std::size_t i = 0; i < b->layers.size(); ++i) b->layer_names.push_back(fmt::format("{}.{}", block, i));
  };
  for (std::size_t j = 0; j < input_blocks_.size(); ++j) name_layers(input_blocks_[j], input_names_[j]);
  name_layers(middle_block_, "middle_block");
  for (std::size_t j = 0; j < output_blocks_.size(); ++j) name_layers(output_blocks_[j], output_names_[j]);
  TORCH_INTERNAL_ASSERT(static_cast<int64_t>(input_blocks_.size()) == config_.num_skips());
  TORCH_INTERNAL_ASSERT(output_names_ == config_.output_block_names());
}

UNet::Embedding OpenAIUNetImpl::embed(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& context, Trace* trace) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == config_.in_channels, "CompVis UNet: input must be [B, ", config_.in_channels,
              ", H, W], got ", x.sizes());
  TORCH_CHECK(context.defined() && context.dim() == 3 && context.size(2) == config_.context_dim,
              "CompVis UNet: context must be [B, L, ", config_.context_dim, "]");
  // emb = time_embed(timestep_embedding(t)).
  torch::Tensor emb = tr::linear(time_embed0_, compvis_timestep_embedding(t, time_freqs_.on(t.device()), config_.model_channels).to(x.dtype()), trace, "time_embed");
  emb = tr::linear(time_embed2_, torch::silu(emb), trace, "time_embed");
  return {emb, context};
}

// hs[j] = input_blocks[j](hs[j-1]), hs[-1] = x.
torch::Tensor OpenAIUNetImpl::input_block(int j, const torch::Tensor& h, const Embedding& e, Trace* trace) {
  return input_blocks_[j]->forward(h, e.emb, e.context, trace, input_names_[j]);
}

torch::Tensor OpenAIUNetImpl::middle(const torch::Tensor& h, const Embedding& e, Trace* trace) {
  return middle_block_->forward(h, e.emb, e.context, trace, "middle_block");
}

// h = output_blocks[i](cat([h, hs.pop()])).
torch::Tensor OpenAIUNetImpl::output_block(int i, const torch::Tensor& h, const torch::Tensor& skip, const Embedding& e, Trace* trace) {
  return output_blocks_[i]->forward(torch::cat({h, skip}, 1), e.emb, e.context, trace, output_names_[i]);
}

// out = conv(SiLU(GroupNorm32(h))).
torch::Tensor OpenAIUNetImpl::head(const torch::Tensor& h, Trace* trace) {
  torch::Tensor y = tr::conv(out_conv_, torch::silu(tr::group_norm(out_norm_, h, trace, "out")), trace, "out");
  tr::done(trace, "out", y);
  return y;
}

std::string OpenAIUNetImpl::stage_name(int stage) const {
  const int S = num_skips();
  if (stage < S) return input_names_[stage];
  if (stage == S) return "middle_block";
  if (stage <= 2 * S) return output_names_[stage - S - 1];
  return generic_stage_name(S, stage);
}

// ---- class conditioning -------------------------------------------------------------------------
ClassEmbedderImpl::ClassEmbedderImpl(int64_t n_classes, int64_t embed_dim) {
  embedding = register_module("embedding", nn::Embedding(n_classes, embed_dim));
}

torch::Tensor ClassEmbedderImpl::forward(const torch::Tensor& labels) {
  TORCH_CHECK(labels.dim() == 1, "class labels must be [B], got ", labels.sizes());
  return embedding->forward(labels.to(torch::kInt64)).unsqueeze(1);  // [B, 1, embed_dim]
}

ClassConditionedUNetImpl::ClassConditionedUNetImpl(OpenAIUNetConfig config, int64_t n_classes) : n_classes_(n_classes) {
  const int64_t context_dim = config.context_dim;
  unet_ = holder(*this, "model")->register_module("diffusion_model", OpenAIUNet(std::move(config)));
  embedder_ = register_module("cond_stage_model", ClassEmbedder(n_classes, context_dim));
}

UNet::Embedding ClassConditionedUNetImpl::embed(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& labels,
                                                Trace* trace) {
  if (!labels.defined() || labels.dim() != 1 || labels.size(0) != x.size(0))
    throw Error("the class-conditional LDM UNet needs one class label per sample (model.family: ldm)");
  // Label values are checked once where they are made (a per-call check would synchronise a GPU).
  return unet_->embed(x, t, embedder_->forward(labels), trace);
}

}  // namespace dc::models
