#include "harness/merge.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <ostream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.h"
#include "common/image_io.h"
#include "harness/config.h"
#include "harness/hdf5.h"
#include "harness/quality.h"
#include "harness/results_store.h"
#include "harness/writer_lock.h"
#include "metrics/accumulators.h"

namespace fs = std::filesystem;

namespace dc::harness {

namespace {

template <typename T>
std::vector<T> read_vec(hid_t g, const std::string& name) {
  if (!h5::exists(g, name)) return {};
  const torch::Tensor t = h5::read_tensor(g, name).to(torch::kFloat64).contiguous();
  std::vector<T> v(static_cast<std::size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = static_cast<T>(t.data_ptr<double>()[i]);
  return v;
}

// A complete stored result, read back whole.
RunResult load_result(hid_t file, const std::string& key, const std::string& path) {
  auto g = h5::open_group(file, "runs/" + key);
  const hid_t id = g.id();
  const std::string where = fmt::format("{}: runs/{}", path, key);
  RunResult r;
  r.spec = read_stored_run(h5::get_attr_string(id, "config"), h5::get_attr_string(id, "run_id", key), where);
  r.spec.name = h5::get_attr_string(id, "name");
  r.spec.baseline = h5::get_attr_double(id, "baseline") != 0;
  r.spec.order = static_cast<int>(h5::get_attr_double(id, "order"));
  r.status = h5::get_attr_string(id, "status");
  r.shard_index = static_cast<int>(h5::get_attr_double(id, "shard_index", 0));
  r.shard_count = static_cast<int>(h5::get_attr_double(id, "shard_count", 1));
  r.first_sample = static_cast<int64_t>(h5::get_attr_double(id, "first_sample"));
  r.final_power = h5::get_attr_double(id, "final_power");
  r.weights_note = h5::get_attr_string(id, "weights");
  r.device = h5::get_attr_string(id, "device");
  r.thread_settings = h5::get_attr_string(id, "thread_settings");
  r.cpu = h5::get_attr_string(id, "cpu");
  r.cpu_kernels = h5::get_attr_string(id, "cpu_kernels");
  r.torch_version = h5::get_attr_string(id, "torch_version");
  r.git_revision = h5::get_attr_string(id, "git_revision");
  r.started_at = h5::get_attr_string(id, "started_at");
  r.finished_at = h5::get_attr_string(id, "finished_at");
  r.timing_clock = h5::get_attr_string(id, "timing_clock");
  r.timesteps = read_vec<int64_t>(id, "timesteps");
  r.full_calls = read_vec<int>(id, "full_steps");
  r.is_full = read_vec<int>(id, "is_full");
  r.step_time_ms = read_vec<double>(id, "step_time_ms");
  if (h5::exists(id, "computed")) r.computed = read_computed(h5::read_tensor(id, "computed"), r.is_full.size());
  try {
    r.stage_names = nlohmann::json::parse(h5::get_attr_string(id, "stage_names", "[]")).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception&) {
    throw Error(fmt::format("{}: stage_names is not a JSON list of names (damaged file?)", where));
  }
  if (h5::exists(id, "call_macs")) r.call_macs = read_vec<double>(id, "call_macs");
  if (h5::exists(id, "call_macs_all")) r.call_macs_all = read_vec<double>(id, "call_macs_all");
  r.batch_seconds = read_vec<double>(id, "timing/batch_seconds");
  r.batch_rows = read_vec<int64_t>(id, "timing/batch_rows");
  r.repeat_seconds = read_vec<double>(id, "timing/repeat_seconds");
  r.repeat_rows = read_vec<int64_t>(id, "timing/repeat_rows");
  r.macs_full = h5::read_scalar(id, "macs/full");
  r.macs_partial = h5::read_scalar(id, "macs/partial");
  r.macs_step_average = h5::read_scalar(id, "macs/step_average");
  auto scalar_or = [&](const std::string& name, double fallback) { return h5::exists(id, name) ? h5::read_scalar(id, name) : fallback; };
  r.macs_full_all = scalar_or("macs/full_all", 0.0);  // files before issue 31 have the paper's count only
  r.macs_partial_all = scalar_or("macs/partial_all", 0.0);
  r.macs_step_average_all = scalar_or("macs/step_average_all", 0.0);
  r.usage_seconds = scalar_or("usage/sampled_seconds", 0.0);
  r.usage.user_seconds = scalar_or("usage/user_seconds", 0.0);
  r.usage.system_seconds = scalar_or("usage/system_seconds", 0.0);
  auto count_or_zero = [](double v) { return v >= 0 && v < 1e15 ? static_cast<int64_t>(v) : int64_t{0}; };  // a damaged value counts nothing
  r.usage.minor_faults = count_or_zero(scalar_or("usage/minor_faults", 0.0));
  r.usage.major_faults = count_or_zero(scalar_or("usage/major_faults", 0.0));
  r.load_start = scalar_or("usage/load_start", -1.0);
  r.load_end = scalar_or("usage/load_end", -1.0);
  r.cores = static_cast<int>(std::min<int64_t>(count_or_zero(scalar_or("usage/cores", 0.0)), 1 << 20));
  r.seconds = h5::read_scalar(id, "metrics/seconds");
  if (h5::exists(id, "metrics/metric_seconds")) r.metric_seconds = h5::read_scalar(id, "metrics/metric_seconds");
  r.resumed_samples = static_cast<int64_t>(h5::get_attr_double(id, "resumed_samples"));
  r.samples = static_cast<int64_t>(h5::read_scalar(id, "metrics/samples"));
  if (h5::exists(id, "images")) r.images = h5::read_tensor(id, "images");
  if (h5::exists(id, "grid")) r.grid = h5::read_tensor(id, "grid");
  if (h5::exists(id, "quality/class_labels")) r.quality_arrays["class_labels"] = h5::read_tensor(id, "quality/class_labels");
  if (h5::exists(id, "similarity")) {
    auto sim = h5::open_group(id, "similarity");
    for (const auto& c : h5::children(sim.id())) {
      const bool fraction = c.size() > 9 && c.compare(c.size() - 9, 9, ".fraction") == 0;
      (fraction ? r.similarity_fraction[c.substr(0, c.size() - 9)] : r.similarity[c]) = h5::read_tensor(sim.id(), c);
    }
  }
  if (h5::exists(id, "state")) {
    auto st = h5::open_group(id, "state");
    for (const auto& m : h5::children(st.id())) {
      auto mg = h5::open_group(st.id(), m);
      for (const auto& n : h5::children(mg.id())) r.metric_states[m][n] = h5::read_tensor(mg.id(), n);
    }
  }
  return r;
}

struct Found {
  std::string path, key;
  StoredRun stored;
};

// Joins the shards of one run (sorted by their first sample).
RunResult join(std::vector<std::pair<Found, RunResult>>& shards, bool partial_ok, const std::string& out) {
  std::sort(shards.begin(), shards.end(), [](const auto& a, const auto& b) { return a.second.first_sample < b.second.first_sample; });
  const RunResult& head = shards.front().second;
  const std::string& id = head.spec.run_id;
  const int n = head.shard_count;
  std::vector<std::string> held;
  for (std::size_t i = 0; i < shards.size(); ++i) {
    const auto& [f, r] = shards[i];
    const auto& h = shards.front();
    if (r.spec.resolved != head.spec.resolved)
      throw Error(fmt::format("run {}: {} ({}) and {} ({}) hold shards of different configurations", id, h.first.path, h.first.key, f.path, f.key));
    if (r.shard_count != n)
      throw Error(fmt::format("run {}: {} is a shard of {} and {} of {}: one run is cut one way", id, h.first.path, n, f.path, r.shard_count));
    // Shards of one run made the same calls (the policies so far decide alike for every batch; their
    // per-call MACs are then equal too, and the head's stand for the run).
    if (r.timesteps != head.timesteps || r.full_calls != head.full_calls || r.is_full != head.is_full || r.computed != head.computed ||
        r.call_macs != head.call_macs)
      throw Error(fmt::format("run {}: {} and {} record different model calls", id, h.first.path, f.path));
    if (i > 0) {
      const auto& [pf, pr] = shards[i - 1];
      if (pr.shard_index == r.shard_index)
        throw Error(fmt::format("run {}: shard {}/{} twice, in {} and {} (merge each slice once)", id, r.shard_index, n, pf.path, f.path));
      if (pr.first_sample + pr.samples > r.first_sample)
        throw Error(fmt::format("run {}: the slices of {} and {} overlap", id, pf.path, f.path));
    }
    held.push_back(std::to_string(r.shard_index));
  }
  int64_t next = 0;
  bool gaps = static_cast<int>(shards.size()) != n;
  for (const auto& [f, r] : shards) {
    gaps = gaps || r.first_sample != next;
    next = r.first_sample + r.samples;
  }
  gaps = gaps || next != head.spec.samples.n;
  if (gaps && !partial_ok) {
    std::vector<std::string> files;
    for (const auto& [f, r] : shards) files.push_back(f.path);
    throw Error(fmt::format("run {}: shards {} of {} found ({}); the others are missing or failed (merge --partial keeps what is there)",
                            id, fmt::join(held, ", "), n, fmt::join(files, ", ")));
  }
  RunResult m = head;
  m.shard_index = 0;
  m.shard_count = 1;
  m.first_sample = head.first_sample;
  m.samples = 0;
  m.seconds = 0;
  m.metric_seconds = 0;
  m.resumed_samples = 0;
  m.usage = {};
  m.usage_seconds = 0;
  m.batch_seconds.clear();
  m.batch_rows.clear();
  m.repeat_seconds.clear();
  m.repeat_rows.clear();
  std::fill(m.step_time_ms.begin(), m.step_time_ms.end(), 0.0);
  std::vector<torch::Tensor> images, labels;
  bool all_images = true;
  m.metric_states.clear();
  m.quality_arrays.clear();
  m.similarity.clear();
  m.similarity_fraction.clear();
  for (const auto& [f, r] : shards) {
    m.samples += r.samples;
    m.seconds += r.seconds;
    m.metric_seconds += r.metric_seconds;
    m.resumed_samples += r.resumed_samples;
    // The OS's account adds up over shards; the busiest machine's load and the fewest cores stand for the run.
    m.usage += r.usage;
    m.usage_seconds += r.usage_seconds;
    m.load_start = std::max(m.load_start, r.load_start);
    m.load_end = std::max(m.load_end, r.load_end);
    if (r.cores > 0) m.cores = m.cores > 0 ? std::min(m.cores, r.cores) : r.cores;
    // Timing per batch and the repeats, shard after shard (each shard timed on its own machine).
    m.batch_seconds.insert(m.batch_seconds.end(), r.batch_seconds.begin(), r.batch_seconds.end());
    m.batch_rows.insert(m.batch_rows.end(), r.batch_rows.begin(), r.batch_rows.end());
    m.repeat_seconds.insert(m.repeat_seconds.end(), r.repeat_seconds.begin(), r.repeat_seconds.end());
    m.repeat_rows.insert(m.repeat_rows.end(), r.repeat_rows.begin(), r.repeat_rows.end());
    for (std::size_t c = 0; c < m.step_time_ms.size() && c < r.step_time_ms.size(); ++c) m.step_time_ms[c] += r.step_time_ms[c];
    all_images = all_images && r.images.defined();
    if (r.images.defined()) images.push_back(r.images);
    if (r.quality_arrays.count("class_labels")) labels.push_back(r.quality_arrays.at("class_labels"));
    if (r.first_sample == 0) {
      m.similarity = r.similarity;
      m.similarity_fraction = r.similarity_fraction;
    }
    for (const auto& [name, state] : r.metric_states) {
      auto it = m.metric_states.find(name);
      if (it == m.metric_states.end()) m.metric_states[name] = state;
      else it->second = metrics::merge_states(name, it->second, state, fmt::format("{}: runs/{}", f.path, f.key));
    }
  }
  if (all_images && !images.empty()) {
    m.images = torch::cat(images);
    const int64_t g = std::min<int64_t>(m.spec.samples.grid, m.images.size(0));
    if (g > 0) m.grid = image::make_grid(m.images.slice(0, 0, g), static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(g)))));
  } else {
    m.images = torch::Tensor();
    if (head.first_sample != 0) m.grid = torch::Tensor();
  }
  if (labels.size() == shards.size() && !labels.empty()) m.quality_arrays["class_labels"] = torch::cat(labels);
  m.quality.clear();
  m.provenance.clear();
  if (gaps) {
    m.partial = fmt::format("shards {} of {}: {} of {} samples", fmt::join(held, ", "), n, m.samples, m.spec.samples.n);
    m.notes.push_back("partial: metric values are not computed from a partial set of shards");
  } else {
    m.spec.results_path = out;
    quality_from_states(m.spec, m);
    // As a whole run's result: the intervals, not the per-sample features behind them.
    for (auto it = m.metric_states.begin(); it != m.metric_states.end();)
      it = metrics::is_features_state(it->first) ? m.metric_states.erase(it) : std::next(it);
  }
  return m;
}

}  // namespace

