// DDPM fixture helpers: the model a case describes, with its weights loaded strictly.
#pragma once
#include "common/error.h"
#include "models/ddpm_unet.h"
#include "models/weights/strict_loader.h"
#include "support/fixtures.h"

namespace dc::test {

inline models::DdpmConfig ddpm_config_from_case(const Case& c) {
  const auto& m = c.json.at("config").at("model");
  models::DdpmConfig cfg;
  cfg.in_channels = m.at("in_channels").get<int64_t>();
  cfg.out_ch = m.at("out_ch").get<int64_t>();
  cfg.ch = m.at("ch").get<int64_t>();
  cfg.ch_mult = m.at("ch_mult").get<std::vector<int64_t>>();
  cfg.num_res_blocks = m.at("num_res_blocks").get<int64_t>();
  cfg.attn_resolutions = m.at("attn_resolutions").get<std::vector<int64_t>>();
  cfg.dropout = m.value("dropout", 0.0);
  cfg.resamp_with_conv = m.value("resamp_with_conv", true);
  cfg.resolution = c.json.at("config").at("data").at("image_size").get<int64_t>();
  return cfg;
}

inline models::DdpmUNet load_ddpm_case_model(const Case& c) {
  models::DdpmUNet net(ddpm_config_from_case(c));
  weights::LoadOptions opt;
  opt.module_name = "DDPM UNet (" + c.id() + ")";
  weights::load_strict(*net, st::SafetensorsFile::open(*c.weights_path()), opt);
  net->eval();
  return net;
}

}  // namespace dc::test
