// A constant tensor a model computes on the CPU (as its reference does) and uses on the input's
// device, moved there once per device instead of at every call. Besides the copy saved, this is
// what lets a call be captured in a CUDA graph (models/unet_graphs.h): a capture may not copy from
// pageable host memory, and the first (eager) call fills the constant before any capture.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <utility>

namespace dc::models {

class DeviceConstant {
 public:
  explicit DeviceConstant(std::function<torch::Tensor()> make) : make_(std::move(make)) {}
  const torch::Tensor& on(const c10::Device& device) {
    if (!value_.defined() || value_.device() != device) value_ = make_().to(device);
    return value_;
  }

 private:
  std::function<torch::Tensor()> make_;
  torch::Tensor value_;
};

}  // namespace dc::models
