// safetensors reader/writer: round trips for every dtype, layout rules, conversion, robustness
// against arbitrary damage (truncation at every byte, random byte flips).
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "common/error.h"
#include "models/weights/safetensors.h"
#include "models/weights/tensor_io.h"
#include "support/damage.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using dc::st::DType;

namespace {

torch::Tensor random_tensor(DType dtype, std::vector<int64_t> shape, int seed) {
  torch::manual_seed(seed);
  const auto t = dc::st::to_scalar_type(dtype);
  if (dtype == DType::BOOL) return torch::randint(0, 2, shape).to(torch::kBool);
  if (dtype == DType::U8) return torch::randint(0, 256, shape).to(t);
  if (dtype == DType::I8) return torch::randint(-128, 128, shape).to(t);
  if (!dc::st::dtype_is_floating(dtype)) return torch::randint(-100000, 100000, shape).to(t);
  return (torch::randn(shape, torch::kFloat64) * 100).to(t);
}

const DType kAll[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                      DType::I32, DType::I16, DType::I8,  DType::U8,   DType::BOOL};

}  // namespace

class RoundTrip : public ::testing::TestWithParam<DType> {};

TEST_P(RoundTrip, EveryDtypeKeepsValuesShapesAndMetadata) {
  const DType dtype = GetParam();
  const std::string path = dc::test::temp_dir() + "/t.safetensors";
  const torch::Tensor a = random_tensor(dtype, {3, 5}, 1), b = random_tensor(dtype, {7}, 2);
  const torch::Tensor empty = random_tensor(dtype, {0, 4}, 3), scalar = random_tensor(dtype, {}, 4);
  dc::st::save_tensors(path, {{"w.a", a}, {"w.b", b}, {"empty", empty}, {"scalar", scalar}},
                       {{"format", "pt"}, {"note", "round trip"}});
  const auto f = dc::st::SafetensorsFile::open(path);
  ASSERT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.metadata().at("note"), "round trip");
  EXPECT_EQ(f.header_size() % 8, 0u) << "header is padded to 8 bytes";
  for (const auto& [name, ref] : std::vector<std::pair<std::string, torch::Tensor>>{{"w.a", a}, {"w.b", b}, {"empty", empty}, {"scalar", scalar}}) {
    const auto& info = f.at(name);
    EXPECT_EQ(info.dtype, dtype) << name;
    EXPECT_EQ(info.shape, ref.sizes().vec()) << name;
    const torch::Tensor got = dc::st::load_tensor(f, info);
    EXPECT_EQ(got.scalar_type(), ref.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(got, ref)) << name;
    // Lazy conversion to float32 equals torch's own conversion.
    if (dtype != DType::BOOL) {
      const torch::Tensor as_f32 = dc::st::load_tensor(f, info, torch::kFloat32);
      EXPECT_EQ(as_f32.scalar_type(), torch::kFloat32);
      EXPECT_TRUE(torch::equal(as_f32, ref.to(torch::kFloat32))) << name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllDtypes, RoundTrip, ::testing::ValuesIn(kAll),
                         [](const auto& info) { return std::string(dc::st::dtype_name(info.param)); });

TEST(Safetensors, DtypeNamesRoundTrip) {
  for (DType d : kAll) {
    EXPECT_EQ(dc::st::parse_dtype(dc::st::dtype_name(d)), d);
    EXPECT_EQ(dc::st::from_scalar_type(dc::st::to_scalar_type(d)), d);
    EXPECT_EQ(torch::elementSize(dc::st::to_scalar_type(d)), dc::st::dtype_size(d));
  }
  EXPECT_FALSE(dc::st::parse_dtype("F8_E4M3").has_value());
  EXPECT_THROW(dc::st::from_scalar_type(torch::kComplexFloat), dc::Error);
}

TEST(Safetensors, NoMetadataAndNoTensorsAreValid) {
  const std::string dir = dc::test::temp_dir();
  dc::test::write_bytes(dir + "/empty.safetensors", dc::test::make_safetensors("{}", {}));
  const auto f = dc::st::SafetensorsFile::open(dir + "/empty.safetensors");
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_FALSE(f.has_metadata());
  // Header padded with spaces, as the reference writer does.
  dc::test::write_bytes(dir + "/padded.safetensors",
                        dc::test::make_safetensors(dc::test::valid_sample_header() + "      ",
                                                   dc::test::Bytes(56, 1)));
  const auto g = dc::st::SafetensorsFile::open(dir + "/padded.safetensors");
  EXPECT_EQ(g.tensors().size(), 2u);
}

TEST(Safetensors, ReadsTheHandMadeSampleExactly) {
  const std::string path = dc::test::temp_dir() + "/s.safetensors";
  dc::test::write_bytes(path, dc::test::valid_sample());
  const auto f = dc::st::SafetensorsFile::open(path);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensors()[0].name, "alpha");  // offset order
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const torch::Tensor beta = dc::st::load_tensor(f, "beta");
  EXPECT_EQ(beta.scalar_type(), torch::kInt64);
  // Bytes 24..55 of the data section are (i*7+1) mod 256, little-endian int64.
  int64_t first = 0;
  for (int i = 7; i >= 0; --i) first = (first << 8) | static_cast<uint8_t>((24 + i) * 7 + 1);
  EXPECT_EQ(beta[0].item<int64_t>(), first);
  EXPECT_THROW(f.at("gamma"), dc::Error);
  try {
    f.at("gamma");
  } catch (const dc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'gamma'"), std::string::npos);
  }
}

