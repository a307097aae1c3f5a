#include "common/png_core.h"

#include <png.h>

#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::image {
namespace {

// After a successful png_image_begin_read_*: checks the size, then decodes (or frees and throws).
Pixels finish(png_image& image, const std::string& what, int64_t max_pixels) {
  const int64_t h = image.height, w = image.width;
  if (h <= 0 || w <= 0 || h > max_pixels / w) {
    png_image_free(&image);
    throw Error(fmt::format("{}: PNG declares {} x {} pixels (more than {} in all): damaged, or not an image this program reads", what, w,
                            h, max_pixels));
  }
  const bool grey = (image.format & PNG_FORMAT_FLAG_COLOR) == 0;
  image.format = grey ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  Pixels p;
  p.height = h;
  p.width = w;
  p.channels = grey ? 1 : 3;
  p.hwc.resize(static_cast<std::size_t>(h * w * p.channels));
  if (!png_image_finish_read(&image, nullptr, p.hwc.data(), 0, nullptr)) {  // frees the image on failure too
    const std::string msg = image.message;
    png_image_free(&image);
    throw Error(fmt::format("{}: damaged PNG: {}", what, msg));
  }
  return p;
}

png_image fresh() {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  return image;
}

}  // namespace

PngHeader read_png_header(const std::string& path, int64_t max_pixels) {
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  unsigned char b[33] = {0};
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot be opened", path));
  in.read(reinterpret_cast<char*>(b), sizeof b);
  const auto got = in.gcount();
  if (got < 8 || std::memcmp(b, sig, 8) != 0)
    throw Error(fmt::format("{}: not a PNG file ({}; a PNG starts with \\x89PNG)", path, got < 8 ? "shorter than a PNG signature" : "wrong signature"));
  const auto be32 = [&](int at) { return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3]; };
  if (got < 33 || be32(8) != 13 || std::memcmp(b + 12, "IHDR", 4) != 0)
    throw Error(fmt::format("{}: damaged PNG: no IHDR chunk after the signature{}", path, got < 33 ? " (the file ends first)" : ""));
  PngHeader h;
  h.width = be32(16);
  h.height = be32(20);
  h.bit_depth = b[24];
  h.colour_type = b[25];
  if (h.width == 0 || h.height == 0 || h.width > (int64_t{1} << 31) - 1 || h.height > (int64_t{1} << 31) - 1 || h.height > max_pixels / h.width)
    throw Error(fmt::format("{}: PNG declares {} x {} pixels (at most {} in all): damaged, or not an image this program reads", path, h.width,
                            h.height, max_pixels));
  const int d = h.bit_depth;
  bool ok = false;
  switch (h.colour_type) {
    case 0: ok = d == 1 || d == 2 || d == 4 || d == 8 || d == 16; break;  // grey
    case 3: ok = d == 1 || d == 2 || d == 4 || d == 8; break;             // palette
    case 2: case 4: case 6: ok = d == 8 || d == 16; break;                // RGB, grey + alpha, RGBA
    default: break;
  }
  if (!ok) throw Error(fmt::format("{}: damaged PNG: bit depth {} with colour type {} does not exist", path, d, h.colour_type));
  return h;
}

Pixels decode_png_file(const std::string& path, int64_t max_pixels) {
  png_image image = fresh();
  if (!png_image_begin_read_from_file(&image, path.c_str())) throw Error(fmt::format("{}: cannot read PNG: {}", path, image.message));
  return finish(image, path, max_pixels);
}

Pixels decode_png_memory(const uint8_t* data, std::size_t size, const std::string& what, int64_t max_pixels) {
  png_image image = fresh();
  if (!png_image_begin_read_from_memory(&image, data, size)) throw Error(fmt::format("{}: cannot read PNG: {}", what, image.message));
  return finish(image, what, max_pixels);
}

}  // namespace dc::image
