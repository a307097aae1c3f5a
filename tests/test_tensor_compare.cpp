// The parity comparison helper must fail when it should, and say where.
#include <gtest/gtest.h>

#include "metrics/tensor_compare.h"

using dc::metrics::compare_tensors;
using dc::metrics::Tolerance;

TEST(TensorCompare, EqualTensorsPass) {
  const auto a = torch::randn({4, 5});
  const auto r = compare_tensors(a, a.clone(), {1e-6, 0, false});
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.max_abs_diff, 0.0);
  EXPECT_EQ(r.nmse, 0.0);
}

TEST(TensorCompare, OneElementOutsideToleranceFailsWithItsIndex) {
  auto b = torch::zeros({2, 3, 4});
  auto a = b.clone();
  a[1][2][3] = 1e-3;
  const Tolerance tol{1e-4, 1e-4, false};
  const auto r = compare_tensors(a, b, tol);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.mismatches, 1);
  ASSERT_EQ(r.first.size(), 1u);
  EXPECT_EQ(r.first[0].index, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_NEAR(r.max_abs_diff, 1e-3, 1e-9);
  EXPECT_NEAR(r.worst_ratio, 10.0, 1e-3);
  const std::string text = r.describe("eps", tol);
  EXPECT_NE(text.find("FAIL 1/24"), std::string::npos) << text;
  EXPECT_NE(text.find("[1,2,3]"), std::string::npos) << text;
}

TEST(TensorCompare, RelativePartScalesWithTheReference) {
  const auto b = torch::full({3}, 1000.0);
  const auto a = b + 0.05;
  EXPECT_TRUE(compare_tensors(a, b, {0.0, 1e-4, false}).ok);   // allowed 0.1
  EXPECT_FALSE(compare_tensors(a, b, {0.0, 1e-5, false}).ok);  // allowed 0.01
}

TEST(TensorCompare, NmseIsRelativeSquaredError) {
  const auto b = torch::randn({1000}, torch::kFloat64);
  const auto r = compare_tensors(b * 1.1, b, {10, 0, false});
  EXPECT_NEAR(r.nmse, 0.01, 1e-9);
}

TEST(TensorCompare, NanAndShapeAndExactRules) {
  const auto nan = std::numeric_limits<float>::quiet_NaN();
  const auto b = torch::tensor({1.0f, nan});
  EXPECT_TRUE(compare_tensors(b.clone(), b, {1e-3, 0, false}).ok);
  EXPECT_FALSE(compare_tensors(torch::tensor({nan, nan}), b, {1e-3, 0, false}).ok);
  const auto shape = compare_tensors(torch::zeros({2, 3}), torch::zeros({3, 2}), {});
  EXPECT_FALSE(shape.ok);
  EXPECT_NE(shape.problem.find("shape"), std::string::npos);
  const auto ids = torch::tensor({49406, 320, 49407}, torch::kInt64);
  EXPECT_TRUE(compare_tensors(ids.clone(), ids, {0, 0, true}).ok);
  EXPECT_FALSE(compare_tensors(ids + 1, ids, {10, 0, true}).ok) << "exact ignores abs";
}
