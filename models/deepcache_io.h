// DeepCache's skip-index convention and its translations (DESIGN.md §4). What a call computes and
// the cache it reads are generic (models/unet_call.h, where deepcache_request writes the cut once);
// which calls are full is the deepcache policy's (harness/policies/deepcache.cpp).
//
// One convention for where DeepCache caches: the skip index k (DESIGN.md §4).
// The UNet pushes skip tensors hs[0..S-1] in forward order: hs[0] is the conv_in output, then one
// per down ResBlock (+ its attention), one per downsampler. Caching at k means a partial step
// computes hs[0..k], takes the cached main-branch tensor that enters the up block consuming hs[k],
// and runs the up path from there to the output head. Every k in [0, S-1] is valid.
//
// Other numberings, translated at the edges:
//   paper branch m             = k + 1           (Table 12 numbers branches 1..S)
//   DDPM code --branch b       : k = b + 1       (b in [0, S-2]; k = 0 is not selectable there)
//   SD code (layer L, block B) : k = 3L + B + 1
//   pip plug-in cache_branch_id b : k = b
//   LDM code                   : k = 0 only
#pragma once
#include <fmt/format.h>


#include "common/error.h"

namespace dc::deepcache {

// ---- the skip index k ---------------------------------------------------------------------------
inline int paper_branch_from_k(int k) { return k + 1; }
inline int k_from_paper_branch(int m) { return m - 1; }
inline int k_from_ddpm_branch(int b) { return b + 1; }
inline int ddpm_branch_from_k(int k) { return k - 1; }  // -1 for k = 0: the DDPM code cannot express it
inline int k_from_sd_layer_block(int layer, int block) { return 3 * layer + block + 1; }
inline int k_from_plugin_branch(int b) { return b; }

inline void check_skip_index(int k, int num_skips, const char* model) {
  if (k < 0 || k >= num_skips)
    throw Error(fmt::format("skip index k={} is out of range for {}: valid k are 0..{} (paper branch m = k+1 "
                            "in 1..{})", k, model, num_skips - 1, num_skips));
}

}  // namespace dc::deepcache
