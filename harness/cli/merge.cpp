// deepcache-bench merge: the shards of runs joined into complete runs.
#include <fmt/format.h>

#include <iostream>
#include <memory>

#include "harness/cli/command.h"
#include "harness/merge.h"

namespace dc::cli {

Command add_merge(CLI::App& app) {
  auto o = std::make_shared<harness::MergeOptions>();
  auto* cmd = app.add_subcommand(
      "merge", "Join the shards of runs (`run --shard i/n`) into complete runs: metric states add exactly, images in sample "
               "order, timings summed; refuses shards of different configurations, overlapping or missing slices.");
  cmd->add_option("RESULTS", o->inputs, "results files holding the shards")->required();
  cmd->add_option("--out", o->out, "merged results file (default results/<experiment>/<experiment>.h5; its other runs are kept)");
  cmd->add_flag("--partial", o->partial, "merge runs whose shards are not all there; marked partial, without metric values");
  return {cmd, [o] {
            const auto s = harness::merge_results(*o, std::cerr);
            std::cout << fmt::format("merged      {} ({} runs from {} shard results)\n", s.out, s.runs, s.shards);
            return 0;
          }};
}

}  // namespace dc::cli
