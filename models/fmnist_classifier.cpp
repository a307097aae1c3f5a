#include "models/fmnist_classifier.h"

#include <fmt/format.h>

#include "common/error.h"

namespace dc::models {
namespace F = torch::nn::functional;

FmnistClassifierImpl::FmnistClassifierImpl(double dropout) : dropout_(dropout) {
  auto conv = [](int64_t in, int64_t out) { return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)); };
  conv1 = register_module("conv1", conv(1, 32));
  conv2 = register_module("conv2", conv(32, 32));
  conv3 = register_module("conv3", conv(32, 64));
  conv4 = register_module("conv4", conv(64, 64));
  fc1 = register_module("fc1", torch::nn::Linear(64 * 7 * 7, kFeatures));
  fc2 = register_module("fc2", torch::nn::Linear(kFeatures, 10));
}

torch::Tensor FmnistClassifierImpl::features(const torch::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != 1 || x.size(2) != 28 || x.size(3) != 28)
    throw Error(fmt::format("Fashion-MNIST classifier: expected [B, 1, 28, 28], got {}", fmt::join(x.sizes().vec(), "x")));
  auto h = F::max_pool2d(torch::relu(conv2(torch::relu(conv1(x)))), F::MaxPool2dFuncOptions(2));
  h = F::max_pool2d(torch::relu(conv4(torch::relu(conv3(h)))), F::MaxPool2dFuncOptions(2));
  return torch::relu(fc1(h.flatten(1)));
}

torch::Tensor FmnistClassifierImpl::forward(const torch::Tensor& x) {
  return fc2(F::dropout(features(x), F::DropoutFuncOptions().p(dropout_).training(is_training())));
}

torch::Tensor FmnistClassifierImpl::prepare(const torch::Tensor& images_u8) const {
  if (images_u8.scalar_type() != torch::kUInt8 || images_u8.dim() != 4 || images_u8.size(1) != 1 ||
      images_u8.size(2) != images_u8.size(3) || (images_u8.size(2) != 28 && images_u8.size(2) != 32))
    throw Error(fmt::format("Fashion-MNIST classifier: expected uint8 grey images [B, 1, 28 or 32, 28 or 32], got {} {}",
                            std::string(c10::toString(images_u8.scalar_type())), fmt::join(images_u8.sizes().vec(), "x")));
  auto x = images_u8;
  if (x.size(2) == 32) x = x.slice(2, 2, 30).slice(3, 2, 30);
  return x.to(conv1->weight.device()).to(torch::kFloat32).div(127.5).sub(1.0);
}

}  // namespace dc::models
