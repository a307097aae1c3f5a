#include "harness/results_store.h"

#include <signal.h>
#include <cerrno>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/io_ops.h"
#include "harness/hdf5.h"

namespace fs = std::filesystem;

namespace dc::harness {

namespace {

template <typename T>
torch::Tensor vec_tensor(const std::vector<T>& v, c10::ScalarType st) {
  std::vector<double> d(v.begin(), v.end());
  return torch::tensor(d, torch::kFloat64).to(st).reshape({static_cast<int64_t>(v.size())});
}

void write_run(hid_t file, const RunResult& r) {
  if (!h5::exists(file, "runs")) h5::create_group(file, "runs");
  auto runs = h5::open_group(file, "runs");
  auto g = h5::create_group(runs.id(), result_key(r.spec.run_id, r.shard_index, r.shard_count));
  h5::set_attr(g.id(), "run_id", r.spec.run_id);
  h5::set_attr(g.id(), "shard_index", static_cast<int64_t>(r.shard_index));
  h5::set_attr(g.id(), "shard_count", static_cast<int64_t>(r.shard_count));
  if (!r.partial.empty()) h5::set_attr(g.id(), "partial", r.partial);
  h5::set_attr(g.id(), "name", r.spec.name);
  h5::set_attr(g.id(), "description", describe_run(r.spec));
  h5::set_attr(g.id(), "config", r.spec.resolved.dump(2));  // JSON, which is also YAML
  h5::set_attr(g.id(), "status", r.status);
  h5::set_attr(g.id(), "error", r.error);
  h5::set_attr(g.id(), "baseline", static_cast<int64_t>(r.spec.baseline ? 1 : 0));
  h5::set_attr(g.id(), "order", static_cast<int64_t>(r.spec.order));
  for (const auto& [k, v] : std::map<std::string, std::string>{{"weights", r.weights_note}, {"device", r.device},
                                                               {"thread_settings", r.thread_settings}, {"cpu", r.cpu},
                                                               {"cpu_kernels", r.cpu_kernels}, {"torch_version", r.torch_version},
                                                               {"git_revision", r.git_revision}, {"started_at", r.started_at},
                                                               {"finished_at", r.finished_at},
                                                               {"timing_clock", r.timing_clock}})
    h5::set_attr(g.id(), k, v);
  if (r.status != "complete") return;
  h5::write_tensor(g.id(), "timesteps", vec_tensor(r.timesteps, torch::kInt64));
  h5::write_tensor(g.id(), "full_steps", vec_tensor(r.full_calls, torch::kInt32));
  h5::write_tensor(g.id(), "is_full", vec_tensor(r.is_full, torch::kUInt8));
  if (!r.computed.empty()) {  // what each call computed, named by stage_names (models/unet_call.h)
    h5::write_tensor(g.id(), "computed", computed_tensor(r.computed));
    h5::set_attr(g.id(), "stage_names", nlohmann::json(r.stage_names).dump());
  }
  if (!r.call_macs.empty()) {  // per call, per image, from the stages it computed (macs/ holds scalars only)
    h5::write_tensor(g.id(), "call_macs", vec_tensor(r.call_macs, torch::kFloat64));
    h5::write_tensor(g.id(), "call_macs_all", vec_tensor(r.call_macs_all, torch::kFloat64));
  }
  h5::write_tensor(g.id(), "step_time_ms", vec_tensor(r.step_time_ms, torch::kFloat64));
  h5::set_attr(g.id(), "final_power", r.final_power);
  h5::set_attr(g.id(), "first_sample", r.first_sample);
  auto macs = h5::create_group(g.id(), "macs");
  h5::write_scalar(macs.id(), "full", r.macs_full);
  h5::write_scalar(macs.id(), "partial", r.macs_partial);
  h5::write_scalar(macs.id(), "step_average", r.macs_step_average);
  h5::write_scalar(macs.id(), "full_all", r.macs_full_all);
  h5::write_scalar(macs.id(), "partial_all", r.macs_partial_all);
  h5::write_scalar(macs.id(), "step_average_all", r.macs_step_average_all);
  if (r.macs_partial_all > 0) h5::write_scalar(macs.id(), "partial_over_full_all", r.macs_partial_all / r.macs_full_all);
  {  // getrusage over the sampling, the load average around it (harness/process_usage.h)
    auto u = h5::create_group(g.id(), "usage");
    h5::write_scalar(u.id(), "sampled_seconds", r.usage_seconds);
    h5::write_scalar(u.id(), "user_seconds", r.usage.user_seconds);
    h5::write_scalar(u.id(), "system_seconds", r.usage.system_seconds);
    h5::write_scalar(u.id(), "minor_faults", static_cast<double>(r.usage.minor_faults));
    h5::write_scalar(u.id(), "major_faults", static_cast<double>(r.usage.major_faults));
    h5::write_scalar(u.id(), "load_start", r.load_start);
    h5::write_scalar(u.id(), "load_end", r.load_end);
    h5::write_scalar(u.id(), "cores", static_cast<double>(r.cores));
  }
  auto metrics = h5::create_group(g.id(), "metrics");
  h5::write_scalar(metrics.id(), "seconds", r.seconds);
  h5::write_scalar(metrics.id(), "samples", static_cast<double>(r.samples));
  h5::write_scalar(metrics.id(), "metric_seconds", r.metric_seconds);
  h5::set_attr(g.id(), "resumed_samples", r.resumed_samples);
  h5::write_scalar(metrics.id(), "seconds_per_image", r.samples ? r.seconds / r.samples : 0.0);
  h5::write_scalar(metrics.id(), "samples_per_second", r.seconds > 0 ? r.samples / r.seconds : 0.0);
  if (!r.batch_seconds.empty() && r.batch_seconds.size() == r.batch_rows.size()) {  // the repeats behind s/image's spread
    auto timing = h5::create_group(g.id(), "timing");
    h5::write_tensor(timing.id(), "batch_seconds", vec_tensor(r.batch_seconds, torch::kFloat64));
    h5::write_tensor(timing.id(), "batch_rows", vec_tensor(r.batch_rows, torch::kInt64));
    if (!r.repeat_seconds.empty() && r.repeat_seconds.size() == r.repeat_rows.size()) {
      h5::write_tensor(timing.id(), "repeat_seconds", vec_tensor(r.repeat_seconds, torch::kFloat64));
      h5::write_tensor(timing.id(), "repeat_rows", vec_tensor(r.repeat_rows, torch::kInt64));
    }
  }
  // Per-call wall time split by kind (ms per call for the whole batch set of this process).
  const CallMeans calls = mean_call_ms(r);
  h5::write_scalar(metrics.id(), "full_call_ms", calls.full_ms);
  h5::write_scalar(metrics.id(), "partial_call_ms", calls.partial_ms);
  // The measured partial/full call time ratio, beside macs/partial_over_full_all.
  if (calls.partial_ms > 0 && calls.full_ms > 0) h5::write_scalar(metrics.id(), "partial_over_full_time", calls.partial_ms / calls.full_ms);
  for (const auto& [name, v] : r.quality) h5::write_scalar(metrics.id(), name, v);
  if (!r.provenance.empty()) {
    auto prov = h5::create_group(g.id(), "provenance");
    for (const auto& [name, p] : r.provenance) {
      auto pg = h5::create_group(prov.id(), name);
      const nlohmann::json fields = p.to_json();
      for (auto it = fields.begin(); it != fields.end(); ++it) {
        const std::string& k = it.key();
        const nlohmann::json& v = it.value();
        if (v.is_string()) h5::set_attr(pg.id(), k, v.get<std::string>());
        else h5::set_attr(pg.id(), k, v.get<int64_t>());
      }
    }
  }
  if (!r.quality_arrays.empty()) {
    auto q = h5::create_group(g.id(), "quality");
    for (const auto& [name, t] : r.quality_arrays) h5::write_tensor(q.id(), name, t);
  }
  if (!r.metric_states.empty()) {
    auto st = h5::create_group(g.id(), "state");
    for (const auto& [metric, tensors] : r.metric_states) {
      auto mg = h5::create_group(st.id(), metric);
      for (const auto& [name, t] : tensors) h5::write_tensor(mg.id(), name, t, /*compress=*/t.numel() > 1024);
    }
  }
  if (r.images.defined()) h5::write_tensor(g.id(), "images", r.images, /*compress=*/true);
  if (r.grid.defined()) h5::write_tensor(g.id(), "grid", r.grid, true);
  if (!r.similarity.empty()) {
    auto sim = h5::create_group(g.id(), "similarity");
    for (const auto& [tap, m] : r.similarity) {
      h5::write_tensor(sim.id(), tap, m);
      h5::write_tensor(sim.id(), tap + ".fraction", r.similarity_fraction.at(tap));
    }
  }
}


}  // namespace

ResultsStore::ResultsStore(std::string path, std::string experiment, std::string description)
    : path_(std::move(path)), experiment_(std::move(experiment)), description_(std::move(description)) {
  const fs::path p(path_);
  if (p.has_parent_path()) io::make_folders(p.parent_path().string());
  // Under the writer lock every temporary file of this results file is a dead writer's (a crash,
  // a kill -9, a failed commit that could not remove it), whichever host it ran on.
  remove_temporaries(p.has_parent_path() ? p.parent_path().string() : ".", p.filename().string() + ".tmp.");
  seen_ = identify(path_);
}

void remove_temporaries(const std::string& folder, const std::string& stem) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(folder, ec)) {
    const std::string name = e.path().filename().string();
    const std::string pid = name.rfind(stem, 0) == 0 ? name.substr(stem.size()) : "";
    if (!pid.empty() && pid.find_first_not_of("0123456789") == std::string::npos) fs::remove(e.path(), ec);
  }
}

