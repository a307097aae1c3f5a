// The real deepcache-bench binary: help, inspect on every fixture weights file, --against every
// manifest of the same folder, and one-line errors with a non-zero exit for each damaged file.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "models/registry.h"
#include "models/weights/safetensors.h"
#include "support/cli.h"
#include "support/damage.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;

namespace {

using Run = dc::test::CliRun;
Run run(const std::vector<std::string>& args) { return dc::test::run_cli(args); }

std::size_t lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

std::vector<std::string> weights_files() {
  auto files = dc::test::find_files(dc::test::fixtures_root(), ".weights.safetensors");
  if (auto large = dc::test::large_fixtures_root())
    for (const auto& f : dc::test::find_files(*large, ".weights.safetensors")) files.push_back(f);
  return files;
}

// The lines of a section "title (N):\n  name ...\n" up to the next blank line: first words.
std::vector<std::string> section(const std::string& out, const std::string& title) {
  std::vector<std::string> names;
  const auto at = out.find("\n" + title + " (");
  if (at == std::string::npos) return names;
  std::istringstream in(out.substr(out.find('\n', at + 1) + 1));
  std::string line;
  while (std::getline(in, line) && !line.empty()) {
    std::istringstream words(line);
    std::string first;
    words >> first;
    names.push_back(first);
  }
  return names;
}

}  // namespace

TEST(Cli, HelpEverywhere) {
  const auto top = run({"--help"});
  EXPECT_EQ(top.code, 0);
  EXPECT_NE(top.out.find("inspect"), std::string::npos);
  const auto sub = run({"inspect", "--help"});
  EXPECT_EQ(sub.code, 0);
  EXPECT_NE(sub.out.find("--against"), std::string::npos);
  const auto none = run({});
  EXPECT_EQ(none.code, 2);
  EXPECT_EQ(lines(none.err), 1u) << none.err;
  const auto unknown = run({"inspect", "--bogus", "x"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("--bogus"), std::string::npos) << unknown.err;
}

TEST(Cli, InspectPrintsEveryTensorOfEveryFixtureWeightsFile) {
  const auto files = weights_files();
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) {
    SCOPED_TRACE(f);
    const auto r = run({"inspect", f});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(r.err.empty()) << r.err;
    const auto file = dc::st::SafetensorsFile::open(f);
    EXPECT_NE(r.out.find("tensors     " + std::to_string(file.tensors().size()) + "\n"), std::string::npos);
    EXPECT_EQ(r.out.find("family      unrecognised"), std::string::npos) << r.out.substr(0, 600);
    for (const auto& t : file.tensors()) {
      const std::string row_start = "\n" + t.name + " ";
      const auto at = r.out.find(row_start);
      ASSERT_NE(at, std::string::npos) << t.name;
      const std::string row = r.out.substr(at + 1, r.out.find('\n', at + 1) - at - 1);
      EXPECT_NE(row.find(std::string(dc::st::dtype_long_name(t.dtype)) + " "), std::string::npos) << row;
      EXPECT_NE(row.find(dc::st::shape_str(t.shape)), std::string::npos) << row;
    }
  }
}

// For each weights file and each manifest of its folder, the CLI lists exactly the manifest keys
// the file lacks (computed here from the raw JSON) and exits 1 when anything differs.
TEST(Cli, InspectAgainstEveryManifestListsExactlyTheAbsentKeys) {
  int pairs = 0;
  for (const auto& w : weights_files()) {
    const auto file = dc::st::SafetensorsFile::open(w);
    std::set<std::string> have;
    for (const auto& t : file.tensors()) have.insert(t.name);
    for (const auto& m : dc::test::find_files(fs::path(w).parent_path().string(), ".keys.json")) {
      if (fs::path(m).parent_path() != fs::path(w).parent_path()) continue;
      SCOPED_TRACE(w + " against " + m);
      std::ifstream in(m);
      const auto j = nlohmann::json::parse(in);
      std::vector<std::string> absent;
      std::set<std::string> listed;
      bool shapes_equal = true;
      for (const auto& k : j["keys"]) {
        const std::string name = k[0].get<std::string>();
        listed.insert(name);
        if (!have.count(name)) absent.push_back(name);
        else if (file.at(name).shape != k[1].get<std::vector<int64_t>>()) shapes_equal = false;
      }
      std::vector<std::string> extra;
      for (const auto& t : file.tensors())
        if (!listed.count(t.name)) extra.push_back(t.name);
      std::sort(extra.begin(), extra.end());
      const auto r = run({"inspect", "--no-tensors", w, "--against", m});
      const bool differs = !absent.empty() || !extra.empty() || !shapes_equal;
      EXPECT_EQ(r.code, differs ? 1 : 0) << r.err;
      EXPECT_EQ(section(r.out, "missing from file"), absent);
      EXPECT_EQ(section(r.out, "unexpected in file"), extra);
      EXPECT_NE(r.out.find(differs ? "result      DIFFERS" : "result      MATCHES"), std::string::npos);
      ++pairs;
    }
  }
  EXPECT_GT(pairs, 0);
}

