#include "harness/results_codec.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::harness {

namespace {

using h5::ElementType;

// The attributes every run stores about where and how it ran (RunRecord's strings), by name.
const std::vector<std::pair<const char*, std::string RunRecord::*>>& provenance_fields() {
  static const std::vector<std::pair<const char*, std::string RunRecord::*>> fields = {
      {"weights", &RunRecord::weights_note},       {"device", &RunRecord::device},
      {"thread_settings", &RunRecord::thread_settings}, {"cpu", &RunRecord::cpu},
      {"cpu_kernels", &RunRecord::cpu_kernels},    {"torch_version", &RunRecord::torch_version},
      {"git_revision", &RunRecord::git_revision},  {"started_at", &RunRecord::started_at},
      {"finished_at", &RunRecord::finished_at},    {"timing_clock", &RunRecord::timing_clock}};
  return fields;
}

// metrics/* scalars the harness derives from the timings (the rest are quality values).
const std::vector<std::string>& timing_metric_names() {
  static const std::vector<std::string> names = {"seconds",      "samples",         "metric_seconds", "seconds_per_image", "samples_per_second",
                                                 "full_call_ms", "partial_call_ms", "partial_over_full_time"};
  return names;
}

// ---- writing ----

void write_calls(hid_t g, const RunRecord& r) {
  h5::write_values(g, "timesteps", r.timesteps, ElementType::i64);
  h5::write_values(g, "full_steps", r.full_calls, ElementType::i32);
  h5::write_values(g, "is_full", r.is_full, ElementType::u8);
  if (!r.computed.empty()) {  // what each call computed (models/unet_call.h)
    write_computed(g, r.computed);
    h5::set_attr(g, "stage_names", nlohmann::json(r.stage_names).dump());
  }
  if (!r.call_macs.empty()) {  // per call, per image, from the stages it computed (macs/ holds scalars only)
    h5::write_values(g, "call_macs", r.call_macs, ElementType::f64);
    h5::write_values(g, "call_macs_all", r.call_macs_all, ElementType::f64);
  }
  h5::write_values(g, "step_time_ms", r.step_time_ms, ElementType::f64);
  h5::set_attr(g, "policy_facts", r.policy_facts.dump());
}

void write_macs(hid_t g, const RunRecord& r) {
  auto macs = h5::create_group(g, "macs");
  h5::write_scalar(macs.id(), "full", r.macs_full);
  h5::write_scalar(macs.id(), "partial", r.macs_partial);
  h5::write_scalar(macs.id(), "step_average", r.macs_step_average);
  h5::write_scalar(macs.id(), "full_all", r.macs_full_all);
  h5::write_scalar(macs.id(), "partial_all", r.macs_partial_all);
  h5::write_scalar(macs.id(), "step_average_all", r.macs_step_average_all);
  if (r.macs_partial_all > 0) h5::write_scalar(macs.id(), "partial_over_full_all", r.macs_partial_all / r.macs_full_all);
}

// getrusage over the sampling, the load average around it (harness/process_usage.h).
void write_usage(hid_t g, const RunRecord& r) {
  auto u = h5::create_group(g, "usage");
  h5::write_scalar(u.id(), "sampled_seconds", r.usage_seconds);
  h5::write_scalar(u.id(), "user_seconds", r.usage.user_seconds);
  h5::write_scalar(u.id(), "system_seconds", r.usage.system_seconds);
  h5::write_scalar(u.id(), "minor_faults", static_cast<double>(r.usage.minor_faults));
  h5::write_scalar(u.id(), "major_faults", static_cast<double>(r.usage.major_faults));
  h5::write_scalar(u.id(), "load_start", r.load_start);
  h5::write_scalar(u.id(), "load_end", r.load_end);
  h5::write_scalar(u.id(), "cores", static_cast<double>(r.cores));
}

// metrics/*: the timings and the quality values; timing/*: the timings behind s/image's spread.
void write_metrics(hid_t g, const RunRecord& r) {
  auto metrics = h5::create_group(g, "metrics");
  h5::write_scalar(metrics.id(), "seconds", r.seconds);
  h5::write_scalar(metrics.id(), "samples", static_cast<double>(r.samples));
  h5::write_scalar(metrics.id(), "metric_seconds", r.metric_seconds);
  h5::write_scalar(metrics.id(), "seconds_per_image", r.samples ? r.seconds / r.samples : 0.0);
  h5::write_scalar(metrics.id(), "samples_per_second", r.seconds > 0 ? r.samples / r.seconds : 0.0);
  // Per-call wall time split by kind (ms per call for the whole batch set of this process), and the
  // measured partial/full ratio beside macs/partial_over_full_all.
  const CallMeans calls = mean_call_ms(r);
  h5::write_scalar(metrics.id(), "full_call_ms", calls.full_ms);
  h5::write_scalar(metrics.id(), "partial_call_ms", calls.partial_ms);
  if (calls.partial_ms > 0 && calls.full_ms > 0) h5::write_scalar(metrics.id(), "partial_over_full_time", calls.partial_ms / calls.full_ms);
  for (const auto& [name, v] : r.quality) h5::write_scalar(metrics.id(), name, v);
  if (!r.batch_seconds.empty() && r.batch_seconds.size() == r.batch_rows.size()) {  // the repeats behind s/image's spread
    auto timing = h5::create_group(g, "timing");
    h5::write_values(timing.id(), "batch_seconds", r.batch_seconds, ElementType::f64);
    h5::write_values(timing.id(), "batch_rows", r.batch_rows, ElementType::i64);
    if (!r.repeat_seconds.empty() && r.repeat_seconds.size() == r.repeat_rows.size()) {
      h5::write_values(timing.id(), "repeat_seconds", r.repeat_seconds, ElementType::f64);
      h5::write_values(timing.id(), "repeat_rows", r.repeat_rows, ElementType::i64);
    }
  }
}

// provenance/<metric>: each quality value's provenance fields as attributes.
void write_provenance(hid_t g, const RunRecord& r) {
  if (r.metric_provenance.empty()) return;
  auto prov = h5::create_group(g, "provenance");
  for (const auto& [name, fields] : r.metric_provenance) {
    auto pg = h5::create_group(prov.id(), name);
    for (auto it = fields.begin(); it != fields.end(); ++it) {
      if (it.value().is_string()) h5::set_attr(pg.id(), it.key(), it.value().get<std::string>());
      else h5::set_attr(pg.id(), it.key(), it.value().get<int64_t>());
    }
  }
}

void write_arrays(hid_t g, const RunArrays<h5::ArrayRef>& a) {
  if (!a.quality_arrays.empty()) {
    auto q = h5::create_group(g, "quality");
    for (const auto& [name, t] : a.quality_arrays) h5::write_array(q.id(), name, t);
  }
  if (!a.metric_states.empty()) {
    auto st = h5::create_group(g, "state");
    for (const auto& [metric, arrays] : a.metric_states) {
      auto mg = h5::create_group(st.id(), metric);
      for (const auto& [name, t] : arrays) {
        int64_t n = 1;
        for (int64_t d : t.shape) n *= d;
        h5::write_array(mg.id(), name, t, /*compress=*/n > 1024);
      }
    }
  }
  if (a.images) h5::write_array(g, "images", *a.images, /*compress=*/true);
  if (a.grid) h5::write_array(g, "grid", *a.grid, true);
  if (!a.similarity.empty()) {
    auto sim = h5::create_group(g, "similarity");
    for (const auto& [tap, m] : a.similarity) {
      h5::write_array(sim.id(), tap, m);
      auto f = a.similarity_fraction.find(tap);
      if (f != a.similarity_fraction.end()) h5::write_array(sim.id(), tap + ".fraction", f->second);
    }
  }
}

// ---- reading ----

// A stored number checked to be an integer in [lo, hi] (a damaged file says so, never casts garbage).
int64_t checked_int(double v, double lo, double hi, const std::string& where) {
  if (!(v >= lo && v <= hi) || v != std::floor(v))
    throw Error(fmt::format("{} is {}, expected an integer in [{}, {}] (damaged file?)", where, v, lo, hi));
  return static_cast<int64_t>(v);
}

int64_t attr_int(hid_t g, const std::string& name, double fallback, double lo, double hi) {
  return checked_int(h5::get_attr_double(g, name, fallback), lo, hi, fmt::format("{}: attribute '{}'", h5::object_name(g), name));
}

constexpr double kMaxCount = 1e15;

template <typename T>
std::vector<T> read_ints(hid_t g, const std::string& name, double lo, double hi) {
  std::vector<T> out;
  if (!h5::exists(g, name)) return out;
  const std::string where = fmt::format("{}/{}", h5::object_name(g), name);
  for (double v : h5::to_doubles(h5::read_array(g, name))) out.push_back(static_cast<T>(checked_int(v, lo, hi, where + ": a value")));
  return out;
}

std::vector<double> read_doubles(hid_t g, const std::string& name) {
  return h5::exists(g, name) ? h5::to_doubles(h5::read_array(g, name)) : std::vector<double>{};
}

nlohmann::json read_json_attr(hid_t g, const std::string& name, const char* fallback, bool (nlohmann::json::*kind)() const noexcept,
                              const char* what) {
  nlohmann::json j = nlohmann::json::parse(h5::get_attr_string(g, name, fallback), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !(j.*kind)()) throw Error(fmt::format("{}: attribute '{}' is not {} (damaged file?)", h5::object_name(g), name, what));
  return j;
}

void read_header(hid_t g, const std::string& key, StoredRunFile& s) {
  s.key = key;
  s.run_id = h5::get_attr_string(g, "run_id", key);  // files before shard keys: the group name
  s.name = h5::get_attr_string(g, "name");
  s.description = h5::get_attr_string(g, "description");
  s.config_json = h5::get_attr_string(g, "config");
  s.baseline = h5::get_attr_double(g, "baseline") != 0;
  s.order = static_cast<int>(attr_int(g, "order", 0, -(1 << 30), 1 << 30));
  s.status = h5::get_attr_string(g, "status");
  s.error = h5::get_attr_string(g, "error");
  s.shard_count = static_cast<int>(attr_int(g, "shard_count", 1, 1, 1 << 20));
  s.shard_index = static_cast<int>(attr_int(g, "shard_index", 0, 0, s.shard_count - 1));
  s.partial = h5::get_attr_string(g, "partial");
  for (auto& [name, field] : provenance_fields()) s.*field = h5::get_attr_string(g, name);
  s.first_sample = attr_int(g, "first_sample", 0, 0, kMaxCount);
  s.resumed_samples = attr_int(g, "resumed_samples", 0, 0, kMaxCount);
}

void read_calls(hid_t g, StoredRunFile& s) {
  s.timesteps = read_ints<int64_t>(g, "timesteps", -kMaxCount, kMaxCount);
  s.model_calls = static_cast<int>(s.timesteps.size());
  s.full_calls = read_ints<int>(g, "full_steps", 0, (1 << 24) - 1);
  s.is_full = read_ints<int>(g, "is_full", 0, 1);
  s.step_time_ms = read_doubles(g, "step_time_ms");
  s.call_macs = read_doubles(g, "call_macs");
  s.call_macs_all = read_doubles(g, "call_macs_all");
  if (h5::exists(g, "computed")) s.computed = read_computed(g, s.is_full.size());  // absent in earlier files
  const nlohmann::json names = read_json_attr(g, "stage_names", "[]", &nlohmann::json::is_array, "a JSON list of names");
  for (const auto& n : names) {
    if (!n.is_string()) throw Error(fmt::format("{}: attribute 'stage_names' is not a JSON list of names (damaged file?)", h5::object_name(g)));
    s.stage_names.push_back(n.get<std::string>());
  }
  if (h5::has_attr(g, "policy_facts")) {
    s.policy_facts = read_json_attr(g, "policy_facts", "{}", &nlohmann::json::is_object, "a JSON object");
  } else if (const double p = h5::get_attr_double(g, "final_power", 0.0); p != 0.0) {
    s.policy_facts = {{"final_power", p}};  // files before policy facts: deepcache's one fact, as its own attribute
  }
}

// macs/*, metrics/*, usage/*: every scalar as stored (`scalars`), and the typed fields with the
// defaults of files from earlier builds.
void read_scalars(hid_t g, StoredRunFile& s) {
  for (const char* grp : {"macs", "metrics", "usage"}) {
    if (!h5::exists(g, grp)) continue;
    auto m = h5::open_group(g, grp);
    for (const auto& c : h5::children(m.id())) s.scalars[std::string(grp) + "/" + c] = h5::read_scalar(m.id(), c);
  }
  auto get = [&](const std::string& k, double fallback) {
    auto it = s.scalars.find(k);
    return it == s.scalars.end() ? fallback : it->second;
  };
  auto count = [&](const std::string& k) { return checked_int(get(k, 0.0), 0, kMaxCount, fmt::format("{}/{}", h5::object_name(g), k)); };
  s.macs_full = get("macs/full", 0.0);
  s.macs_partial = get("macs/partial", 0.0);
  s.macs_step_average = get("macs/step_average", 0.0);
  s.macs_full_all = get("macs/full_all", 0.0);  // files before issue 31 have the paper's count only
  s.macs_partial_all = get("macs/partial_all", 0.0);
  s.macs_step_average_all = get("macs/step_average_all", 0.0);
  s.usage_seconds = get("usage/sampled_seconds", 0.0);
  s.usage.user_seconds = get("usage/user_seconds", 0.0);
  s.usage.system_seconds = get("usage/system_seconds", 0.0);
  s.usage.minor_faults = count("usage/minor_faults");
  s.usage.major_faults = count("usage/major_faults");
  s.load_start = get("usage/load_start", -1.0);
  s.load_end = get("usage/load_end", -1.0);
  s.cores = static_cast<int>(checked_int(get("usage/cores", 0.0), 0, 1 << 20, h5::object_name(g) + "/usage/cores"));
  s.seconds = get("metrics/seconds", 0.0);
  s.metric_seconds = get("metrics/metric_seconds", 0.0);
  s.samples = count("metrics/samples");
  const auto& own = timing_metric_names();
  for (const auto& [k, v] : s.scalars)
    if (k.rfind("metrics/", 0) == 0 && std::find(own.begin(), own.end(), k.substr(8)) == own.end()) s.quality[k.substr(8)] = v;
  if (h5::exists(g, "timing")) {
    auto t = h5::open_group(g, "timing");
    s.batch_seconds = read_doubles(t.id(), "batch_seconds");
    s.batch_rows = read_ints<int64_t>(t.id(), "batch_rows", 0, kMaxCount);
    s.repeat_seconds = read_doubles(t.id(), "repeat_seconds");
    s.repeat_rows = read_ints<int64_t>(t.id(), "repeat_rows", 0, kMaxCount);
  }
}

void read_arrays(hid_t g, unsigned parts, StoredRunFile& s) {
  RunArrays<h5::Array>& a = s.arrays;
  if ((parts & kSimilarity) && h5::exists(g, "similarity")) {
    auto sim = h5::open_group(g, "similarity");
    for (const auto& c : h5::children(sim.id())) {
      const bool fraction = c.size() > 9 && c.compare(c.size() - 9, 9, ".fraction") == 0;
      (fraction ? a.similarity_fraction[c.substr(0, c.size() - 9)] : a.similarity[c]) = h5::read_array(sim.id(), c);
    }
  }
  if ((parts & kGrid) && h5::exists(g, "grid")) a.grid = h5::read_array(g, "grid");
  if ((parts & kImages) && h5::exists(g, "images")) a.images = h5::read_array(g, "images");
  if ((parts & kQualityArrays) && h5::exists(g, "quality")) {
    auto q = h5::open_group(g, "quality");
    for (const auto& c : h5::children(q.id())) a.quality_arrays[c] = h5::read_array(q.id(), c);
  }
  if (!h5::exists(g, "state")) return;
  auto st = h5::open_group(g, "state");
  for (const auto& m : h5::children(st.id())) {
    auto mg = h5::open_group(st.id(), m);
    for (const auto& n : h5::children(mg.id())) {
      s.state_shapes[m + "/" + n] = h5::dataset_shape(mg.id(), n);
      if (parts & kStates) a.metric_states[m][n] = h5::read_array(mg.id(), n);
    }
  }
}

StoredRunFile read_run_group(hid_t runs, const std::string& key, unsigned parts) {
  auto g = h5::open_group(runs, key);
  StoredRunFile s;
  read_header(g.id(), key, s);
  read_calls(g.id(), s);
  read_scalars(g.id(), s);
  read_arrays(g.id(), parts, s);
  return s;
}

}  // namespace

