// Each kind of damage gives one dc::Error, on one line, naming the file and the problem.
#include <gtest/gtest.h>

#include "common/error.h"
#include "models/weights/safetensors.h"
#include "models/weights/tensor_io.h"
#include "support/damage.h"
#include "support/fixtures.h"

namespace {
std::vector<dc::test::Damage> cases() { return dc::test::damage_cases(); }
}  // namespace

class Damaged : public ::testing::TestWithParam<dc::test::Damage> {};

TEST_P(Damaged, OneClearErrorNamingFileAndProblem) {
  const auto& d = GetParam();
  const std::string path = dc::test::temp_dir() + "/" + d.name + ".safetensors";
  dc::test::write_bytes(path, d.bytes);
  std::string message;
  try {
    const auto f = dc::st::SafetensorsFile::open(path);
    ASSERT_TRUE(d.fails_on_load) << "header of " << d.name << " was accepted";
    for (const auto& info : f.tensors()) dc::st::load_tensor(f, info);
    FAIL() << d.name << " loaded without error";
  } catch (const dc::Error& e) {
    message = e.what();
  }
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_NE(message.find(path), std::string::npos) << "message does not name the file: " << message;
  for (const auto& phrase : d.phrases)
    EXPECT_NE(message.find(phrase), std::string::npos) << "missing '" << phrase << "' in: " << message;
}

INSTANTIATE_TEST_SUITE_P(Kinds, Damaged, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

TEST(DamagedFiles, AtLeastTenKindsAreCovered) { EXPECT_GE(cases().size(), 10u); }

TEST(DamagedFiles, MissingFileAndDirectoryAreClearErrors) {
  const std::string dir = dc::test::temp_dir();
  try {
    dc::st::SafetensorsFile::open(dir + "/nope.safetensors");
    FAIL();
  } catch (const dc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.safetensors: cannot open"), std::string::npos) << e.what();
  }
  try {
    dc::st::SafetensorsFile::open(dir);
    FAIL();
  } catch (const dc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
  }
}