TEST(Cli, PrefixSelectsAComponent) {
  const std::string w = dc::test::fixtures_root() + "/ldm/tiny_unet.weights.safetensors";
  if (!fs::exists(w)) GTEST_SKIP() << w << " absent";
  // Compare the UNet part with a manifest written from its own keys: it must match exactly.
  const auto file = dc::st::SafetensorsFile::open(w);
  nlohmann::json keys = nlohmann::json::array();
  const std::string prefix = "model.diffusion_model.";
  for (const auto& t : file.tensors())
    if (t.name.rfind(prefix, 0) == 0) keys.push_back({t.name.substr(prefix.size()), t.shape, dc::st::dtype_long_name(t.dtype)});
  const std::string m = dc::test::temp_dir() + "/unet.keys.json";
  std::ofstream(m) << nlohmann::json{{"keys", keys}}.dump();
  const auto r = run({"inspect", "--no-tensors", w, "--against", m, "--prefix", prefix});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("result      MATCHES"), std::string::npos) << r.out;
}

TEST(Cli, EachDamagedFileGivesOneLineNamingFileAndProblem) {
  const std::string dir = dc::test::temp_dir();
  for (const auto& d : dc::test::damage_cases()) {
    SCOPED_TRACE(d.name);
    const std::string path = dir + "/" + d.name + ".safetensors";
    dc::test::write_bytes(path, d.bytes);
    const auto r = run(d.fails_on_load ? std::vector<std::string>{"inspect", "--verify", path}
                                       : std::vector<std::string>{"inspect", path});
    EXPECT_EQ(r.code, 2);
    EXPECT_TRUE(r.out.empty()) << "nothing on stdout for a bad file: " << r.out;
    EXPECT_EQ(lines(r.err), 1u) << r.err;
    EXPECT_EQ(r.err.rfind("deepcache-bench: error: " + path + ": ", 0), 0u) << r.err;
    for (const auto& p : d.phrases) EXPECT_NE(r.err.find(p), std::string::npos) << p << " not in " << r.err;
  }
  const auto missing = run({"inspect", dir + "/absent.safetensors"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("absent.safetensors: cannot open"), std::string::npos) << missing.err;
  const auto files = weights_files();
  ASSERT_FALSE(files.empty());
  const auto bad_manifest = run({"inspect", files.front(), "--against", dir + "/absent.keys.json"});
  EXPECT_EQ(bad_manifest.code, 2);
  EXPECT_TRUE(bad_manifest.out.empty()) << bad_manifest.out;
  EXPECT_NE(bad_manifest.err.find("absent.keys.json: cannot open manifest"), std::string::npos) << bad_manifest.err;
}

TEST(Cli, VerifyReadsEveryTensor) {
  const auto files = weights_files();
  ASSERT_FALSE(files.empty());
  const auto r = run({"inspect", "--verify", "--no-tensors", files.front()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("verified    "), std::string::npos) << r.out;
}

// Issue 17: `sample --help` lists every preset of every family with its S and similarity taps, from
// the registry (so a new preset appears without editing the help).
TEST(Cli, SampleHelpListsEveryPresetWithItsSAndTaps) {
  const auto r = dc::test::run_cli("sample --help");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const auto& family : dc::models::family_names())
    for (const auto& preset : dc::models::preset_names(family)) {
      const auto info = dc::models::model_info(family, preset);
      std::string taps;
      for (const auto& t : info.tap_names) taps += (taps.empty() ? "" : " ") + t;
      const std::string line = family + "/" + preset + ": S = " + std::to_string(info.num_skips);
      const auto at = r.out.find(line);
      ASSERT_NE(at, std::string::npos) << line << "\n" << r.out;
      // CLI11 may wrap a long line: compare without whitespace.
      std::string got = r.out.substr(at, r.out.find(" --", at) - at), want = "similarity taps: " + taps;
      auto squeeze = [](std::string s) { s.erase(std::remove_if(s.begin(), s.end(), ::isspace), s.end()); return s; };
      EXPECT_NE(squeeze(got).find(squeeze(want)), std::string::npos) << got;
    }
  EXPECT_NE(r.out.find("ddpm/fmnist: S = 9"), std::string::npos) << r.out;
}

// A setting accepted with a warning (a non-uniform centre outside the model calls): `plan` prints
// it under its run, located like an error, and exits 0.
TEST(Cli, PlanPrintsWarningsUnderTheirRun) {
  const std::string yaml = dc::test::temp_dir() + "/centre.yaml";
  std::ofstream(yaml) << "experiment: centre\nbase:\n  model: {family: ddpm, preset: fmnist, weights: random}\n"
                         "  sampler: {name: ddim, steps: 10}\nruns:\n  - {cache.k: 1, cache.schedule: nonuniform, cache.center: 40}\n";
  const auto r = dc::test::run_cli("plan " + dc::test::shell_quote(yaml));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("     warning: " + yaml + ":6: runs[0].cache.center: cache.center 40 is outside [0, 10), the model calls"),
            std::string::npos) << r.out;
}
