#include "harness/sampling/call_schedule.h"

#include <cmath>

#include <fmt/format.h>

#include "common/error.h"
#include "harness/sampling/timesteps.h"

namespace dc::sampling {

const std::vector<SamplerInfo>& sampler_registry() {
  static const std::vector<SamplerInfo> all = {
      {"ddim", "DDIM, ermongroup/ddim generalized_steps (DeepCache's DDPM code); spacing uniform or quad", true, true},
      {"ddpm", "DDPM ancestral sampling, ermongroup/ddim ddpm_steps; spacing uniform or quad", true, false},
      {"ldm_ddim", "DDIM, latent-diffusion DDIMSampler (uniform discretisation, timesteps + 1)", false, true},
      {"plms", "PLMS, latent-diffusion PLMSSampler (eta 0; N steps make N+1 model calls)", false, false},
      {"pndm", "PNDM (PLMS), diffusers PNDMScheduler with SD1.5's config, skip_prk_steps (N steps make N+1 model calls)", false, false},
      {"diffusers_ddim", "DDIM, diffusers DDIMScheduler with SD1.5's config (leading spacing, offset 1)", false, true},
      {"dpmpp_2m", "DPM-Solver++(2M), diffusers DPMSolverMultistepScheduler with SD1.5's config (linspace spacing)", false, false},
      {"euler", "Euler, diffusers EulerDiscreteScheduler with SD1.5's config (linspace spacing, float timesteps)", false, false},
  };
  return all;
}

std::vector<std::string> sampler_names() {
  std::vector<std::string> v;
  for (const auto& s : sampler_registry()) v.push_back(s.name);
  return v;
}

const SamplerInfo& sampler_info(const std::string& name) {
  for (const auto& s : sampler_registry())
    if (s.name == name) return s;
  std::string known;
  for (const auto& n : sampler_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error(fmt::format("unknown sampler '{}' (known: {})", name, known));
}

std::vector<int64_t> CallSchedule::timesteps() const {
  std::vector<int64_t> t;
  t.reserve(calls.size());
  for (const auto& c : calls) t.push_back(c.t);
  return t;
}

CallSchedule ddim_repo_calls(const std::vector<int64_t>& seq, const SamplerOptions& o, int T) {
  CallSchedule s;
  s.sampler = o;
  s.num_timesteps = T;
  const int n = static_cast<int>(seq.size());
  for (int i = 0; i < n; ++i) {  // reversed(seq), seq_next = [-1] + seq[:-1]
    ModelCall c;
    c.t = seq[n - 1 - i];
    c.t_next = n - 2 - i >= 0 ? seq[n - 2 - i] : -1;
    c.step = i;
    if (c.t < 0 || c.t >= T)
      throw Error(fmt::format("sampler {}: timestep {} is outside the {}-step noise schedule", o.name, c.t, T));
    s.calls.push_back(c);
  }
  return s;
}

namespace {

// The diffusers schedulers' timesteps (SD1.5 config: steps_offset 1), in call order.
CallSchedule diffusers_calls(const SamplerOptions& o, int T) {
  CallSchedule s;
  s.sampler = o;
  s.num_timesteps = T;
  const int n = o.steps;
  auto add = [&](int64_t t, int step, bool extra = false, double model_t = -1.0) {
    ModelCall c;
    c.t = t;
    c.step = step;
    c.extra = extra;
    c.model_t = model_t;
    s.calls.push_back(c);
  };
  if (o.name == "pndm" || o.name == "diffusers_ddim") {
    // `leading`: arange(0, N) * (T // N) + steps_offset, descending.
    const int64_t ratio = T / n;
    if ((n - 1) * ratio + 1 >= T)
      throw Error(fmt::format("sampler.steps: {} {} steps ask for timestep {}, outside the {}-step noise schedule (the leading "
                              "spacing adds steps_offset 1; use at most {} steps)", n, o.name, (n - 1) * ratio + 1, T, T / 2));
    std::vector<int64_t> ts;
    for (int i = n - 1; i >= 0; --i) ts.push_back(i * ratio + 1);
    if (o.name == "diffusers_ddim") {
      for (int i = 0; i < n; ++i) add(ts[i], i);
    } else {  // skip_prk_steps: [t_{N-1}, t_{N-2}, t_{N-2}, t_{N-3}, ..., t_0]
      // (one step: [t_0] alone, one call, as diffusers' concatenation gives)
      add(ts[0], 0);
      if (n > 1) {
        add(ts[1], 0, /*extra=*/true);
        for (int i = 1; i < n; ++i) add(ts[i], i);
      }
    }
  } else if (o.name == "dpmpp_2m") {
    // np.linspace(0, T - 1, N + 1).round()[::-1][:-1]
    const std::vector<double> l = np_linspace(0.0, T - 1.0, n + 1);
    for (int i = 0; i < n; ++i) add(static_cast<int64_t>(std::nearbyint(l[n - i])), i);
  } else {  // euler: np.linspace(0, T - 1, N, dtype=float32)[::-1], float timesteps
    const std::vector<double> l = np_linspace(0.0, T - 1.0, n);
    for (int i = 0; i < n; ++i) {
      const double t = static_cast<double>(static_cast<float>(l[n - 1 - i]));
      add(static_cast<int64_t>(std::nearbyint(t)), i, false, t);
    }
  }
  return s;
}

}  // namespace

CallSchedule make_call_schedule(const SamplerOptions& o, int T) {
  const SamplerInfo& info = sampler_info(o.name);
  if (o.steps < 1 || o.steps > T)
    throw Error(fmt::format("sampler.steps: {} must be in [1, {}] (the model's noise schedule has {} timesteps)", o.steps, T, T));
  if (o.eta < 0) throw Error(fmt::format("sampler.eta: {} must be >= 0", o.eta));
  if (info.uses_spacing) return ddim_repo_calls(ddim_repo_timesteps(o.steps, parse_spacing(o.spacing), T), o, T);
  if (o.name == "pndm" || o.name == "diffusers_ddim" || o.name == "dpmpp_2m" || o.name == "euler") {
    if (o.eta != 0 && o.name != "diffusers_ddim") throw Error(fmt::format("sampler.eta: {} has no eta (got {})", o.name, o.eta));
    return diffusers_calls(o, T);
  }
  if (o.name == "plms" && o.eta != 0)
    throw Error(fmt::format("sampler.eta: PLMS needs eta = 0, got {} (ldm PLMSSampler: 'ddim_eta must be 0 for PLMS')", o.eta));
  // latent-diffusion: timesteps ascending with the +1; the loop walks them from the last.
  const std::vector<int64_t> ts = ldm_ddim_timesteps(o.steps, T);
  for (int64_t t : ts)
    if (t >= T)
      throw Error(fmt::format("sampler.steps: {} {} steps ask for timestep {}, outside the {}-step noise schedule "
                              "(ldm's discretisation adds 1; use at most {} steps)", o.steps, o.name, t, T, T / 2));
  CallSchedule s;
  s.sampler = o;
  s.num_timesteps = T;
  const int n = static_cast<int>(ts.size());
  for (int i = 0; i < n; ++i) {
    ModelCall c;
    c.step = i;
    c.t = ts[n - 1 - i];
    s.calls.push_back(c);
    if (o.name == "plms" && i == 0) {  // time_range[min(i+1, n-1)]
      ModelCall e = c;
      e.extra = true;
      e.t = ts[std::max(n - 2, 0)];
      s.calls.push_back(e);
    }
  }
  return s;
}

}  // namespace dc::sampling
