#include "models/weights/tensor_io.h"

#include <cstring>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::st {

c10::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::F64: return torch::kFloat64;
    case DType::F32: return torch::kFloat32;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::I64: return torch::kInt64;
    case DType::I32: return torch::kInt32;
    case DType::I16: return torch::kInt16;
    case DType::I8: return torch::kInt8;
    case DType::U8: return torch::kUInt8;
    case DType::BOOL: return torch::kBool;
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled dtype");
}

DType from_scalar_type(c10::ScalarType type) {
  switch (type) {
    case torch::kFloat64: return DType::F64;
    case torch::kFloat32: return DType::F32;
    case torch::kFloat16: return DType::F16;
    case torch::kBFloat16: return DType::BF16;
    case torch::kInt64: return DType::I64;
    case torch::kInt32: return DType::I32;
    case torch::kInt16: return DType::I16;
    case torch::kInt8: return DType::I8;
    case torch::kUInt8: return DType::U8;
    case torch::kBool: return DType::BOOL;
    default: throw Error(fmt::format("torch dtype {} cannot be stored in safetensors", c10::toString(type)));
  }
}

torch::Tensor load_tensor(const SafetensorsFile& file, const TensorInfo& info,
                          std::optional<c10::ScalarType> to) {
  torch::Tensor t = torch::empty(info.shape, torch::TensorOptions().dtype(to_scalar_type(info.dtype)));
  // The mapped bytes are not aligned in general: copy rather than wrap with from_blob.
  if (info.nbytes()) std::memcpy(t.data_ptr(), file.data(info), info.nbytes());
  if (info.dtype == DType::BOOL && info.nbytes()) {
    const uint8_t* p = file.data(info);
    for (uint64_t i = 0; i < info.nbytes(); ++i)
      if (p[i] > 1)
        throw Error(fmt::format("{}: tensor '{}': BOOL element {} holds byte {} (must be 0 or 1)",
                                file.path(), info.name, i, p[i]));
  }
  if (to && *to != t.scalar_type()) t = t.to(*to);
  return t;
}

torch::Tensor load_tensor(const SafetensorsFile& file, std::string_view name,
                          std::optional<c10::ScalarType> to) {
  return load_tensor(file, file.at(name), to);
}

std::map<std::string, torch::Tensor> load_all(const SafetensorsFile& file,
                                              std::optional<c10::ScalarType> to) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& info : file.tensors()) out.emplace(info.name, load_tensor(file, info, to));
  return out;
}

void save_tensors(const std::string& path, const NamedTensors& tensors,
                  const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> keep;  // owns the contiguous CPU copies while writing
  std::vector<TensorBytes> rows;
  keep.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) throw Error(fmt::format("{}: tensor '{}' is undefined", path, name));
    torch::Tensor c = tensor.detach().to(torch::kCPU).contiguous();
    keep.push_back(c);
    TensorBytes row;
    row.name = name;
    row.dtype = from_scalar_type(c.scalar_type());
    row.shape = c.sizes().vec();
    row.data = c.data_ptr();
    row.nbytes = c.numel() * c.element_size();
    rows.push_back(std::move(row));
  }
  write_safetensors(path, rows, metadata);
}

}  // namespace dc::st
