// The torch-free part of the registry (models/registry.h): resizing a preset's info.
#include <fmt/format.h>

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

}  // namespace dc::models
