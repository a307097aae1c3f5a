// Strict loading: everything reported at once, nothing copied on failure, precision options,
// key mapping, integer buffers.
#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "models/weights/strict_loader.h"
#include "models/weights/tensor_io.h"
#include "support/fixtures.h"

using dc::weights::LoadOptions;
using dc::weights::Precision;

namespace {

struct NetImpl : torch::nn::Module {
  NetImpl() {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3)));
    norm = register_module("norm", torch::nn::BatchNorm2d(4));
    proj = register_module("proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 2, 1)));
  }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d norm{nullptr};
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(Net);

std::map<std::string, torch::Tensor> snapshot(const torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> s;
  for (const auto& [k, v] : dc::weights::state_dict(m)) s[k] = v.detach().clone();
  return s;
}

bool same_state(const torch::nn::Module& m, const std::map<std::string, torch::Tensor>& s) {
  for (const auto& [k, v] : dc::weights::state_dict(m))
    if (!s.count(k) || v.scalar_type() != s.at(k).scalar_type() || !torch::equal(v, s.at(k))) return false;
  return true;
}

std::map<std::string, torch::Tensor> random_state(int seed) {
  torch::manual_seed(seed);
  Net src;
  for (auto& p : src->parameters()) {
    torch::NoGradGuard g;
    p.normal_();
  }
  src->norm->running_mean.normal_();
  src->norm->num_batches_tracked.fill_(seed);
  return snapshot(*src);
}

dc::st::NamedTensors named(const std::map<std::string, torch::Tensor>& m) { return {m.begin(), m.end()}; }

}  // namespace

TEST(StrictLoader, LoadsEveryTensorFromAFile) {
  const auto state = random_state(3);
  const std::string path = dc::test::temp_dir() + "/net.safetensors";
  dc::st::save_tensors(path, named(state));
  Net net;
  const auto summary = dc::weights::load_strict(*net, dc::st::SafetensorsFile::open(path));
  EXPECT_EQ(summary.tensors, state.size());
  EXPECT_EQ(summary.converted, 0u);
  EXPECT_TRUE(same_state(*net, state));
  EXPECT_EQ(net->norm->num_batches_tracked.item<int64_t>(), 3);
}

TEST(StrictLoader, ReportsEveryProblemAtOnceAndLoadsNothing) {
  auto state = random_state(4);
  state.erase("proj.bias");                                 // missing
  state["proj.extra"] = torch::zeros({2});                  // unexpected
  state["conv.weight"] = torch::zeros({4, 3, 5, 5});        // mis-shaped
  state["norm.num_batches_tracked"] = torch::zeros({});     // float for an int64 buffer
  const std::string path = dc::test::temp_dir() + "/bad.safetensors";
  dc::st::save_tensors(path, named(state));
  Net net;
  const auto before = snapshot(*net);
  LoadOptions opt;
  opt.module_name = "test net";
  try {
    dc::weights::load_strict(*net, dc::st::SafetensorsFile::open(path), opt);
    FAIL() << "loaded";
  } catch (const dc::Error& e) {
    const std::string msg = e.what();
    for (const char* phrase : {"bad.safetensors", "test net", "1 missing", "1 unexpected", "1 mis-shaped",
                               "1 of incompatible type", "missing in file: proj.bias [2]",
                               "unexpected in file: proj.extra [2]",
                               "shape mismatch: conv.weight: file [4, 3, 5, 5], module [4, 3, 3, 3]",
                               "type mismatch: norm.num_batches_tracked: file has float32, module has int64",
                               "nothing was loaded"})
      EXPECT_NE(msg.find(phrase), std::string::npos) << "missing '" << phrase << "' in:\n" << msg;
  }
  EXPECT_TRUE(same_state(*net, before)) << "a failed load changed the module";
}

