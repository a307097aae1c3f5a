// The model registry (DESIGN.md §3): `model.family` + `preset` name a model; the registry says
// what it is without building it (this header is torch-free, so config validation and `plan` are
// cheap) and builds it (models/model.h). Adding a family = one file under models/families/ (listed
// in models/registry.cpp's table) whose UNet implements models::UNet; nothing downstream (denoiser,
// MACs, runner, CLI, benches) changes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dc::models {

// The family's noise schedule, as its reference code builds it (computed in
// harness/sampling/schedule: betas in double, then the reference's cumprod precision).
struct NoiseSchedule {
  std::string betas = "ddpm_linear";  // ddpm_linear | ldm_linear | scaled_linear | cosine
  int num_timesteps = 1000;
  double beta_start = 1e-4, beta_end = 0.02;
  // "float32": a float32 cumprod of float32 (1 - beta) (the ddim repo's compute_alpha);
  // "float64": cumprod in float64, cast to float32 (ldm and diffusers register_schedule).
  std::string cumprod = "float32";
};

struct ModelInfo {
  std::string family, preset;
  std::string description;             // what it is and which upstream config it follows
  int num_skips = 0;                   // S; DeepCache's k is in [0, S-1]
  std::vector<int64_t> sample_shape;   // [C, H, W] the sampler works on (latents for LDM/SD)
  std::vector<int64_t> image_shape;    // [C, H, W] of the decoded image
  std::vector<std::string> tap_names;  // valid similarity taps (up blocks, execution order)
  NoiseSchedule schedule;
  std::string default_sampler;         // a name in harness/sampling's registry
  std::string conditioning = "none";   // none | class | text
  int num_classes = 0;                 // class: real classes, labelled 0..num_classes-1
  int unconditional_class = -1;        // class: the label of classifier-free guidance's unconditional row
  std::string weights_hint;            // where real weights come from (for messages)
  // Pixels: image sides `model.image_size` may take are multiples of this (the first stage's factor
  // times the UNet's 2^(levels-1)); 0: the preset's size only.
  int image_size_multiple = 0;
};

// Every family, in the order `--help` lists them.
std::vector<std::string> family_names();
// Presets of a family; throws dc::Error naming the family and listing the known ones.
std::vector<std::string> preset_names(const std::string& family);
// Throws dc::Error naming the unknown family or preset and listing the valid names. `image_size`
// (pixels, 0: the preset's) resizes the sample and image shapes of families that allow it
// (image_size_multiple); a dc::Error names model.image_size otherwise.
ModelInfo model_info(const std::string& family, const std::string& preset, int image_size = 0);

// The preset's info at another image side (`image_size` > 0; see model_info): torch-free
// (models/model_info.cpp), shared by the registry and the fuzz build's registry table.
ModelInfo resize_model_info(ModelInfo info, int image_size, int64_t latent_factor);

// Every preset's ModelInfo (+ its family's latent factor) as JSON: the table the torch-free fuzz
// build reads instead of building models (fuzz/registry.json; a test keeps it current).
std::string registry_table_json();

// One entry of that table and back (torch-free, models/model_info.cpp): every ModelInfo field.
struct RegistryEntry {
  ModelInfo info;
  int64_t latent_factor = 1;
};
std::string registry_table_json(const std::vector<RegistryEntry>& entries);
std::vector<RegistryEntry> parse_registry_table(const std::string& json_text);

}  // namespace dc::models
