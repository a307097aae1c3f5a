// The fuzz build's model registry: the experiment parser (harness/config.cpp) asks the registry what
// a family/preset is, and the real registry builds LibTorch modules. Here the same answers come
// from fuzz/registry.json, the real registry's table (models::registry_table_json); the test
// Registry.FuzzTableIsCurrent fails when it is stale (DC_WRITE_FUZZ_REGISTRY=1 rewrites it).
#include <algorithm>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "models/registry.h"

namespace dc::models {
namespace {

struct Entry {
  ModelInfo info;
  int64_t latent_factor = 1;
};

const std::vector<Entry>& table() {
  static const std::vector<Entry> entries = [] {
    const std::string path = DC_SOURCE_DIR "/fuzz/registry.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error(path + ": missing (the fuzz build's registry table)");
    const nlohmann::json j = nlohmann::json::parse(in);
    std::vector<Entry> v;
    for (const auto& e : j) {
      Entry x;
      ModelInfo& i = x.info;
      i.family = e.at("family");
      i.preset = e.at("preset");
      i.description = e.at("description");
      i.num_skips = e.at("num_skips");
      i.sample_shape = e.at("sample_shape").get<std::vector<int64_t>>();
      i.image_shape = e.at("image_shape").get<std::vector<int64_t>>();
      i.tap_names = e.at("tap_names").get<std::vector<std::string>>();
      const auto& s = e.at("schedule");
      i.schedule = {s.at("betas"), s.at("num_timesteps"), s.at("beta_start"), s.at("beta_end"), s.at("cumprod")};
      i.default_sampler = e.at("default_sampler");
      i.conditioning = e.at("conditioning");
      i.num_classes = e.at("num_classes");
      i.unconditional_class = e.at("unconditional_class");
      i.weights_hint = e.at("weights_hint");
      i.image_size_multiple = e.at("image_size_multiple");
      x.latent_factor = e.at("latent_factor");
      v.push_back(std::move(x));
    }
    return v;
  }();
  return entries;
}

}  // namespace

std::vector<std::string> family_names() {
  std::vector<std::string> v;
  for (const auto& e : table())
    if (std::find(v.begin(), v.end(), e.info.family) == v.end()) v.push_back(e.info.family);
  return v;
}

std::vector<std::string> preset_names(const std::string& family) {
  std::vector<std::string> v;
  for (const auto& e : table())
    if (e.info.family == family) v.push_back(e.info.preset);
  if (v.empty()) throw Error(fmt::format("unknown model family '{}'", family));
  return v;
}

ModelInfo model_info(const std::string& family, const std::string& preset, int image_size) {
  preset_names(family);
  for (const auto& e : table())
    if (e.info.family == family && e.info.preset == preset)
      return image_size == 0 ? e.info : resize_model_info(e.info, image_size, e.latent_factor);
  throw Error(fmt::format("unknown {} preset '{}'", family, preset));
}

}  // namespace dc::models
