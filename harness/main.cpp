// deepcache-bench: command-line entry point. It parses and dispatches: each subcommand's options and
// work are in its own file under harness/cli/. Exit codes: 0 success, 1 "differs" (inspect
// --against) or failed runs (run), 2 user error (bad input, bad arguments), 3 internal error.
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/torch.h>

#include "common/error.h"
#include "common/strings.h"
#include "dc/build_info.h"
#include "dc/git_describe.h"
#include "harness/cli/command.h"
#include "harness/runtime.h"

namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// Every subcommand, in the order --help lists them.
std::vector<dc::cli::Command> add_commands(CLI::App& app) {
  std::vector<dc::cli::Command> c = {dc::cli::add_inspect(app), dc::cli::add_sample(app), dc::cli::add_macs(app),
                                     dc::cli::add_plan(app),    dc::cli::add_merge(app),  dc::cli::add_export(app),
                                     dc::cli::add_run(app),     dc::cli::add_report(app), dc::cli::add_train(app),
                                     dc::cli::add_fmnist_stats(app), dc::cli::add_clip_score(app)};
  for (auto& f : dc::cli::add_fid(app)) c.push_back(std::move(f));
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "deepcache-bench: reproduce and extend DeepCache (Ma, Fang, Wang, CVPR 2024) on DDPM, LDM and "
      "Stable Diffusion models.\nExit codes: 0 ok, 1 differs (inspect --against), 2 bad input, 3 internal error.",
      "deepcache-bench"};
  app.set_version_flag("--version", fmt::format("deepcache-bench {} ({}), LibTorch {}, CUDA in LibTorch: {}",
                                                DC_VERSION, DC_GIT_DESCRIBE, TORCH_VERSION, DC_HAS_CUDA ? "yes" : "no"));
  app.require_subcommand(1);
  const std::vector<dc::cli::Command> commands = add_commands(app);
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
    for (const auto& c : commands)
      if (*c.app) return c.run();
  } catch (const dc::Error& e) {
    std::cerr << "deepcache-bench: error: " << dc::printable(e.what()) << "\n";  // users' bytes quoted as \xNN
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
