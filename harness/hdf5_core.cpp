#include "harness/hdf5_core.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::h5 {

std::string object_name(hid_t obj) {
  char buf[512] = {0};
  const ssize_t n = H5Iget_name(obj, buf, sizeof(buf));
  char file[512] = {0};
  H5Fget_name(obj, file, sizeof(file));
  return fmt::format("{}:{}", file, n > 0 ? buf : "?");
}

namespace {
void check(herr_t s, hid_t where, const std::string& what) {
  if (s < 0) throw Error(fmt::format("{}: HDF5 error: {}", object_name(where), what));
}
// IEEE binary16 little-endian, built as h5py builds its float16 (h5py/h5t.pyx), so h5py and
// NumPy read it as float16. Created once, never closed.
hid_t half_type() {
  static const hid_t t = [] {
    const hid_t h = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(h, 15, 10, 5, 0, 10);
    H5Tset_size(h, 2);
    H5Tset_ebias(h, 15);
    H5Tlock(h);
    return h;
  }();
  return t;
}
uint64_t little_endian(const unsigned char* p, std::size_t n) {
  uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}
double half_to_double(uint16_t h) {
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double v = e == 0 ? std::ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : std::ldexp(m + 1024, e - 25);
  return (h >> 15) ? -v : v;
}
// The dimensions of an open dataset, each at most 2^48.
std::vector<int64_t> shape_of(hid_t ds, const std::string& where) {
  Handle space(H5Dget_space(ds), H5Sclose);
  const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.id()) : -1;
  if (rank < 0 || rank > 8) throw Error(fmt::format("{}: a dataspace of rank {} (damaged file?)", where, rank));
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr) < 0)
    throw Error(fmt::format("{}: unreadable dataspace (damaged file?)", where));
  std::vector<int64_t> shape;
  for (hsize_t d : dims) {
    if (d > (uint64_t{1} << 48)) throw Error(fmt::format("{}: a dimension of {} (damaged file?)", where, d));
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}
}  // namespace

hid_t type_of(ElementType t) {
  switch (t) {
    case ElementType::f16: return half_type();
    case ElementType::f32: return H5T_NATIVE_FLOAT;
    case ElementType::f64: return H5T_NATIVE_DOUBLE;
    case ElementType::i32: return H5T_NATIVE_INT32;
    case ElementType::i64: return H5T_NATIVE_INT64;
    case ElementType::u8: return H5T_NATIVE_UINT8;
  }
  return H5T_NATIVE_DOUBLE;
}

std::size_t element_size(ElementType t) {
  switch (t) {
    case ElementType::u8: return 1;
    case ElementType::f16: return 2;
    case ElementType::i32:
    case ElementType::f32: return 4;
    case ElementType::i64:
    case ElementType::f64: return 8;
  }
  return 8;
}

int64_t Array::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {
// Where the superblock signature is (byte 0, 512, 1024, ...), and the file's size.
std::pair<uint64_t, uint64_t> find_superblock(std::ifstream& in, const std::string& path) {
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec || !in) throw Error(fmt::format("{}: cannot open ({})", path, ec ? ec.message() : "not readable"));
  static const unsigned char kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  unsigned char b[8];
  for (uint64_t at = 0;; at = at ? at * 2 : 512) {
    if (at + 8 > size) throw Error(fmt::format("{}: not an HDF5 file (no HDF5 signature at byte 0, 512, 1024, ...)", path));
    in.seekg(static_cast<std::streamoff>(at));
    if (in.read(reinterpret_cast<char*>(b), 8) && std::memcmp(b, kSignature, 8) == 0) return {at, size};
    in.clear();
  }
}
}  // namespace

int superblock_version(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const auto found = find_superblock(in, path);
  const uint64_t at = found.first, size = found.second;
  char v = 0;
  in.seekg(static_cast<std::streamoff>(at + 8));
  if (!in.get(v)) throw Error(fmt::format("{}: HDF5 superblock cut short at byte {} (truncated file?)", path, size));
  return static_cast<unsigned char>(v);
}

