// The caching-policy zoo (harness/policies): each policy's decision rule driven call by call with
// scripted measurements (the decision must follow the rule), its YAML read strictly, and each one
// run end to end through the sampling loop on the Fashion-MNIST DDPM with random weights, where
// what the calls computed is checked against the rule's settings.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "harness/config.h"
#include "harness/merge.h"
#include "harness/report.h"
#include "harness/policies/block_cache.h"
#include "harness/policies/deepcache_settings.h"
#include "harness/policies/step_skip.h"
#include "harness/policies/taylor_forecast.h"
#include "harness/results_codec.h"
#include "harness/runner.h"
#include "metrics/fid.h"
#include "metrics/fidelity.h"
#include "models/call_plan.h"
#include "tests/support/fixtures.h"

namespace {

using dc::harness::policies::GateRule;
using dc::harness::policies::SkipRule;
using dc::models::StageAction;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The rule's decisions for measurements m[0..n): '1' computed, '0' skipped.
std::string decisions(SkipRule rule, const std::vector<double>& m) {
  rule.begin();
  std::string s;
  for (int c = 0; c < static_cast<int>(m.size()); ++c) s += rule.skip(c, m[c]) ? '0' : '1';
  return s;
}

SkipRule rule_of(SkipRule::Indicator i, double threshold, int n, int first_free = 1, int max_skips = 0) {
  SkipRule r;
  r.indicator = i;
  r.threshold = threshold;
  r.first_free = first_free;
  r.last_free = n - 1;
  r.max_skips = max_skips;
  return r;
}

}  // namespace

// TeaCache: the rescaled relative input changes are summed since the last computed call; the call is
// skipped while the sum stays under the threshold, and computing resets it.
TEST(PolicyRules, InputChangeSumsTheChangesSinceTheLastComputedCall) {
  const std::vector<double> m = {kNaN, 0.03, 0.04, 0.05, 0.02, 0.09, 0.01, 0.2, 0.01, 0.01};
  // call 1: 0.03 skip; 2: 0.07 skip; 3: 0.12 compute (reset); 4: 0.02 skip; 5: 0.11 compute; 6: 0.01
  // skip; 7: 0.21 compute; 8: 0.01 skip; 9: the last call, computed.
  EXPECT_EQ(decisions(rule_of(SkipRule::Indicator::input_change, 0.1, 10), m), "1001010101");
  // The polynomial rescale (highest degree first): f(m) = 2m halves how far the sum may run.
  SkipRule doubled = rule_of(SkipRule::Indicator::input_change, 0.1, 10);
  doubled.rescale = {2.0, 0.0};
  EXPECT_EQ(decisions(doubled, m), "1011010101");
  // An unknown measurement (NaN) computes; so does every call with max_skips = 1 after a skip.
  EXPECT_EQ(decisions(rule_of(SkipRule::Indicator::input_change, 0.1, 10, 1, 1), m), "1010101101");
}

// MagCache: the calibrated ratios γ are multiplied since the last computed call, |1 − Πγ| summed,
// skipped while under the threshold and at most K in a row; the first calls (retention) computed.
TEST(PolicyRules, MagnitudeAccumulatesTheErrorOfTheRatiosProduct) {
  const std::vector<double> g = {1.0, 0.9, 0.99, 0.98, 1.01, 0.99, 0.99, 0.99, 0.99, 0.95};
  // warm-up: calls 0, 1. call 2: Π .99, err .01 skip; 3: Π .9702, err .0398 skip; 4: Π .979902, err
  // .059898 < .06 skip; 5: K = 3 reached: computed; 6: .01 skip; 7: Π .9801 err .0299 skip; 8: Π
  // .970299 err .059601 skip; 9: last.
  EXPECT_EQ(decisions(rule_of(SkipRule::Indicator::magnitude, 0.06, 10, 2, 3), g), "1100010001");
  // Without K, call 5 would skip: Π .97010298, err .08980 >= .06: computed anyway.
  EXPECT_EQ(decisions(rule_of(SkipRule::Indicator::magnitude, 0.06, 10, 2, 0), g), "1100010001");
  EXPECT_EQ(decisions(rule_of(SkipRule::Indicator::magnitude, 0.06, 10, 2, 1), g), "1101010101");
}

// EasyCache: the predicted output changes k·Δin/|out| are summed like TeaCache's; cool-down calls
// are computed.
TEST(PolicyRules, TransformationRateSumsThePredictedChangesAndHonoursTheCooldown) {
  SkipRule r = rule_of(SkipRule::Indicator::transformation_rate, 0.2, 10, 2);
  r.last_free = 8;  // calls 8 and 9 computed
  const std::vector<double> m = {kNaN, kNaN, 0.05, 0.1, 0.1, 0.01, 0.3, 0.05, 0.0, 0.0};
  // 2: .05 skip; 3: .15 skip; 4: .25 compute; 5: .01 skip; 6: .31 compute; 7: .05 skip; 8, 9 cool-down.
  EXPECT_EQ(decisions(r, m), "1100101011");
}

