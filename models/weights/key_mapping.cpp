#include "models/weights/key_mapping.h"

#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "common/error.h"
#include "models/weights/safetensors.h"

namespace dc::weights {

namespace {

std::optional<Transform> parse_transform(const std::string& s) {
  if (s == "copy") return Transform::Copy;
  if (s == "squeeze_1x1") return Transform::Squeeze1x1;
  if (s == "unsqueeze_1x1") return Transform::Unsqueeze1x1;
  return std::nullopt;
}
}  // namespace

const char* transform_name(Transform t) {
  switch (t) {
    case Transform::Copy: return "copy";
    case Transform::Squeeze1x1: return "squeeze_1x1";
    case Transform::Unsqueeze1x1: return "unsqueeze_1x1";
  }
  return "?";
}

Transform inverse(Transform t) {
  switch (t) {
    case Transform::Squeeze1x1: return Transform::Unsqueeze1x1;
    case Transform::Unsqueeze1x1: return Transform::Squeeze1x1;
    default: return t;
  }
}

std::optional<std::vector<int64_t>> transformed_shape(const std::vector<int64_t>& shape, Transform t) {
  switch (t) {
    case Transform::Copy: return shape;
    case Transform::Squeeze1x1:
      if (shape.size() == 4 && shape[2] == 1 && shape[3] == 1) return std::vector<int64_t>{shape[0], shape[1]};
      return std::nullopt;
    case Transform::Unsqueeze1x1:
      if (shape.size() == 2) return std::vector<int64_t>{shape[0], shape[1], 1, 1};
      return std::nullopt;
  }
  return std::nullopt;
}

KeyMapping& KeyMapping::select_prefix(std::string prefix) {
  prefix_ = std::move(prefix);
  return *this;
}

KeyMapping& KeyMapping::ignore_prefix(std::string prefix) {
  ignores_.push_back(std::move(prefix));
  return *this;
}

KeyMapping& KeyMapping::rename(const std::string& from, const std::string& to, Transform t) {
  renames_[from] = {to, t};
  return *this;
}

KeyMapping KeyMapping::from_map_json(const std::string& path, const std::string& section, bool invert,
                                     const std::string& source_prefix, const std::string& target_prefix) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open key map", path));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: key map is not valid JSON ({})", path, e.what()));
  }
  if (!j.is_object() || !j.contains(section) || !j[section].is_object())
    throw Error(fmt::format("{}: key map has no object '{}'", path, section));
  KeyMapping m;
  for (auto it = j[section].begin(); it != j[section].end(); ++it) {
    const auto& v = it.value();
    if (!v.is_array() || v.size() != 2 || !v[0].is_string() || !v[1].is_string())
      throw Error(fmt::format("{}: {}.{}: expected [\"target\", \"transform\"], got {}", path, section,
                              it.key(), v.dump()));
    auto t = parse_transform(v[1].get<std::string>());
    if (!t)
      throw Error(fmt::format("{}: {}.{}: unknown transform '{}' (expected copy, squeeze_1x1 or "
                              "unsqueeze_1x1)", path, section, it.key(), v[1].get<std::string>()));
    std::string from = it.key(), to = v[0].get<std::string>();
    if (invert) {
      std::swap(from, to);
      *t = inverse(*t);
    }
    if (!starts_with(from, source_prefix) || !starts_with(to, target_prefix)) continue;
    from = from.substr(source_prefix.size());
    to = to.substr(target_prefix.size());
    if (m.renames_.count(from))
      throw Error(fmt::format("{}: {}: key '{}' is mapped twice", path, section, from));
    m.renames_[from] = {to, *t};
  }
  return m;
}

std::string KeyMapping::describe() const {
  std::string s;
  if (!prefix_.empty()) s += fmt::format("keys under '{}' (prefix stripped)", prefix_);
  for (const auto& i : ignores_) s += fmt::format("{}ignoring '{}*'", s.empty() ? "" : ", ", i);
  if (!renames_.empty()) s += fmt::format("{}{} renames", s.empty() ? "" : ", ", renames_.size());
  return s.empty() ? "identity" : s;
}

std::vector<MappedKey> KeyMapping::apply(const std::vector<KeyShape>& source, const std::string& what) const {
  std::vector<MappedKey> out;
  std::map<std::string, std::string> target_of;  // target -> source, to catch collisions
  for (const KeyShape& k : source) {
    if (!starts_with(k.name, prefix_)) continue;
    std::string name = k.name.substr(prefix_.size());
    bool ignored = false;
    for (const auto& i : ignores_) ignored = ignored || starts_with(name, i);
    if (ignored) continue;
    MappedKey m;
    m.source = k.name;
    m.target = name;
    m.dtype = k.dtype;
    auto r = renames_.find(name);
    if (r != renames_.end()) {
      m.target = r->second.first;
      m.transform = r->second.second;
    }
    auto shape = transformed_shape(k.shape, m.transform);
    if (!shape)
      throw Error(fmt::format("{}: tensor '{}' has shape {}, which transform {} cannot take", what, k.name,
                              st::shape_str(k.shape), transform_name(m.transform)));
    m.shape = *shape;
    auto [it, inserted] = target_of.emplace(m.target, k.name);
    if (!inserted)
      throw Error(fmt::format("{}: tensors '{}' and '{}' both map to '{}'", what, it->second, k.name, m.target));
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace dc::weights
