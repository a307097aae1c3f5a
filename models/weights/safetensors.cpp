#include "models/weights/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace dc::st {

namespace {

// The reference implementation refuses headers above 100 MB (safetensors/src/tensor.rs,
// MAX_HEADER_SIZE); a real 1,000-tensor header is ~100 kB.
constexpr uint64_t kMaxHeaderSize = 100'000'000;
constexpr int kMaxJsonDepth = 16;

struct DTypeRow {
  DType dtype;
  const char* name;
  const char* long_name;
  std::size_t size;
  bool floating;
};

constexpr DTypeRow kDTypes[] = {
    {DType::F64, "F64", "float64", 8, true},  {DType::F32, "F32", "float32", 4, true},
    {DType::F16, "F16", "float16", 2, true},  {DType::BF16, "BF16", "bfloat16", 2, true},
    {DType::I64, "I64", "int64", 8, false},   {DType::I32, "I32", "int32", 4, false},
    {DType::I16, "I16", "int16", 2, false},   {DType::I8, "I8", "int8", 1, false},
    {DType::U8, "U8", "uint8", 1, false},     {DType::BOOL, "BOOL", "bool", 1, false},
};

const DTypeRow& row(DType dtype) {
  for (const auto& r : kDTypes)
    if (r.dtype == dtype) return r;
  throw std::logic_error("dc::st: unhandled dtype");
}

// dtypes of the format that this reader does not convert (named so the error can say so).
bool is_known_unsupported(std::string_view name) {
  static const char* const kOthers[] = {"F8_E4M3", "F8_E5M2", "U16", "U32", "U64", "F4",
                                        "F6_E2M3", "F6_E3M2", "F8_E8M0", "C64"};
  for (const char* o : kOthers)
    if (name == o) return true;
  return false;
}

std::string errno_text() { return std::strerror(errno); }

// Maximum nesting depth of a JSON text, ignoring brackets inside strings. Lets us refuse
// pathological headers before handing them to a parser.
int json_depth(const char* p, std::size_t n) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < n; ++i) {
    char c = p[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') max_depth = std::max(max_depth, ++depth);
    else if (c == '}' || c == ']') --depth;
  }
  return max_depth;
}

}  // namespace

std::size_t dtype_size(DType dtype) { return row(dtype).size; }
const char* dtype_name(DType dtype) { return row(dtype).name; }
const char* dtype_long_name(DType dtype) { return row(dtype).long_name; }
bool dtype_is_floating(DType dtype) { return row(dtype).floating; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& r : kDTypes)
    if (name == r.name) return r.dtype;
  return std::nullopt;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// ------------------------------------------------------------------------------------------------
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw Error(fmt::format("{}: cannot open: {}", path, errno_text()));
    struct stat sb {};
    if (::fstat(fd_, &sb) != 0) {
      std::string e = errno_text();
      ::close(fd_);
      throw Error(fmt::format("{}: cannot stat: {}", path, e));
    }
    if (!S_ISREG(sb.st_mode)) {
      ::close(fd_);
      throw Error(fmt::format("{}: not a regular file", path));
    }
    size_ = static_cast<uint64_t>(sb.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
      if (p == MAP_FAILED) {
        std::string e = errno_text();
        ::close(fd_);
        throw Error(fmt::format("{}: cannot memory-map {} bytes: {}", path, size_, e));
      }
      data_ = static_cast<const uint8_t*>(p);
    }
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  int fd_ = -1;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

uint64_t SafetensorsFile::file_size() const { return map_ ? map_->size() : 0; }

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsFile::at(std::string_view name) const {
  const TensorInfo* info = find(name);
  if (!info) throw Error(fmt::format("{}: no tensor named '{}'", path_, name));
  return *info;
}

