// Metric accumulators (metrics/accumulators.h, metrics/exact_sum.h): states made in any grouping
// of the same batches are the same bits (what lets shards merge exactly), and the values equal
// the whole-array computations they replace.
#include <gtest/gtest.h>

#include <random>

#include "common/error.h"
#include "metrics/accumulators.h"
#include "metrics/exact_sum.h"
#include "metrics/precision_recall.h"

using dc::metrics::ExactSum;

namespace {
bool same_state(const dc::metrics::MetricState& a, const dc::metrics::MetricState& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end() || !torch::equal(v, it->second)) return false;
  }
  return true;
}
}  // namespace

TEST(ExactSum, AnyGroupingGivesTheSameBits) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> mant(-1.0, 1.0);
  std::uniform_int_distribution<int> expo(-30, 40);
  std::vector<double> x(1000);
  for (auto& v : x) v = std::ldexp(mant(rng), expo(rng));
  ExactSum forward(1), backward(1), a(1), b(1);
  for (double v : x) forward.add(0, v);
  for (auto it = x.rbegin(); it != x.rend(); ++it) backward.add(0, *it);
  for (std::size_t i = 0; i < x.size(); ++i) (i % 3 ? a : b).add(0, x[i]);
  b.merge(a);
  EXPECT_EQ(forward.words(), backward.words());
  EXPECT_EQ(forward.words(), b.words());
  // Plain double summation in two orders disagrees (the reason for all this): a negative control.
  double f = 0, r = 0;
  for (double v : x) f += v;
  for (auto it = x.rbegin(); it != x.rend(); ++it) r += *it;
  EXPECT_NE(f, r);
  long double exact = 0;
  for (double v : x) exact += v;
  EXPECT_NEAR(forward.value(0), static_cast<double>(exact), 1e-9 * std::fabs(static_cast<double>(exact)) + 1e-12);
  EXPECT_EQ(ExactSum::from_words(forward.words(), "t").words(), forward.words());
}

TEST(ExactSum, RefusesWhatCannotBeSummedExactly) {
  ExactSum s(2);
  EXPECT_THROW(s.add(0, std::nan("")), dc::Error);
  EXPECT_THROW(s.add(0, std::numeric_limits<double>::infinity()), dc::Error);
  EXPECT_THROW(s.add(1, 1e19), dc::Error);
  EXPECT_THROW(s.merge(ExactSum(3)), dc::Error);
  EXPECT_THROW(ExactSum::from_words({1, 2, 3}, "t"), dc::Error);
  EXPECT_THROW(ExactSum::from_words({std::numeric_limits<int64_t>::max(), 0}, "t"), dc::Error);
  s.add(0, 3e18);                                // below 2^62
  EXPECT_THROW(s.add(0, 3e18), dc::Error);       // the total beyond it
}

TEST(FeatureStats, ShardsOfTheSameBatchesMergeToTheSameBits) {
  torch::manual_seed(3);
  std::vector<torch::Tensor> batches;
  for (int i = 0; i < 6; ++i) batches.push_back(torch::rand({5 + i, 16}) * 4);
  dc::metrics::FeatureStats one, a, b;
  for (const auto& x : batches) one.add(x);
  for (int i = 0; i < 6; ++i) (i < 2 ? b : a).add(batches[i]);  // shard 1's batches first
  b.merge(a);
  EXPECT_TRUE(same_state(dc::metrics::to_state(one), dc::metrics::to_state(b)));
  const auto back = dc::metrics::feature_stats_from_state(dc::metrics::to_state(one), "t");
  EXPECT_TRUE(same_state(dc::metrics::to_state(back), dc::metrics::to_state(one)));
  // Against the direct computation (np.cov, denominator N-1).
  const torch::Tensor all = torch::cat(batches).to(torch::kFloat64);
  const torch::Tensor mu = all.mean(0), c = all - mu;
  const torch::Tensor cov = c.t().mm(c) / (all.size(0) - 1);
  const auto m = one.mean();
  const auto s = one.covariance();
  for (int i = 0; i < 16; ++i) {
    EXPECT_NEAR(m(i), mu[i].item<double>(), 1e-13);
    for (int j = 0; j < 16; ++j) EXPECT_NEAR(s(i, j), cov[i][j].item<double>(), 1e-12);
  }
  auto bad = dc::metrics::to_state(one);
  bad["outer"] = bad["outer"].slice(0, 0, 10);
  EXPECT_THROW(dc::metrics::feature_stats_from_state(bad, "t"), dc::Error);
}

