// The diffusers 0.24 schedulers (PNDM skip_prk, DDIM, DPM-Solver++(2M), Euler with SD1.5's
// scheduler config) through the one sampling loop, against every `tests/fixtures/schedulers`
// case: timesteps, sigmas, the initial noise scale, every model input and eps of the analytic
// model eps(x, t) = 0.5 tanh(x) + float32(0.001 t) sin(x), x after every call and at the end.
// Each case's scheduler config must be the one the sampler implements (SD1.5's); a case with
// another config fails by name instead of passing against the wrong arithmetic.
#include <gtest/gtest.h>

#include <map>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "harness/sampling/call_schedule.h"
#include "harness/sampling/samplers.h"
#include "harness/sampling/schedule.h"
#include "support/fixtures.h"

namespace {

bool is_scheduler_case(const dc::test::Case& c) { return c.family == "schedulers"; }
const bool kSchedulerSuite = dc::test::register_fixture_suite("SchedulerCase", is_scheduler_case);

const std::map<std::string, std::string>& sampler_of_class() {
  static const std::map<std::string, std::string> m = {{"PNDMScheduler", "pndm"},
                                                       {"DDIMScheduler", "diffusers_ddim"},
                                                       {"DPMSolverMultistepScheduler", "dpmpp_2m"},
                                                       {"EulerDiscreteScheduler", "euler"}};
  return m;
}

// What our samplers implement: SD1.5's scheduler config with each class's defaults.
std::vector<std::string> unsupported_settings(const nlohmann::json& cfg, const std::string& sampler) {
  std::map<std::string, nlohmann::json> want = {{"num_train_timesteps", 1000}, {"beta_start", 0.00085}, {"beta_end", 0.012},
                                                {"beta_schedule", "scaled_linear"}, {"prediction_type", "epsilon"},
                                                {"trained_betas", nullptr}};
  if (sampler == "pndm" || sampler == "diffusers_ddim") {
    want["timestep_spacing"] = "leading";
    want["steps_offset"] = 1;
    want["set_alpha_to_one"] = false;
  }
  if (sampler == "pndm") want["skip_prk_steps"] = true;
  if (sampler == "diffusers_ddim") {
    want["clip_sample"] = false;
    want["thresholding"] = false;
    want["rescale_betas_zero_snr"] = false;
  }
  if (sampler == "dpmpp_2m") {
    want["timestep_spacing"] = "linspace";
    want["solver_order"] = 2;
    want["algorithm_type"] = "dpmsolver++";
    want["solver_type"] = "midpoint";
    want["lower_order_final"] = true;
    want["euler_at_final"] = false;
    want["use_karras_sigmas"] = false;
    want["use_lu_lambdas"] = false;
    want["thresholding"] = false;
  }
  if (sampler == "euler") {
    want["timestep_spacing"] = "linspace";
    want["interpolation_type"] = "linear";
    want["use_karras_sigmas"] = false;
    want["timestep_type"] = "discrete";
  }
  std::vector<std::string> bad;
  for (const auto& [k, v] : want) {
    if (!cfg.contains(k)) continue;
    const auto& have = cfg.at(k);
    const bool same = have == v || (have.is_number() && v.is_number() && have.get<double>() == v.get<double>());
    if (!same) bad.push_back(k + " = " + have.dump());
  }
  return bad;
}

torch::Tensor analytic_eps(const torch::Tensor& x, float t) {
  const float c = static_cast<float>(0.001 * static_cast<double>(t));
  return 0.5 * torch::tanh(x) + c * torch::sin(x);
}

}  // namespace

class SchedulerCase : public ::testing::TestWithParam<dc::test::Case> {};

