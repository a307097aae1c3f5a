// Samplers against every case in tests/fixtures/samplers (analytic epsilon model, the reference's
// recorded noise replayed) and the DDPM DDIM trajectories with DeepCache in tests/fixtures/ddpm.
#include <gtest/gtest.h>

#include "harness/policies/deepcache.h"
#include "harness/policies/deepcache_schedules.h"
#include "models/deepcache_io.h"
#include "harness/denoiser.h"
#include "harness/sampling/samplers.h"
#include "harness/sampling/schedule.h"
#include "support/ddpm.h"
#include "support/fixtures.h"
#include "support/sampling.h"

using namespace dc::sampling;

namespace {

// The fixtures' analytic model: eps = 0.5 tanh(x) + 0.001 t sin(x) [+ 0.1 c cos(x)].
torch::Tensor analytic_eps(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor* c) {
  const auto tt = t.to(torch::kFloat32).view({-1, 1, 1, 1});
  torch::Tensor e = 0.5 * torch::tanh(x) + 0.001 * tt * torch::sin(x);
  if (c) e = e + 0.1 * c->view({-1, 1, 1, 1}) * torch::cos(x);
  return e;
}

std::vector<torch::Tensor> unstack(const torch::Tensor& t) {
  std::vector<torch::Tensor> v;
  for (int64_t i = 0; i < t.size(0); ++i) v.push_back(t[i]);
  return v;
}

torch::Tensor i64(const std::vector<int64_t>& v) { return torch::tensor(v, torch::kInt64); }

std::string kind_of(const dc::test::Case& c) {
  const std::string ref = c.json.value("reference", nlohmann::json::object()).dump();
  if (ref.find("plms.py") != std::string::npos) return "plms";
  if (ref.find("ddim.py") != std::string::npos) return "ldm_ddim";
  if (c.json["config"].contains("skip_type")) return "ddim_repo";
  return "unknown";
}

}  // namespace

class SamplerCase : public ::testing::TestWithParam<dc::test::Case> {};