// First-Block Cache: no accumulation; each call's own change of the first block's residual.
TEST(PolicyRules, FirstBlockComparesEachCallsChangeAlone) {
  const std::vector<double> m = {kNaN, 0.05, 0.05, 0.05, 0.09, 0.01, kNaN, 0.07};
  EXPECT_EQ(decisions(rule_of(SkipRule::Indicator::first_block, 0.08, 8), m), "10001011");
  EXPECT_EQ(decisions(rule_of(SkipRule::Indicator::first_block, 0.08, 8, 1, 2), m), "10011011");
}

// DeepCache's dynamic gate: reuse while the shallow change since the last full call is under the
// threshold, after the warm-up, at most max_cached in a row.
TEST(PolicyRules, DeepCacheGateReusesUnderTheThresholdAfterTheWarmup) {
  GateRule g{0.08, 2, 2};
  g.begin();
  const std::vector<double> d = {kNaN, 0.01, 0.01, 0.02, 0.03, 0.5, 0.07, 0.079, 0.08};
  std::string got;
  for (int c = 0; c < static_cast<int>(d.size()); ++c) got += g.reuse(c, d[c]) ? 'r' : 'F';
  // 0, 1 warm-up; 2, 3 reuse; 4 max_cached reached; 5 over; 6, 7 reuse; 8 not under 0.08.
  EXPECT_EQ(got, "FFrrFFrrF");
}

// Block Caching: per block, the calibrated changes accumulated since its last computation; computed
// (and stored) when the sum exceeds delta, else reused.
TEST(PolicyRules, BlockCacheRecomputesABlockWhenItsAccumulatedChangeExceedsDelta) {
  // Three stages (S = 1), four calls.
  const std::vector<std::vector<double>> change = {{0, 0, 0}, {0.3, 0.6, 0.1}, {0.3, 0.1, 0.1}, {0.3, 0.5, 0.35}};
  const auto plans = dc::harness::policies::block_cache_schedule(change, 0.5);
  ASSERT_EQ(plans.size(), 4u);
  EXPECT_TRUE(plans[0].computes_everything());
  EXPECT_EQ(plans[0].store, (std::vector<int>{0, 1, 2}));
  // call 1: .3 reuse, .6 compute, .1 reuse; call 2: .6 compute, .1 reuse, .2 reuse; call 3: .3 reuse,
  // .6 compute, .55 compute.
  using A = StageAction;
  EXPECT_EQ(plans[1].stages, (std::vector<A>{A::Reuse, A::Compute, A::Reuse}));
  EXPECT_EQ(plans[1].store, (std::vector<int>{1}));
  EXPECT_EQ(plans[2].stages, (std::vector<A>{A::Compute, A::Reuse, A::Reuse}));
  EXPECT_EQ(plans[3].stages, (std::vector<A>{A::Reuse, A::Compute, A::Compute}));
  EXPECT_EQ(plans[3].store, (std::vector<int>{1, 2}));
}

// TaylorSeer's factors: Δ⁰ the fresh value, Δⁱ⁺¹ = (Δⁱ − previous Δⁱ) / distance; the forecast
// Σ Δⁱ xⁱ / i!. For f(c) = c² fresh at calls 0, 3, 6: at 6, Δ¹ = (36 − 9)/3 = 9, Δ² = (9 − 3)/3 = 2;
// at call 7 the forecast is 36 + 9 + 2/2 = 46 (a backward difference: not the 49 of f itself).
TEST(PolicyRules, TaylorForecastUsesTheReferenceDividedDifferences) {
  dc::harness::policies::TaylorForecast f(2);
  const auto v = [](double x) { return torch::full({2}, x, torch::kDouble); };
  f.update(0, v(0));
  EXPECT_EQ(f.factors(), 1);
  EXPECT_DOUBLE_EQ(f.at(2)[0].item<double>(), 0.0) << "one value: the value itself";
  f.update(3, v(9));
  EXPECT_EQ(f.factors(), 2);
  EXPECT_DOUBLE_EQ(f.at(4)[0].item<double>(), 12.0) << "9 + 3 * 1";
  f.update(6, v(36));
  EXPECT_EQ(f.factors(), 3);
  EXPECT_DOUBLE_EQ(f.at(7)[1].item<double>(), 46.0);
  EXPECT_DOUBLE_EQ(f.at(8)[0].item<double>(), 36.0 + 18.0 + 2.0 * 4 / 2);
  // Order 1 keeps one difference.
  dc::harness::policies::TaylorForecast g(1);
  g.update(0, v(0));
  g.update(3, v(9));
  g.update(6, v(36));
  EXPECT_EQ(g.factors(), 2);
  EXPECT_DOUBLE_EQ(g.at(7)[0].item<double>(), 45.0);
}

