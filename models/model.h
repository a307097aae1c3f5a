// The bundle the registry builds for `model.family` + `preset` (DESIGN.md §3): the UNet behind
// models::UNet, its description (models/registry.h) and, for latent families, the first stage
// that turns samples into images. Weight loading (the accepted checkpoint dialects and their key
// mappings) is the family's business, done here once.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "models/clip_tokenizer.h"
#include "models/registry.h"
#include "models/unet.h"

namespace dc::models {

struct Model {
  ModelInfo info;
  std::shared_ptr<UNet> unet;
  std::shared_ptr<torch::nn::Module> first_stage;  // latent families (VQ-f4, KL-f8); null for pixels
  std::shared_ptr<torch::nn::Module> cond_stage;   // text families: the text encoder (SD: CLIP ViT-L/14's), run once per batch
  std::shared_ptr<const ClipTokenizer> tokenizer;  // text families: the cond stage's tokenizer (null: none found)
  std::string tokenizer_path;                       // the folder it was read from
  std::string weights_note;  // "random init (untrained)" or the file loaded
  // Samples [B, sample_shape] -> images [B, image_shape], nominally [-1, 1] (identity for
  // pixel-space families; the first stage's decode for latent ones). Move first_stage with unet.
  torch::Tensor to_images(const torch::Tensor& samples) const;
  // Text families: prompts -> the UNet's context [B, tokens, width] (tokenised as the family's
  // reference pipeline does, through cond_stage on its device). dc::Error naming model.tokenizer
  // when no tokenizer was found, or for a family that takes no text.
  torch::Tensor encode_text(const std::vector<std::string>& prompts) const;
};

// What build_model may take besides the weights.
struct ModelOptions {
  int image_size = 0;     // pixels; 0: the preset's (families with ModelInfo::image_size_multiple)
  // Text families: a folder with vocab.json and merges.txt. Empty: the weights folder's tokenizer/
  // (a diffusers folder), else $DEEPCACHE_CLIP_TOKENIZER, else none (encode_text then fails).
  std::string tokenizer;
};

// Builds the model; `weights` is a safetensors file or "random" (seeded random init: the same
// network in every process, so shards and resumed runs agree). Strict loading: every missing,
// unexpected or mis-shaped key is one dc::Error naming the file. The model is in eval mode on
// the CPU. Throws dc::Error for an unknown family/preset or a missing file.
// `first_stage_weights` (optional): a separate first-stage checkpoint for what the main file
// lacks (LDM: the vq-f4 codebook `quantize.embedding.weight`, absent from one f4 release).
Model build_model(const std::string& family, const std::string& preset, const std::string& weights,
                  const std::string& first_stage_weights = "", const ModelOptions& options = {});

// The UNet alone with random weights (the one build_model makes first: the same seed), in eval mode
// on the CPU: what counting MACs needs, without the first stage and text encoder (SD1.5: 200 M
// parameters fewer to initialise).
std::shared_ptr<UNet> build_unet(const std::string& family, const std::string& preset, int image_size = 0);

// The same bundle from modules the caller built (tests: a family's tiny reference configs), loaded
// by `info.family`'s own loader from `weights` ("random": left as built).
Model assemble_model(const ModelInfo& info, std::shared_ptr<UNet> unet, std::shared_ptr<torch::nn::Module> first_stage,
                     const std::string& weights, const std::string& first_stage_weights = "",
                     std::shared_ptr<torch::nn::Module> cond_stage = nullptr, const std::string& tokenizer = "");

// 32-bit outputs of the CPU generator that PyTorch's default initialisation consumes while it
// builds `root` (Python and C++ frontends alike): one per element of every convolution and linear
// weight and bias (kaiming_uniform_, uniform_), one per element of an embedding (normal_; 16 more
// when the count is not a multiple of 16: normal_fill redraws the tail), none for norms.
int64_t default_init_draws(const torch::nn::Module& root);

// What a reference script's construction of this bundle consumes before it loads the checkpoint:
// default_init_draws of the UNet (with its conditioner) and of the first stage, plus a VQ
// codebook's second draw (taming's VectorQuantizer2 re-initialises it with uniform_). Measured
// against python3-torch building DeepCache's released LDM modules (tests/test_ldm_unet.cpp).
// Used by `samples.seed_mode: released` (harness/sampling/released_stream.h).
int64_t reference_init_draws(const Model& m);

}  // namespace dc::models
