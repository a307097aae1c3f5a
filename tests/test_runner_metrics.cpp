// Metrics computed inside `run` (FID with its reference from a folder, Inception metrics,
// precision/recall) equal the whole-array computation and merge across shards.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "common/error.h"
#include "common/image_io.h"
#include "harness/config.h"
#include "harness/hdf5.h"
#include "harness/merge.h"
#include "harness/report.h"
#include "harness/results_store.h"
#include "harness/runner.h"
#include "metrics/fid_pipeline.h"
#include "metrics/inception_score.h"
#include "metrics/npz.h"
#include "metrics/precision_recall.h"
#include "support/cli.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace dc::harness;


// The journal keeps only records that continue each other from the slice's first batch and belong
// to this configuration and batch size; a damaged record and everything after it is made again.
// The shipped paper experiments compute FID inside `run`: table2_ddpm_cifar10 and
// table12_branch_ablation at full model size with random weights, a few samples, the FID Inception
// of the large fixtures and a generated 2048-dimensional reference (random images' statistics +
// 0.01 I, full rank), through the CLI as a user runs them (the reference given with --set, the
// weights through $DEEPCACHE_INCEPTION_WEIGHTS as the YAML's default says).
TEST(RunnerMetrics, PaperTablesComputeFidInRun) {
  const auto large = dc::test::large_fixtures_root();
  const std::string weights = large ? *large + "/inception_fid.weights.safetensors" : "";
  if (weights.empty() || !fs::exists(weights)) GTEST_SKIP() << "large Inception weights absent; set DEEPCACHE_FIXTURES_LARGE";
  const std::string dir = dc::test::temp_dir();
  {
    torch::NoGradGuard ng;
    auto net = dc::metrics::load_inception(weights, torch::kCPU);
    torch::manual_seed(12);
    dc::metrics::FeatureStats ref;
    ref.add(dc::metrics::inception_features(net, torch::randint(0, 256, {8, 3, 32, 32}, torch::kUInt8), 2048));
    dc::metrics::write_fid_stats(dir + "/ref.npz", ref.mean(), ref.covariance() + 0.01 * Eigen::MatrixXd::Identity(2048, 2048));
  }
  for (const char* name : {"table2_ddpm_cifar10", "table12_branch_ablation"}) {
    const std::string yaml = std::string("experiments/") + name + ".yaml";
    const std::vector<std::string> sets{"model.weights=random", "samples.n=6", "samples.batch=3", "sampler.steps=2",
                                        "metrics.fid.reference=" + dir + "/ref.npz"};
    const auto e = load_experiment(yaml, sets);
    ASSERT_GE(e.runs.size(), 2u);
    const std::string results = dir + "/" + name + ".h5";
    std::string args = "run " + yaml + " --results " + results + " --only " + e.runs.front().run_id + " " + e.runs.back().run_id + " --set";
    for (const auto& kv : sets) args += " " + dc::test::shell_quote(kv);
    const auto r = dc::test::run_cli(args, "DEEPCACHE_INCEPTION_WEIGHTS=" + weights);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto f = dc::h5::open_file(results);
    for (const auto* run : {&e.runs.front(), &e.runs.back()}) {
      const std::string g = "runs/" + run->run_id;
      const double fid = dc::h5::read_scalar(f.id(), g + "/metrics/fid");
      EXPECT_TRUE(std::isfinite(fid) && fid > 0) << name << " " << run->run_id << ": FID " << fid;
      EXPECT_EQ(dc::h5::read_tensor(f.id(), g + "/state/fid/count").item<int64_t>(), 6);
      const auto prov = dc::h5::open_group(f.id(), g + "/provenance/fid");
      EXPECT_EQ(dc::h5::get_attr_string(prov.id(), "reference"), dir + "/ref.npz");
      EXPECT_EQ(dc::h5::get_attr_string(prov.id(), "weights_file"), weights);
      EXPECT_EQ(dc::h5::get_attr_string(prov.id(), "weights_sha256").size(), 64u);
      EXPECT_GE(dc::h5::read_scalar(f.id(), g + "/metrics/metric_seconds"), 0.0);
      EXPECT_NE(r.err.find("rank-deficient"), std::string::npos) << "6 samples of 2048 features: the note says so";
    }
    ReportOptions ro;
    ro.results = results;
    const std::string md = render_report(ro);
    EXPECT_NE(md.find("| fid |"), std::string::npos) << md;
  }
}

