#include "harness/sampling/timesteps.h"

#include <algorithm>
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
