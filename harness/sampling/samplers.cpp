#include "harness/sampling/samplers.h"

#include <cmath>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "common/error.h"
#include "harness/sampling/schedule.h"

namespace dc::sampling {

namespace {
torch::Tensor f32(const torch::Tensor& like, float v) { return torch::full({}, v, like.options().dtype(torch::kFloat32)); }
torch::Tensor timesteps_like(const torch::Tensor& x, const ModelCall& c) {
  const float t = c.model_t >= 0 ? static_cast<float>(c.model_t) : static_cast<float>(c.t);
  return torch::full({x.size(0)}, t, x.options().dtype(torch::kFloat32));
}
bool is_diffusers_sampler(const std::string& name) {
  return name == "pndm" || name == "diffusers_ddim" || name == "dpmpp_2m" || name == "euler";
}
// np.interp(x, arange(len(fp)), fp) in float64, as numpy computes it (a point on the grid takes its
// value; else slope * (x - xp[j]) + fp[j]).
double np_interp_grid(double x, const std::vector<float>& fp) {
  const int64_t n = static_cast<int64_t>(fp.size());
  if (x <= 0) return fp.front();
  if (x >= static_cast<double>(n - 1)) return fp.back();
  const int64_t j = static_cast<int64_t>(std::floor(x));
  if (static_cast<double>(j) == x) return fp[j];
  const double slope = (static_cast<double>(fp[j + 1]) - static_cast<double>(fp[j])) / 1.0;
  return slope * (x - static_cast<double>(j)) + static_cast<double>(fp[j]);
}
// The diffusers schedulers' coefficients (SD1.5 config: set_alpha_to_one false, so the alpha
// after t = 0 is alphas_cumprod[0]; sigmas = ((1 - ac) / ac) ** 0.5 in float32).
void attach_diffusers(CallSchedule& s, const torch::Tensor& ac) {
  const float* a = ac.data_ptr<float>();
  const int64_t T = ac.size(0);
  const torch::Tensor sig_t = ((1 - ac) / ac).pow(0.5).contiguous();
  const std::vector<float> sig(sig_t.data_ptr<float>(), sig_t.data_ptr<float>() + T);
  const std::string& name = s.sampler.name;
  const int64_t ratio = T / s.sampler.steps;  // num_train_timesteps // num_inference_steps
  const int n = s.num_calls();
  for (int i = 0; i < n; ++i) {
    ModelCall& c = s.calls[i];
    if (name == "pndm" || name == "diffusers_ddim") {
      // step_plms' counter 1 (the repeated timestep) steps from t + ratio to t, from the sample it kept.
      const int64_t from = c.extra ? c.t + ratio : c.t, to = c.extra ? c.t : c.t - ratio;
      if (from >= T) throw Error(fmt::format("sampler {}: timestep {} is outside the {}-step schedule", name, from, T));
      c.a_t = a[from];
      c.a_next = to >= 0 ? a[to] : a[0];
    } else if (name == "dpmpp_2m") {
      c.k_sigma = sig[c.t];  // np.interp on the grid: the value itself
      c.k_sigma_next = i + 1 < n ? sig[s.calls[i + 1].t] : sig[0];  // 0.24: the final sigma is sigma(t = 0)
      c.k_sigma_prev = i > 0 ? s.calls[i - 1].k_sigma : 0.0f;
      c.order = (i == 0 || (i == n - 1 && n < 15)) ? 1 : 2;  // lower_order_nums, lower_order_final
      c.a_t = a[c.t];
    } else {  // euler
      c.k_sigma = static_cast<float>(np_interp_grid(c.model_t, sig));
      c.a_t = 1.0f / (c.k_sigma * c.k_sigma + 1.0f);
    }
  }
  if (name == "euler") {
    float max_sigma = 0.0f;
    for (int i = 0; i < n; ++i) {
      s.calls[i].k_sigma_next = i + 1 < n ? s.calls[i + 1].k_sigma : 0.0f;
      max_sigma = std::max(max_sigma, s.calls[i].k_sigma);
    }
    s.init_noise_sigma = max_sigma;  // `linspace` spacing: max(sigmas)
  }
}
}  // namespace

EpsFn classifier_free_guidance(CondEpsFn model, torch::Tensor cond, torch::Tensor uncond, double scale) {
  if (!uncond.defined() || scale == 1.0)
    return [model, cond](const torch::Tensor& x, const torch::Tensor& t, int call) { return model(x, t, cond, call); };
  const torch::Tensor c_in = torch::cat({uncond, cond});  // the same at every call: concatenated once
  return [model, c_in, scale](const torch::Tensor& x, const torch::Tensor& t, int call) {
    const torch::Tensor x_in = torch::cat({x, x});
    const torch::Tensor t_in = torch::cat({t, t});
    const auto e = model(x_in, t_in, c_in, call).chunk(2);
    return e[0] + scale * (e[1] - e[0]);
  };
}

NoiseFn torch_noise(uint64_t seed) {
  auto gen = std::make_shared<at::Generator>(at::detail::createCPUGenerator(seed));
  return [gen](const torch::Tensor& like) {
    return torch::randn(like.sizes(), *gen, torch::TensorOptions().dtype(torch::kFloat32)).to(like.options());
  };
}

uint64_t sample_seed(uint64_t seed, int64_t sample_index) {
  auto splitmix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  return splitmix(seed ^ splitmix(static_cast<uint64_t>(sample_index)));
}

NoiseFn per_sample_noise(uint64_t seed, int64_t first_sample) {
  auto gens = std::make_shared<std::vector<at::Generator>>();
  return [gens, seed, first_sample](const torch::Tensor& like) {
    const int64_t b = like.size(0);
    while (static_cast<int64_t>(gens->size()) < b)
      gens->push_back(at::detail::createCPUGenerator(sample_seed(seed, first_sample + static_cast<int64_t>(gens->size()))));
    std::vector<torch::Tensor> rows;
    rows.reserve(b);
    const auto shape = like.sizes().slice(1);
    for (int64_t r = 0; r < b; ++r) rows.push_back(torch::randn(shape, (*gens)[r], torch::TensorOptions().dtype(torch::kFloat32)));
    return torch::stack(rows).to(like.options());
  };
}

NoiseFn replay_noise(std::vector<torch::Tensor> recorded) {
  auto store = std::make_shared<std::vector<torch::Tensor>>(std::move(recorded));
  auto next = std::make_shared<std::size_t>(0);
  return [store, next](const torch::Tensor& like) {
    if (*next >= store->size())
      throw Error(fmt::format("replayed noise exhausted after {} draws", store->size()));
    torch::Tensor n = (*store)[(*next)++];
    TORCH_CHECK(n.sizes() == like.sizes(), "replayed noise has shape ", n.sizes(), ", the sampler needs ", like.sizes());
    return n.to(like.options());
  };
}

// ---- ddim repo ------------------------------------------------------------------------------
StepOut ddim_repo_step(const torch::Tensor& x, const torch::Tensor& eps, float a_t_v, float a_next_v, double eta,
                       const torch::Tensor& noise) {
  const torch::Tensor at = f32(x, a_t_v), at_next = f32(x, a_next_v);
  torch::Tensor x0 = (x - eps * (1 - at).sqrt()) / at.sqrt();
  const torch::Tensor c1 = eta * ((1 - at / at_next) * (1 - at_next) / (1 - at)).sqrt();
  const torch::Tensor c2 = ((1 - at_next) - c1.pow(2)).sqrt();
  torch::Tensor xn = at_next.sqrt() * x0 + c1 * noise + c2 * eps;
  return {xn, x0};
}

StepOut ddpm_ancestral_step(const torch::Tensor& x, const torch::Tensor& e, float a_t_v, float a_next_v, bool last,
                            const torch::Tensor& noise) {
  const torch::Tensor at = f32(x, a_t_v), atm1 = f32(x, a_next_v);
  const torch::Tensor beta_t = 1 - at / atm1;
  torch::Tensor x0 = (1.0 / at).sqrt() * x - (1.0 / at - 1).sqrt() * e;
  x0 = torch::clamp(x0, -1, 1);
  const torch::Tensor mean = ((atm1.sqrt() * beta_t) * x0 + ((1 - beta_t).sqrt() * (1 - atm1)) * x) / (1.0 - at);
  const torch::Tensor mask = f32(x, last ? 0.0f : 1.0f);
  return {mean + mask * torch::exp(0.5 * beta_t.log()) * noise, x0};
}

// ---- latent-diffusion -----------------------------------------------------------------------
LdmDdimSchedule ldm_ddim_schedule(const torch::Tensor& alphas_cumprod, int steps, double eta) {
  LdmDdimSchedule s;
  const int64_t T = alphas_cumprod.size(0);
  s.timesteps = ldm_ddim_timesteps(steps, static_cast<int>(T));
  const torch::Tensor ac = alphas_cumprod.to(torch::kFloat32).contiguous();
  const float* p = ac.data_ptr<float>();
  for (std::size_t i = 0; i < s.timesteps.size(); ++i) {
    if (s.timesteps[i] >= T)
      throw Error(fmt::format("ldm DDIM: timestep {} is outside the {}-step schedule (too many steps?)", s.timesteps[i], T));
    const float a = p[s.timesteps[i]];
    const float a_prev = i == 0 ? p[0] : p[s.timesteps[i - 1]];
    s.alphas.push_back(a);
    s.alphas_prev.push_back(a_prev);
    // float64 arithmetic on float32 values (numpy), then torch.full(..., float32).
    // The reference evaluates (1 - alphas_prev) / (1 - alphas) with numpy f64 on the left and a
    // float32 torch tensor on the right, which torch turns into reciprocal(1 - alphas) (float32)
    // * (1 - alphas_prev) (Tensor.__rtruediv__); the rest is float64.
    const double ad = a, apd = a_prev;
    const double recip = static_cast<double>(1.0f / (1.0f - a));
    s.sigmas.push_back(eta * std::sqrt(recip * (1 - apd) * (1 - ad / apd)));
    s.sqrt_one_minus_alphas.push_back(std::sqrt(1.0f - a));  // np.sqrt on float32
  }
  return s;
}

StepOut ldm_ddim_step(const torch::Tensor& x, const torch::Tensor& e, float a_t_v, float a_prev_v, float sigma_v,
                      float sqrt_one_minus_at_v, const torch::Tensor& noise) {
  const torch::Tensor a_t = f32(x, a_t_v), a_prev = f32(x, a_prev_v), sigma_t = f32(x, sigma_v),
                      sqrt_one_minus_at = f32(x, sqrt_one_minus_at_v);
  const torch::Tensor pred_x0 = (x - sqrt_one_minus_at * e) / a_t.sqrt();
  const torch::Tensor dir_xt = (1. - a_prev - sigma_t.pow(2)).sqrt() * e;
  return {a_prev.sqrt() * pred_x0 + dir_xt + sigma_t * noise, pred_x0};
}

// ---- the one loop ------------------------------------------------------------------------------
void attach_alphas(CallSchedule& s, const torch::Tensor& alphas_cumprod) {
  const torch::Tensor acc = alphas_cumprod.to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t T = acc.size(0);
  if (T != s.num_timesteps)
    throw Error(fmt::format("sampler {}: the schedule was made for T = {}, the model's alphas_cumprod has {}", s.sampler.name,
                            s.num_timesteps, T));
  const float* a = acc.data_ptr<float>();
  if (is_diffusers_sampler(s.sampler.name)) {
    attach_diffusers(s, acc);
  } else if (sampler_info(s.sampler.name).uses_spacing) {  // ddim repo: compute_alpha(t), alpha(-1) = 1
    for (auto& c : s.calls) {
      c.a_t = a[c.t];
      c.a_next = c.t_next < 0 ? 1.0f : a[c.t_next];
    }
  } else {
    const LdmDdimSchedule l = ldm_ddim_schedule(acc, s.sampler.steps, s.sampler.eta);
    const int n = static_cast<int>(l.timesteps.size());
    for (auto& c : s.calls) {
      const int index = n - 1 - c.step;
      c.a_t = l.alphas[index];
      c.a_next = l.alphas_prev[index];
      c.sigma = static_cast<float>(l.sigmas[index]);
      c.sqrt_one_minus_a_t = l.sqrt_one_minus_alphas[index];
    }
  }
  s.has_alphas = true;
}

namespace {

// One sampler's state across the calls of a generation: takes the model's output for a call and
// returns the next model input; `step` is set when the call completed a denoising step.
class Stepper {
 public:
  virtual ~Stepper() = default;
  // The first model input from the initial noise (euler scales both).
  virtual torch::Tensor begin(const torch::Tensor& x_T, const CallSchedule&) { return x_T; }
  virtual torch::Tensor after_call(const ModelCall& c, const torch::Tensor& x_in, const torch::Tensor& eps,
                                   const NoiseFn& noise, std::optional<StepOut>& step) = 0;
};

class DdimRepoStepper : public Stepper {
 public:
  explicit DdimRepoStepper(double eta) : eta_(eta) {}
  torch::Tensor after_call(const ModelCall& c, const torch::Tensor& x, const torch::Tensor& eps, const NoiseFn& noise,
                           std::optional<StepOut>& step) override {
    step = ddim_repo_step(x, eps, c.a_t, c.a_next, eta_, noise(x));
    return step->x;
  }

