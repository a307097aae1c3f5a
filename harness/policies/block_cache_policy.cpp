// The block_cache policy's per-call side (block_cache.{h,cpp}: its rule and settings): the calls
// follow the schedule of the calibration; the calibration measures every block's relative change
// on the uncached network.
#include <fmt/format.h>

#include "common/error.h"
#include "harness/policies/block_cache.h"
#include "harness/policies/policy_state.h"

namespace dc::harness::policies {
namespace {

class BlockCachePolicy final : public Policy {
 public:
  explicit BlockCachePolicy(const BlockCacheSettings& s) {
    if (s.changes.empty()) throw Error("block_cache: no calibration (the runner calibrates before sampling, or cache.calibration gives one)");
    plans_ = block_cache_schedule(s.changes, s.delta);
  }
  models::CallRequest decide(int call, const torch::Tensor&, const torch::Tensor&) override { return plans_.at(call); }

 private:
  std::vector<models::CallPlan> plans_;
};

// Per call and stage, the sum over calibration samples of ‖o(i,c) − o(i,c−1)‖₁ / ‖o(i,c)‖₁, and the
// samples counted.
struct ChangeSums {
  std::vector<std::vector<double>> sum;
  std::vector<int64_t> count;
};

class ChangeMeasure final : public Policy {
 public:
  ChangeMeasure(std::shared_ptr<ChangeSums> sums, int stages) : sums_(std::move(sums)), stages_(stages) {}
  void begin(int64_t) override { prev_.assign(stages_, torch::Tensor()); }
  models::CallRequest decide(int, const torch::Tensor&, const torch::Tensor&) override {
    models::CallRequest r;
    for (int s = 0; s < stages_; ++s) r.observe.push_back(s);
    return r;
  }
  void observe(int call, const models::CallRecord& record, const models::StageCache&) override {
    for (int s = 0; s < stages_; ++s) {
      const torch::Tensor& o = record.outputs.at(s);
      if (prev_[s].defined()) {
        const torch::Tensor num = (o - prev_[s]).abs().flatten(1).sum(1).to(torch::kDouble);
        const torch::Tensor den = o.abs().flatten(1).sum(1).to(torch::kDouble).clamp_min(1e-30);
        sums_->sum[call][s] += (num / den).sum().item<double>();
        if (s == 0) sums_->count[call] += o.size(0);
      }
      prev_[s] = o;
    }
  }

 private:
  std::shared_ptr<ChangeSums> sums_;
  int stages_;
  std::vector<torch::Tensor> prev_;
};

struct ChangeMeasureSettings final : PolicySettings {
  std::shared_ptr<ChangeSums> sums;
  int stages = 0;
  nlohmann::json resolved() const override { return nlohmann::json::object(); }
  std::string describe() const override { return " block change calibration"; }
  std::optional<std::vector<models::CallPlan>> schedule() const override { return std::nullopt; }
  std::unique_ptr<Policy> make() const override { return std::make_unique<ChangeMeasure>(sums, stages); }
};

class BlockCalibration final : public Calibration {
 public:
  explicit BlockCalibration(const BlockCacheSettings& s) : s_(s), measuring_(std::make_shared<ChangeMeasureSettings>()) {
    measuring_->stages = models::num_stages(s.num_skips);
    measuring_->sums = std::make_shared<ChangeSums>();
    measuring_->sums->sum.assign(s.num_calls, std::vector<double>(measuring_->stages, 0.0));
    measuring_->sums->count.assign(s.num_calls, 0);
  }
  int samples() const override { return s_.calibration_samples; }
  std::shared_ptr<const PolicySettings> measuring() const override { return measuring_; }
  std::shared_ptr<const PolicySettings> calibrated(double seconds) const override {
    auto c = std::make_shared<BlockCacheSettings>(s_);
    const ChangeSums& m = *measuring_->sums;
    c->changes.assign(s_.num_calls, std::vector<double>(measuring_->stages, 0.0));  // call 0: no previous output
    for (int call = 1; call < s_.num_calls; ++call) {
      if (m.count[call] == 0) throw Error(fmt::format("block_cache: the calibration measured nothing at call {}", call));
      for (int s = 0; s < measuring_->stages; ++s) c->changes[call][s] = m.sum[call][s] / static_cast<double>(m.count[call]);
    }
    c->calibration_seconds = seconds;
    return c;
  }

 private:
  const BlockCacheSettings s_;
  std::shared_ptr<ChangeMeasureSettings> measuring_;
};

}  // namespace

std::unique_ptr<Policy> BlockCacheSettings::make() const { return std::make_unique<BlockCachePolicy>(*this); }

std::shared_ptr<Calibration> BlockCacheSettings::calibration() const {
  return changes.empty() ? std::make_shared<BlockCalibration>(*this) : nullptr;
}

}  // namespace dc::harness::policies
