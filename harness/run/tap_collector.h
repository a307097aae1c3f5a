// The similarity maps' features (`similarity:`; paper Figure 2): on a run's first batch, the
// outputs of the tapped blocks at every model call, L2-normalised per sample, for its first
// `similarity.samples` samples; after the batch, the call x call cosine similarity of each tap that
// ran at every call. Copying features is measurement, not sampling: its time (after a device
// synchronise, so no model time goes with it) is returned, for the batch's clock to leave out.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "models/trace.h"

namespace dc::harness {

class TapCollector {
 public:
  TapCollector(std::vector<std::string> taps, int64_t samples, torch::Device device);
  // The trace to hand the denoiser for a batch of `rows` samples (the first batch), or nullptr.
  models::Trace* arm(int64_t rows);
  bool armed() const { return armed_; }
  // After a model call of the armed batch: keeps each tap's features; returns the seconds spent.
  double collect(int64_t batch_rows);
  // The maps of the taps that ran at every one of `calls` calls; `skipped`: the others, listed.
  std::map<std::string, torch::Tensor> finish(int calls, std::string* skipped);

 private:
  std::vector<std::string> taps_;
  int64_t samples_ = 0, rows_ = 0;
  torch::Device device_;
  models::Trace trace_;
  bool armed_ = false;
  std::map<std::string, std::vector<torch::Tensor>> feats_;
};

}  // namespace dc::harness
