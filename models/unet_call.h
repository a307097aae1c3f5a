// One cache mechanism for every UNet family (DESIGN.md §4b): what one model call computes (a
// CallRequest), the cache of stage outputs it fills and reads (StageCache), what it did
// (CallRecord), and the one function that runs a call under a request (run_call). The families
// expose their stages (models/unet.h); no family file knows about caching, and no policy logic is
// here: harness/policies decides the requests.
//
// Stages of a call, in execution order, with ids:
//   input block j   (j in 0..S-1): id j       its output is the skip tensor hs[j]
//   middle                       : id S       input: hs[S-1]
//   output block i  (i in 0..S-1): id S+1+i   input: cat(the previous stage's output, hs[S-1-i])
// The timestep/conditioning embedding runs before them and the head after them on every computed
// call. DeepCache at skip index k (models/deepcache_io.h) is: a full call stores the output of stage
// S+1+(S-2-k) (the middle's for k = S-1), the tensor entering the output block that consumes hs[k]; a
// partial call computes input blocks 0..k, reuses that stored tensor and computes output blocks
// S-1-k..S-1 (deepcache_request below: the cut, written once).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dc::models {

class UNet;
struct Trace;

enum class StageAction : uint8_t {
  Compute,         // run the stage on the previous stage's output (and its skip)
  Reuse,           // its output is the stored one (or the request's `given` tensor)
  Skip,            // not needed: nothing later reads it
  ComputeDiscard,  // run it (its cost is real), then continue from its stored output (the released LDM pass)
};

struct CallRequest {
  std::vector<StageAction> stages;           // 2S+1 actions by stage id; empty: compute every stage
  std::vector<int> store;                    // stage ids whose outputs this call stores in the cache
  std::map<int, torch::Tensor> given;        // Reuse of these stages reads this tensor (a forecast, zeros)
  std::vector<int> observe;                  // stage ids whose outputs the CallRecord returns
  bool skip_all = false;                     // nothing runs: output = x + the stored residual (step skipping)
  bool store_residual = false;               // store output - x for a later skip_all call
  // A short text naming the kind of call ("full", "full store 12", "reuse 12 compute 0-2,15-17",
  // "skip"): calls of one kind run the same stages (CUDA graph keys, logs, plans).
  std::string kind() const;
  bool computes_everything() const;
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
  int64_t fills() const { return fills_; }  // stores so far (every reset included)

 private:
  std::map<int, torch::Tensor> stored_;
  torch::Tensor residual_;
  int64_t fills_ = 0;
};

// What a call did: the stages it computed (the cost log MACs are counted from), the outputs asked
// for by `observe`, and, when the trace counts MACs, each stage's MACs.
struct CallRecord {
  std::vector<uint8_t> computed;        // per stage id: 1 = computed (Compute or ComputeDiscard)
  bool network = true;                  // the embedding and head ran (false for skip_all)
  std::map<int, torch::Tensor> outputs;  // observed stage outputs
  // With a MAC-counting trace: per stage id, and the embedding's and head's (paper count, all).
  std::vector<double> stage_macs, stage_macs_all;
  double embed_macs = 0, embed_macs_all = 0, head_macs = 0, head_macs_all = 0;
};

// The one function that runs a UNet call under a request (nullptr: the plain network; `cache` may
// then be null). dc::Error when the request is malformed or reads what was never stored.
torch::Tensor run_call(UNet& net, const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond,
                       const CallRequest* request, StageCache* cache, Trace* trace, CallRecord* record = nullptr);

// The stages a call under `request` computes (what its CallRecord says; nullptr: every stage), for
// paths that run without a record (CUDA graph replays). Empty for a skip_all request.
std::vector<uint8_t> computed_stages(const CallRequest* request, int num_skips);

// ---- stage ids --------------------------------------------------------------------------------
inline int num_stages(int num_skips) { return 2 * num_skips + 1; }
inline int middle_stage(int num_skips) { return num_skips; }
inline int output_stage(int num_skips, int i) { return num_skips + 1 + i; }
// "input_blocks.3"-style names come from the family (UNet::stage_name); these are generic ones.
std::string generic_stage_name(int num_skips, int stage);  // "input 3", "middle", "output 4"
// "0-2,15-17": a compact list of stage ids.
std::string compact_ids(const std::vector<int>& ids);

// ---- DeepCache's cut, written once ----------------------------------------------------------------
// The stage a DeepCache call at skip index k stores (full) or reuses (partial): the one whose output
// enters the output block consuming hs[k].
int deepcache_stage(int num_skips, int k);
// full: every stage computed, the deepcache_stage stored; partial: input blocks 0..k, the stored
// feature, output blocks S-1-k..S-1. dc::Error for k outside [0, S-1].
CallRequest deepcache_request(int num_skips, int k, bool partial);
// The released LDM code's pass (DeepCache experiments/ldm openaimodel.py, replicate_layer = L): a full
// call stores every output block's output (and the middle's); a partial call computes input blocks
// 0..L and output blocks S-1-L..S-1, each fed cat(the stored output of the block before it, its skip)
// instead of the chained tensor. Its output equals k = 0's for every L; its cost is k = L's.
CallRequest released_ldm_request(int num_skips, int L, bool partial);

}  // namespace dc::models
