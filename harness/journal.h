// A running run's progress, batch by batch (results/README.md, "Journal"): every finished batch is
// committed as one small file `<results>.journal/<result key>/batch-<g>.h5` (written to a
// temporary file, fsynced, renamed), so a run of 50,000 samples costs one write per batch of that
// batch's size, never a rewrite of the results file. A killed, pre-empted or interrupted run
// resumes at its first missing batch: the records hold what the run needs from the batches already
// made (per-call times, images when kept, class labels, the metric accumulators' inputs, the
// first batch's similarity maps), and replaying them gives the run the state it would have had
// uninterrupted, bit for bit (the accumulators are exact). When the run is committed to the
// results file its journal is removed.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace dc::harness {

struct BatchRecord {
  int64_t index = 0;                 // the batch's index in the unsharded run's grid (first sample / batch)
  int64_t first = 0, rows = 0;       // its samples [first, first + rows)
  double seconds = 0.0;              // wall time of sampling it (model calls and decoding)
  double metric_seconds = 0.0;       // the metric networks and accumulators on it
  std::vector<double> step_time_ms;  // per model call
  std::vector<int> is_full;          // per model call
  std::vector<std::vector<uint8_t>> computed;  // per model call: the stages it computed (empty: skipped whole)
  std::vector<double> call_macs, call_macs_all;  // per model call, per image (from computed; not stored)
  torch::Tensor images;              // uint8 [rows, C, H, W] when the run keeps them (save_images, grid)
  torch::Tensor labels;              // int64 [rows] for class-conditional families
  std::map<std::string, torch::Tensor> quality;     // the accumulators' inputs (harness/quality.h)
  std::map<std::string, torch::Tensor> similarity;  // first batch: tap -> [S, S]
};

class RunJournal {
 public:
  // folder: the run's journal folder; `config` (the resolved settings) and `batch` identify the run
  // whose batches it holds.
  RunJournal(std::string folder, std::string config, int64_t batch);
  const std::string& folder() const { return folder_; }
  // The committed records that continue each other from batch `first_index` on, in order. Records
  // of another configuration or batch size, unreadable ones and everything after a gap are
  // removed (`discarded` counts them); temporary files of dead writers too.
  std::vector<BatchRecord> load(int64_t first_index, int* discarded = nullptr) const;
  void append(const BatchRecord& record) const;  // atomic (temporary file, fsync, rename)
  void remove() const;                           // the whole folder, once the run is committed

 private:
  std::string folder_, config_;
  int64_t batch_;
};

// `<results>.journal/<key>`: the journal folder of result `key` in results file `results`.
std::string journal_folder(const std::string& results, const std::string& key);

}  // namespace dc::harness