MergeSummary merge_results(const MergeOptions& o, std::ostream& log) {
  if (o.inputs.empty()) throw Error("merge: no results files given");
  MergeSummary s;
  std::string experiment, description;
  std::map<std::string, std::vector<Found>> shards;  // run id -> shard results
  std::map<std::string, Found> whole;                 // run id -> a complete unsharded result
  for (const auto& path : o.inputs) {
    if (!fs::is_regular_file(path)) throw Error(fmt::format("merge: {}: no such results file", path));
    std::string exp;
    {
      auto f = h5::open_file(path);
      exp = h5::get_attr_string(f.id(), "experiment");
      if (experiment.empty()) {
        experiment = exp;
        description = h5::get_attr_string(f.id(), "description");
      }
    }
    if (exp != experiment)
      throw Error(fmt::format("merge: {} holds experiment '{}', {} '{}': merge one experiment at a time", o.inputs.front(), experiment, path, exp));
    for (const auto& r : read_results(path)) {
      if (r.status != "complete") continue;  // a failed shard counts as missing
      if (r.shard_count > 1) shards[r.run_id].push_back({path, r.key, r});
      else if (!whole.count(r.run_id)) whole[r.run_id] = {path, r.key, r};
    }
  }
  const std::string out_path = o.out.empty() ? fmt::format("results/{}/{}.h5", experiment, experiment) : o.out;
  const WriterLock lock(out_path, "merge");
  ResultsStore out(out_path, experiment, description);
  s.out = out_path;
  for (auto& [id, list] : shards) {
    if (whole.count(id)) {
      log << fmt::format("run {}: complete in {}; its shards are left as they are\n", id, whole[id].path);
      continue;
    }
    std::vector<std::pair<Found, RunResult>> loaded;
    for (const auto& f : list) {
      auto file = h5::open_file(f.path);
      loaded.emplace_back(f, load_result(file.id(), f.key, f.path));
    }
    s.shards += static_cast<int>(loaded.size());
    RunResult m = join(loaded, o.partial, o.out);
    out.commit(m);
    ++s.runs;
    log << fmt::format("run {}: {} shard(s) merged, {} samples{}\n", id, loaded.size(), m.samples, m.partial.empty() ? "" : " (" + m.partial + ")");
    for (const auto& note : m.notes) log << fmt::format("run {}: note: {}\n", id, note);
  }
  return s;
}

}  // namespace dc::harness
