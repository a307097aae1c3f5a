// safetensors <-> torch::Tensor.
#pragma once
#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "models/weights/safetensors.h"

namespace dc::st {

c10::ScalarType to_scalar_type(DType dtype);
// Throws dc::Error for torch dtypes the format cannot hold (complex, quantized...).
DType from_scalar_type(c10::ScalarType type);

// Copies one tensor out of the mapped file (CPU, contiguous), converting it to `to` when given.
// BOOL tensors are checked to hold only 0 and 1. Throws dc::Error naming file and tensor.
torch::Tensor load_tensor(const SafetensorsFile& file, const TensorInfo& info,
                          std::optional<c10::ScalarType> to = std::nullopt);
torch::Tensor load_tensor(const SafetensorsFile& file, std::string_view name,
                          std::optional<c10::ScalarType> to = std::nullopt);

// Every tensor of the file, by name.
std::map<std::string, torch::Tensor> load_all(const SafetensorsFile& file,
                                              std::optional<c10::ScalarType> to = std::nullopt);

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Writes tensors (any device; copied to CPU contiguous) atomically. Throws dc::Error.
void save_tensors(const std::string& path, const NamedTensors& tensors,
                  const std::map<std::string, std::string>& metadata = {});

}  // namespace dc::st
