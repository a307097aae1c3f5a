#include "metrics/inception_fid.h"

namespace dc::metrics {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

BasicConv2dImpl::BasicConv2dImpl(int64_t in, int64_t out, torch::ExpandingArray<2> kernel, torch::ExpandingArray<2> stride,
                                 torch::ExpandingArray<2> padding) {
  conv = register_module("conv", nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false)));
  bn = register_module("bn", nn::BatchNorm2d(nn::BatchNorm2dOptions(out).eps(0.001)));
}

torch::Tensor BasicConv2dImpl::forward(const torch::Tensor& x) { return torch::relu(bn(conv(x))); }

// The blocks: a named namespace (not an anonymous one), because InceptionFidImpl::Impl holds them
// and a unity build would otherwise warn (-Wsubobject-linkage).
namespace inception_blocks {

using KS = torch::ExpandingArray<2>;

torch::Tensor avg3_no_pad(const torch::Tensor& x) {  // avg_pool2d(3, 1, 1, count_include_pad=False)
  return F::avg_pool2d(x, F::AvgPool2dFuncOptions(3).stride(1).padding(1).count_include_pad(false));
}

// FIDInceptionA (pool_features varies).
struct InceptionAImpl : nn::Module {
  InceptionAImpl(int64_t in, int64_t pool_features) {
    branch1x1 = register_module("branch1x1", BasicConv2d(in, 64, 1));
    branch5x5_1 = register_module("branch5x5_1", BasicConv2d(in, 48, 1));
    branch5x5_2 = register_module("branch5x5_2", BasicConv2d(48, 64, 5, 1, 2));
    branch3x3dbl_1 = register_module("branch3x3dbl_1", BasicConv2d(in, 64, 1));
    branch3x3dbl_2 = register_module("branch3x3dbl_2", BasicConv2d(64, 96, 3, 1, 1));
    branch3x3dbl_3 = register_module("branch3x3dbl_3", BasicConv2d(96, 96, 3, 1, 1));
    branch_pool = register_module("branch_pool", BasicConv2d(in, pool_features, 1));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat({branch1x1(x), branch5x5_2(branch5x5_1(x)), branch3x3dbl_3(branch3x3dbl_2(branch3x3dbl_1(x))),
                       branch_pool(avg3_no_pad(x))},
                      1);
  }
  BasicConv2d branch1x1{nullptr}, branch5x5_1{nullptr}, branch5x5_2{nullptr}, branch3x3dbl_1{nullptr}, branch3x3dbl_2{nullptr},
      branch3x3dbl_3{nullptr}, branch_pool{nullptr};
};
TORCH_MODULE(InceptionA);

// torchvision InceptionB (Mixed_6a).
struct InceptionBImpl : nn::Module {
  explicit InceptionBImpl(int64_t in) {
    branch3x3 = register_module("branch3x3", BasicConv2d(in, 384, 3, 2));
    branch3x3dbl_1 = register_module("branch3x3dbl_1", BasicConv2d(in, 64, 1));
    branch3x3dbl_2 = register_module("branch3x3dbl_2", BasicConv2d(64, 96, 3, 1, 1));
    branch3x3dbl_3 = register_module("branch3x3dbl_3", BasicConv2d(96, 96, 3, 2));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat({branch3x3(x), branch3x3dbl_3(branch3x3dbl_2(branch3x3dbl_1(x))), F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(2))}, 1);
  }
  BasicConv2d branch3x3{nullptr}, branch3x3dbl_1{nullptr}, branch3x3dbl_2{nullptr}, branch3x3dbl_3{nullptr};
};
TORCH_MODULE(InceptionB);

