// The CPU convolution path (models/cpu_conv.h): oneDNN's Winograd kernel for 3x3 convolutions
// agrees with LibTorch's convolution within float rounding, takes over only where it applies,
// follows weight updates, and DEEPCACHE_CONV=direct restores LibTorch's convolution exactly.
// Also the per-call timer (harness/call_timer.h) and model.dtype's checks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "harness/call_timer.h"
#include "harness/config.h"
#include "harness/runner.h"
#include "models/cpu_conv.h"

#include <filesystem>

#include <fmt/format.h>
#include "support/cli.h"

namespace cc = dc::models::cpu_conv;

namespace {

struct AlgorithmGuard {  // restores the process-wide choice
  cc::Algorithm saved = cc::algorithm();
  ~AlgorithmGuard() { cc::set_algorithm(saved); }
};

torch::Tensor direct(torch::nn::Conv2d& c, const torch::Tensor& x) { return c->forward(x); }

// Max |winograd - direct| relative to max |direct|: float rounding of a different summation order
// and the transforms, ~2e-6 measured; 1e-4 leaves room for deep inputs and other AVX-512 CPUs.
double relative_gap(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

}  // namespace

TEST(CpuConv, WinogradAgreesWithLibTorchWithinRounding) {
  if (!cc::winograd_available()) GTEST_SKIP() << "no Winograd kernel here: " << cc::description();
  AlgorithmGuard g;
  cc::set_algorithm(cc::Algorithm::Auto);
  torch::NoGradGuard ng;
  torch::manual_seed(3);
  struct Shape {
    int64_t ic, oc, n, h, w;
    bool bias;
  };
  for (const Shape s : {Shape{128, 128, 8, 32, 32, true}, Shape{256, 128, 2, 16, 16, true}, Shape{64, 3, 3, 8, 8, false},
                        Shape{32, 64, 1, 7, 5, true}}) {
    torch::nn::Conv2d c(torch::nn::Conv2dOptions(s.ic, s.oc, 3).padding(1).bias(s.bias));
    const torch::Tensor x = torch::randn({s.n, s.ic, s.h, s.w});
    const torch::Tensor want = direct(c, x);
    const torch::Tensor got = cc::forward(*c, x);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_FALSE(torch::equal(got, want)) << "the Winograd path did not run for " << s.ic << "->" << s.oc;
    EXPECT_LT(relative_gap(got, want), 1e-4) << s.ic << "->" << s.oc << " at " << s.h << "x" << s.w;
    // A non-contiguous input (a channels slice) gives the same result as its contiguous copy.
    const torch::Tensor wide = torch::randn({s.n, s.ic + 5, s.h, s.w});
    const torch::Tensor view = wide.slice(1, 2, 2 + s.ic);
    EXPECT_TRUE(torch::equal(cc::forward(*c, view), cc::forward(*c, view.contiguous())));
  }
}

TEST(CpuConv, OnlyWhereItAppliesAndFollowsWeightUpdates) {
  AlgorithmGuard g;
  cc::set_algorithm(cc::Algorithm::Auto);
  torch::manual_seed(4);
  // Not 3x3 / stride 1 / padding 1 / >= 16 input channels: LibTorch's result, bit for bit.
  torch::nn::Conv2d rgb(torch::nn::Conv2dOptions(3, 32, 3).padding(1));
  torch::nn::Conv2d strided(torch::nn::Conv2dOptions(32, 32, 3).padding(1).stride(2));
  torch::nn::Conv2d one(torch::nn::Conv2dOptions(32, 32, 1));
  torch::nn::Conv2d unpadded(torch::nn::Conv2dOptions(32, 32, 3));
  {
    torch::NoGradGuard ng;
    EXPECT_TRUE(torch::equal(cc::forward(*rgb, torch::ones({1, 3, 8, 8})), direct(rgb, torch::ones({1, 3, 8, 8}))));
    const torch::Tensor x = torch::randn({2, 32, 8, 8});
    for (auto* c : {&strided, &one, &unpadded}) EXPECT_TRUE(torch::equal(cc::forward(**c, x), direct(*c, x)));
  }
  // Autograd on (training): LibTorch's convolution, gradients flow.
  torch::nn::Conv2d c(torch::nn::Conv2dOptions(32, 32, 3).padding(1));
  const torch::Tensor x = torch::randn({2, 32, 8, 8});
  const torch::Tensor y = cc::forward(*c, x);
  EXPECT_TRUE(y.requires_grad());
  EXPECT_TRUE(torch::equal(y, direct(c, x)));
  y.sum().backward();
  EXPECT_TRUE(c->weight.grad().defined());
  if (!cc::winograd_available()) GTEST_SKIP() << "the rest needs the Winograd kernel: " << cc::description();
  // Inference after an in-place weight update (an optimiser step): the transformed weights follow.
  torch::NoGradGuard ng;
  const torch::Tensor before = cc::forward(*c, x);
  c->weight.mul_(-2.0);
  const torch::Tensor after = cc::forward(*c, x);
  EXPECT_LT(relative_gap(after, direct(c, x)), 1e-4);
  EXPECT_GT((after - before).abs().max().item<double>(), 1e-3);
  // A weight replaced by another tensor (a checkpoint load that assigns) is followed too.
  c->weight.set_data(torch::randn_like(c->weight));
  EXPECT_LT(relative_gap(cc::forward(*c, x), direct(c, x)), 1e-4);
  // DEEPCACHE_CONV=direct: LibTorch's convolution everywhere, bit for bit.
  cc::set_algorithm(cc::Algorithm::Direct);
  EXPECT_TRUE(torch::equal(cc::forward(*c, x), direct(c, x)));
  EXPECT_NE(cc::description().find("direct"), std::string::npos);
}

TEST(CpuConv, AlgorithmNamesAndTheEnvironmentCheck) {
  EXPECT_EQ(cc::parse_algorithm("winograd", "x"), cc::Algorithm::Winograd);
  EXPECT_EQ(cc::parse_algorithm("direct", "x"), cc::Algorithm::Direct);
  try {
    cc::parse_algorithm("fast", "DEEPCACHE_CONV");
    FAIL() << "accepted 'fast'";
  } catch (const dc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("DEEPCACHE_CONV: 'fast'"), std::string::npos) << e.what();
  }
  // The CLI checks the variable at start-up: exit 2, one line naming it.
  const auto bad = dc::test::run_cli("macs --model ddpm --preset cifar10", "DEEPCACHE_CONV=fast");
  EXPECT_EQ(bad.code, 2) << bad.out << bad.err;
  EXPECT_NE(bad.err.find("DEEPCACHE_CONV: 'fast' is not a convolution algorithm"), std::string::npos) << bad.err;
  // Asked for by name: Winograd runs where the CPU has it (the kernels line says so), else exit 2.
  const std::string sample = "sample --model ddpm --preset cifar10 --weights random --n 1 --batch 1 --steps 1 --out " +
                             dc::test::temp_dir() + "/g.png";
  const auto named = dc::test::run_cli(sample, "DEEPCACHE_CONV=winograd");
  if (cc::winograd_available()) {
    EXPECT_EQ(named.code, 0) << named.err;
    EXPECT_NE(named.out.find("conv3x3=winograd"), std::string::npos) << named.out;
  } else {
    EXPECT_EQ(named.code, 2) << named.out << named.err;
    EXPECT_NE(named.err.find("DEEPCACHE_CONV=winograd: direct"), std::string::npos) << named.err;
  }
  const auto off = dc::test::run_cli(sample, "DEEPCACHE_CONV=direct");
  EXPECT_EQ(off.code, 0) << off.err;
  EXPECT_NE(off.out.find("conv3x3=direct"), std::string::npos) << off.out;
}

