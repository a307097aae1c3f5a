// The reference documents against what the code does: docs/experiments.md's preset table against the
// registry, results/README.md against every name `run` and `merge` write into a results file.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "harness/config.h"
#include "harness/merge.h"
#include "harness/runner.h"
#include "models/registry.h"
#include "support/cli.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace dc::harness;

// Issue 17: every preset of every family has its row, with S and each tap name, in the table of
// docs/experiments.md ("Presets and similarity taps").
TEST(Docs, ExperimentsListsEveryPresetWithItsSAndTaps) {
  const std::string doc = dc::test::read_text("docs/experiments.md");
  ASSERT_NE(doc.find("## Presets and similarity taps"), std::string::npos);
  int rows = 0;
  for (const auto& f : dc::models::family_names())
    for (const auto& p : dc::models::preset_names(f)) {
      const auto info = dc::models::model_info(f, p);
      const std::string head = fmt::format("\n| `{}` | `{}` | {} |", f, p, info.num_skips);
      const auto at = doc.find(head);
      ASSERT_NE(at, std::string::npos) << "docs/experiments.md has no row " << head.substr(1) << " (family, preset, S)";
      const std::string row = doc.substr(at + 1, doc.find('\n', at + 1) - at - 1);
      for (const auto& tap : info.tap_names) EXPECT_NE(row.find("`" + tap + "`"), std::string::npos) << f << "/" << p << ": tap " << tap;
      ++rows;
    }
  EXPECT_GE(rows, 6);
}

// Issue 17: results/README.md names every group, dataset and attribute of a results file: a whole
// run and a baseline with FID-FMNIST (and its bootstrap interval), similarity maps, timing repeats,
// stored images and a grid; the shard results of the same experiment (per-sample features); their
// merge. tests/docs/results_readme_check.py walks the files with h5py and lists what the README
// does not name.
TEST(Docs, ResultsReadmeNamesEverythingRunAndMergeWrite) {
  if (!fs::exists("weights/fmnist/classifier.safetensors")) GTEST_SKIP() << "the Fashion-MNIST classifier is absent";
  const std::string py = dc::test::python_with("h5py");
  if (py.empty()) GTEST_SKIP() << "no Python with h5py (Debian: python3-h5py)";
  const std::string dir = dc::test::temp_dir() + "/results_readme";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto e = parse_experiment(R"(experiment: documented
description: every kind of name a results file holds
base:
  model: {family: ddpm, preset: fmnist, weights: random}
  sampler: {name: ddim, steps: 4, spacing: quad}
  samples: {n: 4, batch: 2, seed: 2, save_images: true, grid: 4}
  similarity: {enabled: true, samples: 2}
  timing: {repeats: 2}
  metrics:
    fid_fmnist: {classifier: weights/fmnist/classifier.safetensors, reference: weights/fmnist/test_stats.npz}
runs:
  - {cache.enabled: true, cache.k: 1, cache.interval: 2, cache.schedule: nonuniform, cache.center: 2, cache.power: 2.0}
)",
                                  dir + "/e.yaml", ".");
  std::ostringstream log;
  RunOptions whole;
  whole.results_path = dir + "/whole.h5";
  ASSERT_EQ(run_experiment(e, whole, log, false).complete, 2) << log.str();
  for (int i = 0; i < 2; ++i) {
    RunOptions o;
    o.results_path = dir + "/shards.h5";
    o.shard_index = i;
    o.shard_count = 2;
    ASSERT_EQ(run_experiment(e, o, log, false).complete, 2) << log.str();
  }
  MergeOptions mo;
  mo.inputs = {dir + "/shards.h5"};
  mo.out = dir + "/merged.h5";
  merge_results(mo, log);
  const std::string cmd = py + " tests/docs/results_readme_check.py results/README.md " + dc::test::shell_quote(whole.results_path) + " " +
                          dc::test::shell_quote(dir + "/shards.h5") + " " + dc::test::shell_quote(mo.out) + " >" +
                          dc::test::shell_quote(dir + "/missing.txt") + " 2>&1";
  const int status = std::system(cmd.c_str());
  EXPECT_EQ(status, 0) << "results/README.md does not name:\n" << dc::test::read_text(dir + "/missing.txt");
  // The check itself: a name the README lacks is reported.
  std::ofstream(dir + "/README.md") << dc::test::read_text("results/README.md").substr(0, 200);
  EXPECT_NE(std::system((py + " tests/docs/results_readme_check.py " + dc::test::shell_quote(dir + "/README.md") + " " +
                         dc::test::shell_quote(whole.results_path) + " >/dev/null 2>&1")
                            .c_str()),
            0);
}
