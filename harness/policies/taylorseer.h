// The taylorseer policy's settings (read in taylorseer.cpp, torch-free; its per-call state is
// taylorseer_policy.cpp's).
#pragma once
#include <fmt/format.h>

#include "harness/policies/policy.h"

namespace dc::harness::policies {

struct TaylorSeerSettings final : PolicySettings {
  int order = 2;
  nlohmann::json resolved() const override { return {{"order", order}}; }
  std::string describe() const override { return fmt::format(" taylorseer order={}", order); }
  std::optional<std::vector<models::CallPlan>> schedule() const override { return std::nullopt; }
  std::vector<ReportColumn> report_columns() const override {
    return {{"forecast", fmt::format("taylor {}", order), static_cast<double>(order)}};
  }
  std::unique_ptr<Policy> make() const override;
};

}  // namespace dc::harness::policies
