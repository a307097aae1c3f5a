// The sampler registry and the one per-call schedule type (DESIGN.md §5). Torch-free: config
// validation, `plan` and the resolved form of a run read it without building anything.
//
// A generation is a list of model calls. Each ModelCall says which timestep the model sees and
// which denoising step it belongs to; harness/sampling/samplers.h fills in each step's float32
// coefficients (alpha_t, alpha_next/prev, sigma) from the family's alphas_cumprod and runs the
// one sampling loop over it. DeepCache's full-step sets index these calls (PLMS-50 is 51 calls).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dc::sampling {

struct SamplerOptions {
  std::string name = "ddim";
  int steps = 100;
  std::string spacing = "quad";  // ddim, ddpm: the ddim repo's skip types (uniform | quad)
  double eta = 0.0;              // ddim, ldm_ddim
};

struct SamplerInfo {
  std::string name;
  std::string description;
  bool uses_spacing = false;  // sampler.spacing means something
  bool uses_eta = false;      // sampler.eta means something
};

// ddim     ermongroup/ddim generalized_steps (DeepCache experiments/ddpm): uniform/quad spacing
// ddpm     ermongroup/ddim ddpm_steps (ancestral), same spacings
// ldm_ddim latent-diffusion DDIMSampler: uniform discretisation with the +1 offset
// plms     latent-diffusion PLMSSampler: as ldm_ddim, eta 0, N steps = N+1 model calls
// The diffusers 0.24 schedulers with Stable Diffusion v1.5's scheduler config (scaled_linear betas,
// set_alpha_to_one false, steps_offset 1, clip_sample false), each with its class's spacing:
// pndm           PNDMScheduler, skip_prk_steps: `leading` spacing + 1, N steps = N+1 model calls
//                (the second timestep repeated; SD's PLMS-50 is 51 calls)
// diffusers_ddim DDIMScheduler: `leading` spacing + 1, eta
// dpmpp_2m       DPMSolverMultistepScheduler (dpmsolver++, order 2, midpoint): `linspace` spacing,
//                first and (below 15 steps) last step first order, final sigma = sigma(t = 0)
// euler          EulerDiscreteScheduler: `linspace` float timesteps, interpolated sigmas, input
//                scaled by 1/sqrt(sigma^2 + 1), initial noise times max sigma
const std::vector<SamplerInfo>& sampler_registry();
std::vector<std::string> sampler_names();
// Throws dc::Error naming the unknown sampler and listing the known ones.
const SamplerInfo& sampler_info(const std::string& name);

struct ModelCall {
  int64_t t = 0;       // the timestep handed to the model
  int step = 0;        // the denoising step this call belongs to (0 = the noisiest)
  bool extra = false;  // PLMS: step 0's second call, at the next step's timestep
  // The step's coefficients, float32 as the reference uses them (set by sampling::attach_alphas).
  int64_t t_next = -1;  // ddim repo: the next timestep (-1 after the last)
  float a_t = 0.0f, a_next = 0.0f;  // alphas_cumprod at t and at the step's target (prev) timestep
  float sigma = 0.0f, sqrt_one_minus_a_t = 0.0f;
  // The model's timestep when it is not an integer (euler's linspace spacing); < 0: t.
  double model_t = -1.0;
  // dpmpp_2m, euler: sigma = sqrt((1 - a) / a) of this call's step, the next and the previous one.
  float k_sigma = 0.0f, k_sigma_next = 0.0f, k_sigma_prev = 0.0f;
  int order = 1;  // dpmpp_2m: the solver order of this step
};

struct CallSchedule {
  SamplerOptions sampler;
  int num_timesteps = 1000;
  std::vector<ModelCall> calls;
  bool has_alphas = false;
  float init_noise_sigma = 1.0f;  // x_T = noise * init_noise_sigma (euler: the largest sigma)
  int num_calls() const { return static_cast<int>(calls.size()); }
  int num_steps() const { return calls.empty() ? 0 : calls.back().step + 1; }
  std::vector<int64_t> timesteps() const;  // t of every call, in call order
};

// The calls of one generation with a family's T. Every problem is a user error (dc::Error naming
// the sampler setting): unknown sampler or spacing, steps outside [1, T], eta < 0, eta != 0 for
// PLMS, a timestep outside the T-step schedule (ldm_ddim with steps = T would ask for t = T).
CallSchedule make_call_schedule(const SamplerOptions& options, int num_timesteps);

// The ddim repo's own sequence (ascending, as runners/diffusion.py builds it) as calls, for
// references that fix the sequence themselves.
CallSchedule ddim_repo_calls(const std::vector<int64_t>& seq, const SamplerOptions& options, int num_timesteps);

}  // namespace dc::sampling