TEST_P(SamplerCase, TrajectoryEqualsTheReference) {
  const auto& c = GetParam();
  const auto& cfg = c.json["config"];
  const std::string kind = kind_of(c);
  ASSERT_NE(kind, "unknown") << c.id() << ": cannot tell which sampler the case exercises";
  torch::NoGradGuard ng;
  const auto x_T = c.io_tensor("x_T");
  const auto noises = unstack(c.io_tensor("noises"));
  // Every draw the reference made must be made (noise is drawn even when eta = 0).
  auto draws = std::make_shared<int>(0);
  const NoiseFn replay = [inner = replay_noise(noises), draws](const torch::Tensor& like) {
    ++*draws;
    return inner(like);
  };
  Trajectory tr;
  if (kind == "ddim_repo") {
    const auto betas = make_betas(BetaSchedule::DdpmLinear, cfg["num_diffusion_timesteps"].get<int>(),
                                  cfg["beta_start"].get<double>(), cfg["beta_end"].get<double>());
    const auto ac = alphas_cumprod_f32(betas);
    EXPECT_TRUE(dc::test::matches_reference(c, "betas", torch::tensor(betas).to(torch::kFloat32), c.io_tensor("betas")));
    EXPECT_TRUE(dc::test::matches_reference(c, "alphas_cumprod", ac, c.io_tensor("alphas_cumprod")));
    const auto seq = ddim_repo_timesteps(cfg["timesteps"].get<int>(), parse_spacing(cfg["skip_type"].get<std::string>()),
                                         cfg["num_diffusion_timesteps"].get<int>());
    EXPECT_TRUE(torch::equal(i64(seq), c.io_tensor("seq")));
    EpsFn model = [](const torch::Tensor& x, const torch::Tensor& t, int) { return analytic_eps(x, t, nullptr); };
    // Through the sampler registry: the schedule from (name, steps, spacing, eta), as a run makes it.
    auto sched = make_call_schedule({"ddim", cfg["timesteps"].get<int>(), cfg["skip_type"].get<std::string>(), cfg["eta"].get<double>()},
                                    cfg["num_diffusion_timesteps"].get<int>());
    EXPECT_EQ(sched.timesteps(), std::vector<int64_t>(seq.rbegin(), seq.rend()));
    attach_alphas(sched, ac);
    tr = sample(x_T, sched, model, replay);
  } else {
    const auto betas = make_betas(BetaSchedule::LdmLinear, cfg["num_timesteps"].get<int>(), cfg["linear_start"].get<double>(),
                                  cfg["linear_end"].get<double>());
    EXPECT_TRUE(dc::test::matches_reference(c, "betas_f64", torch::tensor(betas), c.io_tensor("betas_f64")));
    const auto ac64 = alphas_cumprod_f64(betas);
    EXPECT_TRUE(dc::test::matches_reference(c, "alphas_cumprod_f64", ac64, c.io_tensor("alphas_cumprod_f64")));
    const auto ac = ac64.to(torch::kFloat32);
    EXPECT_TRUE(torch::equal(ac, c.io_tensor("alphas_cumprod"))) << "float32 alphas_cumprod must be exact";
    const auto sched = ldm_ddim_schedule(ac, cfg["S"].get<int>(), cfg["eta"].get<double>());
    EXPECT_TRUE(torch::equal(i64(sched.timesteps), c.io_tensor("ddim_timesteps")));
    EXPECT_TRUE(torch::equal(torch::tensor(sched.alphas), c.io_tensor("ddim_alphas")));
    EXPECT_TRUE(torch::equal(torch::tensor(sched.alphas_prev).to(torch::kFloat64), c.io_tensor("ddim_alphas_prev")));
    EXPECT_TRUE(torch::equal(torch::tensor(sched.sigmas, torch::kFloat64), c.io_tensor("ddim_sigmas")))
        << torch::tensor(sched.sigmas, torch::kFloat64) - c.io_tensor("ddim_sigmas");
    const auto cond = c.io_tensor("cond");
    CondEpsFn cm = [](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cc, int) { return analytic_eps(x, t, &cc); };
    const double scale = cfg.value("unconditional_guidance_scale", 1.0);
    const torch::Tensor uc = cfg["unconditional_conditioning"].is_null() ? torch::Tensor() : torch::zeros_like(cond);
    const EpsFn model = classifier_free_guidance(cm, cond, uc, scale);
    auto calls = make_call_schedule({kind == "plms" ? "plms" : "ldm_ddim", cfg["S"].get<int>(), "", cfg["eta"].get<double>()},
                                    cfg["num_timesteps"].get<int>());
    attach_alphas(calls, ac);
    tr = sample(x_T, calls, model, replay);
  }
  // Model calls: count and timesteps.
  const auto calls = c.json.contains("model_calls") ? c.json["model_calls"] : c.json["model_calls_t"];
  ASSERT_EQ(static_cast<std::size_t>(tr.model_calls), calls.size());
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const auto& call = calls[i];
    const std::vector<double> expected_t = call.is_object() ? call["t"].get<std::vector<double>>() : call.get<std::vector<double>>();
    EXPECT_DOUBLE_EQ(tr.model_t[i][0].item<double>(), expected_t[0]) << "call " << i;
  }
  EXPECT_EQ(*draws, static_cast<int>(noises.size())) << "noise draws";
  if (c.json.contains("num_noise_draws")) {
    EXPECT_EQ(*draws, c.json["num_noise_draws"].get<int>());
  }
  EXPECT_TRUE(dc::test::matches_reference(c, "xs", torch::stack(tr.xs), c.io_tensor("xs")));
  EXPECT_TRUE(dc::test::matches_reference(c, "pred_x0", torch::stack(tr.x0s), c.io_tensor("pred_x0")));
  EXPECT_TRUE(dc::test::matches_reference(c, "final", tr.final, c.io_tensor("final")));
}

