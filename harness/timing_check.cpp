#include "harness/timing_check.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace dc::harness {

namespace {
std::string spread_text(double spread) {
  return spread >= 0 ? fmt::format("+/-{:.1f}%", 100 * spread) : std::string("unknown: one timing, set timing.repeats");
}
}  // namespace

TimingFacts record_facts(const RunRecord& r) {
  TimingFacts f;
  const CallMeans calls = mean_call_ms(r);
  if (calls.full_ms > 0 && calls.partial_ms > 0 && r.macs_full_all > 0 && r.macs_partial_all > 0) {
    f.call_speedup = calls.full_ms / calls.partial_ms;
    f.call_mac_bound = r.macs_full_all / r.macs_partial_all;
  }
  if (r.usage_seconds > 0) {
    f.sampled_seconds = r.usage_seconds;
    f.system_seconds = r.usage.system_seconds;
    f.minor_faults = r.usage.minor_faults;
  }
  f.load_start = r.load_start;
  f.load_end = r.load_end;
  f.cores = r.cores;
  return f;
}

std::vector<std::string> timing_flags(const TimingFacts& f) {
  std::vector<std::string> out;
  const double tolerance = 1.0 + std::max(f.spread, 0.0);
  // A measured ratio above what every multiply-accumulate allows, beyond the spread.
  auto above_bound = [&](double measured, double bound, const std::string& what) {
    if (measured > 0 && bound > 0 && measured > bound * tolerance)
      out.push_back(fmt::format("timing not compute-bound: {} (spread {}): something besides the model's arithmetic was timed, or "
                                "the layers a partial call keeps run faster per multiply-accumulate (larger images, Winograd: "
                                "bench_unet's of_bound shows it); see docs/performance.md",
                                what, spread_text(f.spread)));
  };
  above_bound(f.speedup, f.mac_bound,
              fmt::format("speedup {:.2f}x over the baseline, above the {:.2f}x that every multiply-accumulate allows beyond the "
                          "spread", f.speedup, f.mac_bound));
  above_bound(f.call_speedup, f.call_mac_bound,
              fmt::format("a partial model call ran {:.2f}x faster than a full one, where every multiply-accumulate allows {:.2f}x",
                          f.call_speedup, f.call_mac_bound));
  if (f.system_seconds >= 0 && f.sampled_seconds > 0 && f.system_seconds > kSystemTimeLimit * f.sampled_seconds)
    out.push_back(fmt::format("system time {:.0f}% of the sampling time ({:.2f} s of {:.2f} s, {} minor page faults): the kernel, "
                              "not the model, took that share (allocator or paging; see docs/performance.md, 'Memory')",
                              100 * f.system_seconds / f.sampled_seconds, f.system_seconds, f.sampled_seconds, f.minor_faults));
  if (f.cores > 0 && std::max(f.load_start, f.load_end) > kLoadLimit * f.cores)
    out.push_back(fmt::format("load average {:.2f} at the start and {:.2f} at the end of the sampling, above the machine's {} cores "
                              "by more than a quarter: other processes shared the CPUs, the times are not the model's alone",
                              f.load_start, f.load_end, f.cores));
  if (!f.is_baseline && f.speedup > 0 && f.spread > std::abs(f.speedup - 1.0))
    out.push_back(fmt::format("spread +/-{:.1f}% larger than the effect shown (speedup {:.2f}x): time it again (timing.repeats) "
                              "before reading anything into it",
                              100 * f.spread, f.speedup));
  return out;
}

}  // namespace dc::harness
