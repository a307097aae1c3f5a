// What one UNet call computes, torch-free (the experiment reader, `plan` and the fuzz build use it;
// models/unet_call.h adds the tensors and runs it): per stage, compute, reuse or skip; which stage
// outputs the call stores; whether the whole UNet is skipped. DESIGN.md §4b.
//
// Stages of a call, in execution order, with ids:
//   input block j   (j in 0..S-1): id j       its output is the skip tensor hs[j]
//   middle                       : id S       input: hs[S-1]
//   output block i  (i in 0..S-1): id S+1+i   input: cat(the previous stage's output, hs[S-1-i])
// The timestep/conditioning embedding runs before them and the head after them on every computed
// call. DeepCache at skip index k (models/deepcache_io.h) is: a full call stores the output of stage
// S+1+(S-2-k) (the middle's for k = S-1), the tensor entering the output block that consumes hs[k]; a
// partial call computes input blocks 0..k, reuses that stored tensor and computes output blocks
// S-1-k..S-1 (deepcache_plan below: the cut, written once).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dc::models {

enum class StageAction : uint8_t {
  Compute,         // run the stage on the previous stage's output (and its skip)
  Reuse,           // its output is the stored one (or the request's given tensor, models/unet_call.h)
  Skip,            // not needed: nothing later reads it
  ComputeDiscard,  // run it (its cost is real), then continue from its stored output (the released LDM pass)
};

struct CallPlan {
  std::vector<StageAction> stages;  // 2S+1 actions by stage id; empty: compute every stage
  std::vector<int> store;           // stage ids whose outputs this call stores in the cache
  std::vector<int> observe;         // stage ids whose outputs the call's record returns (models/unet_call.h)
  bool skip_all = false;            // nothing runs: output = x + the stored residual (step skipping)
  bool store_residual = false;      // store output - x for a later skip_all call
  // A short text naming the kind of call ("full", "full store 20", "reuse 20 compute 0-3,21-24",
  // "skip"): calls of one kind run the same stages (CUDA graph keys, warm-up, logs).
  std::string kind() const;
  bool computes_everything() const;
};

// The stages a call under `plan` computes (nullptr: every stage), 1 = computed; empty for skip_all.
std::vector<uint8_t> computed_stages(const CallPlan* plan, int num_skips);

// ---- stage ids --------------------------------------------------------------------------------
inline int num_stages(int num_skips) { return 2 * num_skips + 1; }
inline int middle_stage(int num_skips) { return num_skips; }
inline int output_stage(int num_skips, int i) { return num_skips + 1 + i; }
// Generic names ("input 3", "middle", "output 4"); the families name their stages (UNet::stage_name).
std::string generic_stage_name(int num_skips, int stage);
// "0-3,5,7,9-11": sorted, unique, runs of three or more as ranges ("" when empty).
std::string compact_ids(const std::vector<int>& ids);

// ---- DeepCache's cut, written once ----------------------------------------------------------------
// The stage a DeepCache call at skip index k stores (full) or reuses (partial): the one whose output
// enters the output block consuming hs[k]. dc::Error for k outside [0, S-1].
int deepcache_stage(int num_skips, int k);
// full: every stage computed, the deepcache_stage stored; partial: input blocks 0..k, the stored
// feature, output blocks S-1-k..S-1.
CallPlan deepcache_plan(int num_skips, int k, bool partial);
// The released LDM code's pass (DeepCache experiments/ldm openaimodel.py, replicate_layer = L): a full
// call stores every output block's output (and the middle's); a partial call computes input blocks
// 0..L and output blocks S-1-L..S-1, each fed cat(the stored output of the block before it, its skip)
// instead of the chained tensor. Its output equals k = 0's for every L; its cost is k = L's.
CallPlan released_ldm_plan(int num_skips, int L, bool partial);

}  // namespace dc::models