namespace {

// One run of the Fashion-MNIST DDPM (random weights), DDIM-10, two samples in one batch, under the
// `cache:` block given (flow YAML); the experiment's plain baseline is runs.front().
dc::harness::ExperimentSpec zoo(const std::string& cache, const std::vector<std::string>& sets = {}) {
  const std::string yaml = R"(experiment: zoo
base:
  model: {family: ddpm, preset: fmnist, weights: random}
  sampler: {name: ddim, steps: 10, spacing: uniform}
  samples: {n: 2, batch: 2, seed: 1, grid: 0, save_images: true}
  cache: {enabled: true, )" + cache + "}\n";
  return dc::harness::parse_experiment(yaml, "zoo.yaml", ".", sets);
}

dc::harness::RunResult run_zoo(const std::string& cache, const std::vector<std::string>& sets = {}) {
  auto r = dc::harness::execute_run(zoo(cache, sets).runs.back());
  EXPECT_EQ(r.status, "complete") << cache << ": " << r.error;
  return r;
}

std::vector<int> ints(const std::string& pattern) {
  std::vector<int> v;
  for (const char c : pattern) v.push_back(c - '0');
  return v;
}

// An empty scratch folder of the test's own.
std::string fresh_dir(const std::string& name) {
  const std::string dir = dc::test::temp_dir() + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

bool same_images(const dc::harness::RunResult& a, const dc::harness::RunResult& b) {
  return a.images.defined() && b.images.defined() && torch::equal(a.images, b.images);
}

int computed_count(const std::vector<uint8_t>& flags) { return static_cast<int>(std::count(flags.begin(), flags.end(), 1)); }

}  // namespace

// step_skip through the sampling loop: with a threshold nothing stays under, every call computes
// and the samples are the plain network's; with one everything stays under, the calls follow the
// forced ones alone (max_skips, the last call), the skipped calls computing nothing.
TEST(PolicyZoo, StepSkipFollowsItsRuleInTheLoop) {
  const auto e = zoo("policy: step_skip, threshold: 1.0e-12");
  const auto plain = dc::harness::execute_run(e.runs.front());
  ASSERT_EQ(plain.status, "complete") << plain.error;
  const auto never = dc::harness::execute_run(e.runs.back());
  EXPECT_EQ(never.is_full, ints("1111111111"));
  EXPECT_TRUE(same_images(never, plain)) << "every call computed: the plain network's samples";

  const auto r = run_zoo("policy: step_skip, threshold: 1.0e9, max_skips: 2");
  EXPECT_EQ(r.is_full, ints("1001001001"));
  for (int c = 0; c < 10; ++c) EXPECT_EQ(r.computed[c].empty(), r.is_full[c] == 0) << "call " << c << ": a skipped call computes nothing";
  EXPECT_EQ(r.call_macs[1], 0.0);
  EXPECT_DOUBLE_EQ(r.macs_step_average, 0.4 * r.macs_full);
  EXPECT_FALSE(same_images(r, plain));

  // EasyCache: the warm-up (ceil(0.15 · 10) = 2 calls) and the cool-down (the last call) computed;
  // from call 2 on the rate is known and nothing reaches the threshold.
  EXPECT_EQ(run_zoo("policy: step_skip, indicator: transformation_rate, threshold: 1.0e9").is_full, ints("1100000001"));
}

// First-Block Cache decides inside the call: a skipped call computed input blocks 0 and 1 only.
TEST(PolicyZoo, FirstBlockSkipsAfterTheFirstBlocks) {
  const auto r = run_zoo("policy: step_skip, indicator: first_block, threshold: 1.0e9, max_skips: 3");
  EXPECT_EQ(r.is_full, ints("1000100011"));
  ASSERT_EQ(r.computed.size(), 10u);
  EXPECT_EQ(computed_count(r.computed[1]), 2);
  EXPECT_EQ(r.computed[1][0], 1);
  EXPECT_EQ(r.computed[1][1], 1);
  EXPECT_GT(r.call_macs[1], 0.0);
  EXPECT_LT(r.call_macs[1], 0.5 * r.macs_full);
}

