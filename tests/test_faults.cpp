// Faults of the environment (issue 32; docs/reliability.md, "Faults"): the n-th file operation of
// `run` and `merge` fails (ENOSPC, EIO) or the process dies there (common/io_ops.h,
// DEEPCACHE_IO_FAULT), for every n of a small sweep with commits, a merge and the journal; a real
// full file system (a small tmpfs, as root); a read-only folder, a missing mount, a journal folder
// that cannot be made, a results file replaced under a running sweep, and a sweep refused before
// its first sample. After each: the results file opens, every run committed before is intact
// (images, FID-FMNIST, states equal), no temporary file is left by a failed commit, and the same
// command completes the sweep with results equal to an undisturbed one (same machine, batch and
// threads: the journal replays bit for bit). With DC_FAULT_TABLE=PATH the faults table is also
// written as Markdown: docs/reliability.md holds its latest output.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <array>
#include <chrono>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "harness/hdf5.h"
#include "harness/results_store.h"
#include "support/cli.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using dc::test::CliRun;
using dc::test::run_cli;
using dc::test::shell_quote;

namespace {

bool have_fmnist() { return fs::exists("weights/fmnist/ddpm_ema.safetensors") && fs::exists("weights/fmnist/classifier.safetensors"); }

// Two runs (a baseline, DeepCache N = 2) of 8 samples in batches of 4: two journal records, a
// commit and a grid each; FID-FMNIST's exact states stored with them.
std::string sweep_yaml(int n = 8, int batch = 4, bool save_images = true) {
  return "experiment: faults\n"
         "base:\n"
         "  model: {family: ddpm, preset: fmnist, weights: weights/fmnist/ddpm_ema.safetensors}\n"
         "  sampler: {name: ddim, steps: 2}\n"
         "  samples: {n: " + std::to_string(n) + ", batch: " + std::to_string(batch) + ", seed: 0, save_images: " +
         (save_images ? "true" : "false") + ", grid: 4}\n"
         "  metrics:\n"
         "    fid_fmnist: {classifier: weights/fmnist/classifier.safetensors, reference: weights/fmnist/test_stats.npz}\n"
         "sweep:\n"
         "  cache.interval: [2]\n";
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every dataset under runs/<key> that does not hold a time: images, grid, states, quality arrays.
std::map<std::string, std::string> run_data(const std::string& results) {
  std::map<std::string, std::string> out;
  auto f = dc::h5::open_file(results);
  std::function<void(hid_t, const std::string&)> walk = [&](hid_t g, const std::string& prefix) {
    for (const auto& c : dc::h5::children(g)) {
      const hid_t o = H5Oopen(g, c.c_str(), H5P_DEFAULT);
      const bool group = o >= 0 && H5Iget_type(o) == H5I_GROUP;
      if (o >= 0) H5Oclose(o);
      const std::string name = prefix + "/" + c;
      if (group) {
        if (c != "timing" && c != "usage") walk(dc::h5::open_group(g, c).id(), name);
        continue;
      }
      static const std::set<std::string> timed{"step_time_ms", "seconds", "seconds_per_image", "samples_per_second", "metric_seconds",
                                               "full_call_ms", "partial_call_ms", "partial_over_full_time"};
      if (timed.count(c)) continue;
      const auto a = dc::h5::read_array(g, c);
      out[name] = std::string(a.bytes.begin(), a.bytes.end());
    }
  };
  walk(dc::h5::open_group(f.id(), "runs").id(), "runs");
  return out;
}

// The runs of `got` hold the same data as those runs in `want` (the keys of `got` only).
void expect_runs_equal(const std::string& got, const std::string& want, const std::string& what) {
  const auto g = run_data(got), w = run_data(want);
  for (const auto& [k, v] : g) {
    auto it = w.find(k);
    ASSERT_NE(it, w.end()) << what << ": " << k << " is not in the undisturbed results";
    EXPECT_TRUE(it->second == v) << what << ": " << k << " differs from the undisturbed run";
  }
}

std::vector<std::string> temporaries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.find(".tmp.") != std::string::npos || n.rfind("tmp.", 0) == 0) out.push_back(e.path().string());
  }
  return out;
}

