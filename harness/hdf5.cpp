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
  write_array(parent, name, {element_type_of(t.scalar_type()), t.sizes().vec(), t.data_ptr()}, compress);
}

torch::Tensor to_tensor(Array a) {
  torch::Tensor t = torch::empty(a.shape, scalar_type_of(a.type));
  if (!a.bytes.empty()) std::memcpy(t.data_ptr(), a.bytes.data(), a.bytes.size());
  return t;
}

ArrayRef ref(const torch::Tensor& t) {
  if (!t.defined() || !t.is_contiguous() || !t.device().is_cpu())
    throw Error("HDF5: a tensor to store must be defined, contiguous and on the CPU");
  return {element_type_of(t.scalar_type()), t.sizes().vec(), t.data_ptr()};
}

torch::Tensor read_tensor(hid_t parent, const std::string& name) { return to_tensor(read_array(parent, name)); }


}  // namespace dc::h5