TEST(InceptionScoreAccumulator, SplitsByGlobalIndexAndShardsMergeExactly) {
  torch::manual_seed(5);
  const int64_t n = 103, classes = 12;
  const torch::Tensor logits = torch::randn({n, classes}) * 3;
  const auto reference = dc::metrics::inception_score(logits, 10);
  dc::metrics::InceptionScoreAccumulator one(10, n, classes), s0(10, n, classes), s1(10, n, classes);
  for (int64_t i = 0; i < n; i += 7) one.add(logits.slice(0, i, std::min(i + 7, n)), i);
  for (int64_t i = 0; i < n; i += 7) (i < 49 ? s0 : s1).add(logits.slice(0, i, std::min(i + 7, n)), i);
  EXPECT_THROW(s1.result(), dc::Error);  // a shard alone has no score
  s1.merge(s0);
  EXPECT_TRUE(same_state(one.state(), s1.state()));
  const auto r = one.result();
  EXPECT_NEAR(r.mean, reference.mean, 1e-12 * reference.mean);
  EXPECT_NEAR(r.std, reference.std, 1e-10 * reference.mean);
  EXPECT_EQ(r.samples, n);
  // Batches of another size change the per-batch double sums, not the score beyond rounding.
  dc::metrics::InceptionScoreAccumulator other(10, n, classes);
  for (int64_t i = 0; i < n; i += 20) other.add(logits.slice(0, i, std::min(i + 20, n)), i);
  EXPECT_NEAR(other.result().mean, r.mean, 1e-12 * r.mean);
  const auto back = dc::metrics::InceptionScoreAccumulator::from_state(one.state(), "t");
  EXPECT_TRUE(same_state(back.state(), one.state()));
  EXPECT_THROW(one.add(logits.slice(0, 0, 2), n - 1), dc::Error);
  EXPECT_THROW(one.merge(dc::metrics::InceptionScoreAccumulator(5, n, classes)), dc::Error);
  EXPECT_THROW(dc::metrics::InceptionScoreAccumulator(10, 9, classes), dc::Error);
}

TEST(FmnistEvalState, RoundTripsAndMerges) {
  dc::metrics::FmnistEval a, b;
  torch::manual_seed(1);
  a.stats.add(torch::rand({4, 128}));
  a.n = 4;
  a.confident = 3;
  a.classes[2] = 4;
  b.stats.add(torch::rand({3, 128}));
  b.n = 3;
  b.classes[5] = 3;
  dc::metrics::merge_into(a, b);
  const auto back = dc::metrics::fmnist_eval_from_state(dc::metrics::to_state(a), "t");
  EXPECT_EQ(back.n, 7);
  EXPECT_EQ(back.confident, 3);
  EXPECT_EQ(back.classes[5], 3);
  EXPECT_TRUE(same_state(dc::metrics::to_state(back), dc::metrics::to_state(a)));
  auto bad = dc::metrics::to_state(a);
  bad["confident"] = torch::tensor({9}, torch::kInt64);
  EXPECT_THROW(dc::metrics::fmnist_eval_from_state(bad, "t"), dc::Error);
}