// MagCache: the ratios come from a calibration run of the uncached network (stored with the run's
// facts); given back as cache.calibration they make the same run without calibrating.
TEST(PolicyZoo, MagnitudeCalibratesAndItsCalibrationIsReusable) {
  const auto r = run_zoo("policy: step_skip, indicator: magnitude, calibration_samples: 2");
  ASSERT_TRUE(r.policy_facts.contains("calibration")) << r.policy_facts.dump();
  const auto& gammas = r.policy_facts["calibration"];
  ASSERT_EQ(gammas.size(), 10u);
  EXPECT_EQ(gammas[0].get<double>(), 1.0);
  for (std::size_t c = 1; c < 10; ++c) EXPECT_GT(gammas[c].get<double>(), 0.0);
  EXPECT_GT(r.policy_facts["calibration_seconds"].get<double>(), 0.0);
  EXPECT_EQ(r.is_full.front(), 1);
  EXPECT_EQ(r.is_full[1], 1) << "retention: ceil(0.2 · 10) = 2 calls";
  EXPECT_EQ(r.is_full.back(), 1);
  const auto again = run_zoo("policy: step_skip, indicator: magnitude, calibration: " + gammas.dump());
  EXPECT_EQ(again.is_full, r.is_full);
  EXPECT_TRUE(same_images(again, r));
  EXPECT_TRUE(again.policy_facts.empty()) << "nothing calibrated: " << again.policy_facts.dump();
  // With every error under the threshold the decisions are K's and the retention's alone.
  EXPECT_EQ(run_zoo("policy: step_skip, indicator: magnitude, threshold: 1.0e9, calibration: " + gammas.dump()).is_full,
            ints("1100010001"));
}

// The dynamic gate computes exactly DeepCache's full and partial calls: the same samples as the
// static schedule with the full calls the gate chose.
TEST(PolicyZoo, DeepCacheGateMakesDeepCachesCalls) {
  const auto gated = run_zoo("k: 1, gate: 1.0e9, gate_warmup: 2, gate_max_cached: 3");
  EXPECT_EQ(gated.is_full, ints("1100010001"));
  const auto fixed = run_zoo("k: 1, schedule: explicit, full_steps: [0, 1, 5, 9]");
  EXPECT_EQ(fixed.is_full, gated.is_full);
  EXPECT_EQ(fixed.computed, gated.computed);
  EXPECT_EQ(fixed.call_macs, gated.call_macs);
  EXPECT_TRUE(same_images(fixed, gated));
}

// FasterDiffusion: the paper's key steps for 50 calls scaled to 10 (0, 1, 2, 3); the other calls run
// the output blocks only.
TEST(PolicyZoo, FasterDiffusionRunsTheDecoderAloneBetweenKeyCalls) {
  const auto e = zoo("policy: faster_diffusion");
  EXPECT_EQ(e.runs.back().resolved["cache"]["key_calls"], (nlohmann::json{0, 1, 2, 3}));
  const auto r = dc::harness::execute_run(e.runs.back());
  ASSERT_EQ(r.status, "complete") << r.error;
  EXPECT_EQ(r.is_full, ints("1111000000"));
  const int S = (static_cast<int>(r.computed[5].size()) - 1) / 2;
  for (int s = 0; s < 2 * S + 1; ++s) EXPECT_EQ(r.computed[5][s], s > S ? 1 : 0) << "stage " << s;
}

// Block Caching: the calibration (every block's change per call) is stored, and the calls computed
// exactly the blocks its schedule says.
TEST(PolicyZoo, BlockCacheFollowsTheScheduleOfItsCalibration) {
  const auto r = run_zoo("policy: block_cache, delta: 0.3, calibration_samples: 2");
  ASSERT_TRUE(r.policy_facts.contains("calibration")) << r.policy_facts.dump();
  std::vector<std::vector<double>> change = r.policy_facts["calibration"].get<std::vector<std::vector<double>>>();
  ASSERT_EQ(change.size(), 10u);
  const auto plans = dc::harness::policies::block_cache_schedule(change, 0.3);
  int reused = 0;
  for (int c = 0; c < 10; ++c) {
    EXPECT_EQ(r.computed[c], dc::models::computed_stages(&plans[c], (static_cast<int>(change[c].size()) - 1) / 2)) << "call " << c;
    reused += static_cast<int>(r.computed[c].size()) - computed_count(r.computed[c]);
  }
  EXPECT_GT(reused, 0) << "delta 0.3 reuses some block";
}

// TaylorSeer composed with DeepCache: order 0 is the plain reuse (the same samples); order 2
// forecasts the cached feature (other samples, the same calls and MACs).
TEST(PolicyZoo, TaylorSeerForecastsDeepCachesFeature) {
  const auto plain = run_zoo("k: 1, interval: 3");
  const auto order0 = run_zoo("policy: [deepcache, taylorseer], order: 0, k: 1, interval: 3");
  EXPECT_TRUE(same_images(plain, order0));
  const auto e = zoo("policy: [deepcache, taylorseer], order: 2, k: 1, interval: 3");
  EXPECT_EQ(e.runs.back().resolved["cache"]["policy"], (nlohmann::json{"deepcache", "taylorseer"}));
  EXPECT_NE(dc::harness::describe_run(e.runs.back()).find("k=1 N=3 + taylorseer order=2"), std::string::npos)
      << dc::harness::describe_run(e.runs.back());
  const auto order2 = dc::harness::execute_run(e.runs.back());
  ASSERT_EQ(order2.status, "complete") << order2.error;
  EXPECT_EQ(order2.call_macs, plain.call_macs);
  EXPECT_FALSE(same_images(plain, order2));
}

