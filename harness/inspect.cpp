#include "harness/inspect.h"

#include <algorithm>
#include <map>
#include <optional>
#include <ostream>

#include <fmt/format.h>

#include "models/weights/family.h"
#include "models/weights/key_mapping.h"
#include "models/weights/manifest.h"
#include "models/weights/safetensors.h"
#include "models/weights/tensor_io.h"

namespace dc::harness {

using weights::KeyShape;

std::string group_digits(int64_t n) {
  std::string s = std::to_string(n < 0 ? -n : n), out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return n < 0 ? "-" + out : out;
}

namespace {

void print_keys_table(std::ostream& out, const std::vector<const KeyShape*>& rows, const std::string& indent) {
  std::size_t w = 4;
  for (const auto* k : rows) w = std::max(w, k->name.size());
  for (const auto* k : rows)
    out << fmt::format("{}{:<{}}  {:<8}  {}\n", indent, k->name, w, k->dtype, st::shape_str(k->shape));
}

}  // namespace

int inspect(const InspectOptions& o, std::ostream& out) {
  // Everything that can fail is done before the first line is printed.
  const st::SafetensorsFile file = st::SafetensorsFile::open(o.path);
  std::optional<weights::Manifest> manifest;
  if (!o.against.empty()) manifest = weights::Manifest::load(o.against);
  std::vector<std::pair<std::string, int64_t>> non_finite;  // tensors with NaN/inf values
  if (o.verify) {
    for (const auto& info : file.tensors()) {
      const torch::Tensor t = st::load_tensor(file, info);
      if (t.is_floating_point() && t.numel()) {
        const int64_t bad = (~torch::isfinite(t)).sum().item<int64_t>();
        if (bad) non_finite.emplace_back(info.name, bad);
      }
    }
  }
  std::vector<KeyShape> keys = weights::keys_of(file);
  std::sort(keys.begin(), keys.end(), [](const KeyShape& a, const KeyShape& b) { return a.name < b.name; });

  std::map<std::string, std::size_t> dtype_count;
  for (const auto& t : file.tensors()) ++dtype_count[st::dtype_name(t.dtype)];
  std::string dtypes;
  for (const auto& [d, n] : dtype_count) dtypes += fmt::format("{}{} x{}", dtypes.empty() ? "" : ", ", d, n);

  out << fmt::format("file        {}\n", o.path);
  out << fmt::format("size        {} bytes (header {} bytes, data {} bytes)\n", group_digits(file.file_size()),
                     group_digits(file.header_size()), group_digits(file.file_size() - 8 - file.header_size()));
  out << fmt::format("tensors     {}\n", file.tensors().size());
  out << fmt::format("dtypes      {}\n", dtypes.empty() ? "-" : dtypes);
  out << fmt::format("parameters  {} floating-point elements ({} elements in all tensors)\n",
                     group_digits(weights::count_elements(keys, true)), group_digits(weights::count_elements(keys, false)));
  if (file.has_metadata()) {
    std::string meta;
    for (const auto& [k, v] : file.metadata()) {
      std::string shown = v.size() > 60 ? v.substr(0, 57) + "..." : v;
      std::replace(shown.begin(), shown.end(), '\n', ' ');
      meta += fmt::format("{}{}={}", meta.empty() ? "" : ", ", k, shown);
    }
    out << fmt::format("metadata    {}\n", meta.empty() ? "(empty)" : meta);
  } else {
    out << "metadata    (none)\n";
  }

  if (o.verify) {
    out << fmt::format("verified    all {} tensors read{}\n", file.tensors().size(),
                       non_finite.empty() ? "; every floating-point value is finite" : "");
    for (const auto& [name, n] : non_finite) out << fmt::format("  non-finite  {}: {} values are NaN or infinite\n", name, n);
  }

  const weights::FamilyReport fam = weights::detect_family(keys);
  out << fmt::format("family      {}\n", fam.headline);
  for (const auto& c : fam.components) {
    std::string details;
    for (const auto& d : c.details) details += (details.empty() ? "" : ", ") + d;
    out << fmt::format("  {:<20} {} ({} tensors, {} elements{})\n", c.family, c.description, c.tensors,
                       group_digits(c.elements), c.prefix.empty() ? "" : ", under '" + c.prefix + "'");
    if (!details.empty()) out << fmt::format("  {:<20} {}\n", "", details);
  }
  if (fam.recognised() && fam.unrecognised_tensors)
    out << fmt::format("  {:<20} {} tensors under {} unrecognised prefix(es)\n", "(other)", fam.unrecognised_tensors,
                       fam.unrecognised_prefixes.size());

  if (o.list_tensors && !keys.empty()) {
    out << "\n";
    std::vector<const KeyShape*> rows;
    for (const auto& k : keys) rows.push_back(&k);
    print_keys_table(out, rows, "");
  }

  if (!manifest) return 0;

  // Comparison with a manifest.
  weights::KeyMapping mapping;
  if (!o.prefix.empty()) mapping.select_prefix(o.prefix);
  const std::vector<KeyShape> actual = weights::keys_of(mapping.apply(keys, o.path));
  const weights::KeyDiff diff = weights::diff_keys(manifest->keys, actual);
  std::map<std::string, const KeyShape*> expected_by_name, actual_by_name;
  for (const auto& k : manifest->keys) expected_by_name[k.name] = &k;
  for (const auto& k : actual) actual_by_name[k.name] = &k;

  out << "\n";
  out << fmt::format("against     {} ({} keys{})\n", o.against, manifest->keys.size(),
                     manifest->num_params ? ", " + group_digits(*manifest->num_params) + " parameters stated" : "");
  if (!o.prefix.empty()) out << fmt::format("compared    keys under '{}' ({} of {})\n", o.prefix, actual.size(), keys.size());
  out << fmt::format("result      {}: {}\n", diff.ok() ? "MATCHES" : "DIFFERS", diff.summary());
  if (!diff.missing.empty()) {
    out << fmt::format("\nmissing from file ({}):\n", diff.missing.size());
    std::vector<const KeyShape*> rows;
    for (const auto& n : diff.missing) rows.push_back(expected_by_name.at(n));
    print_keys_table(out, rows, "  ");
  }
  if (!diff.unexpected.empty()) {
    out << fmt::format("\nunexpected in file ({}):\n", diff.unexpected.size());
    std::vector<const KeyShape*> rows;
    for (const auto& n : diff.unexpected) rows.push_back(actual_by_name.at(n));
    print_keys_table(out, rows, "  ");
  }
  if (!diff.shape_mismatches.empty()) {
    out << fmt::format("\nshape mismatches ({}):\n", diff.shape_mismatches.size());
    std::size_t w = 4;
    for (const auto& s : diff.shape_mismatches) w = std::max(w, s.name.size());
    for (const auto& s : diff.shape_mismatches)
      out << fmt::format("  {:<{}}  file {}  manifest {}\n", s.name, w, st::shape_str(s.actual), st::shape_str(s.expected));
  }
  if (!diff.dtype_differences.empty()) {
    out << fmt::format("\ndtype differences ({}):\n", diff.dtype_differences.size());
    for (const auto& d : diff.dtype_differences)
      out << fmt::format("  {}  file {}  manifest {}{}\n", d.name, d.actual, d.expected,
                         d.compatible ? " (compatible: both floating point)" : " (incompatible)");
  }
  return diff.ok() ? 0 : 1;
}

}  // namespace dc::harness
