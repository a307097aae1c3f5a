// Multiply-accumulates per image, counted the way the paper counts (DeepCache/flops.py: conv and
// linear with biases, GroupNorm as 2 per element; SiLU, attention matmuls, interpolation and
// padding not counted), for a full UNet call, a partial call at any skip index k, and the
// average over the model calls of a sampling run. Counted by running the model once at batch 1
// with a MAC-counting trace, so the count follows exactly what the forward executes. Works for
// every family through models::UNet (one image; classifier-free guidance is not doubled).
// Beside the paper's count, `all`: every multiply-accumulate of the call (the paper's count plus
// the attention matmuls), the physical bound a measured speedup is checked against (a partial
// call skips the deep attention blocks, so the paper's count understates a full call's cost).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "models/unet.h"

namespace dc::metrics {

struct CallMacs {
  double total = 0.0;  // as the paper counts
  double all = 0.0;    // every multiply-accumulate (total + attention matmuls)
  std::map<std::string, double> by_block;
};

// partial_k < 0: a full call; else a partial call at skip index k.
CallMacs call_macs(models::UNet& net, int partial_k = -1);

// What each stage of a call costs (models/unet_call.h numbers the stages), from one traced full
// call at batch 1: the MACs of any call are those of the stages its CallRecord says it computed,
// plus the embedding's and head's, which every computed call runs. Exact: every count is an
// integer below 2^53, so the sums do not depend on their order.
struct StageMacs {
  std::vector<double> stage, stage_all;  // by stage id
  double fixed = 0.0, fixed_all = 0.0;   // embedding + head
  // A call that computed the flagged stages (network == false: the whole UNet skipped, 0 MACs).
  CallMacs of(const std::vector<uint8_t>& computed, bool network = true) const;
  CallMacs full() const { return of(std::vector<uint8_t>(stage.size(), 1)); }
  // A call under `plan` (nullptr: the plain network).
  CallMacs of(const models::CallPlan* request) const {
    return of(models::computed_stages(request, num_skips()), !(request && request->skip_all));
  }
  int num_skips() const { return (static_cast<int>(stage.size()) - 1) / 2; }
};
StageMacs stage_macs(models::UNet& net);

// Full-call MACs and the partial-call MACs for every k in [0, S-1], from the stages' MACs (one
// traced call: tests/test_unet_contract.cpp checks that they equal the traced partial calls).
struct MacsTable {
  double full = 0.0;
  std::vector<double> partial;  // indexed by k
  double full_all = 0.0;        // every multiply-accumulate
  std::vector<double> partial_all;
};
MacsTable macs_table(models::UNet& net);
MacsTable macs_table(const StageMacs& stages);

// Average MACs per model call of a run: full calls at `full_steps`, partial ones elsewhere.
double step_average_macs(double full, double partial, const std::vector<int>& full_steps, int num_calls);

}  // namespace dc::metrics
