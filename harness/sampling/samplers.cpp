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
torch::Tensor timesteps_like(const torch::Tensor& x, int64_t t) {
  return torch::full({x.size(0)}, static_cast<float>(t), x.options().dtype(torch::kFloat32));
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
  if (sampler_info(s.sampler.name).uses_spacing) {  // ddim repo: compute_alpha(t), alpha(-1) = 1
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

std::unique_ptr<Stepper> make_stepper(const SamplerOptions& o) {
  if (o.name == "ddim") return std::make_unique<DdimRepoStepper>(o.eta);
  if (o.name == "ddpm") return std::make_unique<DdpmAncestralStepper>();
  if (o.name == "ldm_ddim") return std::make_unique<LdmDdimStepper>();
  if (o.name == "plms") return std::make_unique<PlmsStepper>();
  sampler_info(o.name);  // throws, listing the known names
  TORCH_INTERNAL_ASSERT(false, "sampler '", o.name, "' is registered but has no stepper");
}

}  // namespace

Trajectory sample(const torch::Tensor& x_T, const CallSchedule& s, const EpsFn& model, const NoiseFn& noise, bool keep) {
  TORCH_INTERNAL_ASSERT(s.has_alphas, "sampling::sample: the call schedule has no coefficients (attach_alphas)");
  const auto stepper = make_stepper(s.sampler);
  Trajectory tr;
  torch::Tensor x = x_T;
  for (const ModelCall& c : s.calls) {
    const torch::Tensor tt = timesteps_like(x, c.t);
    const torch::Tensor eps = model(x, tt, tr.model_calls++);
    std::optional<StepOut> step;
    x = stepper->after_call(c, x, eps, noise, step);
    if (keep) {
      tr.model_t.push_back(tt);
      if (step) {
        tr.xs.push_back(step->x);
        tr.x0s.push_back(step->x0);
      }
    }
  }
  tr.final = x;
  return tr;
}

}  // namespace dc::sampling
