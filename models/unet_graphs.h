// CUDA graphs of a UNet's calls (`model.cuda_graphs: true`): each kind of call is captured once and
// replayed after, so a call costs one graph launch instead of hundreds of kernel launches. A UNet
// call at small batch is launch-bound on a GPU (a partial DeepCache call more so: it is short), so
// without graphs the time saved by caching is mostly not seen there.
//
// A kind of call is (x's shape and dtype, t's, the conditioning's, the request's kind: plain, or
// storing one stage and/or reusing one stage, as DeepCache's full and partial calls do;
// models/unet_call.h). Its graph has static input buffers (x, t, cond), a static output, and, for
// such requests, one static feature buffer per (stage, shape, dtype) that the storing graph writes
// and the reusing graphs read:
//   replay:  copy x, t, cond into the graph's inputs; a reusing call copies what it reads (the
//            StageCache's tensor, or the request's given tensor) into the feature buffer unless
//            it is that buffer already (it is after a replayed storing call); launch; a storing
//            call leaves the feature buffer in the StageCache (the next one overwrites it, as it
//            would replace it); eps is cloned out (samplers keep past eps: PLMS, DPM-Solver++).
//   capture: two eager calls on a side stream first (cuBLAS/cuDNN set-up, one-time constants such
//            as the timestep frequencies move to the device), then the capture on that stream,
//            all graphs sharing one memory pool (safe: each output is copied out before the next
//            replay, and the feature buffers are allocated outside the pool).
// Calls with a Trace (MAC counting, similarity taps) and other requests (several stored or reused
// stages, as the released LDM pass; skipped calls; observed outputs) run eagerly. A UNet forward that synchronises with the host cannot
// be captured: the families' forwards do not (timestep frequencies are per-device constants,
// label checks happen where labels are made).
//
// Built where LibTorch has CUDA and the CUDA runtime's headers; elsewhere the constructor throws
// dc::Error(cuda_graphs_missing()).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "models/unet.h"

namespace dc::models {

// Why this build cannot capture CUDA graphs (one line naming model.cuda_graphs), "" when it can.
std::string cuda_graphs_missing();

class UNetGraphs {
 public:
  explicit UNetGraphs(std::shared_ptr<UNet> net);
  ~UNetGraphs();
  UNetGraphs(const UNetGraphs&) = delete;
  UNetGraphs& operator=(const UNetGraphs&) = delete;

  // As net->forward(x, t, cond, request, cache, nullptr), through the graph of this kind of call
  // (captured now if it is the first). x on a CUDA device; t and cond are moved there.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond,
                        const CallRequest* request, StageCache* cache);
  int64_t captures() const;  // graphs captured so far
  int64_t replays() const;   // calls served by a replay (a capture's own first call included)
  int64_t eager() const;     // calls run eagerly (requests graphs do not serve: the released LDM pass, ...)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dc::models
