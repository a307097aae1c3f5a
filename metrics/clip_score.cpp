#include "metrics/clip_score.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/prompts.h"
#include "metrics/clip_preprocess.h"
#include "metrics/fid_pipeline.h"
#include "metrics/sha256.h"
#include "models/weights/strict_loader.h"

namespace dc::metrics {

namespace {
torch::Tensor unit(const torch::Tensor& f) { return f / f.norm(2, {-1}, true); }
}  // namespace

torch::Tensor clip_score_pairs(const torch::Tensor& image_features, const torch::Tensor& text_features) {
  if (image_features.dim() != 2 || image_features.sizes() != text_features.sizes())
    throw Error(fmt::format("CLIP score: image features {} and text features {} must both be [N, D]",
                            fmt::join(image_features.sizes().vec(), "x"), fmt::join(text_features.sizes().vec(), "x")));
  return (100 * (unit(image_features) * unit(text_features)).sum(-1)).clamp_min(0);
}

torch::Tensor clip_score_matrix(const torch::Tensor& image_features, const torch::Tensor& text_features) {
  return (100 * torch::matmul(unit(image_features), unit(text_features).t())).clamp_min(0);
}

std::vector<std::string> read_prompts(const std::string& path) { return read_prompt_file(path); }

ClipScorer::ClipScorer(models::ClipModel model, models::ClipTokenizer tokenizer, torch::Device device)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), device_(device) {
  model_->eval();
  model_->to(device_);
}

torch::Tensor ClipScorer::image_features(const std::vector<torch::Tensor>& images, int64_t batch) {
  if (batch < 1) throw Error(fmt::format("--batch-size must be at least 1, got {}", batch));
  torch::NoGradGuard ng;
  const int64_t size = model_->config().vision.image_size;
  std::vector<torch::Tensor> feats, pending;
  auto flush = [&] {
    if (pending.empty()) return;
    feats.push_back(model_->encode_image(torch::stack(pending).to(device_)).cpu());
    pending.clear();
  };
  for (const auto& img : images) {
    pending.push_back(clip_pixel_values(img, size));
    if (static_cast<int64_t>(pending.size()) == batch) flush();
  }
  flush();
  return torch::cat(feats);
}

torch::Tensor ClipScorer::text_features(const std::vector<std::string>& prompts, int64_t batch) {
  if (batch < 1) throw Error(fmt::format("--batch-size must be at least 1, got {}", batch));
  torch::NoGradGuard ng;
  const int ctx = static_cast<int>(model_->config().text.context_length);
  std::vector<torch::Tensor> feats;
  for (size_t i = 0; i < prompts.size(); i += static_cast<size_t>(batch)) {
    std::vector<int64_t> flat;
    const size_t end = std::min(prompts.size(), i + static_cast<size_t>(batch));
    for (size_t j = i; j < end; ++j) {
      const auto ids = tokenizer_.tokenize(prompts[j], ctx, models::ClipTokenizer::Padding::Zero);
      flat.insert(flat.end(), ids.begin(), ids.end());
    }
    const auto ids = torch::tensor(flat, torch::kInt64).view({static_cast<int64_t>(end - i), ctx});
    feats.push_back(model_->encode_text(ids.to(device_)).cpu());
  }
  return torch::cat(feats);
}

models::ClipModel load_clip(const std::string& preset, const std::string& weights_path, const torch::Device& device) {
  models::ClipModel model(models::ClipConfig::preset(preset));
  weights::LoadOptions opt;
  opt.mapping = models::clip_checkpoint_mapping();
  opt.module_name = "CLIP " + preset;
  weights::load_strict(*model, st::SafetensorsFile::open(weights_path), opt);
  model->eval();
  model->to(device);
  return model;
}

namespace {
nlohmann::json read_model_config(const std::string& model_config) {
  std::ifstream in(model_config);
  if (!in) throw Error(fmt::format("{}: CLIP model config not found", model_config));
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(fmt::format("{}: not a JSON object (an open_clip model config)", model_config));
  return j;
}
}  // namespace

models::ClipModel load_clip_model(const std::string& preset, const std::string& model_config, const std::string& weights_path,
                                  const torch::Device& device) {
  if (model_config.empty()) return load_clip(preset, weights_path, device);
  models::ClipModel model(models::ClipConfig::from_open_clip(read_model_config(model_config), model_config));
  weights::LoadOptions lo;
  lo.mapping = models::clip_checkpoint_mapping();
  lo.module_name = "CLIP (" + model_config + ")";
  weights::load_strict(*model, st::SafetensorsFile::open(weights_path), lo);
  model->eval();
  model->to(device);
  return model;
}


int64_t clip_image_size(const std::string& preset, const std::string& model_config) {
  return model_config.empty() ? models::ClipConfig::preset(preset).vision.image_size
                              : models::ClipConfig::from_open_clip(read_model_config(model_config), model_config).vision.image_size;
}

std::string clip_score_implementation(const std::string& preset, const std::string& model_config) {
  return fmt::format("{}: CLIP {} (open_clip v2.23 / openai CLIP port), score max(100 cos, 0) per (image, prompt) pair, mean",
                     program_identity(), model_config.empty() ? preset : "open_clip config " + model_config);
}

ClipScoreResult clip_score_folder(ClipScorer& scorer, const std::string& images_dir, const std::string& prompts_file, int64_t batch) {
  const auto files = list_images(images_dir);
  const auto prompts = read_prompts(prompts_file);
  if (files.size() != prompts.size())
    throw Error(fmt::format("{} has {} images but {} has {} prompts: the i-th image is scored against the i-th prompt", images_dir,
                            files.size(), prompts_file, prompts.size()));
  std::vector<torch::Tensor> images;
  std::vector<torch::Tensor> img_feats;
  for (const auto& f : files) {
    images.push_back(load_rgb(f).permute({1, 2, 0}).contiguous());  // [3, H, W] -> HWC
    if (static_cast<int64_t>(images.size()) == batch) {
      img_feats.push_back(scorer.image_features(images, batch));
      images.clear();
    }
  }
  if (!images.empty()) img_feats.push_back(scorer.image_features(images, batch));
  const auto scores = clip_score_pairs(torch::cat(img_feats), scorer.text_features(prompts, batch)).to(torch::kDouble);
  ClipScoreResult r;
  r.per_pair.assign(scores.data_ptr<double>(), scores.data_ptr<double>() + scores.numel());
  r.mean = scores.mean().item<double>();
  r.provenance.metric = "clip_score";
  r.provenance.samples = scores.numel();
  r.provenance.resize_rule = clip_resize_rule(scorer.model()->config().vision.image_size);
  r.provenance.uint8_rule = "images read from PNG files as stored (uint8)";
  r.provenance.reference = prompts_file;
  r.provenance.reference_sha256 = sha256_file(prompts_file);
  return r;
}

}  // namespace dc::metrics
