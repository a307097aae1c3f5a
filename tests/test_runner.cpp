// Running experiments: batch sizes within the cross-layout contract, shards of whole batches, bad
// inputs stopping a sweep before any sample, failed runs recorded while the sweep goes on, the
// writer lock, Ctrl-C, timing.repeats and relative paths. (Resume after kill -9: test_runner_resume;
// metrics in run: test_runner_metrics; reports of runs: test_runner_report; merge: test_merge.)
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <fmt/format.h>

#include "common/error.h"
#include "harness/config.h"
#include "harness/hdf5.h"
#include "harness/report.h"
#include "harness/results_store.h"
#include "harness/runner.h"
#include "harness/writer_lock.h"
#include "support/agreement.h"
#include "support/cli.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace dc::harness;
#include "support/runs.h"

using dc::test::images_of;
using dc::test::journal_records;
using dc::test::kTiny;
using dc::test::spawn_cli;
using dc::test::wait_for;

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
