// pytorch-fid's FID InceptionV3 (src/pytorch_fid/inception.py, InceptionV3([3]) with
// fid_inception_v3(): torchvision Inception3(num_classes=1008, aux_logits=False) with the
// TF-ported FID blocks). Module names equal the keys of pt_inception-2015-12-05-6726825d.pth
// (manifest fixtures/fid/inception_fid.keys.json).
//
// TF quirks kept: the average pools of FIDInceptionA/C/E_1 do not count padding; FIDInceptionE_2
// (Mixed_7c) max-pools its pool branch; the input is resized to 299x299 bilinearly without corner
// alignment (even when already 299) and scaled from [0, 1] to [-1, 1]; BatchNorm eps 0.001.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>

namespace dc::metrics {

struct BasicConv2dImpl : torch::nn::Module {
  BasicConv2dImpl(int64_t in, int64_t out, torch::ExpandingArray<2> kernel, torch::ExpandingArray<2> stride = 1,
                  torch::ExpandingArray<2> padding = 0);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(BasicConv2d);

struct InceptionFidOutput {
  torch::Tensor pool3;   // [B, 2048]
  torch::Tensor logits;  // [B, 1008] (when requested)
  // [B, 2023]: the ADM evaluator's sFID features, TF `mixed_6/conv:0` [..., :7] flattened in NHWC
  // order. Its counterpart here: the first 7 channels of Mixed_6d's output, which are its
  // branch1x1 (1x1 conv, batch norm, ReLU) - the TF graph's `mixed_6` is torchvision's Mixed_6d
  // (mixed, mixed_1, mixed_2 = 5b-5d; mixed_3 = 6a; mixed_4..7 = 6b..6e).
  torch::Tensor spatial;  // (when requested)
  std::map<std::string, torch::Tensor> blocks;  // "block0".."block2" outputs (when requested)
  torch::Tensor resized;  // after the bilinear resize, before 2x-1 (when requested)
};

class InceptionFidImpl : public torch::nn::Module {
 public:
  InceptionFidImpl();
  // x: [B, 3, H, W] float in [0, 1] (uint8 / 255, as torchvision's ToTensor gives).
  InceptionFidOutput forward(const torch::Tensor& x, bool logits = false, bool debug = false, bool spatial = false);
  // From uint8 [B, 3, H, W] images (the pytorch-fid path from PNG files).
  torch::Tensor features_from_uint8(const torch::Tensor& images);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};
TORCH_MODULE(InceptionFid);

}  // namespace dc::metrics