TEST(CallTimer, CpuClockSumsEachCallIndexOverTheBatch) {
  auto timer = dc::harness::make_call_timer(torch::kCPU);
  EXPECT_EQ(timer->clock(), "steady_clock");
  const torch::Tensor a = torch::randn({256, 256});
  timer->start_batch(3);
  for (int call : {0, 1, 1, 2}) {  // call 1 twice (classifier-free guidance run as two calls would)
    timer->begin(call);
    torch::Tensor b = a;
    for (int i = 0; i < (call == 2 ? 40 : 4); ++i) b = torch::mm(b, a) / 256.0;
    timer->end(call);
  }
  const std::vector<double> ms = timer->finish_batch();
  ASSERT_EQ(ms.size(), 3u);
  for (double v : ms) EXPECT_GT(v, 0.0);
  EXPECT_GT(ms[2], ms[0]) << "40 products timed shorter than 4";
  timer->start_batch(3);  // a new batch starts from zero
  EXPECT_EQ(timer->finish_batch(), std::vector<double>(3, 0.0));
}

TEST(Config, ModelDtypeValuesAndDevices) {
  using dc::harness::resolve_run;
  const nlohmann::json base = {{"model", {{"family", "ddpm"}, {"preset", "cifar10"}, {"weights", "random"}}}};
  auto with = [&](const nlohmann::json& patch) {
    nlohmann::json j = base;
    j.merge_patch(patch);
    return j;
  };
  // fp32 is the default and stays out of the resolved settings (existing run ids unchanged).
  const auto plain = resolve_run(base, "t");
  EXPECT_EQ(plain.model.dtype, "fp32");
  EXPECT_FALSE(plain.resolved["model"].contains("dtype"));
  const auto bf = resolve_run(with({{"model", {{"dtype", "bf16"}}}}), "t");
  EXPECT_EQ(bf.resolved["model"]["dtype"], "bf16");
  EXPECT_NE(bf.run_id, plain.run_id);
  auto error_of = [&](const nlohmann::json& j) -> std::string {
    try {
      resolve_run(j, "t");
    } catch (const dc::Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of(with({{"model", {{"dtype", "half"}}}})).find("model.dtype"), std::string::npos);
  const std::string cpu16 = error_of(with({{"model", {{"dtype", "fp16"}}}, {"device", "cpu"}}));
  EXPECT_NE(cpu16.find("model.dtype"), std::string::npos) << cpu16;
  EXPECT_NE(cpu16.find("cuda"), std::string::npos) << cpu16;
  // No device in the file: `run --device cuda` may still give one; `sample` on the CPU refuses.
  EXPECT_EQ(error_of(with({{"model", {{"dtype", "fp16"}}}})), "");
  const auto cli = dc::test::run_cli("sample --model ddpm --preset cifar10 --weights random --n 1 --batch 1 --steps 2 --dtype fp16 --out /tmp/dc_fp16.png");
  EXPECT_EQ(cli.code, 2) << cli.out << cli.err;
  EXPECT_NE(cli.err.find("model.dtype: fp16 needs device"), std::string::npos) << cli.err;
}

// model.dtype bf16 on the CPU (where LibTorch runs bfloat16 convolutions): the trained quick-start
// model's images stay close to fp32's. bfloat16 keeps 8 bits of mantissa (relative rounding 2^-9
// per operation); over 10 DDIM calls the uint8 images drift by a few levels, so the comparison is
// of the mean and the 99th percentile of |difference|, with bounds measured here with a margin
// (mean 0.50, p99 2 levels measured on AMD EPYC AVX-512).
TEST(Dtype, Bf16RunStaysCloseToFp32) {
  const std::string w = "weights/fmnist/ddpm_ema.safetensors";
  ASSERT_TRUE(std::filesystem::exists(w)) << w;
  auto run = [&](const std::string& dtype) {
    nlohmann::json j = {{"model", {{"family", "ddpm"}, {"preset", "fmnist"}, {"weights", w}, {"dtype", dtype}}},
                        {"sampler", {{"name", "ddim"}, {"steps", 10}, {"spacing", "uniform"}}},
                        {"cache", {{"enabled", true}, {"k", 1}, {"interval", 2}}},
                        {"samples", {{"n", 8}, {"batch", 8}, {"seed", 3}, {"save_images", true}, {"grid", 0}}}};
    return dc::harness::execute_run(dc::harness::resolve_run(j, "t"));
  };
  dc::harness::RunResult fp32 = run("fp32"), bf16;
  try {
    bf16 = run("bf16");
  } catch (const dc::Error& e) {
    const std::string m = e.what();
    ASSERT_NE(m.find("model.dtype: bf16: this CPU"), std::string::npos) << m;
    GTEST_SKIP() << m;
  }
  ASSERT_TRUE(fp32.images.defined() && bf16.images.defined());
  const torch::Tensor d = (fp32.images.to(torch::kFloat) - bf16.images.to(torch::kFloat)).abs().flatten();
  const double mean = d.mean().item<double>(), p99 = std::get<0>(d.kthvalue(static_cast<int64_t>(0.99 * d.numel()))).item<double>();
  RecordProperty("bf16_mean_abs_uint8", fmt::format("{:.3f}", mean));
  RecordProperty("bf16_p99_abs_uint8", fmt::format("{:.0f}", p99));
  std::cout << "[ bf16     ] |fp32 - bf16| in uint8 levels: mean " << mean << ", p99 " << p99 << "\n";
  EXPECT_GT(mean, 0.0) << "bf16 produced fp32's images bit for bit: the UNet did not run in bf16";
  EXPECT_LT(mean, 1.5);
  EXPECT_LT(p99, 8.0);
}
