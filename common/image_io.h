// Images: model output in [-1, 1] -> uint8 the way the reference runners save them, grids like
// torchvision.utils.make_grid, and PNG files written atomically.
#pragma once
#include <torch/torch.h>

#include <string>

namespace dc::image {

// clamp((x + 1) / 2, 0, 1), then torchvision save_image's rounding: uint8(clamp(v*255 + 0.5, 0, 255)).
// x: [N, C, H, W] float -> [N, C, H, W] uint8.
torch::Tensor to_uint8(const torch::Tensor& x);
// [-1, 1] -> uint8 as DeepCache's SD script (experiments/generate.py) converts the diffusers
// pipeline's numpy output: (clamp(x / 2 + 0.5, 0, 1) * 255).astype(uint8), truncated (255 only at 1).
torch::Tensor to_uint8_truncated(const torch::Tensor& x);

// torchvision make_grid (padding 2, pad value 0): [N, C, H, W] uint8 -> [C, H', W'] uint8.
torch::Tensor make_grid(const torch::Tensor& images, int64_t nrow = 8, int64_t padding = 2);

// The PNG file's bytes of a [C, H, W] uint8 image (C = 1 grey, 3 RGB); `what` names it in errors.
std::string encode_png(const torch::Tensor& chw_uint8, const std::string& what = "image");

// Writes a [C, H, W] uint8 image (C = 1 grey, 3 RGB) as PNG, atomically. Throws dc::Error.
void write_png(const std::string& path, const torch::Tensor& chw_uint8);

// Reads a PNG into [C, H, W] uint8 (grey or RGB; alpha dropped). Throws dc::Error.
torch::Tensor read_png(const std::string& path);

}  // namespace dc::image
