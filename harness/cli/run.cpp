// deepcache-bench run: every run of an experiment not yet complete, generated, measured, committed.
#include <unistd.h>

#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <stdexcept>

#include "common/error.h"
#include "harness/cli/command.h"
#include "harness/config.h"
#include "harness/runner.h"

namespace dc::cli {

namespace {
struct RunState {
  std::string path, shard;
  harness::RunOptions o;
  std::vector<std::string> sets, forget;
};

// --shard i/n.
void parse_shard(const std::string& shard, harness::RunOptions& o) {
  const auto slash = shard.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    o.shard_index = std::stoi(shard.substr(0, slash));
    o.shard_count = std::stoi(shard.substr(slash + 1));
  } catch (const std::exception&) {
    throw Error(fmt::format("--shard '{}': expected i/n, e.g. 0/4", shard));
  }
}

int run_command(RunState& s) {
  if (!s.shard.empty()) parse_shard(s.shard, s.o);
  const auto e = harness::load_experiment(s.path, s.sets);
  if (!s.forget.empty()) {
    for (const auto& key : harness::forget_runs(e, s.o, s.forget))
      std::cout << fmt::format("forgot      {} in {}\n", key, harness::default_results_path(e, s.o));
    return 0;
  }
  harness::install_stop_handlers();
  const auto r = harness::run_experiment(e, s.o, std::cerr, ::isatty(2) != 0);
  if (r.interrupted) {
    std::cout << fmt::format("interrupted {} (the finished batches are kept: the same command resumes)\n", r.results_path);
    return harness::kExitInterrupted;
  }
  std::cout << fmt::format("results     {} ({} run, {} skipped as complete, {} failed)\n", r.results_path, r.complete, r.skipped, r.failed);
  std::cout << fmt::format("report      deepcache-bench report {}\n", r.results_path);
  return r.failed > 0 ? 1 : 0;
}
}  // namespace

Command add_run(CLI::App& app) {
  auto s = std::make_shared<RunState>();
  auto* cmd = app.add_subcommand(
      "run", "Run an experiment: every run not yet complete in its results file is generated, measured and committed "
             "atomically. Every input of the runs still to make (weights, prompts, tokenizer, metric files) is checked before the "
             "first sample: a bad one is exit 2 and nothing runs; a run failing while it samples is recorded as failed and "
             "the sweep goes on (exit 1 when some runs failed).");
  cmd->add_option("EXPERIMENT", s->path, "experiment YAML")->required();
  cmd->add_option("--only", s->o.only, "run ids (or prefixes, or names) to run");
  cmd->add_option("--shard", s->shard, "i/n: this process generates the i-th of n slices of every run's samples (whole batches)");
  cmd->add_option("--device", s->o.device, "cpu or cuda (overrides the experiment)");
  cmd->add_option("--results", s->o.results_path, "results file (default results/<experiment>/<experiment>.h5)");
  cmd->add_option("--forget", s->forget,
                  "RUN ...: remove these runs' stored results (id or prefix, or name; every shard of it) and journals from the "
                  "results file, e.g. a stale failed run, then stop (nothing is sampled); a later `run` makes them again");
  cmd->add_option("--set", s->sets,
                  "KEY=VALUE ...: override a setting of every run (dotted key, YAML value), e.g. model.weights=random "
                  "samples.n=1 sampler.steps=2; part of each run's config and run id");
  return {cmd, [s] { return run_command(*s); }};
}

}  // namespace dc::cli
