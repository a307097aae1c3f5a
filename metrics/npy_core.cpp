#include "metrics/npy_core.h"

#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.h"
#include "common/strings.h"

namespace dc::metrics::npy {

namespace {

constexpr int64_t kMaxElements = int64_t{1} << 48;
// numpy writes headers of a few hundred bytes (it refuses to read more than 10,000 by default since
// 1.24); a megabyte is generous and keeps a claimed 4 GiB header from being allocated.
constexpr std::size_t kMaxHeader = std::size_t{1} << 20;

uint64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : uint64_t{1} << 40;
}

// A parser of the dict literal numpy's format.py writes (and ast.literal_eval reads back).
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& what) : s_(text), what_(what) {}

  Header parse() {
    Header h;
    bool has_descr = false, has_order = false, has_shape = false;
    skip_ws();
    expect('{');
    skip_ws();
    if (peek() == '}') ++i_;  // {}: reported below as lacking 'descr'
    else do {
      const std::string key = string_literal("a key");
      skip_ws();
      expect(':');
      skip_ws();
      auto once = [&](bool& seen) {
        if (seen) fail(fmt::format("key '{}' appears twice", key));
        seen = true;
      };
      if (key == "descr") {
        once(has_descr);
        if (peek() != '\'' && peek() != '"')
          fail("'descr' is not a simple type string (structured dtypes are not supported)");
        h.descr = string_literal("'descr'");
      } else if (key == "fortran_order") {
        once(has_order);
        h.fortran_order = boolean();
      } else if (key == "shape") {
        once(has_shape);
        h.shape = shape();
      } else {
        fail(fmt::format("unexpected key '{}' (a .npy header has 'descr', 'fortran_order' and 'shape')", dc::printable(key.substr(0, 40))));
      }
    } while (another('}'));
    skip_ws();
    if (i_ != s_.size()) fail(fmt::format("unexpected bytes after the header's closing '}}' (at byte {})", i_));
    if (!has_descr || !has_order || !has_shape)
      fail(fmt::format("header lacks {}", !has_descr ? "'descr'" : !has_order ? "'fortran_order'" : "'shape'"));
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& m) const { throw Error(fmt::format("{}: .npy header: {}", what_, m)); }
  // After an item of a dict or tuple: true at ',' (another item may follow: a trailing comma is
  // allowed, as Python allows it), false at `close`; both consumed.
  bool another(char close) {
    skip_ws();
    if (peek() == ',') {
      ++i_;
      skip_ws();
      if (peek() != close) return true;
    }
    if (peek() != close) fail(fmt::format("expected ',' or '{}' at byte {} of the header", close, i_));
    ++i_;
    return false;
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    if (peek() != c) fail(fmt::format("expected '{}' at byte {}", c, i_));
    ++i_;
  }
  std::string string_literal(const char* what) {
    const char q = peek();
    if (q != '\'' && q != '"') fail(fmt::format("expected {} in quotes at byte {}", what, i_));
    const std::size_t end = s_.find(q, i_ + 1);
    if (end == std::string::npos) fail(fmt::format("unterminated string at byte {}", i_));
    std::string v = s_.substr(i_ + 1, end - i_ - 1);
    if (v.find('\\') != std::string::npos) fail("escaped characters in a header string are not supported");
    i_ = end + 1;
    return v;
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      i_ += 5;
      return false;
    }
    fail("'fortran_order' is neither True nor False");
  }
  std::vector<int64_t> shape() {
    expect('(');
    std::vector<int64_t> dims;
    int64_t numel = 1;
    skip_ws();
    if (peek() == ')') {  // (): a scalar
      ++i_;
      return dims;
    }
    do {
      if (peek() < '0' || peek() > '9') fail(fmt::format("'shape' holds something other than a non-negative integer at byte {}", i_));
      int64_t d = 0;
      while (peek() >= '0' && peek() <= '9') {
        d = d * 10 + (peek() - '0');
        if (d > kMaxElements) fail("'shape' declares more than 2^48 elements: not an array this program reads");
        ++i_;
      }
      if (peek() == 'L') ++i_;  // Python 2's long literal (numpy files written before 2015)
      if (d > 0 && numel > kMaxElements / d) fail("'shape' declares more than 2^48 elements: not an array this program reads");
      numel *= d;
      dims.push_back(d);
      if (dims.size() > 32) fail("'shape' has more than 32 dimensions (numpy's limit)");
    } while (another(')'));
    return dims;
  }

  const std::string& s_;
  std::string what_;
  std::size_t i_ = 0;
};

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};
struct FileCloser {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};