 private:
  double eta_;
};

class DdpmAncestralStepper : public Stepper {
 public:
  torch::Tensor after_call(const ModelCall& c, const torch::Tensor& x, const torch::Tensor& eps, const NoiseFn& noise,
                           std::optional<StepOut>& step) override {
    step = ddpm_ancestral_step(x, eps, c.a_t, c.a_next, c.t == 0, noise(x));
    return step->x;
  }
};

StepOut ldm_update(const ModelCall& c, const torch::Tensor& x, const torch::Tensor& e, const NoiseFn& noise) {
  return ldm_ddim_step(x, e, c.a_t, c.a_next, c.sigma, c.sqrt_one_minus_a_t, noise(x));
}

class LdmDdimStepper : public Stepper {
 public:
  torch::Tensor after_call(const ModelCall& c, const torch::Tensor& x, const torch::Tensor& eps, const NoiseFn& noise,
                           std::optional<StepOut>& step) override {
    step = ldm_update(c, x, eps, noise);
    return step->x;
  }
};

class PlmsStepper : public Stepper {
 public:
  torch::Tensor after_call(const ModelCall& c, const torch::Tensor& x_in, const torch::Tensor& e, const NoiseFn& noise,
                           std::optional<StepOut>& step) override {
    torch::Tensor e_prime;
    if (c.extra) {  // step 0's second call: Pseudo Improved Euler (2nd order) from the step's x
      e_prime = (first_e_ + e) / 2;
      step = ldm_update(c, x_, e_prime, noise);
      push(first_e_);
      x_ = step->x;
      return x_;
    }
    x_ = x_in;
    if (old_eps_.empty()) {  // step 0's first call: a trial update, evaluated at the next timestep
      first_e_ = e;
      return ldm_update(c, x_, e, noise).x;
    }
    if (old_eps_.size() == 1) {
      e_prime = (3 * e - old_eps_.back()) / 2;  // 2nd order Adams-Bashforth
    } else if (old_eps_.size() == 2) {
      e_prime = (23 * e - 16 * old_eps_.back() + 5 * old_eps_[old_eps_.size() - 2]) / 12;
    } else {
      e_prime = (55 * e - 59 * old_eps_.back() + 37 * old_eps_[old_eps_.size() - 2] - 9 * old_eps_[old_eps_.size() - 3]) / 24;
    }
    step = ldm_update(c, x_, e_prime, noise);
    push(e);
    x_ = step->x;
    return x_;
  }

