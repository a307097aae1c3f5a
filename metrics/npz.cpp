#include "metrics/npz.h"

#include <unistd.h>
#include <zip.h>

#include <cstdio>
#include <cstring>
#include <regex>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::metrics {

namespace {

struct Dtype {
  const char* descr;
  c10::ScalarType type;
};
constexpr Dtype kDtypes[] = {{"<f8", torch::kFloat64}, {"<f4", torch::kFloat32}, {"<f2", torch::kFloat16}, {"<i8", torch::kInt64},
                             {"<i4", torch::kInt32},   {"|u1", torch::kUInt8},   {"|b1", torch::kBool}};

uint64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : uint64_t{1} << 40;
}

torch::Tensor parse_npy(const std::vector<uint8_t>& b, const std::string& what) {
  auto bad = [&](const std::string& m) { return Error(fmt::format("{}: {}", what, m)); };
  if (b.size() < 10 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0) throw bad("not a .npy array (bad magic)");
  const int major = b[6];
  std::size_t hlen = 0, start = 0;
  if (major == 1) {
    hlen = b[8] | (b[9] << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (b.size() < 12) throw bad("truncated header");
    hlen = b[8] | (b[9] << 8) | (b[10] << 16) | (static_cast<std::size_t>(b[11]) << 24);
    start = 12;
  } else {
    throw bad(fmt::format("unsupported .npy version {}", major));
  }
  if (start + hlen > b.size()) throw bad("header goes beyond the end of the array file");
  const std::string header(reinterpret_cast<const char*>(b.data() + start), hlen);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex(R"('descr'\s*:\s*'([^']*)')"))) throw bad("header has no 'descr'");
  const std::string descr = m[1];
  const Dtype* dt = nullptr;
  for (const auto& d : kDtypes)
    if (descr == d.descr) dt = &d;
  if (!dt) throw bad(fmt::format("unsupported dtype '{}' (supported: <f8 <f4 <f2 <i8 <i4 |u1 |b1)", descr));
  if (!std::regex_search(header, m, std::regex(R"('fortran_order'\s*:\s*(True|False))"))) throw bad("header has no 'fortran_order'");
  const bool fortran = m[1] == "True";
  if (!std::regex_search(header, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))"))) throw bad("header has no 'shape'");
  std::vector<int64_t> shape;
  const std::string dims = m[1];
  static const std::regex number(R"(\d+)");
  // Sizes are checked before anything is allocated: a header may claim any shape.
  constexpr int64_t kMaxElements = int64_t{1} << 48;
  int64_t numel = 1;
  for (std::sregex_iterator it(dims.begin(), dims.end(), number), end; it != end; ++it) {
    const std::string digits = it->str();
    const int64_t d = digits.size() > 15 ? kMaxElements + 1 : std::stoll(digits);
    if (d > kMaxElements || (d > 0 && numel > kMaxElements / d))
      throw bad(fmt::format("shape ({}) declares more than 2^48 elements: not an array this program reads", dims));
    numel *= d;
    shape.push_back(d);
  }
  const std::size_t nbytes = static_cast<std::size_t>(numel) * torch::elementSize(dt->type);
  if (b.size() - start - hlen != nbytes)
    throw bad(fmt::format("shape {} of {} needs {} bytes of data, the array has {}", dims, descr, nbytes, b.size() - start - hlen));
  std::vector<int64_t> storage_shape = shape;
  if (fortran) std::reverse(storage_shape.begin(), storage_shape.end());
  torch::Tensor t = torch::empty(storage_shape, dt->type);
  if (nbytes) std::memcpy(t.data_ptr(), b.data() + start + hlen, nbytes);
  if (fortran && shape.size() > 1) {
    std::vector<int64_t> perm(shape.size());
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
  std::string shape = "(";
  for (int64_t i = 0; i < t.dim(); ++i) shape += (i ? ", " : "") + std::to_string(t.size(i));
  shape += t.dim() == 1 ? ",)" : ")";
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", dt->descr, shape);
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<uint8_t>(header.size() & 0xff),
                              static_cast<uint8_t>(header.size() >> 8)};
  out.insert(out.end(), header.begin(), header.end());
  const auto* p = static_cast<const uint8_t*>(t.data_ptr());
  out.insert(out.end(), p, p + t.numel() * t.element_size());
  return out;
}

}  // namespace

std::map<std::string, torch::Tensor> read_npz(const std::string& path) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_RDONLY, &err);
  if (!z) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, err);
    const std::string msg = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    throw Error(fmt::format("{}: cannot open as .npz: {}", path, msg));
  }
  std::map<std::string, torch::Tensor> out;
  try {
    const zip_int64_t n = zip_get_num_entries(z, 0);
    for (zip_int64_t i = 0; i < n; ++i) {
      zip_stat_t st;
      zip_stat_init(&st);
      if (zip_stat_index(z, i, 0, &st) != 0) throw Error(fmt::format("{}: damaged zip directory", path));
      std::string name = st.name;
      if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npy") != 0) continue;
      // The uncompressed size is the archive's claim: checked against this machine's memory
      // before it is allocated (a damaged or hostile entry may declare terabytes).
      if (!(st.valid & ZIP_STAT_SIZE)) throw Error(fmt::format("{}: '{}' declares no size", path, name));
      if (st.size > physical_memory_bytes())
        throw Error(fmt::format("{}: '{}' declares {} bytes uncompressed, more than this machine's memory ({} bytes): damaged, or not "
                                "an array this program can read here",
                                path, name, static_cast<uint64_t>(st.size), physical_memory_bytes()));
      std::vector<uint8_t> bytes(st.size);
      zip_file_t* f = zip_fopen_index(z, i, 0);
      if (!f) throw Error(fmt::format("{}: cannot read '{}'", path, name));
      const zip_int64_t got = zip_fread(f, bytes.data(), st.size);
      zip_fclose(f);
      if (got != static_cast<zip_int64_t>(st.size)) throw Error(fmt::format("{}: '{}' is truncated", path, name));
      name = name.substr(0, name.size() - 4);
      out[name] = parse_npy(bytes, fmt::format("{}: array '{}'", path, name));
    }
  } catch (...) {
    zip_discard(z);
    throw;
  }
  zip_discard(z);
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
