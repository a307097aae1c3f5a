// Key manifests: every *.keys.json of the fixtures loads; diffs are exact.
#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "models/weights/manifest.h"
#include "support/fixtures.h"

using dc::weights::KeyShape;

TEST(Manifest, EveryFixtureManifestLoadsAndItsParameterCountAddsUp) {
  const auto files = dc::test::find_files(dc::test::fixtures_root(), ".keys.json");
  ASSERT_FALSE(files.empty()) << "no *.keys.json under " << dc::test::fixtures_root();
  for (const auto& f : files) {
    SCOPED_TRACE(f);
    const auto m = dc::weights::Manifest::load(f);
    // Independent count straight from the JSON.
    std::ifstream in(f);
    const auto j = nlohmann::json::parse(in);
    ASSERT_EQ(m.keys.size(), j["keys"].size());
    EXPECT_EQ(m.keys.front().name, j["keys"][0][0].get<std::string>());
    if (m.num_params) {
      // Manifests state either every element or the floating-point ones (their notes say which).
      const int64_t all = dc::weights::count_elements(m.keys, false), fl = dc::weights::count_elements(m.keys, true);
      EXPECT_TRUE(*m.num_params == all || *m.num_params == fl)
          << "stated " << *m.num_params << ", all " << all << ", floating " << fl;
    }
  }
}

TEST(Manifest, DiffReportsMissingUnexpectedShapeAndDtype) {
  const std::vector<KeyShape> expected = {{"a", {2}, "float32"}, {"b", {3}, "float32"}, {"c", {4}, "float32"}, {"d", {1}, "int64"}};
  const std::vector<KeyShape> actual = {{"a", {2}, "float16"}, {"c", {5}, "float32"}, {"d", {1}, "float32"}, {"z", {1}, "float32"}};
  const auto d = dc::weights::diff_keys(expected, actual);
  EXPECT_EQ(d.matching, 2u);  // a and d have equal shapes
  EXPECT_EQ(d.missing, std::vector<std::string>{"b"});
  EXPECT_EQ(d.unexpected, std::vector<std::string>{"z"});
  ASSERT_EQ(d.shape_mismatches.size(), 1u);
  EXPECT_EQ(d.shape_mismatches[0].name, "c");
  ASSERT_EQ(d.dtype_differences.size(), 2u);
  EXPECT_TRUE(d.dtype_differences[0].compatible);   // float16 vs float32
  EXPECT_FALSE(d.dtype_differences[1].compatible);  // float32 vs int64
  EXPECT_FALSE(d.ok());
  const auto same = dc::weights::diff_keys(expected, expected);
  EXPECT_TRUE(same.ok());
  EXPECT_EQ(same.matching, 4u);
}

TEST(Manifest, HalfPrecisionVariantStillMatches) {
  const auto d = dc::weights::diff_keys({{"a", {2}, "float32"}}, {{"a", {2}, "float16"}});
  EXPECT_TRUE(d.ok());
  EXPECT_EQ(d.dtype_differences.size(), 1u);
}

TEST(Manifest, DamagedManifestsNameFileAndEntry) {
  const std::string dir = dc::test::temp_dir();
  struct Bad { std::string text, phrase; };
  for (const Bad& b : {Bad{"{", "not valid JSON"}, Bad{"{\"keys\": 3}", "array 'keys'"},
                       Bad{"{\"keys\": [[\"a\", [2], \"float32\"], [\"b\", [-1], \"float32\"]]}", "keys[1]"},
                       Bad{"{\"keys\": [[\"a\", [2], \"float32\"], [\"a\", [2], \"float32\"]]}", "'a' is listed twice"}}) {
    std::ofstream(dir + "/m.keys.json") << b.text;
    try {
      dc::weights::Manifest::load(dir + "/m.keys.json");
      FAIL() << b.text;
    } catch (const dc::Error& e) {
      EXPECT_NE(std::string(e.what()).find(dir + "/m.keys.json"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(b.phrase), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(dc::weights::Manifest::load(dir + "/absent.keys.json"), dc::Error);
}
