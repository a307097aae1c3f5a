// Tensors in HDF5 datasets, over the torch-free layer of harness/hdf5_core.h.
#pragma once
#include <torch/torch.h>

#include "harness/hdf5_core.h"

namespace dc::h5 {

// Writes a CPU tensor (float16/32/64, int32/64, uint8) as a dataset; `compress` chunks along the
// first dimension and gzips.
void write_tensor(hid_t parent, const std::string& name, const torch::Tensor& t, bool compress = false);
torch::Tensor read_tensor(hid_t parent, const std::string& name);  // read_array's checks
torch::Tensor to_tensor(Array a);
// A view of a tensor's elements for write_array: dc::Error unless it is contiguous, on the CPU and
// of a stored type. The tensor must outlive the view.
ArrayRef ref(const torch::Tensor& t);

}  // namespace dc::h5