 private:
  void push(const torch::Tensor& e) {
    old_eps_.push_back(e);
    if (old_eps_.size() >= 4) old_eps_.erase(old_eps_.begin());
  }
  torch::Tensor x_, first_e_;
  std::vector<torch::Tensor> old_eps_;
};

// ---- diffusers 0.24 schedulers (SD1.5 config): float32 0-dim tensors, in the reference's order --

// PNDMScheduler.step_plms with skip_prk_steps (_get_prev_sample, epsilon prediction).
class PndmStepper : public Stepper {
 public:
  torch::Tensor after_call(const ModelCall& c, const torch::Tensor& x, const torch::Tensor& e, const NoiseFn&,
                           std::optional<StepOut>& step) override {
    if (!c.extra) {  // counter != 1: ets = ets[-3:] + [e]
      if (ets_.size() > 3) ets_.erase(ets_.begin());
      ets_.push_back(e);
    }
    torch::Tensor sample = x, mo;
    const std::size_t k = ets_.size();
    if (k == 1 && !c.extra) {
      mo = e;
      cur_ = x;
    } else if (k == 1 && c.extra) {
      mo = (e + ets_.back()) / 2;
      sample = cur_;
      cur_ = torch::Tensor();
    } else if (k == 2) {
      mo = (3 * ets_[1] - ets_[0]) / 2;
    } else if (k == 3) {
      mo = (23 * ets_[2] - 16 * ets_[1] + 5 * ets_[0]) / 12;
    } else {
      mo = (1.0 / 24) * (55 * ets_[3] - 59 * ets_[2] + 37 * ets_[1] - 9 * ets_[0]);
    }
    const torch::Tensor a_t = f32(x, c.a_t), a_prev = f32(x, c.a_next);
    const torch::Tensor beta_t = 1 - a_t, beta_prev = 1 - a_prev;
    const torch::Tensor sample_coeff = (a_prev / a_t).pow(0.5);
    const torch::Tensor denom = a_t * beta_prev.pow(0.5) + (a_t * beta_t * a_prev).pow(0.5);
    step = StepOut{sample_coeff * sample - (a_prev - a_t) * mo / denom, (sample - beta_t.pow(0.5) * mo) / a_t.pow(0.5)};
    return step->x;
  }

