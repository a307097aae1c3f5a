// deepcache-bench macs: MACs per image of a full call and of DeepCache's partial call at every k.
#include <iostream>
#include <memory>

#include "harness/cli/command.h"
#include "harness/plan.h"
#include "models/registry.h"

namespace dc::cli {

Command add_macs(CLI::App& app) {
  struct MacsState {
    std::string family = "ddpm", preset = "cifar10";
    int steps = 100, interval = 5;
  };
  auto s = std::make_shared<MacsState>();
  auto* cmd = app.add_subcommand(
      "macs", "MACs per image of a full UNet call and of a partial call at every skip index k, and the average per call "
              "of a uniform DeepCache run (counted as the paper's flops.py counts).");
  cmd->add_option("--model", s->family, "model family")->check(CLI::IsMember(models::family_names()));
  cmd->add_option("--preset", s->preset, presets_help());
  cmd->add_option("--steps", s->steps, "model calls of the run");
  cmd->add_option("--interval", s->interval, "cache interval N");
  return {cmd, [s, cmd] {
            if (!cmd->count("--preset")) s->preset = models::preset_names(s->family).front();
            harness::print_macs(s->family, s->preset, s->steps, s->interval, std::cout);
            return 0;
          }};
}

}  // namespace dc::cli
