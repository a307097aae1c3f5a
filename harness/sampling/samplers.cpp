#include "harness/sampling/samplers.h"

#include <cmath>

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
  return [model, cond, uncond, scale](const torch::Tensor& x, const torch::Tensor& t, int call) {
    const torch::Tensor x_in = torch::cat({x, x});
    const torch::Tensor t_in = torch::cat({t, t});
    const torch::Tensor c_in = torch::cat({uncond, cond});
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

namespace {
// The ddim repo's loop (functions/denoising.py): walk reversed(seq) with seq_next = [-1] + seq[:-1];
// alpha(t) = alphas_cumprod[t] and alpha(-1) = 1, read once on the CPU (no device sync per step).
// One model call, then one noise draw, per step.
template <typename Step>
Trajectory ddim_repo_loop(const torch::Tensor& x_T, const std::vector<int64_t>& seq, const torch::Tensor& ac, const EpsFn& model,
                          const NoiseFn& noise, bool keep, const Step& step) {
  const torch::Tensor acc = ac.to(torch::kCPU, torch::kFloat32).contiguous();
  const float* a = acc.data_ptr<float>();
  auto alpha = [&](int64_t t) {
    TORCH_CHECK(t < acc.size(0), "timestep ", t, " is outside the ", acc.size(0), "-step schedule");
    return t < 0 ? 1.0f : a[t];
  };
  Trajectory tr;
  torch::Tensor x = x_T;
  const int n = static_cast<int>(seq.size());
  for (int s = 0; s < n; ++s) {
    const int64_t t = seq[n - 1 - s], t_next = n - 2 - s >= 0 ? seq[n - 2 - s] : -1;
    const torch::Tensor tt = timesteps_like(x, t);
    const torch::Tensor eps = model(x, tt, tr.model_calls++);
    const StepOut o = step(x, eps, alpha(t), alpha(t_next), t, noise(x));
    x = o.x;
    if (keep) {
      tr.xs.push_back(o.x);
      tr.x0s.push_back(o.x0);
      tr.model_t.push_back(tt);
    }
  }
  tr.final = x;
  return tr;
}
}  // namespace

Trajectory ddim_repo_sample(const torch::Tensor& x_T, const std::vector<int64_t>& seq, const torch::Tensor& ac,
                            double eta, const EpsFn& model, const NoiseFn& noise, bool keep) {
  return ddim_repo_loop(x_T, seq, ac, model, noise, keep,
                        [eta](const torch::Tensor& x, const torch::Tensor& e, float at, float an, int64_t, const torch::Tensor& z) {
                          return ddim_repo_step(x, e, at, an, eta, z);
                        });
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

Trajectory ddpm_ancestral_sample(const torch::Tensor& x_T, const std::vector<int64_t>& seq, const torch::Tensor& ac,
                                 const EpsFn& model, const NoiseFn& noise, bool keep) {
  return ddim_repo_loop(x_T, seq, ac, model, noise, keep,
                        [](const torch::Tensor& x, const torch::Tensor& e, float at, float an, int64_t t, const torch::Tensor& z) {
                          return ddpm_ancestral_step(x, e, at, an, t == 0, z);
                        });
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

Trajectory ldm_ddim_sample(const torch::Tensor& x_T, const LdmDdimSchedule& s, const EpsFn& model,
                           const NoiseFn& noise, bool keep) {
  Trajectory tr;
  torch::Tensor x = x_T;
  const int n = static_cast<int>(s.timesteps.size());
  for (int i = 0; i < n; ++i) {
    const int index = n - 1 - i;
    const torch::Tensor tt = timesteps_like(x, s.timesteps[index]);
    const torch::Tensor e = model(x, tt, tr.model_calls++);
    const StepOut o = ldm_ddim_step(x, e, s.alphas[index], s.alphas_prev[index], static_cast<float>(s.sigmas[index]),
                                    s.sqrt_one_minus_alphas[index], noise(x));
    x = o.x;
    if (keep) {
      tr.xs.push_back(o.x);
      tr.x0s.push_back(o.x0);
      tr.model_t.push_back(tt);
    }
  }
  tr.final = x;
  return tr;
}

Trajectory ldm_plms_sample(const torch::Tensor& x_T, const LdmDdimSchedule& s, const EpsFn& model,
                           const NoiseFn& noise, bool keep) {
  for (double sg : s.sigmas)
    if (sg != 0.0f) throw Error("PLMS needs eta = 0 (ldm PLMSSampler: 'ddim_eta must be 0 for PLMS')");
  Trajectory tr;
  torch::Tensor x = x_T;
  const int n = static_cast<int>(s.timesteps.size());
  std::vector<torch::Tensor> old_eps;
  auto update = [&](const torch::Tensor& e, int index) {
    return ldm_ddim_step(x, e, s.alphas[index], s.alphas_prev[index], static_cast<float>(s.sigmas[index]), s.sqrt_one_minus_alphas[index],
                         noise(x));
  };
  for (int i = 0; i < n; ++i) {
    const int index = n - 1 - i;
    const torch::Tensor tt = timesteps_like(x, s.timesteps[index]);
    const torch::Tensor t_next = timesteps_like(x, s.timesteps[std::max(index - 1, 0)]);  // time_range[min(i+1, n-1)]
    const torch::Tensor e_t = model(x, tt, tr.model_calls++);
    if (keep) tr.model_t.push_back(tt);
    torch::Tensor e_prime;
    if (old_eps.empty()) {
      const StepOut o = update(e_t, index);  // Pseudo Improved Euler (2nd order)
      const torch::Tensor e_next = model(o.x, t_next, tr.model_calls++);
      if (keep) tr.model_t.push_back(t_next);
      e_prime = (e_t + e_next) / 2;
    } else if (old_eps.size() == 1) {
      e_prime = (3 * e_t - old_eps.back()) / 2;  // 2nd order Adams-Bashforth
    } else if (old_eps.size() == 2) {
      e_prime = (23 * e_t - 16 * old_eps.back() + 5 * old_eps[old_eps.size() - 2]) / 12;
    } else {
      e_prime = (55 * e_t - 59 * old_eps.back() + 37 * old_eps[old_eps.size() - 2] - 9 * old_eps[old_eps.size() - 3]) / 24;
    }
    const StepOut o = update(e_prime, index);
    old_eps.push_back(e_t);
    if (old_eps.size() >= 4) old_eps.erase(old_eps.begin());
    x = o.x;
    if (keep) {
      tr.xs.push_back(o.x);
      tr.x0s.push_back(o.x0);
    }
  }
  tr.final = x;
  return tr;
}

}  // namespace dc::sampling
