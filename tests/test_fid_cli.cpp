// pytorch-fid's command line: `fid` on .npz statistics and on folders of PNG images, `fid-stats`,
// and clear errors for missing or corrupt inputs.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/image_io.h"
#include "metrics/fid.h"
#include "metrics/fid_pipeline.h"
#include "metrics/npz.h"
#include "models/weights/safetensors.h"
#include "support/cli.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;

namespace {
dc::test::CliRun cli(const std::string& args) { return dc::test::run_cli(args); }
double parse_fid(const std::string& out) {
  const auto at = out.find("FID:");
  return at == std::string::npos ? -1 : std::stod(out.substr(at + 4));
}
std::string inception_weights() {
  if (auto large = dc::test::large_fixtures_root()) {
    const std::string w = *large + "/inception_fid.weights.safetensors";
    if (fs::exists(w)) return w;
  }
  return "";
}
}  // namespace

TEST(FidCli, NpzStatisticsGiveTheReferenceFidAndZeroAgainstThemselves) {
  int checked = 0;
  for (const auto& c : dc::test::find_cases("fid")) {
    const auto io = dc::st::SafetensorsFile::open(c.io_path());
    if (!io.find("sigma1") || c.json.value("eps_offset_path_taken", false)) continue;
    const std::string dir = dc::test::temp_dir();
    dc::metrics::write_fid_stats(dir + "/a.npz", c.io_tensor("mu1"), c.io_tensor("sigma1"));
    dc::metrics::write_fid_stats(dir + "/b.npz", c.io_tensor("mu2"), c.io_tensor("sigma2"));
    const auto r = cli("fid " + dir + "/a.npz " + dir + "/b.npz");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(dc::test::matches_reference(c, "fid", torch::tensor({parse_fid(r.out)}, torch::kFloat64), c.io_tensor("fid"))) << r.out;
    const auto self = cli("fid " + dir + "/a.npz " + dir + "/a.npz");
    EXPECT_NEAR(parse_fid(self.out), 0.0, 1e-6) << self.out;
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(FidCli, MissingAndCorruptInputsAreOneLineErrors) {
  const std::string dir = dc::test::temp_dir();
  std::ofstream(dir + "/bad.npz") << "garbage";
  fs::create_directories(dir + "/imgs");
  dc::image::write_png(dir + "/imgs/0.png", torch::zeros({3, 8, 8}, torch::kUInt8));
  for (const auto& [args, phrase] : std::vector<std::pair<std::string, std::string>>{
           {"fid " + dir + "/absent.npz " + dir + "/bad.npz", "absent.npz: cannot open as .npz"},
           {"fid " + dir + "/bad.npz " + dir + "/bad.npz", "bad.npz: cannot open as .npz"},
           {"fid " + dir + "/imgs " + dir + "/imgs", "DEEPCACHE_INCEPTION_WEIGHTS"},
           {"fid-stats " + dir + "/nothing --out " + dir + "/s.npz --inception-weights " + dir + "/bad.npz", "not a folder of images"},
           {"fid " + dir + "/imgs " + dir + "/imgs --inception-weights " + dir + "/none.safetensors", "none.safetensors: FID Inception weights not found"},
       }) {
    const auto r = cli(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(phrase), std::string::npos) << r.err;
  }
}

// PNG files through the whole pipeline equal the reference's pool3 features of the same images.
TEST(FidPipeline, PngFolderFeaturesEqualTheReference) {
  const std::string w = inception_weights();
  if (w.empty()) GTEST_SKIP() << "large Inception weights absent; set DEEPCACHE_FIXTURES_LARGE";
  dc::test::Case c;
  for (auto& x : dc::test::find_cases("fid"))
    if (x.json.contains("pipeline")) c = x;
  ASSERT_FALSE(c.name.empty());
  const std::string dir = dc::test::temp_dir();
  const auto images = c.io_tensor("images_299_uint8");
  for (int64_t i = 0; i < images.size(0); ++i) dc::image::write_png(fmt::format("{}/{:03d}.png", dir, i), images[i]);
  auto net = dc::metrics::load_inception(w, torch::kCPU);
  const auto stats = dc::metrics::folder_statistics(net, dir, 2048, 2, torch::kCPU);
  EXPECT_EQ(stats.count(), images.size(0));
  const auto ref_mean = c.io_tensor("pool3_299").to(torch::kFloat64).mean(0);
  const auto mu = stats.mean();
  EXPECT_TRUE(dc::test::matches_reference(c, "pool3_299", torch::from_blob(const_cast<double*>(mu.data()), {mu.size()}, torch::kFloat64).clone(), ref_mean));
  // fid-stats writes the same statistics.
  const auto r = cli("fid-stats " + dir + " --out " + dir + "/stats.npz --batch-size 2 --inception-weights " + w);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto [m2, s2] = dc::metrics::read_fid_stats(dir + "/stats.npz");
  EXPECT_TRUE(torch::allclose(m2, torch::from_blob(const_cast<double*>(mu.data()), {mu.size()}, torch::kFloat64), 1e-4, 1e-4))
      << "the CLI may use another thread count: float32 convolutions then sum in another order";
}