// Each policy reads its keys strictly, and a composition is checked as a whole.
TEST(PolicyZoo, BadSettingsAreLocatedErrors) {
  const auto err = [](const std::string& cache) { return dc::test::error_text([&] { zoo(cache); }); };
  EXPECT_NE(err("policy: taylorseer").find("zoo.yaml:6: base.cache.policy: taylorseer forecasts a stored stage output: list it after"),
            std::string::npos)
      << err("policy: taylorseer");
  EXPECT_NE(err("policy: [deepcache, step_skip]").find("'step_skip' decides what the calls compute; in a list only the first"),
            std::string::npos);
  EXPECT_NE(err("policy: [deepcache, taylorseer, taylorseer]").find("'taylorseer' is listed twice"), std::string::npos);
  EXPECT_NE(err("policy: []").find("an empty list"), std::string::npos);
  EXPECT_NE(err("gate: 0.1, interval: 3").find("base.cache.interval: the dynamic gate (cache.gate) decides the full calls"),
            std::string::npos)
      << err("gate: 0.1, interval: 3");
  EXPECT_NE(err("gate_warmup: 3").find("applies to the dynamic gate only"), std::string::npos);
  EXPECT_NE(err("policy: step_skip, indicator: magnitude, rescale: [1, 0]").find("only the input_change indicator"), std::string::npos);
  EXPECT_NE(err("policy: step_skip, calibration: [1]").find("only the magnitude indicator"), std::string::npos);
  EXPECT_NE(err("policy: step_skip, indicator: magnitude, calibration: [1, 1]").find("2 ratios for a run of 10 model calls"), std::string::npos);
  EXPECT_NE(err("policy: step_skip, indicator: size").find("base.cache.indicator: 'size' is not one of"), std::string::npos);
  EXPECT_NE(err("policy: step_skip, warmup: 1.5").find("base.cache.warmup: 1.5 is not a fraction"), std::string::npos);
  EXPECT_NE(err("policy: step_skip, threshold: -1").find("base.cache.threshold: -1 must be a positive number"), std::string::npos);
  EXPECT_NE(err("policy: faster_diffusion, key_calls: [1, 2]").find("must start with call 0"), std::string::npos);
  EXPECT_NE(err("policy: faster_diffusion, key_calls: [0, 12]").find("call 12 is beyond the run's 10 model calls"), std::string::npos);
  EXPECT_NE(err("policy: block_cache, calibration: [[1]]").find("a list of 10 rows"), std::string::npos);
  EXPECT_NE(err("policy: step_skip, k: 2").find("base.cache.k: unknown key"), std::string::npos) << "deepcache's key";
}

// An adaptive rule measures the whole batch: the batch then changes the samples and joins the run
// id; a fixed schedule's run id stays free of it.
TEST(PolicyZoo, AdaptiveRulesPutTheBatchInTheRunId) {
  const auto id = [](const std::string& cache, const std::string& batch) { return zoo(cache, {"samples.batch=" + batch}).runs.back().run_id; };
  EXPECT_NE(id("policy: step_skip", "1"), id("policy: step_skip", "2"));
  EXPECT_NE(id("gate: 0.1", "1"), id("gate: 0.1", "2"));
  EXPECT_EQ(id("interval: 3", "1"), id("interval: 3", "2"));
  EXPECT_EQ(id("policy: step_skip, indicator: magnitude", "1"), id("policy: step_skip, indicator: magnitude", "2"))
      << "MagCache's decisions come from its per-sample calibration";
}

// ---- fidelity to the plain run (metrics/fidelity.h) ----------------------------------------------

