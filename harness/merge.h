// `merge`: shards of runs (results keyed "<run id>.shard-<i>-of-<n>", written by `run --shard i/n`)
// joined into complete runs. Metric states add exactly (metrics/exact_sum.h), so on one machine a
// merged run equals the run one process would have made, bit for bit: images in sample order,
// accumulator states, and the metric values computed from them. Timings are summed, with each
// shard's seconds recorded. Refused with one error naming the files: shards of different
// configurations, two copies of one slice, slices that do not tile the run (unless `partial`, and
// then the merged run says which shards it holds).
#pragma once
#include <iosfwd>
#include <string>
#include <vector>

namespace dc::harness {

struct MergeOptions {
  std::vector<std::string> inputs;  // results files holding shard results (and possibly whole runs)
  std::string out;                  // merged file (its other runs are kept; default results/<experiment>/<experiment>.h5)
  bool partial = false;             // merge runs whose shards are not all there (marked partial)
};

struct MergeSummary {
  std::string out;
  int runs = 0;    // runs written
  int shards = 0;  // shard results read
};

MergeSummary merge_results(const MergeOptions& options, std::ostream& log);

}  // namespace dc::harness
