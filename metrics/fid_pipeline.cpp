#include "metrics/fid_pipeline.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/png_core.h"
#include "common/image_io.h"
#include "metrics/npz.h"
#include "metrics/sha256.h"
#include "models/weights/strict_loader.h"

namespace fs = std::filesystem;

namespace dc::metrics {

std::vector<std::string> list_images(const std::string& dir) {
  if (!fs::is_directory(dir)) throw Error(fmt::format("{}: not a folder of images", dir));
  static const std::vector<std::string> exts = {"bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp"};
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::string ext = e.path().extension().string();
    if (ext.empty()) continue;
    ext = ext.substr(1);
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (std::find(exts.begin(), exts.end(), ext) != exts.end()) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  if (out.empty()) throw Error(fmt::format("{}: no images (looked for bmp jpg jpeg pgm png ppm tif tiff webp)", dir));
  // Every file is checked to be a PNG by its signature and header now, before any network is loaded or any
  // image decoded (a bad file must not cost a model load or half a folder's features).
  for (const auto& f : out) {
    std::string ext = fs::path(f).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext != ".png") throw Error(fmt::format("{}: only PNG images are decoded here (convert the others, e.g. with ImageMagick)", f));
    image::read_png_header(f);  // signature, IHDR, size: no model load for a damaged or absurd file
  }
  return out;
}

torch::Tensor load_rgb(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext != ".png")
    throw Error(fmt::format("{}: only PNG images are decoded here (convert the others, e.g. with ImageMagick)", path));
  torch::Tensor img = image::read_png(path);
  if (img.size(0) == 1) img = img.repeat({3, 1, 1});
  return img;
}

torch::Tensor inception_features(InceptionFid& net, const torch::Tensor& images, int dims) {
  const auto p = net->parameters().front();
  const torch::Tensor x = images.to(p.device()).to(torch::kFloat32).div(255);
  if (dims == 2048) return net->forward(x).pool3;
  const char* block = dims == 64 ? "block0" : dims == 192 ? "block1" : dims == 768 ? "block2" : nullptr;
  if (!block) throw Error(fmt::format("--dims {}: pytorch-fid's FID Inception offers 64, 192, 768 or 2048", dims));
  return net->forward(x, false, true).blocks.at(block).mean({2, 3});  // adaptive average pool to 1x1
}

FeatureStats folder_statistics(InceptionFid& net, const std::string& dir, int dims, int batch, const torch::Device& device) {
  (void)device;
  if (batch < 1) throw Error(fmt::format("--batch-size must be at least 1, got {}", batch));
  torch::NoGradGuard ng;
  const auto files = list_images(dir);
  FeatureStats stats;
  std::vector<torch::Tensor> pending;
  auto flush = [&] {
    if (pending.empty()) return;
    stats.add(inception_features(net, torch::stack(pending), dims).to(torch::kCPU));
    pending.clear();
  };
  for (const auto& f : files) {
    torch::Tensor img = load_rgb(f);
    if (!pending.empty() && (pending.front().sizes() != img.sizes() || static_cast<int>(pending.size()) == batch)) flush();
    pending.push_back(img);
  }
  flush();
  return stats;
}

namespace {

// "name\tsize\tmtime\n" of a file: what identifies a reference's content cheaply.
std::string file_entry(const std::string& f) {
  std::error_code ec;
  const auto size = fs::file_size(f, ec);
  const auto mtime = fs::last_write_time(f, ec).time_since_epoch().count();
  return fmt::format("{}\t{}\t{}\n", fs::path(f).filename().string(), size, mtime);
}

torch::Tensor check_features(const torch::Tensor& f, const std::string& what) {
  if (f.dim() != 2 || f.size(1) != 2048 || f.size(0) < 1)
    throw Error(fmt::format("{}: precision/recall reference features must be [N, 2048], are {}", what, c10::str(f.sizes())));
  return f.to(torch::kFloat32).contiguous();
}

}  // namespace

