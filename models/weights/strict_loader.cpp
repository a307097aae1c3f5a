#include "models/weights/strict_loader.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/error.h"
#include "models/weights/tensor_io.h"

namespace dc::weights {

namespace {

std::string long_name(c10::ScalarType t) { return st::dtype_long_name(st::from_scalar_type(t)); }

bool is_floating(const std::string& dtype) { return dtype_name_is_floating(dtype); }
bool is_integral(const std::string& dtype) { return !is_floating(dtype) && dtype != "bool"; }

// A source of named tensors that can be loaded one by one.
struct Source {
  std::string what;
  std::vector<KeyShape> keys;
  std::function<torch::Tensor(const std::string&)> load;
};

LoadSummary load_impl(torch::nn::Module& module, const Source& src, const LoadOptions& options) {
  const std::vector<MappedKey> mapped = options.mapping.apply(src.keys, src.what);
  std::map<std::string, torch::Tensor> targets;
  for (const auto& p : module.named_parameters(true)) targets.emplace(p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) targets.emplace(b.key(), b.value());

  // 1. Check everything. A one-element tensor stored as [1] fits a 0-d parameter and vice versa
  // (converters differ in how they store scalars such as BatchNorm's num_batches_tracked).
  KeyDiff diff = diff_keys(module_keys(module), keys_of(mapped));
  auto scalar_like = [](const std::vector<int64_t>& s) { return s.size() <= 1 && (s.empty() || s[0] == 1); };
  diff.shape_mismatches.erase(std::remove_if(diff.shape_mismatches.begin(), diff.shape_mismatches.end(),
                                             [&](const ShapeMismatch& m) { return scalar_like(m.expected) && scalar_like(m.actual); }),
                              diff.shape_mismatches.end());
  std::vector<std::string> type_problems;
  for (const auto& d : diff.dtype_differences) {
    bool ok = (is_floating(d.expected) && is_floating(d.actual)) ||
              (is_integral(d.expected) && is_integral(d.actual));
    if (!ok) type_problems.push_back(fmt::format("{}: file has {}, module has {}", d.name, d.actual, d.expected));
  }
  if (!diff.missing.empty() || !diff.unexpected.empty() || !diff.shape_mismatches.empty() ||
      !type_problems.empty()) {
    std::map<std::string, const MappedKey*> by_target;
    for (const auto& m : mapped) by_target[m.target] = &m;
    // One line (bad input is one line naming the file): the counts, then the first few
    // differences; `inspect FILE --against MANIFEST` lists them all.
    std::vector<std::string> items;
    size_t hidden = 0;
    constexpr size_t kShown = 3;  // per kind of difference
    const auto cap = [&](size_t from) {  // keeps the first kShown items added since `from`
      if (items.size() - from > kShown) {
        hidden += items.size() - from - kShown;
        items.resize(from + kShown);
      }
    };
    for (const auto& k : diff.missing) items.push_back(fmt::format("missing in file: {} {}", k, st::shape_str(targets.at(k).sizes().vec())));
    cap(0);
    size_t from = items.size();
    for (const auto& k : diff.unexpected) {
      const MappedKey& m = *by_target.at(k);
      items.push_back(m.source == m.target ? fmt::format("unexpected in file: {} {}", k, st::shape_str(m.shape))
                                           : fmt::format("unexpected in file: {} (from '{}') {}", k, m.source, st::shape_str(m.shape)));
    }
    cap(from);
    from = items.size();
    for (const auto& sm : diff.shape_mismatches)
      items.push_back(fmt::format("shape mismatch: {}: file {}, module {}", sm.name, st::shape_str(sm.actual), st::shape_str(sm.expected)));
    cap(from);
    from = items.size();
    for (const auto& t : type_problems) items.push_back("type mismatch: " + t);
    cap(from);
    std::string msg = fmt::format(
        "{}: weights do not match {} ({} missing, {} unexpected, {} mis-shaped, {} of incompatible "
        "type; key mapping: {}); nothing was loaded: ", src.what, options.module_name, diff.missing.size(),
        diff.unexpected.size(), diff.shape_mismatches.size(), type_problems.size(), options.mapping.describe());
    for (size_t i = 0; i < items.size(); ++i) msg += (i ? "; " : "") + items[i];
    if (hidden > 0) msg += fmt::format("; and {} more (`deepcache-bench inspect {}` lists the file's keys)", hidden, src.what);
    throw Error(msg);
  }

  // 2. Read and convert everything before touching the module.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> assignments;  // (module tensor, value)
  LoadSummary summary;
  for (const auto& m : mapped) {
    torch::Tensor dst = targets.at(m.target);
    torch::Tensor v = src.load(m.source);
    if (m.transform != Transform::Copy) v = v.reshape(m.shape);
    if (v.sizes() != dst.sizes()) v = v.reshape(dst.sizes());  // scalar stored as [1] (checked above)
    bool keep_file_dtype = options.precision == Precision::File && v.is_floating_point();
    if (!keep_file_dtype && v.scalar_type() != dst.scalar_type()) v = v.to(dst.scalar_type());
    if (long_name(v.scalar_type()) != m.dtype) ++summary.converted;
    v = v.to(dst.device());
    summary.elements += v.numel();
    assignments.emplace_back(dst, v);
  }

  // 3. Assign.
  torch::NoGradGuard no_grad;
  for (auto& [dst, v] : assignments) {
    if (dst.scalar_type() == v.scalar_type()) dst.copy_(v);
    else dst.set_data(v);
  }
  summary.tensors = assignments.size();
  return summary;
}

}  // namespace

std::vector<KeyShape> module_keys(const torch::nn::Module& module) {
  std::vector<KeyShape> out;
  for (const auto& p : module.named_parameters(true))
    out.push_back({p.key(), p.value().sizes().vec(), long_name(p.value().scalar_type())});
  for (const auto& b : module.named_buffers(true))
    out.push_back({b.key(), b.value().sizes().vec(), long_name(b.value().scalar_type())});
  return out;
}

KeyDiff check_module(const torch::nn::Module& module, const std::vector<KeyShape>& keys) {
  return diff_keys(keys, module_keys(module));
}

LoadSummary load_strict(torch::nn::Module& module, const st::SafetensorsFile& file, const LoadOptions& options) {
  Source src;
  src.what = file.path();
  src.keys = keys_of(file);
  src.load = [&file](const std::string& name) { return st::load_tensor(file, name); };
  return load_impl(module, src, options);
}

LoadSummary load_strict(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& tensors,
                        const std::string& what, const LoadOptions& options) {
  Source src;
  src.what = what;
  for (const auto& [name, t] : tensors) src.keys.push_back({name, t.sizes().vec(), long_name(t.scalar_type())});
  src.load = [&tensors](const std::string& name) { return tensors.at(name).detach().clone(); };
  return load_impl(module, src, options);
}

std::vector<std::pair<std::string, torch::Tensor>> state_dict(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : module.named_parameters(true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) out.emplace_back(b.key(), b.value());
  return out;
}

}  // namespace dc::weights