const uint8_t* SafetensorsFile::data(const TensorInfo& info) const {
  return map_->data() + 8 + header_size_ + info.begin;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  f.map_ = std::make_shared<MappedFile>(path);
  const uint64_t size = f.map_->size();
  const uint8_t* bytes = f.map_->data();
  auto fail = [&](const std::string& what) { return Error(fmt::format("{}: {}", path, what)); };

  // 1. Header length.
  if (size < 8)
    throw fail(fmt::format("file is {} bytes, too short for the 8-byte header length of a "
                           "safetensors file (truncated?)", size));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  // A pickled or zipped PyTorch checkpoint fails the checks below; say what it is instead.
  auto not_safetensors = [&]() -> std::string {
    if (bytes[0] == 'P' && bytes[1] == 'K' && bytes[2] == 3 && bytes[3] == 4)
      return "; this is a zip archive (a PyTorch .ckpt/.pt/.bin?), not safetensors: convert it "
             "with scripts/convert_ckpt_to_safetensors.py";
    if (bytes[0] == 0x80 && bytes[1] >= 2 && bytes[1] <= 5)
      return "; this looks like a Python pickle (an old PyTorch checkpoint?), not safetensors: "
             "convert it with scripts/convert_ckpt_to_safetensors.py";
    if (bytes[0] == '{' || bytes[0] == '[')
      return "; this looks like a JSON file (a *.keys.json manifest? pass it to inspect with "
             "--against)";
    return "";
  };
  if (n > kMaxHeaderSize)
    throw fail(fmt::format("header length {} is larger than the 100 MB limit of the format "
                           "(corrupt header length, or not a safetensors file){}", n, not_safetensors()));
  if (n > size - 8)
    throw fail(fmt::format("header length {} goes beyond the end of the file ({} bytes after "
                           "the length field; truncated file?){}", n, size - 8, not_safetensors()));
  if (n < 2) throw fail(fmt::format("header length {} is too small for a JSON object", n));
  f.header_size_ = n;
  const char* hdr = reinterpret_cast<const char*>(bytes + 8);
  if (hdr[0] != '{')
    throw fail(fmt::format("header does not start with '{{': not a safetensors JSON header{}", not_safetensors()));
  if (json_depth(hdr, n) > kMaxJsonDepth)
    throw fail(fmt::format("header JSON is nested deeper than {} levels", kMaxJsonDepth));

  // 2. JSON, refusing duplicate tensor names (a JSON object parser would silently keep one).
  std::set<std::string> seen;
  std::string duplicate;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(
        hdr, hdr + n,
        [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
          if (event == nlohmann::json::parse_event_t::key && depth == 1) {
            std::string key = parsed.get<std::string>();
            if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
          }
          return true;
        });
  } catch (const nlohmann::json::exception& e) {
    throw fail(fmt::format("header is not valid JSON ({})", e.what()));
  }
  if (!duplicate.empty()) throw fail(fmt::format("tensor '{}' appears twice in the header", duplicate));
  if (!header.is_object()) throw fail("header JSON is not an object");

  // 3. Entries.
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw fail("__metadata__ is not a JSON object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          throw fail(fmt::format("__metadata__ entry '{}' is not a string", m.key()));
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      f.has_metadata_ = true;
      continue;
    }
    auto bad = [&](const std::string& what) {
      return Error(fmt::format("{}: tensor '{}': {}", path, name, what));
    };
    if (!v.is_object()) throw bad("entry is not a JSON object");
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!v.contains(field)) throw bad(fmt::format("missing field '{}'", field));
    TensorInfo info;
    info.name = name;
    if (!v["dtype"].is_string()) throw bad("'dtype' is not a string");
    const std::string dt = v["dtype"].get<std::string>();
    auto parsed = parse_dtype(dt);
    if (!parsed) {
      if (is_known_unsupported(dt))
        throw bad(fmt::format("dtype '{}' is not supported by this reader (supported: F64, F32, "
                              "F16, BF16, I64, I32, I16, I8, U8, BOOL)", dt));
      throw bad(fmt::format("unknown dtype '{}'", dt));
    }
    info.dtype = *parsed;
    const auto& shape = v["shape"];
    if (!shape.is_array()) throw bad("'shape' is not an array");
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : shape) {
      if (!d.is_number_integer() || (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0))
        throw bad(fmt::format("shape {} has an entry that is not a non-negative integer", shape.dump()));
      uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, dim, &numel))
        overflow = true;
      info.shape.push_back(static_cast<int64_t>(std::min<uint64_t>(dim, INT64_MAX)));
    }
    uint64_t expect_bytes = 0;
    if (overflow || numel > static_cast<uint64_t>(INT64_MAX) ||
        __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(info.dtype)), &expect_bytes))
      throw bad(fmt::format("shape {} overflows 64 bits", shape.dump()));
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw bad(fmt::format("'data_offsets' {} is not a pair of non-negative integers", off.dump()));
    info.begin = off[0].get<uint64_t>();
    info.end = off[1].get<uint64_t>();
    if (info.end < info.begin)
      throw bad(fmt::format("data_offsets [{}, {}] end before they begin", info.begin, info.end));
    if (info.end - info.begin != expect_bytes)
      throw bad(fmt::format("shape {} x {} needs {} bytes but data_offsets [{}, {}] span {} bytes",
                            shape_str(info.shape), dtype_name(info.dtype), expect_bytes, info.begin,
                            info.end, info.end - info.begin));
    f.tensors_.push_back(std::move(info));
  }

  // 4. Layout: tensors must tile the data section exactly.
  std::sort(f.tensors_.begin(), f.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : (a.end != b.end ? a.end < b.end : a.name < b.name);
  });
  const uint64_t data_size = size - 8 - n;
  uint64_t cursor = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : f.tensors_) {
    if (t.begin < cursor)
      throw fail(fmt::format("tensor '{}': data_offsets [{}, {}] overlap tensor '{}' [{}, {}]", t.name,
                             t.begin, t.end, prev->name, prev->begin, prev->end));
    if (t.begin > cursor)
      throw fail(fmt::format("tensor '{}': {} unused bytes before its data_offsets [{}, {}] (the "
                             "format has no holes)", t.name, t.begin - cursor, t.begin, t.end));
    if (t.end > data_size)
      throw fail(fmt::format("tensor '{}': data_offsets [{}, {}] go beyond the data section of {} "
                             "bytes (truncated file?)", t.name, t.begin, t.end, data_size));
    cursor = t.end;
    if (t.end > t.begin || !prev) prev = &t;
  }
  if (cursor != data_size)
    throw fail(fmt::format("{} bytes of trailing data after the last tensor (the data section is {} "
                           "bytes, tensors use {})", data_size - cursor, data_size, cursor));
  for (std::size_t i = 0; i < f.tensors_.size(); ++i) f.index_[f.tensors_[i].name] = i;
  return f;
}

