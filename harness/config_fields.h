// One table per section of a run's settings (harness/config.cpp): each field's YAML key, where it is
// kept in the section's struct and how the resolved config (whose hash is the run id) holds it. The
// table drives the strict reading (the known keys, each value's type) and the resolved JSON; what a
// section checks beyond types, and the fields whose place in the resolved config follows a rule of
// the section (written `by_rule`), stay in the section's reader and resolver.
#pragma once
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/config_reader.h"

namespace dc::harness {

enum class InResolved {
  always,          // written every time
  unless_default,  // written when it differs from the section's default (run ids made before the field existed stay)
  by_rule,         // written by the section's own rule, or recorded outside the run id
};

template <class S>
struct Field {
  const char* key;
  std::variant<bool S::*, int S::*, uint64_t S::*, double S::*, std::string S::*, std::vector<std::string> S::*, std::vector<int> S::*,
               std::vector<double> S::*>
      member;
  InResolved resolved = InResolved::always;
};

template <class S>
using Fields = std::vector<Field<S>>;

template <class S>
std::vector<std::string> keys_of(const Fields<S>& fields) {
  std::vector<std::string> keys;
  for (const auto& f : fields) keys.emplace_back(f.key);
  return keys;
}

// Reads the block at `path` (dotted, e.g. "model" or "metrics.fid_fmnist"): only the table's keys,
// each of its field's type (harness/config_reader.h); absent keys keep `out`'s values.
template <class S>
void read_fields(const nlohmann::json& block, const Reader& r, const std::string& path, const Fields<S>& fields, S& out) {
  r.only(block, path, keys_of(fields));
  for (const auto& f : fields) std::visit([&](auto member) { r.get(block, path, f.key, out.*member); }, f.member);
}

// The table's keys of a block that other tables share (a caching policy's keys in `cache:`, whose
// known keys the block's reader checks): each value of its field's type, absent keys kept.
template <class S>
void get_fields(const nlohmann::json& block, const Reader& r, const std::string& path, const Fields<S>& fields, S& out) {
  for (const auto& f : fields) std::visit([&](auto member) { r.get(block, path, f.key, out.*member); }, f.member);
}

// The section's fields as the resolved config holds them (`by_rule` fields left to the caller).
template <class S>
nlohmann::json resolved_fields(const Fields<S>& fields, const S& s) {
  static const S defaults{};
  nlohmann::json j = nlohmann::json::object();
  for (const auto& f : fields)
    std::visit(
        [&](auto member) {
          if (f.resolved == InResolved::always || (f.resolved == InResolved::unless_default && s.*member != defaults.*member))
            j[f.key] = s.*member;
        },
        f.member);
  return j;
}

}  // namespace dc::harness