 private:
  std::vector<torch::Tensor> ets_;
  torch::Tensor cur_;
};

// DDIMScheduler.step (epsilon, clip_sample False): a noise draw only when eta > 0, as diffusers.
class DiffusersDdimStepper : public Stepper {
 public:
  explicit DiffusersDdimStepper(double eta) : eta_(eta) {}
  torch::Tensor after_call(const ModelCall& c, const torch::Tensor& x, const torch::Tensor& e, const NoiseFn& noise,
                           std::optional<StepOut>& step) override {
    const torch::Tensor a_t = f32(x, c.a_t), a_prev = f32(x, c.a_next);
    const torch::Tensor beta_t = 1 - a_t, beta_prev = 1 - a_prev;
    const torch::Tensor x0 = (x - beta_t.pow(0.5) * e) / a_t.pow(0.5);
    const torch::Tensor variance = (beta_prev / beta_t) * (1 - a_t / a_prev);
    const torch::Tensor std_dev = eta_ * variance.pow(0.5);
    const torch::Tensor direction = (1 - a_prev - std_dev.pow(2)).pow(0.5) * e;
    torch::Tensor prev = a_prev.pow(0.5) * x0 + direction;
    if (eta_ > 0) prev = prev + std_dev * noise(x);
    step = StepOut{prev, x0};
    return prev;
  }

