#include "models/unet_graphs.h"

#include <fmt/format.h>

#include <map>
#include <string>

#include "common/error.h"
#include "dc/build_info.h"

// CUDA graphs need the CUDA runtime's headers, which a LibTorch with CUDA does not always ship
// (PyTorch's wheels rely on the toolkit's): without them, no graphs (as harness/call_timer.cpp).
#if DC_HAS_CUDA && defined(__has_include)
#if __has_include(<ATen/cuda/CUDAGraph.h>) && __has_include(<cuda_runtime_api.h>)
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#define DC_CUDA_GRAPHS 1
#endif
#endif
#ifndef DC_CUDA_GRAPHS
#define DC_CUDA_GRAPHS 0
#endif

namespace dc::models {

std::string cuda_graphs_missing() {
  if (DC_CUDA_GRAPHS) return "";
  return DC_HAS_CUDA ? "model.cuda_graphs: this build found LibTorch with CUDA but not the CUDA runtime's headers (cuda_runtime_api.h: "
                       "install the CUDA toolkit and rebuild); set model.cuda_graphs: false"
                     : "model.cuda_graphs: this build's LibTorch has no CUDA (graphs need LibTorch built with CUDA: README, "
                       "\"Platforms\"); set model.cuda_graphs: false";
}

#if DC_CUDA_GRAPHS

namespace {

std::string describe(const torch::Tensor& v) {
  return v.defined() ? fmt::format("{}{}", c10::toString(v.scalar_type()), c10::str(v.sizes())) : "-";
}

// The static copy of an input for a graph: on x's device (a capture may not copy from the host).
torch::Tensor static_copy(const torch::Tensor& v, const c10::Device& device) {
  return v.defined() ? v.to(device).clone() : torch::Tensor();
}

void fill(torch::Tensor& dst, const torch::Tensor& src) {
  if (dst.defined()) dst.copy_(src, /*non_blocking=*/true);
}

}  // namespace

struct UNetGraphs::Impl {
  struct Graph {
    at::cuda::CUDAGraph graph;
    torch::Tensor x, t, cond;  // static inputs
    torch::Tensor feature;     // the (k, shape, dtype) feature buffer, DeepCache requests only
    torch::Tensor eps;         // static output (in the graphs' pool)
  };
  std::shared_ptr<UNet> net;
  std::map<std::string, std::unique_ptr<Graph>> graphs;
  std::map<std::string, torch::Tensor> features;  // (k, x shape, dtype) -> buffer shared by its full and partial graphs
  c10::cuda::MempoolId_t pool = at::cuda::graph_pool_handle();
  int64_t replays = 0, eager = 0;

  Graph& capture(const std::string& key, const std::string& feature_key, const torch::Tensor& x, const torch::Tensor& t,
                 const torch::Tensor& cond, const deepcache::CacheRequest* request, const deepcache::FeatureCache* cache);
};

UNetGraphs::Impl::Graph& UNetGraphs::Impl::capture(const std::string& key, const std::string& feature_key,
                                                   const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond,
                                                   const deepcache::CacheRequest* request,
                                                   const deepcache::FeatureCache* cache) {
  auto g = std::make_unique<Graph>();
  const c10::Device device = x.device();
  const c10::cuda::CUDAGuard on_device(device);  // capture_begin and the side stream use the current device
  g->x = static_copy(x, device);
  g->t = static_copy(t, device);
  g->cond = static_copy(cond, device);
  const bool partial = request && request->partial;
  if (partial) {  // the buffer of the full graph at this k, or one shaped as what the cache holds
    auto it = features.find(feature_key);
    if (it == features.end()) it = features.emplace(feature_key, torch::empty_like(cache->get(request->skip_index, x.size(0)))).first;
    g->feature = it->second;
    g->feature.copy_(cache->get(request->skip_index, x.size(0)));
  }
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, device.index());
  c10::cuda::device_synchronize();  // the static inputs are written on the caller's stream
  deepcache::FeatureCache warm;
  {
    c10::cuda::CUDAStreamGuard on_side(side);
    if (partial) warm.store(request->skip_index, g->feature);
    for (int i = 0; i < 2; ++i) net->forward(g->x, g->t, g->cond, request, &warm, nullptr);
  }
  side.synchronize();
  if (request && !partial && !g->feature.defined()) {  // a full call: the buffer it writes
    auto it = features.find(feature_key);
    if (it == features.end())
      it = features.emplace(feature_key, torch::empty_like(warm.get(request->skip_index, x.size(0)))).first;
    g->feature = it->second;
  }
  {
    c10::cuda::CUDAStreamGuard on_side(side);
    deepcache::FeatureCache captured;
    if (partial) captured.store(request->skip_index, g->feature);
    g->graph.capture_begin(pool);
    g->eps = net->forward(g->x, g->t, g->cond, request, &captured, nullptr);
    if (request && !partial) g->feature.copy_(captured.get(request->skip_index, x.size(0)));
    g->graph.capture_end();
  }
  side.synchronize();
  return *graphs.emplace(key, std::move(g)).first->second;
}

