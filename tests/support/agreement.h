// The reproducibility contract as gtest assertions (docs/experiments.md, "What is reproducible"):
// the same samples made in another batch layout, shard layout, thread count or on another CPU
// agree within a tolerance; bit equality is asserted only where it holds (same layout, same
// machine). Every tolerance test also asserts a negative control with the same tolerance
// (cached vs uncached, seed s vs s+1), so widening a tolerance cannot hide a real change.
#pragma once
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "metrics/tensor_compare.h"

namespace dc::test {

// uint8 images within the contract (dc::metrics::kImageMaxLevelDiff, kImageMaxDifferingFraction).
inline ::testing::AssertionResult images_agree(const torch::Tensor& a, const torch::Tensor& b) {
  const auto r = metrics::compare_images(a, b);
  if (r.within_contract()) return ::testing::AssertionSuccess() << r.describe();
  return ::testing::AssertionFailure() << "images outside the cross-layout contract (at most "
                                       << metrics::kImageMaxLevelDiff << " level on at most "
                                       << 100 * metrics::kImageMaxDifferingFraction << "% of values): " << r.describe();
}

// Negative control: images that must differ (another seed, caching on) fall outside the contract.
inline ::testing::AssertionResult images_differ(const torch::Tensor& a, const torch::Tensor& b) {
  const auto r = metrics::compare_images(a, b);
  if (!r.within_contract()) return ::testing::AssertionSuccess() << r.describe();
  return ::testing::AssertionFailure() << "these images should differ beyond the cross-layout contract, but " << r.describe();
}

// Float images in [-1, 1] (the sampler's x0) of the same samples: max |a - b| <= tol, through the
// fixtures' comparison (dc::metrics::compare_tensors with an absolute tolerance).
inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return metrics::compare_tensors(a, b, {}, 0).max_abs_diff;
}
inline ::testing::AssertionResult floats_agree(const torch::Tensor& a, const torch::Tensor& b, double tol) {
  const auto r = metrics::compare_tensors(a, b, {tol, 0.0});
  if (r.ok) return ::testing::AssertionSuccess() << fmt::format("max |diff| {:.3g} <= {:.3g}", r.max_abs_diff, tol);
  return ::testing::AssertionFailure() << r.describe("float images", {tol, 0.0});
}
// Negative control: outside the same tolerance.
inline ::testing::AssertionResult floats_differ(const torch::Tensor& a, const torch::Tensor& b, double tol) {
  const auto r = metrics::compare_tensors(a, b, {tol, 0.0}, 0);
  if (!r.ok) return ::testing::AssertionSuccess() << fmt::format("max |diff| {:.3g} > {:.3g}", r.max_abs_diff, tol);
  return ::testing::AssertionFailure() << fmt::format("should differ beyond {:.3g}, but max |diff| is {:.3g}", tol, r.max_abs_diff);
}

}  // namespace dc::test
