// Where a metric value comes from: every value the harness or a metric command writes carries one
// of these (as HDF5 attributes or in the command's JSON output), so numbers from different
// implementations, weights, resize rules or reference statistics are never mixed up silently.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace dc::metrics {

struct MetricProvenance {
  std::string metric;            // "fid", "clip_score", "inception_score", ...
  std::string implementation;    // what computed it (network, its reference, this program's revision)
  std::string weights_file;      // the feature network's weights
  std::string weights_sha256;
  std::string resize_rule;       // how images reach the network's input size
  std::string uint8_rule;        // how float images became uint8 before that
  int64_t samples = 0;           // images (or image/prompt pairs) that went into the value
  std::string reference;         // reference statistics (FID) or prompts file (CLIP score)
  std::string reference_sha256;

  nlohmann::json to_json() const;
};

// This program's identity for `implementation`: "deepcache-bench <git describe>".
std::string program_identity();

// Writes {"metric": ..., "value": ..., <extra>, "provenance": {...}} to `path` atomically
// (temporary file, then rename). `extra` must be a JSON object (may be empty).
void write_metric_json(const std::string& path, double value, const nlohmann::json& extra, const MetricProvenance& p);

}  // namespace dc::metrics
