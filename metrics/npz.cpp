#include "metrics/npz.h"

#include <unistd.h>
#include <zip.h>

#include <cstdio>
#include <cstring>
#include <algorithm>

#include <fmt/format.h>

#include "common/error.h"
#include "metrics/npy_core.h"

namespace dc::metrics {

namespace {

struct Dtype {
  const char* descr;
  c10::ScalarType type;
};
constexpr Dtype kDtypes[] = {{"<f8", torch::kFloat64}, {"<f4", torch::kFloat32}, {"<f2", torch::kFloat16}, {"<i8", torch::kInt64},
                             {"<i4", torch::kInt32},   {"|u1", torch::kUInt8},   {"|b1", torch::kBool}};

torch::Tensor to_tensor(const npy::Array& a) {
  const Dtype* dt = nullptr;
  for (const auto& d : kDtypes)
    if (a.descr == d.descr) dt = &d;
  if (!dt) throw Error(fmt::format(".npy: dtype '{}' has no tensor type", a.descr));  // npy_core admits only kDtypes
  std::vector<int64_t> storage_shape = a.shape;
  if (a.fortran_order) std::reverse(storage_shape.begin(), storage_shape.end());
  // Booleans are read as bytes and compared: a stored byte other than 0 or 1 is still a valid bool.
  torch::Tensor t = torch::empty(storage_shape, dt->type == torch::kBool ? torch::kUInt8 : dt->type);
  if (!a.data.empty()) std::memcpy(t.data_ptr(), a.data.data(), a.data.size());
  if (dt->type == torch::kBool) t = t.ne(0);
  if (a.fortran_order && a.shape.size() > 1) {
    std::vector<int64_t> perm(a.shape.size());
    for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int64_t>(perm.size() - 1 - i);
    t = t.permute(perm).contiguous();
  }
  return t;
}

std::vector<uint8_t> make_npy(const torch::Tensor& tensor) {
  const torch::Tensor t = tensor.detach().cpu().contiguous();
  const Dtype* dt = nullptr;
  for (const auto& d : kDtypes)
    if (t.scalar_type() == d.type) dt = &d;
  if (!dt) throw Error(fmt::format(".npy: cannot store dtype {}", c10::toString(t.scalar_type())));
  return npy::make_npy(dt->descr, t.sizes().vec(), t.data_ptr(), static_cast<std::size_t>(t.numel() * t.element_size()));
}

}  // namespace

std::map<std::string, torch::Tensor> read_npz(const std::string& path) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, a] : npy::read_npz(path)) out[name] = to_tensor(a);
  return out;
}

void write_npz(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& arrays) {
  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  int err = 0;
  zip_t* z = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!z) throw Error(fmt::format("{}: cannot create", path));
  std::vector<std::vector<uint8_t>> keep;  // buffers must live until zip_close
  keep.reserve(arrays.size());
  for (const auto& [name, t] : arrays) {
    keep.push_back(make_npy(t));
    zip_source_t* src = zip_source_buffer(z, keep.back().data(), keep.back().size(), 0);
    const zip_int64_t idx = src ? zip_file_add(z, (name + ".npy").c_str(), src, ZIP_FL_OVERWRITE) : -1;
    if (idx < 0) {
      if (src) zip_source_free(src);
      zip_discard(z);
      std::remove(tmp.c_str());
      throw Error(fmt::format("{}: cannot add array '{}'", path, name));
    }
    zip_set_file_compression(z, static_cast<zip_uint64_t>(idx), ZIP_CM_STORE, 0);
  }
  if (zip_close(z) != 0) {
    const std::string msg = zip_strerror(z);
    zip_discard(z);
    std::remove(tmp.c_str());
    throw Error(fmt::format("{}: cannot write: {}", path, msg));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(fmt::format("{}: cannot write: {}", path, std::strerror(errno)));
  }
}

std::pair<torch::Tensor, torch::Tensor> read_fid_stats(const std::string& path) {
  const auto a = read_npz(path);
  for (const char* k : {"mu", "sigma"})
    if (!a.count(k)) throw Error(fmt::format("{}: FID statistics need arrays 'mu' and 'sigma' (pytorch-fid .npz); '{}' is missing", path, k));
  torch::Tensor mu = a.at("mu").to(torch::kFloat64), sigma = a.at("sigma").to(torch::kFloat64);
  if (mu.dim() != 1 || sigma.dim() != 2 || sigma.size(0) != mu.size(0) || sigma.size(1) != mu.size(0))
    throw Error(fmt::format("{}: 'mu' {} and 'sigma' {} do not fit together (need [D] and [D, D])", path, c10::str(mu.sizes()), c10::str(sigma.sizes())));
  return {mu, sigma};
}

void write_fid_stats(const std::string& path, const torch::Tensor& mu, const torch::Tensor& sigma) {
  write_npz(path, {{"mu", mu.to(torch::kFloat64)}, {"sigma", sigma.to(torch::kFloat64)}});
}

}  // namespace dc::metrics
