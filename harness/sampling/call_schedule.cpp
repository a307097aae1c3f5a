#include "harness/sampling/call_schedule.h"

#include <fmt/format.h>

#include "common/error.h"
#include "harness/sampling/schedule.h"

namespace dc::sampling {

const std::vector<SamplerInfo>& sampler_registry() {
  static const std::vector<SamplerInfo> all = {
      {"ddim", "DDIM, ermongroup/ddim generalized_steps (DeepCache's DDPM code); spacing uniform or quad", true, true},
      {"ddpm", "DDPM ancestral sampling, ermongroup/ddim ddpm_steps; spacing uniform or quad", true, false},
      {"ldm_ddim", "DDIM, latent-diffusion DDIMSampler (uniform discretisation, timesteps + 1)", false, true},
      {"plms", "PLMS, latent-diffusion PLMSSampler (eta 0; N steps make N+1 model calls)", false, false},
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

CallSchedule make_call_schedule(const SamplerOptions& o, int T) {
  const SamplerInfo& info = sampler_info(o.name);
  if (o.steps < 1 || o.steps > T)
    throw Error(fmt::format("sampler.steps: {} must be in [1, {}] (the model's noise schedule has {} timesteps)", o.steps, T, T));
  if (o.eta < 0) throw Error(fmt::format("sampler.eta: {} must be >= 0", o.eta));
  if (info.uses_spacing) return ddim_repo_calls(ddim_repo_timesteps(o.steps, parse_spacing(o.spacing), T), o, T);
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
