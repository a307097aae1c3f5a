#include "models/families/family.h"

#include <filesystem>
#include <fstream>
#include <cstdlib>
#include <functional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/paths.h"
#include "models/autoencoder.h"
#include "models/ddpm_unet.h"
#include "models/clip_text.h"
#include "models/openai_unet.h"
#include "models/sd_diffusers.h"
#include "models/model.h"
#include "models/weights/safetensors.h"
#include "models/weights/strict_loader.h"

namespace dc::models {

// ---- ddpm: the ermongroup/ddim UNet (DeepCache experiments/ddpm) -------------------------------
Family ddpm_family() {
  Family f;
  f.name = "ddpm";
  f.presets = DdpmConfig::preset_names();
  f.info = [](const std::string& preset) {
    const DdpmConfig c = DdpmConfig::preset(preset);
    ModelInfo i;
    i.family = "ddpm";
    i.preset = preset;
    i.description = fmt::format("DDPM UNet (ermongroup/ddim models/diffusion.py), {}", c.describe());
    i.num_skips = static_cast<int>(c.num_skips());
    i.sample_shape = {c.in_channels, c.resolution, c.resolution};
    i.image_shape = i.sample_shape;
    i.tap_names = c.up_block_names();
    i.schedule = {"ddpm_linear", 1000, 1e-4, 0.02, "float32"};  // ddim repo configs: linear 1e-4..0.02, T = 1000
    i.default_sampler = "ddim";
    i.weights_hint = preset == "fmnist" ? "the repository ships it as weights/fmnist/ddpm_ema.safetensors; scripts/train_fmnist.sh "
                                          "remakes it (docs/fmnist.md)"
                                        : "the released checkpoint: scripts/fetch_weights.sh on a machine with internet, "
                                          "then scripts/convert_ckpt_to_safetensors.py";
    return i;
  };
  f.make_unet = [](const std::string& preset, int64_t) { return std::make_shared<DdpmUNetImpl>(DdpmConfig::preset(preset)); };
  f.load = [](Model& m, const std::string& path, const std::string& first_stage_path) {
    if (!first_stage_path.empty()) throw Error("model.first_stage_weights: the ddpm family has no first stage");
    weights::LoadOptions lo;
    lo.module_name = "DDPM UNet preset '" + m.info.preset + "'";
    weights::load_strict(*m.unet, st::SafetensorsFile::open(path), lo);
  };
  return f;
}

}  // namespace dc::models