// PSNR and SSIM against their closed forms: a constant offset δ gives MSE δ², so PSNR 10 log10(255²/δ²);
// two constant images a and b give SSIM (2ab + C1) / (a² + b² + C1) (no variance); an image against
// itself gives SSIM 1 and the identical-image PSNR.
TEST(Fidelity, PsnrAndSsimEqualTheirClosedForms) {
  const auto a = torch::full({2, 1, 16, 16}, 100, torch::kUInt8), b = torch::full({2, 1, 16, 16}, 110, torch::kUInt8);
  const auto v = dc::metrics::fidelity_values(a, b);
  ASSERT_EQ(v.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_NEAR(v[0][0].item<double>(), 10 * std::log10(255.0 * 255.0 / 100.0), 1e-12);
  const double c1 = std::pow(0.01 * 255, 2);
  EXPECT_NEAR(v[1][1].item<double>(), (2 * 100.0 * 110 + c1) / (100.0 * 100 + 110.0 * 110 + c1), 1e-12);
  const auto noise = torch::randint(0, 256, {3, 3, 28, 28}, torch::TensorOptions().dtype(torch::kUInt8));
  const auto same = dc::metrics::fidelity_values(noise, noise);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(same[i][0].item<double>(), dc::metrics::kPsnrIdentical);
    EXPECT_NEAR(same[i][1].item<double>(), 1.0, 1e-12);
  }
  // A structural change lowers SSIM more than a brightness shift of the same MSE does.
  const auto x = torch::arange(0, 256, torch::kInt64).reshape({1, 1, 16, 16}).to(torch::kUInt8);
  const auto shifted = (x.to(torch::kInt64) + 8).clamp(0, 255).to(torch::kUInt8);
  const auto flipped = x.flip({3});
  EXPECT_GT(dc::metrics::fidelity_values(x, shifted)[0][1].item<double>(), dc::metrics::fidelity_values(x, flipped)[0][1].item<double>());
  EXPECT_THROW(dc::metrics::fidelity_values(a, noise), dc::Error);
}

// The per-image values merge exactly: two shards' states give the whole run's summary.
TEST(Fidelity, ShardStatesMergeIntoTheWholeRunsValues) {
  const auto values = torch::rand({10, 2}, torch::kDouble);
  dc::metrics::SampleFeatures whole(2, torch::kFloat64), low(2, torch::kFloat64), high(2, torch::kFloat64);
  whole.add(values, 0);
  high.add(values.narrow(0, 6, 4), 6);
  low.add(values.narrow(0, 0, 6), 0);
  const auto merged = dc::metrics::merge_states("fidelity", high.state(), low.state(), "test");
  const auto a = dc::metrics::summarize_fidelity(whole);
  const auto b = dc::metrics::summarize_fidelity(dc::metrics::SampleFeatures::from_state(merged, "test"));
  EXPECT_EQ(b.n, 10);
  EXPECT_EQ(a.psnr, b.psnr);
  EXPECT_EQ(a.ssim_sd, b.ssim_sd);
  EXPECT_TRUE(torch::equal(dc::metrics::SampleFeatures::from_state(merged, "test").features(), values));
}

// In a run: the cached run's images against the plain run's, read from the results file when the
// plain run stored its images, made again otherwise: the same values either way. A policy that
// computes every call has the plain run's images: 100 dB, SSIM 1.
TEST(Fidelity, ACachedRunIsComparedWithThePlainRunOfItsSeeds) {
  const std::string dir = fresh_dir("fidelity");
  const auto experiment = [&](bool save) {
    return dc::harness::parse_experiment(fmt::format(R"(experiment: fidelity
base:
  model: {{family: ddpm, preset: fmnist, weights: random}}
  sampler: {{name: ddim, steps: 6, spacing: uniform}}
  samples: {{n: 3, batch: 2, seed: 4, grid: 0, save_images: {}}}
  metrics: {{fidelity: {{}}}}
runs:
  - {{cache.enabled: true, cache.k: 1, cache.interval: 3}}
  - {{cache.enabled: true, cache.policy: step_skip, cache.threshold: 1.0e-12}}
)",
                                                     save ? "true" : "false"),
                                         dir + "/e.yaml", ".");
  };
  std::map<std::string, std::map<std::string, double>> quality;
  std::map<std::string, std::string> notes;
  for (const bool save : {true, false}) {
    dc::harness::RunOptions o;
    o.results_path = dir + (save ? "/stored.h5" : "/again.h5");
    std::ostringstream log;
    const auto e = experiment(save);
    ASSERT_EQ(dc::harness::run_experiment(e, o, log, false).complete, 3) << log.str();
    notes[save ? "stored" : "again"] = log.str();
    for (const auto& run : dc::harness::read_results_file(o.results_path, dc::harness::kNoArrays))
      if (!run.baseline) quality[(save ? "stored " : "again ") + std::to_string(run.order)] = run.quality;
  }
  EXPECT_NE(notes["stored"].find("fidelity: against the stored plain run "), std::string::npos) << notes["stored"];
  EXPECT_NE(notes["again"].find("fidelity: against its samples made again without caching"), std::string::npos) << notes["again"];
  ASSERT_EQ(quality.size(), 4u);
  for (const auto& [key, q] : quality) {
    EXPECT_TRUE(q.count("psnr") && q.count("ssim") && q.count("psnr_ci_low")) << key;
  }
  const auto& dc_stored = quality.at("stored 1");
  EXPECT_LT(dc_stored.at("psnr"), dc::metrics::kPsnrIdentical);
  EXPECT_LT(dc_stored.at("ssim"), 1.0);
  EXPECT_EQ(dc_stored.at("psnr"), quality.at("again 1").at("psnr")) << "the same plain images, stored or made again";
  EXPECT_EQ(dc_stored.at("ssim"), quality.at("again 1").at("ssim"));
  EXPECT_EQ(quality.at("stored 2").at("psnr"), dc::metrics::kPsnrIdentical);
  EXPECT_NEAR(quality.at("stored 2").at("ssim"), 1.0, 1e-12);
}