// ------------------------------------------------------------------------------------------------
void write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorBytes*> order;
  for (const auto& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->name < b->name; });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const TensorBytes& t = *order[i];
    if (t.name.empty() || t.name == "__metadata__")
      throw Error(fmt::format("{}: cannot write a tensor named '{}'", path, t.name));
    if (i > 0 && order[i - 1]->name == t.name)
      throw Error(fmt::format("{}: tensor '{}' given twice", path, t.name));
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) throw Error(fmt::format("{}: tensor '{}': negative dimension in {}", path, t.name, shape_str(t.shape)));
      numel *= static_cast<uint64_t>(d);
    }
    if (numel * dtype_size(t.dtype) != t.nbytes)
      throw Error(fmt::format("{}: tensor '{}': shape {} x {} needs {} bytes, {} given", path, t.name,
                              shape_str(t.shape), dtype_name(t.dtype), numel * dtype_size(t.dtype), t.nbytes));
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');

  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  FILE* out = std::fopen(tmp.c_str(), "wb");
  if (!out) throw Error(fmt::format("{}: cannot create: {}", tmp, errno_text()));
  bool ok = true;
  unsigned char len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
  ok = ok && std::fwrite(len, 1, 8, out) == 8;
  ok = ok && std::fwrite(text.data(), 1, text.size(), out) == text.size();
  for (const TensorBytes* t : order)
    if (t->nbytes) ok = ok && std::fwrite(t->data, 1, t->nbytes, out) == t->nbytes;
  ok = ok && std::fflush(out) == 0 && ::fsync(::fileno(out)) == 0;
  std::string err = ok ? "" : errno_text();
  ok = (std::fclose(out) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    if (err.empty()) err = errno_text();
    std::remove(tmp.c_str());
    throw Error(fmt::format("{}: cannot write: {}", path, err));
  }
}

}  // namespace dc::st
