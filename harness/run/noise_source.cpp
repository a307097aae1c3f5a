#include "harness/run/noise_source.h"

namespace dc::harness {

NoiseSource::NoiseSource(const RunSpec& spec, const models::Model& model, int calls, const torch::Device& device)
    : mode_(spec.samples.seed_mode),
      seed_(spec.samples.seed),
      batch_(spec.samples.batch),
      sample_shape_(spec.plan.model.sample_shape),
      device_(device) {
  if (mode_ != "released") return;
  sampling::ReleasedStreamConfig rc;
  rc.seed = spec.samples.seed;
  rc.ranks = spec.samples.ranks;
  rc.batch = spec.samples.batch;
  rc.num_classes = spec.plan.model.num_classes;
  rc.sample_shape = spec.plan.model.sample_shape;
  rc.device_draws_per_batch = 1 + calls;  // x_T, then one per DDIM step (drawn even at eta 0)
  rc.init_draws = models::reference_init_draws(model);
  rc.device = device;
  released_config_ = rc;
  released_ = std::make_shared<sampling::ReleasedStream>(rc);
}

void NoiseSource::prepare(int64_t start) {
  if (released_) released_->prepare(start / batch_);  // batches are whole and aligned
}

NoiseSource::Draw NoiseSource::draw(int64_t start, int64_t b) {
  Draw d;
  if (released_) {
    auto rb = released_->batch(start / batch_, b);
    d.x_T = rb.x_T;
    d.step = rb.step_noise;
    d.labels = rb.labels.to(torch::kCPU, torch::kInt64).clone();
    return d;
  }
  // paper: the released SD script's manual_seed(seed) before every batch (the same noise for every
  // batch); per_sample: sample i's own generator.
  d.step = mode_ == "paper" ? sampling::paper_batch_noise(seed_, device_) : sampling::per_sample_noise(seed_, start);
  std::vector<int64_t> shape = sample_shape_;
  shape.insert(shape.begin(), b);
  d.x_T = d.step(torch::empty(shape, torch::TensorOptions().device(device_)));
  return d;
}

void NoiseSource::end_batch() {
  if (released_) released_->end_batch();
}

NoiseSource NoiseSource::fresh() const {
  NoiseSource n = *this;
  if (released_config_) n.released_ = std::make_shared<sampling::ReleasedStream>(*released_config_);
  return n;
}

}  // namespace dc::harness
