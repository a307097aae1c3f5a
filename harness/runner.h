// Running experiments: one RunSpec at a time, results committed per run, complete runs skipped,
// failed runs recorded and the sweep going on.
#pragma once
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "harness/config.h"
#include "harness/results_store.h"
#include "models/model.h"

namespace dc::harness {

// Called after every batch: (samples done, samples total).
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// The model of the previous run of a sweep, kept while the next run uses the same model
// (family, preset, weights): a sweep of 11 LDM-4-G runs builds (or loads) the 456M-parameter model
// once, counts its MACs once per skip index, and warms the device up once.
struct ModelCache {
  std::string key;                     // family/preset/weights/first-stage weights
  std::optional<models::Model> model;
  std::map<int, double> macs;          // -1: full call, k: partial call at k
  std::string warmed;                  // device, batch and k the warm-up ran for
};

// Generates samples [first, first + count) of a run (count < 0: to the end) and measures it.
// Throws dc::Error for invalid settings (missing weights, bad schedule, ...). `models` (optional)
// carries the model from run to run.
RunResult execute_run(const RunSpec& spec, int64_t first = 0, int64_t count = -1, const ProgressFn& progress = nullptr,
                      ModelCache* models = nullptr);

struct RunOptions {
  std::vector<std::string> only;  // run ids (or unique prefixes); empty = all
  int shard_index = 0, shard_count = 1;
  std::string device;              // overrides the experiment's when set
  std::string results_path;        // default results/<experiment>/<experiment>.h5 (+ .shard-i-of-n)
};

struct RunSummary {
  int complete = 0, skipped = 0, failed = 0;
  std::string results_path;
};

// Progress on `log` (a bar when it is a terminal, plain lines otherwise).
RunSummary run_experiment(const ExperimentSpec& e, const RunOptions& options, std::ostream& log, bool log_is_tty);

std::string default_results_path(const ExperimentSpec& e, const RunOptions& options);

}  // namespace dc::harness
