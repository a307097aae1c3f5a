// Winograd F(4x4, 3x3) convolution through GEMMs (oneDNN's sgemm where the build has oneDNN, else
// LibTorch's mm): the 3x3, stride-1, padding-1 convolution as 36 matrix products of transformed
// tiles. models/cpu_conv.h decides where it is used.
//
// Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016), F(m x m, r x r)
// with m = 4, r = 3 (interpolation points 0, +-1, +-2, infinity): a 6x6 input tile d gives a 4x4
// output tile Y = A^T [ (G g G^T) . (B^T d B) ] A, 36 multiplications instead of 144 per channel
// pair. Over channels the elementwise product becomes, at each of the 36 tile positions, a matrix
// product U[p] (K x C) @ V[p]^T (C x tiles): 4x less arithmetic than the convolution, in GEMMs.
// The transforms are GEMMs too, with the Kronecker products B^T (x) B^T (36x36) and A^T (x) A^T
// (16x36), over all tiles at once; the tiles are gathered from the input in channels-last order
// (one run of C floats per window pixel) and the output tiles scattered back in NCHW with the bias.
//
// Why this and not oneDNN's Winograd: oneDNN 3.x (Debian 13's, which LibTorch 2.6 links) has no x64
// Winograd kernel any more, and oneDNN 2.x's is AVX-512 only. Float rounding differs from a direct
// convolution's by the transforms (entries up to 8 in A^T, 1/24 in G): the largest difference is
// 4e-6..2e-5 of the output's largest magnitude, measured over the shapes of the UNets.
#pragma once
#include <torch/torch.h>

namespace dc::models::winograd {

// weight [K, C, 3, 3] float32 -> U [36, K, C] float32 (G g G^T at each tile position), contiguous.
torch::Tensor transform_weights(const torch::Tensor& weight);

// The convolution of x [N, C, H, W] float32 with the weights U = transform_weights(w) (and `bias`
// [K] or undefined), stride 1, zero padding 1: [N, K, H, W].
torch::Tensor conv3x3(const torch::Tensor& x, const torch::Tensor& U, const torch::Tensor& bias);

// Bytes transform_weights keeps for a weight of k x c: 36 k c floats (4x the weight).
inline size_t transformed_bytes(int64_t k, int64_t c) { return static_cast<size_t>(36 * k * c) * sizeof(float); }

}  // namespace dc::models::winograd
