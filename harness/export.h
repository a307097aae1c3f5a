// `export`: a stored run's images out of the results, for the official evaluators: a PNG folder
// (zero-padded names, so sorted order is sample order, as pytorch-fid and `clip-score` list them)
// and/or the .npz guided-diffusion's evaluator reads (arr_0: uint8 [N, H, W, 3]; arr_1: the
// class labels of class-conditional runs). Only runs stored with samples.save_images have images.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>

namespace dc::harness {

struct ExportOptions {
  std::string results;  // results file
  std::string run;      // run id, unique prefix, name, or a shard's key
  std::string png_dir;  // PNG folder (created; files <index>.png, index from the run's first sample)
  std::string npz;      // evaluator .npz
};

struct ExportSummary {
  std::string key;
  int64_t images = 0;
};

ExportSummary export_images(const ExportOptions& options, std::ostream& log);

}  // namespace dc::harness