std::vector<std::string> trace_ops(const std::string& trace) {
  std::vector<std::string> ops;
  std::ifstream in(trace);
  std::string line;
  while (std::getline(in, line)) ops.push_back(line);
  return ops;
}

// "create results.tmp" for an operation line "<n> create /x/r.h5.tmp.123": the kind of file.
std::string where(const std::string& line, const std::string& dir) {
  std::istringstream s(line);
  std::string n, op, path;
  s >> n >> op >> path;
  std::string p = path == dir ? "(the results folder)" : path.rfind(dir + "/", 0) == 0 ? path.substr(dir.size() + 1) : path;
  p = std::regex_replace(p, std::regex("\\.tmp\\.[0-9]+$"), ".tmp.PID");
  p = std::regex_replace(p, std::regex("[0-9a-f]{16}"), "RUN");
  p = std::regex_replace(p, std::regex("batch-[0-9]{8}"), "batch-N");
  return op + " " + p;
}

struct FaultRow {
  std::string command, point, fault, exit, message, kept;
};
std::vector<FaultRow>& fault_table() {
  static std::vector<FaultRow> rows;
  return rows;
}
std::set<std::string>& tabled() {
  static std::set<std::string> s;
  return s;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// One fault of a sweep: the command is run with the n-th operation failed (or killed there); the
// results file then holds exactly what `before` held plus runs equal to the undisturbed ones, and
// the same command run again completes with results equal to `want`.
void inject(const std::string& label, const std::string& dir, const std::string& args, int n, const std::string& fault,
            const std::string& point, const std::string& results, const std::string& want, const std::function<void()>& reset) {
  reset();
  const std::string what = fmt::format("{} operation {} ({}) failing with {}", label, n, point, fault);
  const CliRun r = run_cli(args, "DEEPCACHE_IO_FAULT=" + std::to_string(n) + ":" + fault);
  std::string kept;
  if (fault == "kill") {
    EXPECT_TRUE(r.code == -1 || r.code == 128 + SIGKILL) << what << ": the process was not killed (exit " << r.code << ")\n" << r.err;
  } else {
    EXPECT_EQ(r.code, 2) << what << "\n" << r.out << r.err;
    // The progress lines go to stderr too: the error is its last line, and the only one.
    const auto at = r.err.find("deepcache-bench: error: ");
    ASSERT_NE(at, std::string::npos) << what << "\n" << r.err;
    EXPECT_EQ(r.err.find('\n', at), r.err.size() - 1) << what << ": not one line\n" << r.err;
    EXPECT_EQ(r.err.find("deepcache-bench: error: ", at + 1), std::string::npos) << what << "\n" << r.err;
    EXPECT_TRUE(temporaries(dir).empty()) << what << ": a failed commit left " << temporaries(dir).front();
  }
  int committed = 0;
  if (fs::exists(results)) {
    std::vector<dc::harness::StoredRun> runs;
    ASSERT_NO_THROW(runs = dc::harness::read_results(results)) << what << ": the results file does not open";
    committed = static_cast<int>(runs.size());
    expect_runs_equal(results, want, what);
  }
  int records = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(results + ".journal", ec)) records += e.path().extension() == ".h5";
  kept = fmt::format("{} run(s) committed, {} journal record(s)", committed, records);
  // The same command goes on and completes the sweep.
  const CliRun again = run_cli(args);
  EXPECT_EQ(again.code, 0) << what << ": the rerun\n" << again.out << again.err;
  EXPECT_TRUE(temporaries(dir).empty()) << what << ": the rerun left " << temporaries(dir).front();
  EXPECT_FALSE(fs::exists(results + ".journal")) << what << ": a journal outlived its commit";
  expect_runs_equal(results, want, what + ", rerun");
  EXPECT_EQ(run_data(results).size(), run_data(want).size()) << what << ": the rerun's results lack runs";
  const std::string op = point.substr(0, point.find(' '));
  const std::string key = label + " " + point + " " + (fault == "kill" ? "kill" : "errno");
  if (tabled().insert(key).second) {
    std::string msg = fault == "kill" ? "(killed: nothing said)" : first_line(r.err.substr(r.err.find("deepcache-bench: error: ")));
    msg = std::regex_replace(msg, std::regex(dir), "DIR");
    msg = std::regex_replace(msg, std::regex("\\.tmp\\.[0-9]+"), ".tmp.PID");
    fault_table().push_back({label, point, fault, fault == "kill" ? "SIGKILL" : std::to_string(r.code), msg, kept});
  }
}

}  // namespace

