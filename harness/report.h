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
};

// Returns the table; writes heatmaps and lists their paths in `heatmaps`.
std::string render_report(const ReportOptions& options, std::vector<std::string>* heatmaps = nullptr);

// [S, S] values in [lo, hi] -> [3, S*cell, S*cell] uint8 with the viridis colormap; row i is step i
// (from the noisiest), column j step j.
torch::Tensor heatmap_image(const torch::Tensor& matrix, double lo, double hi, int64_t cell = 4);

}  // namespace dc::harness
