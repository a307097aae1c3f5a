// A timing checked against physics (issue 31). A caching method saves multiply-accumulates; when
// the timing is compute-bound, no speedup can exceed what every multiply-accumulate of the calls
// allows (metrics/macs.h, `all`). A larger one means something else was timed: page faults of an
// allocator that returns memory at every free, another process on the cores, a cold first batch.
// `run` prints these flags after each run and `report` lists them in its notes (docs/performance.md,
// "Timings checked against the MACs"). Pure functions: no clock, no file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "harness/results_codec.h"

namespace dc::harness {

struct TimingFacts {
  // Against a baseline (0: none): the measured speedup in s/image and the speedup every
  // multiply-accumulate allows (the baseline's MACs per image over the run's, both counted whole).
  double speedup = 0.0, mac_bound = 0.0;
  bool is_baseline = false;  // the baseline itself: no effect to compare with its spread
  // Within the run (0: no partial calls): a full call's time over a partial call's, and their MACs.
  double call_speedup = 0.0, call_mac_bound = 0.0;
  // The relative spread of s/image over repeated timings (-1: unknown, fewer than two timings),
  // the larger of the run's and its baseline's where there is one.
  double spread = -1.0;
  // getrusage over the sampling (system_seconds < 0: not recorded, e.g. an older file).
  double sampled_seconds = 0.0, system_seconds = -1.0;
  int64_t minor_faults = 0;
  // The 1-minute load average at the start and end of the sampling (< 0: not recorded), and the
  // machine's cores.
  double load_start = -1.0, load_end = -1.0;
  int cores = 0;
};

// What a run's record says by itself: its full and partial calls' times and MACs, the OS's account
// of its sampling, the load and the cores (the speedup against a baseline and the spread are the
// caller's: `run` has the run just made, `report` the stored rows).
TimingFacts record_facts(const RunRecord& r);

// One line per problem found, each naming its numbers; empty when the timing looks sound.
std::vector<std::string> timing_flags(const TimingFacts& f);

// The fraction of sampling time spent in the kernel above which a timing is flagged.
constexpr double kSystemTimeLimit = 0.10;
// The load average, per core, above which a timing is flagged. A run that uses every core makes a
// load of about the cores by itself (the 1-minute average counts its own threads, and lags), so the
// flag needs a margin: a quarter of the cores more, i.e. some other process took a real share.
constexpr double kLoadLimit = 1.25;

}  // namespace dc::harness
