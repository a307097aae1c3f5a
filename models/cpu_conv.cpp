#include "models/cpu_conv.h"

#include <torch/torch.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_map>
#include <variant>
#include <vector>

#include "common/error.h"
#include "dc/build_info.h"
#include "models/winograd_gemm.h"

#if DC_HAVE_DNNL
#include <dnnl.hpp>
#endif

namespace dc::models::cpu_conv {

Algorithm parse_algorithm(const std::string& text, const std::string& what) {
  if (text == "auto") return Algorithm::Auto;
  if (text == "direct") return Algorithm::Direct;
  if (text == "winograd") return Algorithm::Winograd;
  if (text == "winograd_gemm") return Algorithm::WinogradGemm;
  throw Error(what + ": '" + text + "' is not a convolution algorithm (auto, direct, winograd or winograd_gemm)");
}

const char* algorithm_name(Algorithm a) {
  switch (a) {
    case Algorithm::Auto: return "auto";
    case Algorithm::Direct: return "direct";
    case Algorithm::Winograd: return "winograd";
    case Algorithm::WinogradGemm: return "winograd_gemm";
  }
  return "?";
}

namespace {
std::atomic<int> g_algorithm{-1};
}

Algorithm algorithm() {
  int v = g_algorithm.load();
  if (v < 0) {
    const char* env = std::getenv("DEEPCACHE_CONV");
    const Algorithm a = env && *env ? parse_algorithm(env, "DEEPCACHE_CONV") : Algorithm::Auto;
    g_algorithm.store(static_cast<int>(a));
    return a;
  }
  return static_cast<Algorithm>(v);
}

void set_algorithm(Algorithm a) { g_algorithm.store(static_cast<int>(a)); }

#if DC_HAVE_DNNL
namespace {

struct Engine {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
};
Engine& engine() {
  static Engine e;
  return e;
}

using md = dnnl::memory::desc;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

// One (input shape) of one convolution: the primitive, its layouts and the transformed weights.
struct Prepared {
  int64_t n = 0, h = 0, w = 0;
  // The threads it was made for: oneDNN fixes a primitive's work split (and so the order of its
  // sums) when it is made, so one made under another thread count gives other bits (a model
  // measured before `run` set its threads made a sweep differ from the same sweep in a fresh process).
  int threads = 0;
  bool ok = false;  // false: oneDNN has no Winograd kernel for this shape (LibTorch's path)
  dnnl::convolution_forward prim;
  md user_src, user_dst, src, dst, bias;
  dnnl::reorder to_src, from_dst;
  dnnl::memory weights;
  std::string impl;
};

struct Entry {
  c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl> weight{
      c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>()};
  const c10::TensorImpl* weight_impl = nullptr;
  const void* weight_data = nullptr;
  uint32_t weight_version = 0;
  std::vector<std::shared_ptr<Prepared>> shapes;  // oneDNN's kernel: newest last; at most kShapes
  torch::Tensor gemm_weights;                     // the GEMM path: winograd::transform_weights (any shape)
  bool gemm_over_budget = false;                  // the GEMM path found no room for them
};
constexpr size_t kShapes = 4;

std::mutex g_mutex;
std::unordered_map<const torch::nn::Conv2dImpl*, Entry> g_cache;

uint32_t version_of(const torch::Tensor& t) { return t.is_inference() ? 0u : t._version(); }

// Bytes of transformed weights the cache may hold ($DEEPCACHE_CONV_WINOGRAD_MB, default 2048). A
// Winograd F(4x4, 3x3) copy of a weight is 36/9 = 4x its size: a whole SD UNet's would be ~8 GB.
// Past the budget, convolutions keep LibTorch's path; the first ones run (the highest-resolution
// blocks, which DeepCache's partial calls also run) are the ones transformed.
size_t budget_bytes() {
  static const size_t budget = [] {
    const char* v = std::getenv("DEEPCACHE_CONV_WINOGRAD_MB");
    char* end = nullptr;
    const long long mb = v && *v ? std::strtoll(v, &end, 10) : 2048;
    if (v && *v && (*end != '\0' || mb < 0))
      throw Error(std::string("DEEPCACHE_CONV_WINOGRAD_MB: '") + v + "' is not a whole number of megabytes");
    return static_cast<size_t>(mb) << 20;
  }();
  return budget;
}

// Transformed weights held now (each shared memory once); callers hold g_mutex.
size_t held_bytes();

// The Winograd inference convolution (stride 1, padding 1) for these layouts; throws dnnl::error
// where oneDNN has no kernel for it. oneDNN 3 (Debian 13's, which LibTorch 2.6 links) builds the
// primitive descriptor directly; oneDNN 2 (Debian 12's, LibTorch 1.13's) through an op descriptor.
dnnl::convolution_forward::primitive_desc winograd_desc(const dnnl::engine& eng, const md& src, const md& wei, const md& bias,
                                                        const md& dst) {
  const dnnl::memory::dims one{1, 1};
  constexpr auto prop = dnnl::prop_kind::forward_inference;
  constexpr auto alg = dnnl::algorithm::convolution_winograd;
#if DNNL_VERSION_MAJOR >= 3
  return !bias.is_zero() ? dnnl::convolution_forward::primitive_desc(eng, prop, alg, src, wei, bias, dst, one, one, one)
              : dnnl::convolution_forward::primitive_desc(eng, prop, alg, src, wei, dst, one, one, one);
#else
  const auto d = !bias.is_zero() ? dnnl::convolution_forward::desc(prop, alg, src, wei, bias, dst, one, one, one)
                      : dnnl::convolution_forward::desc(prop, alg, src, wei, dst, one, one, one);
  return dnnl::convolution_forward::primitive_desc(d, eng);
#endif
}

// `weight` [oc, ic, 3, 3] float32; `has_bias`: the convolution adds a bias.
std::shared_ptr<Prepared> prepare(const torch::Tensor& weight_in, bool has_bias, int64_t n, int64_t h, int64_t w,
                                  const std::vector<std::shared_ptr<Prepared>>* siblings = nullptr, bool budgeted = false) {
  auto p = std::make_shared<Prepared>();
  p->n = n;
  p->h = h;
  p->w = w;
  p->threads = at::get_num_threads();
  const int64_t oc = weight_in.size(0), ic = weight_in.size(1);
  const dnnl::memory::dims src{n, ic, h, w}, wei{oc, ic, 3, 3}, dst{n, oc, h, w};
  try {
    auto& e = engine();
    const md any_src(src, dt::f32, tag::any), any_wei(wei, dt::f32, tag::any), any_dst(dst, dt::f32, tag::any);
    p->bias = has_bias ? md({oc}, dt::f32, tag::x) : md();
    const auto pd = winograd_desc(e.eng, any_src, any_wei, p->bias, any_dst);
    p->prim = dnnl::convolution_forward(pd);
    p->impl = pd.impl_info_str();
    p->user_src = md(src, dt::f32, tag::nchw);
    p->user_dst = md(dst, dt::f32, tag::nchw);
    p->src = pd.src_desc();
    p->dst = pd.dst_desc();
    p->to_src = dnnl::reorder(dnnl::reorder::primitive_desc(e.eng, p->user_src, e.eng, p->src));
    p->from_dst = dnnl::reorder(dnnl::reorder::primitive_desc(e.eng, p->dst, e.eng, p->user_dst));
    if (siblings)  // another input shape of this convolution may use the same transformed weights
      for (const auto& q : *siblings)
        if (q->ok && q->weights.get_desc() == pd.weights_desc()) {
          p->weights = q->weights;
          p->ok = true;
          return p;
        }
    if (budgeted && held_bytes() + pd.weights_desc().get_size() > budget_bytes()) return p;  // ok = false
    const torch::Tensor weight = weight_in.detach().contiguous();
    dnnl::memory user_w(md(wei, dt::f32, tag::oihw), e.eng, weight.data_ptr());
    p->weights = dnnl::memory(pd.weights_desc(), e.eng);
    dnnl::reorder(user_w, p->weights).execute(e.strm, user_w, p->weights);
    e.strm.wait();
    p->ok = true;
  } catch (const dnnl::error&) {
    p->ok = false;
  }
  return p;
}

// The cache entry of `conv`, made afresh when its weight tensor changed (another tensor, other
// data, or an in-place update: its version counter). Callers hold g_mutex.
Entry& entry_for(const torch::nn::Conv2dImpl& conv) {
  const torch::Tensor& weight = conv.weight;
  auto it = g_cache.find(&conv);
  const bool stale = it != g_cache.end() &&
                     (it->second.weight.expired() || it->second.weight_impl != weight.unsafeGetTensorImpl() ||
                      it->second.weight_data != weight.data_ptr() || it->second.weight_version != version_of(weight));
  if (it == g_cache.end() || stale) {
    if (it == g_cache.end())  // a new module: forget the ones that are gone (a freed module's address can return)
      for (auto j = g_cache.begin(); j != g_cache.end();) j = j->second.weight.expired() ? g_cache.erase(j) : std::next(j);
    Entry fresh;
    fresh.weight = c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>(weight.getIntrusivePtr());
    fresh.weight_impl = weight.unsafeGetTensorImpl();
    fresh.weight_data = weight.data_ptr();
    fresh.weight_version = version_of(weight);
    it = g_cache.insert_or_assign(&conv, std::move(fresh)).first;
  }
  return it->second;
}

// oneDNN's Winograd kernel for `conv` at this input shape.
std::shared_ptr<Prepared> lookup(const torch::nn::Conv2dImpl& conv, int64_t n, int64_t h, int64_t w) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& shapes = entry_for(conv).shapes;
  for (const auto& p : shapes)
    if (p->n == n && p->h == h && p->w == w && p->threads == at::get_num_threads()) return p;
  auto p = prepare(conv.weight, conv.bias.defined(), n, h, w, &shapes, /*budgeted=*/true);
  if (shapes.size() >= kShapes) shapes.erase(shapes.begin());
  shapes.push_back(p);
  return p;
}

// The GEMM path's transformed weights of `conv` (undefined: over the budget).
torch::Tensor gemm_weights(const torch::nn::Conv2dImpl& conv) {
  std::lock_guard<std::mutex> lock(g_mutex);
  Entry& e = entry_for(conv);
  if (!e.gemm_weights.defined() && !e.gemm_over_budget) {
    const size_t bytes = winograd::transformed_bytes(conv.options.out_channels(), conv.options.in_channels());
    if (held_bytes() + bytes > budget_bytes()) e.gemm_over_budget = true;
    else e.gemm_weights = winograd::transform_weights(conv.weight);
  }
  return e.gemm_weights;
}

size_t held_bytes() {
  std::set<const void*> seen;
  size_t bytes = 0;
  for (const auto& [conv, entry] : g_cache) {
    if (entry.weight.expired()) continue;
    for (const auto& p : entry.shapes)
      if (p->ok && seen.insert(p->weights.get_data_handle()).second) bytes += p->weights.get_desc().get_size();
    if (entry.gemm_weights.defined()) bytes += entry.gemm_weights.numel() * sizeof(float);
  }
  return bytes;
}

bool applies(const torch::nn::Conv2dImpl& conv, const torch::Tensor& x) {
  const auto& o = conv.options;
  if (!x.defined() || !x.device().is_cpu() || x.scalar_type() != torch::kFloat || x.dim() != 4) return false;
  if (at::GradMode::is_enabled() && (x.requires_grad() || conv.weight.requires_grad())) return false;
  if (!conv.weight.device().is_cpu() || conv.weight.scalar_type() != torch::kFloat) return false;
  if (conv.bias.defined() && conv.bias.scalar_type() != torch::kFloat) return false;
  if ((*o.kernel_size())[0] != 3 || (*o.kernel_size())[1] != 3 || (*o.stride())[0] != 1 || (*o.stride())[1] != 1 ||
      (*o.dilation())[0] != 1 || (*o.dilation())[1] != 1 || o.groups() != 1 || o.transposed())
    return false;
  if (o.padding_mode().index() != 0) return false;  // kZeros (c10::variant in 1.13, std::variant in 2.x)
  using std::get_if;  // found by lookup, so the call below also finds c10::get_if by ADL
  const auto* pad = get_if<torch::ExpandingArray<2>>(&o.padding());
  if (!pad || (**pad)[0] != 1 || (**pad)[1] != 1) return false;
  return o.in_channels() >= 16 && x.size(1) == o.in_channels();
}

// The GEMM path pays its transforms and layout changes per call: it wins where the GEMMs are large.
// Measured here (2 threads, AVX-512 Xeon, LibTorch 2.6; docs/performance.md): 1.2-2.2x LibTorch's
// convolution from 128 channels in and out and C K pixels >= 2^24 (256 -> 256 over 8 x 8 x 8
// pixels: 1.38x), 0.4-0.9x below (128 -> 128 over 16 x 17: 0.84x; 64 channels: 0.8-0.9x).
bool gemm_path_wins(const torch::nn::Conv2dImpl& conv, const torch::Tensor& x) {
  const int64_t c = conv.options.in_channels(), k = conv.options.out_channels();
  return c >= 128 && k >= 128 && c * k * x.size(0) * x.size(2) * x.size(3) >= (int64_t{1} << 24);
}

}  // namespace

