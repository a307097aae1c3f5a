// The deepcache policy (Ma, Fang, Wang, CVPR 2024): full calls on a schedule fill the cache at skip
// index k; the calls between them compute only the shallow layers above k and reuse the cached
// deep feature (models::deepcache_request, the cut written once). Its YAML, in `cache:`:
//   k         skip index (docs/deepcache.md; paper branch m = k + 1)
//   interval  N; schedule uniform | nonuniform (center, power) | ldm_nonuniform (power) | explicit (full_steps)
//   index     calls | steps (the set over the model calls, or over the steps read as call indices:
//             DeepCache's SD pipeline for PNDM; default steps for pndm, calls otherwise)
//   feature   cached | zero (the paper's Table 5 ablation: partial calls read zeros)
//   mode      chained | ldm_released (the released LDM code's pass, k = its replicate_layer)
//   gate      > 0: the dynamic gate's threshold instead of a schedule (deepcache_settings.h: GateRule;
//             cache-dit's DBCache defaults: 0.08), with gate_warmup (8) and gate_max_cached (0: no limit)
// Every full-call set is known before sampling (schedule()), so plan shows the calls and MACs. This
// file reads and describes it (torch-free: the experiment reader is fuzzed without LibTorch); the
// per-call state is deepcache_policy.cpp's.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "harness/config_fields.h"
#include "harness/policies/deepcache.h"
#include "harness/policies/deepcache_schedules.h"
#include "harness/policies/deepcache_settings.h"
#include "harness/policies/registry_entries.h"

