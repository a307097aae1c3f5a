#include "models/sd_diffusers.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "models/weights/strict_loader.h"

namespace dc::models {

namespace {

using json = nlohmann::json;

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const auto dot = s.find('.', start);
    out.push_back(s.substr(start, dot - start));
    if (dot == std::string::npos) return out;
    start = dot + 1;
  }
}

std::string join_from(const std::vector<std::string>& parts, std::size_t from) {
  std::string out;
  for (std::size_t i = from; i < parts.size(); ++i) out += (out.empty() ? "" : ".") + parts[i];
  return out;
}

bool is_index(const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; }

template <typename T>
T get(const json& c, const char* key, const std::string& what, T fallback) {
  if (!c.contains(key)) return fallback;
  try {
    return c.at(key).get<T>();
  } catch (const std::exception&) {
    throw Error(fmt::format("{}: {}: unexpected value {}", what, key, c.at(key).dump()));
  }
}

template <typename T>
T need(const json& c, const char* key, const std::string& what) {
  if (!c.contains(key)) throw Error(fmt::format("{}: {} is missing", what, key));
  return get<T>(c, key, what, T{});
}

// CompVis ResBlock parameter names -> diffusers ResnetBlock2D names.
std::string resnet_key(const std::vector<std::string>& p, std::size_t from, const std::string& whole) {
  static const std::map<std::string, std::string> names = {{"in_layers.0", "norm1"}, {"in_layers.2", "conv1"},
                                                           {"emb_layers.1", "time_emb_proj"}, {"out_layers.0", "norm2"},
                                                           {"out_layers.3", "conv2"}};
  if (p.size() > from + 1 && p[from] == "skip_connection") return "conv_shortcut." + join_from(p, from + 1);
  if (p.size() > from + 2) {
    auto it = names.find(p[from] + "." + p[from + 1]);
    if (it != names.end()) return it->second + "." + join_from(p, from + 2);
  }
  throw Error(fmt::format("{}: not a parameter of a CompVis ResBlock", whole));
}

}  // namespace

