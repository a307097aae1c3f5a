#include "harness/results_file.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::harness {

namespace {

// An integer attribute (stored as a number), checked to be one in [lo, hi].
int get_attr_int(hid_t obj, const std::string& name, int fallback, int lo, int hi) {
  const double v = h5::get_attr_double(obj, name, fallback);
  if (!(v >= lo && v <= hi) || v != std::floor(v))
    throw Error(fmt::format("{}: attribute '{}' is {}, expected an integer in [{}, {}] (damaged file?)", h5::object_name(obj), name, v, lo, hi));
  return static_cast<int>(v);
}

StoredRunFile read_stored_run(hid_t runs, const std::string& id) {
  auto g = h5::open_group(runs, id);
  StoredRunFile s;
  s.key = id;
  s.run_id = h5::get_attr_string(g.id(), "run_id", id);  // files before shard keys: the group name
  s.shard_count = get_attr_int(g.id(), "shard_count", 1, 1, 1 << 20);
  s.shard_index = get_attr_int(g.id(), "shard_index", 0, 0, s.shard_count - 1);
  s.partial = h5::get_attr_string(g.id(), "partial");
  s.name = h5::get_attr_string(g.id(), "name");
  s.status = h5::get_attr_string(g.id(), "status");
  s.error = h5::get_attr_string(g.id(), "error");
  s.config_json = h5::get_attr_string(g.id(), "config");
  s.device = h5::get_attr_string(g.id(), "device");
  s.timing_clock = h5::get_attr_string(g.id(), "timing_clock");
  s.baseline = h5::get_attr_double(g.id(), "baseline") != 0;
  s.order = get_attr_int(g.id(), "order", 0, -(1 << 30), 1 << 30);
  s.final_power = h5::get_attr_double(g.id(), "final_power", 0.0);
  for (const char* k : {"description", "weights", "thread_settings", "cpu", "cpu_kernels", "torch_version", "git_revision", "started_at",
                        "finished_at"})
    s.provenance[k] = h5::get_attr_string(g.id(), k);
  for (const char* grp : {"macs", "metrics", "usage"}) {
    if (!h5::exists(g.id(), grp)) continue;
    auto m = h5::open_group(g.id(), grp);
    for (const auto& c : h5::children(m.id())) s.scalars[std::string(grp) + "/" + c] = h5::read_scalar(m.id(), c);
  }
  if (h5::exists(g.id(), "full_steps"))
    for (double v : h5::to_doubles(h5::read_array(g.id(), "full_steps"))) {
      if (!(v >= 0 && v < (1 << 24)) || v != std::floor(v))
        throw Error(fmt::format("{}/full_steps: {} is not a model-call index (damaged file?)", h5::object_name(g.id()), v));
      s.full_calls.push_back(static_cast<int>(v));
    }
  if (h5::exists(g.id(), "timesteps")) {
    const std::vector<int64_t> shape = h5::dataset_shape(g.id(), "timesteps");
    int64_t n = 1;
    for (int64_t d : shape) n = std::min<int64_t>(n * d, int64_t{1} << 30);
    s.model_calls = static_cast<int>(n);
  }
  if (h5::exists(g.id(), "similarity")) {
    auto sim = h5::open_group(g.id(), "similarity");
    for (const auto& c : h5::children(sim.id())) s.similarity[c] = h5::read_array(sim.id(), c);
  }
  return s;
}

}  // namespace

std::string result_key(const std::string& run_id, int shard_index, int shard_count) {
  return shard_count > 1 ? fmt::format("{}.shard-{}-of-{}", run_id, shard_index, shard_count) : run_id;
}

void check_results_schema(hid_t f, const std::string& path) {
  const std::string schema = h5::get_attr_string(f, "schema", "");
  const std::string ours = "deepcache-bench results v";
  if (schema.rfind(ours + "1 ", 0) == 0 || schema == ours + "1") return;
  if (schema.rfind(ours, 0) == 0)
    throw Error(fmt::format("{}: results schema '{}' is newer than this deepcache-bench reads (v1): use the build that wrote it", path, schema));
  if (!schema.empty())
    throw Error(fmt::format("{}: not a deepcache-bench results file (schema '{}'); refusing to read or replace it", path, schema));
  if (!h5::exists(f, "runs"))  // files from before the schema attribute always have /runs
    throw Error(fmt::format("{}: an HDF5 file, but not a deepcache-bench results file (no /runs group, no schema attribute); "
                            "refusing to read or replace it",
                            path));
}

std::vector<StoredRunFile> read_results_file(const std::string& path) {
  auto f = h5::open_file(path);
  check_results_schema(f.id(), path);
  std::vector<StoredRunFile> out;
  if (!h5::exists(f.id(), "runs")) return out;
  auto runs = h5::open_group(f.id(), "runs");
  for (const auto& id : h5::children(runs.id())) out.push_back(read_stored_run(runs.id(), id));
  std::stable_sort(out.begin(), out.end(), [](const StoredRunFile& a, const StoredRunFile& b) { return a.order < b.order; });
  return out;
}

}  // namespace dc::harness
