// CLIP image preprocessing exactly as open_clip's eval transform runs it on a PIL image
// (torchvision Resize(S, BICUBIC) -> CenterCrop(S) -> ToTensor -> Normalize(mean, std)):
//  - the resize is PIL's own (Pillow libImaging/Resample.c): separable bicubic with a = -0.5, the
//    filter widened by the scale when shrinking (antialiasing), coefficients normalised and turned
//    into 22-bit fixed point, horizontal pass first, each pass rounded and clipped to uint8;
//  - the shortest side becomes S, the other int(S * long / short) (truncated); an image whose
//    shortest side already is S is not resampled;
//  - crop offsets int(round((h - S) / 2)) with Python's round (half to even).
// Images are uint8 HWC (RGB), as PIL holds them.
#pragma once
#include <torch/torch.h>

#include <array>
#include <string>

namespace dc::metrics {

// PIL Image.resize(size, Image.BICUBIC) of a uint8 [H, W, C] image (C = 1: mode L, 3: RGB).
torch::Tensor pil_bicubic_resize(const torch::Tensor& hwc, int64_t out_h, int64_t out_w);

// torchvision Resize(size) output size for an image of h x w: (new_h, new_w).
std::pair<int64_t, int64_t> shortest_side_size(int64_t h, int64_t w, int64_t size);

torch::Tensor resize_shortest_side(const torch::Tensor& hwc, int64_t size);
torch::Tensor center_crop(const torch::Tensor& hwc, int64_t size);

struct ClipNormalization {
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};  // OpenAI CLIP (open_clip's default)
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
};

// uint8 HWC image -> float [3, S, S]: resize, crop, /255, normalise.
torch::Tensor clip_pixel_values(const torch::Tensor& hwc, int64_t size, const ClipNormalization& norm = {});

// A pipeline's float image in [0, 1] (HWC) to uint8 as DeepCache's experiments/generate.py stores
// it: (x * 255).astype(uint8) - truncation toward zero, not rounding.
torch::Tensor float_image_to_uint8_truncating(const torch::Tensor& x);

// What the provenance records say about this preprocessing.
std::string clip_resize_rule(int64_t size);

}  // namespace dc::metrics