std::string zip_message(int code) {
  zip_error_t ze;
  zip_error_init_with_code(&ze, code);
  std::string msg = zip_error_strerror(&ze);
  zip_error_fini(&ze);
  return msg;
}

// Reads one member: header first, then exactly the data it declares, in chunks (memory grows only
// with what the archive delivers).
Array read_member(zip_t* z, zip_int64_t index, const zip_stat_t& st, const std::string& what, uint64_t max_bytes) {
  if (!(st.valid & ZIP_STAT_SIZE)) throw Error(fmt::format("{}: declares no size", what));
  if (st.size > max_bytes)
    throw Error(fmt::format("{}: declares {} bytes uncompressed, more than this machine's memory ({} bytes): damaged, or not an array "
                            "this program can read here",
                            what, static_cast<uint64_t>(st.size), max_bytes));
  std::unique_ptr<zip_file_t, FileCloser> f(zip_fopen_index(z, static_cast<zip_uint64_t>(index), 0));
  if (!f) throw Error(fmt::format("{}: cannot be read ({})", what, zip_strerror(z)));
  std::vector<uint8_t> buf;
  auto read_to = [&](std::size_t total) {  // grows buf to `total` bytes, or fewer at the member's end
    while (buf.size() < total) {
      const std::size_t at = buf.size(), want = std::min<std::size_t>(total - at, std::size_t{1} << 20);
      buf.resize(at + want);
      const zip_int64_t got = zip_fread(f.get(), buf.data() + at, want);
      if (got < 0) {
        buf.resize(at);
        throw Error(fmt::format("{}: damaged data ({})", what, zip_file_strerror(f.get())));
      }
      buf.resize(at + static_cast<std::size_t>(got));
      if (got == 0) break;
    }
  };
  read_to(std::min<uint64_t>(st.size, 12));
  const std::size_t offset = header_bytes_needed(buf.data(), buf.size(), what);
  if (offset > st.size) throw Error(fmt::format("{}: the .npy header ({} bytes) goes beyond the member's {} bytes", what, offset, static_cast<uint64_t>(st.size)));
  read_to(offset);
  if (buf.size() < offset) throw Error(fmt::format("{}: truncated ({} of {} bytes)", what, buf.size(), static_cast<uint64_t>(st.size)));
  const Header h = parse_header(buf.data(), buf.size(), what);
  if (h.data_offset + h.data_bytes != st.size)
    throw Error(fmt::format("{}: shape ({}) of {} needs {} bytes of data, the member holds {}", what, fmt::join(h.shape, ", "), h.descr, h.data_bytes,
                            static_cast<uint64_t>(st.size) - h.data_offset));
  read_to(offset + h.data_bytes);
  if (buf.size() != offset + h.data_bytes)
    throw Error(fmt::format("{}: truncated ({} of {} bytes)", what, buf.size(), offset + h.data_bytes));
  Array a{h.descr, h.item_size, h.fortran_order, h.shape, {}};
  a.data.assign(buf.begin() + static_cast<std::ptrdiff_t>(offset), buf.end());
  return a;
}

std::map<std::string, Array> read_archive(zip_t* raw, const std::string& what, uint64_t max_bytes) {
  std::unique_ptr<zip_t, ZipCloser> z(raw);
  if (max_bytes == 0) max_bytes = physical_memory_bytes();
  std::map<std::string, Array> out;
  const zip_int64_t n = zip_get_num_entries(z.get(), 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z.get(), static_cast<zip_uint64_t>(i), 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME) || !st.name)
      throw Error(fmt::format("{}: damaged zip directory (entry {})", what, i));
    std::string name = st.name;
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npy") != 0) continue;
    name.resize(name.size() - 4);
    if (out.count(name)) throw Error(fmt::format("{}: array '{}' appears twice", what, name));
    out[name] = read_member(z.get(), i, st, fmt::format("{}: array '{}'", what, name), max_bytes);
  }
  return out;
}

}  // namespace

const std::vector<std::pair<std::string, std::size_t>>& descriptors() {
  static const std::vector<std::pair<std::string, std::size_t>> d = {{"<f8", 8}, {"<f4", 4}, {"<f2", 2}, {"<i8", 8},
                                                                      {"<i4", 4}, {"|u1", 1}, {"|b1", 1}};
  return d;
}

