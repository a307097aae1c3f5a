// deepcache-bench: command-line entry point. CLI11 subcommands only; the work lives in the
// libraries. Exit codes: 0 success, 1 "differs" (inspect --against), 2 user error (bad input,
// bad arguments), 3 internal error.
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/torch.h>

#include "common/error.h"
#include "dc/build_info.h"
#include "harness/inspect.h"
#include "harness/runtime.h"

namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "deepcache-bench: reproduce and extend DeepCache (Ma, Fang, Wang, CVPR 2024) on DDPM, LDM and "
      "Stable Diffusion models.\nExit codes: 0 ok, 1 differs (inspect --against), 2 bad input, 3 internal error.",
      "deepcache-bench"};
  app.set_version_flag("--version", fmt::format("deepcache-bench {} ({}), LibTorch {}, CUDA in LibTorch: {}",
                                                DC_VERSION, DC_GIT_DESCRIBE, TORCH_VERSION, DC_HAS_CUDA ? "yes" : "no"));
  app.require_subcommand(1);

  dc::harness::InspectOptions inspect;
  bool no_tensors = false;
  auto* cmd_inspect = app.add_subcommand(
      "inspect",
      "Show what a safetensors weights file holds: tensors, dtypes, shapes, parameter count and the "
      "model family recognised from its key patterns; with --against, the difference from a "
      "full-size key manifest (*.keys.json). Exit code 1 when it differs.");
  cmd_inspect->add_option("FILE", inspect.path, "safetensors file")->required();
  cmd_inspect->add_option("--against", inspect.against, "key manifest (*.keys.json) to compare with");
  cmd_inspect->add_option("--prefix", inspect.prefix,
                          "compare only file keys under this prefix, stripped (e.g. model.diffusion_model.)");
  cmd_inspect->add_flag("--no-tensors", no_tensors, "omit the per-tensor listing");
  cmd_inspect->add_flag("--verify", inspect.verify,
                        "read every tensor's data too (checks BOOL bytes, counts NaN/inf values)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "deepcache-bench: error: " << e.what() << " (see --help)\n";
    return 2;
  }

  try {
    dc::harness::configure_threads();
    if (*cmd_inspect) {
      inspect.list_tensors = !no_tensors;
      return dc::harness::inspect(inspect, std::cout);
    }
  } catch (const dc::Error& e) {
    std::cerr << "deepcache-bench: error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "deepcache-bench: internal error (torch): " << first_line(e.what()) << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "deepcache-bench: internal error: " << e.what() << "\n";
    return 3;
  }
  return 0;
}