// metrics.fid.reference may be a folder of images: its statistics are computed once per sweep,
// cached beside the results keyed by the file list, the weights and the block, and equal the
// folder's statistics as `fid-stats` computes them; another file list makes another cache entry.
TEST(RunnerMetrics, FolderReferenceIsComputedOnceAndCached) {
  const auto large = dc::test::large_fixtures_root();
  const std::string weights = large ? *large + "/inception_fid.weights.safetensors" : "";
  if (weights.empty() || !fs::exists(weights)) GTEST_SKIP() << "large Inception weights absent; set DEEPCACHE_FIXTURES_LARGE";
  const std::string dir = dc::test::temp_dir();
  const std::string ref_dir = dir + "/reference";
  fs::create_directories(ref_dir);
  torch::manual_seed(13);
  for (int i = 0; i < 5; ++i)
    dc::image::write_png(fmt::format("{}/{:03d}.png", ref_dir, i), torch::randint(0, 256, {3, 32, 32}, torch::kUInt8));
  auto yaml = [&](int seed) {
    return fmt::format(R"(experiment: folder
base:
  model: {{family: ddpm, preset: cifar10, weights: random}}
  sampler: {{name: ddim, steps: 2, spacing: quad}}
  samples: {{n: 4, batch: 4, seed: {}}}
  metrics:
    fid: {{reference: {}, weights: {}, dims: 64}}
baseline: false
sweep: {{cache.k: [1, 2], cache.interval: [2]}}
)", seed, ref_dir, weights);
  };
  const std::string results = dir + "/out/folder.h5";
  auto cached = [&] {
    std::vector<std::string> npz;
    if (fs::is_directory(dir + "/out/fid_reference_cache"))
      for (const auto& e : fs::directory_iterator(dir + "/out/fid_reference_cache"))
        if (e.path().extension() == ".npz") npz.push_back(e.path().string());
    return npz;
  };
  std::ostringstream log;
  RunOptions o;
  o.results_path = results;
  ASSERT_EQ(run_experiment(parse_experiment(yaml(1), dir + "/f.yaml", dir), o, log, false).complete, 2) << log.str();
  ASSERT_EQ(cached().size(), 1u);
  const std::string npz = cached().front();
  EXPECT_TRUE(fs::exists(fs::path(npz).replace_extension(".json")));
  for (const auto& r : read_results(results)) EXPECT_TRUE(r.scalars.count("metrics/fid")) << r.run_id;
  auto f = dc::h5::open_file(results);
  for (const auto& id : dc::h5::children(dc::h5::open_group(f.id(), "runs").id()))
    EXPECT_EQ(dc::h5::get_attr_string(dc::h5::open_group(f.id(), "runs/" + id + "/provenance/fid").id(), "reference"), npz);
  {
    torch::NoGradGuard ng;
    auto net = dc::metrics::load_inception(weights, torch::kCPU);
    const auto want = dc::metrics::folder_statistics(net, ref_dir, 64, 50, torch::kCPU);
    const auto [mu, sigma] = dc::metrics::read_fid_stats(npz);
    EXPECT_TRUE(dc::metrics::to_eigen_vector(mu).isApprox(want.mean(), 1e-12));
    EXPECT_TRUE(dc::metrics::to_eigen_matrix(sigma).isApprox(want.covariance(), 1e-12));
  }
  // Another image in the folder: another file list, another cache entry; the first stays.
  dc::image::write_png(ref_dir + "/005.png", torch::randint(0, 256, {3, 32, 32}, torch::kUInt8));
  ASSERT_EQ(run_experiment(parse_experiment(yaml(2), dir + "/f.yaml", dir), o, log, false).complete, 2) << log.str();
  EXPECT_EQ(cached().size(), 2u);
  EXPECT_TRUE(fs::exists(npz));
}

