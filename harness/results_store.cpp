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

// The run's tensors as views for the codec; `keep` holds the contiguous CPU tensors whose storage
// they view (a view points into the storage, which moving the tensor handle leaves in place).
RunArrays<h5::ArrayRef> arrays_of(const RunResult& r, std::vector<torch::Tensor>& keep) {
  auto view = [&](const torch::Tensor& t) {
    keep.push_back(t.detach().cpu().contiguous());
    return h5::ref(keep.back());
  };
  RunArrays<h5::ArrayRef> a;
  if (r.images.defined()) a.images = view(r.images);
  if (r.grid.defined()) a.grid = view(r.grid);
  for (const auto& [tap, m] : r.similarity) {
    a.similarity[tap] = view(m);
    a.similarity_fraction[tap] = view(r.similarity_fraction.at(tap));
  }
  for (const auto& [name, t] : r.quality_arrays) a.quality_arrays[name] = view(t);
  for (const auto& [metric, tensors] : r.metric_states)
    for (const auto& [name, t] : tensors) a.metric_states[metric][name] = view(t);
  return a;
}

void write_result(hid_t file, const RunResult& r) {
  const RunHeader header{r.spec.run_id, r.spec.name, describe_run(r.spec), r.spec.resolved.dump(2), r.spec.baseline, r.spec.order};
  std::vector<torch::Tensor> keep;
  const RunArrays<h5::ArrayRef> arrays = r.status == "complete" ? arrays_of(r, keep) : RunArrays<h5::ArrayRef>{};
  write_run(file, header, r, arrays);
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

std::map<std::string, std::string> ResultsStore::statuses() const { return stored_statuses(path_); }

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
    write_results_info(out.id(), {experiment_, description_});
    if (now.exists) {
      auto in = h5::open_file(path_);
      check_results_schema(in.id(), path_);  // never replace someone else's HDF5 file
      if (h5::exists(in.id(), "runs")) {
        auto runs = h5::open_group(in.id(), "runs");
        for (const auto& id : h5::children(runs.id()))
          if (!drop.count(id)) h5::copy_object(in.id(), "runs/" + id, out.id(), "runs/" + id);
      }
    }
    if (add) write_result(out.id(), *add);
    image = h5::file_image(out.id(), path_);
  }
  write_file_atomically(path_, image);
  seen_ = identify(path_);
}

std::vector<StoredRun> ResultsStore::read_all() const { return fs::exists(path_) ? read_results(path_) : std::vector<StoredRun>{}; }


std::vector<StoredRun> read_results(const std::string& path, bool grids) {
  std::vector<StoredRun> out;
  for (auto& f : read_results_file(path, grids ? unsigned{kSimilarity | kGrid} : unsigned{kSimilarity})) {
    StoredRun s;
    static_cast<StoredRunFields&>(s) = std::move(f);  // moves the fields; f.arrays stay for below
    for (auto& [tap, a] : f.arrays.similarity) s.similarity[tap] = h5::to_tensor(std::move(a));
    if (f.arrays.grid) s.grid = h5::to_tensor(std::move(*f.arrays.grid));
    out.push_back(std::move(s));
  }
  return out;
}

RunResult read_run_result(const std::string& path, const std::string& key) {
  StoredRunFile f = read_result(path, key, kAllArrays);
  RunResult r;
  r.spec = read_stored_run(f.config_json, f.run_id, fmt::format("{}: runs/{}", path, key));
  r.spec.name = f.name;
  r.spec.baseline = f.baseline;
  r.spec.order = f.order;
  static_cast<RunRecord&>(r) = std::move(static_cast<RunRecord&>(f));
  RunArrays<h5::Array>& a = f.arrays;
  if (a.images) r.images = h5::to_tensor(std::move(*a.images));
  if (a.grid) r.grid = h5::to_tensor(std::move(*a.grid));
  for (auto& [tap, m] : a.similarity) r.similarity[tap] = h5::to_tensor(std::move(m));
  for (auto& [tap, m] : a.similarity_fraction) r.similarity_fraction[tap] = h5::to_tensor(std::move(m));
  for (auto& [name, t] : a.quality_arrays) r.quality_arrays[name] = h5::to_tensor(std::move(t));
  for (auto& [metric, arrays] : a.metric_states)
    for (auto& [name, t] : arrays) r.metric_states[metric][name] = h5::to_tensor(std::move(t));
  return r;
}

}  // namespace dc::harness
