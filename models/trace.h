// What a forward pass can report besides its output: the building blocks it ran (in order), the
// outputs of chosen blocks (named taps), and the multiply-accumulates it spent, counted the way
// the paper counts (DeepCache/flops.py: conv and linear with their biases, GroupNorm/LayerNorm
// as 2 per element when affine; SiLU, attention matmuls, interpolation and padding not counted),
// per image, and every multiply-accumulate the call performs (the paper's count plus the
// attention matmuls q k^T and softmax(.) v): the bound a timing is checked against (issue 31).
#pragma once
#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "models/cpu_conv.h"

namespace dc::models {

struct Trace {
  // Inputs.
  bool record_calls = false;        // fill `calls`
  bool tap_all = false;             // store every block's output in `taps`
  std::set<std::string> tap_names;  // or only these
  bool count_macs = false;          // fill `macs` / `macs_by_block`

  // Outputs.
  std::vector<std::string> calls;
  std::map<std::string, torch::Tensor> taps;
  double macs = 0.0;      // per image, as the paper counts
  double macs_all = 0.0;  // per image, every multiply-accumulate (macs + attention matmuls)
  std::map<std::string, double> macs_by_block;  // as the paper counts

  bool wants_tap(const std::string& name) const { return tap_all || tap_names.count(name) > 0; }
  void clear() {
    calls.clear();
    taps.clear();
    macs = 0.0;
    macs_all = 0.0;
    macs_by_block.clear();
  }
};

// Helpers for module code. `block` is the building block being run (for the breakdown).
namespace trace {

inline void add_macs(Trace* t, const std::string& block, double macs) {
  if (!t || !t->count_macs) return;
  t->macs += macs;
  t->macs_all += macs;
  t->macs_by_block[block] += macs;
}

// Multiply-accumulates the paper leaves out (attention matmuls): in macs_all only.
inline void add_uncounted_macs(Trace* t, double macs) {
  if (t && t->count_macs) t->macs_all += macs;
}

// conv: k_h*k_w*C_in/groups*C_out per output position, + C_out per position for the bias.
inline torch::Tensor conv(const torch::nn::Conv2d& c, const torch::Tensor& x, Trace* t, const std::string& block) {
  torch::Tensor y = cpu_conv::forward(*c.ptr(), x);  // Winograd for 3x3 on CPUs that have it
  if (t && t->count_macs) {
    const auto& o = c->options;
    const double per_pos = static_cast<double>((*o.kernel_size())[0] * (*o.kernel_size())[1] * o.in_channels() /
                                               o.groups() * o.out_channels()) +
                           (o.bias() ? static_cast<double>(o.out_channels()) : 0.0);
    add_macs(t, block, per_pos * static_cast<double>(y.size(2) * y.size(3)));
  }
  return y;
}

// linear: in*out (+ out for the bias), per row of the input excluding the batch dimension.
inline torch::Tensor linear(const torch::nn::Linear& l, const torch::Tensor& x, Trace* t, const std::string& block) {
  torch::Tensor y = l.ptr()->forward(x);
  if (t && t->count_macs) {
    const double rows = x.dim() > 1 ? static_cast<double>(x.numel() / x.size(0) / x.size(-1)) : 1.0;
    add_macs(t, block, rows * static_cast<double>(l->options.in_features() * l->options.out_features()) +
                           (l->options.bias() ? static_cast<double>(l->options.out_features()) : 0.0));
  }
  return y;
}

// Reduced precision (model.dtype fp16/bf16): normalisations compute in fp32 and return the input's
// dtype, as CompVis's GroupNorm32 does (`super().forward(x.float()).type(x.dtype)`).
inline bool reduced(const torch::Tensor& x) { return x.scalar_type() == torch::kHalf || x.scalar_type() == torch::kBFloat16; }
inline torch::Tensor fp32_or_undefined(const torch::Tensor& p) { return p.defined() ? p.to(torch::kFloat) : p; }

inline torch::Tensor group_norm(const torch::nn::GroupNorm& n, const torch::Tensor& x, Trace* t, const std::string& block) {
  torch::Tensor y = !reduced(x) ? n.ptr()->forward(x)
                                : torch::group_norm(x.to(torch::kFloat), n->options.num_groups(), fp32_or_undefined(n->weight),
                                                    fp32_or_undefined(n->bias), n->options.eps())
                                      .to(x.scalar_type());
  if (t && t->count_macs)
    add_macs(t, block, static_cast<double>(x.numel() / x.size(0)) * (n->options.affine() ? 2.0 : 1.0));
  return y;
}

inline torch::Tensor layer_norm(const torch::nn::LayerNorm& n, const torch::Tensor& x, Trace* t, const std::string& block) {
  torch::Tensor y = !reduced(x) ? n.ptr()->forward(x)
                                : torch::layer_norm(x.to(torch::kFloat), n->options.normalized_shape(), fp32_or_undefined(n->weight),
                                                    fp32_or_undefined(n->bias), n->options.eps())
                                      .to(x.scalar_type());
  if (t && t->count_macs)
    add_macs(t, block, static_cast<double>(x.numel() / x.size(0)) * (n->options.elementwise_affine() ? 2.0 : 1.0));
  return y;
}

// softmax(q k^T / sqrt(d)) v for q [N, Lq, d], k and v [N, Lk, d] (attention matmuls are not
// counted as MACs, as the paper counts). LibTorch 2.x: at::scaled_dot_product_attention (flash /
// memory-efficient kernels on CUDA, fp32 accumulation); on the CPU in fp32 also for fp16/bf16
// inputs (cast back after). Why: on an AMD EPYC (AVX512_BF16), Debian 13's LibTorch 2.6 gave a bf16
// run 25 uint8 levels off fp32 (issue 30), where an Intel Xeon without AVX512_BF16 stays within
// 0.7. Not reproducible here; the suspect is LibTorch 2.5+'s reduced-precision CPU attention, the
// one kernel of these calls that switches to oneDNN's BRGEMM micro-kernels on CPUs with
// AVX512_BF16 or AMX (a micro-kernel API that changed between the oneDNN PyTorch pins and the
// oneDNN 3.7 Debian builds it against). Attention is a few percent of a CPU call, so fp32 costs
// little. 1.13: two bmm and a softmax computed in fp32 (model.dtype fp16/bf16), as the
// references' explicit paths do.
inline torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
#if TORCH_VERSION_MAJOR >= 2
  if (q.is_cpu() && reduced(q))
    return at::scaled_dot_product_attention(q.to(torch::kFloat), k.to(torch::kFloat), v.to(torch::kFloat)).to(q.scalar_type());
  return at::scaled_dot_product_attention(q, k, v);
#else
  const torch::Tensor sim = torch::bmm(q, k.transpose(1, 2)) * std::pow(static_cast<double>(q.size(-1)), -0.5);
  return torch::bmm(sim.softmax(-1, torch::kFloat).to(v.scalar_type()), v);
#endif
}

// attention() with its matmuls counted in macs_all: q k^T and softmax(.) v, Lq*Lk*d each per
// head; `images`: the batch the N = images x heads rows of q belong to (per image, as every count).
inline torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t images, Trace* t) {
  if (t && t->count_macs && images > 0)
    add_uncounted_macs(t, 2.0 * static_cast<double>(q.size(0) / images) * static_cast<double>(q.size(1)) *
                              static_cast<double>(k.size(1)) * static_cast<double>(q.size(2)));
  return attention(q, k, v);
}

inline void done(Trace* t, const std::string& block, const torch::Tensor& out) {
  if (!t) return;
  if (t->record_calls) t->calls.push_back(block);
  if (t->wants_tap(block)) t->taps[block] = out;
}

}  // namespace trace
}  // namespace dc::models
