// The taylorseer policy (TaylorSeer, arXiv 2503.06923): a modifier of a policy that reuses stored
// stage outputs (deepcache, faster_diffusion, block_cache). Where the calls it modifies reuse a
// stage, they read its Taylor forecast from the stage's fresh values (harness/policies/
// taylor_forecast.h) instead of the last one. Composed in YAML as `policy: [deepcache, taylorseer]`.
// Its key in `cache:`:
//   order   the highest finite difference used (default 2: cache-dit's and ParaAttention's
//           n_derivatives; the reference's FLUX scripts use 1 or 2). Order i needs i + 1 fresh values:
//           until then the forecast uses the orders it has (order 0 is the plain reuse).
#include <fmt/format.h>

#include "harness/policies/registry_entries.h"
#include "harness/policies/taylorseer.h"

namespace dc::harness::policies {
namespace {

std::shared_ptr<const PolicySettings> read_taylorseer(const ReadContext& c) {
  auto s = std::make_shared<TaylorSeerSettings>();
  c.reader.get(c.block, "cache", "order", s->order);
  c.reader.at_least("cache.order", s->order, 0, "0 is the plain reuse");
  if (s->order > 8) c.reader.fail("cache.order", fmt::format("{} is beyond the orders a forecast from sampled features can use (at most 8)", s->order));
  const PolicyType* base = c.composed_after.empty() ? nullptr : find_policy(c.composed_after.front());
  if (!base || !base->caches_features) {
    std::string which;
    for (const auto& n : policy_names())
      if (const PolicyType* p = find_policy(n); p && p->caches_features) which += (which.empty() ? "" : ", ") + n;
    c.reader.fail("cache.policy", fmt::format("taylorseer forecasts a stored stage output: list it after a policy that reuses one "
                                              "(policy: [deepcache, taylorseer]; such policies: {})",
                                              which));
  }
  return s;
}

}  // namespace

PolicyType taylorseer_policy() {
  PolicyType t{"taylorseer",
               "TaylorSeer: the reused stage outputs of the policy before it forecast by a Taylor series of their fresh values",
               {"order"},
               read_taylorseer,
               {"forecast"}};
  t.modifier = true;
  return t;
}

}  // namespace dc::harness::policies
