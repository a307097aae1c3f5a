// Running experiments: one RunSpec at a time, results committed per run, complete runs skipped,
// failed runs recorded and the sweep going on.
#pragma once
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/config.h"
#include "harness/journal.h"
#include "harness/results_store.h"
#include "metrics/macs.h"
#include "models/model.h"

namespace dc::harness {

// Called after every batch and every model call of a batch (once before the first batch when some
// samples were replayed): done of total samples (resumed of them replayed from the journal); within a batch also the model
// call just finished (1-based) of calls, else call = -1.
struct Progress {
  int64_t done = 0, total = 0, resumed = 0;
  int call = -1, calls = 0;
  int repeat = 0, repeats = 0;  // timing.repeats: repeat i of `repeats` (0: the run's own batches)
};
using ProgressFn = std::function<void(const Progress&)>;

// The model of the previous run of a sweep, kept while the next run uses the same model
// (family, preset, weights): a sweep of 11 LDM-4-G runs builds (or loads) the 456M-parameter model
// once, counts its stages' MACs once, and warms the device up once.
struct ModelCache {
  std::string key;                     // family/preset/weights/first-stage weights
  std::optional<models::Model> model;
  std::optional<metrics::StageMacs> stage_macs;  // what each stage of its UNet costs
  std::string warmed;                  // device, UNet batch and cache settings the warm-up ran for
};

// Generates samples [first, first + count) of a run (count < 0: to the end) and measures it.
// Throws dc::Error for invalid settings (missing weights, bad schedule, ...). `models` (optional)
// carries the model from run to run. With a `journal`, every finished batch is committed to it and
// the batches it already holds are replayed instead of made again (harness/journal.h); after a
// batch, a stop request (request_stop: SIGINT, SIGTERM, SIGUSR1) throws RunInterrupted.
RunResult execute_run(const RunSpec& spec, int64_t first = 0, int64_t count = -1, const ProgressFn& progress = nullptr,
                      ModelCache* models = nullptr, const RunJournal* journal = nullptr);

// A run stopped between batches on request; what it made is in its journal.
class RunInterrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Stop requests: `run` installs handlers for SIGINT, SIGTERM and SIGUSR1 (Slurm's warning before a
// time limit or pre-emption, `sbatch --signal=B:USR1@120`) that let the running batch finish and
// commit, then stop with exit code 75 (the batch's job is requeued and resumes). A second SIGINT
// or SIGTERM ends the process at once (the journal still holds every committed batch).
void install_stop_handlers();
bool stop_requested();
const char* stop_signal_name();
void request_stop(int signal);  // as if the signal had arrived (tests)
constexpr int kExitInterrupted = 75;  // EX_TEMPFAIL

struct RunOptions {
  std::vector<std::string> only;  // run ids (or unique prefixes); empty = all
  int shard_index = 0, shard_count = 1;
  std::string device;              // overrides the experiment's when set
  std::string results_path;        // default results/<experiment>/<experiment>.h5 (+ .shard-i-of-n)
  // The model kept from run to run; a caller that runs several experiments (or shards) of one
  // model in one process passes its own to build it once. Null: one for this call.
  ModelCache* models = nullptr;
};

struct RunSummary {
  int complete = 0, skipped = 0, failed = 0;
  bool interrupted = false;  // a stop request ended the sweep (exit kExitInterrupted)
  std::string results_path;
};

// Progress on `log` (a bar when it is a terminal, plain lines otherwise).
RunSummary run_experiment(const ExperimentSpec& e, const RunOptions& options, std::ostream& log, bool log_is_tty);

// The identity of a run's journal (harness/journal.h): its resolved settings (timing.repeats left
// out: it changes no batch) and the content of its prompt file (a file edited between an
// interruption and the resume must not mix its batches with the old prompts').
std::string journal_identity(const RunSpec& spec);

std::string default_results_path(const ExperimentSpec& e, const RunOptions& options);

// `run EXP --forget RUN...`: removes the stored results of the runs named (a run id or unique
// prefix, a name, or a result key; every shard result of that run) and their journals from the
// experiment's results file, atomically, under the writer lock. A RUN that matches no stored run,
// or several, is a dc::Error listing them. Returns the removed result keys.
std::vector<std::string> forget_runs(const ExperimentSpec& e, const RunOptions& options, const std::vector<std::string>& which);

}  // namespace dc::harness