FileIdentity identify(const std::string& path) {
  FileIdentity id;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return id;
  id.exists = true;
  id.device = static_cast<uint64_t>(st.st_dev);
  id.inode = static_cast<uint64_t>(st.st_ino);
  id.size = static_cast<int64_t>(st.st_size);
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return id;
}

std::map<std::string, std::string> ResultsStore::statuses() const {
  std::map<std::string, std::string> out;
  if (!fs::exists(path_)) return out;
  for (const auto& r : read_results(path_)) out[r.key] = r.status;
  return out;
}

void ResultsStore::commit(const RunResult& result) {
  rewrite({result_key(result.spec.run_id, result.shard_index, result.shard_count)}, &result);
}

void ResultsStore::forget(const std::set<std::string>& keys) { rewrite(keys, nullptr); }

namespace {

// The bytes a run adds to a results file, uncompressed (an upper bound): what the in-memory file
// is sized for.
std::size_t run_bytes(const RunResult& r) {
  auto bytes = [](const torch::Tensor& t) { return t.defined() ? static_cast<std::size_t>(t.numel()) * t.element_size() : 0; };
  std::size_t n = 64 * 1024 + (r.timesteps.size() + r.step_time_ms.size() + r.batch_seconds.size()) * 16 + r.spec.resolved.dump().size();
  n += bytes(r.images) + bytes(r.grid);
  for (const auto& [k, t] : r.similarity) n += bytes(t) + bytes(r.similarity_fraction.count(k) ? r.similarity_fraction.at(k) : torch::Tensor());
  for (const auto& [k, t] : r.quality_arrays) n += bytes(t);
  for (const auto& [m, ts] : r.metric_states)
    for (const auto& [k, t] : ts) n += bytes(t);
  return n;
}

std::string describe_identity(const FileIdentity& id) {
  return id.exists ? fmt::format("inode {}, {} bytes", id.inode, id.size) : "no file";
}

}  // namespace