UNetGraphs::UNetGraphs(std::shared_ptr<UNet> net) : impl_(std::make_unique<Impl>()) { impl_->net = std::move(net); }

UNetGraphs::~UNetGraphs() = default;

torch::Tensor UNetGraphs::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond,
                                  const deepcache::CacheRequest* request, deepcache::FeatureCache* cache) {
  Impl& m = *impl_;
  if (!x.is_cuda()) throw Error(fmt::format("model.cuda_graphs: the UNet's input is on {}, graphs need a CUDA device", x.device().str()));
  if (request && request->ldm_released) {  // its cache is every output block's output: eager
    ++m.eager;
    return m.net->forward(x, t, cond, request, cache, nullptr);
  }
  const std::string what = request ? fmt::format("{} k={}", request->partial ? "partial" : "full", request->skip_index) : "plain";
  const std::string feature_key = request ? fmt::format("k={} {}", request->skip_index, describe(x)) : "";
  const std::string key = fmt::format("{} x={} t={} cond={}", what, describe(x), describe(t), describe(cond));
  const c10::cuda::CUDAGuard on_device(x.device());
  auto it = m.graphs.find(key);
  Impl::Graph& g = it != m.graphs.end() ? *it->second : m.capture(key, feature_key, x, t, cond, request, cache);
  fill(g.x, x);
  fill(g.t, t);
  fill(g.cond, cond);
  if (request && request->partial) {
    const torch::Tensor& held = cache->get(request->skip_index, x.size(0));
    if (held.data_ptr() != g.feature.data_ptr()) g.feature.copy_(held, /*non_blocking=*/true);
  }
  g.graph.replay();
  ++m.replays;
  if (request && !request->partial) cache->store(request->skip_index, g.feature);
  return g.eps.clone();
}

int64_t UNetGraphs::captures() const { return static_cast<int64_t>(impl_->graphs.size()); }
int64_t UNetGraphs::replays() const { return impl_->replays; }
int64_t UNetGraphs::eager() const { return impl_->eager; }

#else  // no CUDA graphs in this build

struct UNetGraphs::Impl {};

UNetGraphs::UNetGraphs(std::shared_ptr<UNet> /*net*/) { throw Error(cuda_graphs_missing()); }

UNetGraphs::~UNetGraphs() = default;

torch::Tensor UNetGraphs::forward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const deepcache::CacheRequest*,
                                  deepcache::FeatureCache*) {
  throw Error("model.cuda_graphs: not built");
}

int64_t UNetGraphs::captures() const { return 0; }
int64_t UNetGraphs::replays() const { return 0; }
int64_t UNetGraphs::eager() const { return 0; }

#endif

}  // namespace dc::models
