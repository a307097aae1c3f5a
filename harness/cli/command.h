// The subcommands of deepcache-bench, one file each (harness/main.cpp parses and dispatches): each
// add_* registers its options on the app and returns what runs once the command line is parsed
// (its exit code; errors are thrown as dc::Error and turned into exit code 2 by main).
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace dc::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_inspect(CLI::App& app);
Command add_sample(CLI::App& app);
Command add_macs(CLI::App& app);
Command add_plan(CLI::App& app);
Command add_merge(CLI::App& app);
Command add_export(CLI::App& app);
Command add_run(CLI::App& app);
Command add_report(CLI::App& app);
Command add_train(CLI::App& app);
Command add_fmnist_stats(CLI::App& app);
Command add_clip_score(CLI::App& app);
std::vector<Command> add_fid(CLI::App& app);  // fid and fid-stats (they share the statistics code)

// --preset's help: every preset with its S and similarity taps, from the registry (sample, macs).
std::string presets_help();

}  // namespace dc::cli