std::size_t header_bytes_needed(const uint8_t* b, std::size_t n, const std::string& what) {
  if (n < 10 || std::memcmp(b, "\x93NUMPY", 6) != 0) throw Error(fmt::format("{}: not a .npy array (bad magic)", what));
  const int major = b[6];
  std::size_t hlen = 0, start = 0;
  if (major == 1) {
    hlen = b[8] | (std::size_t{b[9]} << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (n < 12) throw Error(fmt::format("{}: truncated .npy header", what));
    hlen = b[8] | (std::size_t{b[9]} << 8) | (std::size_t{b[10]} << 16) | (std::size_t{b[11]} << 24);
    start = 12;
  } else {
    throw Error(fmt::format("{}: unsupported .npy version {}.{}", what, major, b[7]));
  }
  if (hlen > kMaxHeader) throw Error(fmt::format("{}: .npy header claims {} bytes (numpy writes a few hundred): damaged", what, hlen));
  return start + hlen;
}

Header parse_header(const uint8_t* b, std::size_t n, const std::string& what) {
  const std::size_t offset = header_bytes_needed(b, n, what);
  if (offset > n) throw Error(fmt::format("{}: the .npy header goes beyond the end of the array ({} of {} bytes)", what, n, offset));
  const std::size_t start = b[6] == 1 ? 10 : 12;
  const std::string text(reinterpret_cast<const char*>(b + start), offset - start);
  Header h = HeaderParser(text, what).parse();
  for (const auto& [descr, size] : descriptors())
    if (h.descr == descr) h.item_size = size;
  if (!h.item_size) {
    std::string known;
    for (const auto& [descr, size] : descriptors()) known += (known.empty() ? "" : " ") + descr;
    throw Error(fmt::format("{}: unsupported dtype '{}' (supported: {})", what, h.descr.substr(0, 40), known));
  }
  int64_t numel = 1;
  for (int64_t d : h.shape) numel *= d;  // bounded by 2^48 in the parser
  h.data_offset = offset;
  h.data_bytes = static_cast<std::size_t>(numel) * h.item_size;
  return h;
}

Array parse_npy(const uint8_t* b, std::size_t n, const std::string& what) {
  const Header h = parse_header(b, n, what);
  if (n - h.data_offset != h.data_bytes)
    throw Error(fmt::format("{}: shape ({}) of {} needs {} bytes of data, the array has {}", what, fmt::join(h.shape, ", "), h.descr, h.data_bytes,
                            n - h.data_offset));
  return Array{h.descr, h.item_size, h.fortran_order, h.shape, std::vector<uint8_t>(b + h.data_offset, b + n)};
}

std::map<std::string, Array> read_npz(const std::string& path, uint64_t max_bytes) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_RDONLY, &err);
  if (!z) throw Error(fmt::format("{}: cannot open as .npz: {}", path, zip_message(err)));
  return read_archive(z, path, max_bytes);
}

std::map<std::string, Array> read_npz_memory(const uint8_t* b, std::size_t n, const std::string& what, uint64_t max_bytes) {
  zip_error_t ze;
  zip_error_init(&ze);
  zip_source_t* src = zip_source_buffer_create(b, n, 0, &ze);
  if (!src) {
    const std::string msg = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    throw Error(fmt::format("{}: cannot open as .npz: {}", what, msg));
  }
  zip_t* z = zip_open_from_source(src, ZIP_RDONLY, &ze);
  if (!z) {
    zip_source_free(src);
    const std::string msg = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    throw Error(fmt::format("{}: cannot open as .npz: {}", what, msg));
  }
  zip_error_fini(&ze);
  return read_archive(z, what, max_bytes);
}

std::vector<uint8_t> make_npy(const std::string& descr, const std::vector<int64_t>& shape, const void* data, std::size_t nbytes) {
  std::string dims = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
  dims += shape.size() == 1 ? ",)" : ")";
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr, dims);
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  if (header.size() > 0xffff) throw Error(".npy: header too long for version 1.0");
  const uint8_t prefix[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<uint8_t>(header.size() & 0xff),
                              static_cast<uint8_t>(header.size() >> 8)};
  // One allocation, three copies (growing a vector by insert made GCC 12 see a bogus -Warray-bounds).
  std::vector<uint8_t> out(sizeof prefix + header.size() + nbytes);
  std::memcpy(out.data(), prefix, sizeof prefix);
  std::memcpy(out.data() + sizeof prefix, header.data(), header.size());
  if (nbytes) std::memcpy(out.data() + sizeof prefix + header.size(), data, nbytes);
  return out;
}

}  // namespace dc::metrics::npy