// The CLIP score accumulator (the SD family feeds it per batch of (image, prompt) pairs): shards
// merged in any order give the same state bit for bit, the value equals the mean of the per-pair
// scores, and an empty or damaged state is refused.
TEST(ClipScoreAccumulator, ShardsMergeExactlyAndTheValueIsThePairMean) {
  torch::manual_seed(3);
  const torch::Tensor img = torch::randn({10, 16}, torch::kFloat64), txt = img * 0.5 + torch::randn({10, 16}, torch::kFloat64);
  dc::metrics::ClipScoreAccumulator whole, s0, s1, s2;
  for (int64_t b = 0; b < 10; b += 3) whole.add(img.slice(0, b, b + 3), txt.slice(0, b, b + 3));
  s0.add(img.slice(0, 0, 3), txt.slice(0, 0, 3));
  s1.add(img.slice(0, 3, 6), txt.slice(0, 3, 6));
  s1.add(img.slice(0, 6, 9), txt.slice(0, 6, 9));
  s2.add(img.slice(0, 9, 10), txt.slice(0, 9, 10));
  dc::metrics::ClipScoreAccumulator merged = s2;
  merged.merge(s0);
  merged.merge(s1);
  EXPECT_TRUE(same_state(merged.state(), whole.state()));
  EXPECT_EQ(whole.count(), 10);
  const double want = dc::metrics::clip_score_pairs(img, txt).mean().item<double>();
  EXPECT_NEAR(whole.mean(), want, 1e-12 * want);
  EXPECT_GT(want, 10.0);  // correlated pairs: a score clearly above 0
  const auto back = dc::metrics::ClipScoreAccumulator::from_state(whole.state(), "test");
  EXPECT_EQ(back.mean(), whole.mean());
  EXPECT_TRUE(same_state(dc::metrics::merge_states("clip_score", s0.state(), s1.state(), "test"), [&] {
    auto a = s0;
    a.merge(s1);
    return a.state();
  }()));
  EXPECT_THROW(dc::metrics::ClipScoreAccumulator().mean(), dc::Error);
  auto bad = whole.state();
  bad["sum"] = torch::zeros({2, 2}, torch::kInt64);
  EXPECT_THROW(dc::metrics::ClipScoreAccumulator::from_state(bad, "test"), dc::Error);
  bad = whole.state();
  bad.erase("count");
  EXPECT_THROW(dc::metrics::ClipScoreAccumulator::from_state(bad, "test"), dc::Error);
  EXPECT_THROW(whole.add_scores(torch::tensor({std::nan("")}, torch::kFloat64)), dc::Error);
}

// Improved precision and recall as the ADM evaluator defines them (k = 3 nearest-neighbour balls).
TEST(PrecisionRecall, IdenticalSetsGiveOneDisjointSetsZeroAndAHandCheckedCase) {
  torch::manual_seed(5);
  const torch::Tensor a = torch::randn({20, 8});
  auto pr = dc::metrics::precision_recall(a, a.clone());
  EXPECT_EQ(pr.precision, 1.0);
  EXPECT_EQ(pr.recall, 1.0);
  pr = dc::metrics::precision_recall(a, torch::randn({30, 8}) + 100);
  EXPECT_EQ(pr.precision, 0.0);
  EXPECT_EQ(pr.recall, 0.0);
  EXPECT_EQ(pr.reference, 20);
  EXPECT_EQ(pr.samples, 30);
  // 1-D by hand: reference {0..4} has squared radii {9, 4, 4, 4, 9}; of the samples {0.5, 2.5, 10,
  // 20, 30} two lie in those balls (precision 0.4); the sample at 0.5 has squared radius 380.25
  // (its 3rd neighbour is 20), which holds every reference point (recall 1).
  const torch::Tensor ref = torch::tensor({0.0f, 1.0f, 2.0f, 3.0f, 4.0f}).unsqueeze(1);
  const torch::Tensor smp = torch::tensor({0.5f, 2.5f, 10.0f, 20.0f, 30.0f}).unsqueeze(1);
  EXPECT_TRUE(torch::allclose(dc::metrics::manifold_radii(ref), torch::tensor({9.0f, 4.0f, 4.0f, 4.0f, 9.0f})));
  EXPECT_TRUE(torch::allclose(dc::metrics::manifold_radii(smp), torch::tensor({380.25f, 306.25f, 100.0f, 306.25f, 756.25f})));
  pr = dc::metrics::precision_recall(ref, smp);
  EXPECT_DOUBLE_EQ(pr.precision, 0.4);
  EXPECT_DOUBLE_EQ(pr.recall, 1.0);
  // Row blocks do not change the result.
  const torch::Tensor b = torch::randn({25, 8}) * 1.5 + 0.5;
  const auto whole = dc::metrics::precision_recall(a, b), blocked = dc::metrics::precision_recall(a, b, 3, 4);
  EXPECT_EQ(whole.precision, blocked.precision);
  EXPECT_EQ(whole.recall, blocked.recall);
  EXPECT_GT(whole.precision, 0.0);
  EXPECT_LT(whole.precision, 1.0);
  // Refusals: too few points for k = 3, other dimensions, NaN.
  EXPECT_THROW(dc::metrics::manifold_radii(torch::randn({3, 8})), dc::Error);
  EXPECT_THROW(dc::metrics::precision_recall(a, torch::randn({20, 7})), dc::Error);
  EXPECT_THROW(dc::metrics::precision_recall(a, torch::full({20, 8}, std::nan(""))), dc::Error);
}

