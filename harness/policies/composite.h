// Policies composed where their papers compose them (`cache.policy: [deepcache, taylorseer]`): the
// first decides each call's request, every later one (a PolicyType::modifier) changes it in turn,
// and all of them observe what the call did. Their keys share the `cache:` block (a key two of them
// read is refused when the block is read). Torch-free; the per-call side is composite_policy.cpp.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "harness/policies/policy.h"

namespace dc::harness::policies {

class CompositeSettings final : public PolicySettings {
 public:
  CompositeSettings(std::vector<std::string> names, std::vector<std::shared_ptr<const PolicySettings>> members)
      : names_(std::move(names)), members_(std::move(members)) {}
  nlohmann::json resolved() const override {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& m : members_) j.update(m->resolved());
    return j;
  }
  std::string describe() const override {
    std::string s = members_.front()->describe();
    for (std::size_t i = 1; i < members_.size(); ++i) s += " +" + members_[i]->describe();
    return s;
  }
  // A modifier changes what reused stages read, not which stages run: the first policy's schedule.
  std::optional<std::vector<models::CallPlan>> schedule() const override { return members_.front()->schedule(); }
  nlohmann::json facts() const override {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& m : members_) j.update(m->facts());
    return j;
  }
  std::string plan_note() const override {
    std::string s;
    for (const auto& m : members_) s += m->plan_note();
    return s;
  }
  std::vector<ReportColumn> report_columns() const override {
    std::vector<ReportColumn> v;
    for (const auto& m : members_) {
      auto c = m->report_columns();
      v.insert(v.end(), c.begin(), c.end());
    }
    return v;
  }
  std::string uncomputed_note() const override { return members_.front()->uncomputed_note(); }
  std::unique_ptr<Policy> make() const override;  // composite_policy.cpp
  std::shared_ptr<Calibration> calibration() const override;
  bool decides_per_batch() const override {
    for (const auto& m : members_)
      if (m->decides_per_batch()) return true;
    return false;
  }

  const std::vector<std::string>& names() const { return names_; }
  const std::vector<std::shared_ptr<const PolicySettings>>& members() const { return members_; }

 private:
  std::vector<std::string> names_;
  std::vector<std::shared_ptr<const PolicySettings>> members_;
};

// The settings of `members` (in order: the deciding policy, then its modifiers), named `names`.
std::shared_ptr<const PolicySettings> compose(std::vector<std::string> names, std::vector<std::shared_ptr<const PolicySettings>> members);

}  // namespace dc::harness::policies
