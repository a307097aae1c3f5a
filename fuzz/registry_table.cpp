// The fuzz build's model registry: the experiment parser (harness/config.cpp) asks the registry what
// a family/preset is, and the real registry builds LibTorch modules. Here the same answers come
// from fuzz/registry.json, the real registry's table (models::registry_table_json); the test
// Registry.FuzzTableIsCurrent fails when it is stale (DC_WRITE_FUZZ_REGISTRY=1 rewrites it).
#include <algorithm>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "common/error.h"
#include "models/registry.h"

namespace dc::models {
namespace {

const std::vector<RegistryEntry>& table() {
  static const std::vector<RegistryEntry> entries = [] {
    const std::string path = DC_SOURCE_DIR "/fuzz/registry.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error(path + ": missing (the fuzz build's registry table)");
    return parse_registry_table(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
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
