// pytorch-fid's path from image files to statistics (fid_score.py): the files of a folder with
// the extensions it accepts, sorted; each read as RGB uint8; uint8/255 into the FID Inception;
// features of the chosen block (64, 192, 768 or 2048 dims), adaptive-average-pooled; statistics in
// double. PNG is decoded here (libpng); other extensions pytorch-fid accepts are refused by name.
#pragma once
#include <torch/torch.h>

#include <iosfwd>
#include <string>
#include <vector>

#include "metrics/fid.h"
#include "metrics/provenance.h"
#include "metrics/inception_fid.h"

namespace dc::metrics {

// The image files of a folder as pytorch-fid lists them (extensions bmp jpg jpeg pgm png ppm tif
// tiff webp, case-insensitive, sorted). Throws dc::Error when the folder has none.
std::vector<std::string> list_images(const std::string& dir);

// [3, H, W] uint8 (grey PNGs are repeated to RGB, alpha dropped: PIL's convert('RGB')).
torch::Tensor load_rgb(const std::string& path);

// Features [N, dims] of uint8 images [N, 3, H, W]. dims: 64, 192, 768 or 2048.
torch::Tensor inception_features(InceptionFid& net, const torch::Tensor& images, int dims);

// Statistics of a folder (batches of consecutive same-size images of at most `batch`).
FeatureStats folder_statistics(InceptionFid& net, const std::string& dir, int dims, int batch, const torch::Device& device);

// FID reference statistics of a folder of images, computed once and cached as
// `<cache_dir>/fid_reference_<key>.npz` (pytorch-fid's mu, sigma) with `<...>.json` beside it
// (folder, files, dims, weights SHA-256). key: 16 hex digits of the SHA-256 of the dims, the
// weights' SHA-256 and the folder's file list (names, sizes, modification times), so adding,
// replacing or touching an image, other weights or another block make a new file. Returns the
// .npz path; computes it (loading the Inception) when absent, written atomically. `log` (optional)
// hears when it is computed.
std::string cached_folder_reference(const std::string& dir, const std::string& weights, int dims, const std::string& cache_dir,
                                    const torch::Device& device, std::ostream* log = nullptr);

// Pool features [N, 2048] float32 of a precision/recall reference, computed once and cached as
// `<cache_dir>/pr_reference_<key>.npz` (array `features`) with a .json beside it. The reference is
// an .npz holding `arr_0`, uint8 images [N, H, W, C] (C = 1 or 3, or [N, H, W]: the layout of the
// ADM evaluator's reference batches and of `export --npz`), or an .npz holding `features` [N, 2048]
// (used as it is, e.g. a cache file), or a folder of images (pytorch-fid's list). key: 16 hex
// digits of the SHA-256 of the weights' SHA-256 and the file's (or the folder's files') names,
// sizes and modification times. Returns the features (CPU). dc::Error names the file when it is
// none of these.
torch::Tensor cached_reference_features(const std::string& reference, const std::string& weights, const std::string& cache_dir,
                                        const torch::Device& device, std::ostream* log = nullptr);

// Loads the FID Inception weights strictly (fp16 files are converted to float32).
InceptionFid load_inception(const std::string& weights, const torch::Device& device);

// Provenance of a value computed with the FID Inception (`metric`: fid or inception_score):
// implementation, weights and their SHA-256, the resize rule; `reference` (FID: the reference
// statistics, hashed when it is a file) and the sample count. `uint8_rule` says how the images
// became uint8.
MetricProvenance inception_provenance(const std::string& metric, const std::string& weights, int dims,
                                      const std::string& reference, int64_t samples, const std::string& uint8_rule);

}  // namespace dc::metrics
