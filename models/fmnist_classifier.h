// The feature network of FID-FMNIST: a small CNN classifier for Fashion-MNIST, trained here
// (`deepcache-bench train configs/train/fmnist_classifier.yaml`). Its penultimate activations
// (fc1 after ReLU, 128 values) define FID-FMNIST. FID-FMNIST is comparable only with itself (the
// same weights file, see its SHA-256 in every provenance record), never with Inception FID.
//
//   conv1 1->32 3x3, ReLU, conv2 32->32 3x3, ReLU, max-pool 2   (28 -> 14)
//   conv3 32->64 3x3, ReLU, conv4 64->64 3x3, ReLU, max-pool 2  (14 -> 7)
//   fc1 3136->128, ReLU (features), dropout, fc2 128->10 (logits)
// Input: uint8 grey images [B, 1, 28, 28] (or [B, 1, 32, 32], center-cropped to 28: the DDPM of
// this project generates Fashion-MNIST padded to 32), scaled to [-1, 1].
#pragma once
#include <torch/torch.h>

namespace dc::models {

class FmnistClassifierImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kFeatures = 128;
  explicit FmnistClassifierImpl(double dropout = 0.25);
  // Float input already in [-1, 1], [B, 1, 28, 28]: logits [B, 10].
  torch::Tensor forward(const torch::Tensor& x);
  // Float input in [-1, 1]: the 128 penultimate features.
  torch::Tensor features(const torch::Tensor& x);
  // uint8 [B, 1, 28|32, 28|32] -> float [B, 1, 28, 28] in [-1, 1] on the module's device.
  torch::Tensor prepare(const torch::Tensor& images_u8) const;

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, conv4{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(FmnistClassifier);

}  // namespace dc::models
