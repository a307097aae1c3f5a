// Results of one experiment in one HDF5 file (results/README.md has the schema). Each run is
// committed atomically: the whole file is made anew in memory (existing runs copied, the new one
// added; libhdf5 never writes to the disk) and written as a temporary file in the same folder,
// fsynced and renamed over the old one, every step checked (common/atomic_file.h), so a kill -9,
// a full disk or an I/O error at any moment leaves either the previous or the new complete file.
#pragma once
#include <torch/torch.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include <H5Ipublic.h>  // hid_t

#include "harness/config.h"
#include "harness/results_codec.h"

namespace dc::harness {

// A run's result: what is stored (RunRecord: harness/results_codec.h) with its settings and tensors.
struct RunResult : RunRecord {
  RunSpec spec;
  torch::Tensor images;  // [n, C, H, W] uint8 (optional)
  torch::Tensor grid;    // [C, H, W] uint8 (optional)
  std::map<std::string, torch::Tensor> similarity;           // tap -> [S, S] float64
  std::map<std::string, torch::Tensor> similarity_fraction;  // tap -> [S]
  std::map<std::string, torch::Tensor> quality_arrays;       // quality/<name>, e.g. the predicted class histogram
  // state/<metric>/<name>: the exact accumulator states (metrics/accumulators.h), for merging shards.
  std::map<std::string, std::map<std::string, torch::Tensor>> metric_states;
  std::vector<std::string> notes;  // said on the console after the run (not stored)
};

// A stored complete result read back whole (every array), for `merge`: its settings read again
// through the experiment reader (harness/config.h, read_stored_run).
RunResult read_run_result(const std::string& path, const std::string& key);

// A stored run's fields with its similarity maps (and its grid, when asked for) as tensors.
struct StoredRun : StoredRunFields {
  std::map<std::string, torch::Tensor> similarity;  // tap -> the stored [S, S] map
  torch::Tensor grid;
};

// What identifies a file's version on disk: a results file replaced or changed underneath a
// writer shows as another one.
struct FileIdentity {
  bool exists = false;
  uint64_t device = 0, inode = 0;
  int64_t size = 0, mtime_ns = 0;
  bool operator==(const FileIdentity& o) const {
    return exists == o.exists && device == o.device && inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
  }
  bool operator!=(const FileIdentity& o) const { return !(*this == o); }
};
FileIdentity identify(const std::string& path);

class ResultsStore {
 public:
  // path: the experiment's .h5 file; its folder is made (dc::StorageError when it cannot be). Made
  // while holding the file's WriterLock: every leftover temporary file of it is removed (a dead
  // writer's), and the file as it is now is what the commits may replace.
  ResultsStore(std::string path, std::string experiment, std::string description);
  const std::string& path() const { return path_; }
  // result key (result_key) -> status of the committed runs (empty when there is no file yet).
  std::map<std::string, std::string> statuses() const;
  // Each commit writes the whole file anew and renames it over the old one (common/atomic_file.h):
  // durable when it returns. dc::StorageError when the disk refuses a step (the file as it was) or
  // the file was replaced, changed or removed since this store read it (nothing written).
  void commit(const RunResult& result);
  // Removes the results stored under `keys` (result keys), atomically as a commit.
  void forget(const std::set<std::string>& keys);
  std::vector<StoredRun> read_all() const;

 private:
  // The file rewritten without the runs `drop`, plus `add` (when given).
  void rewrite(const std::set<std::string>& drop, const RunResult* add);
  std::string path_, experiment_, description_;
  FileIdentity seen_;  // the file as this store last read or wrote it
};

// Removes the files `<folder>/<stem><digits>` (temporary files `<name>.tmp.<pid>`); only under
// the lock that makes every such file a dead writer's.
void remove_temporaries(const std::string& folder, const std::string& stem);

// Reads a results file without an experiment spec (for `report`): the fields, the similarity maps,
// and each run's grid with `grids`.
std::vector<StoredRun> read_results(const std::string& path, bool grids = false);

}  // namespace dc::harness
