// scripts/convert_ckpt_to_safetensors.py: a pickled Lightning-style checkpoint made by Python's
// torch converts into a file this reader accepts, with identical values for every dtype.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "models/weights/safetensors.h"
#include "models/weights/tensor_io.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;

namespace {
int sh(const std::string& cmd) {
  const int s = std::system(cmd.c_str());
  return WIFEXITED(s) ? WEXITSTATUS(s) : -1;
}
}  // namespace

TEST(ConvertScript, LightningCheckpointBecomesAnEqualSafetensorsFile) {
  const std::string py = dc::test::python_with("torch");
  if (py.empty()) GTEST_SKIP() << "no Python with torch (Debian: apt-get install python3-torch)";
  const std::string dir = dc::test::temp_dir();
  std::ofstream(dir + "/make.py") << R"(import torch, sys
sd = {
  "model.diffusion_model.w": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7,
  "model.diffusion_model.h": (torch.arange(6, dtype=torch.float32) / 3).to(torch.float16),
  "model.diffusion_model.b": (torch.arange(5, dtype=torch.float32) * 1.5).to(torch.bfloat16),
  "num_batches_tracked": torch.tensor(17, dtype=torch.int64),
  "mask": torch.tensor([True, False, True]),
  "t": torch.arange(10, dtype=torch.float32).reshape(2, 5).t(),
}
torch.save({"state_dict": sd, "epoch": 3, "global_step": 1000}, sys.argv[1])
)";
  ASSERT_EQ(sh(py + " " + dir + "/make.py " + dir + "/m.ckpt"), 0);
  const std::string script = fs::absolute("scripts/convert_ckpt_to_safetensors.py").string();
  ASSERT_EQ(sh(py + " " + script + " " + dir + "/m.ckpt " + dir + "/m.safetensors > " + dir + "/log 2>&1"), 0);
  const auto f = dc::st::SafetensorsFile::open(dir + "/m.safetensors");
  EXPECT_EQ(f.tensors().size(), 6u);
  EXPECT_EQ(f.metadata().at("converted_from"), "m.ckpt");
  auto t = [&](const char* n) { return dc::st::load_tensor(f, n); };
  EXPECT_TRUE(torch::equal(t("model.diffusion_model.w"), torch::arange(12, torch::kFloat32).reshape({3, 4}) / 7));
  EXPECT_TRUE(torch::equal(t("model.diffusion_model.h"), (torch::arange(6, torch::kFloat32) / 3).to(torch::kHalf)));
  EXPECT_TRUE(torch::equal(t("model.diffusion_model.b"), (torch::arange(5, torch::kFloat32) * 1.5).to(torch::kBFloat16)));
  EXPECT_EQ(t("num_batches_tracked").item<int64_t>(), 17);
  EXPECT_TRUE(torch::equal(t("mask"), torch::tensor({true, false, true})));
  EXPECT_TRUE(torch::equal(t("t"), torch::arange(10, torch::kFloat32).reshape({2, 5}).t().contiguous()));

  // A file that is not a checkpoint: one error line, non-zero exit.
  std::ofstream(dir + "/junk.ckpt") << "not a checkpoint";
  EXPECT_NE(sh(py + " " + script + " " + dir + "/junk.ckpt " + dir + "/j.safetensors 2> " + dir + "/err"), 0);
  std::ifstream err(dir + "/err");
  std::string line;
  std::getline(err, line);
  EXPECT_NE(line.find("junk.ckpt: cannot load"), std::string::npos) << line;
  EXPECT_FALSE(fs::exists(dir + "/j.safetensors"));
}