OpenAIUNetConfig unet_config_from_diffusers(const json& c, const std::string& what) {
  if (!c.is_object()) throw Error(fmt::format("{}: a UNet config must be a JSON object", what));
  OpenAIUNetConfig o;
  const auto blocks = need<std::vector<int64_t>>(c, "block_out_channels", what);
  const auto down = need<std::vector<std::string>>(c, "down_block_types", what);
  const auto up = need<std::vector<std::string>>(c, "up_block_types", what);
  if (blocks.empty() || down.size() != blocks.size() || up.size() != blocks.size())
    throw Error(fmt::format("{}: block_out_channels, down_block_types and up_block_types must have the same, non-zero length", what));
  o.model_channels = blocks[0];
  o.channel_mult.clear();
  for (int64_t b : blocks) {
    if (b % o.model_channels != 0)
      throw Error(fmt::format("{}: block_out_channels {} are not multiples of the first", what, fmt::join(blocks, ", ")));
    o.channel_mult.push_back(b / o.model_channels);
  }
  o.attention_resolutions.clear();
  for (std::size_t l = 0; l < down.size(); ++l) {
    const std::string& d = down[l];
    const std::string& u = up[down.size() - 1 - l];
    const bool attn = d == "CrossAttnDownBlock2D";
    if (!attn && d != "DownBlock2D")
      throw Error(fmt::format("{}: down_block_types[{}] = {}: only CrossAttnDownBlock2D and DownBlock2D (SD v1's layout)", what, l, d));
    if (u != (attn ? "CrossAttnUpBlock2D" : "UpBlock2D"))
      throw Error(fmt::format("{}: up_block_types[{}] = {} does not mirror down_block_types[{}] = {}", what, down.size() - 1 - l, u, l, d));
    if (attn) o.attention_resolutions.push_back(int64_t{1} << l);
  }
  if (get<std::string>(c, "mid_block_type", what, "UNetMidBlock2DCrossAttn") != "UNetMidBlock2DCrossAttn")
    throw Error(fmt::format("{}: mid_block_type {}: only UNetMidBlock2DCrossAttn", what, c.at("mid_block_type").dump()));
  o.num_res_blocks = get<int64_t>(c, "layers_per_block", what, 2);
  o.in_channels = get<int64_t>(c, "in_channels", what, 4);
  o.out_channels = get<int64_t>(c, "out_channels", what, 4);
  o.image_size = get<int64_t>(c, "sample_size", what, 64);
  o.context_dim = need<int64_t>(c, "cross_attention_dim", what);
  o.context_tokens = 77;  // SD v1's CLIP tokenizer pads to 77
  // SD1.5's trap: attention_head_dim is the number of heads (diffusers falls back to it when
  // num_attention_heads is null); CompVis num_heads with legacy=False is the same thing.
  const json heads = c.contains("num_attention_heads") && !c.at("num_attention_heads").is_null() ? c.at("num_attention_heads")
                                                                                                 : c.value("attention_head_dim", json(8));
  if (!heads.is_number_integer())
    throw Error(fmt::format("{}: attention_head_dim {}: one head count for every block (per-block lists are SD 2's)", what, heads.dump()));
  o.num_heads = heads.get<int64_t>();
  o.num_head_channels = -1;
  o.legacy = false;
  o.transformer_depth = 1;
  const std::vector<std::pair<const char*, json>> fixed = {
      {"use_linear_projection", false}, {"flip_sin_to_cos", true}, {"freq_shift", 0}, {"act_fn", "silu"},
      {"norm_num_groups", 32}, {"norm_eps", 1e-5}, {"downsample_padding", 1}, {"mid_block_scale_factor", 1},
      {"center_input_sample", false}, {"transformer_layers_per_block", 1}, {"upcast_attention", false},
      {"class_embed_type", nullptr}, {"addition_embed_type", nullptr}, {"time_embedding_type", "positional"},
      {"resnet_time_scale_shift", "default"}, {"only_cross_attention", false}, {"dual_cross_attention", false}};
  for (const auto& [key, want] : fixed)
    if (c.contains(key) && c.at(key) != want && !(want.is_number() && c.at(key).is_number() && c.at(key).get<double>() == want.get<double>()))
      throw Error(fmt::format("{}: {} = {}: SD v1's UNet has {} (this model is not built otherwise)", what, key, c.at(key).dump(), want.dump()));
  o.validate();
  return o;
}

std::string diffusers_unet_key(const std::string& key, const OpenAIUNetConfig& c) {
  const auto p = split(key);
  const int64_t per_level = c.num_res_blocks + 1;
  auto bad = [&]() { return Error(fmt::format("{}: not a parameter of the CompVis UNet ({})", key, c.describe())); };
  if (p.size() < 2) throw bad();
  if (p[0] == "time_embed" && (p[1] == "0" || p[1] == "2")) return fmt::format("time_embedding.linear_{}.{}", p[1] == "0" ? 1 : 2, join_from(p, 2));
  if (p[0] == "out" && (p[1] == "0" || p[1] == "2")) return (p[1] == "0" ? "conv_norm_out." : "conv_out.") + join_from(p, 2);
  if (p[0] == "middle_block" && p.size() > 2) {
    if (p[1] == "0" || p[1] == "2") return fmt::format("mid_block.resnets.{}.{}", p[1] == "0" ? 0 : 1, resnet_key(p, 2, key));
    if (p[1] == "1") return "mid_block.attentions.0." + join_from(p, 2);
    throw bad();
  }
  if ((p[0] != "input_blocks" && p[0] != "output_blocks") || p.size() < 4 || !is_index(p[1]) || !is_index(p[2])) throw bad();
  const int64_t i = std::stoll(p[1]), layer = std::stoll(p[2]);
  if (p[0] == "input_blocks") {
    if (i == 0) {
      if (layer != 0) throw bad();
      return "conv_in." + join_from(p, 3);
    }
    const int64_t l = (i - 1) / per_level, j = (i - 1) % per_level;
    if (l >= c.num_levels() || (j == c.num_res_blocks && l == c.num_levels() - 1)) throw bad();
    if (j == c.num_res_blocks) {  // the downsampler: `op`
      if (layer != 0 || p[3] != "op") throw bad();
      return fmt::format("down_blocks.{}.downsamplers.0.conv.{}", l, join_from(p, 4));
    }
    const bool attn = std::find(c.attention_resolutions.begin(), c.attention_resolutions.end(), int64_t{1} << l) != c.attention_resolutions.end();
    if (layer == 0) return fmt::format("down_blocks.{}.resnets.{}.{}", l, j, resnet_key(p, 3, key));
    if (attn && layer == 1) return fmt::format("down_blocks.{}.attentions.{}.{}", l, j, join_from(p, 3));
    throw bad();
  }
  const int64_t u = i / per_level, j = i % per_level;
  if (u >= c.num_levels()) throw bad();
  const int64_t level = c.num_levels() - 1 - u;  // up block u runs level L-1-u, at downsampling rate 2^level
  const bool attn = std::find(c.attention_resolutions.begin(), c.attention_resolutions.end(), int64_t{1} << level) != c.attention_resolutions.end();
  if (layer == 0) return fmt::format("up_blocks.{}.resnets.{}.{}", u, j, resnet_key(p, 3, key));
  if (attn && layer == 1) return fmt::format("up_blocks.{}.attentions.{}.{}", u, j, join_from(p, 3));
  if (layer == (attn ? 2 : 1) && level > 0 && j == c.num_res_blocks && p[3] == "conv")  // Upsample
    return fmt::format("up_blocks.{}.upsamplers.0.conv.{}", u, join_from(p, 4));
  throw bad();
}