// Which faults operation n of a trace gets: at the first operation of each kind (its `where`, e.g.
// "fsync r.h5.tmp.PID") an errno (ENOSPC or EIO, alternately) and a kill; at a later operation of
// a kind already met (the second batch's journal record, the second file written into the same
// folder) only a kill at the folder fsync that completes a file: the state it leaves (one more
// file landed) is new; the failure paths are the ones the first occurrence took.
static std::vector<std::string> faults_at(const std::string& point, std::set<std::string>& seen) {
  if (seen.insert(point).second) return {seen.size() % 2 ? "ENOSPC" : "EIO", "kill"};
  if (point.rfind("fsync-folder ", 0) == 0) return {"kill"};
  return {};
}

// Every kind of operation of a sweep (journal records, commits, grids, the lock) and of a merge,
// failed with ENOSPC or EIO and with the process killed there (faults_at).
TEST(Faults, EveryFileOperationOfASweepAndAMergeFailedOrKilledLosesNothing) {
  if (!have_fmnist()) GTEST_SKIP() << "the Fashion-MNIST weights are absent";
  const std::string dir = dc::test::temp_dir() + "/f";
  fs::create_directories(dir);
  const std::string yaml = dir + "/f.yaml";
  std::ofstream(yaml) << sweep_yaml();
  const std::string want = dir + "/want/r.h5", results = dir + "/r/r.h5";
  // Undisturbed: the whole sweep; and the state a fault meets: the baseline committed.
  ASSERT_EQ(run_cli("run " + shell_quote(yaml) + " --results " + shell_quote(want)).code, 0);
  const auto plan = run_cli("plan " + shell_quote(yaml));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(plan.out, m, std::regex("([0-9a-f]{16})  plain"))) << plan.out;
  const std::string base = dir + "/base/r.h5";
  ASSERT_EQ(run_cli("run " + shell_quote(yaml) + " --results " + shell_quote(base) + " --only " + m[1].str()).code, 0);
  auto reset = [&] {
    fs::remove_all(dir + "/r");
    fs::create_directories(dir + "/r");
    fs::copy_file(base, results);
  };
  const std::string args = "run " + shell_quote(yaml) + " --results " + shell_quote(results);
  reset();
  const std::string trace = dir + "/trace";
  ASSERT_EQ(run_cli(args, "DEEPCACHE_IO_TRACE=" + shell_quote(trace)).code, 0);
  const auto ops = trace_ops(trace);
  ASSERT_GE(ops.size(), 20u) << "the sweep's operations: journal records, a commit, a grid";
  std::set<std::string> seen;
  int faults = 0;
  for (std::size_t n = 1; n <= ops.size(); ++n) {
    const std::string point = where(ops[n - 1], dir + "/r");
    for (const auto& fault : faults_at(point, seen)) {
      inject("run", dir + "/r", args, static_cast<int>(n), fault, point, results, want, reset);
      ++faults;
    }
  }
  const std::size_t run_kinds = seen.size();
  // merge: two shards' files into one.
  const std::string shards = dir + "/shards";
  fs::create_directories(shards);
  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(run_cli("run " + shell_quote(yaml) + " --shard " + std::to_string(i) + "/2 --results " + shell_quote(fmt::format("{}/s{}.h5", shards, i))).code, 0);
  for (int i = 0; i < 2; ++i)  // two shards writing into one folder: each its own grid
    EXPECT_EQ(std::count_if(fs::directory_iterator(shards), fs::directory_iterator(), [&](const fs::directory_entry& e) {
                return e.path().filename().string().find(fmt::format(".shard-{}-of-2.png", i)) != std::string::npos;
              }),
              2) << "grid_<run>.shard-" << i << "-of-2.png of both runs";
  const std::string merged = dir + "/m/merged.h5", merged_want = dir + "/mwant/merged.h5";
  const std::string margs_want = "merge " + shell_quote(shards + "/s0.h5") + " " + shell_quote(shards + "/s1.h5") + " --out ";
  ASSERT_EQ(run_cli(margs_want + shell_quote(merged_want)).code, 0) << run_cli(margs_want + shell_quote(merged_want)).err;
  const std::string margs = margs_want + shell_quote(merged);
  auto mreset = [&] { fs::remove_all(dir + "/m"); };
  mreset();
  ASSERT_EQ(run_cli(margs, "DEEPCACHE_IO_TRACE=" + shell_quote(dir + "/mtrace")).code, 0);
  const auto mops = trace_ops(dir + "/mtrace");
  ASSERT_GE(mops.size(), 5u);
  seen.clear();
  for (std::size_t n = 1; n <= mops.size(); ++n) {
    const std::string point = where(mops[n - 1], dir + "/m");
    for (const auto& fault : faults_at(point, seen)) {
      inject("merge", dir + "/m", margs, static_cast<int>(n), fault, point, merged, merged_want, mreset);
      ++faults;
    }
  }
  const std::string summary = fmt::format(
      "{} operations of `run` ({} kinds) and {} of `merge` ({} kinds); each kind failed (ENOSPC or EIO) and killed at its first "
      "operation, and killed at every later folder fsync that completes a file: {} faults, each followed by a rerun of the same command.",
      ops.size(), run_kinds, mops.size(), seen.size(), faults);
  std::cout << "[ faults   ] " << summary << "\n";
  if (const char* out = std::getenv("DC_FAULT_TABLE")) {
    std::ofstream md(out);
    md << "| command | operation (file) | fault | exit | what the user sees | what is kept |\n|---|---|---|---|---|---|\n";
    for (const auto& r : fault_table())
      md << "| `" << r.command << "` | " << r.point << " | " << r.fault << " | " << r.exit << " | " << r.message << " | " << r.kept << " |\n";
    md << "\n" << summary << "\n";
  }
}

