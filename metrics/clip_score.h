// CLIP score as the DeepCache paper reports it (experiments/clip_score.py with open_clip ViT-g-14,
// torchmetrics' definition): per (image i, prompt i) max(100 * cos(image_features, text_features), 0),
// averaged over the pairs.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "metrics/provenance.h"
#include "models/clip.h"
#include "models/clip_tokenizer.h"

namespace dc::metrics {

// [N] per pair; image_features and text_features [N, D] (unnormalised).
torch::Tensor clip_score_pairs(const torch::Tensor& image_features, const torch::Tensor& text_features);
// [Ni, Nt]: every image against every prompt, same formula.
torch::Tensor clip_score_matrix(const torch::Tensor& image_features, const torch::Tensor& text_features);

// One prompt per line: common/prompts.h's read_prompt_file (empty lines and non-UTF-8 are errors
// naming the file and line).
std::vector<std::string> read_prompts(const std::string& path);

class ClipScorer {
 public:
  ClipScorer(models::ClipModel model, models::ClipTokenizer tokenizer, torch::Device device);
  // uint8 HWC RGB images -> [N, D] features (preprocessed as open_clip's eval transform).
  torch::Tensor image_features(const std::vector<torch::Tensor>& images, int64_t batch);
  // Prompts -> [N, D] features (open_clip tokens: pad 0, truncated with the end token kept).
  torch::Tensor text_features(const std::vector<std::string>& prompts, int64_t batch);
  models::ClipModel& model() { return model_; }

 private:
  models::ClipModel model_;
  models::ClipTokenizer tokenizer_;
  torch::Device device_;
};

// A CLIP model preset with its weights loaded strictly (fp16 files are converted to float32).
models::ClipModel load_clip(const std::string& preset, const std::string& weights, const torch::Device& device);
// The same for an open_clip model config JSON (`model_config`, when not empty) instead of the preset.
models::ClipModel load_clip_model(const std::string& preset, const std::string& model_config, const std::string& weights,
                                  const torch::Device& device);
// The side of the images that model sees (its vision tower's image_size).
int64_t clip_image_size(const std::string& preset, const std::string& model_config);
// The provenance's `implementation` of a CLIP score by that model.
std::string clip_score_implementation(const std::string& preset, const std::string& model_config);

struct ClipScoreResult {
  std::vector<double> per_pair;
  double mean = 0.0;
  MetricProvenance provenance;
};

// The images of a folder (sorted as pytorch-fid lists them) paired in order with the lines of a
// prompts file; their counts must agree.
ClipScoreResult clip_score_folder(ClipScorer& scorer, const std::string& images_dir, const std::string& prompts_file, int64_t batch);

}  // namespace dc::metrics
