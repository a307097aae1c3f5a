// Reading a results file without LibTorch (results/README.md has the schema): the schema check
// and every run's stored fields, as `run` (to skip complete runs), `report` and `merge` read them.
// harness/results_store.h turns the similarity arrays into tensors. Fuzzed by fuzz/fuzz_hdf5.cpp.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "harness/hdf5_core.h"

namespace dc::harness {

// The group name of a run's result: its id, or "<id>.shard-<i>-of-<n>" for a shard.
std::string result_key(const std::string& run_id, int shard_index, int shard_count);

// What a stored run says about itself (for `run` to skip it and for `report`).
struct StoredRunFields {
  std::string key;  // group name: run_id, or run_id.shard-i-of-n
  std::string run_id, name, status, error, config_json, partial;
  std::string device, timing_clock;  // provenance: how the times were taken
  int shard_index = 0, shard_count = 1;
  bool baseline = false;
  int order = 0;
  std::map<std::string, double> scalars;  // macs/*, metrics/*, usage/*
  std::vector<int> full_calls;  // stored as full_steps
  int model_calls = 0;
  double final_power = 0.0;  // the non-uniform search's final power (0 when none)
  // Provenance as stored (each "" when absent): description, weights, thread_settings, cpu,
  // cpu_kernels, torch_version, git_revision, started_at, finished_at.
  std::map<std::string, std::string> provenance;
};

struct StoredRunFile : StoredRunFields {
  std::map<std::string, h5::Array> similarity;  // tap (and tap.fraction) -> the stored array
};

// dc::Error unless `f` is a results file this build reads: schema "deepcache-bench results v1", or
// an older file with a /runs group. Another HDF5 file, or a newer schema, is refused by name.
void check_results_schema(hid_t f, const std::string& path);

// Every run of a results file, in their `order`; dc::Error naming the file and the object for a
// file that is not one or is damaged.
std::vector<StoredRunFile> read_results_file(const std::string& path);

}  // namespace dc::harness