void check_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const auto found = find_superblock(in, path);
  const uint64_t at = found.first, size = found.second;
  unsigned char b[96];
  const std::size_t have = static_cast<std::size_t>(std::min<uint64_t>(sizeof(b), size - at));
  in.seekg(static_cast<std::streamoff>(at));
  in.read(reinterpret_cast<char*>(b), static_cast<std::streamsize>(have));
  const auto short_superblock = [&] { return Error(fmt::format("{}: HDF5 superblock cut short at byte {} (truncated file?)", path, size)); };
  if (have < 9) throw short_superblock();
  const int version = b[8];
  if (version > 3)
    throw Error(fmt::format("{}: HDF5 superblock version {} (this build's libhdf5 1.10 reads versions 0 to 3: a file from a newer HDF5?)",
                            path, version));
  // Versions 0 and 1: sizes at bytes 13 and 14, the base address after 24 (28) bytes, the
  // end-of-file address two addresses later; versions 2 and 3: sizes at 9 and 10, base at 12.
  const std::size_t offsets = version <= 1 ? (have > 14 ? b[13] : 0) : (have > 10 ? b[9] : 0);
  const std::size_t lengths = version <= 1 ? (have > 14 ? b[14] : 0) : (have > 10 ? b[10] : 0);
  if (offsets == 0 && lengths == 0) throw short_superblock();
  for (std::size_t s : {offsets, lengths})
    if (s != 2 && s != 4 && s != 8)
      throw Error(fmt::format("{}: damaged HDF5 superblock: addresses of {} bytes and lengths of {} (HDF5 uses 2, 4 or 8)", path,
                              offsets, lengths));
  const std::size_t base_at = version == 0 ? 24 : version == 1 ? 28 : 12;
  const std::size_t eof_at = base_at + 2 * offsets;
  if (eof_at + offsets > have) throw short_superblock();
  const uint64_t eof = little_endian(b + eof_at, offsets);
  if (offsets < 8 ? eof == (uint64_t{1} << (8 * offsets)) - 1 : eof == ~uint64_t{0})
    throw Error(fmt::format("{}: damaged HDF5 superblock: no end-of-file address", path));
  // The address is relative to the base address (0 unless there is a user block): a file shorter
  // than it is cut short either way.
  if (eof > size)
    throw Error(fmt::format("{}: truncated HDF5 file: its superblock says it ends at byte {}, it has {} bytes", path, eof, size));
}

namespace {
// Links and attributes kept in the object headers (compact storage), however many: dense storage
// puts them in fractal-heap blocks that HDF5 does not checksum, which libhdf5 1.10 decodes
// unchecked (a damaged one crashed it within seconds of fuzzing: docs/reliability.md).
void compact_storage(hid_t plist, bool links) {
  if ((links && H5Pset_link_phase_change(plist, 65535, 0) < 0) || H5Pset_attr_phase_change(plist, 65535, 0) < 0)
    throw Error("HDF5: cannot keep links and attributes in object headers");
}
}  // namespace

Handle create_file(const std::string& path) {
  quiet();
  // The HDF5 1.10 format: every piece of metadata libhdf5 decodes (superblock 3, object headers 2,
  // chunk indexes as fixed or extensible arrays, continuation chunks) carries a checksum that it
  // verifies first, so a corrupted file is refused rather than decoded (libhdf5 1.10 decoding
  // damaged 1.6-format metadata read out of bounds: docs/reliability.md). h5py reads it (HDF5 >= 1.10).
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose), fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  if (!fapl.valid() || !fcpl.valid() || H5Pset_libver_bounds(fapl.id(), H5F_LIBVER_V110, H5F_LIBVER_V110) < 0)
    throw Error(fmt::format("{}: cannot set the HDF5 file format", path));
  compact_storage(fcpl.id(), true);  // the root group's
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.id(), fapl.id());
  if (f < 0) throw Error(fmt::format("{}: cannot create HDF5 file", path));
  return Handle(f, H5Fclose);
}

