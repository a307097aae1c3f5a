// The faster_diffusion policy (encoder propagation, Li et al., arXiv 2312.09608): at key calls the
// whole UNet runs and stores every input block's output (the skip features) and the middle's; at
// the other calls only the decoder runs (every output block, on the current timestep's embedding),
// reading those stored features. Its keys in `cache:`:
//   key_calls   the model calls that run the whole UNet (sorted, with call 0). Default: the paper's
//               code's list for 50 DDIM steps ("50ls": 0, 1, 2, 3, 5, 10, 15), for another number
//               of calls the same fractions of the trajectory, round(i · calls / 50).
// Not done here: the paper's parallel decoding of the non-key calls (a GPU batching of the same
// arithmetic: it changes the time, not the samples or the MACs) and its prior-noise injection (a
// change to the sampler's latent, not to the model call).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "harness/policies/faster_diffusion.h"
#include "harness/policies/registry_entries.h"

namespace dc::harness::policies {
namespace {

constexpr int kPaperKeySteps[] = {0, 1, 2, 3, 5, 10, 15};  // FasterDiffusion's register_faster_forward, mod "50ls"


std::vector<int> paper_key_calls(int calls) {
  std::vector<int> v;
  for (const int k : kPaperKeySteps) {
    const int c = static_cast<int>(std::lround(static_cast<double>(k) * calls / 50.0));
    if (c < calls && (v.empty() || v.back() != c)) v.push_back(c);
  }
  return v;
}

std::shared_ptr<const PolicySettings> read_faster_diffusion(const ReadContext& c) {
  auto s = std::make_shared<FasterDiffusionSettings>();
  s->num_skips = c.num_skips;
  s->num_calls = c.num_calls;
  s->key_calls = paper_key_calls(c.num_calls);
  if (c.block.contains("key_calls")) {
    c.reader.get(c.block, "cache", "key_calls", s->key_calls);
    s->given = true;
    if (s->key_calls.empty() || s->key_calls.front() != 0)
      c.reader.fail("cache.key_calls", "must start with call 0 (the first call has nothing stored to reuse)");
    for (std::size_t i = 0; i < s->key_calls.size(); ++i) {
      if (i > 0 && s->key_calls[i] <= s->key_calls[i - 1]) c.reader.fail("cache.key_calls", "must be increasing, without repeats");
      if (s->key_calls[i] >= c.num_calls)
        c.reader.fail("cache.key_calls", fmt::format("call {} is beyond the run's {} model calls (0..{})", s->key_calls[i], c.num_calls, c.num_calls - 1));
    }
  }
  return s;
}

}  // namespace

PolicyType faster_diffusion_policy() {
  PolicyType t{"faster_diffusion",
               "FasterDiffusion's encoder propagation: the whole UNet at key calls; the decoder alone at the others, on the "
               "stored skip features and middle output",
               {"key_calls"},
               read_faster_diffusion,
               {"key calls"}};
  t.caches_features = true;
  return t;
}

}  // namespace dc::harness::policies
