// Sampling end to end: per-sample seeds (batch-size invariance), option errors, PNG output, and
// the `sample` / `macs` commands.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "harness/ddpm_sample.h"
#include "harness/image_io.h"
#include "harness/sampling/samplers.h"
#include "support/cli.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using dc::harness::DdpmSampleOptions;

namespace {
DdpmSampleOptions small() {
  DdpmSampleOptions o;
  o.preset = "cifar10";
  o.weights = "random";
  o.steps = 4;
  o.n = 3;
  o.seed = 7;
  return o;
}
std::string error_of(const DdpmSampleOptions& o) {
  try {
    dc::harness::ddpm_sample(o);
  } catch (const dc::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(PerSampleNoise, RowsDependOnlyOnSeedAndSampleIndex) {
  const auto like3 = torch::empty({3, 2, 4, 4}), like1 = torch::empty({1, 2, 4, 4});
  auto whole = dc::sampling::per_sample_noise(5, 10);
  const auto a0 = whole(like3), a1 = whole(like3);
  auto third = dc::sampling::per_sample_noise(5, 12);  // sample 12 alone
  const auto b0 = third(like1), b1 = third(like1);
  EXPECT_TRUE(torch::equal(a0[2], b0[0]));
  EXPECT_TRUE(torch::equal(a1[2], b1[0])) << "the second draw of a sample must not depend on its batch";
  EXPECT_FALSE(torch::equal(a0[0], a0[1]));
  EXPECT_FALSE(torch::equal(dc::sampling::per_sample_noise(6, 10)(like1), a0.slice(0, 0, 1)));
}

TEST(DdpmSample, ImagesDoNotDependOnBatchSizeAndCachingChangesThem) {
  torch::manual_seed(0);  // the random init
  auto o = small();
  o.cache_k = 2;
  o.interval = 2;
  o.batch = 1;
  torch::manual_seed(1);
  const auto one = dc::harness::ddpm_sample(o);
  o.batch = 3;
  torch::manual_seed(1);
  const auto three = dc::harness::ddpm_sample(o);
  EXPECT_TRUE(torch::equal(one.images, three.images));
  EXPECT_EQ(one.images.sizes(), (std::vector<int64_t>{3, 3, 32, 32}));
  EXPECT_EQ(one.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(one.full_calls, 2);
  EXPECT_LT(one.macs_step_average, one.macs_full);
  EXPECT_NE(one.weights_note.find("RANDOM"), std::string::npos);
}

TEST(DdpmSample, InvalidOptionsAreClearErrors) {
  auto o = small();
  o.preset = "imagenet";
  EXPECT_NE(error_of(o).find("unknown DDPM preset 'imagenet'"), std::string::npos);
  o = small();
  o.cache_k = 12;
  EXPECT_NE(error_of(o).find("k=12 is out of range"), std::string::npos);
  o = small();
  o.cache_k = 2;
  o.interval = 0;
  EXPECT_NE(error_of(o).find("N must be at least 1"), std::string::npos);
  o = small();
  o.steps = 10;
  o.cache_k = 2;
  o.interval = 2;
  o.nonuniform = std::make_pair(5, 1.01);
  EXPECT_NE(error_of(o).find("impossible non-uniform schedule"), std::string::npos);
  o = small();
  o.weights = "/nonexistent/cifar10.safetensors";
  EXPECT_NE(error_of(o).find("weights file not found"), std::string::npos);
  o = small();
  o.interval = 3;
  EXPECT_NE(error_of(o).find("need --cache-k"), std::string::npos);
}

TEST(ImageIo, PngRoundTripGridAndRounding) {
  const std::string dir = dc::test::temp_dir();
  torch::manual_seed(3);
  const auto rgb = torch::randint(0, 256, {3, 5, 7}).to(torch::kUInt8);
  dc::harness::write_png(dir + "/a.png", rgb);
  EXPECT_TRUE(torch::equal(dc::harness::read_png(dir + "/a.png"), rgb));
  const auto grey = torch::randint(0, 256, {1, 4, 4}).to(torch::kUInt8);
  dc::harness::write_png(dir + "/g.png", grey);
  EXPECT_TRUE(torch::equal(dc::harness::read_png(dir + "/g.png"), grey));
  const auto grid = dc::harness::make_grid(torch::ones({5, 3, 4, 4}, torch::kUInt8), 2);
  EXPECT_EQ(grid.sizes(), (std::vector<int64_t>{3, 3 * 6 + 2, 2 * 6 + 2}));
  // (x+1)/2*255 + 0.5, truncated: -1 -> 0, 1 -> 255, 0 -> 128 (127.5 + 0.5).
  const auto u = dc::harness::to_uint8(torch::tensor({-1.0f, 1.0f, 0.0f, 5.0f}).view({1, 1, 1, 4}));
  EXPECT_EQ(u.flatten()[0].item<int>(), 0);
  EXPECT_EQ(u.flatten()[1].item<int>(), 255);
  EXPECT_EQ(u.flatten()[2].item<int>(), 128);
  EXPECT_EQ(u.flatten()[3].item<int>(), 255);
  std::ofstream(dir + "/bad.png") << "not a png";
  EXPECT_THROW(dc::harness::read_png(dir + "/bad.png"), dc::Error);
}

namespace {
dc::test::CliRun cli(const std::string& args) { return dc::test::run_cli(args); }
}  // namespace

TEST(CliSample, WritesTheGridAndSaysRandomLoudly) {
  const std::string png = dc::test::temp_dir() + "/grid.png";
  const auto r = cli("sample --model ddpm --preset cifar10 --weights random --sampler ddim --steps 3 --spacing quad "
                     "--cache-k 2 --interval 2 --n 4 --seed 0 --out " + png);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("RANDOM INIT"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("k=2 (paper branch m=3)"), std::string::npos) << r.out;
  EXPECT_EQ(dc::harness::read_png(png).sizes(), (std::vector<int64_t>{3, 2 * 34 + 2, 2 * 34 + 2}));
  for (const char* bad : {"--preset foo", "--cache-k 12", "--cache-k 2 --interval 0", "--cache-k 2 --nonuniform x"}) {
    const auto e = cli(std::string("sample --weights random --steps 2 --n 1 --out ") + png + " " + bad);
    EXPECT_EQ(e.code, 2) << bad;
    EXPECT_EQ(std::count(e.err.begin(), e.err.end(), '\n'), 1) << bad << ": " << e.err;
  }
  // The tiny fixture weights do not fit the cifar10 preset: the strict loader lists why.
  const std::string tiny = dc::test::fixtures_root() + "/ddpm/tiny_unet.weights.safetensors";
  if (fs::exists(tiny)) {
    const auto e = cli("sample --weights " + tiny + " --steps 2 --n 1 --out " + png);
    EXPECT_EQ(e.code, 2);
    EXPECT_NE(e.err.find("weights do not match DDPM UNet preset 'cifar10'"), std::string::npos) << e.err;
  }
}

TEST(CliMacs, PrintsEverySkipIndex) {
  const auto r = cli("macs --preset cifar10 --steps 100 --interval 5");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\n 11  12 "), std::string::npos) << r.out;
}
