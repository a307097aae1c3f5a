#include "harness/denoiser.h"

namespace dc::harness {

sampling::CondEpsFn cond_denoiser(std::shared_ptr<models::UNet> net, std::shared_ptr<const deepcache::CachePlan> plan,
                                  std::shared_ptr<DenoiserLog> log) {
  auto cache = std::make_shared<deepcache::FeatureCache>();
  return [net, plan, log, cache](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond, int call) {
    if (call == 0) cache->reset();
    models::Trace* trace = log ? log->trace : nullptr;
    if (!plan) {
      if (log) log->is_full.push_back(1);
      return net->forward(x, t, cond, nullptr, nullptr, trace);
    }
    const bool full = plan->is_full(call);
    deepcache::CacheRequest req{plan->skip_index, !full};
    req.ldm_released = plan->ldm_released;
    torch::Tensor eps = net->forward(x, t, cond, &req, cache.get(), trace);
    if (log) {
      log->is_full.push_back(full ? 1 : 0);
      if (full && log->keep_cached) log->cached.push_back(cache->get(plan->skip_index, x.size(0)));
    }
    if (full && plan->zero_feature) cache->zero_out();
    return eps;
  };
}

sampling::EpsFn denoiser(std::shared_ptr<models::UNet> net, std::shared_ptr<const deepcache::CachePlan> plan,
                         std::shared_ptr<DenoiserLog> log) {
  auto inner = cond_denoiser(std::move(net), std::move(plan), std::move(log));
  return [inner](const torch::Tensor& x, const torch::Tensor& t, int call) { return inner(x, t, torch::Tensor(), call); };
}

}  // namespace dc::harness
