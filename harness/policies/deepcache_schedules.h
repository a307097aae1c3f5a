// DeepCache's schedules (the deepcache policy's, harness/policies/deepcache.cpp): which model calls
// are full (run the whole UNet and refill the cache) and which are partial (run only the shallow
// layers above skip index k and reuse the cached deep feature). Torch-free.
//
// Steps are model-call indices counted from 0 at the noisiest call (PLMS with 50 steps makes 51
// calls). A plan's full-step list always contains 0: the first call has nothing to reuse.
#pragma once
#include <string>
#include <vector>

namespace dc::deepcache {

// Uniform: {0, N, 2N, ...} below num_steps. N = 1 makes every call full (no caching).
// Throws dc::Error when num_steps < 1 or N < 1.
std::vector<int> uniform_full_steps(int num_steps, int interval);

struct NonUniformResult {
  std::vector<int> steps;
  double final_power = 0.0;  // the power the search ended on (the reference returns it)
  std::string warning;       // accepted, but probably not what was meant (a centre outside the calls)
};

// Non-uniform schedule of the reference code (DeepCache experiments/ddpm/ddpm/functions/
// deepcache_denoising.py sample_from_quad_center(total_numbers=num_steps,
// n_samples=ceil(num_steps/N), center, pow)): full steps are dense around `center`. Ported with
// its exact arithmetic: Python's complex power for (-center)**(1/p), numpy's complex linspace and
// power, truncation of the real part to int32, unique, and retries with p -= 0.02 while p > 1
// until exactly n_samples indices come out. Throws dc::Error naming the arguments when no power
// above 1 gives that many (an impossible schedule).
NonUniformResult nonuniform_full_steps(int num_steps, int interval, int center, double power);

// The same search with the reference's own argument: n_samples full steps.
NonUniformResult sample_from_quad_center(int total_numbers, int n_samples, int center, double power);

// The released LDM code's non-uniform schedule (DeepCache experiments/ldm ddim.py): n = ceil(steps/N)
// full steps at unique(int32(linspace(0, steps^(1/p), n+1)^p))[:-1]: no centre, no retry, and it
// may return fewer than n (10 steps, N = 3, p = 1.5 -> [0, 1, 3, 6]). Throws dc::Error for p <= 0.
std::vector<int> ldm_nonuniform_full_steps(int num_steps, int interval, double power);

// An explicit list: sorted, unique, within [0, num_steps), containing 0. Throws dc::Error
// naming the offending value otherwise.
std::vector<int> explicit_full_steps(int num_steps, std::vector<int> steps);

// A schedule's full model calls for a generation of `num_calls` calls making `num_steps` denoising
// steps (they differ for PLMS/PNDM: 51 calls for 50 steps). schedule: uniform | nonuniform |
// ldm_nonuniform | explicit. index "calls": the set is computed over all calls; "steps": over the
// steps and read as call indices, as DeepCache's SD pipeline does for PNDM (PLMS-50: full calls
// {0, 5, ..., 45}, call 50 partial; interval 1 is every call full, as there). Throws dc::Error.
struct ScheduleSpec {
  std::string schedule = "uniform";
  int interval = 5;
  int center = 0;
  double power = 1.4;
  std::vector<int> explicit_steps;
  std::string index = "calls";  // calls | steps
};
NonUniformResult full_calls(const ScheduleSpec& spec, int num_calls, int num_steps);

}  // namespace dc::deepcache
