// FID-FMNIST: the Fréchet distance between the 128 penultimate features of this project's
// Fashion-MNIST classifier (models/fmnist_classifier.h) on generated and on real images. It is
// comparable only with itself - the same classifier weights (their SHA-256 is in every provenance
// record) and the same reference statistics - never with Inception FID. Alongside: the fraction of
// samples the classifier is confident about (top softmax probability >= a threshold) and the
// predicted class histogram, which catch mode collapse and noise that FID alone may hide.
#pragma once
#include <torch/torch.h>

#include <array>
#include <string>

#include "metrics/fid.h"
#include "metrics/provenance.h"
#include "models/fmnist_classifier.h"

namespace dc::metrics {

// Loads the classifier strictly (dc::Error names the file and every bad key).
models::FmnistClassifier load_fmnist_classifier(const std::string& path, const torch::Device& device);

struct FmnistEval {
  FeatureStats stats{models::FmnistClassifierImpl::kFeatures};
  int64_t n = 0;
  int64_t confident = 0;              // top probability >= threshold
  std::array<int64_t, 10> classes{};  // predicted class histogram
  double confident_fraction() const { return n ? static_cast<double>(confident) / static_cast<double>(n) : 0.0; }
};

// images: uint8 [N, 1, 28|32, 28|32] (the DDPM's 32x32 output is center-cropped to 28).
// `features` (optional): also each image's features, float32 [N, 128] on the CPU (the bootstrap
// interval resamples them; harness/quality.cpp).
FmnistEval fmnist_evaluate(models::FmnistClassifier& net, const torch::Tensor& images_u8, double confidence = 0.8, int64_t batch = 500,
                           torch::Tensor* features = nullptr);

// FID-FMNIST of `eval` against reference statistics (mu, sigma) from a .npz.
double fid_fmnist(const FmnistEval& eval, const std::string& reference_npz);

// Provenance of a FID-FMNIST value.
MetricProvenance fid_fmnist_provenance(const std::string& classifier, const std::string& reference_npz, int64_t samples);

}  // namespace dc::metrics