void ResultsStore::rewrite(const std::set<std::string>& drop, const RunResult* add) {
  // Nothing but this process writes the file while it holds the lock: a change is another
  // program's (a copy over it, a restore, a removal), and writing would lose it or merge into it.
  const FileIdentity now = identify(path_);
  if (now != seen_)
    throw StorageError(fmt::format("{}: the results file was replaced, changed or removed by another program while this process held "
                                   "its lock ({} when read, {} now); nothing was written over it: look at it, then run the same command "
                                   "again (a run's finished batches stay in its journal)",
                                   path_, describe_identity(seen_), describe_identity(now)));
  // The new file is made in memory (libhdf5 never writes to the disk) and written whole with
  // checked writes: a failure leaves the previous file as it was (common/atomic_file.h).
  std::string image;
  {
    auto out = h5::create_memory_file(path_, static_cast<std::size_t>(std::max<int64_t>(now.size, 0)) + (add ? run_bytes(*add) : 0));
    h5::set_attr(out.id(), "experiment", experiment_);
    h5::set_attr(out.id(), "description", description_);
    h5::set_attr(out.id(), "schema", std::string("deepcache-bench results v1 (results/README.md)"));
    h5::create_group(out.id(), "runs");
    if (now.exists) {
      auto in = h5::open_file(path_);
      check_results_schema(in.id(), path_);  // never replace someone else's HDF5 file
      if (h5::exists(in.id(), "runs")) {
        auto runs = h5::open_group(in.id(), "runs");
        for (const auto& id : h5::children(runs.id()))
          if (!drop.count(id)) h5::copy_object(in.id(), "runs/" + id, out.id(), "runs/" + id);
      }
    }
    if (add) write_run(out.id(), *add);
    image = h5::file_image(out.id(), path_);
  }
  write_file_atomically(path_, image);
  seen_ = identify(path_);
}

