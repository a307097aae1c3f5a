// CPU convolution algorithm for inference: oneDNN's Winograd F(4x4, 3x3) for the 3x3 convolutions
// that dominate every UNet, where the CPU has it (oneDNN 2.6: AVX-512 cores), LibTorch's own
// convolution otherwise.
//
// Why: on a CPU the DDPM / LDM / SD UNets spend 75-85% of a call in 3x3 convolutions that LibTorch
// already runs through oneDNN's direct kernels at 85-95% of the FMA peak, so no scheduling of the
// same arithmetic is much faster than the Python reference. Winograd does 2.25x fewer
// multiplications for a 3x3 kernel (36 products per 16 outputs instead of 144); measured here
// (AMD EPYC, AVX-512, 2 threads, batch 8): 128->128 at 32x32 12.3 ms -> 5.1 ms, 256->256 at
// 16x16 11.6 -> 4.1 ms, layout reorders included. Its results differ from the direct kernel's by
// float rounding only (about 2e-6 relative per convolution; docs/performance.md): the same order
// as a change of ISA, inside every fixture tolerance.
//
// Used only where it applies: CPU, float32, autograd off (inference: no_grad or InferenceMode),
// 3x3 kernel, stride 1, padding 1 (zeros), dilation 1, groups 1, at least 16 input channels
// (below that the transform costs more than it saves: conv_in with 3 channels is 3x slower).
// The weights are transformed once per (module, input shape; shapes share a transform when its
// layout is the same) and kept while the weight tensor lives and is unchanged (its version
// counter); training (autograd on) always takes LibTorch's path. A transformed weight is 4x the
// weight (6x6 tiles for 3x3), so the transforms held are capped at $DEEPCACHE_CONV_WINOGRAD_MB
// (default 2048): past it, convolutions keep LibTorch's path (a full SD UNet would need ~8 GB per
// batch shape; DDPM CIFAR-10 needs ~0.5 GB).
//
// Selection: $DEEPCACHE_CONV = auto (default: Winograd where available) | direct (LibTorch's
// convolution everywhere: bit-identical to PyTorch on the same machine) | winograd (as auto, but an
// error at start-up where this CPU has no Winograd kernel, instead of falling back). Every timing and every run's provenance
// records which one ran (description(); "conv3x3=" in harness::cpu_kernels()).
#pragma once
#include <string>

namespace at {
class Tensor;
}
namespace torch::nn {
class Conv2dImpl;
}

namespace dc::models::cpu_conv {

enum class Algorithm { Auto, Direct, Winograd };

// Parses "auto" | "direct" | "winograd"; anything else throws dc::Error naming the value and `what`.
Algorithm parse_algorithm(const std::string& text, const std::string& what);
const char* algorithm_name(Algorithm a);

// The process-wide choice; first read from $DEEPCACHE_CONV (an invalid value is an error then).
Algorithm algorithm();
void set_algorithm(Algorithm a);

// Checks $DEEPCACHE_CONV (also: winograd asked for where there is none) and
// $DEEPCACHE_CONV_WINOGRAD_MB (dc::Error naming the variable); the CLI calls it at start-up.
void check_environment();

// Whether this build has the oneDNN path and this CPU runs Winograd (probed once).
bool winograd_available();
// winograd_available() and not DEEPCACHE_CONV=direct: what forward() and "conv3x3=" go by.
bool winograd_in_use();

// "winograd (oneDNN jit_wino_4x3:avx512_core, 3x3 convolutions)" | "direct (LibTorch)" |
// "direct (LibTorch; Winograd needs AVX-512)" | "direct (LibTorch; DEEPCACHE_CONV=direct)".
std::string description();

// The convolution of `conv` applied to `x`: the Winograd path when it applies (see above), else
// LibTorch's conv->forward(x).
at::Tensor forward(torch::nn::Conv2dImpl& conv, const at::Tensor& x);

// Drops every transformed weight (tests; memory).
void clear_cache();

}  // namespace dc::models::cpu_conv
