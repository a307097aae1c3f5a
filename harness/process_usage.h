// What the operating system says a stretch of this process cost (getrusage: CPU time in user and
// system mode, page faults; all threads) and how busy the machine was (the 1-minute load average
// against the cores). A run records both for its sampling (issue 31): a system time above a tenth
// of the sampling time means the allocator or the OS, not the model, was being timed, and a load
// above the cores means another process took part of the machine.
#pragma once
#include <cstdint>

namespace dc::harness {

struct ProcessUsage {
  double user_seconds = 0.0, system_seconds = 0.0;
  int64_t minor_faults = 0, major_faults = 0;
  ProcessUsage& operator+=(const ProcessUsage& o);
  ProcessUsage operator-(const ProcessUsage& o) const;
};

// This process so far (RUSAGE_SELF: every thread, finished ones included).
ProcessUsage process_usage();

// The 1-minute load average (getloadavg), or -1 where the system has none.
double load_average();

// The cores the machine has online (not only those this process may use).
int online_cores();

}  // namespace dc::harness
