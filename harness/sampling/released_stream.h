// `samples.seed_mode: released`: the random stream of DeepCache's released LDM-4-G sampling script
// (experiments/ldm/sample_ddp_deepcache.py), for sample-by-sample comparison with its output.
//
// What that script does, per rank r of its `ranks` processes (torch.distributed world size):
//   torch.manual_seed(seed + r)            (seed 0 in the script; seeds the CPU and CUDA generators)
//   build the model                        (PyTorch's default initialisation draws from the CPU
//                                           generator before the checkpoint overwrites the weights)
//   per batch of B:  labels = torch.randint(0, 1000, (B,))        CPU generator
//                    x_T = torch.randn(B, 3, 64, 64)              device generator
//                    every DDIM step: randn(B, 3, 64, 64)         device generator, drawn even at eta 0
//   images of all ranks gathered batch by batch: global batch g is rank g % ranks's (g / ranks)-th;
//   the file keeps the first n samples.
//
// Reproduced here: the label stream exactly (CPU generator, fast-forwarded by the draws the
// model's construction consumed: models::reference_init_draws), the sample order, the truncation,
// and the device stream's consumption. The initial noise equals the script's only where the
// device generator does: on CUDA, a GPU with the same number of SMs (PyTorch's CUDA randn fills a
// tensor by a grid sized from the SM count); on the CPU the device stream is a CPU generator
// seeded seed + r (docs/experiments.md, "The released LDM script's seeds").
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "harness/sampling/samplers.h"

namespace dc::sampling {

struct ReleasedStreamConfig {
  uint64_t seed = 0;
  int ranks = 1;
  int64_t batch = 16;                 // the script's --batch_size: every draw is a whole batch
  int64_t num_classes = 1000;
  std::vector<int64_t> sample_shape;  // per sample, e.g. {3, 64, 64}
  int64_t device_draws_per_batch = 0; // x_T plus one per sampler step
  int64_t init_draws = 0;             // 32-bit CPU draws the model's construction consumed
  torch::Device device = torch::kCPU;
};

class ReleasedStream {
 public:
  explicit ReleasedStream(ReleasedStreamConfig c);

  struct Batch {
    torch::Tensor labels;  // int64 [rows] on the CPU
    torch::Tensor x_T;     // float32 [rows, sample_shape] on the device
    NoiseFn step_noise;    // the rank's device stream, in the order the sampler asks
  };
  // Global batch g, keeping its first `rows` samples (the last batch of a run may be short; the
  // script draws it whole). Batches of one rank must be asked in increasing order; skipped ones
  // are drawn and dropped (a shard or a resumed run starts in the middle). Call end_batch() after
  // sampling it: the device draws the sampler did not ask for are drawn then.
  Batch batch(int64_t g, int64_t rows);
  void end_batch();
  // Does batch(g)'s set-up ahead: makes g's rank (seeding, and fast-forwarding the CPU generator
  // by the model's init_draws) and draws the batches skipped before g. The runner calls it before
  // a batch's timer starts, so that this one-time work is not charged to the batch's time.
  void prepare(int64_t g);

 private:
  struct Rank {
    at::Generator cpu, device;
    int64_t next_batch = 0;    // batches of this rank drawn so far
    int64_t device_draws = 0;  // device draws of its current batch
  };
  Rank& rank(int r);  // made at first use: seeded, the CPU generator fast-forwarded
  Rank& advance(int64_t g, const char* who);  // g's rank, its batches before g drawn and dropped
  torch::Tensor labels(Rank& k);
  torch::Tensor device_draw(Rank& k);
  void finish_batch(Rank& k);
  ReleasedStreamConfig c_;
  std::vector<std::unique_ptr<Rank>> ranks_;
  Rank* current_ = nullptr;
};

// `samples.seed_mode: paper`: DeepCache's released Stable Diffusion script (experiments/generate.py)
// calls torch.manual_seed(seed) before every batch, and the pipeline draws the initial latents
// randn([B, 4, h, w]) from the device's default generator (diffusers' randn_tensor with no
// generator), then any sampler noise from the same generator. A fresh generator seeded `seed` per
// batch, on `device` (CUDA's Philox there; the CPU's Mersenne Twister on the CPU, where the draws
// equal Python's torch.randn after torch.manual_seed bit for bit). The script draws in float16 on
// cuda:0; these draws are float32.
NoiseFn paper_batch_noise(uint64_t seed, const torch::Device& device);

}  // namespace dc::sampling