TEST(StrictLoader, HalfWeightsLoadAsFloat32OrStayHalf) {
  const auto state = random_state(5);
  std::map<std::string, torch::Tensor> half;
  for (const auto& [k, v] : state) half[k] = v.is_floating_point() ? v.to(torch::kHalf) : v;
  const std::string path = dc::test::temp_dir() + "/half.safetensors";
  dc::st::save_tensors(path, named(half));
  const auto file = dc::st::SafetensorsFile::open(path);

  Net to_module;
  const auto s1 = dc::weights::load_strict(*to_module, file);
  EXPECT_EQ(to_module->conv->weight.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(to_module->conv->weight, half.at("conv.weight").to(torch::kFloat32)));
  EXPECT_EQ(s1.converted, 8u);  // every floating tensor; num_batches_tracked stays int64

  Net keep;
  LoadOptions opt;
  opt.precision = Precision::File;
  const auto s2 = dc::weights::load_strict(*keep, file, opt);
  EXPECT_EQ(keep->conv->weight.scalar_type(), torch::kHalf);
  EXPECT_EQ(keep->norm->running_var.scalar_type(), torch::kHalf);
  EXPECT_EQ(keep->norm->num_batches_tracked.scalar_type(), torch::kInt64);
  EXPECT_TRUE(torch::equal(keep->proj->bias, half.at("proj.bias")));
  EXPECT_EQ(s2.converted, 0u);
}

TEST(StrictLoader, PrefixIgnoreAndRenameWithTransform) {
  auto state = random_state(6);
  std::map<std::string, torch::Tensor> file;
  for (const auto& [k, v] : state) file["model.diffusion_model." + k] = v;
  // The file stores proj.weight as a linear [2, 4] under another name, plus junk to ignore.
  file.erase("model.diffusion_model.proj.weight");
  file["model.diffusion_model.out.linear.weight"] = state.at("proj.weight").reshape({2, 4});
  file["model.diffusion_model.loss.disc.weight"] = torch::zeros({3});
  file["first_stage_model.x"] = torch::zeros({3});
  const std::string path = dc::test::temp_dir() + "/prefixed.safetensors";
  dc::st::save_tensors(path, named(file));
  LoadOptions opt;
  opt.mapping.select_prefix("model.diffusion_model.")
      .ignore_prefix("loss.")
      .rename("out.linear.weight", "proj.weight", dc::weights::Transform::Unsqueeze1x1);
  Net net;
  dc::weights::load_strict(*net, dc::st::SafetensorsFile::open(path), opt);
  EXPECT_TRUE(same_state(*net, state));
  // Without the mapping every key is unexpected and every module key missing.
  Net plain;
  try {
    dc::weights::load_strict(*plain, dc::st::SafetensorsFile::open(path));
    FAIL();
  } catch (const dc::Error& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(state.size()) + " missing"), std::string::npos) << e.what();
  }
}

TEST(StrictLoader, FromTensorsInMemoryAndAgainstAManifest) {
  const auto state = random_state(7);
  Net net;
  dc::weights::load_strict(*net, state, "in-memory state");
  EXPECT_TRUE(same_state(*net, state));
  // A manifest written from the module itself matches; dropping a key is reported.
  auto keys = dc::weights::module_keys(*net);
  EXPECT_TRUE(dc::weights::check_module(*net, keys).ok());
  keys.pop_back();
  const auto d = dc::weights::check_module(*net, keys);
  EXPECT_EQ(d.unexpected.size(), 1u);
  EXPECT_FALSE(d.ok());
}

TEST(StrictLoader, AOneElementTensorFitsAScalarParameter) {
  auto state = random_state(8);
  state["norm.num_batches_tracked"] = torch::tensor({int64_t{9}});  // [1] instead of []
  Net net;
  dc::weights::load_strict(*net, state, "scalar as [1]");
  EXPECT_EQ(net->norm->num_batches_tracked.dim(), 0);
  EXPECT_EQ(net->norm->num_batches_tracked.item<int64_t>(), 9);
  state["norm.num_batches_tracked"] = torch::tensor({int64_t{9}, int64_t{10}});  // two elements: a real mismatch
  EXPECT_THROW(dc::weights::load_strict(*net, state, "two elements"), dc::Error);
}
