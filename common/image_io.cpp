#include "common/image_io.h"

#include <png.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/png_core.h"

namespace dc::image {

torch::Tensor to_uint8(const torch::Tensor& x) {
  const torch::Tensor v = torch::clamp((x.to(torch::kFloat32) + 1) / 2, 0, 1);
  return torch::clamp(v * 255 + 0.5, 0, 255).to(torch::kUInt8);
}

torch::Tensor to_uint8_truncated(const torch::Tensor& x) {
  // diffusers' postprocess in the pipeline's dtype ((x / 2 + 0.5).clamp(0, 1)), .float(), then numpy's
  // float32 multiply and the cast, which truncates toward zero.
  return (torch::clamp(x.to(torch::kFloat32) / 2 + 0.5, 0, 1) * 255).to(torch::kUInt8);
}

torch::Tensor make_grid(const torch::Tensor& images, int64_t nrow, int64_t padding) {
  TORCH_CHECK(images.dim() == 4, "make_grid: need [N, C, H, W], got ", images.sizes());
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2) + padding, w = images.size(3) + padding;
  const int64_t xmaps = std::min(nrow, n), ymaps = (n + xmaps - 1) / xmaps;
  torch::Tensor grid = torch::zeros({c, ymaps * h + padding, xmaps * w + padding}, images.options());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = i / xmaps, xx = i % xmaps;
    grid.narrow(1, y * h + padding, h - padding).narrow(2, xx * w + padding, w - padding).copy_(images[i]);
  }
  return grid;
}

// libpng's simplified API (png_image): no setjmp/longjmp across C++ objects.
std::string encode_png(const torch::Tensor& chw, const std::string& what) {
  TORCH_CHECK(chw.dim() == 3 && (chw.size(0) == 1 || chw.size(0) == 3) && chw.scalar_type() == torch::kUInt8,
              "write_png: need [1|3, H, W] uint8, got ", chw.sizes(), " ", chw.scalar_type());
  const torch::Tensor hwc = chw.permute({1, 2, 0}).contiguous().cpu();
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(hwc.size(1));
  image.height = static_cast<png_uint_32>(hwc.size(0));
  image.format = hwc.size(2) == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&image, nullptr, &size, 0, hwc.data_ptr<uint8_t>(), 0, nullptr))
    throw Error(fmt::format("{}: cannot encode PNG: {}", what, image.message));
  std::string buffer(size, '\0');
  if (!png_image_write_to_memory(&image, buffer.data(), &size, 0, hwc.data_ptr<uint8_t>(), 0, nullptr))
    throw Error(fmt::format("{}: cannot encode PNG: {}", what, image.message));
  buffer.resize(size);
  return buffer;
}

void write_png(const std::string& path, const torch::Tensor& chw) { write_file_atomically(path, encode_png(chw, path)); }

torch::Tensor read_png(const std::string& path) {
  Pixels p = decode_png_file(path);
  // One copy out of p's buffer, into CHW order (contiguous() alone would return a view of p's pixels
  // for one channel, whose permute is already contiguous).
  return torch::from_blob(p.hwc.data(), {p.height, p.width, p.channels}, torch::kUInt8).permute({2, 0, 1}).clone(torch::MemoryFormat::Contiguous);
}

}  // namespace dc::image