// FIDInceptionC.
struct InceptionCImpl : nn::Module {
  InceptionCImpl(int64_t in, int64_t c7) {
    branch1x1 = register_module("branch1x1", BasicConv2d(in, 192, 1));
    branch7x7_1 = register_module("branch7x7_1", BasicConv2d(in, c7, 1));
    branch7x7_2 = register_module("branch7x7_2", BasicConv2d(c7, c7, KS({1, 7}), 1, KS({0, 3})));
    branch7x7_3 = register_module("branch7x7_3", BasicConv2d(c7, 192, KS({7, 1}), 1, KS({3, 0})));
    branch7x7dbl_1 = register_module("branch7x7dbl_1", BasicConv2d(in, c7, 1));
    branch7x7dbl_2 = register_module("branch7x7dbl_2", BasicConv2d(c7, c7, KS({7, 1}), 1, KS({3, 0})));
    branch7x7dbl_3 = register_module("branch7x7dbl_3", BasicConv2d(c7, c7, KS({1, 7}), 1, KS({0, 3})));
    branch7x7dbl_4 = register_module("branch7x7dbl_4", BasicConv2d(c7, c7, KS({7, 1}), 1, KS({3, 0})));
    branch7x7dbl_5 = register_module("branch7x7dbl_5", BasicConv2d(c7, 192, KS({1, 7}), 1, KS({0, 3})));
    branch_pool = register_module("branch_pool", BasicConv2d(in, 192, 1));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const auto b7 = branch7x7_3(branch7x7_2(branch7x7_1(x)));
    const auto dbl = branch7x7dbl_5(branch7x7dbl_4(branch7x7dbl_3(branch7x7dbl_2(branch7x7dbl_1(x)))));
    return torch::cat({branch1x1(x), b7, dbl, branch_pool(avg3_no_pad(x))}, 1);
  }
  BasicConv2d branch1x1{nullptr}, branch7x7_1{nullptr}, branch7x7_2{nullptr}, branch7x7_3{nullptr}, branch7x7dbl_1{nullptr},
      branch7x7dbl_2{nullptr}, branch7x7dbl_3{nullptr}, branch7x7dbl_4{nullptr}, branch7x7dbl_5{nullptr}, branch_pool{nullptr};
};
TORCH_MODULE(InceptionC);

// torchvision InceptionD (Mixed_7a).
struct InceptionDImpl : nn::Module {
  explicit InceptionDImpl(int64_t in) {
    branch3x3_1 = register_module("branch3x3_1", BasicConv2d(in, 192, 1));
    branch3x3_2 = register_module("branch3x3_2", BasicConv2d(192, 320, 3, 2));
    branch7x7x3_1 = register_module("branch7x7x3_1", BasicConv2d(in, 192, 1));
    branch7x7x3_2 = register_module("branch7x7x3_2", BasicConv2d(192, 192, KS({1, 7}), 1, KS({0, 3})));
    branch7x7x3_3 = register_module("branch7x7x3_3", BasicConv2d(192, 192, KS({7, 1}), 1, KS({3, 0})));
    branch7x7x3_4 = register_module("branch7x7x3_4", BasicConv2d(192, 192, 3, 2));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat({branch3x3_2(branch3x3_1(x)), branch7x7x3_4(branch7x7x3_3(branch7x7x3_2(branch7x7x3_1(x)))),
                       F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(2))},
                      1);
  }
  BasicConv2d branch3x3_1{nullptr}, branch3x3_2{nullptr}, branch7x7x3_1{nullptr}, branch7x7x3_2{nullptr}, branch7x7x3_3{nullptr},
      branch7x7x3_4{nullptr};
};
TORCH_MODULE(InceptionD);

// FIDInceptionE_1 (average pool, no padding counted) and FIDInceptionE_2 (max pool).
struct InceptionEImpl : nn::Module {
  InceptionEImpl(int64_t in, bool max_pool) : max_pool(max_pool) {
    branch1x1 = register_module("branch1x1", BasicConv2d(in, 320, 1));
    branch3x3_1 = register_module("branch3x3_1", BasicConv2d(in, 384, 1));
    branch3x3_2a = register_module("branch3x3_2a", BasicConv2d(384, 384, KS({1, 3}), 1, KS({0, 1})));
    branch3x3_2b = register_module("branch3x3_2b", BasicConv2d(384, 384, KS({3, 1}), 1, KS({1, 0})));
    branch3x3dbl_1 = register_module("branch3x3dbl_1", BasicConv2d(in, 448, 1));
    branch3x3dbl_2 = register_module("branch3x3dbl_2", BasicConv2d(448, 384, 3, 1, 1));
    branch3x3dbl_3a = register_module("branch3x3dbl_3a", BasicConv2d(384, 384, KS({1, 3}), 1, KS({0, 1})));
    branch3x3dbl_3b = register_module("branch3x3dbl_3b", BasicConv2d(384, 384, KS({3, 1}), 1, KS({1, 0})));
    branch_pool = register_module("branch_pool", BasicConv2d(in, 192, 1));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const auto b3 = branch3x3_1(x);
    const auto d = branch3x3dbl_2(branch3x3dbl_1(x));
    const auto pooled = max_pool ? F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(1).padding(1)) : avg3_no_pad(x);
    return torch::cat({branch1x1(x), torch::cat({branch3x3_2a(b3), branch3x3_2b(b3)}, 1),
                       torch::cat({branch3x3dbl_3a(d), branch3x3dbl_3b(d)}, 1), branch_pool(pooled)},
                      1);
  }
  bool max_pool;
  BasicConv2d branch1x1{nullptr}, branch3x3_1{nullptr}, branch3x3_2a{nullptr}, branch3x3_2b{nullptr}, branch3x3dbl_1{nullptr},
      branch3x3dbl_2{nullptr}, branch3x3dbl_3a{nullptr}, branch3x3dbl_3b{nullptr}, branch_pool{nullptr};
};
TORCH_MODULE(InceptionE);

}  // namespace inception_blocks
using namespace inception_blocks;

