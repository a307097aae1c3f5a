#include "harness/denoiser.h"

namespace dc::harness {

sampling::CondEpsFn cond_denoiser(std::shared_ptr<models::UNet> net, std::shared_ptr<const deepcache::CachePlan> plan,
                                  std::shared_ptr<DenoiserLog> log, std::shared_ptr<models::UNetGraphs> graphs) {
  auto cache = std::make_shared<deepcache::FeatureCache>();
  // model.dtype: the UNet's inputs go in its parameters' dtype, eps comes back in the sampler's
  // (fp32); class labels and timesteps are left alone (the UNets embed t in fp32, then cast).
  const auto params = net->parameters();
  const torch::ScalarType dtype = params.empty() ? torch::kFloat : params.front().scalar_type();
  return [net, plan, log, cache, dtype, graphs](const torch::Tensor& x_in, const torch::Tensor& t, const torch::Tensor& cond_in,
                                                int call) {
    const auto in = [dtype](const torch::Tensor& v) {
      return v.defined() && v.is_floating_point() && v.scalar_type() != dtype ? v.to(dtype) : v;
    };
    const auto out = [&x_in](const torch::Tensor& eps) {
      return eps.scalar_type() != x_in.scalar_type() ? eps.to(x_in.scalar_type()) : eps;
    };
    const torch::Tensor x = in(x_in), cond = in(cond_in);
    if (call == 0) cache->reset();
    models::Trace* trace = log ? log->trace : nullptr;
    const bool graphed = graphs && !trace;
    const auto forward = [&](const deepcache::CacheRequest* req) {
      return graphed ? graphs->forward(x, t, cond, req, cache.get()) : net->forward(x, t, cond, req, cache.get(), trace);
    };
    if (!plan) {
      if (log) log->is_full.push_back(1);
      return out(forward(nullptr));
    }
    const bool full = plan->is_full(call);
    deepcache::CacheRequest req{plan->skip_index, !full};
    req.ldm_released = plan->ldm_released;
    torch::Tensor eps = out(forward(&req));
    if (log) {
      log->is_full.push_back(full ? 1 : 0);
      if (full && log->keep_cached) {  // a graph's feature buffer is rewritten by the next full call: a copy
        const torch::Tensor& held = cache->get(plan->skip_index, x.size(0));
        log->cached.push_back(graphed ? held.clone() : held);
      }
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
