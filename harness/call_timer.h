// Per-call timing of the model calls of one batch, without a host synchronise inside the loop
// where the device allows it.
//
//   CPU:   steady_clock around each call (the call has finished when it returns).
//   CUDA:  a pair of CUDA events recorded on the current stream around each call; the elapsed
//          times are read after one synchronise at the end of the batch (LibTorch built with CUDA).
//          Without CUDA events (a LibTorch without CUDA headers cannot reach a GPU anyway) the
//          fallback synchronises before and after each call and uses steady_clock.
// clock() names the clock for the results (provenance attribute `timing_clock`) and the report.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <c10/core/Device.h>

namespace dc::harness {

class CallTimer {
 public:
  virtual ~CallTimer() = default;
  // Starts a batch of `calls` model calls (index 0 .. calls-1; a call index may repeat, its times add up).
  virtual void start_batch(int calls) = 0;
  virtual void begin(int call) = 0;
  virtual void end(int call) = 0;
  // Milliseconds per call index for the batch (waits for the device once).
  virtual std::vector<double> finish_batch() = 0;
  virtual std::string clock() const = 0;
};

// `now_ms` (tests): the host clock the CPU timer reads, in milliseconds; default steady_clock.
std::unique_ptr<CallTimer> make_call_timer(const c10::Device& device, std::function<double()> now_ms = nullptr);

}  // namespace dc::harness
