// One cache mechanism for every UNet family (DESIGN.md §4b): what one model call computes (a
// CallRequest: the torch-free CallPlan of models/call_plan.h, which numbers the stages, plus the
// tensors it may hand in), the cache of stage outputs it fills and reads (StageCache), what it did
// (CallRecord), and the one function that runs a call under a request (run_call). The families
// expose their stages (models/unet.h); no family file knows about caching, and no policy logic is
// here: harness/policies decides the requests.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "models/call_plan.h"

namespace dc::models {

class UNet;
struct Trace;

// A decision made inside a call (DBCache's and First-Block Cache's rules: compute the first blocks,
// then measure): once stage `stage` is computed under the request's own actions, `reuse(h)` is asked
// with its output; true continues the call under `cached` for the later stages (their actions, what
// they store and observe, store_residual; cached.skip_all: nothing more runs and the output is x +
// the stored residual), false under the request's own. `hs`: the input blocks' outputs so far.
struct CallGate {
  int stage = -1;
  std::function<bool(const torch::Tensor& h, const std::vector<torch::Tensor>& hs)> reuse;
  CallPlan cached;
};

struct CallRequest : CallPlan {
  CallRequest() = default;
  CallRequest(CallPlan plan) : CallPlan(std::move(plan)) {}  // NOLINT: a plan is a request without tensors
  std::map<int, torch::Tensor> given;  // Reuse of these stages reads this tensor (a forecast, zeros)
  std::optional<CallGate> gate;        // decided mid-call (run eagerly: CUDA graphs do not serve it)
  std::string kind() const;            // CallPlan::kind(), " given 20" when tensors are handed in, " gate 3" with a gate
};

// The cache a generation's calls share. Reset at the start of every generation.
class StageCache {
 public:
  void reset();
  void store(int stage, torch::Tensor value);
  // The stored output of `stage` for a batch of `batch`; dc::Error naming the stage when none was
  // stored (or for another batch size).
  const torch::Tensor& get(int stage, int64_t batch, const std::string& stage_name) const;
  bool has(int stage) const { return stored_.count(stage) > 0; }
  // The stored output of `stage`, or an undefined tensor.
  const torch::Tensor& peek(int stage) const;
  void store_residual(const torch::Tensor& x, const torch::Tensor& out);
  const torch::Tensor& residual(int64_t batch) const;

 private:
  std::map<int, torch::Tensor> stored_;
  torch::Tensor residual_;
};

// What a call did: the stages it computed (the cost log MACs are counted from), the outputs asked
// for by `observe`, and, when the trace counts MACs, each stage's MACs.
struct CallRecord {
  std::vector<uint8_t> computed;        // per stage id: 1 = computed (Compute or ComputeDiscard)
  bool network = true;                  // the embedding ran (false for skip_all)
  bool gated = false;                   // the request's gate chose its cached continuation
  std::map<int, torch::Tensor> outputs;  // observed stage outputs
  // With a MAC-counting trace (else empty / 0): per stage id, and the embedding's and head's (paper
  // count, all).
  std::vector<double> stage_macs, stage_macs_all;
  double embed_macs = 0, embed_macs_all = 0, head_macs = 0, head_macs_all = 0;
};

// The one function that runs a UNet call under a request (nullptr: the plain network; `cache` may
// then be null). dc::Error when the request is malformed or reads what was never stored.
torch::Tensor run_call(UNet& net, const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond,
                       const CallRequest* request, StageCache* cache, Trace* trace, CallRecord* record = nullptr);

// DeepCache's cut as requests (models/call_plan.h: deepcache_plan, released_ldm_plan).
inline CallRequest deepcache_request(int num_skips, int k, bool partial) { return deepcache_plan(num_skips, k, partial); }
inline CallRequest released_ldm_request(int num_skips, int L, bool partial) { return released_ldm_plan(num_skips, L, partial); }

}  // namespace dc::models
