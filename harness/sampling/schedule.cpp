#include "harness/sampling/schedule.h"

#include <cmath>

#include <fmt/format.h>

#include "common/error.h"

namespace dc::sampling {

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

}  // namespace dc::sampling
