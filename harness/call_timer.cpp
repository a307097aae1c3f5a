#include "harness/call_timer.h"

#include <torch/torch.h>

#include <chrono>

#include "dc/build_info.h"
// CUDA events need the CUDA runtime's headers, which a LibTorch with CUDA does not always ship
// (PyTorch's wheels rely on the toolkit's): without them, the steady_clock fallback.
#if DC_HAS_CUDA && defined(__has_include)
#if __has_include(<ATen/cuda/CUDAEvent.h>) && __has_include(<cuda_runtime_api.h>)
#include <ATen/cuda/CUDAEvent.h>
#define DC_CUDA_EVENTS 1
#endif
#endif
#ifndef DC_CUDA_EVENTS
#define DC_CUDA_EVENTS 0
#endif

namespace dc::harness {

namespace {

class SteadyTimer : public CallTimer {
 public:
  SteadyTimer(const c10::Device& d, std::function<double()> now_ms) : device_(d), now_ms_(std::move(now_ms)) {
    if (!now_ms_)
      now_ms_ = [] { return 1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); };
  }
  void start_batch(int calls) override { ms_.assign(static_cast<size_t>(calls), 0.0); }
  void begin(int) override {
    sync();
    t0_ = now_ms_();
  }
  void end(int call) override {
    sync();
    if (call >= static_cast<int>(ms_.size())) ms_.resize(static_cast<size_t>(call) + 1, 0.0);
    ms_[static_cast<size_t>(call)] += now_ms_() - t0_;
  }
  std::vector<double> finish_batch() override { return ms_; }
  std::string clock() const override {
    return device_.is_cuda() ? "steady_clock, device synchronised around each call" : "steady_clock";
  }

 private:
  void sync() const {
    if (device_.is_cuda()) torch::cuda::synchronize();
  }
  c10::Device device_;
  std::function<double()> now_ms_;
  std::vector<double> ms_;
  double t0_ = 0.0;
};

#if DC_CUDA_EVENTS
class CudaEventTimer : public CallTimer {
 public:
  void start_batch(int calls) override {
    marks_.clear();
    calls_ = calls;
  }
  void begin(int call) override {
    marks_.push_back({call, std::make_unique<at::cuda::CUDAEvent>(cudaEventDefault), nullptr});
    marks_.back().start->record();
  }
  void end(int) override {
    marks_.back().stop = std::make_unique<at::cuda::CUDAEvent>(cudaEventDefault);
    marks_.back().stop->record();
  }
  std::vector<double> finish_batch() override {
    std::vector<double> ms(static_cast<size_t>(calls_), 0.0);
    if (!marks_.empty()) marks_.back().stop->synchronize();
    for (const auto& m : marks_) {
      if (m.call >= static_cast<int>(ms.size())) ms.resize(static_cast<size_t>(m.call) + 1, 0.0);
      ms[static_cast<size_t>(m.call)] += m.start->elapsed_time(*m.stop);
    }
    marks_.clear();
    return ms;
  }
  std::string clock() const override { return "CUDA events, one synchronise per batch"; }

 private:
  struct Mark {
    int call;
    std::unique_ptr<at::cuda::CUDAEvent> start, stop;
  };
  std::vector<Mark> marks_;
  int calls_ = 0;
};
#endif

}  // namespace

std::unique_ptr<CallTimer> make_call_timer(const c10::Device& device, std::function<double()> now_ms) {
#if DC_CUDA_EVENTS
  if (device.is_cuda() && !now_ms) return std::make_unique<CudaEventTimer>();
#endif
  return std::make_unique<SteadyTimer>(device, std::move(now_ms));
}

}  // namespace dc::harness
