// The step_skip policy's per-call state (its settings and rule: step_skip.{h,cpp}): what each
// indicator measures from the calls' tensors, fed to the rule call by call; and MagCache's
// calibration (the magnitude ratios of the uncached network's output residuals).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "harness/policies/measure.h"
#include "harness/policies/policy_state.h"
#include "harness/policies/step_skip.h"

namespace dc::harness::policies {
namespace {

using Indicator = SkipRule::Indicator;

// Block 1's residual (its output minus its input, block 0's output), or its output where the
// family's block changes the shape.
torch::Tensor first_block_residual(const std::vector<torch::Tensor>& hs) {
  return hs[1].sizes() == hs[0].sizes() ? hs[1] - hs[0] : hs[1];
}

class StepSkipPolicy final : public Policy {
 public:
  explicit StepSkipPolicy(const StepSkipSettings& s) : s_(s), rule_(s.rule()) {
    if (rule_.indicator == Indicator::magnitude && static_cast<int>(s_.ratios.size()) != s_.num_calls)
      throw Error("step_skip magnitude: no calibration (the runner calibrates before sampling, or cache.calibration gives one)");
  }
  void begin(int64_t) override {
    rule_.begin();
    prev_x_ = last_x_ = last_out_ = ref_ = pending_ref_ = torch::Tensor();
    rate_ = last_din_ = std::numeric_limits<double>::quiet_NaN();
  }

  models::CallRequest decide(int call, const torch::Tensor&, const torch::Tensor& x) override {
    models::CallRequest full;
    full.store_residual = true;
    x_ = x;
    double m = std::numeric_limits<double>::quiet_NaN();
    switch (rule_.indicator) {
      case Indicator::input_change:
        if (prev_x_.defined()) m = relative_l1(x, prev_x_);
        prev_x_ = x;  // TeaCache compares consecutive calls, computed or not
        break;
      case Indicator::magnitude:
        m = s_.ratios[call];
        break;
      case Indicator::transformation_rate:
        last_din_ = last_x_.defined() ? mean_abs(x - last_x_) : std::numeric_limits<double>::quiet_NaN();
        if (std::isfinite(rate_) && last_out_mag_ > 0 && last_din_ > 0) m = rate_ * last_din_ / last_out_mag_;
        break;
      case Indicator::first_block: {
        // Decided inside the call, after input block 1 (the gate also keeps the block's residual of
        // a computed call: the next call's reference).
        full.gate = models::CallGate{1, [this, call](const torch::Tensor&, const std::vector<torch::Tensor>& hs) {
                                        pending_ref_ = first_block_residual(hs);
                                        const double d = ref_.defined() ? relative_l1(pending_ref_, ref_) : std::numeric_limits<double>::quiet_NaN();
                                        return rule_.skip(call, d);
                                      },
                                      skip_rest()};
        return full;
      }
    }
    if (rule_.skip(call, m)) return skip_rest();
    return full;
  }

  void observe(int, const models::CallRecord& record, const models::StageCache& cache) override {
    if (!record.network || record.gated) return;  // skipped: nothing new measured
    if (rule_.indicator == Indicator::first_block) ref_ = pending_ref_;
    if (rule_.indicator != Indicator::transformation_rate) return;
    const torch::Tensor out = x_ + cache.residual(x_.size(0));
    if (last_out_.defined() && std::isfinite(last_din_) && last_din_ > 0) {
      const double dout = mean_abs(out - last_out_);
      if (dout > 0 && std::isfinite(dout / last_din_)) rate_ = dout / last_din_;
    }
    last_x_ = x_;
    last_out_ = out;
    last_out_mag_ = mean_abs(out);
  }

 private:
  static models::CallPlan skip_rest() {
    models::CallPlan p;
    p.skip_all = true;
    return p;
  }
  const StepSkipSettings s_;
  SkipRule rule_;
  torch::Tensor x_, prev_x_, last_x_, last_out_, ref_, pending_ref_;
  double rate_ = 0, last_din_ = 0, last_out_mag_ = 0;
};

// ---- MagCache's calibration -------------------------------------------------------------------
// Per call, the sum over calibration samples of mean ‖r_c‖/‖r_{c−1}‖ (the per-position channel
// norms of the output residuals, averaged over positions), and the samples counted.
struct MagnitudeSums {
  std::vector<double> sum;
  std::vector<int64_t> count;
};

class MagnitudeMeasure final : public Policy {
 public:
  explicit MagnitudeMeasure(std::shared_ptr<MagnitudeSums> sums) : sums_(std::move(sums)) {}
  void begin(int64_t) override { prev_ = torch::Tensor(); }
  models::CallRequest decide(int, const torch::Tensor&, const torch::Tensor& x) override {
    x_ = x;
    models::CallRequest r;
    r.store_residual = true;
    return r;
  }
  void observe(int call, const models::CallRecord&, const models::StageCache& cache) override {
    const torch::Tensor norms = channel_norms(cache.residual(x_.size(0)));
    if (prev_.defined()) {
      const torch::Tensor per_sample = (norms / prev_.clamp_min(1e-12)).flatten(1).mean(1).to(torch::kDouble).cpu();
      sums_->sum[call] += per_sample.sum().item<double>();
      sums_->count[call] += per_sample.size(0);
    }
    prev_ = norms;
  }

 private:
  std::shared_ptr<MagnitudeSums> sums_;
  torch::Tensor x_, prev_;
};

struct MagnitudeMeasureSettings final : PolicySettings {
  std::shared_ptr<MagnitudeSums> sums;
  nlohmann::json resolved() const override { return nlohmann::json::object(); }
  std::string describe() const override { return " magnitude calibration"; }
  std::optional<std::vector<models::CallPlan>> schedule() const override { return std::nullopt; }
  std::unique_ptr<Policy> make() const override { return std::make_unique<MagnitudeMeasure>(sums); }
};

class MagnitudeCalibration final : public Calibration {
 public:
  explicit MagnitudeCalibration(const StepSkipSettings& s) : s_(s), measuring_(std::make_shared<MagnitudeMeasureSettings>()) {
    measuring_->sums = std::make_shared<MagnitudeSums>();
    measuring_->sums->sum.assign(s.num_calls, 0.0);
    measuring_->sums->count.assign(s.num_calls, 0);
  }
  int samples() const override { return s_.calibration_samples; }
  std::shared_ptr<const PolicySettings> measuring() const override { return measuring_; }
  std::shared_ptr<const PolicySettings> calibrated(double seconds) const override {
    auto c = std::make_shared<StepSkipSettings>(s_);
    c->ratios.assign(s_.num_calls, 1.0);  // call 0 has no previous residual
    const MagnitudeSums& m = *measuring_->sums;
    for (int i = 1; i < s_.num_calls; ++i) {
      if (m.count[i] == 0) throw Error(fmt::format("step_skip magnitude: the calibration measured nothing at call {}", i));
      c->ratios[i] = m.sum[i] / static_cast<double>(m.count[i]);
    }
    c->calibration_seconds = seconds;
    return c;
  }

 private:
  const StepSkipSettings s_;
  std::shared_ptr<MagnitudeMeasureSettings> measuring_;
};

}  // namespace

std::unique_ptr<Policy> StepSkipSettings::make() const { return std::make_unique<StepSkipPolicy>(*this); }

std::shared_ptr<Calibration> StepSkipSettings::calibration() const {
  if (indicator != "magnitude" || !ratios.empty()) return nullptr;
  return std::make_shared<MagnitudeCalibration>(*this);
}

}  // namespace dc::harness::policies