// An adaptive policy decides per batch, and shards split at whole batches: two shards merged equal
// the whole run (the same calls' MACs, the same images, the same fidelity values), with a calibrating
// policy too (every shard calibrates on the run's first samples).
TEST(PolicyZoo, ShardsOfAdaptivePoliciesMergeIntoTheWholeRun) {
  const std::string dir = fresh_dir("zoo_shards");
  const auto e = dc::harness::parse_experiment(R"(experiment: zoo_shards
base:
  model: {family: ddpm, preset: fmnist, weights: random}
  sampler: {name: ddim, steps: 8, spacing: uniform}
  samples: {n: 6, batch: 2, seed: 3, grid: 0, save_images: true}
  metrics: {fidelity: {}}
runs:
  - {cache.enabled: true, cache.policy: step_skip, cache.indicator: transformation_rate, cache.threshold: 0.3}
  - {cache.enabled: true, cache.policy: step_skip, cache.indicator: magnitude, cache.threshold: 0.2, cache.calibration_samples: 2}
)",
                                               dir + "/e.yaml", ".");
  std::ostringstream log;
  dc::harness::RunOptions whole;
  whole.results_path = dir + "/whole.h5";
  ASSERT_EQ(dc::harness::run_experiment(e, whole, log, false).complete, 3) << log.str();
  for (int i = 0; i < 2; ++i) {
    dc::harness::RunOptions o;
    o.results_path = dir + "/shards.h5";
    o.shard_index = i;
    o.shard_count = 2;
    ASSERT_EQ(dc::harness::run_experiment(e, o, log, false).complete, 3) << log.str();
  }
  dc::harness::MergeOptions mo;
  mo.inputs = {dir + "/shards.h5"};
  mo.out = dir + "/merged.h5";
  dc::harness::merge_results(mo, log);
  for (const auto& run : e.runs) {
    if (!run.cache.enabled) continue;
    const auto a = dc::harness::read_result(whole.results_path, run.run_id, dc::harness::kImages | dc::harness::kStates);
    const auto b = dc::harness::read_result(mo.out, run.run_id, dc::harness::kImages | dc::harness::kStates);
    EXPECT_EQ(a.call_macs, b.call_macs) << run.run_id;
    ASSERT_TRUE(a.arrays.images && b.arrays.images);
    EXPECT_EQ(a.arrays.images->bytes, b.arrays.images->bytes) << run.run_id;
    EXPECT_EQ(a.quality.at("psnr"), b.quality.at("psnr")) << run.run_id;
    EXPECT_EQ(a.quality.at("ssim"), b.quality.at("ssim")) << run.run_id;
  }
}

