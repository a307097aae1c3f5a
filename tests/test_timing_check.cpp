// Issue 31: a timing checked against physics. The checks themselves (harness/timing_check.h), then a
// results file with a planted timing (a cached run 3.3x faster than its baseline where every
// multiply-accumulate allows 2x, with half its sampling time in the kernel) that `report` must
// flag, beside an honest one it must pass.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>

#include <fmt/format.h>

#include "harness/config.h"
#include "harness/report.h"
#include "harness/results_store.h"
#include "harness/timing_check.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace dc::harness;

namespace {

bool has(const std::vector<std::string>& flags, const std::string& part) {
  for (const auto& f : flags)
    if (f.find(part) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(TimingCheck, FlagsWhatPhysicsRulesOutAndNothingElse) {
  TimingFacts sound;
  sound.speedup = 1.49;
  sound.mac_bound = 1.63;
  sound.call_speedup = 2.9;
  sound.call_mac_bound = 3.2;
  sound.spread = 0.03;
  sound.sampled_seconds = 3.9;
  sound.system_seconds = 0.5 * 0.1;
  sound.load_start = 1.0;
  sound.load_end = 2.0;
  sound.cores = 2;
  EXPECT_TRUE(timing_flags(sound).empty()) << timing_flags(sound).front();

  TimingFacts f = sound;
  f.speedup = 2.80;  // the quick start before the allocator fix: 2.80x where the MACs allow 1.63x
  EXPECT_TRUE(has(timing_flags(f), "timing not compute-bound: speedup 2.80x over the baseline, above the 1.63x")) << timing_flags(f).at(0);
  f.speedup = 1.63 * 1.029;  // within the spread (3%): not flagged
  EXPECT_TRUE(timing_flags(f).empty());
  f.spread = 0.01;  // the same excess beyond a 1% spread is flagged
  EXPECT_TRUE(has(timing_flags(f), "timing not compute-bound"));
  f.spread = -1;  // no spread known: any excess, and the message says how to get one
  EXPECT_TRUE(has(timing_flags(f), "unknown: one timing, set timing.repeats"));

  f = sound;
  f.call_speedup = 4.0;  // a partial call faster than its MACs allow, within one run
  EXPECT_TRUE(has(timing_flags(f), "a partial model call ran 4.00x faster than a full one, where every multiply-accumulate allows 3.20x"));

  f = sound;
  f.system_seconds = 22.8;  // the default-allocator row: 22.8 s of 23.6 s in the kernel
  f.sampled_seconds = 23.6;
  f.minor_faults = 3216513;
  EXPECT_TRUE(has(timing_flags(f), "system time 97% of the sampling time (22.80 s of 23.60 s, 3216513 minor page faults)"));
  f.system_seconds = 0.09 * 23.6;  // below 10%
  EXPECT_TRUE(timing_flags(f).empty());

  f = sound;
  f.load_end = 3.5;  // another process on a 2-core machine
  EXPECT_TRUE(has(timing_flags(f), "load average 1.00 at the start and 3.50 at the end of the sampling, above the machine's 2 cores"));
  f.load_end = 2.4;  // the run's own 2 threads make a load of about 2: within the margin
  EXPECT_TRUE(timing_flags(f).empty());

  f = sound;
  f.speedup = 1.05;  // 5% faster with a 12% spread: no effect to read
  f.spread = 0.12;
  EXPECT_TRUE(has(timing_flags(f), "spread +/-12.0% larger than the effect shown (speedup 1.05x)"));
  f.is_baseline = true;
  EXPECT_FALSE(has(timing_flags(f), "larger than the effect"));
}

// A results file written as `run` writes it, with a planted timing: `report` flags the planted run
// (speedup above the bound, system time, load) and passes the honest one.
// What a run's record says by itself (`run` and `report` both start from it): call times split by
// kind against the MACs of each kind, the OS's account, the load and the cores; nothing for what
// the record lacks.
TEST(TimingCheck, RecordFactsComeFromTheRecordAlone) {
  RunRecord r;
  r.is_full = {1, 0, 1, 0};
  r.step_time_ms = {10.0, 2.0, 12.0, 4.0};
  r.macs_full_all = 4e9;
  r.macs_partial_all = 1e9;
  r.usage_seconds = 3.0;
  r.usage.system_seconds = 0.5;
  r.usage.minor_faults = 7;
  r.load_start = 1.5;
  r.load_end = 2.5;
  r.cores = 2;
  const TimingFacts f = record_facts(r);
  EXPECT_DOUBLE_EQ(f.call_speedup, 11.0 / 3.0);
  EXPECT_DOUBLE_EQ(f.call_mac_bound, 4.0);
  EXPECT_EQ(f.sampled_seconds, 3.0);
  EXPECT_EQ(f.system_seconds, 0.5);
  EXPECT_EQ(f.minor_faults, 7);
  EXPECT_EQ(f.load_start, 1.5);
  EXPECT_EQ(f.load_end, 2.5);
  EXPECT_EQ(f.cores, 2);
  EXPECT_EQ(f.speedup, 0.0) << "against a baseline: the caller's";
  RunRecord plain;  // no partial calls, no usage recorded (an older file)
  plain.is_full = {1, 1};
  plain.step_time_ms = {10.0, 10.0};
  const TimingFacts g = record_facts(plain);
  EXPECT_EQ(g.call_speedup, 0.0);
  EXPECT_EQ(g.system_seconds, -1.0);
  EXPECT_TRUE(timing_flags(g).empty());
}

TEST(TimingCheck, ReportFlagsAPlantedTiming) {
  const std::string dir = dc::test::temp_dir() + "/timing_check";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const ExperimentSpec e = parse_experiment(
      "experiment: planted\nbase:\n  model: {family: ddpm, preset: fmnist, weights: random}\n"
      "  sampler: {name: ddim, steps: 4, spacing: quad}\n  samples: {n: 4, batch: 2, seed: 1}\n"
      "runs:\n  - {cache.k: 1, cache.interval: 2, name: honest}\n  - {cache.k: 1, cache.interval: 4, name: planted}\n",
      dir + "/planted.yaml", dir);
  ASSERT_EQ(e.runs.size(), 3u);  // the baseline first
  const std::string h5 = dir + "/planted.h5";
  ResultsStore store(h5, e.name, e.description);
  // Full calls cost 10 G MACs (8 G as the paper counts), partial ones 2 G (1.5 G).
  auto result = [&](const RunSpec& spec, double s_per_image, double system_seconds, double load) {
    RunResult r;
    r.spec = spec;
    r.timesteps = {750, 500, 250, 0};
    r.full_calls = spec.cache.enabled ? spec.plan.full_calls : std::vector<int>{0, 1, 2, 3};
    for (int c = 0; c < 4; ++c) r.is_full.push_back(std::find(r.full_calls.begin(), r.full_calls.end(), c) != r.full_calls.end());
    for (int f : r.is_full) r.step_time_ms.push_back(f ? 100.0 : 20.0);  // 5x, where the MACs allow 10/2 = 5x
    r.macs_full = 8e9;
    r.macs_partial = spec.cache.enabled ? 1.5e9 : 0;
    r.macs_full_all = 10e9;
    r.macs_partial_all = spec.cache.enabled ? 2e9 : 0;
    const double n_full = static_cast<double>(r.full_calls.size());
    r.macs_step_average = (n_full * r.macs_full + (4 - n_full) * r.macs_partial) / 4;
    r.macs_step_average_all = (n_full * r.macs_full_all + (4 - n_full) * r.macs_partial_all) / 4;
    r.samples = 4;
    r.seconds = 4 * s_per_image;
    r.batch_seconds = {2 * s_per_image, 2 * s_per_image};
    r.batch_rows = {2, 2};
    r.usage_seconds = r.seconds;
    r.usage.user_seconds = 2 * r.seconds;
    r.usage.system_seconds = system_seconds;
    r.usage.minor_faults = 1000;
    r.load_start = r.load_end = load;
    r.cores = 2;
    return r;
  };
  store.commit(result(e.runs[0], 1.0, 0.01, 0.5));
  // N = 2: full calls 0 and 2, bound 10 / 6 = 1.67x; measured 1.5x.
  store.commit(result(e.runs[1], 1.0 / 1.5, 0.01, 0.5));
  // N = 4: one full call, bound 40 / 16 = 2.5x; planted 3.3x, half the time in the kernel, load 3 on 2 cores.
  store.commit(result(e.runs[2], 0.3, 0.6, 3.0));
  ReportOptions ro;
  ro.results = h5;
  ro.figures = false;
  const Report rep = build_report(ro);
  const auto col = [&](const std::string& name) { return std::find(rep.head.begin(), rep.head.end(), name) - rep.head.begin(); };
  ASSERT_LT(col("timing check"), static_cast<long>(rep.head.size()));
  std::map<std::string, std::vector<ReportCell>> rows;
  for (std::size_t i = 0; i < rep.rows.size(); ++i) rows[rep.row_keys[i]] = rep.rows[i];
  const auto& base = rows.at(e.runs[0].run_id);
  const auto& honest = rows.at(e.runs[1].run_id);
  const auto& planted = rows.at(e.runs[2].run_id);
  EXPECT_EQ(base[col("timing check")].text, "ok");
  EXPECT_EQ(honest[col("timing check")].text, "ok");
  EXPECT_EQ(honest[col("bound (all MACs)")].text, "1.67x");
  EXPECT_EQ(honest[col("MACs speedup")].text, fmt::format("{:.2f}x", 32.0 / (2 * 8 + 2 * 1.5)));  // the paper's count: 1.68x
  EXPECT_EQ(planted[col("bound (all MACs)")].text, "2.50x");
  EXPECT_EQ(planted[col("speedup")].text, "3.33x");
  EXPECT_EQ(planted[col("timing check")].text, "3 warnings (notes)");
  std::string notes;
  for (const auto& n : rep.notes) notes += n + "\n";
  const std::string who = "Run " + e.runs[2].run_id + " (planted): ";
  EXPECT_NE(notes.find(who + "timing not compute-bound: speedup 3.33x over the baseline, above the 2.50x"), std::string::npos) << notes;
  EXPECT_NE(notes.find(who + "system time 50% of the sampling time"), std::string::npos) << notes;
  EXPECT_NE(notes.find(who + "load average 3.00 at the start"), std::string::npos) << notes;
  EXPECT_EQ(notes.find("Run " + e.runs[1].run_id), std::string::npos) << notes;
}
