#include "metrics/clip_preprocess.h"

#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::metrics {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Resample.c PRECISION_BITS

double bicubic(double x) {  // Resample.c bicubic_filter, a = -0.5
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Resample.c precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size).
struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;   // per output: xmin, xmax (count)
  std::vector<int32_t> kk;   // per output: ksize fixed-point weights
};

Coeffs precompute(int in_size, int out_size) {
  const double support_base = 2.0;  // bicubic support
  double scale = static_cast<double>(in_size) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = support_base * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(2 * out_size);
  c.kk.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[x] = bicubic((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    for (int x = 0; x < xmax; ++x)
      if (ww != 0.0) k[x] /= ww;
    for (int x = 0; x < xmax; ++x) {
      const double v = k[x] * (1 << kPrecisionBits);
      c.kk[static_cast<size_t>(xx) * c.ksize + x] = static_cast<int32_t>(v < 0 ? -0.5 + v : 0.5 + v);
    }
    c.bounds[2 * xx] = xmin;
    c.bounds[2 * xx + 1] = xmax;
  }
  return c;
}

inline uint8_t clip8(int64_t in) {
  if (in >= (int64_t{1} << kPrecisionBits << 8)) return 255;
  if (in <= 0) return 0;
  return static_cast<uint8_t>(in >> kPrecisionBits);
}

// One pass along an axis of a contiguous [H, W, C] uint8 image.
std::vector<uint8_t> pass(const std::vector<uint8_t>& in, int h, int w, int ch, int out_len, bool horizontal) {
  const Coeffs c = precompute(horizontal ? w : h, out_len);
  const int oh = horizontal ? h : out_len, ow = horizontal ? out_len : w;
  std::vector<uint8_t> out(static_cast<size_t>(oh) * ow * ch);
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x) {
      const int o = horizontal ? x : y;
      const int xmin = c.bounds[2 * o], n = c.bounds[2 * o + 1];
      const int32_t* k = &c.kk[static_cast<size_t>(o) * c.ksize];
      for (int cc = 0; cc < ch; ++cc) {
        // PIL sums in a 32-bit int starting from half a unit; int64 here changes nothing for
        // values in range and avoids signed overflow on pathological inputs.
        int64_t ss = int64_t{1} << (kPrecisionBits - 1);
        for (int i = 0; i < n; ++i) {
          const int sy = horizontal ? y : xmin + i, sx = horizontal ? xmin + i : x;
          ss += static_cast<int64_t>(in[(static_cast<size_t>(sy) * w + sx) * ch + cc]) * k[i];
        }
        out[(static_cast<size_t>(y) * ow + x) * ch + cc] = clip8(ss);
      }
    }
  return out;
}

void check_hwc(const torch::Tensor& hwc, const char* what) {
  // RGBA is refused: PIL premultiplies alpha before resampling (load images as RGB).
  if (hwc.dim() != 3 || hwc.scalar_type() != torch::kUInt8 || (hwc.size(2) != 1 && hwc.size(2) != 3) || hwc.size(0) < 1 || hwc.size(1) < 1)
    throw Error(fmt::format("{}: expected a uint8 [H, W, C] image with 1 (grey) or 3 (RGB) channels, got {} {}", what,
                            std::string(c10::toString(hwc.scalar_type())), fmt::join(hwc.sizes().vec(), "x")));
}

}  // namespace

torch::Tensor pil_bicubic_resize(const torch::Tensor& hwc, int64_t out_h, int64_t out_w) {
  check_hwc(hwc, "bicubic resize");
  if (out_h < 1 || out_w < 1) throw Error(fmt::format("bicubic resize: output size {}x{} must be positive", out_h, out_w));
  const auto src = hwc.contiguous().cpu();
  int h = static_cast<int>(src.size(0)), w = static_cast<int>(src.size(1));
  const int ch = static_cast<int>(src.size(2));
  std::vector<uint8_t> buf(src.data_ptr<uint8_t>(), src.data_ptr<uint8_t>() + src.numel());
  // ImagingResampleInner: horizontal pass first (only when the width changes), then vertical. PIL
  // limits the horizontal pass to the rows the vertical pass reads; the result is the same.
  if (out_w != w) {
    buf = pass(buf, h, w, ch, static_cast<int>(out_w), true);
    w = static_cast<int>(out_w);
  }
  if (out_h != h) {
    buf = pass(buf, h, w, ch, static_cast<int>(out_h), false);
    h = static_cast<int>(out_h);
  }
  return torch::from_blob(buf.data(), {h, w, ch}, torch::kUInt8).clone();
}

std::pair<int64_t, int64_t> shortest_side_size(int64_t h, int64_t w, int64_t size) {
  if (size < 1) throw Error(fmt::format("resize: size must be positive, got {}", size));
  const int64_t shorter = std::min(h, w), longer = std::max(h, w);
  // torchvision _compute_resized_output_size: int(size * long / short) in Python floats.
  const int64_t other = static_cast<int64_t>(static_cast<double>(size) * static_cast<double>(longer) / static_cast<double>(shorter));
  return w <= h ? std::pair{other, size} : std::pair{size, other};
}

torch::Tensor resize_shortest_side(const torch::Tensor& hwc, int64_t size) {
  check_hwc(hwc, "resize");
  const auto [nh, nw] = shortest_side_size(hwc.size(0), hwc.size(1), size);
  if (nh == hwc.size(0) && nw == hwc.size(1)) return hwc;  // PIL returns a copy: nothing resampled
  return pil_bicubic_resize(hwc, nh, nw);
}

torch::Tensor center_crop(const torch::Tensor& hwc, int64_t size) {
  check_hwc(hwc, "center crop");
  const int64_t h = hwc.size(0), w = hwc.size(1);
  if (h < size || w < size)
    throw Error(fmt::format("center crop: a {}x{} image is smaller than the crop {} (resize it first)", h, w, size));
  // int(round((h - size) / 2.0)): Python rounds halves to even, as nearbyint does by default.
  const auto top = static_cast<int64_t>(std::nearbyint(static_cast<double>(h - size) / 2.0));
  const auto left = static_cast<int64_t>(std::nearbyint(static_cast<double>(w - size) / 2.0));
  return hwc.slice(0, top, top + size).slice(1, left, left + size);
}

torch::Tensor clip_pixel_values(const torch::Tensor& hwc, int64_t size, const ClipNormalization& norm) {
  auto img = center_crop(resize_shortest_side(hwc, size), size);
  if (img.size(2) == 1) img = img.expand({size, size, 3});  // open_clip's convert('RGB') after the crop
  const auto x = img.permute({2, 0, 1}).to(torch::kFloat32).div(255);
  const auto mean = torch::tensor(std::vector<float>(norm.mean.begin(), norm.mean.end())).view({3, 1, 1});
  const auto stdv = torch::tensor(std::vector<float>(norm.std.begin(), norm.std.end())).view({3, 1, 1});
  return (x - mean) / stdv;
}

torch::Tensor float_image_to_uint8_truncating(const torch::Tensor& x) {
  // numpy astype(uint8) of float32 x * 255: truncation toward zero (inputs are in [0, 1]).
  return (x.to(torch::kFloat32) * 255.0f).clamp(0, 255).to(torch::kUInt8);
}

std::string clip_resize_rule(int64_t size) {
  return fmt::format("shortest side to {} with PIL bicubic (a=-0.5, antialiased, uint8 per pass), center crop {} (round half even), /255, "
                     "OpenAI CLIP mean/std",
                     size, size);
}

}  // namespace dc::metrics
