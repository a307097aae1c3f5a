// TaylorSeer's forecast of a cached feature (Liu et al., arXiv 2503.06923; the reference's
// taylor_utils: derivative_approximation and taylor_formula), torch side. Each fresh value F at call
// c replaces the factors: Δ⁰ = F, Δⁱ⁺¹ = (Δⁱ − the previous Δⁱ) / (c − the previous fresh call), as
// far as `order` and the earlier values allow; the forecast at call c' is Σᵢ Δⁱ (c' − c)ⁱ / i!.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace dc::harness::policies {

class TaylorForecast {
 public:
  explicit TaylorForecast(int order = 1) : order_(order) {}
  void reset() {
    factors_.clear();
    last_ = -1;
  }
  // A fresh value at `call` (copied: a CUDA graph rewrites its buffers in place).
  void update(int call, const torch::Tensor& value) {
    std::vector<torch::Tensor> next{value.clone()};
    if (last_ >= 0 && call > last_) {
      const double distance = call - last_;
      for (int i = 0; i < order_ && i < static_cast<int>(factors_.size()); ++i) next.push_back((next[i] - factors_[i]) / distance);
    }
    factors_ = std::move(next);
    last_ = call;
  }
  bool ready() const { return !factors_.empty(); }
  int factors() const { return static_cast<int>(factors_.size()); }  // 1 + the orders in use
  // The forecast at `call` (the last fresh value itself while only it is known).
  torch::Tensor at(int call) const {
    const double dx = call - last_;
    torch::Tensor out = factors_[0];
    double coeff = 1.0;
    for (std::size_t i = 1; i < factors_.size(); ++i) {
      coeff *= dx / static_cast<double>(i);  // dxⁱ / i!
      out = out + factors_[i] * coeff;
    }
    return out;
  }

 private:
  int order_;
  std::vector<torch::Tensor> factors_;
  int last_ = -1;
};

}  // namespace dc::harness::policies
