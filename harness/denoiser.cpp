#include "harness/denoiser.h"

#include <algorithm>

namespace dc::harness {

sampling::CondEpsFn cond_denoiser(std::shared_ptr<models::UNet> net, std::shared_ptr<const policies::PolicySettings> settings,
                                  std::shared_ptr<DenoiserLog> log, std::shared_ptr<models::UNetGraphs> graphs) {
  auto cache = std::make_shared<models::StageCache>();
  std::shared_ptr<policies::Policy> policy = settings ? std::shared_ptr<policies::Policy>(settings->make()) : nullptr;
  // model.dtype: the UNet's inputs go in its parameters' dtype, eps comes back in the sampler's
  // (fp32); class labels and timesteps are left alone (the UNets embed t in fp32, then cast).
  const auto params = net->parameters();
  const torch::ScalarType dtype = params.empty() ? torch::kFloat : params.front().scalar_type();
  const int S = net->num_skips();
  return [net, settings, policy, log, cache, dtype, graphs, S](const torch::Tensor& x_in, const torch::Tensor& t,
                                                               const torch::Tensor& cond_in, int call) {
    const auto in = [dtype](const torch::Tensor& v) {
      return v.defined() && v.is_floating_point() && v.scalar_type() != dtype ? v.to(dtype) : v;
    };
    const torch::Tensor x = in(x_in), cond = in(cond_in);
    if (call == 0) {
      cache->reset();
      if (policy) policy->begin(x.size(0));
      if (log) log->is_full.clear(), log->computed.clear(), log->cached.clear();
    }
    models::Trace* trace = log ? log->trace : nullptr;
    const models::CallRequest request = policy ? policy->decide(call, t, x) : models::CallRequest();
    const models::CallRequest* req = policy ? &request : nullptr;
    models::CallRecord record;
    torch::Tensor eps;
    if (graphs && !trace && !request.gate) {
      eps = graphs->forward(x, t, cond, req, cache.get());
      record.network = !request.skip_all;
      record.computed = models::computed_stages(req, S);
    } else {
      eps = net->forward(x, t, cond, req, cache.get(), trace, &record);
    }
    if (policy) policy->observe(call, record, *cache);
    if (log) {
      // From what the call did (a gate decides inside the call).
      const bool full = !req || (record.network && std::all_of(record.computed.begin(), record.computed.end(), [](uint8_t c) { return c == 1; }));
      log->is_full.push_back(full ? 1 : 0);
      log->computed.push_back(record.network ? record.computed : std::vector<uint8_t>{});
      if (full && log->keep_cached && !request.store.empty()) {  // a graph's feature buffer is rewritten by the next full call: a copy
        const torch::Tensor& held = cache->peek(request.store.front());
        log->cached.push_back(graphs && !trace ? held.clone() : held);
      }
    }
    return eps.scalar_type() != x_in.scalar_type() ? eps.to(x_in.scalar_type()) : eps;
  };
}

sampling::EpsFn denoiser(std::shared_ptr<models::UNet> net, std::shared_ptr<const policies::PolicySettings> policy,
                         std::shared_ptr<DenoiserLog> log) {
  auto inner = cond_denoiser(std::move(net), std::move(policy), std::move(log));
  return [inner](const torch::Tensor& x, const torch::Tensor& t, int call) { return inner(x, t, torch::Tensor(), call); };
}

}  // namespace dc::harness
