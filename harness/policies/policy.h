// Caching policies (DESIGN.md §4b): which part of the network each model call computes. A policy is
// a registry entry chosen by `cache.policy` (default deepcache); it owns its YAML keys inside the
// `cache:` block (read strictly, errors located), its part of the run id, its description for
// `plan` and `report`, and its per-generation state. The loop (harness/denoiser) asks it per model
// call for a request (models/unet_call.h) and tells it afterwards what the call did; nothing else
// in the harness knows what a policy's settings mean.
//
//   settings = type.read(context)      once, when the experiment is read (errors: file:line: key)
//   policy = settings->make()          per sampling (run, shard, repeat): policy_state.h
//   policy->begin(batch)               per generation (its call 0)
//   request = policy->decide(call, t, x); eps = UNet under request; policy->observe(call, record, cache)
//
// This header is torch-free (the experiment reader is fuzzed without LibTorch); the per-call side,
// with tensors, is harness/policies/policy_state.h. Registering a policy: one file under
// harness/policies/ defining a PolicyType, listed in registry.cpp's builtin table; or
// register_policy() at run time (a test's toy policy).
#pragma once
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/config_reader.h"
#include "models/call_plan.h"

namespace dc::harness::policies {

class Policy;  // harness/policies/policy_state.h
class PolicySettings;

// A policy that measures the uncached network before it samples (block_cache; step_skip with the
// magnitude indicator): the runner generates samples 0..samples()-1 of the run (the same noise and
// conditioning in every shard) under measuring(), whose per-generation policies compute every stage
// and record what the rule needs, then samples the run under calibrated(). The measurement is the
// calibrated settings' facts()["calibration"] (stored with the results; `cache.calibration` takes it
// back, and then no calibration runs). Its time is not the run's: facts()["calibration_seconds"].
class Calibration {
 public:
  virtual ~Calibration() = default;
  virtual int samples() const = 0;
  virtual std::shared_ptr<const PolicySettings> measuring() const = 0;
  // After the measuring generations; `seconds` their time. dc::Error when nothing was measured.
  virtual std::shared_ptr<const PolicySettings> calibrated(double seconds) const = 0;
};

// A cell of `report`'s table that a policy's runs fill: its column, its text, and the number the
// CSV and sorting use (NaN: the text only).
struct ReportColumn {
  std::string name, text;
  double value = std::numeric_limits<double>::quiet_NaN();
};

// A policy's settings for one run, read from its `cache:` block. Immutable, shared by the run's
// copies; every sampling makes a fresh Policy from it.
class PolicySettings {
 public:
  virtual ~PolicySettings() = default;
  // The block as it enters the run's resolved config and run id: every setting that changes a sample,
  // defaults included, without `enabled` and `policy` (the reader adds them).
  virtual nlohmann::json resolved() const = 0;
  // Appended to the run's short description (harness/config describe_run): " k=2 N=5 nonuniform c=50 p=1.4".
  virtual std::string describe() const = 0;
  // What every call of one generation computes, when the policy knows it before sampling (plan,
  // expected MACs, warm-up); nullopt when it decides from what it measures.
  virtual std::optional<std::vector<models::CallPlan>> schedule() const = 0;
  // What reading resolved beyond the settings, stored with the run's results (e.g. {"final_power": 1.38}).
  virtual nlohmann::json facts() const { return nlohmann::json::object(); }
  // Said by `plan` after the run's calls (", final p=1.38").
  virtual std::string plan_note() const { return ""; }
  // `report`'s cells for this run, in the columns its PolicyType::report_columns names.
  virtual std::vector<ReportColumn> report_columns() const { return {}; }
  // The end of report's note on a similarity map that lacks taps because this policy's calls do not
  // compute them every time ("... a map needs the tap at every model call, and <this>").
  virtual std::string uncomputed_note() const { return "this policy's cached calls do not compute these blocks"; }
  // A fresh per-generation state (defined where LibTorch is: the policy's own file).
  virtual std::unique_ptr<Policy> make() const = 0;
  // What the policy must measure before sampling (nullptr: nothing; Calibration above).
  virtual std::shared_ptr<Calibration> calibration() const { return nullptr; }
  // True when a call's decision depends on the whole batch it measures (an adaptive rule over the
  // batch's tensors): the samples then depend on samples.batch, which joins the run id.
  virtual bool decides_per_batch() const { return false; }
};

// What a policy may know about its run when it reads its block.
struct ReadContext {
  const Reader& reader;        // reader.get(block, "cache", key, value), reader.fail("cache.key", why), reader.at(path)
  const nlohmann::json& block;  // the run's `cache:` mapping (keys already checked against PolicyType::keys)
  std::string family, preset;   // model.family, model.preset
  int num_skips = 0;            // S of the model
  std::string sampler;          // sampler.name (resolved)
  int num_calls = 0;            // model calls of one generation
  int num_steps = 0;            // sampler.steps
  std::vector<std::string>* warnings = nullptr;  // "file:line: key: what" of settings accepted but probably not meant
  // cache.enabled: a disabled block is still read and checked (a sweep may enable it), but nothing
  // expensive needs resolving (a schedule search).
  bool enabled = true;
  // The policies listed before this one in a composition (`policy: [deepcache, taylorseer]`).
  std::vector<std::string> composed_after = {};
};

struct PolicyType {
  std::string name;
  std::string summary;            // one line for docs and `--help`
  std::vector<std::string> keys;  // its keys in the `cache:` block (besides enabled and policy)
  std::function<std::shared_ptr<const PolicySettings>(const ReadContext&)> read;
  // The columns its runs fill in `report`'s table (PolicySettings::report_columns), in order. The
  // default policy's are always in the table (its layout stays the same whatever a file holds);
  // another policy's appear after them when a run of it is in the file.
  std::vector<std::string> report_columns = {};
  // A modifier changes the requests of the policy listed before it (taylorseer forecasts the
  // feature it reuses) instead of deciding the stages; alone it modifies the plain network's calls.
  bool modifier = false;
  // Its calls reuse stored stage outputs (what a modifier such as taylorseer forecasts).
  bool caches_features = false;
};

// The registered policies: the built-in ones (registry.cpp) and any register_policy() added.
const PolicyType* find_policy(const std::string& name);
std::vector<std::string> policy_names();
// Adds a policy (dc::Error when the name is taken or empty, or read is missing).
void register_policy(PolicyType type);

// The default policy's name (`cache.policy` when absent).
inline const char* default_policy() { return "deepcache"; }

// ---- helpers for the loop, plan and report ------------------------------------------------------
// The calls of a schedule that compute everything.
std::vector<int> full_calls_of(const std::vector<models::CallPlan>& schedule);

}  // namespace dc::harness::policies
