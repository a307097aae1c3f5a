#include "metrics/provenance.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "dc/git_describe.h"

namespace dc::metrics {

nlohmann::json MetricProvenance::to_json() const {
  return {{"metric", metric},
          {"implementation", implementation},
          {"weights_file", weights_file},
          {"weights_sha256", weights_sha256},
          {"resize_rule", resize_rule},
          {"uint8_rule", uint8_rule},
          {"samples", samples},
          {"reference", reference},
          {"reference_sha256", reference_sha256}};
}

std::string program_identity() { return fmt::format("deepcache-bench {}", DC_GIT_DESCRIBE); }

void write_metric_json(const std::string& path, double value, const nlohmann::json& extra, const MetricProvenance& p) {
  nlohmann::json j = {{"metric", p.metric}, {"value", value}};
  if (!extra.is_null()) {
    if (!extra.is_object()) throw Error("write_metric_json: extra fields must be a JSON object");
    for (const auto& [k, v] : extra.items()) j[k] = v;
  }
  j["provenance"] = p.to_json();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw Error(fmt::format("{}: cannot be written", tmp));
    out << j.dump(2) << "\n";
    out.flush();
    if (!out) throw Error(fmt::format("{}: write failed", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw Error(fmt::format("{}: cannot be renamed to {}: {}", tmp, path, ec.message()));
}

}  // namespace dc::metrics
