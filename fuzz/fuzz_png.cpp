// PNG through libpng's simplified API as list_images/FID/CLIP-score folders are read: the size check
// before allocation, and every format libpng converts to 8-bit grey or RGB (palette, 16-bit, alpha,
// interlace, gamma chunks). Crashes inside libpng itself would show here too (docs/reliability.md).
#include "common/error.h"
#include "common/png_core.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto p = dc::image::decode_png_memory(data, size, "in.png", int64_t{1} << 22);
    if (p.hwc.size() != static_cast<size_t>(p.height * p.width * p.channels) || (p.channels != 1 && p.channels != 3)) __builtin_trap();
  } catch (const dc::Error&) {
  }
  return 0;
}
