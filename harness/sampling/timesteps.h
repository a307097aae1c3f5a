// Timestep spacings and beta-schedule names without LibTorch (config validation, `plan` and the
// experiment fuzz target need them; schedule.h adds the tensors).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dc::sampling {

enum class BetaSchedule {
  DdpmLinear,    // ddim repo get_beta_schedule('linear'): np.linspace(start, end, T) in float64
  LdmLinear,     // ldm make_beta_schedule('linear'): torch.linspace(sqrt(start), sqrt(end), T, float64)**2
  ScaledLinear,  // diffusers 'scaled_linear': torch.linspace(sqrt(start), sqrt(end), T, float32)**2
  Cosine,        // ldm make_beta_schedule('cosine'), s = 8e-3, clipped to 0.999 (float64)
};
// "ddpm_linear", "ldm_linear", "scaled_linear", "cosine"; throws dc::Error listing them.
BetaSchedule parse_beta_schedule(const std::string& name);
const char* beta_schedule_name(BetaSchedule s);

// np.linspace(start, stop, num) in float64, bit for bit (y[i] = i*step + start, y[-1] = stop).
std::vector<double> np_linspace(double start, double stop, int num);

enum class Spacing { Uniform, Quad };
Spacing parse_spacing(const std::string& name);  // "uniform", "quad"
// ddim repo runners/diffusion.py sample_image: ascending timesteps.
//   uniform: range(0, T, T // steps); quad: int(linspace(0, sqrt(0.8 T), steps)**2)
std::vector<int64_t> ddim_repo_timesteps(int steps, Spacing spacing, int num_timesteps = 1000);
// ldm make_ddim_timesteps('uniform'): range(0, T, T // S) + 1 (the +1 is real). Ascending.
std::vector<int64_t> ldm_ddim_timesteps(int steps, int num_timesteps = 1000);

}  // namespace dc::sampling
