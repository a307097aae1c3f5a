// model.dtype fp16 against fp32, one family at a time: the relative L2 error
// ||eps_fp16 - eps_fp32|| / ||eps_fp32|| of a plain call and of a DeepCache partial call (after a
// full call filled the cache in the same precision), each family's network as the runner casts
// it (weights fp16, inputs fp16, timesteps fp32; GroupNorm, LayerNorm and the attention softmax
// in fp32 inside). Networks: DDPM, the Fashion-MNIST model trained here (weights/fmnist); LDM-4-G
// and SD1.5, the first fixture case's network (reference-initialised, tiny); inputs x ~ N(0, 1)
// at t = 500, LDM labels 3 and 7, an SD context ~ N(0, 1).
//
// Tolerances (kFp16Tolerance): fp16 rounds each operation to 2^-11 relative (4.9e-4); over a UNet's
// layers, with fp32 normalisations in between, the error of eps grows to ~1e-3. Measured with
// LibTorch 2.6's CPU fp16 kernels (oneDNN, fp32 accumulation; Debian 13 root on an Intel Xeon,
// scripts/check_libtorch2.sh; docs/performance.md, "Half precision"): DDPM 3.9e-4, LDM-4-G 1.8e-3,
// SD1.5 1.6e-3, partial calls alike. Each bound is about 4x its family's measurement, the margin
// for a GPU's kernels (cuBLAS may reduce in fp16: PyTorch's allow_fp16_reduced_precision_reduction
// is on by default); the first GPU run prints its own numbers (Cuda.Fp16...).
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/deepcache_cut.h"
#include "models/deepcache_io.h"
#include "models/model.h"
#include "models/unet.h"
#include "support/fixtures.h"
#include "support/ldm.h"

namespace dc::test {

struct HalfCase {
  std::string family;
  std::shared_ptr<models::UNet> net;
  torch::Tensor x, t, cond;
  int k = 1;  // DeepCache skip index of the partial call
};

struct HalfError {
  double plain = 0.0, partial = 0.0;
};

// Relative L2 error of eps allowed per family (plain and partial calls alike).
inline double fp16_tolerance(const std::string& family) {
  static const std::map<std::string, double> kFp16Tolerance = {{"ddpm", 2e-3}, {"ldm", 8e-3}, {"sd15", 8e-3}};
  return kFp16Tolerance.at(family);
}

// The three families' networks and inputs (fails the calling test when a network is missing).
inline std::vector<HalfCase> half_cases() {
  std::vector<HalfCase> out;
  torch::manual_seed(11);
  const std::string fmnist = "weights/fmnist/ddpm_ema.safetensors";  // tests run in the source tree
  if (std::filesystem::exists(fmnist)) {
    auto m = models::build_model("ddpm", "fmnist", fmnist);
    HalfCase c{"ddpm", m.unet, {}, {}, {}, 1};
    auto shape = m.unet->sample_shape();
    shape.insert(shape.begin(), 2);
    c.x = torch::randn(shape);
    out.push_back(c);
  }
  for (const auto& k : find_cases("ldm")) {
    if (!k.json.contains("config") || !k.json["config"].contains("unet")) continue;
    auto net = load_ldm_case_unet(k);
    HalfCase c{"ldm", net.ptr(), {}, {}, torch::tensor({3, 7}, torch::kInt64) % net->num_classes(), 1};
    const auto& u = net->unet()->config();
    c.x = torch::randn({2, u.in_channels, u.image_size, u.image_size});
    out.push_back(c);
    break;
  }
  for (const auto& k : find_cases("sd15")) {
    if (!k.json.contains("unet_config") || k.json.contains("pipeline")) continue;
    auto net = load_sd15_case_unet(k);
    const auto& u = net->config();
    HalfCase c{"sd15", net.ptr(), torch::randn({2, u.in_channels, u.image_size, u.image_size}), {},
               torch::randn({2, 77, u.context_dim}), 1};
    out.push_back(c);
    break;
  }
  for (auto& c : out) c.t = torch::full({c.x.size(0)}, 500.0f);
  return out;
}

// fp16 and fp32 calls of `c` on `device` (the network is moved and cast, then restored to fp32 on the CPU).
inline HalfError fp16_error(const HalfCase& c, const torch::Device& device) {
  torch::NoGradGuard ng;
  auto run = [&](torch::ScalarType dt) {
    c.net->to(device, dt);
    const auto in = [&](const torch::Tensor& v) {
      return !v.defined() ? v : v.is_floating_point() ? v.to(device, dt) : v.to(device);
    };
    const torch::Tensor x = in(c.x), cond = in(c.cond), t = c.t.to(device);
    const torch::Tensor plain = c.net->forward(x, t, cond, nullptr, nullptr, nullptr).to(torch::kCPU, torch::kFloat);
    models::StageCache cache;
    const DeepCacheCut cut(c.net->num_skips(), c.k);
    const auto &fill = cut.full, &partial = cut.partial;
    c.net->forward(x, t, cond, &fill, &cache, nullptr);
    const torch::Tensor part = c.net->forward(x, t * 0.9, cond, &partial, &cache, nullptr).to(torch::kCPU, torch::kFloat);
    return std::make_pair(plain, part);
  };
  const auto [p32, q32] = run(torch::kFloat);
  const auto [p16, q16] = run(torch::kHalf);
  c.net->to(torch::kCPU, torch::kFloat);
  const auto rel = [](const torch::Tensor& a, const torch::Tensor& b) {
    return ((a - b).norm() / b.norm()).template item<double>();
  };
  return {rel(p16, p32), rel(q16, q32)};
}

// Every family's fp16 error on `device` under its tolerance (and above zero: the call ran in fp16).
inline void expect_fp16_within_tolerance(const torch::Device& device) {
  const auto cases = half_cases();
  ASSERT_EQ(cases.size(), 3u) << "a family's network is missing (weights/fmnist, the ldm and sd15 fixture cases)";
  for (const auto& c : cases) {
    SCOPED_TRACE(c.family);
    const HalfError e = fp16_error(c, device);
    const double tol = fp16_tolerance(c.family);
    ::testing::Test::RecordProperty("fp16_rel_error_" + c.family, std::to_string(e.plain) + " / " + std::to_string(e.partial));
    std::cout << "[ fp16     ] " << c.family << " on " << device.str() << ": relative L2 error of eps, plain " << e.plain
              << ", partial (k = " << c.k << ") " << e.partial << " (tolerance " << tol << ")\n";
    EXPECT_GT(e.plain, 0.0) << "fp16 gave fp32's output bit for bit: the call did not run in fp16";
    EXPECT_LT(e.plain, tol);
    EXPECT_LT(e.partial, tol);
  }
}

}  // namespace dc::test
