// Running experiments: one RunSpec at a time, results committed per run, complete runs skipped,
// failed runs recorded and the sweep going on.
#pragma once
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "harness/config.h"
#include "harness/results_store.h"

namespace dc::harness {

// Called after every batch: (samples done, samples total).
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// Generates samples [first, first + count) of a run (count < 0: to the end) and measures it.
// Throws dc::Error for invalid settings (missing weights, bad schedule, ...).
RunResult execute_run(const RunSpec& spec, int64_t first = 0, int64_t count = -1, const ProgressFn& progress = nullptr);

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