std::string cached_folder_reference(const std::string& dir, const std::string& weights, int dims, const std::string& cache_dir,
                                    const torch::Device& device, std::ostream* log) {
  const auto files = list_images(dir);
  const std::string weights_sha = sha256_file(weights);
  std::string listing = fmt::format("deepcache-bench fid reference v1\ndims {}\nweights {}\n", dims, weights_sha);
  for (const auto& f : files) listing += file_entry(f);
  const std::string key = sha256_hex(listing).substr(0, 16);
  const fs::path npz = fs::path(cache_dir) / fmt::format("fid_reference_{}.npz", key);
  if (fs::is_regular_file(npz)) return npz.string();
  fs::create_directories(cache_dir);
  if (log) *log << fmt::format("FID reference: statistics of {} ({} images, {} dims) computed once, cached as {}\n", dir, files.size(), dims,
                               npz.string());
  auto net = load_inception(weights, device);
  const FeatureStats stats = folder_statistics(net, dir, dims, 50, device);
  if (stats.count() < 2) throw Error(fmt::format("{}: a FID reference needs at least 2 images, the folder has {}", dir, stats.count()));
  const std::string tmp = fmt::format("{}.tmp.{}", npz.string(), ::getpid());
  write_fid_stats(tmp, stats.mean(), stats.covariance());
  nlohmann::json about = {{"folder", fs::absolute(dir).string()}, {"images", files.size()}, {"dims", dims},
                          {"weights", weights}, {"weights_sha256", weights_sha}, {"key", key}};
  std::ofstream(npz.string() + ".json.tmp") << about.dump(2) << "\n";
  fs::rename(npz.string() + ".json.tmp", fs::path(cache_dir) / fmt::format("fid_reference_{}.json", key));
  fs::rename(tmp, npz);
  return npz.string();
}

torch::Tensor cached_reference_features(const std::string& reference, const std::string& weights, const std::string& cache_dir,
                                        const torch::Device& device, std::ostream* log) {
  const bool folder = fs::is_directory(reference);
  if (!folder && !fs::is_regular_file(reference))
    throw Error(fmt::format("{}: a precision/recall reference is an .npz (arr_0 images or features) or a folder of images; not found", reference));
  std::vector<std::string> files = folder ? list_images(reference) : std::vector<std::string>{reference};
  const std::string weights_sha = sha256_file(weights);
  std::string listing = fmt::format("deepcache-bench precision/recall reference v1\nweights {}\n{}\n", weights_sha, folder ? "folder" : "npz");
  for (const auto& f : files) listing += file_entry(f);
  const std::string key = sha256_hex(listing).substr(0, 16);
  const fs::path npz = fs::path(cache_dir) / fmt::format("pr_reference_{}.npz", key);
  if (fs::is_regular_file(npz)) return check_features(read_npz(npz.string()).at("features"), npz.string());

  torch::Tensor images;  // [N, 3, H, W] uint8 (an npz), or undefined (a folder: read per batch)
  if (!folder) {
    auto arrays = read_npz(reference);
    if (arrays.count("features") && !arrays.count("arr_0")) return check_features(arrays.at("features"), reference);
    if (!arrays.count("arr_0"))
      throw Error(fmt::format("{}: a precision/recall reference .npz holds arr_0 (uint8 images [N, H, W, C]) or features [N, 2048]", reference));
    images = arrays.at("arr_0");
    if (images.dim() == 3) images = images.unsqueeze(3);
    if (images.scalar_type() != torch::kUInt8 || images.dim() != 4 || (images.size(3) != 1 && images.size(3) != 3))
      throw Error(fmt::format("{}: arr_0 must be uint8 images [N, H, W, C] with C = 1 or 3, is {} {}", reference,
                              c10::toString(images.scalar_type()), c10::str(images.sizes())));
    images = images.permute({0, 3, 1, 2});
    if (images.size(1) == 1) images = images.expand({-1, 3, -1, -1});
  }
  const int64_t n = folder ? static_cast<int64_t>(files.size()) : images.size(0);
  if (n < 4) throw Error(fmt::format("{}: a k = 3 nearest-neighbour manifold needs at least 4 reference images, has {}", reference, n));
  fs::create_directories(cache_dir);
  if (log) *log << fmt::format("precision/recall reference: features of {} ({} images) computed once, cached as {}\n", reference, n, npz.string());
  auto net = load_inception(weights, device);
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> feats;
  if (folder) {
    std::vector<torch::Tensor> pending;
    auto flush = [&] {
      if (pending.empty()) return;
      feats.push_back(inception_features(net, torch::stack(pending), 2048).to(torch::kCPU));
      pending.clear();
    };
    for (const auto& f : files) {
      torch::Tensor img = load_rgb(f);
      if (!pending.empty() && (pending.front().sizes() != img.sizes() || pending.size() == 50)) flush();
      pending.push_back(img);
    }
    flush();
  } else {
    for (int64_t b = 0; b < n; b += 50)
      feats.push_back(inception_features(net, images.slice(0, b, std::min(n, b + 50)).contiguous(), 2048).to(torch::kCPU));
  }
  const torch::Tensor features = torch::cat(feats).to(torch::kFloat32).contiguous();
  const std::string tmp = fmt::format("{}.tmp.{}", npz.string(), ::getpid());
  write_npz(tmp, {{"features", features}});
  nlohmann::json about = {{"reference", fs::absolute(reference).string()}, {"images", n}, {"dims", 2048},
                          {"weights", weights}, {"weights_sha256", weights_sha}, {"key", key}};
  std::ofstream(npz.string() + ".json.tmp") << about.dump(2) << "\n";
  fs::rename(npz.string() + ".json.tmp", fs::path(cache_dir) / fmt::format("pr_reference_{}.json", key));
  fs::rename(tmp, npz);
  return features;
}

