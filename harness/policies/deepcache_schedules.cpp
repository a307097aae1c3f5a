#include "harness/policies/deepcache_schedules.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <limits>
#include <set>

#include <fmt/format.h>

#include "common/error.h"
#include "harness/sampling/timesteps.h"

namespace dc::deepcache {

namespace {

using cplx = std::complex<double>;

// Python's float/int ** float for a negative base and a non-integer exponent
// (Objects/complexobject.c, _Py_c_pow with b.imag == 0).
cplx python_pow_negative(double base, double exponent) {
  const double vabs = std::hypot(base, 0.0);
  const double len = std::pow(vabs, exponent);
  const double at = std::atan2(0.0, base);
  const double phase = at * exponent;
  return {len * std::cos(phase), len * std::sin(phase)};
}

// Python `int ** float` as the reference evaluates (-center)**(1/pow): complex when the base is
// negative (the exponent here is never an integer), else a float.
cplx python_pow(int base, double exponent) {
  if (base < 0) return python_pow_negative(static_cast<double>(base), exponent);
  return {std::pow(static_cast<double>(base), exponent), 0.0};
}

// numpy complex multiply and Smith's complex division by a real (numpy scalarmath).
cplx cmul(cplx a, cplx b) {
  return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}

// numpy's power of a complex array by a real scalar: the fast path for 2 (square), the integer
// path of npy_cpow for small integers, else C99 cpow = cexp(b * clog(a)).
cplx numpy_cpow(cplx a, double b) {
  if (b == 2.0) return cmul(a, a);
  if (b == 0.0) return {1.0, 0.0};
  if (a.real() == 0.0 && a.imag() == 0.0) return {0.0, 0.0};
  const auto n = static_cast<int64_t>(b);
  if (static_cast<double>(n) == b && n > -100 && n < 100) {
    if (n == 1) return a;
    if (n == 3) return cmul(a, cmul(a, a));
    int64_t m = n < 0 ? -n : n;
    cplx p{1.0, 0.0}, aa = a;
    int64_t mask = 1;
    while (true) {
      if (m & mask) p = cmul(aa, p);
      mask <<= 1;
      if (m < mask || mask <= 0) break;
      aa = cmul(aa, aa);
    }
    return n < 0 ? cplx{1.0, 0.0} / p : p;
  }
  const cplx l = std::log(a);  // glibc clog
  return std::exp(cplx{b * l.real() - 0.0 * l.imag(), b * l.imag() + 0.0 * l.real()});  // glibc cexp
}

// np.int32(value): truncation toward zero of the real part (x86 gives INT32_MIN out of range).
int32_t to_int32(double v) {
  if (!(v > -2147483649.0 && v < 2147483648.0)) return std::numeric_limits<int32_t>::min();
  return static_cast<int32_t>(v);
}

// One try of the reference loop body for a given power.
std::vector<int> quad_center_try(int total, int n_samples, int center, double power) {
  const double inv = 1.0 / power;
  const cplx start = python_pow(-center, inv);
  const cplx stop = python_pow(total - center, inv);
  // Python makes a complex number of a negative int to a fractional power; numpy's linspace is
  // then complex throughout.
  const bool complex_path = center > 0 || total - center < 0;
  const int num = n_samples + 1;
  const int div = num - 1;
  std::vector<int32_t> truncated;
  truncated.reserve(num);
  if (complex_path) {
    // np.linspace with complex endpoints: y[i] = i*step + start, y[-1] = stop, step = delta/div.
    const cplx delta{stop.real() - start.real(), stop.imag() - start.imag()};
    const double scl = 1.0 / static_cast<double>(div);
    const cplx step{(delta.real() + delta.imag() * 0.0) * scl, (delta.imag() - delta.real() * 0.0) * scl};
    for (int i = 0; i < num; ++i) {
      const cplx y = (i == num - 1 && num > 1) ? stop : cmul(cplx{static_cast<double>(i), 0.0}, step) + start;
      truncated.push_back(to_int32(numpy_cpow(y, power).real()));
    }
  } else {
    const double s = start.real(), e = stop.real();
    const double step = (e - s) / static_cast<double>(div);
    for (int i = 0; i < num; ++i) {
      const double y = (i == num - 1 && num > 1) ? e : static_cast<double>(i) * step + s;
      const double v = power == 2.0 ? y * y : std::pow(y, power);
      truncated.push_back(to_int32(v));
    }
  }
  std::set<int32_t> uniq(truncated.begin(), truncated.end());
  std::vector<int32_t> u(uniq.begin(), uniq.end());
  std::vector<int> indices = {0};
  for (std::size_t i = 1; i + 1 < u.size(); ++i) indices.push_back(static_cast<int>(u[i]) + center);
  return indices;
}

}  // namespace

std::vector<int> uniform_full_steps(int num_steps, int interval) {
  if (num_steps < 1) throw Error(fmt::format("number of steps must be at least 1, got {}", num_steps));
  if (interval < 1) throw Error(fmt::format("cache interval N must be at least 1, got {}", interval));
  std::vector<int> s;
  for (int i = 0; i < num_steps; i += interval) s.push_back(i);
  return s;
}

NonUniformResult full_calls(const ScheduleSpec& spec, int num_calls, int num_steps) {
  if (spec.index != "calls" && spec.index != "steps")
    throw Error(fmt::format("cache.index: '{}' is not one of: calls, steps", spec.index));
  const bool over_steps = spec.index == "steps";
  if (over_steps && spec.interval == 1 && spec.schedule != "explicit") {  // the SD pipeline: interval 1 is every call full
    NonUniformResult all;
    for (int i = 0; i < num_calls; ++i) all.steps.push_back(i);
    return all;
  }
  const int over = over_steps ? num_steps : num_calls;
  NonUniformResult r;
  if (spec.schedule == "nonuniform") {
    r = nonuniform_full_steps(over, spec.interval, spec.center, spec.power);
  } else if (spec.schedule == "ldm_nonuniform") {
    r.steps = ldm_nonuniform_full_steps(over, spec.interval, spec.power);
    r.final_power = spec.power;
  } else if (spec.schedule == "explicit") {
    r.steps = explicit_full_steps(num_calls, spec.explicit_steps);  // explicit lists name calls
  } else {
    r.steps = uniform_full_steps(over, spec.interval);
  }
  return r;
}

NonUniformResult sample_from_quad_center(int total_numbers, int n_samples, int center, double power) {
  if (total_numbers < 1 || n_samples < 1)
    throw Error(fmt::format("non-uniform schedule: need total_numbers >= 1 and n_samples >= 1, got {} and {}",
                            total_numbers, n_samples));
  // The reference searches down from `power` in steps of 0.02: a power of 10 is 450 tries (the
  // paper uses 1.2 to 1.6); infinity would never end (found by fuzz/fuzz_experiment.cpp: 214 took
  // seconds per run).
  if (!std::isfinite(power) || power > 10)
    throw Error(fmt::format("cache.power {} is not a number in (1, 10] (the search for a schedule starts there and lowers it "
                            "by 0.02; the paper uses 1.2 to 1.6)",
                            power));
  std::vector<int> indices;
  double p = power;
  bool found = false;
  while (p > 1) {
    indices = quad_center_try(total_numbers, n_samples, center, p);
    if (static_cast<int>(indices.size()) == n_samples) {
      found = true;
      break;
    }
    p -= 0.02;
  }
  if (!found)
    throw Error(fmt::format("impossible non-uniform schedule: no power in (1, {}] gives {} distinct full steps "
                            "out of {} with center {} (fewer full steps fit: try a larger N, a larger power, or a center nearer the middle "
                            "of [0, {}))",
                            power, n_samples, total_numbers, center, total_numbers));
  for (int s : indices)
    if (s < 0 || s >= total_numbers)
      throw Error(fmt::format("impossible non-uniform schedule: center {} with power {} puts a full step at {}, "
                              "outside [0, {})", center, p, s, total_numbers));
  return {indices, p, {}};
}

NonUniformResult nonuniform_full_steps(int num_steps, int interval, int center, double power) {
  if (num_steps < 1) throw Error(fmt::format("number of steps must be at least 1, got {}", num_steps));
  if (interval < 1) throw Error(fmt::format("cache interval N must be at least 1, got {}", interval));
  const int n_samples = num_steps / interval + (num_steps % interval > 0 ? 1 : 0);
  // The centre is the call index the full steps crowd around; one outside the calls pushes them to
  // one end. The reference accepts it (and a smoke run's `--set sampler.steps=2` puts a shipped
  // centre outside), so it is a warning, said by `plan` and `run`, not an error.
  const std::string warning =
      center < 0 || center >= num_steps
          ? fmt::format("cache.center {} is outside [0, {}), the model calls: the full steps crowd to one end instead of around a "
                        "call (0 = the noisiest; the paper's DDPM runs centre them)",
                        center, num_steps)
          : "";
  NonUniformResult r = n_samples == num_steps ? NonUniformResult{uniform_full_steps(num_steps, 1), power, ""}  // every call full
                                              : sample_from_quad_center(num_steps, n_samples, center, power);
  r.warning = warning;
  return r;
}

std::vector<int> explicit_full_steps(int num_steps, std::vector<int> steps) {
  if (num_steps < 1) throw Error(fmt::format("number of steps must be at least 1, got {}", num_steps));
  std::sort(steps.begin(), steps.end());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (steps[i] < 0 || steps[i] >= num_steps)
      throw Error(fmt::format("full step {} is outside [0, {})", steps[i], num_steps));
    if (i && steps[i] == steps[i - 1]) throw Error(fmt::format("full step {} is listed twice", steps[i]));
  }
  if (steps.empty() || steps[0] != 0)
    throw Error("the full-step list must contain step 0: the first model call has no cache to reuse");
  return steps;
}

std::vector<int> ldm_nonuniform_full_steps(int num_steps, int interval, double power) {
  if (num_steps < 1 || interval < 1)
    throw Error(fmt::format("LDM non-uniform schedule: steps ({}) and N ({}) must be at least 1", num_steps, interval));
  if (!(power > 0) || !std::isfinite(power)) throw Error(fmt::format("LDM non-uniform schedule: power {} must be a number > 0", power));
  const int n = (num_steps + interval - 1) / interval;
  std::vector<int> v;
  for (double x : sampling::np_linspace(0.0, std::pow(static_cast<double>(num_steps), 1.0 / power), n + 1))
    v.push_back(static_cast<int32_t>(std::pow(x, power)));  // ** pow in float64, astype(int32): truncation
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  v.pop_back();  // [:-1]
  return v;
}

}  // namespace dc::deepcache