std::string result_key(const std::string& run_id, int shard_index, int shard_count) {
  return shard_count > 1 ? fmt::format("{}.shard-{}-of-{}", run_id, shard_index, shard_count) : run_id;
}

void write_computed(hid_t g, const std::vector<std::vector<uint8_t>>& rows) {
  std::size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.size());
  std::vector<uint8_t> flat(rows.size() * width, 0);
  for (std::size_t c = 0; c < rows.size(); ++c) std::copy(rows[c].begin(), rows[c].end(), flat.begin() + static_cast<std::ptrdiff_t>(c * width));
  h5::write_array(g, "computed", {ElementType::u8, {static_cast<int64_t>(rows.size()), static_cast<int64_t>(width)}, flat.data()});
}

std::vector<std::vector<uint8_t>> read_computed(hid_t g, std::size_t calls) {
  const h5::Array a = h5::read_array(g, "computed");
  if (a.type != ElementType::u8 || a.shape.size() != 2 || a.shape[0] != static_cast<int64_t>(calls))
    throw Error(fmt::format("{}/computed: expected uint8 [{} calls, stages] (damaged file?)", h5::object_name(g), calls));
  const std::size_t width = static_cast<std::size_t>(a.shape[1]);
  std::vector<std::vector<uint8_t>> rows(calls);
  for (std::size_t c = 0; c < calls; ++c) {
    const uint8_t* row = a.bytes.data() + c * width;
    if (std::any_of(row, row + width, [](uint8_t v) { return v != 0; })) rows[c].assign(row, row + width);
  }
  return rows;
}

