// Samplers as pure step functions and ONE loop over an epsilon model and a per-call schedule
// (harness/sampling/call_schedule.h; the samplers are chosen there by name). The noise every
// step draws comes from a NoiseFn, so a run is reproducible from its seeds and a reference's
// recorded noise can be replayed. Every arithmetic step follows the reference's precision (noted
// per function); fixtures in tests/fixtures/{samplers,ddpm} pin them.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "harness/sampling/call_schedule.h"

namespace dc::sampling {

// eps = model(x, t, call): t is [B] timesteps (float32 values), `call` the model-call index from 0.
using EpsFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t, int call)>;
// A standard normal tensor shaped like `like`.
using NoiseFn = std::function<torch::Tensor(const torch::Tensor& like)>;
// Conditional model: eps = model(x, t, cond, call).
using CondEpsFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond, int call)>;

// Classifier-free guidance, batched (ldm DDIMSampler.p_sample_ddim): x_in = cat([x, x]),
// c_in = cat([uncond, cond]) (unconditional first), e = e_u + scale * (e_c - e_u). Off (one plain
// conditional call) when `uncond` is undefined or scale == 1.
EpsFn classifier_free_guidance(CondEpsFn model, torch::Tensor cond, torch::Tensor uncond, double scale);

NoiseFn torch_noise(uint64_t seed);                          // one generator for the whole batch
// Row r of every draw comes from sample (first_sample + r)'s own generator, seeded from
// (seed, sample index): results do not depend on the batch size or on sharding. The first draw
// of a sample is its initial noise x_T.
NoiseFn per_sample_noise(uint64_t seed, int64_t first_sample);
uint64_t sample_seed(uint64_t seed, int64_t sample_index);  // splitmix64 mix of the two
NoiseFn replay_noise(std::vector<torch::Tensor> recorded);   // fixtures: the reference's draws

struct Trajectory {
  torch::Tensor final;
  std::vector<torch::Tensor> xs;   // x after each step
  std::vector<torch::Tensor> x0s;  // predicted x0 at each step
  std::vector<torch::Tensor> model_t;  // t handed to each model call
  int model_calls = 0;
};

struct StepOut {
  torch::Tensor x;
  torch::Tensor x0;
};

// ---- ddim repo (ermongroup/ddim functions/denoising.py; DeepCache experiments/ddpm) --------------
// All in float32. a_t, a_next: float32 scalars (a_next = 1 for t_next = -1).
//   x0 = (x - eps*sqrt(1-a_t)) / sqrt(a_t)
//   c1 = eta*sqrt((1 - a_t/a_next)*(1-a_next)/(1-a_t)),  c2 = sqrt(1 - a_next - c1^2)
//   x_next = sqrt(a_next)*x0 + c1*noise + c2*eps
StepOut ddim_repo_step(const torch::Tensor& x, const torch::Tensor& eps, float a_t, float a_next, double eta,
                       const torch::Tensor& noise);

// ddpm_steps (ancestral): x0 = clamp(sqrt(1/a_t) x - sqrt(1/a_t - 1) eps, -1, 1);
// beta_t = 1 - a_t/a_next; mean = (sqrt(a_next) beta_t x0 + sqrt(1-beta_t)(1-a_next) x) / (1-a_t);
// x_next = mean + [t != 0] * exp(0.5 log beta_t) * noise.
StepOut ddpm_ancestral_step(const torch::Tensor& x, const torch::Tensor& eps, float a_t, float a_next, bool last,
                            const torch::Tensor& noise);

// ---- latent-diffusion DDIMSampler / PLMSSampler (ldm/models/diffusion/{ddim,plms}.py) --------
struct LdmDdimSchedule {
  std::vector<int64_t> timesteps;  // ascending, with the +1
  std::vector<float> alphas;       // alphas_cumprod[timesteps] (float32)
  std::vector<float> alphas_prev;  // [ac[0]] + ac[timesteps[:-1]] (float32 values kept in float64, cast at use)
  std::vector<double> sigmas;      // eta*sqrt((1-a_prev)/(1-a)*(1-a/a_prev)) in float64, cast to float32 at use
  std::vector<float> sqrt_one_minus_alphas;  // float32 sqrt(1 - alphas)
};
// alphas_cumprod: float32 [T] (register_schedule: float64 cumprod cast to float32).
LdmDdimSchedule ldm_ddim_schedule(const torch::Tensor& alphas_cumprod, int steps, double eta);

// p_sample_ddim's update (float32): pred_x0 = (x - sqrt(1-a_t) e) / sqrt(a_t);
// x_prev = sqrt(a_prev) pred_x0 + sqrt(1 - a_prev - sigma^2) e + sigma noise.
StepOut ldm_ddim_step(const torch::Tensor& x, const torch::Tensor& e, float a_t, float a_prev, float sigma,
                      float sqrt_one_minus_at, const torch::Tensor& noise);

// ---- the one loop ------------------------------------------------------------------------------
// Fills every call's float32 coefficients from the family's alphas_cumprod (float32 [T]) the way
// the sampler's reference reads them: ddim/ddpm a_t = ac[t], a_next = ac[t_next] (1 after the
// last step); ldm_ddim/plms through ldm_ddim_schedule.
void attach_alphas(CallSchedule& schedule, const torch::Tensor& alphas_cumprod);

// Runs a generation: for every call, eps = model(x_in, t, call), then the sampler's step turns it
// into the next model input. Steps:
//   ddim      ddim_repo_step, one noise draw per step after the model call, even when eta = 0
//   ddpm      ddpm_ancestral_step (no noise added at t = 0, but drawn)
//   ldm_ddim  ldm_ddim_step, one draw per step
//   plms      step 0: update with e_t (a draw), a second call there, the mean of both (a draw);
//             later: Adams-Bashforth on the raw e_t of past steps (at most 3 kept), one draw
// keep_steps: record x and x0 after every step and t of every call in the trajectory.
Trajectory sample(const torch::Tensor& x_T, const CallSchedule& schedule, const EpsFn& model, const NoiseFn& noise,
                  bool keep_steps = true);

}  // namespace dc::sampling
