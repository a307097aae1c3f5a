// Running experiments: batch sizes within the cross-layout contract, shards of whole batches, atomic
// commits surviving kill -9 with resume, failed runs recorded while the sweep goes on, and reports
// with heatmaps.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <fstream>
#include <map>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "common/error.h"
#include "common/image_io.h"
#include "harness/config.h"
#include "harness/hdf5.h"
#include "harness/journal.h"
#include "harness/export.h"
#include "harness/merge.h"
#include "harness/report.h"
#include "harness/results_store.h"
#include "harness/runner.h"
#include "harness/writer_lock.h"
#include "metrics/fid_pipeline.h"
#include "metrics/inception_score.h"
#include "metrics/npz.h"
#include "metrics/precision_recall.h"
#include "support/agreement.h"
#include "support/cli.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace dc::harness;

namespace {
const char* kTiny = R"(experiment: tiny
base:
  model: {family: ddpm, preset: cifar10, weights: random}
  sampler: {name: ddim, steps: 3, spacing: quad}
  samples: {n: 4, batch: 4, seed: 3, save_images: true, grid: 4}
)";

// Runs an experiment into `h5` and returns its Markdown report (against `reference` when given).
std::string run_and_report(const ExperimentSpec& e, const std::string& h5, const std::string& reference = "") {
  std::ostringstream log;
  RunOptions o;
  o.results_path = h5;
  run_experiment(e, o, log, false);
  ReportOptions ro;
  ro.results = h5;
  ro.reference = reference;
  return render_report(ro);
}

torch::Tensor images_of(const std::string& h5, const std::string& run_id) {
  auto f = dc::h5::open_file(h5);
  return dc::h5::read_tensor(f.id(), "runs/" + run_id + "/images");
}
}  // namespace

// Batch 4 and batch 2 make the same samples from bit-identical noise through other kernels: their
// images agree within the contract (docs/experiments.md, "What is reproducible"). Shards hold
// whole batches, so two shards of the batch-2 run equal it bit for bit on this machine.
TEST(Runner, SamplesDoNotDependOnBatchSizeOrShards) {
  const std::string dir = dc::test::temp_dir();
  auto e = parse_experiment(std::string(kTiny) + "sweep: {cache.k: [2]}\n", "tiny.yaml");
  ASSERT_EQ(e.runs.size(), 2u);
  std::ostringstream log;
  RunOptions o;
  o.results_path = dir + "/a.h5";
  auto s = run_experiment(e, o, log, false);
  EXPECT_EQ(s.complete, 2);
  for (const auto& r : e.runs) EXPECT_TRUE(fs::exists(dir + "/grid_" + r.run_id + ".png")) << "PNG grid of " << r.run_id;
  for (auto& r : e.runs) r.samples.batch = 2;
  o.results_path = dir + "/b.h5";
  run_experiment(e, o, log, false);
  for (const auto& r : e.runs) {
    const auto u8 = dc::metrics::compare_images(images_of(dir + "/a.h5", r.run_id), images_of(dir + "/b.h5", r.run_id));
    EXPECT_TRUE(u8.within_contract()) << r.run_id << ": " << u8.describe();
    std::cout << "[ measured ] " << r.run_id << " batch 4 vs 2: uint8 " << u8.describe() << "\n";
  }
  // Two shards of the batch-2 run (one batch each) together equal it bit for bit.
  std::vector<torch::Tensor> parts;
  for (int i = 0; i < 2; ++i) {
    RunOptions so;
    so.only = {e.runs[1].run_id};
    so.shard_index = i;
    so.shard_count = 2;
    so.results_path = dir + fmt::format("/shard{}.h5", i);
    run_experiment(e, so, log, false);
    parts.push_back(images_of(so.results_path, result_key(e.runs[1].run_id, i, 2)));  // a shard's own key
  }
  EXPECT_EQ(parts[0].size(0), 2);
  EXPECT_TRUE(torch::equal(torch::cat(parts), images_of(dir + "/b.h5", e.runs[1].run_id)));
  // Negative control under the same tolerance: the cached run differs from its baseline.
  EXPECT_TRUE(dc::test::images_differ(images_of(dir + "/a.h5", e.runs[0].run_id), images_of(dir + "/a.h5", e.runs[1].run_id)));
  auto f = dc::h5::open_file(dir + "/a.h5");
  const auto is_full = dc::h5::read_tensor(f.id(), "runs/" + e.runs[1].run_id + "/is_full");
  EXPECT_EQ(is_full.numel(), 3);
  EXPECT_EQ(dc::h5::read_tensor(f.id(), "runs/" + e.runs[1].run_id + "/step_time_ms").numel(), 3);
  auto g = dc::h5::open_group(f.id(), "runs/" + e.runs[1].run_id);
  EXPECT_EQ(dc::h5::get_attr_string(g.id(), "status"), "complete");
  EXPECT_NE(dc::h5::get_attr_string(g.id(), "git_revision"), "");
  EXPECT_NE(dc::h5::get_attr_string(g.id(), "cpu_kernels").find("ATen="), std::string::npos);
  EXPECT_NE(dc::h5::get_attr_string(g.id(), "cpu"), "");
  EXPECT_NE(dc::h5::get_attr_string(g.id(), "thread_settings").find("torch intra-op threads="), std::string::npos);
  EXPECT_GT(dc::h5::read_scalar(g.id(), "metrics/partial_call_ms"), 0.0);
  EXPECT_GT(dc::h5::read_scalar(g.id(), "metrics/full_call_ms"), 0.0);
  EXPECT_NE(dc::h5::get_attr_string(g.id(), "config").find("\"k\": 2"), std::string::npos);
}