Handle create_memory_file(const std::string& name, std::size_t size_hint) {
  quiet();
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose), fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  // The core driver grows its buffer by `increment` bytes at a time (realloc): one step of the
  // expected size, so that a large file is not copied at each of many small steps.
  const std::size_t increment = std::clamp<std::size_t>(size_hint, std::size_t{1} << 20, std::size_t{1} << 40);
  if (!fapl.valid() || !fcpl.valid() || H5Pset_libver_bounds(fapl.id(), H5F_LIBVER_V110, H5F_LIBVER_V110) < 0 ||
      H5Pset_fapl_core(fapl.id(), increment, /*backing_store=*/0) < 0)
    throw Error(fmt::format("{}: cannot set up an HDF5 file in memory", name));
  compact_storage(fcpl.id(), true);
  const hid_t f = H5Fcreate(name.c_str(), H5F_ACC_TRUNC, fcpl.id(), fapl.id());
  if (f < 0) throw Error(fmt::format("{}: cannot create an HDF5 file in memory ({} bytes expected)", name, size_hint));
  return Handle(f, H5Fclose);
}

namespace {

uint32_t word_of(const unsigned char* k, std::size_t i) {
  return static_cast<uint32_t>(k[i]) | static_cast<uint32_t>(k[i + 1]) << 8 | static_cast<uint32_t>(k[i + 2]) << 16 |
         static_cast<uint32_t>(k[i + 3]) << 24;
}

// Bob Jenkins' lookup3 hashlittle (public domain), the checksum of HDF5's metadata
// (H5_checksum_lookup3 with initval 0), little-endian byte order as HDF5 reads it.
uint32_t lookup3(const unsigned char* k, std::size_t length) {
  auto rot = [](uint32_t x, int r) { return (x << r) | (x >> (32 - r)); };
  uint32_t a, b, c;
  a = b = c = 0xdeadbeef + static_cast<uint32_t>(length);
  auto word = [&](std::size_t i) { return word_of(k, i); };
  std::size_t i = 0;
  while (length > 12) {
    a += word(i), b += word(i + 4), c += word(i + 8);
    a -= c, a ^= rot(c, 4), c += b;
    b -= a, b ^= rot(a, 6), a += c;
    c -= b, c ^= rot(b, 8), b += a;
    a -= c, a ^= rot(c, 16), c += b;
    b -= a, b ^= rot(a, 19), a += c;
    c -= b, c ^= rot(b, 4), b += a;
    length -= 12, i += 12;
  }
  if (length == 0) return c;
  unsigned char t[12] = {0};
  std::memcpy(t, k + i, length);
  a += word_of(t, 0), b += word_of(t, 4), c += word_of(t, 8);
  c ^= b, c -= rot(b, 14);
  a ^= c, a -= rot(c, 11);
  b ^= a, b -= rot(a, 25);
  c ^= b, c -= rot(b, 16);
  a ^= c, a -= rot(c, 4);
  b ^= a, b -= rot(a, 14);
  c ^= b, c -= rot(b, 24);
  return c;
}

}  // namespace

std::string file_image(hid_t f, const std::string& name) {
  if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) throw Error(fmt::format("{}: HDF5 error: flushing the file in memory", name));
  const ssize_t size = H5Fget_file_image(f, nullptr, 0);
  if (size <= 0) throw Error(fmt::format("{}: HDF5 error: the size of the file's image", name));
  std::string bytes(static_cast<std::size_t>(size), '\0');
  if (H5Fget_file_image(f, bytes.data(), bytes.size()) != size) throw Error(fmt::format("{}: HDF5 error: copying the file's image", name));
  // libhdf5 1.10 clears the superblock's "open for writing" flags in the image but keeps the
  // checksum it computed with them set, so the image would not open ("incorrect metadata
  // checksum"). The superblock (version 2 or 3 at byte 0: signature, version, offset and length
  // sizes, flags, four addresses) gets its checksum again.
  auto* u = reinterpret_cast<unsigned char*>(bytes.data());
  if (bytes.size() >= 12 && (u[8] == 2 || u[8] == 3) && (u[9] == 2 || u[9] == 4 || u[9] == 8)) {
    const std::size_t n = 12 + 4 * static_cast<std::size_t>(u[9]);
    if (bytes.size() >= n + 4) {
      const uint32_t sum = lookup3(u, n);
      for (int i = 0; i < 4; ++i) u[n + i] = static_cast<unsigned char>(sum >> (8 * i));
    }
  }
  return bytes;
}