// report's Pareto view: per metric and comparison group, every complete run by MACs per image, the
// plain runs of every step count among them; the frontier marks the runs nothing beats at no more
// MACs (the cheapest run and the best-valued one are always on it).
TEST(PolicyZoo, ReportShowsTheParetoViewWithThePlainCurve) {
  const std::string dir = fresh_dir("zoo_pareto");
  const auto e = dc::harness::parse_experiment(R"(experiment: zoo_pareto
base:
  model: {family: ddpm, preset: fmnist, weights: weights/fmnist/ddpm_ema.safetensors}
  sampler: {name: ddim, steps: 6, spacing: quad}
  samples: {n: 8, batch: 8, seed: 0, grid: 0}
  metrics:
    fid_fmnist: {classifier: weights/fmnist/classifier.safetensors, reference: weights/fmnist/test_stats.npz}
runs:
  - {cache.enabled: true, cache.k: 3, cache.interval: 2}
  - {cache.enabled: true, cache.policy: step_skip, cache.threshold: 0.3}
  - {cache.enabled: false, sampler.steps: 3}
  - {cache.enabled: false, sampler.steps: 4}
)",
                                               dir + "/e.yaml", ".");
  std::ostringstream log;
  dc::harness::RunOptions o;
  o.results_path = dir + "/p.h5";
  ASSERT_EQ(dc::harness::run_experiment(e, o, log, false).complete, 5) << log.str();
  dc::harness::ReportOptions ro;
  ro.results = o.results_path;
  ro.figures = false;
  const auto rep = dc::harness::build_report(ro);
  ASSERT_EQ(rep.pareto.size(), 2u) << "fid_fmnist and confident_fraction";
  const auto& v = rep.pareto.front().metric == "fid_fmnist" ? rep.pareto.front() : rep.pareto.back();
  EXPECT_TRUE(v.lower_is_better);
  ASSERT_EQ(v.points.size(), 5u);
  int plain = 0;
  for (std::size_t i = 0; i < v.points.size(); ++i) {
    if (i > 0) {
      EXPECT_LE(v.points[i - 1].macs_per_image, v.points[i].macs_per_image);
    }
    plain += v.points[i].role == "plain";
  }
  EXPECT_EQ(plain, 3) << "DDIM-3, -4 and -6";
  EXPECT_TRUE(v.points.front().frontier) << "the cheapest run";
  const auto best = std::min_element(v.points.begin(), v.points.end(), [](const auto& a, const auto& b) { return a.value < b.value; });
  EXPECT_TRUE(best->frontier) << "the best FID";
  for (const auto& p : v.points) {
    for (const auto& q : v.points) {
      if (q.macs_per_image < p.macs_per_image && q.value < p.value) {
        EXPECT_FALSE(p.frontier) << p.key << " is beaten by " << q.key;
      }
    }
  }
  const std::string md = dc::harness::report_table(rep, "md");
  EXPECT_NE(md.find("Pareto view, fid_fmnist (lower is better), ddpm/fmnist ddim"), std::string::npos) << md;
  // The paired comparison with the plain curve at equal MACs, and the verdicts that end the report.
  EXPECT_NE(std::find(rep.head.begin(), rep.head.end(), "fid_fmnist vs plain@MACs (paired)"), rep.head.end()) << md;
  ASSERT_FALSE(rep.verdicts.empty()) << md;
  EXPECT_NE(rep.verdicts.front().find("(fid_fmnist): "), std::string::npos) << rep.verdicts.front();
  EXPECT_NE(rep.verdicts.front().find("settings beat the plain sampler at equal MACs"), std::string::npos) << rep.verdicts.front();
  EXPECT_EQ(md.substr(md.size() - rep.verdicts.back().size() - 1), rep.verdicts.back() + "\n") << "the report ends with them";
}

// The paired bootstrap of a Frechet difference: identical runs differ by exactly 0 with a zero-width
// interval; a run that is another plus a little noise gets a paired interval far narrower than the
// independent interval of either run.
TEST(PairedBootstrap, SharedSamplesCancelInTheDifference) {
  torch::manual_seed(3);
  const auto a = torch::randn({200, 8}, torch::kDouble) + 0.3;
  const auto mu = dc::metrics::to_eigen_vector(torch::zeros({8}, torch::kDouble));
  const auto sigma = dc::metrics::to_eigen_matrix(torch::eye(8, torch::kDouble));
  const auto same = dc::metrics::frechet_paired_bootstrap(a, {{a, 1.0}}, 0.0, mu, sigma, 50);
  EXPECT_NEAR(same.sd, 0.0, 1e-9);
  EXPECT_NEAR(same.low, 0.0, 1e-9);
  const auto b = a + 0.05 * torch::randn({200, 8}, torch::kDouble);
  const auto fid = [&](const torch::Tensor& x) {
    const auto m = x.mean(0), c = x - m;
    return dc::metrics::frechet_distance(dc::metrics::to_eigen_vector(m), dc::metrics::to_eigen_matrix(c.t().mm(c) / 199.0), mu, sigma).fid;
  };
  const double d = fid(b) - fid(a);
  const auto paired = dc::metrics::frechet_paired_bootstrap(b, {{a, 1.0}}, d, mu, sigma, 100);
  const auto alone = dc::metrics::frechet_bootstrap(b, fid(b), mu, sigma, 100);
  EXPECT_LT(paired.sd, 0.2 * alone.sd) << "paired " << paired.sd << " vs independent " << alone.sd;
  EXPECT_LT(paired.low, d);
  EXPECT_GT(paired.high, d);
  // Interpolated references: weights 0.5 / 0.5 of a and b against b is half the b - a difference.
  const auto half = dc::metrics::frechet_paired_bootstrap(b, {{a, 0.5}, {b, 0.5}}, d / 2, mu, sigma, 100);
  EXPECT_NEAR(half.sd, paired.sd / 2, 1e-9) << "the same resamples";
  EXPECT_THROW(dc::metrics::frechet_paired_bootstrap(b, {{a.narrow(0, 0, 10), 1.0}}, d, mu, sigma, 50), dc::Error);
}