struct InceptionFidImpl::Impl {
  BasicConv2d c1a{nullptr}, c2a{nullptr}, c2b{nullptr}, c3b{nullptr}, c4a{nullptr};
  InceptionA m5b{nullptr}, m5c{nullptr}, m5d{nullptr};
  InceptionB m6a{nullptr};
  InceptionC m6b{nullptr}, m6c{nullptr}, m6d{nullptr}, m6e{nullptr};
  InceptionD m7a{nullptr};
  InceptionE m7b{nullptr}, m7c{nullptr};
  nn::Linear fc{nullptr};
};

InceptionFidImpl::InceptionFidImpl() : impl_(std::make_shared<Impl>()) {
  auto& m = *impl_;
  m.c1a = register_module("Conv2d_1a_3x3", BasicConv2d(3, 32, 3, 2));
  m.c2a = register_module("Conv2d_2a_3x3", BasicConv2d(32, 32, 3));
  m.c2b = register_module("Conv2d_2b_3x3", BasicConv2d(32, 64, 3, 1, 1));
  m.c3b = register_module("Conv2d_3b_1x1", BasicConv2d(64, 80, 1));
  m.c4a = register_module("Conv2d_4a_3x3", BasicConv2d(80, 192, 3));
  m.m5b = register_module("Mixed_5b", InceptionA(192, 32));
  m.m5c = register_module("Mixed_5c", InceptionA(256, 64));
  m.m5d = register_module("Mixed_5d", InceptionA(288, 64));
  m.m6a = register_module("Mixed_6a", InceptionB(288));
  m.m6b = register_module("Mixed_6b", InceptionC(768, 128));
  m.m6c = register_module("Mixed_6c", InceptionC(768, 160));
  m.m6d = register_module("Mixed_6d", InceptionC(768, 160));
  m.m6e = register_module("Mixed_6e", InceptionC(768, 192));
  m.m7a = register_module("Mixed_7a", InceptionD(768));
  m.m7b = register_module("Mixed_7b", InceptionE(1280, false));
  m.m7c = register_module("Mixed_7c", InceptionE(2048, true));
  m.fc = register_module("fc", nn::Linear(2048, 1008));
}

InceptionFidOutput InceptionFidImpl::forward(const torch::Tensor& x_in, bool logits, bool debug, bool spatial) {
  auto& m = *impl_;
  InceptionFidOutput out;
  // 1. Bilinear resize to 299 (align_corners=False), then [0, 1] -> [-1, 1].
  torch::Tensor x = F::interpolate(x_in, F::InterpolateFuncOptions().size(std::vector<int64_t>{299, 299}).mode(torch::kBilinear).align_corners(false));
  if (debug) out.resized = x;
  x = 2 * x - 1;
  // 2. block0: [B, 64, 73, 73].
  x = F::max_pool2d(m.c2b(m.c2a(m.c1a(x))), F::MaxPool2dFuncOptions(3).stride(2));
  if (debug) out.blocks["block0"] = x;
  // 3. block1: [B, 192, 35, 35].
  x = F::max_pool2d(m.c4a(m.c3b(x)), F::MaxPool2dFuncOptions(3).stride(2));
  if (debug) out.blocks["block1"] = x;
  // 4. block2: [B, 768, 17, 17].
  x = m.m6d(m.m6c(m.m6b(m.m6a(m.m5d(m.m5c(m.m5b(x)))))));
  if (spatial) out.spatial = x.slice(1, 0, 7).permute({0, 2, 3, 1}).flatten(1);  // [B, 17 * 17 * 7] in HWC order
  x = m.m6e(x);
  if (debug) out.blocks["block2"] = x;
  // 5. block3: [B, 2048, 8, 8] -> adaptive average pool -> [B, 2048].
  x = m.m7c(m.m7b(m.m7a(x)));
  out.pool3 = F::adaptive_avg_pool2d(x, F::AdaptiveAvgPool2dFuncOptions(1)).flatten(1);
  if (logits) out.logits = m.fc(out.pool3);
  return out;
}

torch::Tensor InceptionFidImpl::features_from_uint8(const torch::Tensor& images) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == 3 && images.scalar_type() == torch::kUInt8,
              "Inception FID: need uint8 [B, 3, H, W] images, got ", images.sizes(), " ", images.scalar_type());
  const auto p = parameters().front();
  return forward(images.to(p.device()).to(torch::kFloat32).div(255)).pool3;
}

}  // namespace dc::metrics
