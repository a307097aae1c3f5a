#include "harness/data/idx.h"

#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::data {
namespace {

// The whole file, gunzipped when it starts with the gzip magic (gzread passes plain files through,
// but a damaged gzip stream must be an error, not a short read).
std::vector<uint8_t> read_all(const std::string& path) {
  if (!std::filesystem::exists(path)) throw Error(fmt::format("{}: file not found", path));
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error(fmt::format("{}: cannot be opened", path));
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    const int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int code = 0;
      const std::string msg = gzerror(f, &code);
      gzclose(f);
      throw Error(fmt::format("{}: damaged gzip stream ({})", path, msg));
    }
    if (n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + n);
  }
  // gzread stops quietly at a truncated member; gzclose_r reports Z_BUF_ERROR for it.
  const int rc = gzclose(f);
  if (rc != Z_OK) throw Error(fmt::format("{}: damaged or truncated gzip stream (zlib error {})", path, rc));
  return out;
}

uint32_t be32(const uint8_t* p) { return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3]; }

}  // namespace

torch::Tensor read_idx(const std::string& path) {
  const auto bytes = read_all(path);
  if (bytes.size() < 4) throw Error(fmt::format("{}: {} bytes, too short for an IDX header", path, bytes.size()));
  if (bytes[0] != 0 || bytes[1] != 0)
    throw Error(fmt::format("{}: not an IDX file (magic {:02x}{:02x}{:02x}{:02x}, expected 0000TTDD)", path, bytes[0], bytes[1], bytes[2], bytes[3]));
  if (bytes[2] != 0x08)
    throw Error(fmt::format("{}: IDX element type 0x{:02x} is not supported (only 0x08, unsigned byte)", path, bytes[2]));
  const int dims = bytes[3];
  if (dims < 1 || dims > 4) throw Error(fmt::format("{}: IDX header claims {} dimensions (expected 1 to 4)", path, dims));
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(dims);
  if (bytes.size() < header) throw Error(fmt::format("{}: truncated IDX header ({} bytes, {} needed)", path, bytes.size(), header));
  std::vector<int64_t> shape;
  uint64_t count = 1;
  for (int d = 0; d < dims; ++d) {
    const uint32_t n = be32(&bytes[4 + 4 * d]);
    if (n == 0) throw Error(fmt::format("{}: IDX dimension {} has size 0", path, d));
    count *= n;
    if (count > (uint64_t{1} << 40)) throw Error(fmt::format("{}: IDX sizes overflow", path));
    shape.push_back(static_cast<int64_t>(n));
  }
  const uint64_t have = bytes.size() - header;
  if (have != count)
    throw Error(fmt::format("{}: IDX header says {} elements ({}), the file holds {} ({})", path, count, fmt::join(shape, "x"), have,
                            have < count ? "truncated" : "trailing bytes"));
  auto t = torch::empty(shape, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), bytes.data() + header, count);
  return t;
}

LabelledImages read_fashion_mnist(const std::string& dir, const std::string& split) {
  std::string prefix;
  if (split == "train") prefix = "train";
  else if (split == "test") prefix = "t10k";
  else throw Error(fmt::format("Fashion-MNIST split '{}': expected train or test", split));
  auto find = [&](const std::string& stem) {
    for (const char* ext : {".gz", ""}) {
      const std::string p = fmt::format("{}/{}-{}{}", dir, prefix, stem, ext);
      if (std::filesystem::exists(p)) return p;
    }
    throw Error(fmt::format("{}/{}-{}(.gz): not found (install Debian's dataset-fashion-mnist, or set $DEEPCACHE_FASHION_MNIST)", dir,
                            prefix, stem));
  };
  const std::string ip = find("images-idx3-ubyte"), lp = find("labels-idx1-ubyte");
  LabelledImages d;
  d.images = read_idx(ip);
  const auto labels = read_idx(lp);
  if (d.images.dim() != 3 || d.images.size(1) != 28 || d.images.size(2) != 28)
    throw Error(fmt::format("{}: expected images [N, 28, 28], got {}", ip, fmt::join(d.images.sizes().vec(), "x")));
  if (labels.dim() != 1 || labels.size(0) != d.images.size(0))
    throw Error(fmt::format("{}: {} labels for {} images in {}", lp, labels.dim() == 1 ? labels.size(0) : -1, d.images.size(0), ip));
  if (labels.max().item<int>() > 9) throw Error(fmt::format("{}: label {} out of range 0..9", lp, labels.max().item<int>()));
  d.labels = labels.to(torch::kInt64);
  return d;
}

std::string default_fashion_mnist_dir() {
  if (const char* d = std::getenv("DEEPCACHE_FASHION_MNIST")) return d;
  return "/usr/share/datasets/fashion-mnist";
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

}  // namespace dc::data
