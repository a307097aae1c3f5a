// The block_cache policy: its YAML and schedule (block_cache.h says the rule). Its keys in `cache:`:
//   delta                the accumulated relative change at which a block is recomputed (default 0.5:
//                        the paper tunes δ per model and publishes no default; sweep it)
//   calibration_samples  samples of the calibration run (the run's first; default 4)
//   calibration          the change matrix [call][stage] a run stored (then nothing is calibrated)
#include <fmt/format.h>

#include <cmath>

#include "harness/policies/block_cache.h"
#include "harness/policies/registry_entries.h"

namespace dc::harness::policies {

std::vector<models::CallPlan> block_cache_schedule(const std::vector<std::vector<double>>& change, double delta) {
  std::vector<models::CallPlan> plans;
  if (change.empty()) return plans;
  const std::size_t n = change.front().size();
  std::vector<double> acc(n, 0.0);
  for (std::size_t c = 0; c < change.size(); ++c) {
    models::CallPlan p;
    p.stages.assign(n, models::StageAction::Compute);
    for (std::size_t s = 0; s < n; ++s) {
      if (c > 0) {
        acc[s] += change[c][s];
        if (!(acc[s] > delta)) {
          p.stages[s] = models::StageAction::Reuse;
          continue;
        }
      }
      acc[s] = 0.0;
      p.store.push_back(static_cast<int>(s));
    }
    if (p.computes_everything()) p.stages.clear();
    plans.push_back(std::move(p));
  }
  return plans;
}

nlohmann::json BlockCacheSettings::resolved() const {
  nlohmann::json j = {{"delta", delta}};
  if (changes.empty() || calibration_seconds >= 0) j["calibration_samples"] = calibration_samples;
  else j["calibration"] = changes;
  return j;
}

std::string BlockCacheSettings::describe() const { return fmt::format(" delta={}", delta); }

std::optional<std::vector<models::CallPlan>> BlockCacheSettings::schedule() const {
  if (changes.empty()) return std::nullopt;
  return block_cache_schedule(changes, delta);
}

nlohmann::json BlockCacheSettings::facts() const {
  if (calibration_seconds < 0) return nlohmann::json::object();
  return {{"calibration", changes}, {"calibration_seconds", calibration_seconds}, {"calibration_samples", calibration_samples}};
}

std::vector<ReportColumn> BlockCacheSettings::report_columns() const { return {{"delta", fmt::format("{:g}", delta), delta}}; }

namespace {

std::shared_ptr<const PolicySettings> read_block_cache(const ReadContext& c) {
  auto s = std::make_shared<BlockCacheSettings>();
  const Reader& r = c.reader;
  r.get(c.block, "cache", "delta", s->delta);
  r.get(c.block, "cache", "calibration_samples", s->calibration_samples);
  s->num_skips = c.num_skips;
  s->num_calls = c.num_calls;
  if (!(s->delta > 0) || !std::isfinite(s->delta)) r.fail("cache.delta", fmt::format("{} must be a positive number", s->delta));
  r.at_least("cache.calibration_samples", s->calibration_samples, 1);
  if (c.block.contains("calibration")) {
    const nlohmann::json& m = c.block["calibration"];
    const int stages = models::num_stages(c.num_skips);
    const std::string want = fmt::format("a list of {} rows (one per model call) of {} numbers (one per stage), as a run stored it",
                                         c.num_calls, stages);
    if (!m.is_array() || static_cast<int>(m.size()) != c.num_calls) r.fail("cache.calibration", want);
    for (const auto& row : m) {
      if (!row.is_array() || static_cast<int>(row.size()) != stages) r.fail("cache.calibration", want);
      std::vector<double> v;
      for (const auto& e : row) {
        if (!e.is_number() || !std::isfinite(e.get<double>()) || e.get<double>() < 0)
          r.fail("cache.calibration", fmt::format("{} is not a relative change (a number >= 0)", e.dump()));
        v.push_back(e.get<double>());
      }
      s->changes.push_back(std::move(v));
    }
  }
  return s;
}

}  // namespace

PolicyType block_cache_policy() {
  PolicyType t{"block_cache",
               "Block Caching: each block recomputed when its relative change, measured in a calibration run and accumulated "
               "since its last computation, exceeds delta; else its output is reused",
               {"delta", "calibration_samples", "calibration"},
               read_block_cache,
               {"delta"}};
  t.caches_features = true;
  return t;
}

}  // namespace dc::harness::policies
