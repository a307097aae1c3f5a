// deepcache-bench inspect: what a safetensors file holds, and its difference from a key manifest.
#include <iostream>
#include <memory>

#include "harness/cli/command.h"
#include "harness/inspect.h"

namespace dc::cli {

Command add_inspect(CLI::App& app) {
  struct InspectState {
    harness::InspectOptions o;
    bool no_tensors = false;
  };
  auto s = std::make_shared<InspectState>();
  auto* cmd = app.add_subcommand(
      "inspect",
      "Show what a safetensors weights file holds: tensors, dtypes, shapes, parameter count and the "
      "model family recognised from its key patterns; with --against, the difference from a "
      "full-size key manifest (*.keys.json). Exit code 1 when it differs.");
  cmd->add_option("FILE", s->o.path, "safetensors file")->required();
  cmd->add_option("--against", s->o.against, "key manifest (*.keys.json) to compare with");
  cmd->add_option("--prefix", s->o.prefix, "compare only file keys under this prefix, stripped (e.g. model.diffusion_model.)");
  cmd->add_flag("--no-tensors", s->no_tensors, "omit the per-tensor listing");
  cmd->add_flag("--verify", s->o.verify, "read every tensor's data too (checks BOOL bytes, counts NaN/inf values)");
  return {cmd, [s] {
            s->o.list_tensors = !s->no_tensors;
            return harness::inspect(s->o, std::cout);
          }};
}

}  // namespace dc::cli