TEST_P(SchedulerCase, EqualsTheReference) {
  const auto& c = GetParam();
  torch::NoGradGuard ng;
  const std::string cls = c.json.at("scheduler_class").get<std::string>();
  ASSERT_TRUE(sampler_of_class().count(cls)) << c.id() << ": no sampler implements " << cls;
  const std::string name = sampler_of_class().at(cls);
  const auto bad = unsupported_settings(c.json.at("scheduler_config"), name);
  ASSERT_TRUE(bad.empty()) << c.id() << ": " << name << " implements SD1.5's config; this case sets " << bad.front();
  dc::sampling::SamplerOptions o;
  o.name = name;
  o.steps = c.json.at("num_inference_steps").get<int>();
  o.eta = c.json.value("step_kwargs", nlohmann::json::object()).value("eta", 0.0);
  auto schedule = dc::sampling::make_call_schedule(o, 1000);
  ASSERT_EQ(schedule.num_calls(), c.json.at("num_model_calls").get<int>());
  // The family's alphas_cumprod (SD1.5: scaled_linear, float32 cumprod) against the reference's.
  const torch::Tensor ac = dc::sampling::alphas_cumprod({"scaled_linear", 1000, 0.00085, 0.012, "float32"});
  EXPECT_TRUE(dc::test::matches_reference(c, "alphas_cumprod", ac, c.io_tensor("alphas_cumprod")));
  dc::sampling::attach_alphas(schedule, ac);
  // Timesteps (euler's are float).
  const torch::Tensor want_t = c.io_tensor("timesteps");
  for (int i = 0; i < schedule.num_calls(); ++i) {
    const auto& call = schedule.calls[i];
    if (want_t.scalar_type() == torch::kFloat32)
      EXPECT_EQ(static_cast<float>(call.model_t), want_t[i].item<float>()) << "call " << i;
    else
      EXPECT_EQ(call.t, want_t[i].item<int64_t>()) << "call " << i;
  }
  if (c.json.at("tensors").contains("sigmas")) {
    std::vector<float> sigmas;
    for (const auto& call : schedule.calls) sigmas.push_back(call.k_sigma);
    sigmas.push_back(schedule.calls.back().k_sigma_next);
    EXPECT_TRUE(dc::test::matches_reference(c, "sigmas", torch::tensor(sigmas), c.io_tensor("sigmas")));
  }
  EXPECT_TRUE(dc::test::matches_reference(c, "init_noise_sigma", torch::tensor({schedule.init_noise_sigma}),
                                          c.io_tensor("init_noise_sigma").reshape({1}).to(torch::kFloat32)));
  // The loop with the analytic model, recording what the model sees.
  std::vector<torch::Tensor> inputs, eps;
  const dc::sampling::EpsFn model = [&](const torch::Tensor& x, const torch::Tensor& t, int) {
    inputs.push_back(x);
    eps.push_back(analytic_eps(x, t[0].item<float>()));
    return eps.back();
  };
  const dc::sampling::NoiseFn no_noise = [](const torch::Tensor& like) { return torch::zeros_like(like); };
  const auto tr = dc::sampling::sample(c.io_tensor("noise"), schedule, model, no_noise, /*keep_steps=*/true);
  ASSERT_EQ(static_cast<int>(inputs.size()), schedule.num_calls());
  ASSERT_EQ(static_cast<int>(tr.xs.size()), schedule.num_calls()) << "every call of these schedulers is a step";
  const torch::Tensor want_in = c.io_tensor("model_inputs"), want_eps = c.io_tensor("eps"), want_x = c.io_tensor("x_per_step");
  for (int i = 0; i < schedule.num_calls(); ++i) {
    EXPECT_TRUE(dc::test::matches_reference(c, "model_inputs", inputs[i], want_in[i])) << "call " << i;
    EXPECT_TRUE(dc::test::matches_reference(c, "eps", eps[i], want_eps[i])) << "call " << i;
    EXPECT_TRUE(dc::test::matches_reference(c, "x_per_step", tr.xs[i], want_x[i])) << "call " << i;
  }
  EXPECT_TRUE(dc::test::matches_reference(c, "x_final", tr.final, c.io_tensor("x_final")));
}

INSTANTIATE_TEST_SUITE_P(All, SchedulerCase, ::testing::ValuesIn(dc::test::cases_where("schedulers", is_scheduler_case)),
                         [](const auto& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(SchedulerCase);

// The schedules of SD's PLMS-50 and the other samplers as `plan` shows them, and their refusals.
TEST(DiffusersSchedulers, CallListsAndRefusals) {
  dc::sampling::SamplerOptions o;
  o.name = "pndm";
  o.steps = 50;
  const auto plms50 = dc::sampling::make_call_schedule(o, 1000);
  EXPECT_EQ(plms50.num_calls(), 51);  // the paper's PLMS-50 is 51 UNet calls
  EXPECT_EQ(plms50.num_steps(), 50);
  EXPECT_EQ(plms50.calls[0].t, 981);
  EXPECT_EQ(plms50.calls[1].t, 961);
  EXPECT_TRUE(plms50.calls[1].extra);
  EXPECT_EQ(plms50.calls[2].t, 961);
  EXPECT_EQ(plms50.calls[50].t, 1);
  o.steps = 1;
  EXPECT_EQ(dc::sampling::make_call_schedule(o, 1000).num_calls(), 1);  // diffusers: one timestep, one call
  o.steps = 1000;  // leading spacing + 1 would ask for t = 1000
  EXPECT_THROW(dc::sampling::make_call_schedule(o, 1000), dc::Error);
  o.name = "euler";
  o.steps = 10;
  o.eta = 0.5;
  EXPECT_THROW(dc::sampling::make_call_schedule(o, 1000), dc::Error);
}
