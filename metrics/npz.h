// NumPy .npy/.npz files (format: numpy/lib/format.py, version 1.0-3.0), as pytorch-fid reads and
// writes its statistics: an .npz (zip, stored or deflated) with arrays `mu` [D] and `sigma` [D, D].
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace dc::metrics {

// Every array of an .npz, by name (without ".npy"). Supported dtypes: <f8, <f4, <f2, <i8, <i4,
// |u1, |b1; C or Fortran order. Throws dc::Error naming the file and the array.
std::map<std::string, torch::Tensor> read_npz(const std::string& path);

// Writes arrays (CPU-copied, C order) as an uncompressed .npz like np.savez, atomically.
void write_npz(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& arrays);

// pytorch-fid statistics: `mu` [D] and `sigma` [D, D] as float64. Throws dc::Error when either is
// missing or the shapes disagree.
std::pair<torch::Tensor, torch::Tensor> read_fid_stats(const std::string& path);
void write_fid_stats(const std::string& path, const torch::Tensor& mu, const torch::Tensor& sigma);

}  // namespace dc::metrics
