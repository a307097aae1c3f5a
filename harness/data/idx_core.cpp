#include "harness/data/idx_core.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.h"

namespace dc::data {
namespace {

uint32_t be32(const uint8_t* p) { return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3]; }

// gzread passes plain files through; a damaged gzip stream is an error, not a short read.
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path), f_(gzopen(path.c_str(), "rb")) {
    if (!f_) throw Error(fmt::format("{}: cannot be opened", path));
  }
  ~Reader() {
    if (f_) gzclose(f_);
  }
  // Up to n bytes appended to out; returns how many (fewer only at the end of the data).
  size_t read(std::vector<uint8_t>& out, size_t n) {
    size_t got = 0;
    while (got < n) {
      const unsigned want = static_cast<unsigned>(std::min<size_t>(n - got, 1 << 20));
      const size_t at = out.size();
      out.resize(at + want);
      const int r = gzread(f_, out.data() + at, want);
      if (r < 0) {
        int code = 0;
        const std::string msg = gzerror(f_, &code);
        out.resize(at);
        throw Error(fmt::format("{}: damaged gzip stream ({})", path_, msg));
      }
      out.resize(at + static_cast<size_t>(r));
      got += static_cast<size_t>(r);
      if (r == 0) break;
    }
    return got;
  }
  // gzread stops quietly at a truncated member; gzclose_r reports Z_BUF_ERROR for it.
  void close() {
    const int rc = gzclose(f_);
    f_ = nullptr;
    if (rc != Z_OK) throw Error(fmt::format("{}: damaged or truncated gzip stream (zlib error {})", path_, rc));
  }

 private:
  std::string path_;
  gzFile f_;
};

}  // namespace

IdxArray read_idx_array(const std::string& path) {
  if (!std::filesystem::exists(path)) throw Error(fmt::format("{}: file not found", path));
  Reader in(path);
  std::vector<uint8_t> head;
  in.read(head, 4);
  if (head.size() < 4) {
    in.close();
    throw Error(fmt::format("{}: {} bytes, too short for an IDX header", path, head.size()));
  }
  if (head[0] != 0 || head[1] != 0)
    throw Error(fmt::format("{}: not an IDX file (magic {:02x}{:02x}{:02x}{:02x}, expected 0000TTDD)", path, head[0], head[1], head[2], head[3]));
  if (head[2] != 0x08) throw Error(fmt::format("{}: IDX element type 0x{:02x} is not supported (only 0x08, unsigned byte)", path, head[2]));
  const int dims = head[3];
  if (dims < 1 || dims > 4) throw Error(fmt::format("{}: IDX header claims {} dimensions (expected 1 to 4)", path, dims));
  const size_t header = 4 + 4 * static_cast<size_t>(dims);
  if (in.read(head, header - 4) < header - 4) {
    in.close();
    throw Error(fmt::format("{}: truncated IDX header ({} bytes, {} needed)", path, head.size(), header));
  }
  IdxArray a;
  uint64_t count = 1;
  for (int d = 0; d < dims; ++d) {
    const uint32_t n = be32(&head[4 + 4 * static_cast<size_t>(d)]);
    if (n == 0) throw Error(fmt::format("{}: IDX dimension {} has size 0", path, d));
    count *= n;
    if (count > (uint64_t{1} << 40)) throw Error(fmt::format("{}: IDX sizes overflow", path));
    a.shape.push_back(static_cast<int64_t>(n));
  }
  // One byte more than promised tells trailing data apart; memory follows the data read.
  const size_t have = in.read(a.data, static_cast<size_t>(count) + 1);
  in.close();
  if (have != count)
    throw Error(fmt::format("{}: IDX header says {} elements ({}), the file holds {} ({})", path, count, fmt::join(a.shape, "x"),
                            have > count ? "more" : std::to_string(have), have < count ? "truncated" : "trailing bytes"));
  return a;
}

}  // namespace dc::data