namespace {
bool is_sampler_case(const dc::test::Case& c) { return c.family == "samplers"; }
const bool kSamplerSuite = dc::test::register_fixture_suite("SamplerCase", is_sampler_case);
}  // namespace

INSTANTIATE_TEST_SUITE_P(All, SamplerCase, ::testing::ValuesIn(dc::test::cases_where("samplers", is_sampler_case)),
                         [](const auto& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(SamplerCase);

// DDPM fixtures: 10-step DDIM (ddim repo generalized_steps) of the tiny UNet with and without
// DeepCache (uniform and non-uniform), compared step by step with the schedule exactly.
class DdpmTrajectory : public ::testing::TestWithParam<dc::test::Case> {};

TEST_P(DdpmTrajectory, EqualsTheReferenceStepByStep) {
  const auto& c = GetParam();
  torch::NoGradGuard ng;
  auto net = dc::test::load_ddpm_case_model(c);
  const auto& d = c.json["config"]["diffusion"];
  const auto betas = make_betas(BetaSchedule::DdpmLinear, d["num_diffusion_timesteps"].get<int>(),
                                d["beta_start"].get<double>(), d["beta_end"].get<double>());
  const auto ac = alphas_cumprod_f32(betas);
  EXPECT_TRUE(dc::test::matches_reference(c, "alphas_cumprod", ac, c.io_tensor("alphas_cumprod")));
  const int steps = c.json["steps"].get<int>();
  const auto seq = ddim_repo_timesteps(steps, parse_spacing(c.json["skip_type"].get<std::string>()),
                                       d["num_diffusion_timesteps"].get<int>());
  EXPECT_TRUE(torch::equal(i64(seq), c.io_tensor("seq")));

  std::shared_ptr<const dc::harness::policies::PolicySettings> plan;
  const auto& cache = c.json["cache"];
  if (!cache.is_null()) {
    const int n = cache["cache_interval"].get<int>();
    plan = dc::harness::policies::deepcache_settings(
        {net->num_skips(), dc::deepcache::k_from_ddpm_branch(cache["branch"].get<int>()),
         cache.value("non_uniform", false)
             ? dc::deepcache::nonuniform_full_steps(steps, n, cache["center"].get<int>(), cache["pow"].get<double>()).steps
             : dc::deepcache::uniform_full_steps(steps, n),
         steps});
  }
  auto log = std::make_shared<dc::harness::DenoiserLog>();
  log->keep_cached = true;
  const auto model = dc::harness::denoiser(net.ptr(), plan, log);
  // eta = 0: the drawn noise is multiplied by zero; any tensor will do.
  const auto tr = dc::test::ddim_repo_sample(c.io_tensor("x_T"), seq, ac, 0.0, model,
                                   [](const torch::Tensor& like) { return torch::zeros_like(like); });
  EXPECT_TRUE(torch::equal(torch::tensor(log->is_full, torch::kInt64), c.io_tensor("is_full_step")))
      << "the full/partial schedule differs from the reference";
  EXPECT_TRUE(dc::test::matches_reference(c, "xs", torch::stack(tr.xs), c.io_tensor("xs")));
  EXPECT_TRUE(dc::test::matches_reference(c, "x0_preds", torch::stack(tr.x0s), c.io_tensor("x0_preds")));
  EXPECT_TRUE(dc::test::matches_reference(c, "final", tr.final, c.io_tensor("final")));
  EXPECT_TRUE(dc::test::matches_reference(c, "final_image01", torch::clamp((tr.final + 1) / 2, 0, 1), c.io_tensor("final_image01")));
  if (plan) {
    EXPECT_TRUE(dc::test::matches_reference(c, "cached_features", torch::stack(log->cached), c.io_tensor("cached_features")));
  }
}

namespace {
bool is_trajectory_case(const dc::test::Case& c) { return c.family == "ddpm" && c.json.contains("step_kinds"); }
const bool kTrajectorySuite = dc::test::register_fixture_suite("DdpmTrajectory", is_trajectory_case);
std::vector<dc::test::Case> trajectory_cases() { return dc::test::cases_where("ddpm", is_trajectory_case); }
}  // namespace

INSTANTIATE_TEST_SUITE_P(All, DdpmTrajectory, ::testing::ValuesIn(trajectory_cases()),
                         [](const auto& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(DdpmTrajectory);

TEST(DdpmTrajectoryCache, IntervalOneEqualsNoCachingExactly) {
  const auto cases = trajectory_cases();
  if (cases.empty()) GTEST_SKIP() << "no DDPM trajectory case";
  torch::NoGradGuard ng;
  auto net = dc::test::load_ddpm_case_model(cases.front());
  const auto ac = alphas_cumprod_f32(make_betas(BetaSchedule::DdpmLinear, 1000, 1e-4, 0.02));
  const auto seq = ddim_repo_timesteps(8, Spacing::Uniform, 1000);
  const auto plan = dc::harness::policies::deepcache_settings({net->num_skips(), 3, dc::deepcache::uniform_full_steps(8, 1), 8});
  auto zero = [](const torch::Tensor& like) { return torch::zeros_like(like); };
  const auto x = cases.front().io_tensor("x_T");
  const auto a = dc::test::ddim_repo_sample(x, seq, ac, 0.0, dc::harness::denoiser(net.ptr(), nullptr), zero);
  const auto b = dc::test::ddim_repo_sample(x, seq, ac, 0.0, dc::harness::denoiser(net.ptr(), plan), zero);
  EXPECT_TRUE(torch::equal(a.final, b.final));
}

TEST(Schedules, KnownValuesAndErrors) {
  EXPECT_EQ(ddim_repo_timesteps(10, Spacing::Quad), (std::vector<int64_t>{0, 9, 39, 88, 158, 246, 355, 483, 632, 800}));
  EXPECT_EQ(ldm_ddim_timesteps(10).front(), 1);
  EXPECT_EQ(ldm_ddim_timesteps(10).back(), 901);
  EXPECT_THROW(parse_beta_schedule("sigmoid"), dc::Error);
  EXPECT_THROW(ddim_repo_timesteps(0, Spacing::Uniform), dc::Error);
  // Cosine: increasing betas below the 0.999 cap; scaled_linear is float32-exact squares.
  const auto cos = make_betas(BetaSchedule::Cosine, 1000, 0, 0);
  EXPECT_LT(cos.front(), cos[500]);
  EXPECT_LE(cos.back(), 0.999);
  const auto sl = make_betas(BetaSchedule::ScaledLinear, 1000, 0.00085, 0.012);
  EXPECT_EQ(static_cast<double>(static_cast<float>(sl[10])), sl[10]);
}

TEST(Samplers, AncestralStepIsTheDdpmPosterior) {
  // x_{t-1} = mean + sqrt(beta_t) noise with the posterior mean in terms of x0 (clamped) and x_t.
  const auto x = torch::full({1, 1, 1, 1}, 0.3f), e = torch::full({1, 1, 1, 1}, 0.2f), n = torch::full({1, 1, 1, 1}, 1.5f);
  const double at = 0.5, an = 0.8, beta = 1 - at / an;
  const double x0 = std::clamp(std::sqrt(1 / at) * 0.3 - std::sqrt(1 / at - 1) * 0.2, -1.0, 1.0);
  const double mean = (std::sqrt(an) * beta * x0 + std::sqrt(1 - beta) * (1 - an) * 0.3) / (1 - at);
  const auto o = ddpm_ancestral_step(x, e, 0.5f, 0.8f, false, n);
  EXPECT_NEAR(o.x.item<double>(), mean + std::sqrt(beta) * 1.5, 1e-6);
  EXPECT_NEAR(ddpm_ancestral_step(x, e, 0.5f, 0.8f, true, n).x.item<double>(), mean, 1e-6);
}