 private:
  double eta_;
};

// (alpha_t, sigma_t) of a sigma: 1 / (sigma^2 + 1) ** 0.5 (Tensor.__rtruediv__: a reciprocal), sigma * alpha.
std::pair<torch::Tensor, torch::Tensor> alpha_sigma(const torch::Tensor& sigma) {
  const torch::Tensor alpha = torch::reciprocal((sigma.pow(2) + 1).pow(0.5));
  return {alpha, sigma * alpha};
}

// DPMSolverMultistepScheduler, dpmsolver++ order 2, midpoint: the data prediction x0 of each call,
// a first-order update on the first (and, below 15 steps, the last) step, else the 2M update.
class DpmSolverPP2MStepper : public Stepper {
 public:
  torch::Tensor after_call(const ModelCall& c, const torch::Tensor& x, const torch::Tensor& e, const NoiseFn&,
                           std::optional<StepOut>& step) override {
    const auto [alpha_s0, sigma_s0] = alpha_sigma(f32(x, c.k_sigma));
    const torch::Tensor x0 = (x - sigma_s0 * e) / alpha_s0;
    const auto [alpha_t, sigma_t] = alpha_sigma(f32(x, c.k_sigma_next));
    const torch::Tensor lambda_t = torch::log(alpha_t) - torch::log(sigma_t), lambda_s0 = torch::log(alpha_s0) - torch::log(sigma_s0);
    const torch::Tensor h = lambda_t - lambda_s0;
    torch::Tensor x_t;
    if (c.order == 1 || !prev_x0_.defined()) {
      x_t = (sigma_t / sigma_s0) * x - (alpha_t * (torch::exp(-h) - 1.0)) * x0;
    } else {
      const auto [alpha_s1, sigma_s1] = alpha_sigma(f32(x, c.k_sigma_prev));
      const torch::Tensor lambda_s1 = torch::log(alpha_s1) - torch::log(sigma_s1);
      const torch::Tensor r0 = (lambda_s0 - lambda_s1) / h;
      const torch::Tensor d1 = torch::reciprocal(r0) * (x0 - prev_x0_);
      x_t = (sigma_t / sigma_s0) * x - (alpha_t * (torch::exp(-h) - 1.0)) * x0 - 0.5 * (alpha_t * (torch::exp(-h) - 1.0)) * d1;
    }
    prev_x0_ = x0;
    step = StepOut{x_t, x0};
    return x_t;
  }

