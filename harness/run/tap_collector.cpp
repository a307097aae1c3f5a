#include "harness/run/tap_collector.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "harness/runtime.h"

namespace dc::harness {

namespace {
// Cosine similarity between the features of every pair of calls, averaged over samples.
// feats: per call, [m, D] (already L2-normalised rows).
torch::Tensor similarity_matrix(const std::vector<torch::Tensor>& feats) {
  const torch::Tensor f = torch::stack(feats).to(torch::kFloat64).permute({1, 0, 2});  // [m, S, D]
  return torch::bmm(f, f.transpose(1, 2)).mean(0);                                     // [S, S]
}
}  // namespace

TapCollector::TapCollector(std::vector<std::string> taps, int64_t samples, torch::Device device)
    : taps_(std::move(taps)), samples_(samples), device_(device) {}

models::Trace* TapCollector::arm(int64_t rows) {
  rows_ = std::min<int64_t>(rows, samples_);
  trace_.tap_names = std::set<std::string>(taps_.begin(), taps_.end());
  armed_ = true;
  return &trace_;
}

double TapCollector::collect(int64_t batch_rows) {
  if (!armed_) return 0.0;
  device_sync(device_);
  const auto start = std::chrono::steady_clock::now();
  for (const auto& tap : taps_) {
    auto it = trace_.taps.find(tap);
    if (it == trace_.taps.end()) continue;
    // With batched guidance the UNet sees [unconditional; conditional]: take the conditional half.
    const int64_t off = it->second.size(0) == 2 * batch_rows ? batch_rows : 0;
    const torch::Tensor f = it->second.slice(0, off, off + rows_).flatten(1).to(torch::kCPU, torch::kFloat);
    feats_[tap].push_back(f / f.norm(2, {1}, true).clamp_min(1e-12));  // F.normalize(f, dim=1)
  }
  trace_.taps.clear();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::map<std::string, torch::Tensor> TapCollector::finish(int calls, std::string* skipped) {
  std::map<std::string, torch::Tensor> maps;
  for (const auto& tap : taps_) {
    auto f = feats_.find(tap);
    if (f != feats_.end() && static_cast<int>(f->second.size()) == calls) maps[tap] = similarity_matrix(f->second);
    else *skipped += (skipped->empty() ? "" : ", ") + tap;
  }
  feats_.clear();
  armed_ = false;
  return maps;
}

}  // namespace dc::harness
