// Strict, located reading of an experiment's settings (harness/config.cpp, and every caching policy's
// own `cache:` block, harness/policies): each value is checked for its type and range, and an error
// names the file, the line and the key as written (a sweep axis, a `runs:` entry, `--set`, `base:`
// or an included block).
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace dc::harness {

// Where an experiment's text came from, and the line of every dotted key path in it.
struct Source {
  std::string origin;
  std::map<std::string, int> lines;  // "base.cache.k" -> 1-based line
  std::string where(const std::string& path) const {
    auto it = lines.find(path);
    return it == lines.end() ? origin : fmt::format("{}:{}", origin, it->second);
  }
};

inline std::string type_name(const nlohmann::json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "a mapping";
  return "null";
}

// ---- typed, strict reading of one run ------------------------------------------------------
// Where each setting of one run was written, so an error points at the line to edit: a dotted key
// set by a sweep axis, a zip group, a `runs:` entry or `--set`; every other key comes from `base:`
// or an included block.
struct Origins {
  // dotted override key -> where it was written: "sweep.cache.k", "runs[0].cache.k", "--set KEY=VALUE"
  std::vector<std::pair<std::string, std::string>> overrides;
  std::map<std::string, std::string> base;  // "similarity.taps" -> "file:line" (base: or an include)
};

class Reader {
 public:
  // Without `origins`, a key path is looked up under `root` (an experiment's settings: "base"; a
  // training file's: "" with paths like "train.lr").
  Reader(const Source& src, std::string context, const Origins* origins = nullptr, std::string root = "base")
      : src_(src), context_(std::move(context)), origins_(origins), root_(root.empty() ? root : root + ".") {}

  // "file:line" and the key as written ("base.similarity.taps", "sweep.cache.k", ...) of `path`.
  std::pair<std::string, std::string> locate(const std::string& path) const {
    auto covers = [&](const std::string& key) { return path == key || path.rfind(key + ".", 0) == 0; };
    if (origins_) {
      const std::pair<std::string, std::string>* best = nullptr;
      for (const auto& o : origins_->overrides)
        if (covers(o.first) && (!best || o.first.size() >= best->first.size())) best = &o;  // later wins, as applied
      if (best) {
        if (best->second.rfind("--set", 0) == 0) return {best->second, path};
        return {src_.where(best->second), best->second + path.substr(best->first.size())};
      }
      const std::pair<const std::string, std::string>* base = nullptr;
      for (const auto& b : origins_->base)
        if (covers(b.first) && (!base || b.first.size() > base->first.size())) base = &b;
      if (base) return {base->second, "base." + path};
      return {src_.origin, path};
    }
    const auto it = src_.lines.find(root_ + path);
    return it == src_.lines.end() ? std::make_pair(src_.origin, path) : std::make_pair(src_.where(root_ + path), root_ + path);
  }

  // "file:line: key.as.written" of `path`, for warnings.
  std::string at(const std::string& path) const {
    const auto [where, shown] = locate(path);
    return where + ": " + shown;
  }

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    const auto [where, shown] = locate(path);
    throw Error(fmt::format("{}: {}: {}{}", where, shown, what, suffix()));
  }

  // Checks that `obj` (at `path`) has only `known` keys.
  void only(const nlohmann::json& obj, const std::string& path, const std::vector<std::string>& known) const {
    if (!obj.is_object()) fail(path, fmt::format("expected a mapping, got {}", type_name(obj)));
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      fail(path.empty() ? it.key() : path + "." + it.key(), fmt::format("unknown key (known here: {})", list));
    }
  }

  // A JSON integer that an int holds (nlohmann's get<int> would wrap 10^11 around silently).
  static bool fits_int(const nlohmann::json& v) {
    if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int>::max());
    return v.get<int64_t>() <= std::numeric_limits<int>::max() && v.get<int64_t>() >= std::numeric_limits<int>::min();
  }

  template <typename T>
  void get(const nlohmann::json& obj, const std::string& path, const std::string& key, T& out) const {
    if (!obj.contains(key)) return;
    const nlohmann::json& v = obj[key];
    const std::string p = path + "." + key;
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) fail(p, fmt::format("expected true or false, got {} ({})", type_name(v), v.dump()));
      out = v.get<bool>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!v.is_string()) fail(p, fmt::format("expected a string, got {} ({})", type_name(v), v.dump()));
      out = v.get<std::string>();
    } else if constexpr (std::is_same_v<T, double>) {
      if (!v.is_number()) fail(p, fmt::format("expected a number, got {} ({})", type_name(v), v.dump()));
      out = v.get<double>();
    } else if constexpr (std::is_same_v<T, uint64_t>) {
      if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0)) fail(p, fmt::format("expected a non-negative integer, got {}", v.dump()));
      out = v.get<uint64_t>();
    } else if constexpr (std::is_same_v<T, int>) {
      if (!v.is_number_integer()) fail(p, fmt::format("expected an integer, got {} ({})", type_name(v), v.dump()));
      if (!fits_int(v))
        fail(p, fmt::format("{} is beyond the integers this setting takes ({} to {})", v.dump(), std::numeric_limits<int>::min(),
                            std::numeric_limits<int>::max()));
      out = v.get<int>();
    } else if constexpr (std::is_same_v<T, int64_t>) {
      if (!v.is_number_integer()) fail(p, fmt::format("expected an integer, got {} ({})", type_name(v), v.dump()));
      if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(p, fmt::format("{} is beyond the integers this setting takes", v.dump()));
      out = v.get<int64_t>();
    } else if constexpr (std::is_same_v<T, std::vector<int>>) {
      if (!v.is_array()) fail(p, fmt::format("expected a list of integers, got {}", type_name(v)));
      out.clear();
      for (const auto& e : v) {
        if (!e.is_number_integer()) fail(p, fmt::format("expected a list of integers, found {}", e.dump()));
        if (!fits_int(e)) fail(p, fmt::format("{} is beyond the integers this setting takes", e.dump()));
        out.push_back(e.get<int>());
      }
    } else if constexpr (std::is_same_v<T, std::vector<double>>) {
      if (!v.is_array()) fail(p, fmt::format("expected a list of numbers, got {}", type_name(v)));
      out.clear();
      for (const auto& e : v) {
        if (!e.is_number()) fail(p, fmt::format("expected a list of numbers, found {}", e.dump()));
        out.push_back(e.get<double>());
      }
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      if (!v.is_array()) fail(p, fmt::format("expected a list of strings, got {}", type_name(v)));
      out.clear();
      for (const auto& e : v) {
        if (!e.is_string()) fail(p, fmt::format("expected a list of strings, found {}", e.dump()));
        out.push_back(e.get<std::string>());
      }
    }
  }

  void one_of(const std::string& path, const std::string& v, const std::vector<std::string>& allowed) const {
    if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    fail(path, fmt::format("'{}' is not one of: {}", v, list));
  }
  // A message that already starts with its key (e.g. "sampler.eta: ..." from the sampler registry),
  // located at `path`.
  [[noreturn]] void fail_keyed(const std::string& path, const std::string& message) const {
    // Locate the key the message names ("sampler.eta: ..." under "sampler") when it lies below `path`.
    std::string key = path;
    if (const auto colon = message.find(": "); colon != std::string::npos && message.compare(0, path.size() + 1, path + ".") == 0 &&
                                                message.find(' ') > colon)
      key = message.substr(0, colon);
    const auto [where, shown] = locate(key);
    const bool overridden = shown != path && shown.rfind("base.", 0) != 0;
    throw Error(fmt::format("{}: {}{}{}", where, message, overridden ? " (set by " + shown + ")" : "", suffix()));
  }
  void at_least(const std::string& path, double v, double min, const std::string& what = "") const {
    if (v < min) fail(path, fmt::format("{} must be at least {}{}", v, min, what.empty() ? "" : " (" + what + ")"));
  }

 private:
  // "; in run runs[0], cache.k=1": which run of the experiment was being read.
  std::string suffix() const { return context_.empty() ? "" : "; in " + context_; }

  const Source& src_;
  std::string context_;
  const Origins* origins_;
  std::string root_;  // "base." or ""
};

}  // namespace dc::harness
