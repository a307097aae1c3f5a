#include "harness/process_usage.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>

namespace dc::harness {

ProcessUsage& ProcessUsage::operator+=(const ProcessUsage& o) {
  user_seconds += o.user_seconds;
  system_seconds += o.system_seconds;
  minor_faults += o.minor_faults;
  major_faults += o.major_faults;
  return *this;
}

ProcessUsage ProcessUsage::operator-(const ProcessUsage& o) const {
  return {user_seconds - o.user_seconds, system_seconds - o.system_seconds, minor_faults - o.minor_faults, major_faults - o.major_faults};
}

ProcessUsage process_usage() {
  rusage u{};
  if (::getrusage(RUSAGE_SELF, &u) != 0) return {};
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  return {seconds(u.ru_utime), seconds(u.ru_stime), static_cast<int64_t>(u.ru_minflt), static_cast<int64_t>(u.ru_majflt)};
}

double load_average() {
  double l[1] = {0.0};
  return ::getloadavg(l, 1) == 1 ? l[0] : -1.0;
}

int online_cores() {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

}  // namespace dc::harness
