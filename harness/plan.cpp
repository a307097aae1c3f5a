#include "harness/plan.h"

#include <map>
#include <ostream>

#include <fmt/format.h>

#include "common/error.h"
#include "harness/policies/deepcache_schedules.h"
#include "harness/policies/policy.h"
#include "metrics/macs.h"
#include "models/model.h"

namespace dc::harness {

namespace {
metrics::StageMacs stages_of(const std::string& family, const std::string& preset, int image_size = 0) {
  return metrics::stage_macs(*models::build_unet(family, preset, image_size));
}

metrics::MacsTable table_of(const std::string& family, const std::string& preset) {
  return metrics::macs_table(*models::build_unet(family, preset));
}

// What a run's calls compute, where its policy knows before sampling: ", 100 calls (20 full: 0,5,...)",
// and with `stages` the MACs they will cost; "measured" where the policy decides while sampling.
std::string calls_text(const RunSpec& r, const metrics::StageMacs* stages) {
  const int calls = r.plan.calls.num_calls();
  std::string text = fmt::format(", {} calls", calls);
  const auto schedule = r.cache.enabled ? r.cache.settings->schedule() : std::nullopt;
  if (r.cache.enabled && schedule) {
    const std::vector<int> full = policies::full_calls_of(*schedule);
    text += fmt::format(" ({} full: {})", full.size(), models::compact_ids(full));
    text += r.cache.settings->plan_note();
  } else if (r.cache.enabled) {
    text += " (decided while sampling)";
  }
  if (!stages) return text;
  const metrics::CallMacs full = stages->full();
  if (!r.cache.enabled) return text + fmt::format("  {:.3f} G MACs/call (full)", full.total / 1e9);
  if (!schedule) return text + fmt::format("  full {:.3f} G, MACs per call measured while sampling", full.total / 1e9);
  double sum = 0.0, partial = -1.0;
  for (const auto& req : *schedule) {
    const double m = stages->of(&req).total;
    sum += m;
    if (m < full.total) partial = partial < 0 ? m : std::min(partial, m);
  }
  return text + fmt::format("  partial {:.3f} G, full {:.3f} G, {:.3f} G/call on average", std::max(partial, 0.0) / 1e9, full.total / 1e9,
                            calls ? sum / calls / 1e9 : 0.0);
}
}  // namespace

void print_plan(const ExperimentSpec& e, bool macs, std::ostream& out) {
  out << fmt::format("experiment  {} ({} runs)\n", e.name, e.runs.size());
  if (!e.description.empty()) out << fmt::format("            {}\n", e.description);
  out << fmt::format("{:>3}  {:<16}  {:<8}  {}\n", "#", "run_id", "role", "settings");
  std::map<std::string, metrics::StageMacs> tables;
  for (std::size_t i = 0; i < e.runs.size(); ++i) {
    const auto& r = e.runs[i];
    const metrics::StageMacs* stages = nullptr;
    if (macs) {
      const std::string key = fmt::format("{}/{}/{}", r.model.family, r.model.preset, r.model.image_size);
      if (!tables.count(key)) tables[key] = stages_of(r.model.family, r.model.preset, r.model.image_size);
      stages = &tables[key];
    }
    out << fmt::format("{:>3}  {}  {:<8}  {}, n={} seed={}{}\n", i + 1, r.run_id,
                       r.cache.enabled ? r.cache.policy : "plain", describe_run(r), r.samples.n,
                       r.samples.seed, calls_text(r, stages));
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