namespace dc::harness::policies {

nlohmann::json DeepCacheSettings::resolved() const {
  if (gate > 0) return {{"k", k}, {"gate", gate}, {"gate_warmup", gate_warmup}, {"gate_max_cached", gate_max_cached}};
  nlohmann::json c = {{"k", k}, {"interval", interval}, {"schedule", schedule_name}};
  if (schedule_name == "nonuniform") {
    c["center"] = center;
    c["power"] = power;
  }
  if (schedule_name == "ldm_nonuniform") c["power"] = power;
  if (feature != "cached") c["feature"] = feature;  // only when set: existing run ids stay
  if (mode != "chained") c["mode"] = mode;
  if (schedule_name == "explicit") c["full_steps"] = explicit_steps;
  // Only where it can differ from the calls' set (the older run ids stay).
  if (pndm || index != "calls") c["index"] = index;
  return c;
}

std::string DeepCacheSettings::describe() const {
  if (gate > 0) return fmt::format(" k={} gate={} warmup={}{}", k, gate, gate_warmup, gate_max_cached > 0 ? fmt::format(" max_cached={}", gate_max_cached) : "");
  std::string s = fmt::format(" k={} N={}", k, interval);
  if (schedule_name == "nonuniform") s += fmt::format(" nonuniform c={} p={}", center, power);
  if (schedule_name == "ldm_nonuniform") s += fmt::format(" ldm-nonuniform p={}", power);
  if (schedule_name == "explicit") s += " explicit";
  if (feature == "zero") s += " zero-feature";
  if (mode == "ldm_released") s += " ldm-released";
  return s;
}

bool DeepCacheSettings::is_full(int call) const { return std::binary_search(full_steps.begin(), full_steps.end(), call); }

models::CallPlan DeepCacheSettings::plan(int call) const {
  const bool partial = !is_full(call);
  return mode == "ldm_released" ? models::released_ldm_plan(num_skips, k, partial) : models::deepcache_plan(num_skips, k, partial);
}

std::optional<std::vector<models::CallPlan>> DeepCacheSettings::schedule() const {
  if (gate > 0) return std::nullopt;  // decided per call
  std::vector<models::CallPlan> v;
  for (int c = 0; c < num_calls; ++c) v.push_back(plan(c));
  return v;
}

// The power a non-uniform schedule ended on (the search's result, or ldm_nonuniform's cache.power);
// nothing for the schedules without one.
nlohmann::json DeepCacheSettings::facts() const {
  if (schedule_name != "nonuniform" && schedule_name != "ldm_nonuniform") return nlohmann::json::object();
  return {{"final_power", final_power}};
}

std::string DeepCacheSettings::plan_note() const {
  return schedule_name == "nonuniform" ? fmt::format(", final p={:.2f}", final_power) : "";
}

std::vector<ReportColumn> DeepCacheSettings::report_columns() const {
  if (gate > 0)
    return {{"k", std::to_string(k), static_cast<double>(k)},
            {"m", std::to_string(k + 1), static_cast<double>(k + 1)},
            {"N", "gate"},
            {"schedule", fmt::format("gate {:g} warmup {}{}", gate, gate_warmup,
                                     gate_max_cached > 0 ? fmt::format(" max {}", gate_max_cached) : "")}};
  std::string sched = schedule_name;
  if (schedule_name == "nonuniform") sched += fmt::format(" c={} p={:.2f}", center, final_power);
  if (schedule_name == "ldm_nonuniform") sched += fmt::format(" p={:.2f}", final_power);
  if (feature == "zero") sched += " zero-feature";
  if (mode == "ldm_released") sched += " ldm-released";
  return {{"k", std::to_string(k), static_cast<double>(k)},
          {"m", std::to_string(k + 1), static_cast<double>(k + 1)},  // the paper's branch
          {"N", std::to_string(interval), static_cast<double>(interval)},
          {"schedule", sched}};
}

std::string DeepCacheSettings::uncomputed_note() const {
  return fmt::format("these blocks lie below the cache branch (k = {}), which partial calls skip", k);
}

namespace {

const Fields<DeepCacheSettings>& deepcache_fields() {
  using D = DeepCacheSettings;
  static const Fields<D> f = {{"k", &D::k},           {"interval", &D::interval},       {"schedule", &D::schedule_name},
                              {"center", &D::center}, {"power", &D::power},             {"full_steps", &D::explicit_steps},
                              {"feature", &D::feature}, {"mode", &D::mode},            {"index", &D::index},
                              {"gate", &D::gate},     {"gate_warmup", &D::gate_warmup}, {"gate_max_cached", &D::gate_max_cached}};
  return f;
}

// The dynamic gate's keys; true when it is on (then the schedule's keys must be absent).
bool read_gate(const ReadContext& c, DeepCacheSettings& s) {
  const Reader& r = c.reader;
  if (!(s.gate >= 0) || !std::isfinite(s.gate)) r.fail("cache.gate", fmt::format("{} must be a threshold >= 0 (0: no gate)", s.gate));
  r.at_least("cache.gate_warmup", s.gate_warmup, 0);
  r.at_least("cache.gate_max_cached", s.gate_max_cached, 0, "0 is no limit");
  if (s.gate == 0) {
    for (const char* key : {"gate_warmup", "gate_max_cached"})
      if (c.block.contains(key)) r.fail(std::string("cache.") + key, "applies to the dynamic gate only (set cache.gate > 0)");
    return false;
  }
  for (const char* key : {"interval", "schedule", "center", "power", "full_steps", "feature", "mode"})
    if (c.block.contains(key))
      r.fail(std::string("cache.") + key, "the dynamic gate (cache.gate) decides the full calls; drop this key or the gate");
  return true;
}

std::shared_ptr<const PolicySettings> read(const ReadContext& c) {
  auto s = std::make_shared<DeepCacheSettings>();
  const Reader& r = c.reader;
  const nlohmann::json& m = c.block;
  get_fields(m, r, "cache", deepcache_fields(), *s);
  s->num_skips = c.num_skips;
  s->num_calls = c.num_calls;
  s->pndm = c.sampler == "pndm";
  if (s->k < 0 || s->k >= c.num_skips)
    r.fail("cache.k", fmt::format("skip index {} is out of range for the {} '{}' UNet: valid k are 0..{} (paper branch m = k+1)",
                                  s->k, c.family, c.preset, c.num_skips - 1));
  r.at_least("cache.interval", s->interval, 1, "N = 1 is no reuse");
  r.one_of("cache.schedule", s->schedule_name, {"uniform", "nonuniform", "ldm_nonuniform", "explicit"});
  r.one_of("cache.feature", s->feature, {"cached", "zero"});
  r.one_of("cache.mode", s->mode, {"chained", "ldm_released"});
  if (s->mode == "ldm_released" && c.family != "ldm")
    r.fail("cache.mode", fmt::format("ldm_released is the released LDM code's pass; the {} family caches chained only", c.family));
  // cache.index: the set over all model calls, or over the steps read as call indices (the SD
  // reference's indexing for PNDM, its default there).
  if (s->index.empty()) s->index = s->pndm ? "steps" : "calls";
  r.one_of("cache.index", s->index, {"calls", "steps"});
  if (read_gate(c, *s)) return s;
  if (!c.enabled) return s;
  try {
    const auto fc = deepcache::full_calls({s->schedule_name, s->interval, s->center, s->power, s->explicit_steps, s->index},
                                          c.num_calls, c.num_steps);
    s->full_steps = fc.steps;
    s->final_power = fc.final_power;
    if (!fc.warning.empty() && c.warnings) c.warnings->push_back(r.at("cache.center") + ": " + fc.warning);
  } catch (const Error& e) {
    r.fail(s->schedule_name == "explicit" ? "cache.full_steps" : "cache.schedule", e.what());
  }
  return s;
}

}  // namespace

std::shared_ptr<const PolicySettings> deepcache_settings(const DeepCacheOptions& o) {
  auto s = std::make_shared<DeepCacheSettings>();
  s->num_skips = o.num_skips;
  s->k = o.k;
  models::deepcache_stage(o.num_skips, o.k);  // dc::Error for k outside [0, S-1]
  s->schedule_name = "explicit";
  s->explicit_steps = s->full_steps = o.full_calls;
  s->num_calls = o.num_calls;
  s->feature = o.zero_feature ? "zero" : "cached";
  s->mode = o.ldm_released ? "ldm_released" : "chained";
  s->index = "calls";
  return s;
}

PolicyType deepcache_policy() {
  return {"deepcache",
          "DeepCache: full calls on a schedule (uniform, non-uniform, explicit) fill the cache at skip index k; the calls "
          "between them run only the layers above k",
          keys_of(deepcache_fields()),
          read,
          {"k", "m", "N", "schedule"},
          /*modifier=*/false,
          /*caches_features=*/true};
}

}  // namespace dc::harness::policies