// Per-sample features for precision/recall: shards concatenate in global sample order whatever
// order they arrive in; float16 storage; overlapping slices and malformed states are refused.
TEST(SampleFeatures, ShardsConcatenateInSampleOrderAndOverlapsAreRefused) {
  torch::manual_seed(9);
  const torch::Tensor f = torch::randn({10, 6});
  dc::metrics::SampleFeatures whole(6);
  whole.add(f.slice(0, 0, 4), 0);
  whole.add(f.slice(0, 4, 10), 4);
  EXPECT_EQ(whole.count(), 10);
  EXPECT_TRUE(torch::equal(whole.features(), f.to(torch::kFloat16).to(torch::kFloat32)));  // float16 round trip
  EXPECT_TRUE(torch::equal(whole.indices(), torch::arange(10, torch::kInt64)));
  dc::metrics::SampleFeatures s0(6), s1(6), s2(6);
  s0.add(f.slice(0, 0, 4), 0);
  s1.add(f.slice(0, 4, 8), 4);
  s2.add(f.slice(0, 8, 10), 8);
  // Merged out of order, through the stored states (as `merge` does).
  auto st = dc::metrics::merge_states("precision_recall", s2.state(), s0.state(), "test");
  st = dc::metrics::merge_states("precision_recall", st, s1.state(), "test");
  EXPECT_EQ(st.at("features").scalar_type(), torch::kFloat16);
  EXPECT_TRUE(torch::equal(st.at("features"), whole.state().at("features")));
  EXPECT_TRUE(torch::equal(st.at("index"), whole.state().at("index")));
  // The same slice twice: overlapping.
  try {
    dc::metrics::merge_states("precision_recall", st, s1.state(), "shard.h5");
    ADD_FAILURE() << "an overlap merged";
  } catch (const dc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("sample 4 are held twice"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("shard.h5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(s0.add(torch::randn({2, 5}), 4), dc::Error);
  auto bad = s0.state();
  bad["features"] = bad["features"].to(torch::kInt32);
  EXPECT_THROW(dc::metrics::SampleFeatures::from_state(bad, "test"), dc::Error);
  // float32 (the bootstrap's <metric>_features) is a state of its own kind: it does not merge with float16.
  dc::metrics::SampleFeatures f32(6, torch::kFloat32);
  f32.add(f.slice(0, 4, 6), 4);
  EXPECT_EQ(f32.state().at("features").scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(f32.features(), f.slice(0, 4, 6)));  // float32 kept exactly
  EXPECT_THROW(dc::metrics::merge_states("fid_features", s0.state(), f32.state(), "test"), dc::Error);
  dc::metrics::SampleFeatures f32a(6, torch::kFloat32);
  f32a.add(f.slice(0, 0, 4), 0);
  const auto joined = dc::metrics::merge_states("fid_fmnist_features", f32.state(), f32a.state(), "test");
  EXPECT_TRUE(torch::equal(joined.at("features"), f.slice(0, 0, 6)));
  bad = s0.state();
  bad["index"] = bad["index"].slice(0, 0, 3);
  EXPECT_THROW(dc::metrics::SampleFeatures::from_state(bad, "test"), dc::Error);
  EXPECT_THROW(dc::metrics::merge_states("precision_recall", s0.state(), dc::metrics::SampleFeatures(5).state(), "test"), dc::Error);
}
