// Paper-style tables (Markdown, CSV) and similarity heatmaps (PNG) from a results file.
#pragma once
#include <string>
#include <vector>

#include <torch/torch.h>

namespace dc::harness {

struct ReportOptions {
  std::string results;        // .h5
  std::string format = "md";  // md | csv
  std::string heatmap_dir;    // default: the results file's folder
  std::string reference;      // run id (or prefix) or name: speedups and deltas of every row against
                              // it instead of each run's own baseline (matched-cost comparisons)
};

// Returns the table; writes heatmaps and lists their paths in `heatmaps`.
std::string render_report(const ReportOptions& options, std::vector<std::string>* heatmaps = nullptr);

// The key that pairs a run with its uncached baseline: its stored configuration less `cache` and
// `name` (config.cpp adds each baseline that way), so every sampler setting (eta, spacing, ...),
// the samples and the device must agree.
std::string baseline_key(const std::string& config_json);

// [S, S] values in [lo, hi] -> [3, S*cell, S*cell] uint8 with the viridis colormap; row i is step i
// (from the noisiest), column j step j.
torch::Tensor heatmap_image(const torch::Tensor& matrix, double lo, double hi, int64_t cell = 4);

}  // namespace dc::harness
