// What conditions a run's batches (models::ModelInfo::conditioning): class labels (each sample's
// from (seed, i), or balanced i mod classes, or the released stream's), text (the prompts of the
// batch's samples through the model's text encoder, inside the batch's time), or nothing; with
// classifier-free guidance, the unconditional half (the unconditional class row, or the negative
// prompt's context, encoded once). Batched guidance doubles the UNet's batch (guided()).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "harness/config.h"
#include "models/model.h"

namespace dc::harness {

class Conditioner {
 public:
  // `prompts`: the run's prompt file's lines (text families; empty: conditioning.prompt for every sample).
  // Text families encode the negative prompt here, which checks the tokenizer before any sampling.
  Conditioner(const RunSpec& spec, const models::Model& model, const torch::Device& device, std::vector<std::string> prompts);

  struct Batch {
    torch::Tensor cond, uncond;        // on the device; undefined when none
    torch::Tensor labels;              // class labels on the CPU (class families), for the results
    std::vector<std::string> prompts;  // text families
  };
  // Samples [start, start + b); `stream_labels`: the released stream's labels, when it draws them.
  Batch make(int64_t start, int64_t b, const torch::Tensor& stream_labels) const;
  double guidance() const { return guidance_; }
  int64_t guided() const { return guided_; }  // 2 under batched guidance, else 1
  bool class_labels() const { return kind_ == "class"; }

 private:
  std::vector<std::string> prompts_of(int64_t start, int64_t b) const;
  torch::Tensor labels_for(int64_t start, int64_t b) const;

  const models::Model& model_;
  torch::Device device_;
  std::string kind_;  // none | class | text
  double guidance_ = 1.0;
  int64_t guided_ = 1;
  std::string classes_, prompt_;
  uint64_t seed_ = 0;
  int64_t num_classes_ = 0, unconditional_class_ = -1;
  std::vector<std::string> prompts_;
  torch::Tensor negative_context_;
};

}  // namespace dc::harness
