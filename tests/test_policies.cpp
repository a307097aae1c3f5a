// Caching policies are plug-ins (harness/policies/policy.h): a policy registered here, in the test
// binary alone, runs from YAML end to end (its keys read strictly, its part of the run id and of the
// description, its decisions made per call with what the calls did fed back), and the run's MACs are
// counted from the calls it made. Plus the registry's own rules.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "harness/config.h"
#include "harness/plan.h"
#include "harness/report.h"
#include "harness/policies/policy_state.h"
#include "harness/runner.h"
#include "metrics/macs.h"
#include "models/model.h"
#include "tests/support/csv.h"
#include "tests/support/fixtures.h"

namespace {

using dc::harness::policies::Policy;
using dc::harness::policies::PolicySettings;
using dc::harness::policies::ReadContext;
using dc::models::CallRecord;
using dc::models::CallRequest;
using dc::models::StageCache;

// A toy: the whole UNet on even calls, DeepCache's partial call at `k` on odd ones. It says nothing
// ahead (schedule() is nullopt), so its cost can only come from the calls made.
struct EvenCalls {
  std::vector<std::pair<int, std::string>> events;  // what the loop told the policies made so far
};
EvenCalls& log_of_toy() {
  static EvenCalls log;
  return log;
}

struct EvenSettings final : PolicySettings {
  int k = 1, num_skips = 0;
  nlohmann::json resolved() const override { return {{"k", k}}; }
  std::string describe() const override { return fmt::format(" k={} full on even calls", k); }
  std::optional<std::vector<dc::models::CallPlan>> schedule() const override { return std::nullopt; }
  std::vector<dc::harness::policies::ReportColumn> report_columns() const override {
    return {{"toy k", fmt::format("k={}", k), static_cast<double>(k)}};
  }
  std::unique_ptr<Policy> make() const override;
};

class EvenPolicy final : public Policy {
 public:
  explicit EvenPolicy(const EvenSettings& s) : s_(s) {}
  void begin(int64_t batch) override { log_of_toy().events.push_back({-1, fmt::format("begin {}", batch)}); }
  CallRequest decide(int call, const torch::Tensor& t, const torch::Tensor& x) override {
    EXPECT_EQ(t.size(0), x.size(0));
    log_of_toy().events.push_back({call, "decide"});
    return dc::models::deepcache_request(s_.num_skips, s_.k, call % 2 == 1);
  }
  void observe(int call, const CallRecord& record, const StageCache& cache) override {
    const int computed = static_cast<int>(std::count(record.computed.begin(), record.computed.end(), 1));
    log_of_toy().events.push_back({call, fmt::format("observe {} stages{}", computed,
                                                     cache.has(dc::models::deepcache_stage(s_.num_skips, s_.k)) ? " cached" : "")});
  }

 private:
  const EvenSettings s_;
};

std::unique_ptr<Policy> EvenSettings::make() const { return std::make_unique<EvenPolicy>(*this); }

std::shared_ptr<const PolicySettings> read_even(const ReadContext& c) {
  auto s = std::make_shared<EvenSettings>();
  c.reader.get(c.block, "cache", "k", s->k);
  if (s->k < 0 || s->k >= c.num_skips) c.reader.fail("cache.k", fmt::format("{} is not a skip index of this UNet (0..{})", s->k, c.num_skips - 1));
  s->num_skips = c.num_skips;
  return s;
}

const bool kRegistered = [] {
  dc::harness::policies::register_policy(
      {"even_full", "toy: the whole UNet on even calls, partial at k on odd ones", {"k"}, read_even, {"toy k"}});
  return true;
}();

const char* kExperiment = R"(experiment: toy
base:
  model: {family: ddpm, preset: fmnist, weights: random}
  sampler: {name: ddim, steps: 5, spacing: uniform}
  samples: {n: 3, batch: 2, seed: 1, grid: 0}
  cache: {enabled: true, policy: even_full, k: 2}
)";

}  // namespace