// FID and Inception Score computed inside `run` by accumulators fed batch by batch equal the
// whole-array computation over the stored images (pytorch-fid's and the references' path),
// within the cross-batch float tolerance: the Inception sees batches of 4 in the run and one
// batch of 12 here (docs/experiments.md, "What is reproducible"). A shard stores the states
// (exact counts) and no values: a shard's FID is not the run's.
TEST(RunnerMetrics, InceptionMetricsInRunEqualTheWholeArrayComputation) {
  const auto large = dc::test::large_fixtures_root();
  const std::string weights = large ? *large + "/inception_fid.weights.safetensors" : "";
  if (weights.empty() || !fs::exists(weights)) GTEST_SKIP() << "large Inception weights absent; set DEEPCACHE_FIXTURES_LARGE";
  torch::NoGradGuard ng;
  const std::string dir = dc::test::temp_dir();
  auto net = dc::metrics::load_inception(weights, torch::kCPU);
  // Reference statistics of other (random) images in the 64-dimensional block (pytorch-fid --dims
  // 64), made full-rank (+ 0.01 I) so that 8 samples give a well-defined distance.
  torch::manual_seed(11);
  const torch::Tensor ref_images = torch::randint(0, 256, {6, 3, 32, 32}, torch::kUInt8);
  dc::metrics::FeatureStats ref;
  ref.add(dc::metrics::inception_features(net, ref_images, 64));
  const Eigen::VectorXd ref_mu = ref.mean();
  const Eigen::MatrixXd ref_sigma = ref.covariance() + 0.01 * Eigen::MatrixXd::Identity(64, 64);
  const std::string npz = dir + "/ref.npz";
  dc::metrics::write_fid_stats(npz, ref_mu, ref_sigma);
  // sFID reference as the ADM evaluator's reference batches hold it: mu_s, sigma_s (2023 features).
  const auto ref_out = net->forward(ref_images.to(torch::kFloat32).div(255), false, false, /*spatial=*/true);
  dc::metrics::FeatureStats ref_s;
  ref_s.add(ref_out.spatial);
  const Eigen::VectorXd ref_mu_s = ref_s.mean();
  const Eigen::MatrixXd ref_sigma_s = ref_s.covariance() + 0.01 * Eigen::MatrixXd::Identity(2023, 2023);
  const std::string snpz = dir + "/ref_spatial.npz";
  dc::metrics::write_npz(snpz, {{"mu_s", torch::from_blob(const_cast<double*>(ref_mu_s.data()), {2023}, torch::kFloat64).clone()},
                                {"sigma_s", torch::from_blob(const_cast<double*>(ref_sigma_s.data()), {2023, 2023}, torch::kFloat64).clone()}});
  const std::string yaml = std::string(R"(experiment: metrics
base:
  model: {family: ddpm, preset: cifar10, weights: random}
  sampler: {name: ddim, steps: 2, spacing: quad}
  samples: {n: 8, batch: 4, seed: 5, save_images: true, grid: 0}
  metrics:
    fid: {reference: )") + npz + ", weights: " + weights + R"(, dims: 64}
    inception_score: {splits: 2}
    sfid: {reference: )" + snpz + R"(}
baseline: false
runs:
  - {cache.k: 1, cache.interval: 2}
)";
  const auto e = parse_experiment(yaml, dir + "/m.yaml", dir);
  const std::string id = e.runs.at(0).run_id;
  std::ostringstream log;
  RunOptions o;
  o.results_path = dir + "/m.h5";
  ASSERT_EQ(run_experiment(e, o, log, false).complete, 1) << log.str();
  auto f = dc::h5::open_file(o.results_path);
  const std::string g = "runs/" + id;
  const double fid = dc::h5::read_scalar(f.id(), g + "/metrics/fid");
  const double is = dc::h5::read_scalar(f.id(), g + "/metrics/inception_score");
  EXPECT_EQ(dc::h5::read_tensor(f.id(), g + "/state/fid/count").item<int64_t>(), 8);
  EXPECT_TRUE(dc::h5::exists(f.id(), g + "/provenance/fid"));
  EXPECT_EQ(dc::h5::get_attr_string(dc::h5::open_group(f.id(), g + "/provenance/fid").id(), "reference"), npz);
  // The whole array at once.
  const torch::Tensor images = dc::h5::read_tensor(f.id(), g + "/images");
  const auto out = net->forward(images.to(torch::kFloat32).div(255), /*logits=*/true, /*debug=*/true, /*spatial=*/true);
  dc::metrics::FeatureStats all;
  all.add(out.blocks.at("block0").mean({2, 3}));
  const double want_fid =
      dc::metrics::frechet_distance(all.mean(), all.covariance(), ref_mu, ref_sigma).fid;
  const auto want_is = dc::metrics::inception_score(out.logits, 2);
  dc::metrics::FeatureStats all_s;
  all_s.add(out.spatial);
  const double want_sfid = dc::metrics::frechet_distance(all_s.mean(), all_s.covariance(), ref_mu_s, ref_sigma_s).fid;
  const double sfid = dc::h5::read_scalar(f.id(), g + "/metrics/sfid");
  EXPECT_NEAR(sfid, want_sfid, 1e-5 * want_sfid);
  EXPECT_GT(sfid, 0.0);
  EXPECT_EQ(dc::h5::read_tensor(f.id(), g + "/state/sfid/count").item<int64_t>(), 8);
  EXPECT_NE(dc::h5::get_attr_string(dc::h5::open_group(f.id(), g + "/provenance/sfid").id(), "implementation").find("mixed_6/conv"),
            std::string::npos);
  EXPECT_NEAR(fid, want_fid, 1e-5 * want_fid);
  EXPECT_NEAR(is, want_is.mean, 1e-6 * want_is.mean);
  EXPECT_GT(fid, 1.0);  // samples of a random network against other noise: far apart

  // Shard 1 of 2 (the second batch): states only.
  RunOptions s;
  s.results_path = dir + "/shard.h5";
  s.shard_index = 1;
  s.shard_count = 2;
  ASSERT_EQ(run_experiment(e, s, log, false).complete, 1) << log.str();
  auto sf = dc::h5::open_file(s.results_path);
  const std::string sg = "runs/" + result_key(id, 1, 2);
  EXPECT_EQ(dc::h5::read_tensor(sf.id(), sg + "/state/fid/count").item<int64_t>(), 4);
  EXPECT_EQ(dc::h5::read_tensor(sf.id(), sg + "/state/inception_score/count").sum().item<int64_t>(), 4);
  EXPECT_EQ(dc::h5::read_tensor(sf.id(), sg + "/state/sfid/count").item<int64_t>(), 4);
  EXPECT_FALSE(dc::h5::exists(sf.id(), sg + "/metrics/fid"));
}

