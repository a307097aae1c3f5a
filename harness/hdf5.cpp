#include "harness/hdf5.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::h5 {

namespace {
ElementType element_type_of(c10::ScalarType t) {
  switch (t) {
    case torch::kFloat16: return ElementType::f16;
    case torch::kFloat32: return ElementType::f32;
    case torch::kFloat64: return ElementType::f64;
    case torch::kInt32: return ElementType::i32;
    case torch::kInt64: return ElementType::i64;
    case torch::kUInt8: return ElementType::u8;
    default: throw Error(fmt::format("HDF5: cannot store dtype {}", c10::toString(t)));
  }
}
c10::ScalarType scalar_type_of(ElementType t) {
  switch (t) {
    case ElementType::f16: return torch::kFloat16;
    case ElementType::f32: return torch::kFloat32;
    case ElementType::f64: return torch::kFloat64;
    case ElementType::i32: return torch::kInt32;
    case ElementType::i64: return torch::kInt64;
    case ElementType::u8: return torch::kUInt8;
  }
  return torch::kFloat64;
}
}  // namespace

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
    if (H5Pset_chunk(plist.id(), static_cast<int>(chunk.size()), chunk.data()) < 0 || H5Pset_deflate(plist.id(), 4) < 0)
      throw Error(fmt::format("{}: HDF5 error: chunking and gzip for '{}'", object_name(parent), name));
  }
  const hid_t type = type_of(element_type_of(t.scalar_type()));
  Handle ds(H5Dcreate2(parent, name.c_str(), type, space.id(), H5P_DEFAULT, plist.id(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) throw Error(fmt::format("{}: cannot create dataset '{}'", object_name(parent), name));
  if (t.numel() > 0 && H5Dwrite(ds.id(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) < 0)
    throw Error(fmt::format("{}: HDF5 error: writing {}", object_name(parent), name));
}

torch::Tensor to_tensor(Array a) {
  torch::Tensor t = torch::empty(a.shape, scalar_type_of(a.type));
  if (!a.bytes.empty()) std::memcpy(t.data_ptr(), a.bytes.data(), a.bytes.size());
  return t;
}

torch::Tensor read_tensor(hid_t parent, const std::string& name) { return to_tensor(read_array(parent, name)); }

void write_scalar(hid_t parent, const std::string& name, double v) { write_tensor(parent, name, torch::tensor(v, torch::kFloat64)); }

}  // namespace dc::h5
