// pytorch-fid's FID InceptionV3: the module equals the pt_inception manifest, and pool3 / logits /
// intermediate blocks equal the reference on every Inception case (large weights through
// $DEEPCACHE_FIXTURES_LARGE; the case is skipped, saying so, when they are absent).
#include <gtest/gtest.h>

#include <filesystem>

#include "metrics/inception_fid.h"
#include "models/weights/manifest.h"
#include "models/weights/strict_loader.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;

TEST(InceptionFid, ModuleEqualsTheReleasedWeightsManifest) {
  const std::string path = dc::test::fixtures_root() + "/fid/inception_fid.keys.json";
  if (!fs::exists(path)) GTEST_SKIP() << path << " absent";
  dc::metrics::InceptionFid net;
  const auto m = dc::weights::Manifest::load(path);
  const auto diff = dc::weights::check_module(*net, m.keys);
  EXPECT_TRUE(diff.ok()) << diff.summary() << (diff.missing.empty() ? "" : " e.g. missing " + diff.missing[0])
                         << (diff.unexpected.empty() ? "" : " e.g. unexpected " + diff.unexpected[0]);
}

class InceptionCase : public ::testing::TestWithParam<dc::test::Case> {};

TEST_P(InceptionCase, FeaturesEqualPytorchFid) {
  const auto& c = GetParam();
  const auto w = c.weights_path();
  ASSERT_TRUE(w.has_value());
  if (!fs::exists(*w)) GTEST_SKIP() << c.id() << ": large weights " << *w << " absent; set DEEPCACHE_FIXTURES_LARGE";
  torch::NoGradGuard ng;
  dc::metrics::InceptionFid net;
  dc::weights::LoadOptions lo;
  lo.module_name = "FID InceptionV3";
  dc::weights::load_strict(*net, dc::st::SafetensorsFile::open(*w), lo);  // fp16 file -> float32 module
  net->eval();
  const auto io = dc::st::SafetensorsFile::open(c.io_path());
  for (const std::string set : {"299", "small"}) {
    SCOPED_TRACE(set);
    const std::string img_name = "images_" + set + "_uint8";
    if (!io.find(img_name)) continue;
    const auto images = c.io_tensor(img_name);
    const auto x = images.to(torch::kFloat32).div(255);
    if (io.find("x_" + set)) {
      EXPECT_TRUE(torch::equal(x, c.io_tensor("x_" + set)));
    }
    const auto out = net->forward(x, /*logits=*/true, /*debug=*/true);
    EXPECT_TRUE(dc::test::matches_reference(c, "pool3_" + set, out.pool3, c.io_tensor("pool3_" + set)));
    EXPECT_TRUE(dc::test::matches_reference(c, "logits_" + set, out.logits, c.io_tensor("logits_" + set)));
    EXPECT_TRUE(dc::test::matches_reference(c, "resized_" + set + "_crop", out.resized.slice(2, 0, 8).slice(3, 0, 8),
                                            c.io_tensor("resized_" + set + "_crop")));
    for (const std::string b : {"block0", "block1", "block2"}) {
      const auto& t = out.blocks.at(b);
      EXPECT_TRUE(dc::test::matches_reference(c, b + "_" + set + "_chanmean", t.mean({2, 3}), c.io_tensor(b + "_" + set + "_chanmean")));
      // Crops are debugging aids (the json's tolerance is stated for pool3 and logits): single
      // ReLU-gated elements may differ by float32 summation order, so compare them by NMSE.
      const auto crop = dc::metrics::compare_tensors(t.slice(2, 0, 3).slice(3, 0, 3), c.io_tensor(b + "_" + set + "_crop"),
                                                     c.tolerance_for(b + "_" + set + "_crop", t));
      EXPECT_LT(crop.nmse, 1e-8) << crop.describe(b + "_" + set + "_crop", c.tolerance_for(b, t));
    }
    EXPECT_TRUE(torch::equal(net->features_from_uint8(images), out.pool3));
  }
}

namespace {
bool is_inception_case(const dc::test::Case& c) { return c.family == "fid" && c.json.contains("pipeline"); }
const bool kInceptionSuite = dc::test::register_fixture_suite("InceptionCase", is_inception_case);
std::vector<dc::test::Case> inception_cases() { return dc::test::cases_where("fid", is_inception_case); }
}  // namespace

INSTANTIATE_TEST_SUITE_P(All, InceptionCase, ::testing::ValuesIn(inception_cases()), [](const auto& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(InceptionCase);

// The sFID features (the ADM evaluator's mixed_6/conv [..., :7], NHWC): 17 x 17 x 7 = 2023 per
// image, ReLU outputs, and per image (a batch of two gives each image's own features).
TEST(InceptionFid, SpatialFeaturesForSfidAre2023PerImage) {
  torch::NoGradGuard ng;
  torch::manual_seed(2);
  dc::metrics::InceptionFid net;
  net->eval();
  const torch::Tensor x = torch::rand({2, 3, 32, 32});
  const auto out = net->forward(x, false, false, /*spatial=*/true);
  ASSERT_EQ(out.spatial.sizes(), (std::vector<int64_t>{2, 2023}));
  EXPECT_GE(out.spatial.min().item<float>(), 0.0f);
  const auto one = net->forward(x.slice(0, 1, 2), false, false, true);
  EXPECT_TRUE(torch::allclose(one.spatial, out.spatial.slice(0, 1, 2), 1e-4, 1e-5));
}