// Precision/recall in `run`: per-sample pool features (float16) stored per run and per shard, the
// reference batch's features (an `arr_0` image npz, the ADM evaluator's layout) computed once and
// cached; the value equals the whole-array computation over the stored images; two shards merged
// give the one-process run's features and values bit for bit; h5py reads the features as float16.
TEST(RunnerMetrics, PrecisionRecallInRunFromFeaturesStoredPerShard) {
  const auto large = dc::test::large_fixtures_root();
  const std::string weights = large ? *large + "/inception_fid.weights.safetensors" : "";
  if (weights.empty() || !fs::exists(weights)) GTEST_SKIP() << "large Inception weights absent; set DEEPCACHE_FIXTURES_LARGE";
  torch::NoGradGuard ng;
  const std::string dir = dc::test::temp_dir();
  auto net = dc::metrics::load_inception(weights, torch::kCPU);
  auto yaml = [&](const std::string& metrics) {
    return std::string(R"(experiment: pr
base:
  model: {family: ddpm, preset: cifar10, weights: random}
  sampler: {name: ddim, steps: 2, spacing: quad}
  samples: {n: 8, batch: 4, seed: 6, save_images: true, grid: 0}
)") + metrics + R"(baseline: false
runs:
  - {cache.k: 1, cache.interval: 2}
)";
  };
  // The reference batch: 4 of the run's own samples (made first, without metrics) and 3 noise
  // images, so that neither value is 0 (precision >= 4/8, recall >= 4/7), beside FID statistics
  // (a stand-in), as the ADM evaluator's reference batches hold them.
  std::ostringstream log;
  RunOptions plain;
  plain.results_path = dir + "/plain.h5";
  const auto e0 = parse_experiment(yaml(""), dir + "/p.yaml", dir);
  ASSERT_EQ(run_experiment(e0, plain, log, false).complete, 1) << log.str();
  torch::Tensor own;
  {
    auto pf = dc::h5::open_file(plain.results_path);
    own = dc::h5::read_tensor(pf.id(), "runs/" + e0.runs.at(0).run_id + "/images").slice(0, 2, 6);
  }
  torch::manual_seed(12);
  const torch::Tensor ref_nhwc = torch::cat({own, torch::randint(0, 256, {3, 3, 32, 32}, torch::kUInt8)}).permute({0, 2, 3, 1}).contiguous();
  const std::string ref_npz = dir + "/ref_batch.npz";
  dc::metrics::write_npz(ref_npz, {{"arr_0", ref_nhwc}, {"mu", torch::zeros({2048}, torch::kFloat64)}, {"sigma", torch::eye(2048, torch::kFloat64)}});
  const std::string pr = "  metrics:\n    precision_recall: {reference: " + ref_npz + ", weights: " + weights + "}\n";
  // Alone (pool3 measured for precision/recall) and beside FID at 2048 dims (FID's features reused).
  const auto alone = parse_experiment(yaml(pr), dir + "/a.yaml", dir);
  const auto with_fid = parse_experiment(yaml(pr + "    fid: {reference: " + ref_npz + ", dims: 2048}\n"), dir + "/b.yaml", dir);
  RunOptions o;
  o.results_path = dir + "/a.h5";
  ASSERT_EQ(run_experiment(alone, o, log, false).complete, 1) << log.str();
  const std::string id = alone.runs.at(0).run_id, g = "runs/" + id;
  auto f = dc::h5::open_file(o.results_path);
  const double precision = dc::h5::read_scalar(f.id(), g + "/metrics/precision"), recall = dc::h5::read_scalar(f.id(), g + "/metrics/recall");
  const torch::Tensor features = dc::h5::read_tensor(f.id(), g + "/state/precision_recall/features");
  ASSERT_EQ(features.scalar_type(), torch::kFloat16);
  ASSERT_EQ(features.sizes(), (std::vector<int64_t>{8, 2048}));
  EXPECT_TRUE(torch::equal(dc::h5::read_tensor(f.id(), g + "/state/precision_recall/index"), torch::arange(8, torch::kInt64)));
  EXPECT_NE(dc::h5::get_attr_string(dc::h5::open_group(f.id(), g + "/provenance/precision_recall").id(), "implementation").find("k = 3"),
            std::string::npos);
  // The reference's features: cached next to the results.
  int cached = 0;
  for (const auto& e : fs::directory_iterator(dir + "/fid_reference_cache")) cached += e.path().filename().string().rfind("pr_reference_", 0) == 0;
  EXPECT_EQ(cached, 2);  // the .npz and its .json
  // The whole arrays at once: the stored images' pool3 (float16, as stored) against the reference's.
  const torch::Tensor images = dc::h5::read_tensor(f.id(), g + "/images");
  const torch::Tensor smp = net->forward(images.to(torch::kFloat32).div(255)).pool3.to(torch::kFloat16);
  EXPECT_LE((smp.to(torch::kFloat32) - features.to(torch::kFloat32)).abs().max().item<float>(), 1e-3f);  // batch of 4 against 8: float rounding
  const torch::Tensor ref = net->forward(ref_nhwc.permute({0, 3, 1, 2}).to(torch::kFloat32).div(255)).pool3;
  const auto want = dc::metrics::precision_recall(ref, features.to(torch::kFloat32));
  EXPECT_EQ(precision, want.precision);
  EXPECT_EQ(recall, want.recall);
  EXPECT_GE(precision, 0.5);
  EXPECT_GE(recall, 4.0 / 7);
  // Beside FID: the same features, so the same values.
  RunOptions b;
  b.results_path = dir + "/b.h5";
  ASSERT_EQ(run_experiment(with_fid, b, log, false).complete, 1) << log.str();
  {
    auto fb = dc::h5::open_file(b.results_path);
    const std::string gb = "runs/" + with_fid.runs.at(0).run_id;
    EXPECT_TRUE(torch::equal(dc::h5::read_tensor(fb.id(), gb + "/state/precision_recall/features"), features));
    EXPECT_EQ(dc::h5::read_scalar(fb.id(), gb + "/metrics/precision"), precision);
    EXPECT_TRUE(dc::h5::exists(fb.id(), gb + "/metrics/fid"));
  }
  // Two shards, the second first, merged: the one-process run's features and values.
  RunOptions s;
  s.results_path = dir + "/shards.h5";
  s.shard_count = 2;
  for (int i : {1, 0}) {
    s.shard_index = i;
    ASSERT_EQ(run_experiment(alone, s, log, false).complete, 1) << log.str();
  }
  {
    auto sf = dc::h5::open_file(s.results_path);
    EXPECT_TRUE(torch::equal(dc::h5::read_tensor(sf.id(), "runs/" + result_key(id, 1, 2) + "/state/precision_recall/index"),
                             torch::arange(4, 8, torch::kInt64)));
    EXPECT_FALSE(dc::h5::exists(sf.id(), "runs/" + result_key(id, 1, 2) + "/metrics/precision"));
  }
  MergeOptions mo;
  mo.inputs = {s.results_path};
  mo.out = dir + "/merged.h5";
  std::ostringstream mlog;
  merge_results(mo, mlog);
  auto m = dc::h5::open_file(mo.out);
  EXPECT_TRUE(torch::equal(dc::h5::read_tensor(m.id(), g + "/state/precision_recall/features"), features));
  EXPECT_EQ(dc::h5::read_scalar(m.id(), g + "/metrics/precision"), precision);
  EXPECT_EQ(dc::h5::read_scalar(m.id(), g + "/metrics/recall"), recall);
  // h5py reads the features as NumPy float16 (the type h5py itself writes).
  for (const char* py : {"/usr/bin/python3", "python3"}) {
    if (std::system((std::string(py) + " -c 'import h5py' >/dev/null 2>&1").c_str()) != 0) continue;
    const std::string cmd = std::string(py) + " -c \"import h5py,sys; d=h5py.File(sys.argv[1])['" + g +
                            "/state/precision_recall/features']; assert str(d.dtype)=='float16' and d.shape==(8,2048), d.dtype\" " + mo.out;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    break;
  }
  // A reference that is not images: the sweep stops before sampling, naming the file.
  const std::string bad = dir + "/bad.npz";
  dc::metrics::write_npz(bad, {{"mu", torch::zeros({3}, torch::kFloat64)}});
  std::string y = yaml(pr);
  y.replace(y.find(ref_npz), ref_npz.size(), bad);
  RunOptions c;
  c.results_path = dir + "/c.h5";
  std::ostringstream clog;
  try {
    run_experiment(parse_experiment(y, dir + "/c.yaml", dir), c, clog, false);
    ADD_FAILURE() << "a bad reference was accepted: " << clog.str();
  } catch (const dc::Error& ex) {
    EXPECT_NE(std::string(ex.what()).find(bad + ": a precision/recall reference .npz holds arr_0"), std::string::npos) << ex.what();
  }
  EXPECT_FALSE(fs::exists(c.results_path));
}
