// The ddim repo's sampler over an explicit sequence, through the one sampling loop (for tests
// that fix the sequence themselves, as the reference fixtures do).
#pragma once
#include "harness/sampling/call_schedule.h"
#include "harness/sampling/samplers.h"

namespace dc::test {

inline sampling::Trajectory ddim_repo_sample(const torch::Tensor& x_T, const std::vector<int64_t>& seq,
                                             const torch::Tensor& alphas_cumprod, double eta, const sampling::EpsFn& model,
                                             const sampling::NoiseFn& noise, bool keep = true) {
  auto s = sampling::ddim_repo_calls(seq, {"ddim", static_cast<int>(seq.size()), "uniform", eta},
                                     static_cast<int>(alphas_cumprod.size(0)));
  sampling::attach_alphas(s, alphas_cumprod);
  return sampling::sample(x_T, s, model, noise, keep);
}

}  // namespace dc::test
