#include "harness/data/idx.h"

#include <cstring>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "common/error.h"
#include "harness/data/idx_core.h"

namespace dc::data {

torch::Tensor read_idx(const std::string& path) {
  IdxArray a = read_idx_array(path);
  auto t = torch::empty(a.shape, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), a.data.data(), a.data.size());
  return t;
}

LabelledImages read_fashion_mnist(const std::string& dir, const std::string& split) {
  std::string prefix;
  if (split == "train") prefix = "train";
  else if (split == "test") prefix = "t10k";
  else throw Error(fmt::format("Fashion-MNIST split '{}': expected train or test", split));
  auto find = [&](const std::string& stem) {
    for (const char* ext : {".gz", ""}) {
      const std::string p = fmt::format("{}/{}-{}{}", dir, prefix, stem, ext);
      if (std::filesystem::exists(p)) return p;
    }
    throw Error(fmt::format("{}/{}-{}(.gz): not found (install Debian's dataset-fashion-mnist, or set $DEEPCACHE_FASHION_MNIST)", dir,
                            prefix, stem));
  };
  const std::string ip = find("images-idx3-ubyte"), lp = find("labels-idx1-ubyte");
  LabelledImages d;
  d.images = read_idx(ip);
  const auto labels = read_idx(lp);
  if (d.images.dim() != 3 || d.images.size(1) != 28 || d.images.size(2) != 28)
    throw Error(fmt::format("{}: expected images [N, 28, 28], got {}", ip, fmt::join(d.images.sizes().vec(), "x")));
  if (labels.dim() != 1 || labels.size(0) != d.images.size(0))
    throw Error(fmt::format("{}: {} labels for {} images in {}", lp, labels.dim() == 1 ? labels.size(0) : -1, d.images.size(0), ip));
  if (labels.max().item<int>() > 9) throw Error(fmt::format("{}: label {} out of range 0..9", lp, labels.max().item<int>()));
  d.labels = labels.to(torch::kInt64);
  return d;
}

std::string default_fashion_mnist_dir() {
  if (const char* d = std::getenv("DEEPCACHE_FASHION_MNIST")) return d;
  return "/usr/share/datasets/fashion-mnist";
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

}  // namespace dc::data
