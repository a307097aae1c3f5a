// The step_skip policy: its YAML, defaults and decision rule (step_skip.h says the rule per
// indicator). Its keys in `cache:`:
//   indicator   input_change | first_block | magnitude | transformation_rate (default input_change)
//   threshold   the indicator's threshold (defaults below, from each method's paper or code)
//   max_skips   consecutive skipped calls at most (0: no limit)
//   warmup      the fraction of calls at the start always computed (at least call 0)
//   cooldown    the fraction of calls at the end always computed (at least the last call)
//   rescale     input_change: polynomial coefficients (highest degree first) applied to m
//   calibration_samples  magnitude: samples of the calibration run (the run's first)
//   calibration          magnitude: γ per model call, as a run stored it (then nothing is calibrated)
#include <fmt/format.h>

#include <cmath>

#include "harness/config_fields.h"
#include "harness/policies/registry_entries.h"
#include "harness/policies/step_skip.h"

namespace dc::harness::policies {

bool SkipRule::skip(int call, double m) {
  if (forced(call) || !std::isfinite(m)) {
    reset();
    return false;
  }
  bool under = false;
  switch (indicator) {
    case Indicator::input_change: {
      double f = rescale.empty() ? m : 0.0;
      for (const double c : rescale) f = f * m + c;  // Horner, highest degree first (numpy.poly1d)
      acc_ += f;
      under = acc_ < threshold;
      break;
    }
    case Indicator::transformation_rate:
      acc_ += m;
      under = acc_ < threshold;
      break;
    case Indicator::magnitude:
      ratio_ *= m;
      acc_ += std::abs(1.0 - ratio_);
      under = acc_ < threshold;
      break;
    case Indicator::first_block:
      under = m < threshold;
      break;
  }
  if (!under) {
    reset();
    return false;
  }
  ++run_;
  return true;
}

namespace {

struct IndicatorDefaults {
  const char* name;
  SkipRule::Indicator indicator;
  double threshold, warmup, cooldown;
  int max_skips;
};
// TeaCache: rel_l1_thresh 0.1 (its lighter setting), first and last step computed. ParaAttention's
// First-Block Cache: residual_diff_threshold 0.08. MagCache: threshold 0.06, K = 3, retention ratio
// 0.2. EasyCache (stable-diffusion.cpp): reuse_threshold 0.2, start 0.15, end 0.95.
constexpr IndicatorDefaults kDefaults[] = {
    {"input_change", SkipRule::Indicator::input_change, 0.1, 0.0, 0.0, 0},
    {"first_block", SkipRule::Indicator::first_block, 0.08, 0.0, 0.0, 0},
    {"magnitude", SkipRule::Indicator::magnitude, 0.06, 0.2, 0.0, 3},
    {"transformation_rate", SkipRule::Indicator::transformation_rate, 0.2, 0.15, 0.05, 0},
};

const Fields<StepSkipSettings>& step_skip_fields() {
  static const Fields<StepSkipSettings> f = {{"indicator", &StepSkipSettings::indicator},
                                             {"threshold", &StepSkipSettings::threshold},
                                             {"max_skips", &StepSkipSettings::max_skips},
                                             {"warmup", &StepSkipSettings::warmup},
                                             {"cooldown", &StepSkipSettings::cooldown},
                                             {"rescale", &StepSkipSettings::rescale},
                                             {"calibration_samples", &StepSkipSettings::calibration_samples},
                                             {"calibration", &StepSkipSettings::ratios}};
  return f;
}

std::shared_ptr<const PolicySettings> read_step_skip(const ReadContext& c) {
  auto s = std::make_shared<StepSkipSettings>();
  const Reader& r = c.reader;
  const nlohmann::json& m = c.block;
  r.get(m, "cache", "indicator", s->indicator);
  std::vector<std::string> indicators;
  for (const auto& d : kDefaults) indicators.emplace_back(d.name);
  r.one_of("cache.indicator", s->indicator, indicators);
  for (const auto& d : kDefaults)
    if (s->indicator == d.name) s->threshold = d.threshold, s->warmup = d.warmup, s->cooldown = d.cooldown, s->max_skips = d.max_skips;
  get_fields(m, r, "cache", step_skip_fields(), *s);  // the indicator's defaults set, the given values over them
  s->num_calls = c.num_calls;
  if (!(s->threshold > 0) || !std::isfinite(s->threshold)) r.fail("cache.threshold", fmt::format("{} must be a positive number", s->threshold));
  r.at_least("cache.max_skips", s->max_skips, 0, "0 is no limit");
  for (const auto& [key, v] : {std::pair<const char*, double>{"cache.warmup", s->warmup}, {"cache.cooldown", s->cooldown}})
    if (!(v >= 0 && v < 1)) r.fail(key, fmt::format("{} is not a fraction of the calls in [0, 1)", v));
  if (!s->rescale.empty() && s->indicator != "input_change")
    r.fail("cache.rescale", "only the input_change indicator (TeaCache) rescales its measurement");
  if (s->indicator != "magnitude" && (m.contains("calibration") || m.contains("calibration_samples")))
    r.fail(m.contains("calibration") ? "cache.calibration" : "cache.calibration_samples", "only the magnitude indicator (MagCache) is calibrated");
  r.at_least("cache.calibration_samples", s->calibration_samples, 1);
  if (!s->ratios.empty() && static_cast<int>(s->ratios.size()) != c.num_calls)
    r.fail("cache.calibration", fmt::format("{} ratios for a run of {} model calls (one per call, as a run of the same sampler stored them)",
                                            s->ratios.size(), c.num_calls));
  for (const double g : s->ratios)
    if (!(g > 0) || !std::isfinite(g)) r.fail("cache.calibration", fmt::format("{} is not a magnitude ratio (positive)", g));
  return s;
}

}  // namespace

SkipRule StepSkipSettings::rule() const {
  SkipRule r;
  for (const auto& d : kDefaults)
    if (indicator == d.name) r.indicator = d.indicator;
  r.threshold = threshold;
  r.max_skips = max_skips;
  r.first_free = std::max(1, static_cast<int>(std::ceil(warmup * num_calls - 1e-9)));
  r.last_free = num_calls - std::max(1, static_cast<int>(std::ceil(cooldown * num_calls - 1e-9)));
  r.rescale = rescale;
  return r;
}

nlohmann::json StepSkipSettings::resolved() const {
  nlohmann::json j = {{"indicator", indicator}, {"threshold", threshold}, {"max_skips", max_skips}, {"warmup", warmup}, {"cooldown", cooldown}};
  if (!rescale.empty()) j["rescale"] = rescale;
  if (indicator == "magnitude") {
    if (ratios.empty() || calibration_seconds >= 0) j["calibration_samples"] = calibration_samples;
    else j["calibration"] = ratios;
  }
  return j;
}

std::string StepSkipSettings::describe() const {
  std::string s = fmt::format(" {} threshold={}", indicator, threshold);
  if (max_skips > 0) s += fmt::format(" max_skips={}", max_skips);
  return s;
}

nlohmann::json StepSkipSettings::facts() const {
  if (calibration_seconds < 0) return nlohmann::json::object();
  return {{"calibration", ratios}, {"calibration_seconds", calibration_seconds}, {"calibration_samples", calibration_samples}};
}

std::vector<ReportColumn> StepSkipSettings::report_columns() const {
  return {{"indicator", indicator}, {"threshold", fmt::format("{:g}", threshold), threshold}};
}

PolicyType step_skip_policy() {
  return {"step_skip",
          "step skipping: the whole UNet skipped (its input plus the last output residual) while an indicator stays under a "
          "threshold: input_change (TeaCache), first_block (First-Block Cache), magnitude (MagCache), transformation_rate (EasyCache)",
          keys_of(step_skip_fields()),
          read_step_skip,
          {"indicator", "threshold"}};
}

}  // namespace dc::harness::policies
