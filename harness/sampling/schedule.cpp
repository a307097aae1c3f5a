#include "harness/sampling/schedule.h"

#include <cmath>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::sampling {

BetaSchedule parse_beta_schedule(const std::string& name) {
  if (name == "ddpm_linear") return BetaSchedule::DdpmLinear;
  if (name == "ldm_linear") return BetaSchedule::LdmLinear;
  if (name == "scaled_linear") return BetaSchedule::ScaledLinear;
  if (name == "cosine") return BetaSchedule::Cosine;
  throw Error(fmt::format("unknown beta schedule '{}' (known: ddpm_linear, ldm_linear, scaled_linear, cosine)", name));
}

const char* beta_schedule_name(BetaSchedule s) {
  switch (s) {
    case BetaSchedule::DdpmLinear: return "ddpm_linear";
    case BetaSchedule::LdmLinear: return "ldm_linear";
    case BetaSchedule::ScaledLinear: return "scaled_linear";
    case BetaSchedule::Cosine: return "cosine";
  }
  return "?";
}

std::vector<double> np_linspace(double start, double stop, int num) {
  std::vector<double> y(std::max(num, 0));
  if (num <= 0) return y;
  const int div = num - 1;
  const double delta = stop - start;
  const double step = div > 0 ? delta / div : 0.0;
  for (int i = 0; i < num; ++i) y[i] = (step == 0.0 && div > 0) ? static_cast<double>(i) / div * delta + start : i * step + start;
  if (num > 1) y[num - 1] = stop;
  return y;
}

std::vector<double> make_betas(BetaSchedule kind, int T, double start, double end) {
  if (T < 2) throw Error(fmt::format("number of diffusion timesteps must be at least 2, got {}", T));
  std::vector<double> b(T);
  switch (kind) {
    case BetaSchedule::DdpmLinear:
      return np_linspace(start, end, T);
    case BetaSchedule::LdmLinear: {
      const torch::Tensor t = torch::linspace(std::sqrt(start), std::sqrt(end), T, torch::kFloat64).pow(2);
      std::memcpy(b.data(), t.data_ptr<double>(), T * sizeof(double));
      return b;
    }
    case BetaSchedule::ScaledLinear: {
      const torch::Tensor t = torch::linspace(std::sqrt(start), std::sqrt(end), T, torch::kFloat32).pow(2).to(torch::kFloat64);
      std::memcpy(b.data(), t.data_ptr<double>(), T * sizeof(double));
      return b;
    }
    case BetaSchedule::Cosine: {
      const double s = 8e-3;
      const torch::Tensor ts = torch::arange(T + 1, torch::kFloat64) / T + s;
      torch::Tensor a = torch::cos(ts / (1 + s) * M_PI / 2).pow(2);
      a = a / a[0];
      const torch::Tensor betas = torch::clamp(1 - a.slice(0, 1) / a.slice(0, 0, T), 0.0, 0.999).contiguous();
      std::memcpy(b.data(), betas.data_ptr<double>(), T * sizeof(double));
      return b;
    }
  }
  return b;
}

torch::Tensor alphas_cumprod_f32(const std::vector<double>& betas) {
  const torch::Tensor b = torch::tensor(betas, torch::kFloat64).to(torch::kFloat32);
  return torch::cumprod(1 - b, 0);
}

torch::Tensor alphas_cumprod_f64(const std::vector<double>& betas) {
  const std::size_t n = betas.size();
  torch::Tensor out = torch::empty({static_cast<int64_t>(n)}, torch::kFloat64);
  double* p = out.data_ptr<double>();
  double acc = 1.0;
  for (std::size_t i = 0; i < n; ++i) p[i] = acc *= (1.0 - betas[i]);  // np.cumprod: sequential
  return out;
}

torch::Tensor alphas_cumprod(const models::NoiseSchedule& s) {
  const auto betas = make_betas(parse_beta_schedule(s.betas), s.num_timesteps, s.beta_start, s.beta_end);
  if (s.cumprod == "float32") return alphas_cumprod_f32(betas);
  if (s.cumprod == "float64") return alphas_cumprod_f64(betas).to(torch::kFloat32);
  throw Error(fmt::format("noise schedule: unknown cumprod precision '{}' (float32 or float64)", s.cumprod));
}

Spacing parse_spacing(const std::string& name) {
  if (name == "uniform") return Spacing::Uniform;
  if (name == "quad") return Spacing::Quad;
  throw Error(fmt::format("unknown timestep spacing '{}' (known: uniform, quad)", name));
}

std::vector<int64_t> ddim_repo_timesteps(int steps, Spacing spacing, int T) {
  if (steps < 1 || steps > T) throw Error(fmt::format("steps must be in [1, {}], got {}", T, steps));
  std::vector<int64_t> seq;
  if (spacing == Spacing::Uniform) {
    const int skip = T / steps;
    for (int i = 0; i < T; i += skip) seq.push_back(i);
  } else {
    for (double v : np_linspace(0.0, std::sqrt(T * 0.8), steps)) seq.push_back(static_cast<int64_t>(v * v));
  }
  return seq;
}

std::vector<int64_t> ldm_ddim_timesteps(int steps, int T) {
  if (steps < 1 || steps > T) throw Error(fmt::format("steps must be in [1, {}], got {}", T, steps));
  std::vector<int64_t> seq;
  const int c = T / steps;
  for (int i = 0; i < T; i += c) seq.push_back(i + 1);
  return seq;
}

}  // namespace dc::sampling
