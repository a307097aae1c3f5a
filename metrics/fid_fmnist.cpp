#include "metrics/fid_fmnist.h"

#include <fmt/format.h>

#include "common/error.h"
#include "metrics/npz.h"
#include "metrics/sha256.h"
#include "models/weights/strict_loader.h"

namespace dc::metrics {

models::FmnistClassifier load_fmnist_classifier(const std::string& path, const torch::Device& device) {
  models::FmnistClassifier net;
  weights::LoadOptions lo;
  lo.module_name = "Fashion-MNIST classifier";
  weights::load_strict(*net, st::SafetensorsFile::open(path), lo);
  net->eval();
  net->to(device);
  return net;
}

FmnistEval fmnist_evaluate(models::FmnistClassifier& net, const torch::Tensor& images_u8, double confidence, int64_t batch,
                           torch::Tensor* features) {
  if (batch < 1) throw Error(fmt::format("FID-FMNIST: batch must be at least 1, got {}", batch));
  torch::NoGradGuard ng;
  net->eval();
  FmnistEval e;
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < images_u8.size(0); i += batch) {
    const auto x = net->prepare(images_u8.slice(0, i, std::min(i + batch, images_u8.size(0))));
    const auto f = net->features(x);
    const auto probs = net->fc2(f).softmax(1).cpu();
    e.stats.add(f.cpu());
    if (features) parts.push_back(f.to(torch::kCPU, torch::kFloat32));
    const auto [top, cls] = probs.max(1);
    e.confident += top.ge(confidence).sum().item<int64_t>();
    const auto counts = torch::bincount(cls, {}, 10);
    for (int c = 0; c < 10; ++c) e.classes[c] += counts[c].item<int64_t>();
    e.n += x.size(0);
  }
  if (features) *features = parts.empty() ? torch::empty({0, models::FmnistClassifierImpl::kFeatures}) : torch::cat(parts).contiguous();
  return e;
}

double fid_fmnist(const FmnistEval& eval, const std::string& reference_npz) {
  if (eval.n < 2) throw Error(fmt::format("FID-FMNIST needs at least 2 samples, got {}", eval.n));
  const auto [mu, sigma] = read_fid_stats(reference_npz);
  if (mu.numel() != eval.stats.dims())
    throw Error(fmt::format("{}: statistics of {} features, the Fashion-MNIST classifier gives {}", reference_npz, mu.numel(), eval.stats.dims()));
  return frechet_distance(eval.stats.mean(), eval.stats.covariance(), to_eigen_vector(mu), to_eigen_matrix(sigma)).fid;
}

MetricProvenance fid_fmnist_provenance(const std::string& classifier, const std::string& reference_npz, int64_t samples) {
  MetricProvenance p;
  p.metric = "fid_fmnist";
  p.implementation = fmt::format("{}: FID-FMNIST (Fashion-MNIST classifier fc1 features, 128 dims; comparable only with itself)",
                                 program_identity());
  p.weights_file = classifier;
  p.weights_sha256 = sha256_file(classifier);
  p.resize_rule = "none: 32x32 samples center-cropped to 28x28 (the 2-pixel padding), uint8/127.5 - 1";
  p.uint8_rule = "model output [-1, 1] -> uint8 as torchvision save_image: clamp((x+1)/2) * 255 + 0.5, truncated";
  p.samples = samples;
  p.reference = reference_npz;
  p.reference_sha256 = sha256_file(reference_npz);
  return p;
}

}  // namespace dc::metrics