InceptionFid load_inception(const std::string& weights, const torch::Device& device) {
  if (weights.empty())
    throw Error("no FID Inception weights: pass --inception-weights FILE or set DEEPCACHE_INCEPTION_WEIGHTS (pytorch-fid's "
                "pt_inception-2015-12-05-6726825d.pth, converted with scripts/convert_ckpt_to_safetensors.py)");
  if (!fs::exists(weights)) throw Error(fmt::format("{}: FID Inception weights not found", weights));
  InceptionFid net;
  weights::LoadOptions lo;
  lo.module_name = "FID InceptionV3";
  weights::load_strict(*net, st::SafetensorsFile::open(weights), lo);
  net->eval();
  net->to(device);
  return net;
}

MetricProvenance inception_provenance(const std::string& metric, const std::string& weights, int dims,
                                      const std::string& reference, int64_t samples, const std::string& uint8_rule) {
  MetricProvenance p;
  p.metric = metric;
  p.implementation = metric == "precision_recall"
                         ? fmt::format("{}: pytorch-fid InceptionV3 port (FID weights pt_inception-2015-12-05), pool3 features (2048, "
                                       "float16 per sample), improved precision and recall with k = 3 nearest-neighbour manifolds as the "
                                       "ADM evaluator (distances in float32); not bit-comparable with the TensorFlow evaluator",
                                       program_identity())
                     : metric == "sfid"
                         ? fmt::format("{}: pytorch-fid InceptionV3 port (FID weights pt_inception-2015-12-05), the ADM evaluator's sFID "
                                       "features (mixed_6/conv [..., :7] = Mixed_6d's first 7 channels, 17x17x7 in HWC order), Frechet "
                                       "distance in double; not bit-comparable with the TensorFlow evaluator",
                                       program_identity())
                     : metric == "fid"
                         ? fmt::format("{}: pytorch-fid InceptionV3 port (FID weights pt_inception-2015-12-05), {} dims, Frechet distance in double",
                                       program_identity(), dims)
                         : fmt::format("{}: pytorch-fid InceptionV3 port (FID weights pt_inception-2015-12-05), softmax over its 1008 logits, "
                                       "exp(mean KL) per split of the global sample order, mean and population std over splits",
                                       program_identity());
  if (!weights.empty()) {
    p.weights_file = weights;
    p.weights_sha256 = sha256_file(weights);
  }
  p.resize_rule = "bilinear to 299x299 inside the network (align_corners=False, as pytorch-fid), input /255 then 2x-1";
  p.uint8_rule = uint8_rule;
  p.samples = samples;
  p.reference = reference;
  if (!reference.empty() && std::filesystem::is_regular_file(reference)) p.reference_sha256 = sha256_file(reference);
  return p;
}

}  // namespace dc::metrics
