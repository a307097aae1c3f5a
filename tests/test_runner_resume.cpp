// Runs survive kill -9: atomic commits observed and killed, the sweep resumed from its journal,
// equal bit for bit to the uninterrupted sweep; the journal's records of another configuration,
// after a gap or damaged are made again.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "harness/config.h"
#include "harness/hdf5.h"
#include "harness/journal.h"
#include "harness/merge.h"
#include "harness/results_store.h"
#include "harness/runner.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace dc::harness;
#include "support/runs.h"

using dc::test::journal_records;
using dc::test::spawn_cli;
using dc::test::wait_for;

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
