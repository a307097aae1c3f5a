// LDM and SD1.5 fixture helpers: the CompVis UNet and the VQ autoencoder configs a case json
// describes (the reference's own parameter names: openaimodel.UNetModel, VQModelInterface
// ddconfig), and the UNets of an ldm or sd15 case loaded from its weights.
#pragma once
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "models/autoencoder.h"
#include "models/openai_unet.h"
#include "models/sd_diffusers.h"
#include "models/weights/safetensors.h"
#include "models/weights/strict_loader.h"
#include "support/fixtures.h"

namespace dc::test {

inline models::OpenAIUNetConfig openai_unet_config(const nlohmann::json& p) {
  models::OpenAIUNetConfig cfg;
  cfg.image_size = p.at("image_size").get<int64_t>();
  cfg.in_channels = p.at("in_channels").get<int64_t>();
  cfg.out_channels = p.at("out_channels").get<int64_t>();
  cfg.model_channels = p.at("model_channels").get<int64_t>();
  cfg.attention_resolutions = p.at("attention_resolutions").get<std::vector<int64_t>>();
  cfg.num_res_blocks = p.at("num_res_blocks").get<int64_t>();
  cfg.channel_mult = p.at("channel_mult").get<std::vector<int64_t>>();
  cfg.num_heads = p.value("num_heads", int64_t{1});
  cfg.num_head_channels = p.value("num_head_channels", int64_t{-1});
  cfg.transformer_depth = p.value("transformer_depth", int64_t{1});
  cfg.context_dim = p.at("context_dim").get<int64_t>();
  cfg.legacy = p.value("legacy", true);
  if (!p.value("use_spatial_transformer", true)) throw std::runtime_error("only the spatial-transformer UNet is built");
  return cfg;
}

// `p` holds embed_dim, n_embed and ddconfig.
inline models::AutoencoderConfig autoencoder_config(const nlohmann::json& p) {
  const auto& d = p.at("ddconfig");
  models::AutoencoderConfig cfg;
  cfg.embed_dim = p.at("embed_dim").get<int64_t>();
  cfg.n_embed = p.at("n_embed").get<int64_t>();
  cfg.double_z = d.at("double_z").get<bool>();
  cfg.z_channels = d.at("z_channels").get<int64_t>();
  cfg.resolution = d.at("resolution").get<int64_t>();
  cfg.in_channels = d.at("in_channels").get<int64_t>();
  cfg.out_ch = d.at("out_ch").get<int64_t>();
  cfg.ch = d.at("ch").get<int64_t>();
  cfg.ch_mult = d.at("ch_mult").get<std::vector<int64_t>>();
  cfg.num_res_blocks = d.at("num_res_blocks").get<int64_t>();
  cfg.attn_resolutions = d.at("attn_resolutions").get<std::vector<int64_t>>();
  return cfg;
}

// An ldm UNet case's class-conditional UNet (config.unet, config.cond_stage), strictly loaded, eval mode.
inline models::ClassConditionedUNet load_ldm_case_unet(const Case& c) {
  const auto& cfg = c.json.at("config");
  models::ClassConditionedUNet net(openai_unet_config(cfg.at("unet")), cfg.at("cond_stage").at("n_classes").get<int64_t>());
  weights::LoadOptions opt;
  opt.module_name = "LDM UNet (" + c.id() + ")";
  weights::load_strict(*net, st::SafetensorsFile::open(*c.weights_path()), opt);
  net->eval();
  return net;
}

// An sd15 case's UNet (diffusers unet_config, diffusers key names), strictly loaded, eval mode.
inline models::OpenAIUNet load_sd15_case_unet(const Case& c) {
  const models::OpenAIUNetConfig cfg = models::unet_config_from_diffusers(c.json.at("unet_config"), c.id() + ": unet_config");
  models::OpenAIUNet net(cfg);
  weights::LoadOptions lo;
  lo.mapping = models::diffusers_unet_mapping(*net, cfg);
  lo.module_name = "SD UNet (" + c.id() + ")";
  weights::load_strict(*net, st::SafetensorsFile::open(*c.weights_path()), lo);
  net->eval();
  return net;
}

}  // namespace dc::test
