// Noise schedules and timestep spacings, computed in double the way each reference does, then
// cast where the reference casts.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "harness/sampling/timesteps.h"
#include "models/registry.h"

namespace dc::sampling {

std::vector<double> make_betas(BetaSchedule kind, int num_timesteps, double start, double end);

// ddim repo: alphas_cumprod as a float32 cumprod of float32 (1 - beta) (functions/denoising.py
// compute_alpha). Returns float32 [T].
torch::Tensor alphas_cumprod_f32(const std::vector<double>& betas);
// ldm/diffusers register_schedule: cumprod in float64 (returned as float64 [T]; the reference
// then casts to float32).
torch::Tensor alphas_cumprod_f64(const std::vector<double>& betas);

// A model family's alphas_cumprod as float32 [T], computed as its reference does (betas in
// double, then the family's cumprod precision: models::NoiseSchedule::cumprod).
torch::Tensor alphas_cumprod(const models::NoiseSchedule& schedule);

}  // namespace dc::sampling