// oneDNN's kernel for a probe convolution ("jit_wino_4x3:avx512_core"), or "" when this CPU has none.
const std::string& probe_impl() {
  static const std::string impl = [] {
    try {
      // Zeros, not a Conv2d module: its initialisation would draw from the global generator and
      // shift every seeded stream after the first convolution (training resumed != uninterrupted).
      const auto p = prepare(torch::zeros({64, 64, 3, 3}), /*has_bias=*/true, 1, 16, 16);
      return p->ok ? p->impl : std::string();
    } catch (const std::exception&) {
      return std::string();
    }
  }();
  return impl;
}

// oneDNN's own kernel runs (rather than the GEMM path).
bool onednn_kernel() { return !probe_impl().empty() && algorithm() != Algorithm::WinogradGemm; }

// With oneDNN in the build, a Winograd path always exists: oneDNN's own kernel where it has one
// for this CPU (oneDNN 2.x on AVX-512; oneDNN 3.x dropped its x64 Winograd), else the GEMM path.
bool winograd_available() { return true; }

void check_budget() { (void)budget_bytes(); }

std::string description() {
  if (algorithm() == Algorithm::Direct) return "direct (LibTorch; DEEPCACHE_CONV=direct)";
  if (onednn_kernel()) return "winograd (oneDNN " + probe_impl() + ", 3x3 convolutions)";
  return std::string("winograd (F(4x4, 3x3) through oneDNN's sgemm, 3x3 convolutions of 128+ channels in and out, C K pixels >= 2^24") +
         (algorithm() == Algorithm::WinogradGemm ? "; DEEPCACHE_CONV=winograd_gemm)" : ")");
}

