#include "harness/plan.h"

#include <map>
#include <ostream>

#include <fmt/format.h>

#include "common/error.h"
#include "harness/deepcache/full_steps.h"
#include "metrics/macs.h"
#include "models/model.h"

namespace dc::harness {

namespace {
metrics::MacsTable table_of(const std::string& family, const std::string& preset, int image_size = 0) {
  models::ModelOptions o;
  o.image_size = image_size;
  const models::Model m = models::build_model(family, preset, "random", "", o);
  return metrics::macs_table(*m.unet);
}
}  // namespace

void print_plan(const ExperimentSpec& e, bool macs, std::ostream& out) {
  out << fmt::format("experiment  {} ({} runs)\n", e.name, e.runs.size());
  if (!e.description.empty()) out << fmt::format("            {}\n", e.description);
  out << fmt::format("{:>3}  {:<16}  {:<8}  {}\n", "#", "run_id", "role", "settings");
  std::map<std::string, metrics::MacsTable> tables;
  for (std::size_t i = 0; i < e.runs.size(); ++i) {
    const auto& r = e.runs[i];
    const int calls = r.plan.calls.num_calls();
    std::string extra = fmt::format(", {} calls", calls);
    if (r.cache.enabled) {
      extra += fmt::format(" ({} full)", r.plan.full_steps.size());
      if (r.cache.schedule == "nonuniform") extra += fmt::format(", final p={:.2f}", r.plan.final_power);
    }
    if (macs) {
      const std::string key = fmt::format("{}/{}/{}", r.model.family, r.model.preset, r.model.image_size);
      if (!tables.count(key)) tables[key] = table_of(r.model.family, r.model.preset, r.model.image_size);
      const auto& t = tables[key];
      if (r.cache.enabled) {
        const double avg = metrics::step_average_macs(t.full, t.partial[r.cache.k], r.plan.full_steps, calls);
        extra += fmt::format("  partial {:.3f} G, full {:.3f} G, {:.3f} G/call on average", t.partial[r.cache.k] / 1e9,
                             t.full / 1e9, avg / 1e9);
      } else {
        extra += fmt::format("  {:.3f} G MACs/call (full)", t.full / 1e9);
      }
    }
    out << fmt::format("{:>3}  {}  {:<8}  {}, n={} seed={}{}\n", i + 1, r.run_id,
                       r.baseline ? "baseline" : (r.cache.enabled ? "deepcache" : "no cache"), describe_run(r), r.samples.n,
                       r.samples.seed, extra);
    for (const auto& w : r.plan.warnings) out << fmt::format("     warning: {}\n", w);
  }
  out << fmt::format("weights     {}\n", e.runs.empty() ? "" : e.runs.front().model.weights);
}

void print_macs(const std::string& family, const std::string& preset, int steps, int interval, std::ostream& out) {
  const auto table = table_of(family, preset);
  const auto full_steps = deepcache::uniform_full_steps(steps, interval);
  out << fmt::format("{} {}: full call {:.3f} G MACs per image as the paper counts, {:.3f} G counting every multiply-accumulate "
                     "(+ attention matmuls); uniform N={} over {} calls ({} full)\n",
                     family, preset, table.full / 1e9, table.full_all / 1e9, interval, steps, full_steps.size());
  out << fmt::format("{:>3} {:>3} {:>14} {:>16} {:>8}   {:>14} {:>8}\n", "k", "m", "partial (G)", "step avg (G)", "ratio", "all: partial",
                     "bound");
  for (std::size_t k = 0; k < table.partial.size(); ++k) {
    const double avg = metrics::step_average_macs(table.full, table.partial[k], full_steps, steps);
    const double avg_all = metrics::step_average_macs(table.full_all, table.partial_all[k], full_steps, steps);
    out << fmt::format("{:>3} {:>3} {:>14.3f} {:>16.3f} {:>7.2f}x   {:>14.3f} {:>7.2f}x\n", k, k + 1, table.partial[k] / 1e9, avg / 1e9,
                       table.full / avg, table.partial_all[k] / 1e9, table.full_all / avg_all);
  }
  out << "ratio: the speedup the paper's count allows; bound: the speedup every multiply-accumulate allows, which a measured "
         "speedup cannot exceed when the timing is compute-bound (docs/performance.md, 'Timings checked against the MACs')\n";
}

}  // namespace dc::harness
