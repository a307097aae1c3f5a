// deepcache-bench export: a stored run's images as PNGs and/or the ADM evaluator's .npz.
#include <iostream>
#include <memory>

#include "harness/cli/command.h"
#include "harness/export.h"

namespace dc::cli {

Command add_export(CLI::App& app) {
  auto o = std::make_shared<harness::ExportOptions>();
  auto* cmd = app.add_subcommand(
      "export", "Write a stored run's images as a PNG folder (zero-padded names: sorted order is sample order) and/or the "
                "npz guided-diffusion's evaluator reads (arr_0 uint8 NHWC, arr_1 class labels).");
  cmd->add_option("RESULTS", o->results, "results file")->required();
  cmd->add_option("--run", o->run, "run id, unique prefix, name, or a shard's key")->required();
  cmd->add_option("--png", o->png_dir, "PNG folder to write");
  cmd->add_option("--npz", o->npz, "evaluator .npz to write");
  return {cmd, [o] {
            harness::export_images(*o, std::cout);
            return 0;
          }};
}

}  // namespace dc::cli