bool takes_winograd(const torch::nn::Conv2dImpl& conv, const torch::Tensor& x) {
  return winograd_in_use() && applies(conv, x) && (onednn_kernel() || gemm_path_wins(conv, x));
}

torch::Tensor forward(torch::nn::Conv2dImpl& conv, const torch::Tensor& x) {
  if (!takes_winograd(conv, x)) return conv.forward(x);
  if (!onednn_kernel()) {  // the GEMM path
    const torch::Tensor u = gemm_weights(conv);
    return u.defined() ? winograd::conv3x3(x, u, conv.bias) : conv.forward(x);
  }
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  const auto p = lookup(conv, n, h, w);
  if (!p->ok) return conv.forward(x);
  auto& e = engine();
  const torch::Tensor xc = x.contiguous();
  torch::Tensor y = torch::empty({n, conv.options.out_channels(), h, w}, x.options());
  torch::Tensor src_buf = torch::empty({static_cast<int64_t>(p->src.get_size() / sizeof(float)) + 1}, x.options());
  torch::Tensor dst_buf = torch::empty({static_cast<int64_t>(p->dst.get_size() / sizeof(float)) + 1}, x.options());
  dnnl::memory user_src(p->user_src, e.eng, xc.data_ptr()), user_dst(p->user_dst, e.eng, y.data_ptr());
  dnnl::memory src(p->src, e.eng, src_buf.data_ptr()), dst(p->dst, e.eng, dst_buf.data_ptr());
  p->to_src.execute(e.strm, user_src, src);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, p->weights}, {DNNL_ARG_DST, dst}};
  torch::Tensor b;
  if (conv.bias.defined()) {
    b = conv.bias.detach().contiguous();
    args.emplace(DNNL_ARG_BIAS, dnnl::memory(p->bias, e.eng, b.data_ptr()));
  }
  p->prim.execute(e.strm, args);
  p->from_dst.execute(e.strm, dst, user_dst);
  e.strm.wait();
  return y;
}

