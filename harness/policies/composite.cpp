#include "harness/policies/composite.h"

#include <fmt/format.h>

#include "common/error.h"

namespace dc::harness::policies {
namespace {

// The first member's calibration (the modifiers measure nothing ahead); calibrated() puts the
// calibrated first member back among the others.
class CompositeCalibration final : public Calibration {
 public:
  CompositeCalibration(std::shared_ptr<Calibration> inner, const CompositeSettings& outer) : inner_(std::move(inner)), outer_(outer) {}
  int samples() const override { return inner_->samples(); }
  std::shared_ptr<const PolicySettings> measuring() const override { return inner_->measuring(); }
  std::shared_ptr<const PolicySettings> calibrated(double seconds) const override {
    auto members = outer_.members();
    members.front() = inner_->calibrated(seconds);
    return std::make_shared<CompositeSettings>(outer_.names(), std::move(members));
  }

 private:
  std::shared_ptr<Calibration> inner_;
  const CompositeSettings outer_;
};

}  // namespace

std::shared_ptr<Calibration> CompositeSettings::calibration() const {
  for (std::size_t i = 1; i < members_.size(); ++i)
    if (members_[i]->calibration()) throw Error(fmt::format("policy {}: a modifier that calibrates is not supported", names_[i]));
  auto inner = members_.front()->calibration();
  return inner ? std::make_shared<CompositeCalibration>(std::move(inner), *this) : nullptr;
}

std::shared_ptr<const PolicySettings> compose(std::vector<std::string> names, std::vector<std::shared_ptr<const PolicySettings>> members) {
  if (members.empty() || members.size() != names.size()) throw Error("compose: one name per policy, at least one");
  if (members.size() == 1) return members.front();
  return std::make_shared<CompositeSettings>(std::move(names), std::move(members));
}

}  // namespace dc::harness::policies