TEST(Safetensors, WriterRefusesInconsistentInputAndLeavesNoTemporaries) {
  const std::string dir = dc::test::temp_dir();
  const float x[4] = {1, 2, 3, 4};
  EXPECT_THROW(dc::st::write_safetensors(dir + "/a.safetensors", {{"x", DType::F32, {3}, x, 16}}), dc::Error);
  EXPECT_THROW(dc::st::write_safetensors(dir + "/a.safetensors", {{"x", DType::F32, {4}, x, 16}, {"x", DType::F32, {4}, x, 16}}), dc::Error);
  EXPECT_THROW(dc::st::write_safetensors(dir + "/missing/dir/a.safetensors", {{"x", DType::F32, {4}, x, 16}}), dc::Error);
  dc::st::write_safetensors(dir + "/ok.safetensors", {{"x", DType::F32, {4}, x, 16}});
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++files;
    EXPECT_EQ(e.path().filename(), "ok.safetensors");
  }
  EXPECT_EQ(files, 1u);
}

TEST(Safetensors, RewritingAFileReplacesItAtomically) {
  const std::string path = dc::test::temp_dir() + "/w.safetensors";
  dc::st::save_tensors(path, {{"x", torch::ones({4})}});
  const auto before = dc::st::SafetensorsFile::open(path);  // keeps the old mapping alive
  dc::st::save_tensors(path, {{"y", torch::zeros({2, 2})}});
  EXPECT_TRUE(torch::equal(dc::st::load_tensor(before, "x"), torch::ones({4})));
  const auto after = dc::st::SafetensorsFile::open(path);
  EXPECT_NE(after.find("y"), nullptr);
  EXPECT_EQ(after.find("x"), nullptr);
}

// Every strict prefix of a valid file is rejected with a dc::Error (never a crash).
TEST(SafetensorsRobustness, TruncationAtEveryByteIsAnError) {
  const std::string dir = dc::test::temp_dir();
  const dc::test::Bytes valid = dc::test::valid_sample();
  for (std::size_t n = 0; n < valid.size(); ++n) {
    const std::string path = dir + "/cut.safetensors";
    dc::test::write_bytes(path, dc::test::Bytes(valid.begin(), valid.begin() + n));
    EXPECT_THROW(dc::st::SafetensorsFile::open(path), dc::Error) << "cut at " << n;
  }
}

// Random byte flips: the reader either accepts the file (and then every tensor loads) or throws
// dc::Error. Run under ASan/UBSan in CI, this is a small deterministic fuzzer.
TEST(SafetensorsRobustness, RandomByteFlipsNeverCrash) {
  const std::string dir = dc::test::temp_dir();
  const dc::test::Bytes valid = dc::test::valid_sample();
  std::mt19937 rng(12345);
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    dc::test::Bytes b = valid;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      // Mostly the length field and the header, where the structure lives.
      const std::size_t limit = (rng() % 4 == 0) ? b.size() : std::min<std::size_t>(b.size(), 8 + dc::test::valid_sample_header().size());
      b[rng() % limit] = static_cast<uint8_t>(rng());
    }
    const std::string path = dir + "/flip.safetensors";
    dc::test::write_bytes(path, b);
    try {
      const auto f = dc::st::SafetensorsFile::open(path);
      for (const auto& info : f.tensors()) dc::st::load_tensor(f, info, torch::kFloat64);
      ++accepted;
    } catch (const dc::Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(accepted, 0) << "flips in tensor data must still load";
}