void clear_cache() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_cache.clear();
}

#else  // no oneDNN headers at build time: LibTorch's convolution everywhere

bool winograd_available() { return false; }

bool takes_winograd(const torch::nn::Conv2dImpl&, const torch::Tensor&) { return false; }

void check_budget() {}

std::string description() {
  return algorithm() == Algorithm::Direct ? "direct (LibTorch; DEEPCACHE_CONV=direct)"
                                          : "direct (LibTorch; built without oneDNN's headers, libdnnl-dev)";
}

torch::Tensor forward(torch::nn::Conv2dImpl& conv, const torch::Tensor& x) { return conv.forward(x); }

void clear_cache() {}

#endif

bool winograd_in_use() { return algorithm() != Algorithm::Direct && winograd_available(); }

const char* kernel_name() {
#if DC_HAVE_DNNL
  if (winograd_in_use()) return onednn_kernel() ? "winograd" : "winograd_gemm";
#endif
  return "direct";
}

void check_environment() {
  check_budget();
  if ((algorithm() == Algorithm::Winograd || algorithm() == Algorithm::WinogradGemm) && !winograd_available())  // asked for by name: say so
    throw Error("DEEPCACHE_CONV=winograd: " + description() + "; use auto or direct");
}

}  // namespace dc::models::cpu_conv
