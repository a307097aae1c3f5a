// Full-step sets: uniform, the reference's non-uniform search (against every table the fixtures
// carry), explicit lists, and their errors.
#include <gtest/gtest.h>

#include "common/error.h"
#include "harness/policies/deepcache_schedules.h"
#include "support/fixtures.h"

using namespace dc::deepcache;

TEST(FullSteps, Uniform) {
  EXPECT_EQ(uniform_full_steps(10, 3), (std::vector<int>{0, 3, 6, 9}));
  EXPECT_EQ(uniform_full_steps(4, 1), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(uniform_full_steps(5, 100), (std::vector<int>{0}));
  EXPECT_THROW(uniform_full_steps(10, 0), dc::Error);
  EXPECT_THROW(uniform_full_steps(0, 2), dc::Error);
}

// Every row of every sample_from_quad_center_table in the fixtures, plus each case's own
// non-uniform schedule.
TEST(FullSteps, NonUniformEqualsTheReferenceTables) {
  int rows = 0;
  for (const auto& c : dc::test::find_cases()) {
    if (c.json.contains("sample_from_quad_center_table")) {
      for (const auto& r : c.json["sample_from_quad_center_table"]) {
        const auto got = sample_from_quad_center(r["total_numbers"].get<int>(), r["n_samples"].get<int>(),
                                                 r["center"].get<int>(), r["pow"].get<double>());
        EXPECT_EQ(got.steps, r["indices"].get<std::vector<int>>()) << c.id() << " row " << r.dump();
        EXPECT_DOUBLE_EQ(got.final_power, r["final_pow"].get<double>()) << c.id() << " row " << r.dump();
        ++rows;
      }
    }
    if (c.json.contains("cache") && c.json["cache"].is_object() && c.json["cache"].value("non_uniform", false)) {
      const auto& k = c.json["cache"];
      const auto got = nonuniform_full_steps(c.json["steps"].get<int>(), k["cache_interval"].get<int>(),
                                             k["center"].get<int>(), k["pow"].get<double>());
      EXPECT_EQ(got.steps, k["full_step_indices"].get<std::vector<int>>()) << c.id();
      ++rows;
    }
  }
  EXPECT_GT(rows, 0) << "no non-uniform reference table under " << dc::test::fixtures_root();
}

TEST(FullSteps, NonUniformWithIntervalOneIsEveryStepAndImpossibleSchedulesAreErrors) {
  EXPECT_EQ(nonuniform_full_steps(6, 1, 3, 1.4).steps, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  try {
    nonuniform_full_steps(10, 2, 5, 1.01);  // too little room to search: no power in (1, 1.01] gives 5 steps
    FAIL() << "accepted";
  } catch (const dc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("impossible non-uniform schedule"), std::string::npos) << e.what();
  }
}

TEST(FullSteps, ExplicitListsAreChecked) {
  EXPECT_EQ(explicit_full_steps(10, {5, 0, 2}), (std::vector<int>{0, 2, 5}));
  EXPECT_THROW(explicit_full_steps(10, {1, 2}), dc::Error);   // no 0
  EXPECT_THROW(explicit_full_steps(10, {0, 10}), dc::Error);  // out of range
  EXPECT_THROW(explicit_full_steps(10, {0, 3, 3}), dc::Error);
}