 private:
  torch::Tensor prev_x0_;
};

// EulerDiscreteScheduler (s_churn 0): the model sees x / sqrt(sigma^2 + 1); x0 = x - sigma e,
// x_next = x + (x - x0) / sigma * (sigma_next - sigma). Each step draws its (unused) noise, as the
// reference does from the pipeline's generator.
class EulerStepper : public Stepper {
 public:
  torch::Tensor begin(const torch::Tensor& x_T, const CallSchedule& s) override {
    x_ = x_T * f32(x_T, s.init_noise_sigma);
    const float first = s.calls.empty() ? 0.0f : s.calls.front().k_sigma;
    return x_ / (f32(x_T, first).pow(2) + 1).pow(0.5);
  }
  torch::Tensor after_call(const ModelCall& c, const torch::Tensor&, const torch::Tensor& e, const NoiseFn& noise,
                           std::optional<StepOut>& step) override {
    const torch::Tensor sigma = f32(x_, c.k_sigma);
    noise(x_);
    const torch::Tensor sigma_hat = sigma * (0.0 + 1);
    const torch::Tensor x0 = x_ - sigma_hat * e;
    const torch::Tensor derivative = (x_ - x0) / sigma_hat;
    const torch::Tensor dt = f32(x_, c.k_sigma_next) - sigma_hat;
    x_ = x_ + derivative * dt;
    step = StepOut{x_, x0};
    return x_ / (f32(x_, c.k_sigma_next).pow(2) + 1).pow(0.5);
  }

 private:
  torch::Tensor x_;
};

std::unique_ptr<Stepper> make_stepper(const SamplerOptions& o) {
  if (o.name == "ddim") return std::make_unique<DdimRepoStepper>(o.eta);
  if (o.name == "ddpm") return std::make_unique<DdpmAncestralStepper>();
  if (o.name == "ldm_ddim") return std::make_unique<LdmDdimStepper>();
  if (o.name == "plms") return std::make_unique<PlmsStepper>();
  if (o.name == "pndm") return std::make_unique<PndmStepper>();
  if (o.name == "diffusers_ddim") return std::make_unique<DiffusersDdimStepper>(o.eta);
  if (o.name == "dpmpp_2m") return std::make_unique<DpmSolverPP2MStepper>();
  if (o.name == "euler") return std::make_unique<EulerStepper>();
  sampler_info(o.name);  // throws, listing the known names
  TORCH_INTERNAL_ASSERT(false, "sampler '", o.name, "' is registered but has no stepper");
}

}  // namespace

Trajectory sample(const torch::Tensor& x_T, const CallSchedule& s, const EpsFn& model, const NoiseFn& noise, bool keep) {
  TORCH_INTERNAL_ASSERT(s.has_alphas, "sampling::sample: the call schedule has no coefficients (attach_alphas)");
  const auto stepper = make_stepper(s.sampler);
  Trajectory tr;
  torch::Tensor x = stepper->begin(x_T, s), state;
  for (const ModelCall& c : s.calls) {
    const torch::Tensor tt = timesteps_like(x, c);
    const torch::Tensor eps = model(x, tt, tr.model_calls++);
    std::optional<StepOut> step;
    x = stepper->after_call(c, x, eps, noise, step);
    if (step) state = step->x;
    if (keep) {
      tr.model_t.push_back(tt);
      if (step) {
        tr.xs.push_back(step->x);
        tr.x0s.push_back(step->x0);
      }
    }
  }
  tr.final = state.defined() ? state : x;  // the sample (euler's model input is scaled)
  return tr;
}

}  // namespace dc::sampling
