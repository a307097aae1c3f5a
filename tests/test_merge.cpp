// Shards merged into the one-process run bit for bit, merge errors naming the bad file, and export
// of a stored run's images.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "common/error.h"
#include "harness/config.h"
#include "harness/hdf5.h"
#include "harness/export.h"
#include "harness/merge.h"
#include "harness/report.h"
#include "harness/results_store.h"
#include "harness/runner.h"
#include "metrics/fid_pipeline.h"
#include "metrics/npz.h"
#include "support/cli.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace dc::harness;
#include "support/runs.h"

using dc::test::images_of;
using dc::test::kTiny;

// `merge`: four shards written into one file (shard keys keep them apart) merge into the run one
// process makes, bit for bit on this machine: images, the FID-FMNIST state and value. Missing,
// duplicated and mismatched shards are refused with the files named; --partial marks the run.
namespace {
std::string merge_yaml(int batch) {
  return fmt::format(R"(experiment: shards
base:
  model: {{family: ddpm, preset: fmnist, weights: random}}
  sampler: {{name: ddim, steps: 3, spacing: quad}}
  samples: {{n: 10, batch: {}, seed: 4, save_images: true, grid: 4}}
  timing: {{repeats: 2}}
  metrics:
    fid_fmnist: {{classifier: weights/fmnist/classifier.safetensors, reference: weights/fmnist/test_stats.npz}}
baseline: false
runs:
  - {{cache.k: 1, cache.interval: 2}}
)", batch);
}
void run_shards(const ExperimentSpec& e, const std::string& h5, int count, std::vector<int> which) {
  std::ostringstream log;
  for (int i : which) {
    RunOptions o;
    o.results_path = h5;
    o.shard_index = i;
    o.shard_count = count;
    ASSERT_EQ(run_experiment(e, o, log, false).complete, 1) << log.str();
  }
}
std::string merge_error(const MergeOptions& mo) {
  std::ostringstream log;
  try {
    merge_results(mo, log);
  } catch (const dc::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Merge, ShardsMergeIntoTheOneProcessRunBitForBit) {
  if (!fs::exists("weights/fmnist/classifier.safetensors")) GTEST_SKIP() << "the Fashion-MNIST classifier is absent";
  const std::string dir = dc::test::temp_dir();
  const auto e = parse_experiment(merge_yaml(2), dir + "/s.yaml", ".");
  const std::string id = e.runs.at(0).run_id;
  std::ostringstream log;
  RunOptions whole;
  whole.results_path = dir + "/whole.h5";
  ASSERT_EQ(run_experiment(e, whole, log, false).complete, 1) << log.str();
  run_shards(e, dir + "/shards.h5", 4, {2, 0, 3, 1});  // one file, any order: no shard skips another
  ASSERT_EQ(read_results(dir + "/shards.h5").size(), 4u);
  MergeOptions mo;
  mo.inputs = {dir + "/shards.h5"};
  mo.out = dir + "/merged.h5";
  std::ostringstream mlog;
  const auto s = merge_results(mo, mlog);
  EXPECT_EQ(s.runs, 1);
  EXPECT_EQ(s.shards, 4);
  auto a = dc::h5::open_file(whole.results_path);
  auto b = dc::h5::open_file(mo.out);
  const std::string g = "runs/" + id;
  EXPECT_TRUE(torch::equal(dc::h5::read_tensor(a.id(), g + "/images"), dc::h5::read_tensor(b.id(), g + "/images")));
  EXPECT_TRUE(torch::equal(dc::h5::read_tensor(a.id(), g + "/grid"), dc::h5::read_tensor(b.id(), g + "/grid")));
  for (const char* k : {"count", "sum", "outer", "n", "confident", "classes"})
    EXPECT_TRUE(torch::equal(dc::h5::read_tensor(a.id(), g + "/state/fid_fmnist/" + k), dc::h5::read_tensor(b.id(), g + "/state/fid_fmnist/" + k)))
        << k;
  EXPECT_EQ(dc::h5::read_scalar(a.id(), g + "/metrics/fid_fmnist"), dc::h5::read_scalar(b.id(), g + "/metrics/fid_fmnist"));
  EXPECT_EQ(dc::h5::read_scalar(a.id(), g + "/metrics/confident_fraction"), dc::h5::read_scalar(b.id(), g + "/metrics/confident_fraction"));
  EXPECT_EQ(dc::h5::read_scalar(b.id(), g + "/metrics/samples"), 10);
  // FID-FMNIST's bootstrap interval: the shards keep their per-sample features, merge concatenates
  // them and resamples as the whole run did (same features bit for bit, same seed: same interval).
  EXPECT_TRUE(dc::h5::exists(dc::h5::open_file(dir + "/shards.h5").id(), "runs/" + id + ".shard-0-of-4/state/fid_fmnist_features/features"));
  // The whole run and the merge keep them too (report's paired comparisons), the same bit for bit.
  for (const char* k : {"features", "index"})
    EXPECT_TRUE(torch::equal(dc::h5::read_tensor(a.id(), g + "/state/fid_fmnist_features/" + k),
                             dc::h5::read_tensor(b.id(), g + "/state/fid_fmnist_features/" + k)))
        << k;
  for (const char* k : {"/metrics/fid_fmnist_ci_low", "/metrics/fid_fmnist_ci_high"}) {
    ASSERT_TRUE(dc::h5::exists(b.id(), g + k)) << k;
    EXPECT_EQ(dc::h5::read_scalar(a.id(), g + k), dc::h5::read_scalar(b.id(), g + k)) << k;
  }
  // Timing: each shard's batches and its repeat (of its own first batch), shard after shard.
  EXPECT_EQ(dc::h5::to_doubles(dc::h5::read_array(b.id(), g + "/timing/batch_rows")), (std::vector<double>{2, 2, 2, 2, 2}));
  EXPECT_EQ(dc::h5::to_doubles(dc::h5::read_array(b.id(), g + "/timing/repeat_rows")), (std::vector<double>{2, 2, 2, 2}));
  EXPECT_EQ(dc::h5::to_doubles(dc::h5::read_array(b.id(), g + "/timing/repeat_seconds")).size(), 4u);
  EXPECT_TRUE(torch::equal(dc::h5::read_tensor(a.id(), g + "/quality/fmnist_classes"), dc::h5::read_tensor(b.id(), g + "/quality/fmnist_classes")));
  // The OS's account of the sampling adds up over the shards; MACs (both counts) are the run's.
  {
    auto sh = dc::h5::open_file(dir + "/shards.h5");
    double sampled = 0, faults = 0;
    for (int i = 0; i < 4; ++i) {
      const std::string sg = "runs/" + id + ".shard-" + std::to_string(i) + "-of-4/usage/";
      sampled += dc::h5::read_scalar(sh.id(), sg + "sampled_seconds");
      faults += dc::h5::read_scalar(sh.id(), sg + "minor_faults");
    }
    EXPECT_DOUBLE_EQ(dc::h5::read_scalar(b.id(), g + "/usage/sampled_seconds"), sampled);
    EXPECT_DOUBLE_EQ(dc::h5::read_scalar(b.id(), g + "/usage/minor_faults"), faults);
    EXPECT_GE(dc::h5::read_scalar(b.id(), g + "/usage/cores"), 1.0);
    for (const char* k : {"/macs/full_all", "/macs/partial_all", "/macs/step_average_all"})
      EXPECT_EQ(dc::h5::read_scalar(a.id(), g + k), dc::h5::read_scalar(b.id(), g + k)) << k;
  }
  // Merging again gives the same file content (idempotent).
  merge_results(mo, mlog);
  auto b2 = dc::h5::open_file(mo.out);
  EXPECT_TRUE(torch::equal(dc::h5::read_tensor(b2.id(), g + "/state/fid_fmnist/outer"), dc::h5::read_tensor(a.id(), g + "/state/fid_fmnist/outer")));

  // A missing shard: refused, or merged as partial (marked, no metric values).
  run_shards(e, dir + "/three.h5", 4, {0, 1, 3});
  MergeOptions partial;
  partial.inputs = {dir + "/three.h5"};
  partial.out = dir + "/partial.h5";
  EXPECT_NE(merge_error(partial).find("shards 0, 1, 3 of 4 found"), std::string::npos) << merge_error(partial);
  partial.partial = true;
  merge_results(partial, mlog);
  auto p = dc::h5::open_file(partial.out);
  EXPECT_NE(dc::h5::get_attr_string(dc::h5::open_group(p.id(), g).id(), "partial").find("8 of 10 samples"), std::string::npos);
  EXPECT_FALSE(dc::h5::exists(p.id(), g + "/metrics/fid_fmnist"));
  ReportOptions ro;
  ro.results = partial.out;
  EXPECT_NE(render_report(ro).find("complete (partial: shards 0, 1, 3 of 4"), std::string::npos) << render_report(ro);
  ro.results = dir + "/shards.h5";
  EXPECT_NE(render_report(ro).find("complete (shard 2/4)"), std::string::npos) << render_report(ro);
  // The same slice twice.
  const std::string copy = dir + "/copy.h5";
  fs::copy_file(dir + "/shards.h5", copy);
  MergeOptions twice;
  twice.inputs = {dir + "/shards.h5", copy};
  twice.out = dir + "/twice.h5";
  EXPECT_NE(merge_error(twice).find("twice"), std::string::npos) << merge_error(twice);
  // Shards of one run id made with another batch size: another configuration.
  run_shards(parse_experiment(merge_yaml(5), dir + "/s.yaml", "."), dir + "/b5.h5", 4, {1});
  MergeOptions mixed;
  mixed.inputs = {dir + "/three.h5", dir + "/b5.h5"};
  mixed.out = dir + "/mixed.h5";
  EXPECT_NE(merge_error(mixed).find("different configurations"), std::string::npos) << merge_error(mixed);
}

TEST(Merge, CliNamesTheBadFileWithExitCode2) {
  const auto r = dc::test::run_cli("merge /nonexistent/shards.h5 --out /tmp/never.h5");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/shards.h5: no such results file"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists("/tmp/never.h5"));
}

// `export`: the stored images as a PNG folder whose sorted order is sample order, and as the
// evaluator's npz (NHWC uint8), equal to the stored uint8 values; a run without images, an
// unknown run and no output are errors naming the file and run.
TEST(Export, PngFolderAndEvaluatorNpzHoldTheStoredImagesInOrder) {
  const std::string dir = dc::test::temp_dir();
  const auto e = parse_experiment(kTiny, dir + "/t.yaml", ".");
  const std::string id = e.runs.at(0).run_id;
  std::ostringstream log;
  RunOptions o;
  o.results_path = dir + "/t.h5";
  ASSERT_EQ(run_experiment(e, o, log, false).complete, 1) << log.str();
  const torch::Tensor images = images_of(o.results_path, id);
  ExportOptions x;
  x.results = o.results_path;
  x.run = id.substr(0, 6);
  x.png_dir = dir + "/png";
  x.npz = dir + "/samples.npz";
  std::ostringstream out;
  const auto s = export_images(x, out);
  EXPECT_EQ(s.key, id);
  EXPECT_EQ(s.images, 4);
  const auto files = dc::metrics::list_images(x.png_dir);
  ASSERT_EQ(files.size(), 4u);
  EXPECT_EQ(fs::path(files[0]).filename(), "000000.png");
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(torch::equal(dc::metrics::load_rgb(files[i]), images[i])) << files[i];
  const auto arrays = dc::metrics::read_npz(x.npz);
  ASSERT_TRUE(arrays.count("arr_0"));
  EXPECT_TRUE(torch::equal(arrays.at("arr_0"), images.permute({0, 2, 3, 1})));
  EXPECT_FALSE(arrays.count("arr_1"));  // unconditional: no labels

  ExportOptions bad = x;
  bad.run = "ffffffff";
  EXPECT_THROW(export_images(bad, out), dc::Error);
  bad = x;
  bad.png_dir.clear();
  bad.npz.clear();
  EXPECT_THROW(export_images(bad, out), dc::Error);
  const auto no_images =
      parse_experiment(std::string(kTiny) + "baseline: false\nruns:\n  - {samples.save_images: false}\n", dir + "/u.yaml", ".");
  RunOptions u;
  u.results_path = dir + "/u.h5";
  run_experiment(no_images, u, log, false);
  const auto r = dc::test::run_cli("export " + u.results_path + " --run " + no_images.runs.at(0).run_id + " --npz " + dir + "/u.npz");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("stored no images"), std::string::npos) << r.err;
}
