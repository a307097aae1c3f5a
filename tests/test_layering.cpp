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
const std::regex& include_harness() {
  static const std::regex r(R"(^\s*#\s*include\s*[<"]harness/)");
  return r;
}

// "models/x.h:12: #include "harness/y.h"" for every line matching `pattern` under `dir`, except
// files whose path (relative to root) starts with one of `except`.
std::vector<std::string> upward_includes(const fs::path& root, const std::string& dir,
                                         const std::regex& pattern = include_harness(),
                                         const std::vector<std::string>& except = {}) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root / dir)) {
    const auto ext = e.path().extension().string();
    if (!e.is_regular_file() || (ext != ".h" && ext != ".cpp" && ext != ".hpp" && ext != ".cc")) continue;
    const std::string rel = fs::relative(e.path(), root).string();
    bool skip = false;
    for (const auto& x : except) skip = skip || rel.rfind(x, 0) == 0;
    if (skip) continue;
    std::ifstream in(e.path());
    int n = 0;
    for (std::string line; std::getline(in, line);) {
      ++n;
      if (std::regex_search(line, pattern)) out.push_back(rel + ":" + std::to_string(n) + ": " + line);
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

// One pipeline for every family (DESIGN.md §3): the denoiser, runner, CLI, metrics and benches
// see a UNet only through models/unet.h and the registry (models/model.h, models/registry.h);
// no file there includes a family's own header (models/*_unet.h). Training this project's
// Fashion-MNIST DDPM (harness/train, bench/bench_train.cpp) is DDPM-specific by nature.
TEST(Layering, NothingDownstreamIncludesOneFamilysUNet) {
  const fs::path root = fs::current_path();
  ASSERT_TRUE(fs::exists(root / "bench")) << "run from the source tree (ctest does), not " << root;
  const std::regex family_header(R"(^\s*#\s*include\s*[<"]models/\w+_unet\.h)");
  const std::vector<std::string> training = {"harness/train/", "bench/bench_train.cpp"};
  for (const std::string dir : {"harness", "metrics", "bench"})
    for (const auto& hit : upward_includes(root, dir, family_header, training))
      ADD_FAILURE() << hit << "  (go through models/unet.h and the registry, models/model.h)";
  const fs::path tmp = dc::test::temp_dir();
  fs::create_directories(tmp / "harness");
  std::ofstream(tmp / "harness" / "bad.cpp") << "#include \"models/ddpm_unet.h\"\n";
  EXPECT_EQ(upward_includes(tmp, "harness", family_header, training).size(), 1u);
}