namespace {
// A log that runs `action` once the text written to it contains `marker` (something that happens
// between two runs of a sweep, as a user or a cluster's scratch purge would do it).
struct WatchedLog : std::streambuf {
  std::string text, marker;
  std::function<void()> action;
  bool fired = false;
  int overflow(int c) override {
    if (c != EOF) text += static_cast<char>(c), check();
    return c;
  }
  std::streamsize xsputn(const char* p, std::streamsize n) override {
    text.append(p, static_cast<std::size_t>(n));
    check();
    return n;
  }
  void check() {
    if (!fired && text.find(marker) != std::string::npos) fired = true, action();
  }
};

const char* kFmnistTwoRuns = R"(experiment: tiny
base:
  model: {family: ddpm, preset: fmnist, weights: random}
  sampler: {name: ddim, steps: 3, spacing: quad}
  samples: {n: 2, batch: 2, seed: 3}
baseline: false
)";
}  // namespace

// Inputs are checked before the first sample (the preflight): a damaged or missing file of any
// pending run stops the sweep with one dc::Error naming the experiment, the run and the file, and
// nothing is sampled or written.
TEST(Runner, BadInputOfALaterRunStopsTheSweepBeforeAnySample) {
  const std::string dir = dc::test::temp_dir();
  {
    std::ofstream(dir + "/cut.safetensors", std::ios::binary) << std::ifstream("weights/fmnist/ddpm_ema.safetensors", std::ios::binary).rdbuf();
    fs::resize_file(dir + "/cut.safetensors", fs::file_size(dir + "/cut.safetensors") / 2);
    std::ofstream(dir + "/stats.npz") << "not a zip\n";
  }
  struct Case {
    std::string run2, needle;
  };
  const std::vector<Case> cases = {
      {"{model.weights: /nonexistent/w.safetensors}", "/nonexistent/w.safetensors"},
      {"{model.weights: " + dir + "/cut.safetensors}", dir + "/cut.safetensors"},
      {"{model.weights: weights/fmnist/classifier.safetensors}", "weights/fmnist/classifier.safetensors"},
      {"{metrics.fid_fmnist: {classifier: weights/fmnist/classifier.safetensors, reference: " + dir + "/stats.npz}}", dir + "/stats.npz"},
      {"{metrics.fid_fmnist: {classifier: " + dir + "/cut.safetensors, reference: weights/fmnist/test_stats.npz}}", dir + "/cut.safetensors"},
      {"{model.dtype: fp16}", "model.dtype"},  // fp16 needs CUDA: on the CPU, one error before anything runs
  };
  for (const auto& c : cases) {
    if (c.run2 == "{model.dtype: fp16}" && torch::cuda::is_available()) continue;
    SCOPED_TRACE(c.run2);
    const auto e = parse_experiment(std::string(kFmnistTwoRuns) + "runs:\n  - {}\n  - " + c.run2 + "\n", "tiny.yaml");
    ASSERT_EQ(e.runs.size(), 2u);
    std::ostringstream log;
    RunOptions o;
    o.results_path = dir + "/r.h5";  // no case may write it
    try {
      run_experiment(e, o, log, false);
      ADD_FAILURE() << "no error; log:\n" << log.str();
    } catch (const dc::Error& ex) {
      const std::string m = ex.what();
      EXPECT_NE(m.find("tiny.yaml: run " + e.runs[1].run_id), std::string::npos) << m;
      EXPECT_NE(m.find(c.needle), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
    EXPECT_EQ(log.str().find("[run"), std::string::npos) << log.str();  // run 1 did not start
    EXPECT_FALSE(fs::exists(dir + "/r.h5"));
  }
}

// What fails while a sweep runs (here: run 2's weights vanish after the preflight, during run 1) is
// recorded with its run, and the sweep goes on (exit 1 from the CLI).
TEST(Runner, FailedRunIsRecordedAndTheSweepGoesOn) {
  const std::string dir = dc::test::temp_dir();
  const std::string w = dir + "/w.safetensors";
  fs::copy_file("weights/fmnist/ddpm_ema.safetensors", w);
  const auto e = parse_experiment(std::string(kFmnistTwoRuns) + "runs:\n  - {}\n  - {model.weights: " + w + "}\n  - {cache.k: 1}\n", "tiny.yaml");
  ASSERT_EQ(e.runs.size(), 3u);
  WatchedLog buf;
  buf.marker = "[run 1/3] " + e.runs[0].run_id;
  buf.action = [&] { fs::remove(w); };
  std::ostream log(&buf);
  RunOptions o;
  o.results_path = dir + "/r.h5";
  const auto s = run_experiment(e, o, log, false);
  EXPECT_TRUE(buf.fired);
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.complete, 2);
  EXPECT_NE(buf.text.find("FAILED: " + w + ": weights file not found"), std::string::npos) << buf.text;
  const auto runs = read_results(dir + "/r.h5");
  ASSERT_EQ(runs.size(), 3u);
  int failed = 0;
  for (const auto& r : runs)
    if (r.status == "failed") {
      ++failed;
      EXPECT_EQ(r.run_id, e.runs[1].run_id);
      EXPECT_NE(r.error.find("weights file not found"), std::string::npos);
    }
  EXPECT_EQ(failed, 1);
  // A rerun checks the failed run's inputs first: still missing, one error and nothing runs.
  std::ostringstream log2;
  EXPECT_THROW(run_experiment(e, o, log2, false), dc::Error);
  // With the file back, the rerun makes the failed run only.
  fs::copy_file("weights/fmnist/ddpm_ema.safetensors", w);
  const auto again = run_experiment(e, o, log2, false);
  EXPECT_EQ(again.skipped, 2);
  EXPECT_EQ(again.complete, 1);
  EXPECT_EQ(again.failed, 0);
}

namespace {
// A two-run Fashion-MNIST sweep of 4 batches per run with FID-FMNIST (exact accumulator states).
const char* kKillYaml = R"(experiment: kills
base:
  model: {family: ddpm, preset: fmnist, weights: random}
  sampler: {name: ddim, steps: 6, spacing: quad}
  samples: {n: 16, batch: 4, seed: 9, save_images: true, grid: 4}
  metrics:
    fid_fmnist: {classifier: weights/fmnist/classifier.safetensors, reference: weights/fmnist/test_stats.npz}
sweep: {cache.k: [1], cache.interval: [2]}
)";

// `stderr_file`: where the child's stderr goes (default /dev/null, as its stdout).
pid_t spawn_cli(const std::vector<std::string>& args, const std::string& stderr_file = "") {
  const std::string cli = dc::test::sibling_program("deepcache-bench");
  const pid_t pid = fork();
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(stderr_file.empty() ? devnull : ::open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
    std::vector<char*> argv{const_cast<char*>(cli.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(cli.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

int journal_records(const std::string& results) {
  int n = 0;
  std::error_code ec;
  if (!fs::is_directory(results + ".journal")) return 0;
  for (const auto& e : fs::recursive_directory_iterator(results + ".journal", ec))
    n += e.path().filename().string().rfind("batch-", 0) == 0 && e.path().extension() == ".h5";  // not batch-*.h5.tmp.<pid>
  return n;
}

// Images, grid, accumulator states and FID-FMNIST of every run equal, bit for bit.
void expect_same_runs(const std::string& got, const std::string& want, const std::string& what, double samples = 16) {
  auto a = dc::h5::open_file(got);
  auto b = dc::h5::open_file(want);
  const auto ids = dc::h5::children(dc::h5::open_group(b.id(), "runs").id());
  ASSERT_EQ(dc::h5::children(dc::h5::open_group(a.id(), "runs").id()), ids) << what;
  for (const auto& id : ids) {
    const std::string g = "runs/" + id;
    for (const char* k : {"/images", "/grid", "/state/fid_fmnist/sum", "/state/fid_fmnist/outer", "/state/fid_fmnist/classes", "/timesteps"})
      EXPECT_TRUE(torch::equal(dc::h5::read_tensor(a.id(), g + k), dc::h5::read_tensor(b.id(), g + k))) << what << ": " << id << k;
    EXPECT_EQ(dc::h5::read_scalar(a.id(), g + "/metrics/fid_fmnist"), dc::h5::read_scalar(b.id(), g + "/metrics/fid_fmnist")) << what << ": " << id;
    EXPECT_EQ(dc::h5::read_scalar(a.id(), g + "/metrics/samples"), samples) << what << ": " << id;
  }
}

void wait_for(const std::function<bool()>& seen, const std::string& what) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!seen()) {
    ASSERT_LT(std::chrono::steady_clock::now(), end) << "timed out waiting for " << what;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}
}  // namespace

// kill -9 as soon as a commit is observed (a run's first and second batch records, the results
// file's first run, a batch of the second run): the kill lands mid-sweep (asserted), the results
// file is readable, no temporary file outlives the next start, and the rerun resumes from the
// journal (samples not made again) and equals the uninterrupted sweep bit for bit.
TEST(Runner, KillNineOnObservedCommitsThenResume) {
  if (!fs::exists("weights/fmnist/classifier.safetensors")) GTEST_SKIP() << "the Fashion-MNIST classifier is absent";
  const std::string dir = dc::test::temp_dir();
  const std::string yaml_path = dir + "/k.yaml";
  std::ofstream(yaml_path) << kKillYaml;
  const auto e = load_experiment(yaml_path);
  std::ostringstream log;
  RunOptions whole;
  whole.results_path = dir + "/whole.h5";
  ASSERT_EQ(run_experiment(e, whole, log, false).complete, 2) << log.str();
  const std::string results = dir + "/k.h5";
  struct Target {
    const char* what;
    std::function<bool()> seen;
    int64_t resumed;  // samples the rerun replays from the journal, at least
  };
  const std::vector<Target> targets{
      {"the first batch record", [&] { return journal_records(results) >= 1; }, 4},
      {"the second batch record", [&] { return journal_records(results) >= 2; }, 8},
      {"the first run's commit", [&] { return fs::exists(results); }, 0},
      {"a batch record of the second run",
       [&] { return fs::exists(journal_folder(results, e.runs.at(1).run_id) + "/batch-00000000.h5"); }, 4},
  };
  for (const auto& t : targets) {
    fs::remove(results);
    fs::remove_all(results + ".journal");
    const pid_t pid = spawn_cli({"run", yaml_path, "--results", results});
    wait_for(t.seen, t.what);
    ::kill(pid, SIGKILL);
    int st = 0;
    ::waitpid(pid, &st, 0);
    ASSERT_TRUE(WIFSIGNALED(st)) << t.what << ": the sweep ended before the kill";
    std::vector<StoredRun> runs;
    if (fs::exists(results)) {
      ASSERT_NO_THROW(runs = read_results(results)) << "unreadable after a kill on " << t.what;
    }
    EXPECT_LT(runs.size(), 2u) << t.what << ": the kill did not land mid-sweep";
    const int records = journal_records(results);
    RunOptions o;
    o.results_path = results;
    std::ostringstream rlog;
    const auto s = run_experiment(e, o, rlog, false);
    EXPECT_EQ(s.skipped, static_cast<int>(runs.size())) << rlog.str();
    EXPECT_EQ(s.complete + s.skipped, 2) << rlog.str();
    if (t.resumed > 0) {
      EXPECT_GE(records, 1) << t.what;
      EXPECT_NE(rlog.str().find("resuming after sample"), std::string::npos) << t.what << "\n" << rlog.str();
      int64_t resumed = 0;
      auto f = dc::h5::open_file(results);
      for (const auto& id : dc::h5::children(dc::h5::open_group(f.id(), "runs").id()))
        resumed += static_cast<int64_t>(dc::h5::get_attr_double(dc::h5::open_group(f.id(), "runs/" + id).id(), "resumed_samples"));
      EXPECT_GE(resumed, t.resumed) << t.what;
    }
    EXPECT_FALSE(fs::exists(results + ".journal")) << "the journal outlived the committed runs";
    for (const auto& de : fs::directory_iterator(dir))
      EXPECT_EQ(de.path().filename().string().find(".h5.tmp."), std::string::npos) << "a crashed writer's temp file is left only until the next start";
    expect_same_runs(results, whole.results_path, t.what);
  }
}

// Soak: 12 kill -9 at random moments across a 2-shard sweep of 3 runs (each shard in its own file,
// as the Slurm array tasks write them): each process is killed 0-150 ms after it is seen to commit
// something (a batch record or a run), so every kill lands mid-sweep and the sweep moves on; then
// both shards finish and merge. The merged file equals the uninterrupted unsharded sweep bit for
// bit: nothing lost, nothing made twice.
// (20 kills of 48-sample runs until 2026-12: 6 minutes of CI's 45; the kill points are as varied
// with 12 kills on 24 samples, 6 batches per run and shard.)
TEST(Runner, SoakKillsAcrossAShardedSweepThenMerge) {
  if (!fs::exists("weights/fmnist/classifier.safetensors")) GTEST_SKIP() << "the Fashion-MNIST classifier is absent";
  const std::string dir = dc::test::temp_dir();
  const std::string yaml_path = dir + "/k.yaml";
  std::string text = kKillYaml;
  auto swap = [&](const std::string& from, const std::string& to) { text.replace(text.find(from), from.size(), to); };
  swap("cache.k: [1]", "cache.k: [1, 2]");  // 3 runs
  swap("n: 16, batch: 4", "n: 24, batch: 2");  // 6 batches per run and shard
  swap("steps: 6", "steps: 12");
  std::ofstream(yaml_path) << text;
  const auto e = load_experiment(yaml_path);
  ASSERT_EQ(e.runs.size(), 3u);
  std::ostringstream log;
  RunOptions whole;
  whole.results_path = dir + "/whole.h5";
  ASSERT_EQ(run_experiment(e, whole, log, false).complete, 3) << log.str();
  const std::string shard[2] = {dir + "/s0.h5", dir + "/s1.h5"};
  auto complete_runs = [&](int i) {
    int n = 0;
    if (fs::exists(shard[i]))
      for (const auto& r : read_results(shard[i])) n += r.status == "complete";
    return n;
  };
  auto progress = [&](int i) { return complete_runs(i) * 1000 + journal_records(shard[i]); };
  std::mt19937 rng(20261130);
  std::uniform_int_distribution<int> delay_ms(0, 150);
  constexpr int kKills = 12;
  int kills = 0, attempts = 0, finished = 0;
  int64_t resumed_batches = 0;
  while (kills < kKills && attempts < 100) {
    const int i = (complete_runs(attempts % 2) < 3) ? attempts % 2 : 1 - attempts % 2;
    ++attempts;
    if (complete_runs(i) == 3) break;  // both shards done
    const int before = progress(i);
    const pid_t pid = spawn_cli({"run", yaml_path, "--shard", fmt::format("{}/2", i), "--results", shard[i]});
    int st = 0;
    bool exited = false;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (progress(i) == before && !(exited = ::waitpid(pid, &st, WNOHANG) == pid) && std::chrono::steady_clock::now() < end)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    if (!exited) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
    }
    if (WIFSIGNALED(st)) ++kills;
    else ++finished;
    resumed_batches += journal_records(shard[i]);
    if (fs::exists(shard[i])) {
      ASSERT_NO_THROW(read_results(shard[i])) << "unreadable after kill " << kills;
    }
  }
  ASSERT_EQ(kills, kKills) << "the sweep finished after " << kills << " kills: make it longer";
  for (int i = 0; i < 2; ++i) {
    RunOptions o;
    o.shard_index = i;
    o.shard_count = 2;
    o.results_path = shard[i];
    std::ostringstream rlog;
    const auto s = run_experiment(e, o, rlog, false);
    ASSERT_EQ(s.complete + s.skipped, 3) << rlog.str();
    EXPECT_FALSE(fs::exists(shard[i] + ".journal"));
  }
  MergeOptions mo;
  mo.inputs = {shard[0], shard[1]};
  mo.out = dir + "/merged.h5";
  std::ostringstream mlog;
  ASSERT_EQ(merge_results(mo, mlog).runs, 3) << mlog.str();
  expect_same_runs(mo.out, whole.results_path, "merged after the kills", 24);
  RecordProperty("kills", kills);
  RecordProperty("batch_records_found_after_kills", static_cast<int>(resumed_batches));
  RecordProperty("processes_that_finished_before_their_kill", finished);
}

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

TEST(Journal, RecordsOfAnotherConfigurationOrAfterAGapOrDamagedAreMadeAgain) {
  const std::string dir = dc::test::temp_dir() + "/j";
  auto record = [](int64_t g, int64_t rows) {
    BatchRecord r;
    r.index = g;
    r.first = g * 4;
    r.rows = rows;
    r.seconds = 0.5 + g;
    r.step_time_ms = {1.0, 2.0 + g};
    r.is_full = {1, 0};
    r.computed = {{1, 1, 1}, {1, 0, 1}};  // what each call computed (stage flags)
    r.images = torch::full({rows, 1, 2, 2}, g, torch::kUInt8);
    r.quality["fid/features"] = torch::arange(rows * 3, torch::kFloat32).reshape({rows, 3}) + g;
    r.quality["fid_fmnist/count"] = torch::tensor({rows}, torch::kInt64);
    return r;
  };
  const RunJournal j(dir, "config A", 4);
  for (int64_t g : {2, 3, 5}) j.append(record(g, 4));
  int dropped = -1;
  auto got = j.load(2, &dropped);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(dropped, 1);  // batch 5 follows a gap
  EXPECT_EQ(got[1].index, 3);
  EXPECT_EQ(got[1].first, 12);
  EXPECT_EQ(got[1].step_time_ms, (std::vector<double>{1.0, 5.0}));
  EXPECT_EQ(got[1].is_full, (std::vector<int>{1, 0}));
  EXPECT_EQ(got[1].computed, (std::vector<std::vector<uint8_t>>{{1, 1, 1}, {1, 0, 1}}));
  EXPECT_DOUBLE_EQ(got[1].seconds, 3.5);
  EXPECT_TRUE(torch::equal(got[1].images, record(3, 4).images));
  EXPECT_TRUE(torch::equal(got[1].quality.at("fid/features"), record(3, 4).quality.at("fid/features")));
  EXPECT_TRUE(torch::equal(got[1].quality.at("fid_fmnist/count"), record(3, 4).quality.at("fid_fmnist/count")));
  EXPECT_FALSE(fs::exists(dir + "/batch-00000005.h5"));
  // Starting at another batch (another shard layout): nothing fits.
  EXPECT_TRUE(j.load(0, &dropped).empty());
  EXPECT_EQ(dropped, 2);
  // Another configuration or batch size.
  j.append(record(0, 4));
  EXPECT_TRUE(RunJournal(dir, "config B", 4).load(0, &dropped).empty());
  EXPECT_EQ(dropped, 1);
  j.append(record(0, 4));
  EXPECT_TRUE(RunJournal(dir, "config A", 8).load(0, &dropped).empty());
  // A damaged record (truncated by a disk-full, say) and the one after it.
  j.append(record(0, 4));
  j.append(record(1, 4));
  j.append(record(2, 4));
  fs::resize_file(dir + "/batch-00000001.h5", 100);
  got = j.load(0, &dropped);
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(dropped, 2);
  // Temporary files go, whoever wrote them: the journal is read under the results file's lock,
  // so no live writer has one (older builds named them tmp.<pid>).
  std::ofstream(dir + "/tmp.999999999") << "x";
  std::ofstream(dir + "/batch-00000003.h5.tmp." + std::to_string(::getpid())) << "x";
  j.load(0, &dropped);
  EXPECT_FALSE(fs::exists(dir + "/tmp.999999999"));
  EXPECT_FALSE(fs::exists(dir + "/batch-00000003.h5.tmp." + std::to_string(::getpid())));
  j.remove();
  EXPECT_FALSE(fs::exists(dir));
}

// Lines of the Markdown table (the report may add notes under it).
int table_lines(const std::string& md) {
  int n = 0;
  std::istringstream in(md);
  for (std::string line; std::getline(in, line);) n += !line.empty() && line[0] == '|';
  return n;
}

TEST(Report, TableWithSpeedupsAndHeatmaps) {
  const std::string dir = dc::test::temp_dir();
  std::string yaml = kTiny;
  yaml += "  similarity: {enabled: true, samples: 2}\nsweep: {cache.k: [1]}\n";
  const auto e = parse_experiment(yaml, "tiny.yaml");
  std::ostringstream log;
  RunOptions o;
  o.results_path = dir + "/rep.h5";
  run_experiment(e, o, log, false);
  ReportOptions ro;
  ro.results = o.results_path;
  std::vector<std::string> maps;
  const std::string md = render_report(ro, &maps);
  EXPECT_NE(md.find("| run_id | role | model |"), std::string::npos) << md;
  EXPECT_NE(md.find("RANDOM (untrained)"), std::string::npos) << md;
  EXPECT_NE(md.find("| baseline |"), std::string::npos) << md;
  // speedup, MACs speedup and bound against itself; the timing check's cell (the load of a test run
  // may warn), then the status.
  EXPECT_TRUE(std::regex_search(md, std::regex("\\| 1\\.00x \\| 1\\.00x \\| 1\\.00x \\| [^|]+ \\| complete \\|"))) << "baseline against itself: " << md;
  EXPECT_EQ(table_lines(md), 4) << md;
  // Under the table: how the per-call times were taken (harness/call_timer.h), from the runs.
  EXPECT_NE(md.find("per-call times (step_time_ms): steady_clock on cpu"), std::string::npos) << md;
  // The baseline ran every up block at every step: 12 maps; the cached run only the shallow ones.
  EXPECT_GE(maps.size(), 12u);
  for (const auto& m : maps) EXPECT_TRUE(fs::exists(m)) << m;
  const auto runs = read_results(o.results_path);
  for (const auto& r : runs) {
    if (!r.baseline) continue;
    const auto& m = r.similarity.at("up.0.block.2");
    EXPECT_EQ(m.sizes(), (std::vector<int64_t>{3, 3}));
    EXPECT_NEAR(m[1][1].item<double>(), 1.0, 1e-5) << "a step is identical to itself";
    EXPECT_TRUE(torch::allclose(m, m.t()));
  }
  ro.format = "csv";
  const std::string csv = render_report(ro);
  EXPECT_EQ(csv.rfind("run_id,role,model,", 0), 0u) << csv;
  EXPECT_EQ(csv.find("steady_clock"), std::string::npos) << "the CSV is one table: " << csv;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3) << csv;
  for (const auto& r : runs) EXPECT_EQ(r.timing_clock, "steady_clock") << r.run_id;
  ro.format = "xml";
  EXPECT_THROW(render_report(ro), dc::Error);
}

// Each run is compared with the baseline of its own sampler settings (eta included), and
// --reference compares every row with one chosen run instead.
TEST(Report, BaselinePerSamplerSettingAndReferenceRun) {
  const std::string dir = dc::test::temp_dir();
  const auto e = parse_experiment(std::string(kTiny) + "sweep: {cache.k: [1], sampler.eta: [0.0, 1.0]}\n", "tiny.yaml");
  ASSERT_EQ(e.runs.size(), 4u);
  std::map<double, std::set<std::string>> keys;  // eta -> baseline keys of its runs
  for (const auto& r : e.runs) keys[r.resolved["sampler"]["eta"].get<double>()].insert(baseline_key(r.resolved.dump()));
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0.0].size(), 1u) << "a cached run and its baseline share the key";
  EXPECT_EQ(keys[1.0].size(), 1u);
  EXPECT_NE(*keys[0.0].begin(), *keys[1.0].begin()) << "eta must separate baselines";

  const std::string md = run_and_report(e, dir + "/eta.h5");
  ReportOptions ro;
  ro.results = dir + "/eta.h5";
  EXPECT_EQ(table_lines(md), 6) << md;
  std::size_t eta_rows = 0;
  for (std::size_t p = md.find("ddim eta=1"); p != std::string::npos; p = md.find("ddim eta=1", p + 1)) ++eta_rows;
  EXPECT_EQ(eta_rows, 2u) << md;

  // Against one run: that run is 1.00x, a cached run's MAC speedup is the same as against its own.
  const auto runs = read_results(ro.results);
  std::string base0;
  for (const auto& r : runs)
    if (r.baseline && nlohmann::json::parse(r.config_json)["sampler"]["eta"].get<double>() == 0.0) base0 = r.run_id;
  ASSERT_FALSE(base0.empty()) << md;
  ro.reference = base0.substr(0, 8);
  const std::string against = render_report(ro);
  // The cell under `column` in the row of run `id` of a Markdown table.
  const auto cell = [](const std::string& table, const std::string& id, const std::string& column) {
    auto split = [](const std::string& line) {
      std::vector<std::string> cells;
      std::istringstream is(line);
      std::string c;
      while (std::getline(is, c, '|')) cells.push_back(c.size() > 2 ? c.substr(1, c.size() - 2) : c);
      return cells;
    };
    const auto head = split(table.substr(0, table.find('\n')));
    const auto p = table.find("| " + id + " |");
    if (p == std::string::npos) return std::string("(no row)");
    const auto row = split(table.substr(p, table.find('\n', p) - p));
    for (std::size_t i = 0; i < head.size() && i < row.size(); ++i)
      if (head[i] == column) return row[i];
    return std::string("(no column)");
  };
  EXPECT_EQ(cell(against, base0, "speedup"), "1.00x") << against;
  for (const auto& r : runs) {
    // MACs do not depend on eta: against the eta = 0 baseline every row keeps its MAC speedup.
    EXPECT_EQ(cell(against, r.run_id, "MACs speedup"), cell(md, r.run_id, "MACs speedup")) << against;
    if (r.baseline) {
      EXPECT_EQ(cell(md, r.run_id, "speedup"), "1.00x") << "each baseline against itself: " << md;
    }
  }
  // Across step counts the MAC speedup is per image: DDIM-2 against DDIM-3 does 2/3 of the work.
  const auto steps = parse_experiment(std::string(kTiny) + "runs:\n  - {cache.enabled: false}\n  - {cache.enabled: false, sampler.steps: 2}\n",
                                      "steps.yaml");
  ASSERT_EQ(steps.runs.size(), 2u);
  const std::string by_steps = run_and_report(steps, dir + "/steps.h5", steps.runs[0].run_id);
  EXPECT_EQ(cell(by_steps, steps.runs[0].run_id, "MACs speedup"), "1.00x") << by_steps;
  EXPECT_EQ(cell(by_steps, steps.runs[1].run_id, "MACs speedup"), "1.50x") << by_steps;
  ReportOptions own;
  own.results = dir + "/steps.h5";
  EXPECT_EQ(cell(render_report(own), steps.runs[1].run_id, "MACs speedup"), "1.00x") << "against its own baseline";

  ro.reference = "no-such-run";
  try {
    render_report(ro);
    ADD_FAILURE() << "an unknown --reference must fail";
  } catch (const dc::Error& err) {
    EXPECT_NE(std::string(err.what()).find("no-such-run"), std::string::npos) << err.what();
  }
}

