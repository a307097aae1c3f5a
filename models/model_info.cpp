// The torch-free part of the registry (models/registry.h): resizing a preset's info, and the
// registry table's JSON form (written by registry.cpp, read by the fuzz build).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "models/registry.h"

namespace dc::models {

ModelInfo resize_model_info(ModelInfo i, int image_size, int64_t latent_factor) {
  if (i.image_size_multiple == 0)
    throw Error(fmt::format("model.image_size: the {} family generates at its preset's size ({}x{}); leave image_size out", i.family,
                            i.image_shape[1], i.image_shape[2]));
  if (image_size < i.image_size_multiple || image_size % i.image_size_multiple != 0 || image_size > 4096)
    throw Error(fmt::format("model.image_size: {} must be a multiple of {} between {} and 4096 (the first stage's factor {} times the UNet's "
                            "three downsamplings; the preset's is {})",
                            image_size, i.image_size_multiple, i.image_size_multiple, latent_factor, i.image_shape[1]));
  const int64_t latent = image_size / latent_factor;
  i.description += fmt::format(", resized: {}x{} images from {}x{}x{} samples", image_size, image_size, i.sample_shape[0], latent, latent);
  i.sample_shape[1] = i.sample_shape[2] = latent;
  i.image_shape[1] = i.image_shape[2] = image_size;
  return i;
}

namespace {

nlohmann::json to_json(const ModelInfo& i, int64_t latent_factor) {
  return {{"family", i.family}, {"preset", i.preset}, {"description", i.description}, {"num_skips", i.num_skips},
          {"sample_shape", i.sample_shape}, {"image_shape", i.image_shape}, {"tap_names", i.tap_names},
          {"schedule", {{"betas", i.schedule.betas}, {"num_timesteps", i.schedule.num_timesteps}, {"beta_start", i.schedule.beta_start},
                        {"beta_end", i.schedule.beta_end}, {"cumprod", i.schedule.cumprod}}},
          {"default_sampler", i.default_sampler}, {"conditioning", i.conditioning}, {"num_classes", i.num_classes},
          {"unconditional_class", i.unconditional_class}, {"weights_hint", i.weights_hint},
          {"image_size_multiple", i.image_size_multiple}, {"latent_factor", latent_factor}};
}

RegistryEntry from_json(const nlohmann::json& e) {
  RegistryEntry x;
  ModelInfo& i = x.info;
  e.at("family").get_to(i.family);
  e.at("preset").get_to(i.preset);
  e.at("description").get_to(i.description);
  e.at("num_skips").get_to(i.num_skips);
  e.at("sample_shape").get_to(i.sample_shape);
  e.at("image_shape").get_to(i.image_shape);
  e.at("tap_names").get_to(i.tap_names);
  const auto& s = e.at("schedule");
  s.at("betas").get_to(i.schedule.betas);
  s.at("num_timesteps").get_to(i.schedule.num_timesteps);
  s.at("beta_start").get_to(i.schedule.beta_start);
  s.at("beta_end").get_to(i.schedule.beta_end);
  s.at("cumprod").get_to(i.schedule.cumprod);
  e.at("default_sampler").get_to(i.default_sampler);
  e.at("conditioning").get_to(i.conditioning);
  e.at("num_classes").get_to(i.num_classes);
  e.at("unconditional_class").get_to(i.unconditional_class);
  e.at("weights_hint").get_to(i.weights_hint);
  e.at("image_size_multiple").get_to(i.image_size_multiple);
  e.at("latent_factor").get_to(x.latent_factor);
  return x;
}

}  // namespace

std::string registry_table_json(const std::vector<RegistryEntry>& entries) {
  nlohmann::json table = nlohmann::json::array();
  for (const auto& e : entries) table.push_back(to_json(e.info, e.latent_factor));
  return table.dump(1) + "\n";
}

std::vector<RegistryEntry> parse_registry_table(const std::string& json_text) {
  std::vector<RegistryEntry> out;
  for (const auto& e : nlohmann::json::parse(json_text)) out.push_back(from_json(e));
  return out;
}

}  // namespace dc::models
