// IDX files (the MNIST / Fashion-MNIST format, gzip-compressed or not): magic 0x0000TTDD (TT = 0x08
// unsigned byte, the only element type these datasets use; DD = number of dimensions), DD
// big-endian uint32 sizes, then the elements. Every defect (wrong magic, unsupported type, sizes
// that overflow or disagree with the file length, trailing bytes, a broken gzip stream) is a
// dc::Error naming the file.
#pragma once
#include <torch/torch.h>

#include <string>

namespace dc::data {

// uint8 tensor with the file's dimensions, e.g. [60000, 28, 28] images or [60000] labels.
torch::Tensor read_idx(const std::string& path);

struct LabelledImages {
  torch::Tensor images;  // uint8 [N, 28, 28]
  torch::Tensor labels;  // int64 [N], 0..9
};

// Fashion-MNIST's split "train" (60,000) or "test" (10,000) from `dir` (Debian's
// dataset-fashion-mnist installs /usr/share/datasets/fashion-mnist): images and labels must agree
// in count and labels must be 0..9.
LabelledImages read_fashion_mnist(const std::string& dir, const std::string& split);

// The default dataset folder: $DEEPCACHE_FASHION_MNIST, else /usr/share/datasets/fashion-mnist.
std::string default_fashion_mnist_dir();

// Fashion-MNIST class names, index = label.
const std::vector<std::string>& fashion_mnist_classes();

}  // namespace dc::data
