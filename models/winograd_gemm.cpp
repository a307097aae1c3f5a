#include "models/winograd_gemm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "dc/build_info.h"

#if DC_HAVE_DNNL
#include <dnnl.h>
#endif

namespace dc::models::winograd {

namespace {

torch::Tensor matrix(const std::vector<double>& v, int64_t rows, int64_t cols) {
  return torch::tensor(v, torch::kDouble).view({rows, cols});
}

// Lavin & Gray's F(4x4, 3x3) matrices (points 0, +-1, +-2, infinity), as Kronecker products that
// act on a tile flattened row-major (index 6 i + j): T (x) T applied to vec(d) is vec(T d T^T).
struct Matrices {
  torch::Tensor bt36, g36, at16;  // float32 [36, 36] and [16, 36]; g36 double [36, 9]
  Matrices() {
    const torch::Tensor bt = matrix({4, 0, -5, 0, 1, 0,    //
                                     0, -4, -4, 1, 1, 0,   //
                                     0, 4, -4, -1, 1, 0,   //
                                     0, -2, -1, 2, 1, 0,   //
                                     0, 2, -1, -2, 1, 0,   //
                                     0, 4, 0, -5, 0, 1},
                                    6, 6);
    const torch::Tensor g = matrix({1.0 / 4, 0, 0,                //
                                    -1.0 / 6, -1.0 / 6, -1.0 / 6,  //
                                    -1.0 / 6, 1.0 / 6, -1.0 / 6,   //
                                    1.0 / 24, 1.0 / 12, 1.0 / 6,   //
                                    1.0 / 24, -1.0 / 12, 1.0 / 6,  //
                                    0, 0, 1},
                                   6, 3);
    const torch::Tensor at = matrix({1, 1, 1, 1, 1, 0,    //
                                     0, 1, -1, 2, -2, 0,  //
                                     0, 1, 1, 4, 4, 0,    //
                                     0, 1, -1, 8, -8, 1},
                                    4, 6);
    bt36 = torch::kron(bt, bt).to(torch::kFloat).contiguous();
    g36 = torch::kron(g, g).contiguous();
    at16 = torch::kron(at, at).to(torch::kFloat).contiguous();
  }
};
const Matrices& matrices() {
  static const Matrices m;
  return m;
}

// c [m, n] = a [m, k] @ b [k, n] (b_transposed: b [n, k], c = a b^T), row-major and contiguous.
// oneDNN's sgemm where this build has oneDNN: its JIT kernels pick the ISA from the CPU's features,
// while OpenBLAS picks its kernels from the CPU model and took a VM's AVX-512 Xeon for a Prescott
// (4x slower: 30 against 118-148 G MAC/s for 1024^3 on 2 threads). Else LibTorch's mm.
void gemm(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k, bool b_transposed = false) {
#if DC_HAVE_DNNL
  dnnl_sgemm('N', b_transposed ? 'T' : 'N', m, n, k, 1.0f, a, k, b, b_transposed ? k : n, 0.0f, c, n);
#else
  const auto opts = torch::TensorOptions().dtype(torch::kFloat);
  torch::Tensor out = torch::from_blob(c, {m, n}, opts);
  const torch::Tensor bm = b_transposed ? torch::from_blob(const_cast<float*>(b), {n, k}, opts).t()
                                        : torch::from_blob(const_cast<float*>(b), {k, n}, opts);
  at::mm_out(out, torch::from_blob(const_cast<float*>(a), {m, k}, opts), bm);
#endif
}

// d [36, tiles, C]: the 6x6 windows at stride 4 of the input zero-padded by 1 (and up to whole
// tiles), window position 6 i + j, tile (sample, tile row, tile column), from the input in
// channels-last order xh [N, H, W, C]: each window pixel is one run of C floats. (From NCHW
// directly, one float at a time, this step took 2.5x as long.)
void gather_tiles(const float* xh, float* d, int64_t n, int64_t c, int64_t h, int64_t w, int64_t th, int64_t tw) {
  const int64_t tiles = n * th * tw;
  at::parallel_for(0, tiles, 8, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t s = t / (th * tw), ti = t / tw % th, tj = t % tw;
      for (int64_t i = 0; i < 6; ++i) {
        const int64_t row = 4 * ti + i - 1;
        for (int64_t j = 0; j < 6; ++j) {
          const int64_t col = 4 * tj + j - 1;
          float* dst = d + ((i * 6 + j) * tiles + t) * c;
          if (row < 0 || row >= h || col < 0 || col >= w) std::memset(dst, 0, static_cast<size_t>(c) * sizeof(float));
          else std::memcpy(dst, xh + ((s * h + row) * w + col) * c, static_cast<size_t>(c) * sizeof(float));
        }
      }
    }
  });
}

