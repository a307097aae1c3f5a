// The results file's HDF5 layout (results/README.md), written and read here and nowhere else,
// without LibTorch: `run` and `merge` write runs through write_run, `run` (to skip complete runs),
// `report`, `export` and `merge` read them through read_results_file / read_result.
// harness/results_store.h turns a RunResult's tensors into the arrays written here and the arrays
// read back into tensors. Fuzzed by fuzz/fuzz_hdf5.cpp (every field and every array it reads).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/hdf5_core.h"
#include "harness/process_usage.h"

namespace dc::harness {

// The group name of a run's result: its id, or "<id>.shard-<i>-of-<n>" for a shard.
std::string result_key(const std::string& run_id, int shard_index, int shard_count);

// Who a stored run is: written from its RunSpec (harness/config.h), read back as stored.
struct RunHeader {
  std::string run_id, name, description;
  std::string config_json;  // the resolved settings (JSON)
  bool baseline = false;
  int order = 0;  // its position in the experiment
};

// Everything a run's result holds except its arrays (RunArrays). A failed run stores the status,
// the error and the provenance strings only.
struct RunRecord {
  std::string status = "complete";  // complete | failed
  std::string error;
  // A shard's result is stored under "<run id>.shard-<i>-of-<n>" (results/README.md), so shards of
  // one run never overwrite or skip each other, whatever file they write to; `merge` joins them.
  int shard_index = 0, shard_count = 1;
  std::string partial;            // merged from some shards only (`merge --partial`): which
  int64_t first_sample = 0;
  int64_t samples = 0;            // images of this result (a shard's: its slice)
  int64_t resumed_samples = 0;    // samples replayed from the journal of an interrupted process
  std::vector<int64_t> timesteps;  // t of each model call
  std::vector<int> full_calls;     // model calls that ran the full network (stored as full_steps)
  std::vector<int> is_full;        // per call (the last batch's)
  // What each call computed (the last batch's; models/unet_call.h stage ids, named by stage_names;
  // an empty row: the whole UNet skipped) and its MACs per image averaged over the run's images.
  std::vector<std::vector<uint8_t>> computed;
  std::vector<std::string> stage_names;
  std::vector<double> call_macs, call_macs_all;
  std::vector<double> step_time_ms;  // per call, summed over batches, device-synchronised
  // What the caching policy resolved beyond its settings (PolicySettings::facts, e.g. deepcache's
  // {"final_power": 1.38}); an empty object without caching.
  nlohmann::json policy_facts = nlohmann::json::object();
  double macs_full = 0.0, macs_partial = 0.0, macs_step_average = 0.0;  // as the paper counts
  double macs_full_all = 0.0, macs_partial_all = 0.0, macs_step_average_all = 0.0;  // every multiply-accumulate (metrics/macs.h)
  double seconds = 0.0;              // sampling wall time (model calls and decoding, summed over batches)
  std::vector<double> batch_seconds;  // each batch's share of `seconds`, in sample order (journal replays included)
  std::vector<int64_t> batch_rows;    // and its samples
  // timing.repeats: the first batch sampled again after the run (images discarded), each time and
  // its samples; not in `seconds` (docs/experiments.md, "timing.repeats").
  std::vector<double> repeat_seconds;
  std::vector<int64_t> repeat_rows;
  double metric_seconds = 0.0;  // the metric networks and accumulators (not in `seconds`)
  // What the OS says the sampling of this process's batches cost (getrusage; journal replays and
  // timing.repeats not included) and the wall time of those batches; the 1-minute load average at
  // the start and end of the sampling and the machine's cores (harness/process_usage.h).
  ProcessUsage usage;
  double usage_seconds = 0.0;
  double load_start = -1.0, load_end = -1.0;
  int cores = 0;
  std::map<std::string, double> quality;  // metrics/<name>: fid_fmnist, confident_fraction, ...
  // provenance/<metric>: how each quality value was computed (metrics/provenance.h's to_json:
  // string and integer fields). Written only: `merge` computes the values and theirs again.
  std::map<std::string, nlohmann::json> metric_provenance;
  std::string weights_note, device, thread_settings, cpu, cpu_kernels, torch_version, git_revision, started_at, finished_at;
  std::string timing_clock;  // how step_time_ms was measured (harness/call_timer.h)
};

// Mean time of a run's full calls and of its partial calls (step_time_ms split by is_full; 0 for
// a kind with no call): what metrics/full_call_ms and partial_call_ms store.
struct CallMeans {
  double full_ms = 0.0, partial_ms = 0.0;
};
CallMeans mean_call_ms(const RunRecord& r);

// Per-call stage flags (RunRecord::computed, the journal's records) as the dataset `computed`, uint8
// [calls, stages], a skipped call's row all zeros, and back (dc::Error for another type or shape).
void write_computed(hid_t g, const std::vector<std::vector<uint8_t>>& rows);
std::vector<std::vector<uint8_t>> read_computed(hid_t g, std::size_t calls);

// A run's arrays: owned (h5::Array) when read, views (h5::ArrayRef) when written.
template <typename A>
struct RunArrays {
  std::optional<A> images;  // uint8 [n, C, H, W]
  std::optional<A> grid;    // uint8 [C, H, W]
  std::map<std::string, A> similarity;           // tap -> [S, S] float64
  std::map<std::string, A> similarity_fraction;  // tap -> [S]
  std::map<std::string, A> quality_arrays;       // quality/<name>, e.g. class_labels
  // state/<metric>/<name>: the exact accumulator states (metrics/accumulators.h), for merging shards.
  std::map<std::string, std::map<std::string, A>> metric_states;
};

// Writes one run as the group runs/<result_key>. A failed run's arrays are not written.
void write_run(hid_t file, const RunHeader& header, const RunRecord& record, const RunArrays<h5::ArrayRef>& arrays);

// Which arrays a reader wants (the fields are always read): similarity maps are small, images and
// states can be gigabytes.
enum ArrayParts : unsigned {
  kNoArrays = 0,
  kSimilarity = 1,
  kGrid = 2,
  kImages = 4,
  kQualityArrays = 8,
  kStates = 16,
  kAllArrays = 31,
};

// What a stored run says about itself.
struct StoredRunFields : RunHeader, RunRecord {
  std::string key;        // group name: run_id, or run_id.shard-i-of-n
  std::map<std::string, double> scalars;  // every stored macs/*, metrics/*, usage/* as it is
  int model_calls = 0;
  // state/<metric>/<name> -> its shape (always read; the arrays only with kStates).
  std::map<std::string, std::vector<int64_t>> state_shapes;
};

struct StoredRunFile : StoredRunFields {
  RunArrays<h5::Array> arrays;
};

// dc::Error unless `f` is a results file this build reads: schema "deepcache-bench results v1", or
// an older file with a /runs group. Another HDF5 file, or a newer schema, is refused by name.
void check_results_schema(hid_t f, const std::string& path);
// The file's own attributes: the experiment's name and description.
struct ResultsFileInfo {
  std::string experiment, description;
};
ResultsFileInfo read_results_info(const std::string& path);
// Writes the file's attributes and its empty /runs group (a new file image).
void write_results_info(hid_t f, const ResultsFileInfo& info);

// Every run of a results file, in their `order`; dc::Error naming the file and the object for a
// file that is not one or is damaged.
std::vector<StoredRunFile> read_results_file(const std::string& path, unsigned parts = kSimilarity);
// Result key -> status of every run of a results file (none when there is no file), its schema
// checked: what `run` skips and resumes by.
std::map<std::string, std::string> stored_statuses(const std::string& path);
// One run (its result key), with the arrays asked for.
StoredRunFile read_result(const std::string& path, const std::string& key, unsigned parts);
// One metric state of one stored run (state/<metric>/*), without the others (report's paired
// comparisons read the per-sample features alone); empty when the run holds none.
std::map<std::string, h5::Array> read_metric_state(const std::string& path, const std::string& key, const std::string& metric);

}  // namespace dc::harness
