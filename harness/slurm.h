// `deepcache-bench plan EXPERIMENT.yaml --slurm --shards N`: a Slurm job-array script for a sweep
// (DESIGN.md §7, docs/slurm.md). One array task per (run, shard), each writing its own shard file
// (so no two writers share a file); `--requeue` and `--signal=B:USR1@120`, whose handler lets the
// running batch commit to the run's journal and requeues the task, which then resumes; an array
// throttle; and, when the script is started with `bash` rather than `sbatch`, a dependent merge job
// (`--dependency=afterok`) that joins the shard files into the experiment's results file.
// Slurm does the scheduling: nothing here waits, polls or retries.
#pragma once
#include <iosfwd>
#include <string>
#include <vector>

#include "harness/config.h"

namespace dc::harness {

struct SlurmOptions {
  int shards = 1;
  std::string out;         // script path (default results/<experiment>/slurm/<experiment>.sbatch)
  std::string shard_dir;   // the array tasks' result files (default: the script's folder)
  std::string merged;      // the merge job's output (default results/<experiment>/<experiment>.h5)
  std::string partition, gres, time, account;  // passed to sbatch when set
  int throttle = 16;       // array tasks running at once (%K)
  std::string cli;         // the deepcache-bench the tasks run (default: this executable)
  std::vector<std::string> sets;  // the `--set` overrides, passed on to every task
};

// Writes the script (executable) and returns its path. dc::Error for bad options (naming them).
std::string write_slurm_script(const ExperimentSpec& e, const SlurmOptions& options, std::ostream& log);

}  // namespace dc::harness
