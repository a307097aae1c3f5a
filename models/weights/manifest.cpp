#include "models/weights/manifest.h"

#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace dc::weights {

Manifest Manifest::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open manifest", path));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: manifest is not valid JSON ({})", path, e.what()));
  }
  if (!j.is_object() || !j.contains("keys") || !j["keys"].is_array())
    throw Error(fmt::format("{}: a manifest is a JSON object with an array 'keys' of "
                            "[name, shape, dtype]", path));
  Manifest m;
  m.path = path;
  if (j.contains("source") && j["source"].is_string()) m.source = j["source"].get<std::string>();
  if (j.contains("num_params") && j["num_params"].is_number_integer()) m.num_params = j["num_params"].get<int64_t>();
  std::set<std::string> seen;
  for (std::size_t i = 0; i < j["keys"].size(); ++i) {
    const auto& e = j["keys"][i];
    bool valid = e.is_array() && e.size() == 3 && e[0].is_string() && e[1].is_array() && e[2].is_string();
    if (valid)
      for (const auto& d : e[1]) valid = valid && d.is_number_integer() && d.get<int64_t>() >= 0;
    if (!valid)
      throw Error(fmt::format("{}: keys[{}] = {} is not [name, [dims...], dtype]", path, i, e.dump()));
    KeyShape k;
    k.name = e[0].get<std::string>();
    k.shape = e[1].get<std::vector<int64_t>>();
    k.dtype = e[2].get<std::string>();
    if (!seen.insert(k.name).second) throw Error(fmt::format("{}: key '{}' is listed twice", path, k.name));
    m.keys.push_back(std::move(k));
  }
  return m;
}

bool dtype_name_is_floating(const std::string& n) {
  return n == "float32" || n == "float16" || n == "bfloat16" || n == "float64";
}

bool KeyDiff::ok() const {
  if (!missing.empty() || !unexpected.empty() || !shape_mismatches.empty()) return false;
  for (const auto& d : dtype_differences)
    if (!d.compatible) return false;
  return true;
}

std::string KeyDiff::summary() const {
  std::size_t incompatible = 0;
  for (const auto& d : dtype_differences) incompatible += d.compatible ? 0 : 1;
  return fmt::format("{} matching, {} missing, {} unexpected, {} shape mismatches, {} dtype "
                     "differences ({} incompatible)", matching, missing.size(), unexpected.size(),
                     shape_mismatches.size(), dtype_differences.size(), incompatible);
}

KeyDiff diff_keys(const std::vector<KeyShape>& expected, const std::vector<KeyShape>& actual) {
  KeyDiff d;
  std::map<std::string, const KeyShape*> have;
  for (const auto& k : actual) have[k.name] = &k;
  std::set<std::string> wanted;
  for (const auto& e : expected) {
    wanted.insert(e.name);
    auto it = have.find(e.name);
    if (it == have.end()) {
      d.missing.push_back(e.name);
      continue;
    }
    const KeyShape& a = *it->second;
    if (a.shape != e.shape) d.shape_mismatches.push_back({e.name, e.shape, a.shape});
    else ++d.matching;
    if (a.dtype != e.dtype)
      d.dtype_differences.push_back({e.name, e.dtype, a.dtype,
                                     dtype_name_is_floating(a.dtype) && dtype_name_is_floating(e.dtype)});
  }
  for (const auto& a : actual)
    if (!wanted.count(a.name)) d.unexpected.push_back(a.name);
  return d;
}

std::vector<KeyShape> keys_of(const st::SafetensorsFile& file) {
  std::vector<KeyShape> out;
  for (const auto& t : file.tensors()) out.push_back({t.name, t.shape, st::dtype_long_name(t.dtype)});
  return out;
}

std::vector<KeyShape> keys_of(const std::vector<MappedKey>& mapped) {
  std::vector<KeyShape> out;
  for (const auto& m : mapped) out.push_back({m.target, m.shape, m.dtype});
  return out;
}

int64_t count_elements(const std::vector<KeyShape>& keys, bool floating_only) {
  int64_t n = 0;
  for (const auto& k : keys) {
    if (floating_only && !dtype_name_is_floating(k.dtype)) continue;
    int64_t e = 1;
    for (int64_t d : k.shape) e *= d;
    n += e;
  }
  return n;
}

}  // namespace dc::weights