CallMeans mean_call_ms(const RunRecord& r) {
  double full = 0, part = 0;
  int n_full = 0, n_part = 0;
  for (std::size_t i = 0; i < r.step_time_ms.size() && i < r.is_full.size(); ++i) {
    if (r.is_full[i]) full += r.step_time_ms[i], ++n_full;
    else part += r.step_time_ms[i], ++n_part;
  }
  return {n_full ? full / n_full : 0.0, n_part ? part / n_part : 0.0};
}

void write_run(hid_t file, const RunHeader& header, const RunRecord& r, const RunArrays<h5::ArrayRef>& arrays) {
  if (!h5::exists(file, "runs")) h5::create_group(file, "runs");
  auto runs = h5::open_group(file, "runs");
  auto g = h5::create_group(runs.id(), result_key(header.run_id, r.shard_index, r.shard_count));
  h5::set_attr(g.id(), "run_id", header.run_id);
  h5::set_attr(g.id(), "shard_index", static_cast<int64_t>(r.shard_index));
  h5::set_attr(g.id(), "shard_count", static_cast<int64_t>(r.shard_count));
  if (!r.partial.empty()) h5::set_attr(g.id(), "partial", r.partial);
  h5::set_attr(g.id(), "name", header.name);
  h5::set_attr(g.id(), "description", header.description);
  h5::set_attr(g.id(), "config", header.config_json);  // JSON, which is also YAML
  h5::set_attr(g.id(), "status", r.status);
  h5::set_attr(g.id(), "error", r.error);
  h5::set_attr(g.id(), "baseline", static_cast<int64_t>(header.baseline ? 1 : 0));
  h5::set_attr(g.id(), "order", static_cast<int64_t>(header.order));
  for (const auto& [name, field] : provenance_fields()) h5::set_attr(g.id(), name, r.*field);
  if (r.status != "complete") return;
  h5::set_attr(g.id(), "first_sample", r.first_sample);
  h5::set_attr(g.id(), "resumed_samples", r.resumed_samples);
  write_calls(g.id(), r);
  write_macs(g.id(), r);
  write_usage(g.id(), r);
  write_metrics(g.id(), r);
  write_provenance(g.id(), r);
  write_arrays(g.id(), arrays);
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

ResultsFileInfo read_results_info(const std::string& path) {
  auto f = h5::open_file(path);
  check_results_schema(f.id(), path);
  return {h5::get_attr_string(f.id(), "experiment"), h5::get_attr_string(f.id(), "description")};
}

void write_results_info(hid_t f, const ResultsFileInfo& info) {
  h5::set_attr(f, "experiment", info.experiment);
  h5::set_attr(f, "description", info.description);
  h5::set_attr(f, "schema", std::string("deepcache-bench results v1 (results/README.md)"));
  h5::create_group(f, "runs");
}

std::vector<StoredRunFile> read_results_file(const std::string& path, unsigned parts) {
  auto f = h5::open_file(path);
  check_results_schema(f.id(), path);
  std::vector<StoredRunFile> out;
  if (!h5::exists(f.id(), "runs")) return out;
  auto runs = h5::open_group(f.id(), "runs");
  for (const auto& id : h5::children(runs.id())) out.push_back(read_run_group(runs.id(), id, parts));
  std::stable_sort(out.begin(), out.end(), [](const StoredRunFile& a, const StoredRunFile& b) { return a.order < b.order; });
  return out;
}

std::map<std::string, std::string> stored_statuses(const std::string& path) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return out;
  for (const auto& r : read_results_file(path, kNoArrays)) out[r.key] = r.status;
  return out;
}

StoredRunFile read_result(const std::string& path, const std::string& key, unsigned parts) {
  auto f = h5::open_file(path);
  check_results_schema(f.id(), path);
  if (!h5::exists(f.id(), "runs/" + key)) throw Error(fmt::format("{}: no run '{}'", path, key));
  auto runs = h5::open_group(f.id(), "runs");
  return read_run_group(runs.id(), key, parts);
}

std::map<std::string, h5::Array> read_metric_state(const std::string& path, const std::string& key, const std::string& metric) {
  std::map<std::string, h5::Array> out;
  auto f = h5::open_file(path);
  check_results_schema(f.id(), path);
  const std::string group = "runs/" + key + "/state/" + metric;
  if (!h5::exists(f.id(), group)) return out;
  auto g = h5::open_group(f.id(), group);
  for (const auto& n : h5::children(g.id())) out[n] = h5::read_array(g.id(), n);
  return out;
}

}  // namespace dc::harness
