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

// Full-call MACs and the partial-call MACs for every k in [0, S-1].
struct MacsTable {
  double full = 0.0;
  std::vector<double> partial;  // indexed by k
  double full_all = 0.0;        // every multiply-accumulate
  std::vector<double> partial_all;
};
MacsTable macs_table(models::UNet& net);

// Average MACs per model call of a run: full calls at `full_steps`, partial ones elsewhere.
double step_average_macs(double full, double partial, const std::vector<int>& full_steps, int num_calls);

}  // namespace dc::metrics