AutoencoderConfig kl_config_from_diffusers(const json& c, const std::string& what) {
  if (!c.is_object()) throw Error(fmt::format("{}: a VAE config must be a JSON object", what));
  AutoencoderConfig o;
  const auto blocks = need<std::vector<int64_t>>(c, "block_out_channels", what);
  if (blocks.empty()) throw Error(fmt::format("{}: block_out_channels is empty", what));
  o.ch = blocks[0];
  o.ch_mult.clear();
  for (int64_t b : blocks) {
    if (b % o.ch != 0) throw Error(fmt::format("{}: block_out_channels {} are not multiples of the first", what, fmt::join(blocks, ", ")));
    o.ch_mult.push_back(b / o.ch);
  }
  for (const char* key : {"down_block_types", "up_block_types"}) {
    const auto types = get<std::vector<std::string>>(c, key, what, {});
    const std::string want = std::string(key) == "down_block_types" ? "DownEncoderBlock2D" : "UpDecoderBlock2D";
    for (const auto& t : types)
      if (t != want) throw Error(fmt::format("{}: {}: {}: only {} (SD's KL autoencoder)", what, key, t, want));
    if (!types.empty() && types.size() != blocks.size())
      throw Error(fmt::format("{}: {} has {} entries, block_out_channels {}", what, key, types.size(), blocks.size()));
  }
  o.num_res_blocks = get<int64_t>(c, "layers_per_block", what, 2);
  o.in_channels = get<int64_t>(c, "in_channels", what, 3);
  o.out_ch = get<int64_t>(c, "out_channels", what, 3);
  o.z_channels = o.embed_dim = get<int64_t>(c, "latent_channels", what, 4);
  o.resolution = get<int64_t>(c, "sample_size", what, 512);
  o.double_z = true;
  o.n_embed = 0;
  o.attn_resolutions = {};  // AutoencoderKL: attention only in the mid blocks
  if (get<int64_t>(c, "norm_num_groups", what, 32) != 32) throw Error(fmt::format("{}: norm_num_groups must be 32", what));
  if (c.contains("act_fn") && c.at("act_fn") != "silu") throw Error(fmt::format("{}: act_fn {}: only silu", what, c.at("act_fn").dump()));
  o.validate();
  return o;
}