Handle open_file(const std::string& path, bool write) {
  quiet();
  check_file(path);
  const hid_t f = H5Fopen(path.c_str(), write ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) throw Error(fmt::format("{}: cannot open as HDF5 (damaged or not HDF5)", path));
  return Handle(f, H5Fclose);
}

void quiet() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

Handle create_group(hid_t parent, const std::string& name) {
  Handle gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
  compact_storage(gcpl.id(), true);
  const hid_t g = H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, gcpl.id(), H5P_DEFAULT);
  if (g < 0) throw Error(fmt::format("{}: cannot create group '{}'", object_name(parent), name));
  return Handle(g, H5Gclose);
}

Handle open_group(hid_t parent, const std::string& name) {
  const hid_t g = H5Gopen2(parent, name.c_str(), H5P_DEFAULT);
  if (g < 0) throw Error(fmt::format("{}: no group '{}'", object_name(parent), name));
  return Handle(g, H5Gclose);
}

bool exists(hid_t parent, const std::string& path) {
  // Check each component: H5Lexists fails on a missing intermediate group.
  std::size_t start = 0;
  while (true) {
    const auto slash = path.find('/', start);
    const std::string prefix = path.substr(0, slash);
    if (H5Lexists(parent, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

std::vector<std::string> children(hid_t group) {
  std::vector<std::string> out;
  H5G_info_t info;
  if (H5Gget_info(group, &info) < 0) throw Error(fmt::format("{}: unreadable group (damaged file?)", object_name(group)));
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (n < 0) throw Error(fmt::format("{}: link {} of {} is unreadable (damaged file?)", object_name(group), i, info.nlinks));
    std::string name(static_cast<std::size_t>(n), '\0');
    if (H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), static_cast<std::size_t>(n) + 1, H5P_DEFAULT) < 0)
      throw Error(fmt::format("{}: link {} of {} is unreadable (damaged file?)", object_name(group), i, info.nlinks));
    out.push_back(name);
  }
  return out;
}

Array read_array(hid_t parent, const std::string& name) {
  Handle ds(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) throw Error(fmt::format("{}: no dataset '{}'", object_name(parent), name));
  const std::string where = fmt::format("{}/{}", object_name(parent), name);
  Array a;
  a.shape = shape_of(ds.id(), where);
  Handle ftype(H5Dget_type(ds.id()), H5Tclose);
  if (!ftype.valid()) throw Error(fmt::format("{}: unreadable datatype (damaged file?)", where));
  const H5T_class_t cls = H5Tget_class(ftype.id());
  const std::size_t size = H5Tget_size(ftype.id());
  if (cls == H5T_INTEGER && size >= 1 && size <= 8)
    a.type = size == 1 ? ElementType::u8 : size == 4 ? ElementType::i32 : ElementType::i64;
  else if (cls == H5T_FLOAT && (size == 2 || size == 4 || size == 8))
    a.type = size == 2 ? ElementType::f16 : size == 4 ? ElementType::f32 : ElementType::f64;
  else
    throw Error(fmt::format("{}: elements of HDF5 class {} and {} bytes, where numbers are expected", where, static_cast<int>(cls), size));
  // The declared size against what the file holds, before allocating: contiguous data is stored
  // as is, compressed chunks inflate at most 1032-fold (deflate's limit).
  uint64_t bytes = element_size(a.type);
  for (int64_t d : a.shape) {
    if (d && bytes > (uint64_t{1} << 48) / static_cast<uint64_t>(d))
      throw Error(fmt::format("{}: declares more than 2^48 bytes (damaged file?)", where));
    bytes *= static_cast<uint64_t>(d);
  }
  const uint64_t stored = H5Dget_storage_size(ds.id());
  Handle plist(H5Dget_create_plist(ds.id()), H5Pclose);
  const bool filtered = plist.valid() && H5Pget_nfilters(plist.id()) > 0;
  const uint64_t can_hold = filtered ? stored * 1032 + 4096 : stored;
  if (bytes > can_hold)
    throw Error(fmt::format("{}: declares {} bytes of data, the file stores {} bytes for it{} (damaged file?)", where, bytes, stored,
                            filtered ? " compressed" : ""));
  a.bytes.resize(static_cast<std::size_t>(bytes));
  if (bytes > 0) check(H5Dread(ds.id(), type_of(a.type), H5S_ALL, H5S_ALL, H5P_DEFAULT, a.bytes.data()), parent, "reading " + name);
  return a;
}

std::vector<double> to_doubles(const Array& a) {
  const std::size_t n = static_cast<std::size_t>(a.numel()), w = element_size(a.type);
  std::vector<double> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char* p = a.bytes.data() + i * w;
    auto as = [p](auto v) {
      std::memcpy(&v, p, sizeof(v));
      return v;
    };
    switch (a.type) {
      case ElementType::u8: out[i] = p[0]; break;
      case ElementType::i32: out[i] = as(int32_t{}); break;
      case ElementType::i64: out[i] = static_cast<double>(as(int64_t{})); break;
      case ElementType::f16: out[i] = half_to_double(as(uint16_t{})); break;
      case ElementType::f32: out[i] = as(float{}); break;
      case ElementType::f64: out[i] = as(double{}); break;
    }
  }
  return out;
}