namespace {

// A tmpfs of `size` mounted at `dir` (root only); false when this machine cannot mount one.
bool mount_tmpfs(const std::string& dir, const std::string& size) {
  fs::create_directories(dir);
  return ::geteuid() == 0 && ::mount("tmpfs", dir.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
}

struct Unmount {
  std::string dir;
  ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
};

}  // namespace

// The case on a real file system: a 260 KB tmpfs, a results file holding one complete run,
// three runs of 128 images with save_images (free space enough for a run's journal, not for it and
// the commit's new file beside it). The disk fills at a commit: exit 2 with one line, the
// results file byte for byte as it was, no temporary file, the run's batches in its journal; with
// space made (the tmpfs grown), the same command resumes and completes.
TEST(Faults, ARealFullFileSystemKeepsTheResultsFileAndTheSweepResumes) {
  if (!have_fmnist()) GTEST_SKIP() << "the Fashion-MNIST weights are absent";
  const std::string dir = dc::test::temp_dir() + "/tmpfs";
  if (!mount_tmpfs(dir, "260k")) GTEST_SKIP() << "cannot mount a tmpfs here (needs root; CI runs as root)";
  const Unmount unmount{dir};
  const std::string work = dc::test::temp_dir() + "/full";
  fs::create_directories(work);
  std::ofstream(work + "/one.yaml") << "experiment: full\nbase:\n  model: {family: ddpm, preset: fmnist, weights: weights/fmnist/ddpm_ema.safetensors}\n"
                                       "  sampler: {name: ddim, steps: 2}\n  samples: {n: 16, batch: 16, seed: 7, save_images: true}\n";
  std::ofstream(work + "/three.yaml") << "experiment: full\nbase:\n  model: {family: ddpm, preset: fmnist, weights: weights/fmnist/ddpm_ema.safetensors}\n"
                                         "  sampler: {name: ddim, steps: 2}\n  samples: {n: 128, batch: 64, seed: 0, save_images: true}\n"
                                         "sweep:\n  samples.seed: [0, 1, 2]\n";
  const std::string results = dir + "/r.h5";
  ASSERT_EQ(run_cli("run " + shell_quote(work + "/one.yaml") + " --results " + shell_quote(results)).code, 0);
  const std::string before = read_bytes(results);
  // A sweep whose journal alone cannot fit is refused before its first sample.
  std::ofstream(work + "/huge.yaml") << "experiment: full\nbase:\n  model: {family: ddpm, preset: fmnist, weights: weights/fmnist/ddpm_ema.safetensors}\n"
                                        "  sampler: {name: ddim, steps: 2}\n  samples: {n: 2000, batch: 500, seed: 0, save_images: true}\n";
  const CliRun huge = run_cli("run " + shell_quote(work + "/huge.yaml") + " --results " + shell_quote(results));
  EXPECT_EQ(huge.code, 2) << huge.err;
  EXPECT_NE(huge.err.find("free"), std::string::npos) << huge.err;
  EXPECT_EQ(huge.err.find("samples 500/2000"), std::string::npos) << "sampled before refusing: " << huge.err;
  EXPECT_TRUE(read_bytes(results) == before);
  EXPECT_FALSE(fs::exists(results + ".journal"));
  // Another writer's temporary file beside ours (another results file's) is not ours to remove.
  std::ofstream(dir + "/other.h5.tmp.1") << "x";
  const CliRun r = run_cli("run " + shell_quote(work + "/three.yaml") + " --results " + shell_quote(results));
  ASSERT_EQ(r.code, 2) << r.out << r.err;
  const std::string line = r.err.substr(r.err.find("deepcache-bench: error: "));
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
  EXPECT_NE(line.find("No space left on device"), std::string::npos) << line;
  EXPECT_TRUE(read_bytes(results) == before) << "the results file changed";
  EXPECT_TRUE(fs::exists(dir + "/other.h5.tmp.1")) << "another results file's temporary file was removed";
  fs::remove(dir + "/other.h5.tmp.1");
  EXPECT_TRUE(temporaries(dir).empty()) << temporaries(dir).front();
  ASSERT_TRUE(fs::is_directory(results + ".journal")) << "the journal of the run that could not be committed is gone";
  ASSERT_EQ(::mount("tmpfs", dir.c_str(), "tmpfs", MS_REMOUNT, "size=20m"), 0);
  const CliRun again = run_cli("run " + shell_quote(work + "/three.yaml") + " --results " + shell_quote(results));
  ASSERT_EQ(again.code, 0) << again.out << again.err;
  EXPECT_NE(again.err.find("resuming after sample"), std::string::npos) << again.err;
  const auto runs = dc::harness::read_results(results);
  EXPECT_EQ(runs.size(), 7u) << "one run before, then 3 baselines and 3 DeepCache runs";
  EXPECT_FALSE(fs::exists(results + ".journal"));
  // Read-only: the same folder remounted read-only refuses the next sweep in one line.
  ASSERT_EQ(::mount("tmpfs", dir.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, "size=20m"), 0);
  std::ofstream(work + "/more.yaml") << "experiment: full\nbase:\n  model: {family: ddpm, preset: fmnist, weights: weights/fmnist/ddpm_ema.safetensors}\n"
                                        "  sampler: {name: ddim, steps: 2}\n  samples: {n: 4, batch: 4, seed: 9}\n";
  const std::string kept = read_bytes(results);
  const CliRun ro = run_cli("run " + shell_quote(work + "/more.yaml") + " --results " + shell_quote(results));
  EXPECT_EQ(ro.code, 2) << ro.err;
  EXPECT_NE(ro.err.find("Read-only file system"), std::string::npos) << ro.err;
  EXPECT_TRUE(read_bytes(results) == kept);
  if (const char* out = std::getenv("DC_FAULT_TABLE")) {
    std::ofstream md(out, std::ios::app);
    auto clean = [&](std::string s) {
      s = std::regex_replace(s.substr(s.find("deepcache-bench: error: ")), std::regex(dir), "DIR");
      return s.substr(0, s.find('\n'));
    };
    md << "\nOn a real file system (`Faults.ARealFullFileSystemKeepsTheResultsFileAndTheSweepResumes`, a tmpfs):\n\n"
       << "| fault | command | exit | what the user sees | what is kept |\n|---|---|---|---|---|\n"
       << "| a 260 KB tmpfs fills at a commit | `run` (3 runs of 128 images, save_images) | 2 | " << clean(r.err)
       << " | the results file byte for byte; the run's journal (the rerun resumes from it) |\n"
       << "| the folder remounted read-only | `run` | 2 | " << clean(ro.err) << " | the results file byte for byte |\n"
       << "| a sweep whose journal cannot fit (2000 images kept, 260 KB) | `run` | 2 | " << clean(huge.err)
       << " | the results file byte for byte; nothing sampled |\n";
  }
}

// Refusals before anything is written, and a results file replaced under a running sweep.
TEST(Faults, MissingMountUnwritableJournalReplacedFileAndRefusedSweepsLoseNothing) {
  if (!have_fmnist()) GTEST_SKIP() << "the Fashion-MNIST weights are absent";
  const std::string dir = dc::test::temp_dir() + "/env";
  fs::create_directories(dir);
  const std::string yaml = dir + "/e.yaml";
  std::ofstream(yaml) << sweep_yaml(8, 4, false);
  std::vector<std::array<std::string, 4>> rows;  // fault, exit, message, kept
  auto line_of = [&](const CliRun& r) {
    const auto at = r.err.find("deepcache-bench: error: ");
    std::string s = at == std::string::npos ? r.err : r.err.substr(at);
    EXPECT_EQ(s.find('\n'), s.size() - 1) << "not one line: " << s;
    s = std::regex_replace(s.substr(0, s.find('\n')), std::regex(dir), "DIR");
    return std::regex_replace(s, std::regex("dc-missing-mount-[0-9]+"), "dc-missing-mount-PID");
  };
  // A results path whose top-level folder is missing (a file system not mounted).
  const std::string missing = "/dc-missing-mount-" + std::to_string(::getpid());
  CliRun r = run_cli("run " + shell_quote(yaml) + " --results " + shell_quote(missing + "/me/r.h5"));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("not mounted"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(missing)) << "made a folder on the root file system";
  rows.push_back({"results path on a missing mount", std::to_string(r.code), line_of(r), "nothing made"});
  // The journal folder cannot be made (a file where it goes).
  const std::string results = dir + "/j/r.h5";
  fs::create_directories(dir + "/j");
  std::ofstream(results + ".journal") << "in the way";
  r = run_cli("run " + shell_quote(yaml) + " --results " + shell_quote(results));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find(".journal"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(results)) << "a run committed without its journal";
  rows.push_back({"journal folder not writable (a file in its place)", std::to_string(r.code), line_of(r), "the results file (none yet) and the file in the way"});
  fs::remove(results + ".journal");
  // Refused before the first sample: every missing input of every run named, nothing left behind.
  std::ofstream(dir + "/bad.yaml") << "experiment: bad\nbase:\n  model: {family: ddpm, preset: fmnist, weights: " << dir
                                   << "/none.safetensors}\n  sampler: {name: ddim, steps: 2}\n  samples: {n: 4, batch: 4}\n"
                                      "  metrics:\n    fid_fmnist: {classifier: weights/fmnist/classifier.safetensors, reference: "
                                   << dir << "/none.npz}\nsweep:\n  cache.interval: [2, 3]\n";
  r = run_cli("run " + shell_quote(dir + "/bad.yaml") + " --results " + shell_quote(dir + "/bad/r.h5"));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("none.safetensors"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("none.npz"), std::string::npos) << "only the first problem named: " << r.err;
  EXPECT_NE(r.err.find("and 2 more run(s)"), std::string::npos) << "the runs sharing the missing file: " << r.err;
  EXPECT_FALSE(fs::exists(dir + "/bad")) << "a refused sweep left its results folder (and lock) behind";
  rows.push_back({"two missing inputs, three runs (refused before sampling)", std::to_string(r.code), line_of(r), "nothing made: no folder, no lock"});
  // A batch that cannot fit in memory.
  std::ofstream(dir + "/big.yaml") << "experiment: big\nbase:\n  model: {family: ddpm, preset: fmnist, weights: weights/fmnist/ddpm_ema.safetensors}\n"
                                      "  sampler: {name: ddim, steps: 2}\n  samples: {n: 1000000000, batch: 1000000000}\n";
  r = run_cli("run " + shell_quote(dir + "/big.yaml") + " --results " + shell_quote(dir + "/big/r.h5"));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("set samples.batch to"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/big"));
  rows.push_back({"a batch of 10^9 images (memory checked before sampling)", std::to_string(r.code), line_of(r), "nothing made"});
  // The results file replaced while the sweep runs: the next commit refuses to write over it.
  std::ofstream(dir + "/slow.yaml") << sweep_yaml(64, 4, false);
  const std::string other = dir + "/other.h5";
  ASSERT_EQ(run_cli("run " + shell_quote(dir + "/one.yaml") + " --results " + shell_quote(other)).code, 2) << "no such experiment";
  std::ofstream(dir + "/one.yaml") << "experiment: other\nbase:\n  model: {family: ddpm, preset: fmnist, weights: weights/fmnist/ddpm_ema.safetensors}\n"
                                      "  sampler: {name: ddim, steps: 2}\n  samples: {n: 4, batch: 4}\n";
  ASSERT_EQ(run_cli("run " + shell_quote(dir + "/one.yaml") + " --results " + shell_quote(other)).code, 0);
  const std::string replaced = dir + "/rep/r.h5";
  fs::create_directories(dir + "/rep");
  const std::string cmd = "exec " + shell_quote(dc::test::sibling_program("deepcache-bench")) + " run " + shell_quote(dir + "/slow.yaml") +
                          " --results " + shell_quote(replaced) + " >" + shell_quote(dir + "/rep.out") + " 2>" + shell_quote(dir + "/rep.err");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Until the first commit (minutes under the sanitizers), or the end of the sweep.
  int st = 0;
  bool ended = false;
  for (int i = 0; i < 120000 && !fs::exists(replaced); ++i) {
    if (::waitpid(pid, &st, WNOHANG) == pid) {
      ended = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Stopped while the file is replaced: the second run (16 batches) cannot commit in between, however
  // fast the machine (without the stop, a quiet machine finished it first).
  if (!ended) ::kill(pid, SIGSTOP);
  ASSERT_TRUE(fs::exists(replaced)) << "the first run was not committed\n" << read_bytes(dir + "/rep.err");
  if (ended) GTEST_SKIP() << "the sweep finished before the file could be replaced (a slow machine)";
  fs::copy_file(other, replaced + ".new");
  fs::rename(replaced + ".new", replaced);
  const std::string theirs = read_bytes(replaced);
  ::kill(pid, SIGCONT);
  ::waitpid(pid, &st, 0);
  const std::string err = read_bytes(dir + "/rep.err");
  if (WEXITSTATUS(st) == 0) GTEST_SKIP() << "the sweep finished before the file was replaced (a slow machine)";
  EXPECT_EQ(WEXITSTATUS(st), 2) << err;
  EXPECT_NE(err.find("replaced, changed or removed by another program"), std::string::npos) << err;
  EXPECT_TRUE(read_bytes(replaced) == theirs) << "the replacing file was written over";
  EXPECT_TRUE(fs::is_directory(replaced + ".journal")) << "the run's batches were dropped";
  CliRun rep;
  rep.code = WEXITSTATUS(st);
  rep.err = err;
  rows.push_back({"the results file replaced by another program under a running sweep", std::to_string(rep.code), line_of(rep),
                  "the replacing file byte for byte; the run's journal"});
  if (const char* out = std::getenv("DC_FAULT_TABLE")) {
    std::ofstream md(out, std::ios::app);
    md << "\nRefusals (`Faults.MissingMountUnwritableJournalReplacedFileAndRefusedSweepsLoseNothing`):\n\n"
       << "| fault | exit | what the user sees | what is kept |\n|---|---|---|---|\n";
    for (const auto& row : rows) md << "| " << row[0] << " | " << row[1] << " | " << row[2] << " | " << row[3] << " |\n";
  }
}
