// deepcache-bench plan: an experiment's runs listed without running anything, or its Slurm script.
#include <fmt/format.h>

#include <iostream>
#include <memory>

#include "common/error.h"
#include "harness/cli/command.h"
#include "harness/config.h"
#include "harness/plan.h"
#include "harness/slurm.h"

namespace dc::cli {

Command add_plan(CLI::App& app) {
  struct PlanState {
    std::string path;
    bool macs = false, slurm_script = false;
    std::vector<std::string> sets;
    harness::SlurmOptions slurm;
  };
  auto s = std::make_shared<PlanState>();
  auto* cmd = app.add_subcommand(
      "plan", "Parse and validate an experiment YAML and list its runs (run id, baseline, settings) without running anything; "
              "weights need not exist.");
  cmd->add_option("EXPERIMENT", s->path, "experiment YAML")->required();
  cmd->add_flag("--macs", s->macs, "also count each run's MACs per call (builds each model once)");
  cmd->add_option("--set", s->sets, "KEY=VALUE ...: override a setting of every run, as `run --set` does");
  cmd->add_flag("--slurm", s->slurm_script,
                "write a Slurm job-array script (one task per run and shard, requeue on pre-emption, a dependent merge "
                "job) instead of listing the runs; docs/slurm.md");
  cmd->add_option("--shards", s->slurm.shards, "--slurm: shards per run (each array task makes one shard of one run)");
  cmd->add_option("--out", s->slurm.out, "--slurm: the script to write (default results/<experiment>/slurm/<experiment>.sbatch)");
  cmd->add_option("--shard-dir", s->slurm.shard_dir, "--slurm: folder of the tasks' shard files (default: the script's folder)");
  cmd->add_option("--merged", s->slurm.merged, "--slurm: the merge job's output (default results/<experiment>/<experiment>.h5)");
  cmd->add_option("--partition", s->slurm.partition, "--slurm: sbatch --partition");
  cmd->add_option("--account", s->slurm.account, "--slurm: sbatch --account");
  cmd->add_option("--gres", s->slurm.gres, "--slurm: sbatch --gres of every array task, e.g. gpu:1");
  cmd->add_option("--time", s->slurm.time, "--slurm: sbatch --time of every task, e.g. 04:00:00");
  cmd->add_option("--throttle", s->slurm.throttle, "--slurm: array tasks running at once (default 16)");
  cmd->add_option("--cli", s->slurm.cli, "--slurm: the deepcache-bench the tasks run (default: this program)");
  return {cmd, [s, cmd] {
            const auto e = harness::load_experiment(s->path, s->sets);
            for (const char* opt : {"--shards", "--out", "--shard-dir", "--merged", "--partition", "--account", "--gres", "--time",
                                    "--throttle", "--cli"})
              if (!s->slurm_script && cmd->count(opt)) throw Error(fmt::format("plan {}: only with --slurm", opt));
            if (s->slurm_script) {
              s->slurm.sets = s->sets;
              harness::write_slurm_script(e, s->slurm, std::cout);
              return 0;
            }
            harness::print_plan(e, s->macs, std::cout);
            return 0;
          }};
}

}  // namespace dc::cli