std::vector<StoredRun> ResultsStore::read_all() const { return fs::exists(path_) ? read_results(path_) : std::vector<StoredRun>{}; }


std::vector<StoredRun> read_results(const std::string& path) {
  std::vector<StoredRun> out;
  for (auto& f : read_results_file(path)) {
    StoredRun s;
    static_cast<StoredRunFields&>(s) = std::move(f);  // moves the fields; f.similarity stays for below
    for (auto& [tap, a] : f.similarity) s.similarity[tap] = h5::to_tensor(std::move(a));
    out.push_back(std::move(s));
  }
  return out;
}

CallMeans mean_call_ms(const RunResult& r) {
  double full = 0, part = 0;
  int n_full = 0, n_part = 0;
  for (std::size_t i = 0; i < r.step_time_ms.size() && i < r.is_full.size(); ++i) {
    if (r.is_full[i]) full += r.step_time_ms[i], ++n_full;
    else part += r.step_time_ms[i], ++n_part;
  }
  return {n_full ? full / n_full : 0.0, n_part ? part / n_part : 0.0};
}

torch::Tensor computed_tensor(const std::vector<std::vector<uint8_t>>& rows) {
  std::size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.size());
  std::vector<uint8_t> flat(rows.size() * width, 0);
  for (std::size_t c = 0; c < rows.size(); ++c) std::copy(rows[c].begin(), rows[c].end(), flat.begin() + static_cast<std::ptrdiff_t>(c * width));
  return torch::from_blob(flat.data(), {static_cast<int64_t>(rows.size()), static_cast<int64_t>(width)}, torch::kUInt8).clone();
}

std::vector<std::vector<uint8_t>> read_computed(const torch::Tensor& t_in, std::size_t calls) {
  if (t_in.dim() != 2 || t_in.size(0) != static_cast<int64_t>(calls))
    throw Error(fmt::format("computed: expected [{} calls, stages], got {}", calls, c10::str(t_in.sizes())));
  const torch::Tensor t = t_in.to(torch::kUInt8).contiguous();
  std::vector<std::vector<uint8_t>> rows(calls);
  const uint8_t* p = t.data_ptr<uint8_t>();
  for (std::size_t c = 0; c < calls; ++c) {
    const uint8_t* row = p + c * static_cast<std::size_t>(t.size(1));
    if (std::any_of(row, row + t.size(1), [](uint8_t v) { return v != 0; })) rows[c].assign(row, row + t.size(1));
  }
  return rows;
}

}  // namespace dc::harness
