// PNG decoding without LibTorch (fuzzed: fuzz/fuzz_png.cpp; common/image_io.h wraps it in tensors).
// libpng's simplified API (png_image): grey or RGB 8-bit output whatever the file's format (palette,
// 16-bit, alpha, interlaced), no setjmp/longjmp across C++ objects. The header's size is checked
// before the pixels are allocated: a 20-byte file may declare 2^31 x 2^31 pixels.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dc::image {

struct Pixels {
  int64_t height = 0, width = 0, channels = 0;  // channels: 1 (grey) or 3 (RGB; alpha dropped)
  std::vector<uint8_t> hwc;                     // height * width * channels bytes
};

// Images larger than this are refused before decoding (16384 x 16384 pixels: far beyond any
// dataset the paper's metrics read, and 768 MiB as RGB).
constexpr int64_t kMaxPngPixels = int64_t{1} << 28;

// The signature and the IHDR chunk only (33 bytes): folders are checked with it before any model is
// loaded. Throws dc::Error naming the file: not a PNG, a damaged header, zero or too many pixels,
// a bit depth / colour type pair the PNG standard does not have.
struct PngHeader {
  int64_t width = 0, height = 0;
  int bit_depth = 0, colour_type = 0;
};
PngHeader read_png_header(const std::string& path, int64_t max_pixels = kMaxPngPixels);

// Throws dc::Error naming `path` (or `what`).
Pixels decode_png_file(const std::string& path, int64_t max_pixels = kMaxPngPixels);
Pixels decode_png_memory(const uint8_t* data, std::size_t size, const std::string& what, int64_t max_pixels = kMaxPngPixels);

}  // namespace dc::image
