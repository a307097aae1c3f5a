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
#include "harness/quality.h"
#include "harness/results_store.h"
#include "harness/writer_lock.h"
#include "metrics/accumulators.h"

namespace fs = std::filesystem;

namespace dc::harness {

namespace {

struct Found {
  std::string path, key;
};

using Shards = std::vector<std::pair<Found, RunResult>>;

// Checks that the shards (sorted by their first sample) are slices of one run, each once, without
// overlap; returns their indices, and whether samples are missing (shards absent or failed).
std::vector<std::string> check_shards(const Shards& shards, bool& gaps) {
  const auto& [hf, head] = shards.front();
  const std::string& id = head.spec.run_id;
  const int n = head.shard_count;
  std::vector<std::string> held;
  for (std::size_t i = 0; i < shards.size(); ++i) {
    const auto& [f, r] = shards[i];
    if (r.spec.resolved != head.spec.resolved)
      throw Error(fmt::format("run {}: {} ({}) and {} ({}) hold shards of different configurations", id, hf.path, hf.key, f.path, f.key));
    if (r.shard_count != n)
      throw Error(fmt::format("run {}: {} is a shard of {} and {} of {}: one run is cut one way", id, hf.path, n, f.path, r.shard_count));
    // Shards of one run made the same calls (the policies so far decide alike for every batch; their
    // per-call MACs are then equal too, and the head's stand for the run).
    if (r.timesteps != head.timesteps || r.full_calls != head.full_calls || r.is_full != head.is_full || r.computed != head.computed ||
        r.call_macs != head.call_macs)
      throw Error(fmt::format("run {}: {} and {} record different model calls", id, hf.path, f.path));
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
  gaps = static_cast<int>(shards.size()) != n;
  for (const auto& [f, r] : shards) {
    gaps = gaps || r.first_sample != next;
    next = r.first_sample + r.samples;
  }
  gaps = gaps || next != head.spec.samples.n;
  return held;
}

// The head shard's result with everything that adds up over shards emptied.
RunResult empty_join(const RunResult& head) {
  RunResult m = head;
  m.shard_index = 0;
  m.shard_count = 1;
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
  m.metric_states.clear();
  m.quality_arrays.clear();
  m.similarity.clear();
  m.similarity_fraction.clear();
  m.quality.clear();
  m.metric_provenance.clear();
  return m;
}

// Adds one shard's counts, times, usage and metric states to the joined result `m`.
void add_shard(RunResult& m, const Found& f, const RunResult& r) {
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

// The shards' images (and the grid from the first of them) and class labels, when every shard has them.
void join_images(RunResult& m, const Shards& shards) {
  std::vector<torch::Tensor> images, labels;
  for (const auto& [f, r] : shards) {
    if (r.images.defined()) images.push_back(r.images);
    if (r.quality_arrays.count("class_labels")) labels.push_back(r.quality_arrays.at("class_labels"));
  }
  if (images.size() == shards.size()) {
    m.images = torch::cat(images);
    const int64_t g = std::min<int64_t>(m.spec.samples.grid, m.images.size(0));
    if (g > 0) m.grid = image::make_grid(m.images.slice(0, 0, g), static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(g)))));
  } else {
    m.images = torch::Tensor();
    if (shards.front().second.first_sample != 0) m.grid = torch::Tensor();
  }
  if (labels.size() == shards.size()) m.quality_arrays["class_labels"] = torch::cat(labels);
}

// Joins the shards of one run.
RunResult join(Shards& shards, bool partial_ok, const std::string& out) {
  std::sort(shards.begin(), shards.end(), [](const auto& a, const auto& b) { return a.second.first_sample < b.second.first_sample; });
  const RunResult& head = shards.front().second;
  const std::string& id = head.spec.run_id;
  const int n = head.shard_count;
  bool gaps = false;
  const std::vector<std::string> held = check_shards(shards, gaps);
  if (gaps && !partial_ok) {
    std::vector<std::string> files;
    for (const auto& [f, r] : shards) files.push_back(f.path);
    throw Error(fmt::format("run {}: shards {} of {} found ({}); the others are missing or failed (merge --partial keeps what is there)",
                            id, fmt::join(held, ", "), n, fmt::join(files, ", ")));
  }
  RunResult m = empty_join(head);
  for (const auto& [f, r] : shards) add_shard(m, f, r);
  join_images(m, shards);
  if (gaps) {
    m.partial = fmt::format("shards {} of {}: {} of {} samples", fmt::join(held, ", "), n, m.samples, m.spec.samples.n);
    m.notes.push_back("partial: metric values are not computed from a partial set of shards");
  } else {
    m.spec.results_path = out;
    quality_from_states(m.spec, m);  // as a whole run's result: the intervals and the per-sample features behind them
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
    const ResultsFileInfo info = read_results_info(path);
    const std::string& exp = info.experiment;
    if (experiment.empty()) {
      experiment = exp;
      description = info.description;
    }
    if (exp != experiment)
      throw Error(fmt::format("merge: {} holds experiment '{}', {} '{}': merge one experiment at a time", o.inputs.front(), experiment, path, exp));
    for (const auto& r : read_results_file(path, kNoArrays)) {
      if (r.status != "complete") continue;  // a failed shard counts as missing
      if (r.shard_count > 1) shards[r.run_id].push_back({path, r.key});
      else if (!whole.count(r.run_id)) whole[r.run_id] = {path, r.key};
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
    Shards loaded;
    for (const auto& f : list) loaded.emplace_back(f, read_run_result(f.path, f.key));
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
