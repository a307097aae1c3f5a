#include "harness/denoiser.h"

namespace dc::harness {

sampling::EpsFn ddpm_denoiser(models::DdpmUNet net, std::shared_ptr<const deepcache::CachePlan> plan,
                              std::shared_ptr<DenoiserLog> log) {
  auto cache = std::make_shared<deepcache::FeatureCache>();
  return [net, plan, log, cache](const torch::Tensor& x, const torch::Tensor& t, int call) {
    if (call == 0) cache->reset();
    models::Trace* trace = log ? log->trace : nullptr;
    if (!plan) {
      if (log) log->is_full.push_back(1);
      return net.ptr()->forward(x, t, nullptr, nullptr, trace);
    }
    const bool full = plan->is_full(call);
    const deepcache::CacheRequest req{plan->skip_index, !full};
    torch::Tensor eps = net.ptr()->forward(x, t, &req, cache.get(), trace);
    if (log) {
      log->is_full.push_back(full ? 1 : 0);
      if (full && log->keep_cached) log->cached.push_back(cache->get(plan->skip_index, x.size(0)));
    }
    return eps;
  };
}

}  // namespace dc::harness
