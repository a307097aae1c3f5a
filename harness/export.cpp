#include "harness/export.h"

#include <filesystem>
#include <ostream>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "common/io_ops.h"
#include "common/error.h"
#include "common/image_io.h"
#include "harness/hdf5.h"
#include "harness/results_store.h"
#include "metrics/npz.h"

namespace fs = std::filesystem;

namespace dc::harness {

ExportSummary export_images(const ExportOptions& o, std::ostream& log) {
  if (o.png_dir.empty() && o.npz.empty()) throw Error("export: give --png DIR and/or --npz FILE");
  if (!fs::is_regular_file(o.results)) throw Error(fmt::format("export: {}: no such results file", o.results));
  const auto runs = read_results(o.results);
  const StoredRun* hit = nullptr;
  for (const auto& r : runs)  // a result key or run id exactly first, then a unique prefix or the name
    if (r.key == o.run) hit = &r;
  if (!hit) {
    std::vector<std::string> matches;
    for (const auto& r : runs)
      if (r.run_id.rfind(o.run, 0) == 0 || r.name == o.run) {
        hit = &r;
        matches.push_back(r.key);
      }
    if (matches.size() > 1)
      throw Error(fmt::format("{}: --run '{}' matches {} results ({}): give one key", o.results, o.run, matches.size(), fmt::join(matches, ", ")));
  }
  if (!hit) {
    std::vector<std::string> keys;
    for (const auto& r : runs) keys.push_back(r.key);
    throw Error(fmt::format("{}: --run '{}' matches no run id, key or name (runs: {})", o.results, o.run, fmt::join(keys, ", ")));
  }
  if (hit->status != "complete") throw Error(fmt::format("{}: run {} is {}, it has no images", o.results, hit->key, hit->status));
  StoredRunFile stored = read_result(o.results, hit->key, kImages | kQualityArrays);
  const std::string g = "runs/" + hit->key;
  if (!stored.arrays.images)
    throw Error(fmt::format("{}: run {} stored no images (set samples.save_images: true and run it again)", o.results, hit->key));
  const torch::Tensor images = h5::to_tensor(std::move(*stored.arrays.images));
  if (images.dim() != 4 || images.scalar_type() != torch::kUInt8 || (images.size(1) != 1 && images.size(1) != 3))
    throw Error(fmt::format("{}: {}/images is not uint8 [N, 1|3, H, W]", o.results, g));
  const int64_t n = images.size(0);
  const int64_t first = stored.first_sample;
  ExportSummary s{hit->key, n};
  if (!o.png_dir.empty()) {
    dc::io::make_folders(o.png_dir);
    const int width = std::max<int>(6, static_cast<int>(std::to_string(std::max<int64_t>(first + n - 1, 0)).size()));
    for (int64_t i = 0; i < n; ++i) image::write_png(fmt::format("{}/{:0{}d}.png", o.png_dir, first + i, width), images[i]);
    log << fmt::format("png         {} ({} images, {:0{}d}.png to {:0{}d}.png)\n", o.png_dir, n, first, width, first + n - 1, width);
  }
  if (!o.npz.empty()) {
    // The evaluator's layout: NHWC uint8 RGB (grey images repeated to 3 channels, as PIL's
    // convert('RGB') does); the labels as arr_1 when the run has them.
    const torch::Tensor rgb = images.size(1) == 1 ? images.repeat({1, 3, 1, 1}) : images;
    std::vector<std::pair<std::string, torch::Tensor>> arrays = {{"arr_0", rgb.permute({0, 2, 3, 1}).contiguous()}};
    auto labels = stored.arrays.quality_arrays.find("class_labels");
    if (labels != stored.arrays.quality_arrays.end()) arrays.emplace_back("arr_1", h5::to_tensor(std::move(labels->second)));
    metrics::write_npz(o.npz, arrays);
    log << fmt::format("npz         {} (arr_0 uint8 [{}, {}, {}, 3]{})\n", o.npz, n, images.size(2), images.size(3),
                       arrays.size() > 1 ? ", arr_1 class labels" : "");
  }
  return s;
}

}  // namespace dc::harness
