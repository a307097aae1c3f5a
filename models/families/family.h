// One model family of the registry (models/registry.h): its presets, their description, how its
// UNet, first stage and text encoder are built and loaded, how samples become images. Each family
// is one file under models/families/ defining its entry; models/registry.cpp lists them. Only the
// registry and the families include this.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"
#include "models/registry.h"

namespace dc::models {

// One registry entry per family.
struct Family {
  std::string name;
  std::vector<std::string> presets;
  std::function<ModelInfo(const std::string& preset)> info;
  // The UNet of a preset; latent_size > 0: at that latent side instead of the preset's (families
  // with ModelInfo::image_size_multiple).
  std::function<std::shared_ptr<UNet>(const std::string& preset, int64_t latent_size)> make_unet;
  // Strict, from a safetensors file (+ an optional separate first-stage file).
  std::function<void(Model&, const std::string& path, const std::string& first_stage_path)> load;
  // Latent families: the first stage and how it turns samples into images (none: pixels).
  std::function<std::shared_ptr<torch::nn::Module>(const std::string& preset)> make_first_stage;
  std::function<torch::Tensor(const Model&, const torch::Tensor&)> to_images;
  // Text families: the text encoder the runner turns prompts into context with.
  std::function<std::shared_ptr<torch::nn::Module>(const std::string& preset)> make_cond_stage;
  std::function<torch::Tensor(const Model&, const std::vector<std::string>& prompts)> encode_text;
  int64_t latent_factor = 1;  // pixels per sample element (the first stage's downsampling)
};

Family ddpm_family();  // families/ddpm.cpp
Family ldm_family();   // families/ldm.cpp
Family sd_family();    // families/sd.cpp

}  // namespace dc::models