std::pair<std::string, weights::Transform> diffusers_vae_key(const std::string& key, const AutoencoderConfig& c) {
  using weights::Transform;
  const auto p = split(key);
  auto bad = [&]() { return Error(fmt::format("{}: not a parameter of the CompVis KL autoencoder", key)); };
  if (p.size() < 2) throw bad();
  if (p[0] == "quant_conv" || p[0] == "post_quant_conv") return {key, Transform::Copy};
  if ((p[0] != "encoder" && p[0] != "decoder") || p.size() < 3) throw bad();
  const std::string& part = p[0];
  auto resnet = [&](std::size_t from) {
    if (p.size() <= from + 1) throw bad();
    const std::string rest = join_from(p, from + 1);
    if (p[from] == "nin_shortcut") return "conv_shortcut." + rest;
    if (p[from] == "norm1" || p[from] == "conv1" || p[from] == "norm2" || p[from] == "conv2") return p[from] + "." + rest;
    throw bad();
  };
  if (p[1] == "conv_in" || p[1] == "conv_out") return {key, Transform::Copy};
  if (p[1] == "norm_out") return {part + ".conv_norm_out." + join_from(p, 2), Transform::Copy};
  if (p[1] == "mid" && p.size() > 3) {
    if (p[2] == "block_1" || p[2] == "block_2")
      return {fmt::format("{}.mid_block.resnets.{}.{}", part, p[2] == "block_1" ? 0 : 1, resnet(3)), Transform::Copy};
    if (p[2] == "attn_1") {
      static const std::map<std::string, std::string> names = {{"norm", "group_norm"}, {"q", "to_q"}, {"k", "to_k"}, {"v", "to_v"},
                                                               {"proj_out", "to_out.0"}};
      auto it = names.find(p[3]);
      if (it == names.end() || p.size() != 5) throw bad();
      const bool squeeze = p[3] != "norm" && p[4] == "weight";
      return {fmt::format("{}.mid_block.attentions.0.{}.{}", part, it->second, p[4]), squeeze ? Transform::Squeeze1x1 : Transform::Copy};
    }
    throw bad();
  }
  if ((p[1] == "down" || p[1] == "up") && p.size() > 4 && is_index(p[2])) {
    const int64_t level = std::stoll(p[2]);
    if (level >= c.num_levels()) throw bad();
    // CompVis stores the decoder's levels finest first (up.0 runs last); diffusers in execution order.
    const int64_t block = p[1] == "down" ? level : c.num_levels() - 1 - level;
    const std::string blocks = fmt::format("{}.{}_blocks.{}", part, p[1], block);
    if (p[3] == "block" && is_index(p[4])) return {fmt::format("{}.resnets.{}.{}", blocks, p[4], resnet(5)), Transform::Copy};
    if ((p[3] == "downsample" || p[3] == "upsample") && p[4] == "conv" && p.size() > 5)
      return {fmt::format("{}.{}samplers.0.conv.{}", blocks, p[1], join_from(p, 5)), Transform::Copy};
  }
  throw bad();
}

weights::KeyMapping diffusers_unet_mapping(const torch::nn::Module& module, const OpenAIUNetConfig& config, const std::string& module_prefix) {
  weights::KeyMapping m;
  for (const auto& k : weights::module_keys(module)) {
    if (k.name.rfind(module_prefix, 0) != 0) continue;
    m.rename(diffusers_unet_key(k.name.substr(module_prefix.size()), config), k.name);
  }
  return m;
}

weights::KeyMapping diffusers_vae_mapping(const torch::nn::Module& module, const AutoencoderConfig& config, const std::string& module_prefix) {
  weights::KeyMapping m;
  for (const auto& k : weights::module_keys(module)) {
    if (k.name.rfind(module_prefix, 0) != 0) continue;
    const auto [name, t] = diffusers_vae_key(k.name.substr(module_prefix.size()), config);
    m.rename(name, k.name, weights::inverse(t));
    // Old diffusers files (the hub's SD1.5 VAE among them) name the mid-block attention
    // query/key/value/proj_attn; diffusers renames them at load, so does this.
    static const std::vector<std::pair<std::string, std::string>> legacy = {
        {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}};
    for (const auto& [now, old] : legacy) {
      const auto at = name.find(now);
      if (at != std::string::npos && name.find(".mid_block.attentions.") != std::string::npos)
        m.rename(name.substr(0, at) + old + name.substr(at + now.size()), k.name, weights::inverse(t));
    }
  }
  return m;
}

}  // namespace dc::models
