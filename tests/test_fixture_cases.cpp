// Every fixture case found under $DEEPCACHE_FIXTURES: its io file and weights file open, and each
// tensor the json documents has exactly the documented shape and dtype. This pins the reader to
// the reference tools' own description of their output, for shipped and hidden cases alike.
#include <gtest/gtest.h>

#include <filesystem>

#include "models/weights/safetensors.h"
#include "models/weights/tensor_io.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;

namespace {

void check_specs(const dc::st::SafetensorsFile& f, const std::vector<dc::test::TensorSpec>& specs) {
  for (const auto& s : specs) {
    const auto* info = f.find(s.name);
    if (!info) {
      ADD_FAILURE() << f.path() << ": documented tensor '" << s.name << "' is absent";
      continue;
    }
    EXPECT_EQ(info->shape, s.shape) << f.path() << ": " << s.name;
    EXPECT_EQ(std::string(dc::st::dtype_long_name(info->dtype)), s.dtype) << f.path() << ": " << s.name;
  }
}

std::vector<dc::test::Case> all_cases() { return dc::test::find_cases(); }

}  // namespace

TEST(FixtureRoot, HasCases) {
  EXPECT_FALSE(all_cases().empty()) << "no fixture case (a json with a \"case\" key) under "
                                    << dc::test::fixtures_root() << "; set DEEPCACHE_FIXTURES";
}

class FixtureCase : public ::testing::TestWithParam<dc::test::Case> {};

TEST_P(FixtureCase, IoAndWeightsFilesMatchTheirDescription) {
  const auto& c = GetParam();
  // io file (some cases keep everything in the json; then there is none).
  const std::string io = c.io_path();
  const auto specs = c.io_specs();
  ASSERT_TRUE(fs::exists(io)) << c.id() << ": io file " << io << " missing";
  const auto f = dc::st::SafetensorsFile::open(io);
  check_specs(f, specs);
  for (const auto& info : f.tensors()) {
    const torch::Tensor t = dc::st::load_tensor(f, info);
    EXPECT_EQ(t.sizes().vec(), info.shape);
    if (&info == &f.tensors().front()) {
      EXPECT_TRUE(torch::equal(c.io_tensor(info.name), t));
    }
    // The case's tolerance rule is usable for every output it holds.
    const auto tol = c.tolerance_for(info.name, t);
    EXPECT_TRUE(tol.exact || (std::isfinite(tol.abs) && std::isfinite(tol.rel) && tol.abs >= 0 && tol.rel >= 0 &&
                              tol.abs + tol.rel > 0))
        << c.id() << ": no usable tolerance for " << info.name;
  }
  // weights file.
  if (auto w = c.weights_path()) {
    if (!fs::exists(*w)) {
      if (c.json["weights_file"].get<std::string>().rfind("large/", 0) == 0)
        GTEST_SKIP() << c.id() << ": large weights " << *w << " absent; set DEEPCACHE_FIXTURES_LARGE";
      FAIL() << c.id() << ": weights file " << *w << " missing";
    }
    const auto f = dc::st::SafetensorsFile::open(*w);
    check_specs(f, c.weight_specs());
    EXPECT_FALSE(f.tensors().empty());
  }
}

INSTANTIATE_TEST_SUITE_P(All, FixtureCase, ::testing::ValuesIn(all_cases()), [](const auto& info) {
  std::string n = info.param.family + "_" + info.param.name;
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
});
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(FixtureCase);
