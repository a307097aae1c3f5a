#include "models/unet_graphs.h"

#include <fmt/format.h>

#include <map>
#include <optional>
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

// The one stage a graphed call stores and the one it reuses (-1: none); nullopt when the request is
// not one the graphs serve (several stored or reused stages, discarded stages, a skipped call, a
// stored residual, observed outputs, a gate): those run eagerly.
struct GraphShape {
  int store = -1, reuse = -1;
};
std::optional<GraphShape> graph_shape(const CallRequest* request) {
  GraphShape g;
  if (!request) return g;
  if (request->skip_all || request->store_residual || !request->observe.empty() || request->store.size() > 1 || request->gate)
    return std::nullopt;
  if (!request->store.empty()) g.store = request->store.front();
  for (std::size_t s = 0; s < request->stages.size(); ++s) {
    const StageAction a = request->stages[s];
    if (a == StageAction::ComputeDiscard) return std::nullopt;
    if (a == StageAction::Reuse) {
      if (g.reuse >= 0) return std::nullopt;
      g.reuse = static_cast<int>(s);
    }
  }
  if (g.store >= 0 && g.store == g.reuse) return std::nullopt;
  return g;
}

// What a reused stage reads: the request's given tensor, else the cache's.
const torch::Tensor& held(const CallRequest& request, const StageCache* cache, UNet& net, int stage, int64_t batch) {
  const auto it = request.given.find(stage);
  return it != request.given.end() ? it->second : cache->get(stage, batch, net.stage_name(stage));
}

}  // namespace

struct UNetGraphs::Impl {
  struct Graph {
    at::cuda::CUDAGraph graph;
    torch::Tensor x, t, cond;  // static inputs
    torch::Tensor feature;     // the (stage, shape, dtype) buffer it stores into or reads, DeepCache-shaped requests only
    torch::Tensor eps;         // static output (in the graphs' pool)
  };
  std::shared_ptr<UNet> net;
  std::map<std::string, std::unique_ptr<Graph>> graphs;
  std::map<std::string, torch::Tensor> features;  // (stage, x shape, dtype) -> buffer shared by the graph storing it and those reusing it
  c10::cuda::MempoolId_t pool = at::cuda::graph_pool_handle();
  int64_t replays = 0, eager = 0;

  Graph& capture(const std::string& key, const std::string& feature_key, const torch::Tensor& x, const torch::Tensor& t,
                 const torch::Tensor& cond, const CallRequest* request, const GraphShape& shape, const StageCache* cache);
};

UNetGraphs::Impl::Graph& UNetGraphs::Impl::capture(const std::string& key, const std::string& feature_key,
                                                   const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond,
                                                   const CallRequest* request, const GraphShape& shape, const StageCache* cache) {
  auto g = std::make_unique<Graph>();
  const c10::Device device = x.device();
  const c10::cuda::CUDAGuard on_device(device);  // capture_begin and the side stream use the current device
  g->x = static_copy(x, device);
  g->t = static_copy(t, device);
  g->cond = static_copy(cond, device);
  // The request as captured: a reused stage reads the feature buffer through the cache, never a given tensor.
  CallRequest captured_request = request ? *request : CallRequest();
  captured_request.given.clear();
  const CallRequest* req = request ? &captured_request : nullptr;
  if (shape.reuse >= 0) {  // the buffer of the graph storing this stage, or one shaped as what the call reads
    const torch::Tensor& now = held(*request, cache, *net, shape.reuse, x.size(0));
    auto it = features.find(feature_key);
    if (it == features.end()) it = features.emplace(feature_key, torch::empty_like(now)).first;
    g->feature = it->second;
    g->feature.copy_(now);
  }
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, device.index());
  c10::cuda::device_synchronize();  // the static inputs are written on the caller's stream
  StageCache warm;
  {
    c10::cuda::CUDAStreamGuard on_side(side);
    if (shape.reuse >= 0) warm.store(shape.reuse, g->feature);
    for (int i = 0; i < 2; ++i) net->forward(g->x, g->t, g->cond, req, &warm, nullptr);
  }
  side.synchronize();
  if (shape.store >= 0) {  // the buffer it writes
    auto it = features.find(feature_key);
    if (it == features.end())
      it = features.emplace(feature_key, torch::empty_like(warm.get(shape.store, x.size(0), net->stage_name(shape.store)))).first;
    g->feature = it->second;
  }
  {
    c10::cuda::CUDAStreamGuard on_side(side);
    StageCache captured;
    if (shape.reuse >= 0) captured.store(shape.reuse, g->feature);
    g->graph.capture_begin(pool);
    g->eps = net->forward(g->x, g->t, g->cond, req, &captured, nullptr);
    if (shape.store >= 0) g->feature.copy_(captured.get(shape.store, x.size(0), net->stage_name(shape.store)));
    g->graph.capture_end();
  }
  side.synchronize();
  return *graphs.emplace(key, std::move(g)).first->second;
}

UNetGraphs::UNetGraphs(std::shared_ptr<UNet> net) : impl_(std::make_unique<Impl>()) { impl_->net = std::move(net); }

UNetGraphs::~UNetGraphs() = default;

torch::Tensor UNetGraphs::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond,
                                  const CallRequest* request, StageCache* cache) {
  Impl& m = *impl_;
  if (!x.is_cuda()) throw Error(fmt::format("model.cuda_graphs: the UNet's input is on {}, graphs need a CUDA device", x.device().str()));
  const std::optional<GraphShape> shape = graph_shape(request);
  if (!shape) {  // e.g. the released LDM pass (it stores every output block's output): eager
    ++m.eager;
    return m.net->forward(x, t, cond, request, cache, nullptr);
  }
  const int buffer_stage = shape->store >= 0 ? shape->store : shape->reuse;
  const std::string what = request ? request->kind() : "plain";
  const std::string feature_key = buffer_stage >= 0 ? fmt::format("stage={} {}", buffer_stage, describe(x)) : "";
  const std::string key = fmt::format("{} x={} t={} cond={}", what, describe(x), describe(t), describe(cond));
  const c10::cuda::CUDAGuard on_device(x.device());
  auto it = m.graphs.find(key);
  Impl::Graph& g = it != m.graphs.end() ? *it->second : m.capture(key, feature_key, x, t, cond, request, *shape, cache);
  fill(g.x, x);
  fill(g.t, t);
  fill(g.cond, cond);
  if (shape->reuse >= 0) {
    const torch::Tensor& now = held(*request, cache, *m.net, shape->reuse, x.size(0));
    if (now.data_ptr() != g.feature.data_ptr()) g.feature.copy_(now, /*non_blocking=*/true);
  }
  g.graph.replay();
  ++m.replays;
  if (shape->store >= 0) cache->store(shape->store, g.feature);
  return g.eps.clone();
}

int64_t UNetGraphs::captures() const { return static_cast<int64_t>(impl_->graphs.size()); }
int64_t UNetGraphs::replays() const { return impl_->replays; }
int64_t UNetGraphs::eager() const { return impl_->eager; }

#else  // no CUDA graphs in this build

struct UNetGraphs::Impl {};

UNetGraphs::UNetGraphs(std::shared_ptr<UNet> /*net*/) { throw Error(cuda_graphs_missing()); }

UNetGraphs::~UNetGraphs() = default;

torch::Tensor UNetGraphs::forward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const CallRequest*, StageCache*) {
  throw Error("model.cuda_graphs: not built");
}

int64_t UNetGraphs::captures() const { return 0; }
int64_t UNetGraphs::replays() const { return 0; }
int64_t UNetGraphs::eager() const { return 0; }

#endif

}  // namespace dc::models