double read_scalar(hid_t parent, const std::string& name) {
  const Array a = read_array(parent, name);
  if (a.numel() != 1)
    throw Error(fmt::format("{}/{}: holds {} values where one number is expected (damaged file?)", object_name(parent), name, a.numel()));
  return to_doubles(a).front();
}

std::vector<int64_t> dataset_shape(hid_t parent, const std::string& name) {
  Handle ds(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) throw Error(fmt::format("{}: no dataset '{}'", object_name(parent), name));
  return shape_of(ds.id(), fmt::format("{}/{}", object_name(parent), name));
}

void write_array(hid_t parent, const std::string& name, const ArrayRef& a, bool compress) {
  std::vector<hsize_t> dims(a.shape.begin(), a.shape.end());
  int64_t numel = 1;
  for (int64_t d : a.shape) numel *= d;
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle plist(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (compress && !dims.empty() && numel > 0) {
    // Chunks of whole rows along the first dimension, at least 64 KiB each (one image of 256x256x3
    // per chunk; 22 of CIFAR's 32x32x3): one-row chunks of a [2.1M, 2] metric state took 28 s to write.
    std::vector<hsize_t> chunk = dims;
    const int64_t rows = std::max<int64_t>(1, a.shape[0]);
    const int64_t row_bytes = std::max<int64_t>(1, numel / rows * static_cast<int64_t>(element_size(a.type)));
    chunk[0] = static_cast<hsize_t>(std::clamp<int64_t>((65536 + row_bytes - 1) / row_bytes, 1, rows));
    if (H5Pset_chunk(plist.id(), static_cast<int>(chunk.size()), chunk.data()) < 0 || H5Pset_deflate(plist.id(), 4) < 0)
      throw Error(fmt::format("{}: HDF5 error: chunking and gzip for '{}'", object_name(parent), name));
  }
  const hid_t type = type_of(a.type);
  Handle ds(H5Dcreate2(parent, name.c_str(), type, space.id(), H5P_DEFAULT, plist.id(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) throw Error(fmt::format("{}: cannot create dataset '{}'", object_name(parent), name));
  if (numel > 0 && H5Dwrite(ds.id(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, a.data) < 0)
    throw Error(fmt::format("{}: HDF5 error: writing {}", object_name(parent), name));
}

void write_scalar(hid_t parent, const std::string& name, double v) { write_array(parent, name, {ElementType::f64, {}, &v}); }

namespace {
template <typename To, typename From>
std::vector<unsigned char> convert(const std::vector<From>& v) {
  std::vector<unsigned char> out(v.size() * sizeof(To));
  for (std::size_t i = 0; i < v.size(); ++i) {
    const To x = static_cast<To>(v[i]);
    std::memcpy(out.data() + i * sizeof(To), &x, sizeof(To));
  }
  return out;
}
}  // namespace

template <typename T>
void write_values(hid_t parent, const std::string& name, const std::vector<T>& v, ElementType type) {
  std::vector<unsigned char> bytes;
  switch (type) {
    case ElementType::u8: bytes = convert<uint8_t>(v); break;
    case ElementType::i32: bytes = convert<int32_t>(v); break;
    case ElementType::i64: bytes = convert<int64_t>(v); break;
    case ElementType::f32: bytes = convert<float>(v); break;
    case ElementType::f64: bytes = convert<double>(v); break;
    case ElementType::f16: throw Error(fmt::format("{}: write_values: float16 from numbers is not supported ('{}')", object_name(parent), name));
  }
  write_array(parent, name, {type, {static_cast<int64_t>(v.size())}, bytes.data()});
}
template void write_values(hid_t, const std::string&, const std::vector<int>&, ElementType);
template void write_values(hid_t, const std::string&, const std::vector<int64_t>&, ElementType);
template void write_values(hid_t, const std::string&, const std::vector<double>&, ElementType);

void set_attr(hid_t obj, const std::string& name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.id(), std::max<std::size_t>(value.size(), 1));
  H5Tset_cset(type.id(), H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Handle a(H5Acreate2(obj, name.c_str(), type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid()) throw Error(fmt::format("{}: cannot create attribute '{}'", object_name(obj), name));
  const std::string v = value.empty() ? std::string(1, '\0') : value;
  check(H5Awrite(a.id(), type.id(), v.data()), obj, "attribute " + name);
}

namespace {
template <typename T>
void set_num_attr(hid_t obj, const std::string& name, T value, hid_t type) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Handle a(H5Acreate2(obj, name.c_str(), type, space.id(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid()) throw Error(fmt::format("{}: cannot create attribute '{}'", object_name(obj), name));
  check(H5Awrite(a.id(), type, &value), obj, "attribute " + name);
}
}  // namespace

void set_attr(hid_t obj, const std::string& name, double value) { set_num_attr(obj, name, value, H5T_NATIVE_DOUBLE); }
void set_attr(hid_t obj, const std::string& name, int64_t value) { set_num_attr(obj, name, value, H5T_NATIVE_INT64); }

bool has_attr(hid_t obj, const std::string& name) { return H5Aexists(obj, name.c_str()) > 0; }

std::string get_attr_string(hid_t obj, const std::string& name, const std::string& fallback) {
  if (H5Aexists(obj, name.c_str()) <= 0) return fallback;
  Handle a(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  Handle type(H5Aget_type(a.id()), H5Tclose);
  if (H5Tget_class(type.id()) != H5T_STRING) return fallback;
  const std::size_t size = H5Tget_size(type.id());
  std::string s(size, '\0');
  Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem.id(), size);
  H5Tset_cset(mem.id(), H5T_CSET_UTF8);
  if (H5Aread(a.id(), mem.id(), s.data()) < 0) return fallback;
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

double get_attr_double(hid_t obj, const std::string& name, double fallback) {
  if (H5Aexists(obj, name.c_str()) <= 0) return fallback;
  Handle a(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  double v = fallback;
  if (H5Aread(a.id(), H5T_NATIVE_DOUBLE, &v) < 0) return fallback;
  return v;
}

void copy_object(hid_t src_file, const std::string& src_path, hid_t dst_file, const std::string& dst_path) {
  check(H5Ocopy(src_file, src_path.c_str(), dst_file, dst_path.c_str(), H5P_DEFAULT, H5P_DEFAULT), dst_file,
        "copying " + src_path);
}

}  // namespace dc::h5
