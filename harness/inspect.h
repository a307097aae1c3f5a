// `deepcache-bench inspect`: what a weights file holds, which model family it is, and how it
// differs from a full-size key manifest.
#pragma once
#include <iosfwd>
#include <string>

namespace dc::harness {

struct InspectOptions {
  std::string path;
  std::string against;      // manifest (*.keys.json); empty = none
  std::string prefix;       // compare only keys under this prefix, stripped
  bool list_tensors = true;
  bool verify = false;      // read every tensor: BOOL validity, count NaN/inf values
};

// Writes the report to `out`. Returns 0, or 1 when a manifest was given and the file differs
// from it (like diff(1)). Throws dc::Error for unreadable or invalid input.
int inspect(const InspectOptions& options, std::ostream& out);

std::string group_digits(int64_t n);  // 35746307 -> "35,746,307"

}  // namespace dc::harness
