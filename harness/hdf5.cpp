#include "harness/hdf5.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::h5 {

namespace {
std::string name_of(hid_t obj) {
  char buf[512] = {0};
  const ssize_t n = H5Iget_name(obj, buf, sizeof(buf));
  char file[512] = {0};
  H5Fget_name(obj, file, sizeof(file));
  return fmt::format("{}:{}", file, n > 0 ? buf : "?");
}
void check(herr_t s, hid_t where, const std::string& what) {
  if (s < 0) throw Error(fmt::format("{}: HDF5 error: {}", name_of(where), what));
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
hid_t type_of(c10::ScalarType t) {
  switch (t) {
    case torch::kFloat16: return half_type();
    case torch::kFloat32: return H5T_NATIVE_FLOAT;
    case torch::kFloat64: return H5T_NATIVE_DOUBLE;
    case torch::kInt32: return H5T_NATIVE_INT32;
    case torch::kInt64: return H5T_NATIVE_INT64;
    case torch::kUInt8: return H5T_NATIVE_UINT8;
    default: throw Error(fmt::format("HDF5: cannot store dtype {}", c10::toString(t)));
  }
}
}  // namespace

void quiet() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

Handle create_file(const std::string& path) {
  quiet();
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) throw Error(fmt::format("{}: cannot create HDF5 file", path));
  return Handle(f, H5Fclose);
}

Handle open_file(const std::string& path, bool write) {
  quiet();
  const hid_t f = H5Fopen(path.c_str(), write ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) throw Error(fmt::format("{}: cannot open as HDF5 (damaged or not HDF5)", path));
  return Handle(f, H5Fclose);
}

Handle create_group(hid_t parent, const std::string& name) {
  const hid_t g = H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) throw Error(fmt::format("{}: cannot create group '{}'", name_of(parent), name));
  return Handle(g, H5Gclose);
}

Handle open_group(hid_t parent, const std::string& name) {
  const hid_t g = H5Gopen2(parent, name.c_str(), H5P_DEFAULT);
  if (g < 0) throw Error(fmt::format("{}: no group '{}'", name_of(parent), name));
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
  if (H5Gget_info(group, &info) < 0) return out;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string name(static_cast<std::size_t>(n), '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), n + 1, H5P_DEFAULT);
    out.push_back(name);
  }
  return out;
}

void write_tensor(hid_t parent, const std::string& name, const torch::Tensor& tensor, bool compress) {
  const torch::Tensor t = tensor.detach().cpu().contiguous();
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle plist(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (compress && !dims.empty() && t.numel() > 0) {
    // Chunks of whole rows along the first dimension, at least 64 KiB each (one image of 256x256x3
    // per chunk; 22 of CIFAR's 32x32x3): one-row chunks of a [2.1M, 2] metric state took 28 s to write.
    std::vector<hsize_t> chunk = dims;
    const int64_t row_bytes = std::max<int64_t>(1, t.numel() / std::max<int64_t>(1, t.size(0)) * t.element_size());
    chunk[0] = static_cast<hsize_t>(std::clamp<int64_t>((65536 + row_bytes - 1) / row_bytes, 1, t.size(0)));
    check(H5Pset_chunk(plist.id(), static_cast<int>(chunk.size()), chunk.data()), parent, "chunking " + name);
    check(H5Pset_deflate(plist.id(), 4), parent, "gzip " + name);
  }
  const hid_t type = type_of(t.scalar_type());
  Handle ds(H5Dcreate2(parent, name.c_str(), type, space.id(), H5P_DEFAULT, plist.id(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) throw Error(fmt::format("{}: cannot create dataset '{}'", name_of(parent), name));
  if (t.numel() > 0) check(H5Dwrite(ds.id(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()), parent, "writing " + name);
}

torch::Tensor read_tensor(hid_t parent, const std::string& name) {
  Handle ds(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) throw Error(fmt::format("{}: no dataset '{}'", name_of(parent), name));
  Handle space(H5Dget_space(ds.id()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.id());
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  Handle ftype(H5Dget_type(ds.id()), H5Tclose);
  c10::ScalarType st = torch::kFloat64;
  const H5T_class_t cls = H5Tget_class(ftype.id());
  const std::size_t size = H5Tget_size(ftype.id());
  if (cls == H5T_INTEGER) st = size == 1 ? torch::kUInt8 : (size == 4 ? torch::kInt32 : torch::kInt64);
  else if (cls == H5T_FLOAT) st = size == 2 ? torch::kFloat16 : size == 4 ? torch::kFloat32 : torch::kFloat64;
  std::vector<int64_t> shape(dims.begin(), dims.end());
  torch::Tensor t = torch::empty(shape, st);
  if (t.numel() > 0) check(H5Dread(ds.id(), type_of(st), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()), parent, "reading " + name);
  return t;
}

void write_scalar(hid_t parent, const std::string& name, double v) { write_tensor(parent, name, torch::tensor(v, torch::kFloat64)); }
double read_scalar(hid_t parent, const std::string& name) { return read_tensor(parent, name).item<double>(); }

void set_attr(hid_t obj, const std::string& name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.id(), std::max<std::size_t>(value.size(), 1));
  H5Tset_cset(type.id(), H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Handle a(H5Acreate2(obj, name.c_str(), type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid()) throw Error(fmt::format("{}: cannot create attribute '{}'", name_of(obj), name));
  const std::string v = value.empty() ? std::string(1, '\0') : value;
  check(H5Awrite(a.id(), type.id(), v.data()), obj, "attribute " + name);
}

namespace {
template <typename T>
void set_num_attr(hid_t obj, const std::string& name, T value, hid_t type) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Handle a(H5Acreate2(obj, name.c_str(), type, space.id(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid()) throw Error(fmt::format("{}: cannot create attribute '{}'", name_of(obj), name));
  check(H5Awrite(a.id(), type, &value), obj, "attribute " + name);
}
}  // namespace

void set_attr(hid_t obj, const std::string& name, double value) { set_num_attr(obj, name, value, H5T_NATIVE_DOUBLE); }
void set_attr(hid_t obj, const std::string& name, int64_t value) { set_num_attr(obj, name, value, H5T_NATIVE_INT64); }

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
