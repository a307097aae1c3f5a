#include "harness/sampling/released_stream.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <fmt/format.h>

#include "common/error.h"

namespace dc::sampling {

namespace {
// A new CUDA generator seeded `seed`: a clone of the device's default generator (its type), so the
// process's default stream is left alone. Context::defaultGenerator is the API LibTorch 1.13 and
// 2.x share (CUDAHooksInterface's getDefaultCUDAGenerator became getDefaultGenerator in 2.x).
at::Generator cuda_generator(const c10::Device& device, uint64_t seed) {
  at::Generator g = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, device.has_index() ? device.index() : 0)).clone();
  g.set_current_seed(seed);
  return g;
}
}  // namespace

ReleasedStream::ReleasedStream(ReleasedStreamConfig c) : c_(std::move(c)) {
  if (c_.ranks < 1) throw Error(fmt::format("samples.ranks: {} must be at least 1", c_.ranks));
  if (c_.batch < 1) throw Error(fmt::format("samples.batch: {} must be at least 1", c_.batch));
  ranks_.resize(c_.ranks);
}

ReleasedStream::Rank& ReleasedStream::rank(int r) {
  auto& slot = ranks_.at(r);
  if (slot) return *slot;
  const uint64_t seed = c_.seed + static_cast<uint64_t>(r);  // torch.manual_seed(seed + rank)
  at::Generator cpu = at::detail::createCPUGenerator(seed);
  {
    // The model's construction consumed init_draws 32-bit outputs of the CPU generator's Mersenne
    // Twister; advance a copy of the engine (no normal-sample cache is set on a fresh generator).
    auto* impl = at::check_generator<at::CPUGeneratorImpl>(cpu);
    std::lock_guard<std::mutex> lock(impl->mutex_);
    at::mt19937 engine = impl->engine();
    for (int64_t i = 0; i < c_.init_draws; ++i) engine();
    impl->set_engine(engine);
  }
  at::Generator device;
  if (c_.device.is_cuda()) {
    device = cuda_generator(c_.device, seed);
  } else {
    device = at::detail::createCPUGenerator(seed);
  }
  slot = std::make_unique<Rank>(Rank{cpu, device});
  return *slot;
}

torch::Tensor ReleasedStream::labels(Rank& k) {
  return torch::randint(0, c_.num_classes, {c_.batch}, k.cpu, torch::TensorOptions().dtype(torch::kInt64));
}

torch::Tensor ReleasedStream::device_draw(Rank& k) {
  std::vector<int64_t> shape = c_.sample_shape;
  shape.insert(shape.begin(), c_.batch);
  ++k.device_draws;
  return torch::randn(shape, k.device, torch::TensorOptions().dtype(torch::kFloat32).device(c_.device));
}

void ReleasedStream::finish_batch(Rank& k) {
  if (k.device_draws > c_.device_draws_per_batch)
    throw Error(fmt::format("seed_mode released: the sampler drew {} noise tensors in one batch, the released script draws {}",
                            k.device_draws, c_.device_draws_per_batch));
  while (k.device_draws < c_.device_draws_per_batch) device_draw(k);
  k.device_draws = 0;
  ++k.next_batch;
}

ReleasedStream::Rank& ReleasedStream::advance(int64_t g, const char* who) {
  if (current_) throw Error(fmt::format("seed_mode released: {}() called before end_batch() of the previous batch", who));
  Rank& k = rank(static_cast<int>(g % c_.ranks));
  const int64_t local = g / c_.ranks;
  if (local < k.next_batch) throw Error(fmt::format("seed_mode released: batch {} asked after a later batch of its rank", g));
  while (k.next_batch < local) {  // skipped batches: drawn and dropped
    labels(k);
    finish_batch(k);
  }
  return k;
}

void ReleasedStream::prepare(int64_t g) { advance(g, "prepare"); }

ReleasedStream::Batch ReleasedStream::batch(int64_t g, int64_t rows) {
  if (rows < 1 || rows > c_.batch) throw Error(fmt::format("seed_mode released: {} rows of a batch of {}", rows, c_.batch));
  Rank& k = advance(g, "batch");
  Batch b;
  b.labels = labels(k).slice(0, 0, rows);
  b.x_T = device_draw(k).slice(0, 0, rows);
  b.step_noise = [this, &k, rows](const torch::Tensor& like) {
    torch::Tensor n = device_draw(k).slice(0, 0, rows);
    TORCH_CHECK(n.sizes() == like.sizes(), "released stream noise has shape ", n.sizes(), ", the sampler needs ", like.sizes());
    return n.to(like.options());
  };
  current_ = &k;
  return b;
}

void ReleasedStream::end_batch() {
  if (!current_) throw Error("seed_mode released: end_batch() without a batch");
  finish_batch(*current_);
  current_ = nullptr;
}

NoiseFn paper_batch_noise(uint64_t seed, const torch::Device& device) {
  at::Generator gen;
  if (device.is_cuda()) {
    gen = cuda_generator(device, seed);
  } else {
    gen = at::detail::createCPUGenerator(seed);
  }
  auto g = std::make_shared<at::Generator>(gen);
  return [g, device](const torch::Tensor& like) {
    return torch::randn(like.sizes(), *g, torch::TensorOptions().dtype(torch::kFloat32).device(device)).to(like.options());
  };
}

}  // namespace dc::sampling
