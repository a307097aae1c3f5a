// Layers point down only (DESIGN.md §2): nothing under models/, metrics/ or common/ includes
// harness/. The test reads the source tree (ctest runs in it).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "support/fixtures.h"

namespace fs = std::filesystem;

namespace {
// "models/x.h:12: #include "harness/y.h"" for every such include under `dir`.
std::vector<std::string> upward_includes(const fs::path& root, const std::string& dir) {
  static const std::regex include_harness(R"(^\s*#\s*include\s*[<"]harness/)");
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root / dir)) {
    const auto ext = e.path().extension().string();
    if (!e.is_regular_file() || (ext != ".h" && ext != ".cpp" && ext != ".hpp" && ext != ".cc")) continue;
    std::ifstream in(e.path());
    int n = 0;
    for (std::string line; std::getline(in, line);) {
      ++n;
      if (std::regex_search(line, include_harness))
        out.push_back(fs::relative(e.path(), root).string() + ":" + std::to_string(n) + ": " + line);
    }
  }
  return out;
}
}  // namespace

TEST(Layering, ModelsMetricsAndCommonDoNotIncludeHarness) {
  const fs::path root = fs::current_path();
  ASSERT_TRUE(fs::exists(root / "models") && fs::exists(root / "harness")) << "run from the source tree (ctest does), not " << root;
  for (const std::string dir : {"models", "metrics", "common"}) {
    for (const auto& hit : upward_includes(root, dir)) ADD_FAILURE() << hit << "  (layers point down only: move what it needs below " << dir << "/)";
  }
  // The scanner finds a planted upward include (so the test can fail).
  const fs::path tmp = dc::test::temp_dir();
  fs::create_directories(tmp / "models");
  std::ofstream(tmp / "models" / "bad.h") << "#pragma once\n  #include \"harness/runner.h\"\n";
  const auto planted = upward_includes(tmp, "models");
  ASSERT_EQ(planted.size(), 1u);
  EXPECT_NE(planted[0].find("models/bad.h:2:"), std::string::npos) << planted[0];
}
