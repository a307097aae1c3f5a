// CPU convolution algorithm for inference: Winograd F(4x4, 3x3) for the 3x3 convolutions that
// dominate every UNet, where it pays, LibTorch's own convolution otherwise. Two Winograd paths,
// both through oneDNN (built where libdnnl-dev is the oneDNN LibTorch itself links: Debian 12's
// 2.x, Debian 13's 3.x):
//   - oneDNN's own Winograd kernel (jit_wino_4x3 / jit_fp32_wino_2x3), where oneDNN has one for
//     this CPU: oneDNN 2.x on AVX-512 (Debian 12, LibTorch 1.13);
//   - elsewhere (oneDNN 3.x has no x64 Winograd kernel; AVX2 CPUs) the GEMM path of
//     models/winograd_gemm.h: the tile transforms and 36 GEMMs per convolution through oneDNN's
//     sgemm, used for convolutions of at least 128 channels in and out with C K pixels >= 2^24 per
//     call, where it wins (below that its transforms cost more than they save); its intermediates
//     live in a per-thread workspace kept at the size of the largest call (up to ~3x the input).
//
// Why: on a CPU the DDPM / LDM / SD UNets spend 75-85% of a call in 3x3 convolutions that LibTorch
// already runs through oneDNN's direct kernels at 85-95% of the FMA peak, so no scheduling of the
// same arithmetic is much faster than the Python reference. Winograd does 2.25x (F(2x2)) to 4x
// (F(4x4)) fewer multiplications for a 3x3 kernel. Measured (docs/performance.md): oneDNN's kernel
// 1.5-2.5x LibTorch's convolution per call, the GEMM path 1.2-2.2x where it is used. Results differ
// from the direct kernel's by float rounding only (1e-6..2e-5 of the output's magnitude): the same
// order as a change of ISA, inside every fixture tolerance.
//
// Used only where it applies: CPU, float32, autograd off (inference: no_grad or InferenceMode),
// 3x3 kernel, stride 1, padding 1 (zeros), dilation 1, groups 1, at least 16 input channels
// (below that the transform costs more than it saves: conv_in with 3 channels is 3x slower).
// The weights are transformed once per module (oneDNN's kernel: per input shape; shapes share a
// transform when its layout is the same) and kept while the weight tensor lives and is unchanged
// (its version counter); training (autograd on) always takes LibTorch's path. A transformed weight
// is 4x the weight (6x6 tiles for 3x3), so the transforms held are capped at
// $DEEPCACHE_CONV_WINOGRAD_MB (default 2048): past it, convolutions keep LibTorch's path (a full SD
// UNet would need ~8 GB per batch shape; DDPM CIFAR-10 needs ~0.5 GB).
//
// Selection: $DEEPCACHE_CONV = auto (default: Winograd where available) | direct (LibTorch's
// convolution everywhere: bit-identical to PyTorch on the same machine) | winograd (as auto, but an
// error at start-up where this build has no Winograd path, instead of falling back) | winograd_gemm
// (the GEMM path even where oneDNN has its own kernel: to compare them, and so that the tests on
// Debian 12 exercise it). Every timing and every run's provenance records which one ran
// (description(); "conv3x3=" in harness::cpu_kernels()).
#pragma once
#include <string>

namespace at {
class Tensor;
}
namespace torch::nn {
class Conv2dImpl;
}

namespace dc::models::cpu_conv {

enum class Algorithm { Auto, Direct, Winograd, WinogradGemm };

// Parses "auto" | "direct" | "winograd" | "winograd_gemm"; anything else throws dc::Error naming the value and `what`.
Algorithm parse_algorithm(const std::string& text, const std::string& what);
const char* algorithm_name(Algorithm a);

// The process-wide choice; first read from $DEEPCACHE_CONV (an invalid value is an error then).
Algorithm algorithm();
void set_algorithm(Algorithm a);

// Checks $DEEPCACHE_CONV (also: winograd asked for where there is none) and
// $DEEPCACHE_CONV_WINOGRAD_MB (dc::Error naming the variable); the CLI calls it at start-up.
void check_environment();

// Whether this build has a Winograd path (oneDNN in the build: its kernel or the GEMM path).
bool winograd_available();
// winograd_available() and not DEEPCACHE_CONV=direct: what forward() and "conv3x3=" go by.
bool winograd_in_use();

// "winograd (oneDNN jit_wino_4x3:avx512_core, 3x3 convolutions)" | "winograd (F(4x4, 3x3) through
// oneDNN's sgemm, ...)" | "direct (LibTorch; built without oneDNN's headers, libdnnl-dev)" |
// "direct (LibTorch; DEEPCACHE_CONV=direct)".
std::string description();

// What "conv3x3=" records: "direct", "winograd" (oneDNN's kernel) or "winograd_gemm" (the GEMM path).
const char* kernel_name();

// Whether forward(conv, x) takes a Winograd path for this call.
bool takes_winograd(const torch::nn::Conv2dImpl& conv, const at::Tensor& x);

// The convolution of `conv` applied to `x`: the Winograd path when it applies (see above), else
// LibTorch's conv->forward(x).
at::Tensor forward(torch::nn::Conv2dImpl& conv, const at::Tensor& x);

// Drops every transformed weight (tests; memory).
void clear_cache();

}  // namespace dc::models::cpu_conv