TEST(Policies, AToyPolicyRegisteredInTheTestRunsFromYamlWithItsMacsCountedFromItsCalls) {
  ASSERT_TRUE(kRegistered);
  const auto e = dc::harness::parse_experiment(kExperiment, "toy.yaml");
  ASSERT_EQ(e.runs.size(), 2u);  // the baseline, then the toy
  const auto& run = e.runs.back();
  EXPECT_EQ(run.cache.policy, "even_full");
  EXPECT_EQ(run.resolved["cache"], (nlohmann::json{{"enabled", true}, {"policy", "even_full"}, {"k", 2}}));
  EXPECT_NE(dc::harness::describe_run(run).find(" even_full k=2 full on even calls"), std::string::npos) << dc::harness::describe_run(run);
  EXPECT_TRUE(run.plan.full_calls.empty()) << "nothing is known ahead";
  // The same settings under deepcache are another run.
  const auto dc_run = dc::harness::parse_experiment(
      std::string(kExperiment).replace(std::string(kExperiment).find("policy: even_full, "), 19, ""), "dc.yaml");
  EXPECT_NE(dc_run.runs.back().run_id, run.run_id);

  log_of_toy().events.clear();
  const auto r = dc::harness::execute_run(run);
  ASSERT_EQ(r.status, "complete") << r.error;
  // The loop: per generation begin, then decide and observe per call, in order (2 batches: 2 + 1 samples).
  std::vector<std::pair<int, std::string>> want;
  for (const int b : {2, 1}) {
    want.push_back({-1, fmt::format("begin {}", b)});
    for (int c = 0; c < 5; ++c) {
      want.push_back({c, "decide"});
      const auto& events = log_of_toy().events;
      const auto it = std::find_if(events.begin() + static_cast<std::ptrdiff_t>(want.size()) - 1, events.end(),
                                   [&](const auto& ev) { return ev.first == c && ev.second.rfind("observe", 0) == 0; });
      want.push_back(it == events.end() ? std::make_pair(c, std::string("observe ?")) : *it);
    }
  }
  // The warm-up before the first batch runs one call of each kind through a throwaway policy first.
  const auto& events = log_of_toy().events;
  ASSERT_GE(events.size(), want.size());
  const std::vector<std::pair<int, std::string>> tail(events.end() - static_cast<std::ptrdiff_t>(want.size()), events.end());
  EXPECT_EQ(tail, want);
  for (const auto& [call, what] : tail)
    if (what.rfind("observe", 0) == 0) {
      EXPECT_NE(what.find(" cached"), std::string::npos) << "call " << call << ": " << what;
    }

  // What each call computed, and its MACs from that: full on even calls, DeepCache's partial at k = 2
  // on odd ones, against the traced counts of those two calls.
  const auto model = dc::models::build_model("ddpm", "fmnist", "random");
  const double full = dc::metrics::call_macs(*model.unet).total, partial = dc::metrics::call_macs(*model.unet, 2).total;
  ASSERT_EQ(r.call_macs.size(), 5u);
  ASSERT_EQ(r.computed.size(), 5u);
  double sum = 0;
  for (int c = 0; c < 5; ++c) {
    EXPECT_EQ(r.call_macs[c], c % 2 ? partial : full) << "call " << c;
    EXPECT_EQ(r.is_full[c], c % 2 ? 0 : 1);
    EXPECT_EQ(std::count(r.computed[c].begin(), r.computed[c].end(), 1) < static_cast<long>(r.computed[c].size()), c % 2 == 1);
    sum += r.call_macs[c];
  }
  EXPECT_EQ(r.full_calls, (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(r.macs_full, full);
  EXPECT_EQ(r.macs_partial, partial);
  EXPECT_DOUBLE_EQ(r.macs_step_average, sum / 5);
  EXPECT_EQ(r.stage_names.size(), r.computed.front().size());
  EXPECT_EQ(r.stage_names.front(), "conv_in");
}

TEST(Policies, UnknownPoliciesAndKeysAreLocatedErrors) {
  ASSERT_TRUE(kRegistered);
  const std::string bad_name = dc::test::error_text([] {
    dc::harness::parse_experiment(std::string(kExperiment).replace(std::string(kExperiment).find("even_full"), 9, "evenfull"), "toy.yaml");
  });
  EXPECT_NE(bad_name.find("toy.yaml:6: base.cache.policy: 'evenfull' is not a caching policy (known: deepcache, "), std::string::npos)
      << bad_name;
  // Each policy owns its keys: deepcache's are unknown to the toy, and the toy's checks are its own.
  const std::string foreign = dc::test::error_text([] {
    dc::harness::parse_experiment(std::string(kExperiment) + "sweep: {cache.interval: [2, 3]}\n", "toy.yaml");
  });
  EXPECT_NE(foreign.find("toy.yaml:7: sweep.cache.interval: unknown key (known here: enabled, k, policy)"), std::string::npos) << foreign;
  const std::string own = dc::test::error_text([] { dc::harness::parse_experiment(kExperiment, "toy.yaml", ".", {"cache.k=40"}); });
  EXPECT_NE(own.find("--set cache.k=40: cache.k: 40 is not a skip index of this UNet"), std::string::npos) << own;
  // The registry refuses a second policy of a taken name.
  EXPECT_THROW(dc::harness::policies::register_policy({"deepcache", "again", {}, read_even}), dc::Error);
}

// plan says what each run's calls compute where the policy knows it ahead (deepcache: the full
// calls, and with --macs the expected MACs), and that the toy decides while sampling.
TEST(Policies, PlanShowsTheCallsKnownAheadAndSaysWhenTheyAreNot) {
  ASSERT_TRUE(kRegistered);
  std::ostringstream toy, dc_plan;
  dc::harness::print_plan(dc::harness::parse_experiment(kExperiment, "toy.yaml"), true, toy);
  EXPECT_NE(toy.str().find("even_full k=2 full on even calls, n=3 seed=1, 5 calls (decided while sampling)  full "), std::string::npos)
      << toy.str();
  EXPECT_NE(toy.str().find("MACs per call measured while sampling"), std::string::npos) << toy.str();
  std::string yaml = kExperiment;
  yaml.replace(yaml.find("policy: even_full, k: 2"), 23, "k: 2, interval: 2");
  dc::harness::print_plan(dc::harness::parse_experiment(yaml, "dc.yaml"), true, dc_plan);
  EXPECT_NE(dc_plan.str().find("5 calls (3 full: 0,2,4)  partial "), std::string::npos) << dc_plan.str();
}

// report's table: the default policy's columns always (its layout does not depend on the file), a
// registered policy's own columns after them when one of its runs is in the file, filled from the
// run's settings read back; other rows show "-" there. The role column names the policy.
TEST(Policies, ReportShowsEachPolicysOwnColumns) {
  ASSERT_TRUE(kRegistered);
  const std::string dir = dc::test::temp_dir();
  std::ostringstream log;
  dc::harness::RunOptions o;
  o.results_path = dir + "/toy.h5";
  const auto e = dc::harness::parse_experiment(std::string(kExperiment) + "sweep: {cache.policy: [even_full, deepcache]}\n", "toy.yaml");
  ASSERT_EQ(e.runs.size(), 3u);
  ASSERT_EQ(dc::harness::run_experiment(e, o, log, false).complete, 3) << log.str();
  dc::harness::ReportOptions ro;
  ro.results = o.results_path;
  ro.format = "csv";
  ro.figures = false;
  const std::string csv = dc::harness::render_report(ro);
  const auto lines = dc::test::csv_records(csv);
  ASSERT_EQ(lines.size(), 4u) << "a header and 3 runs:\n" << csv;
  const auto& head = lines[0];
  const auto at = [&](const std::string& name) {
    const auto it = std::find(head.begin(), head.end(), name);
    EXPECT_NE(it, head.end()) << name;
    return static_cast<std::size_t>(it - head.begin());
  };
  EXPECT_EQ(at("toy k"), at("schedule") + 1) << "after the default policy's k, m, N, schedule";
  std::map<std::string, const std::vector<std::string>*> by_role;
  for (std::size_t i = 1; i < lines.size(); ++i) by_role[lines[i][at("role")]] = &lines[i];
  ASSERT_EQ(by_role.size(), 3u);
  EXPECT_EQ(by_role.at("even_full")->at(at("toy k")), "2");
  EXPECT_EQ(by_role.at("even_full")->at(at("k")), "") << "no number: not deepcache's";
  EXPECT_EQ(by_role.at("deepcache")->at(at("k")), "2");
  EXPECT_EQ(by_role.at("deepcache")->at(at("N")), "5");
  EXPECT_EQ(by_role.at("deepcache")->at(at("toy k")), "");
  EXPECT_EQ(by_role.at("plain")->at(at("schedule")), "");
}