// y [N, K, H, W] from the output tiles o [16, K, tiles] (tile position 4 i + j), plus the bias.
void scatter_tiles(const float* o, const float* bias, float* y, int64_t n, int64_t k, int64_t h, int64_t w, int64_t th,
                   int64_t tw) {
  const int64_t tiles = n * th * tw;
  at::parallel_for(0, n * k, 1, [&](int64_t begin, int64_t end) {
    for (int64_t nk = begin; nk < end; ++nk) {
      const int64_t s = nk / k, ch = nk % k;
      const float b = bias ? bias[ch] : 0.0f;
      float* plane = y + nk * h * w;
      for (int64_t row = 0; row < h; ++row) {
        const int64_t ti = row / 4, i = row % 4;
        float* dst = plane + row * w;
        for (int64_t j = 0; j < 4; ++j) {
          const float* src = o + ((i * 4 + j) * k + ch) * tiles + (s * th + ti) * tw;
          for (int64_t tj = 0; tj < tw && 4 * tj + j < w; ++tj) dst[4 * tj + j] = src[tj] + b;
        }
      }
    }
  });
}

// The intermediate buffers of a call (tiles, transformed tiles, products, output tiles, the
// channels-last input), kept per thread and grown as needed: allocated afresh at every call they
// are tens of MB, which glibc maps and unmaps each time, and the page faults cost more than the
// GEMMs (measured: the 128-channel 32x32 batch-8 convolution took 19.8 ms instead of 6.5).
float* workspace(int64_t floats) {
  thread_local torch::Tensor buffer;
  if (!buffer.defined() || buffer.numel() < floats) buffer = torch::empty({floats}, torch::TensorOptions().dtype(torch::kFloat));
  return buffer.data_ptr<float>();
}

}  // namespace

torch::Tensor transform_weights(const torch::Tensor& weight) {
  const int64_t k = weight.size(0), c = weight.size(1);
  // U[6i+j, k, c] = (G g_kc G^T)[i, j]: [36, 9] @ [9, K C], in double for the fractions, then float32.
  const torch::Tensor g = weight.detach().to(torch::kCPU, torch::kDouble).reshape({k * c, 9}).t();
  return torch::mm(matrices().g36, g).to(torch::kFloat).view({36, k, c}).contiguous();
}

torch::Tensor conv3x3(const torch::Tensor& x_in, const torch::Tensor& U, const torch::Tensor& bias_in) {
  const Matrices& m = matrices();
  const torch::Tensor x = x_in.contiguous();
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), k = U.size(1);
  const int64_t th = (h + 3) / 4, tw = (w + 3) / 4, tiles = n * th * tw;
  const auto opts = x.options();
  // Workspace: d and v [36, tiles, C], products [36, K, tiles], output tiles [16, K, tiles], the
  // channels-last input [N, H, W, C].
  float* d = workspace(2 * 36 * tiles * c + 52 * k * tiles + n * h * w * c);
  float* v = d + 36 * tiles * c;
  float* mm = v + 36 * tiles * c;
  float* o = mm + 36 * k * tiles;
  float* xh = o + 16 * k * tiles;
  // 1. Tiles, [36, tiles C], from the input in channels-last order; 2. input transform
  //    V = (B^T (x) B^T) d, [36, tiles, C].
  torch::from_blob(xh, {n, h, w, c}, opts).copy_(x.permute({0, 2, 3, 1}));
  gather_tiles(xh, d, n, c, h, w, th, tw);
  gemm(m.bt36.data_ptr<float>(), d, v, 36, tiles * c, 36);
  // 3. At each of the 36 positions, M[p] = U[p] (K x C) @ V[p]^T (C x tiles): 4x fewer products than
  //    the direct convolution, in GEMMs (each on all threads).
  const float* u = U.data_ptr<float>();
  for (int64_t p = 0; p < 36; ++p) gemm(u + p * k * c, v + p * tiles * c, mm + p * k * tiles, k, tiles, c, /*b_transposed=*/true);
  // 4. Output transform (A^T (x) A^T) M, [16, K, tiles], and the 4x4 tiles back in place (+ bias).
  gemm(m.at16.data_ptr<float>(), mm, o, 16, k * tiles, 36);
  torch::Tensor y = torch::empty({n, k, h, w}, opts);
  const torch::Tensor bias = bias_in.defined() ? bias_in.detach().contiguous() : torch::Tensor();
  scatter_tiles(o, bias.defined() ? bias.data_ptr<float>() : nullptr, y.data_ptr<float>(), n, k, h, w, th, tw);
  return y;
}

}  // namespace dc::models::winograd