TEST(PlotScript, DrawsPublicationHeatmapsFromTheResults) {
  const std::string py = dc::test::python_with("h5py, matplotlib");
  if (py.empty()) GTEST_SKIP() << "no Python with h5py and matplotlib (Debian: python3-h5py python3-matplotlib)";
  const std::string dir = dc::test::temp_dir();
  std::string yaml = kTiny;
  yaml += "  similarity: {enabled: true, taps: [up.0.block.2], samples: 1}\nbaseline: false\n";
  const auto e = parse_experiment(yaml, "tiny.yaml");
  std::ostringstream log;
  RunOptions o;
  o.results_path = dir + "/p.h5";
  run_experiment(e, o, log, false);
  const std::string script = fs::absolute("scripts/plot_similarity.py").string();
  const std::string stem = "plot_similarity_" + e.runs[0].run_id + "_up.0.block.2";
  ASSERT_EQ(std::system((py + " " + script + " " + o.results_path + " --out " + dir + "/plots >" + dir + "/stdout.txt").c_str()), 0);
  EXPECT_TRUE(fs::exists(dir + "/plots/" + stem + ".png"));
  EXPECT_TRUE(fs::exists(dir + "/plots/" + stem + ".pdf"));
  const std::string out = dc::test::read_text(dir + "/stdout.txt");
  EXPECT_NE(out.find(stem + ".png"), std::string::npos) << out;
  EXPECT_EQ(out.find("b'"), std::string::npos) << "bytes printed as b'...': " << out;
  // By default next to the results, where `report` writes similarity_<run>_<tap>.png: that file stays `report`'s.
  const std::string report_png = dir + "/similarity_" + e.runs[0].run_id + "_up.0.block.2.png";
  std::ofstream(report_png) << "report's heatmap";
  ASSERT_EQ(std::system((py + " " + script + " " + o.results_path + " >/dev/null").c_str()), 0);
  EXPECT_TRUE(fs::exists(dir + "/" + stem + ".png"));
  EXPECT_TRUE(fs::exists(dir + "/" + stem + ".pdf"));
  EXPECT_EQ(dc::test::read_text(report_png), "report's heatmap");
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
  EXPECT_FALSE(dc::h5::exists(a.id(), g + "/state/fid_fmnist_features"));
  EXPECT_FALSE(dc::h5::exists(b.id(), g + "/state/fid_fmnist_features"));
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

// One writer per results file: a second `run` (or `merge`) aimed at a file another process is
// writing stops at once with exit 2, naming the holder (pid, host); the lock goes with its holder.
TEST(WriterLock, ASecondWriterIsRefusedNamingTheHolder) {
  const std::string dir = dc::test::temp_dir();
  const std::string h5 = dir + "/r.h5";
  std::string holder_error;
  {
    const WriterLock held(h5, "run");
    try {
      const WriterLock second(h5, "merge");  // another open file description: contends as another process would
      ADD_FAILURE() << "a second writer got the lock";
    } catch (const dc::Error& e) {
      holder_error = e.what();
    }
    EXPECT_NE(holder_error.find(h5 + ": another process is writing this results file (`run`, pid " + std::to_string(::getpid())),
              std::string::npos) << holder_error;
    EXPECT_NE(holder_error.find("merge refuses"), std::string::npos) << holder_error;
    // The command line: `run` on the held file exits 2 with one line naming it and the holder.
    std::ofstream(dir + "/e.yaml") << kTiny;
    const auto r = dc::test::run_cli("run " + dir + "/e.yaml --results " + h5);
    EXPECT_EQ(r.code, 2) << r.out << r.err;
    EXPECT_NE(r.err.find("pid " + std::to_string(::getpid())), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(h5));  // nothing written
  }
  // Released: the next writer gets it.
  EXPECT_NO_THROW(WriterLock(h5, "run"));
}

// An experiment whose axes multiply past 100,000 runs is refused before any run is made.
TEST(Config, AbsurdSweepsAreRefusedBeforeExpanding) {
  std::string axis;
  for (int i = 0; i < 1000; ++i) axis += (i ? ", " : "") + std::to_string(i);
  const std::string yaml = std::string(kTiny) + "sweep:\n  samples.seed: [" + axis + "]\n  cache.interval: [" + axis + "]\n  cache.center: [" + axis + "]\n";
  const auto t0 = std::chrono::steady_clock::now();
  try {
    parse_experiment(yaml, "big.yaml");
    ADD_FAILURE() << "accepted";
  } catch (const dc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("expands to 1000000000 runs (sweep.cache.center 1000 x sweep.cache.interval 1000 x sweep.samples.seed 1000)"),
              std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
}

// Issue 17: Ctrl-C says at once which run stops, that the batch in progress is kept and that the
// same command resumes; the run then ends with exit 75 and "interrupted". A second Ctrl-C stops at
// once and says so. The rerun resumes from the journal.
TEST(Runner, CtrlCSaysWhichRunStopsAndThatTheSameCommandResumes) {
  const std::string dir = dc::test::temp_dir() + "/ctrl_c";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string yaml = dir + "/e.yaml", results = dir + "/e.h5";
  std::ofstream(yaml) << "experiment: ctrlc\nbase:\n  model: {family: ddpm, preset: fmnist, weights: random}\n"
                         "  sampler: {name: ddim, steps: 40}\n  samples: {n: 64, batch: 16, seed: 1}\nbaseline: false\n"
                         "sweep: {cache.k: [1], cache.interval: [2]}\n";
  const auto text = dc::test::read_text;
  const auto id = dc::harness::load_experiment(yaml).runs.at(0).run_id;
  const pid_t pid = spawn_cli({"run", yaml, "--results", results}, dir + "/err1.txt");
  wait_for([&] { return journal_records(results) >= 1; }, "the first batch record");
  ::kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  const std::string err1 = text(dir + "/err1.txt");
  ASSERT_TRUE(WIFEXITED(status)) << err1;
  EXPECT_EQ(WEXITSTATUS(status), dc::harness::kExitInterrupted) << err1;
  EXPECT_NE(err1.find("[run 1/1] " + id), std::string::npos) << err1;
  EXPECT_NE(err1.find(": stop requested (SIGINT (Ctrl-C)): the batch in progress finishes and is kept, then the run stops; the same "
                      "command resumes it. Press Ctrl-C again"),
            std::string::npos) << err1;
  EXPECT_NE(err1.find(": interrupted: stopped by SIGINT (Ctrl-C) after sample"), std::string::npos) << err1;
  EXPECT_NE(err1.find("images/s"), std::string::npos) << err1;
  // The rerun resumes; two Ctrl-C in a row stop it at once (killed by SIGINT), saying so.
  const pid_t again = spawn_cli({"run", yaml, "--results", results}, dir + "/err2.txt");
  wait_for([&] { return text(dir + "/err2.txt").find("resuming after sample") != std::string::npos; }, "the resume line");
  ::kill(again, SIGINT);  // the second after the first is handled: pending signals of one kind merge
  wait_for([&] { return text(dir + "/err2.txt").find("stop requested") != std::string::npos; }, "the first Ctrl-C's line");
  ::kill(again, SIGINT);
  ASSERT_EQ(::waitpid(again, &status, 0), again);
  const std::string err2 = text(dir + "/err2.txt");
  ASSERT_TRUE(WIFSIGNALED(status)) << err2;
  EXPECT_EQ(WTERMSIG(status), SIGINT);
  EXPECT_NE(err2.find(": stopping now on a second SIGINT (Ctrl-C): the batch in progress is lost; the batches committed before it "
                      "are kept, and the same command resumes from them"),
            std::string::npos) << err2;
  EXPECT_GE(journal_records(results), 1);
}

// timing.repeats: the run's first batch sampled again R - 1 times after its batches, each timed:
// stored as timing/repeat_seconds (not part of s/image), in report's spread and in the log. The run
// id, the journal's identity and the images are those of the same run without repeats.
TEST(Runner, TimingRepeatsRetimeTheFirstBatchAndChangeNothingElse) {
  const std::string dir = dc::test::temp_dir() + "/timing_repeats";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto yaml = [](const std::string& timing) {
    return "experiment: repeats\nbase:\n  model: {family: ddpm, preset: fmnist, weights: random}\n"
           "  sampler: {name: ddim, steps: 4, spacing: quad}\n  samples: {n: 2, batch: 2, seed: 1, save_images: true, grid: 0}\n" +
           timing + "baseline: false\nruns:\n  - {cache.k: 1, cache.interval: 2}\n";
  };
  const auto plain = parse_experiment(yaml(""), dir + "/plain.yaml", ".");
  const auto timed = parse_experiment(yaml("  timing: {repeats: 3}\n"), dir + "/timed.yaml", ".");
  const RunSpec& p = plain.runs.at(0);
  const RunSpec& t = timed.runs.at(0);
  EXPECT_EQ(p.run_id, t.run_id);
  EXPECT_EQ(t.timing.repeats, 3);
  EXPECT_EQ(t.resolved.at("timing").at("repeats"), 3);  // recorded in the stored config
  EXPECT_FALSE(p.resolved.contains("timing"));
  EXPECT_EQ(journal_identity(p), journal_identity(t));  // a resume with other repeats keeps its batches
  std::ostringstream plain_log, timed_log;
  RunOptions o;
  o.results_path = dir + "/plain.h5";
  ASSERT_EQ(run_experiment(plain, o, plain_log, false).complete, 1) << plain_log.str();
  o.results_path = dir + "/timed.h5";
  ASSERT_EQ(run_experiment(timed, o, timed_log, /*tty: progress per model call*/ true).complete, 1) << timed_log.str();
  const std::string log = timed_log.str();
  EXPECT_NE(log.find("\r[run 1/1] " + t.run_id), std::string::npos) << log;  // a status line, redrawn
  EXPECT_NE(log.find(", batch: model call 1/4"), std::string::npos) << log;   // within the batch
  EXPECT_NE(log.find("images/s"), std::string::npos) << log;
  EXPECT_NE(log.find(": timing repeat 1/2 of the first batch (timing.repeats)"), std::string::npos) << log;
  EXPECT_NE(log.find(": timing repeat 2/2 of the first batch (timing.repeats)"), std::string::npos) << log;
  EXPECT_NE(log.find("note: timing.repeats: "), std::string::npos) << log;
  EXPECT_NE(log.find("over 3 timings of a full batch (the run's batches and 2 repeats of its first)"), std::string::npos) << log;
  EXPECT_EQ(plain_log.str().find("timing repeat"), std::string::npos) << plain_log.str();

  auto a = dc::h5::open_file(dir + "/plain.h5");
  auto b = dc::h5::open_file(dir + "/timed.h5");
  const std::string g = "runs/" + t.run_id;
  EXPECT_TRUE(torch::equal(dc::h5::read_tensor(a.id(), g + "/images"), dc::h5::read_tensor(b.id(), g + "/images")));
  EXPECT_FALSE(dc::h5::exists(a.id(), g + "/timing/repeat_seconds"));
  const auto reps = dc::h5::to_doubles(dc::h5::read_array(b.id(), g + "/timing/repeat_seconds"));
  const auto rows = dc::h5::to_doubles(dc::h5::read_array(b.id(), g + "/timing/repeat_rows"));
  ASSERT_EQ(reps.size(), 2u);
  EXPECT_EQ(rows, (std::vector<double>{2, 2}));
  for (double v : reps) EXPECT_GT(v, 0.0);
  // s/image is the run's own batches: the repeats are not added to it.
  const auto batches = dc::h5::to_doubles(dc::h5::read_array(b.id(), g + "/timing/batch_seconds"));
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_DOUBLE_EQ(dc::h5::read_scalar(b.id(), g + "/metrics/seconds"), batches[0]);
  EXPECT_DOUBLE_EQ(dc::h5::read_scalar(b.id(), g + "/metrics/seconds_per_image"), batches[0] / 2);
  // The report's spread: over the one batch and the two repeats; "-" for the one batch alone.
  ReportOptions ro;
  ro.results = dir + "/timed.h5";
  ro.figures = false;
  const std::string with = render_report(ro);
  EXPECT_NE(with.find("% (3) |"), std::string::npos) << with;
  EXPECT_NE(with.find("over the run's full batches and its timing.repeats"), std::string::npos) << with;
  ro.results = dir + "/plain.h5";
  const std::string without = render_report(ro);
  EXPECT_EQ(without.find("% ("), std::string::npos) << without;
}

// Issue 17: a relative path that is not found says which directory it was read from (the working
// directory, not the YAML's folder), and a missing Fashion-MNIST file names what ships there.
TEST(Runner, MissingRelativePathsNameTheDirectoryTheyWereReadFrom) {
  const std::string dir = dc::test::temp_dir() + "/relative_paths";
  fs::create_directories(dir);
  const std::string yaml = dir + "/e.yaml";
  std::ofstream(yaml) << "experiment: rel\nbase:\n  model: {family: ddpm, preset: fmnist, weights: w/ddpm_ema.safetensors}\n"
                         "  sampler: {name: ddim, steps: 4}\n  samples: {n: 2, batch: 2}\nbaseline: false\nsweep: {cache.k: [1]}\n";
  auto r = dc::test::run_cli("run " + dc::test::shell_quote(yaml) + " --results " + dc::test::shell_quote(dir + "/r.h5"));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("w/ddpm_ema.safetensors: weights file not found (a relative path, read from the working directory " +
                       fs::current_path().string() + ", not from the experiment file's folder)"),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the repository ships it as weights/fmnist/ddpm_ema.safetensors"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("fetch_weights"), std::string::npos) << r.err;
  std::ofstream(yaml) << "experiment: rel\nbase:\n  model: {family: ddpm, preset: fmnist, weights: random}\n"
                         "  sampler: {name: ddim, steps: 4}\n  samples: {n: 2, batch: 2}\n"
                         "  metrics: {fid_fmnist: {classifier: c.safetensors, reference: weights/fmnist/test_stats.npz}}\n"
                         "baseline: false\nsweep: {cache.k: [1]}\n";
  r = dc::test::run_cli("run " + dc::test::shell_quote(yaml) + " --results " + dc::test::shell_quote(dir + "/r.h5"));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("classifier weights not found: c.safetensors (a relative path, read from the working directory"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("the repository ships weights/fmnist/classifier.safetensors"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/r.h5"));
}
