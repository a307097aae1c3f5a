// Training on Fashion-MNIST (`deepcache-bench train CONFIG.yaml`, configs/train/*.yaml): the
// project's DDPM (epsilon objective, linear betas, 1000 steps, Adam, EMA) and the small CNN
// classifier whose features define FID-FMNIST. Seeded and resumable: every random draw of step s
// (batch indices, timesteps, noise, dropout) comes from generators seeded by (seed, s), and a
// checkpoint holds the weights, the EMA, Adam's moments and the loss curve, so a run stopped at
// any checkpoint and resumed gives the same weights as an uninterrupted one.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/ddpm_unet.h"
#include "models/fmnist_classifier.h"

namespace dc::train {

struct TrainSpec {
  std::string path;         // the YAML file
  std::string name;
  std::string kind;         // "ddpm" or "classifier"
  std::string preset = "fmnist";  // ddpm preset
  std::string data_dir;     // Fashion-MNIST IDX folder (default: data::default_fashion_mnist_dir())
  int64_t steps = 1000;
  int64_t batch = 64;
  double lr = 2e-4;
  int64_t warmup = 0;       // linear learning-rate warm-up steps
  double grad_clip = 1.0;   // global gradient norm (0 = off)
  double ema = 0.0;         // EMA decay (ddpm); 0 = no EMA
  std::optional<double> dropout;  // overrides the preset's / the classifier's default
  uint64_t seed = 0;
  int64_t checkpoint_every = 500;
  int64_t subset = 0;       // use only the first `subset` training images (0 = all; tests)
  std::string out;          // folder for checkpoint.safetensors and train.h5
  std::string export_path;  // the trained weights (EMA for ddpm), written at the end
  nlohmann::json resolved;  // every setting (stored with the checkpoint; a resume must match it)
};

// Strict YAML (a top-level `train:` mapping); errors name the file, line and key.
TrainSpec load_train_spec(const std::string& path);
TrainSpec parse_train_spec(const std::string& text, const std::string& origin);

// Adam as torch.optim.Adam (no weight decay, no amsgrad), with state that can be saved.
class Adam {
 public:
  Adam(std::vector<torch::Tensor> params, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8);
  void step(double lr);  // uses each parameter's .grad()
  int64_t steps() const { return t_; }
  void save(std::vector<std::pair<std::string, torch::Tensor>>& out, const std::vector<std::string>& names) const;
  void load(const std::map<std::string, torch::Tensor>& in, const std::vector<std::string>& names, int64_t steps, const std::string& what);

 private:
  std::vector<torch::Tensor> params_, m_, v_;
  double b1_, b2_, eps_;
  int64_t t_ = 0;
};

// What train()'s loop needs from a training problem: one step on a batch of the training set
// (uint8 [B, 28, 28] images and their labels), a checkpoint that resumes bit for bit, and the export.
class Trainer {
 public:
  virtual ~Trainer() = default;
  virtual double train_step(const torch::Tensor& images_u8, const torch::Tensor& labels, int64_t step_index) = 0;
  virtual void save_checkpoint(const std::string& path, int64_t step, const std::vector<double>& losses, double seconds = 0) const = 0;
  // Returns the step reached and fills the loss curve; the checkpoint's settings must equal spec's.
  virtual int64_t load_checkpoint(const std::string& path, std::vector<double>& losses) = 0;
  // Writes the trained weights to spec.export_path (metadata: settings, steps, git revision);
  // returns the test accuracy (classifier) or -1.
  virtual double export_weights(int64_t step) = 0;
};

// One DDPM training problem: x0 in [-1, 1], [B, C, H, W].
class DdpmTrainer : public Trainer {
 public:
  DdpmTrainer(const models::DdpmConfig& cfg, const TrainSpec& spec);
  // One optimisation step on x0 with timesteps and noise drawn from (seed, step); returns the loss.
  double step(const torch::Tensor& x0, int64_t step_index);
  // The same step at given timesteps t (int64 [B]) and noise (x0's shape).
  double step_on(const torch::Tensor& x0, const torch::Tensor& t, const torch::Tensor& noise, int64_t step_index);
  // The loss at fixed timesteps t and noise (no update; eval mode): for tests and monitoring.
  double loss_at(const torch::Tensor& x0, const torch::Tensor& t, const torch::Tensor& noise);
  models::DdpmUNet& model() { return model_; }
  // The weights that are exported: the EMA, or the model itself when spec.ema = 0.
  models::DdpmUNet& exported() { return spec_.ema > 0 ? ema_ : model_; }
  double train_step(const torch::Tensor& images_u8, const torch::Tensor& labels, int64_t step_index) override;
  void save_checkpoint(const std::string& path, int64_t step, const std::vector<double>& losses, double seconds = 0) const override;
  int64_t load_checkpoint(const std::string& path, std::vector<double>& losses) override;
  double export_weights(int64_t step) override;

 private:
  TrainSpec spec_;
  models::DdpmUNet model_{nullptr}, ema_{nullptr};
  std::unique_ptr<Adam> adam_;
  torch::Tensor alphas_cumprod_;  // float32 [1000]
  std::vector<std::string> names_;
};

// The FID-FMNIST classifier: cross-entropy, Adam with the same warm-up and clipping.
class ClassifierTrainer : public Trainer {
 public:
  explicit ClassifierTrainer(const TrainSpec& spec);
  models::FmnistClassifier& model() { return net_; }
  // Fraction of correct predictions (eval mode) on uint8 [N, 28, 28] images.
  double accuracy(const torch::Tensor& images_u8, const torch::Tensor& labels);
  double train_step(const torch::Tensor& images_u8, const torch::Tensor& labels, int64_t step_index) override;
  void save_checkpoint(const std::string& path, int64_t step, const std::vector<double>& losses, double seconds = 0) const override;
  int64_t load_checkpoint(const std::string& path, std::vector<double>& losses) override;
  double export_weights(int64_t step) override;  // measures the test accuracy first

 private:
  TrainSpec spec_;
  models::FmnistClassifier net_{nullptr};
  std::unique_ptr<Adam> adam_;
  std::vector<std::string> names_;
};

// The learning rate of step s: spec.lr after a linear warm-up over spec.warmup steps.
double learning_rate(const TrainSpec& spec, int64_t step_index);

struct TrainOptions {
  bool fresh = false;                    // ignore an existing checkpoint
  std::optional<int64_t> stop_after;     // stop (with a checkpoint) after this many steps of this call
  std::function<void(int64_t step, int64_t steps, double loss)> progress;
};

struct TrainResult {
  int64_t step = 0;            // steps done in total
  bool finished = false;       // reached spec.steps (and exported)
  int64_t resumed_from = 0;
  double mean_recent_loss = 0; // mean over the last 100 steps
  double test_accuracy = -1;   // classifier only
  double seconds = 0;
};

TrainResult train(const TrainSpec& spec, const TrainOptions& options = {});

// Fashion-MNIST images as the DDPM sees them: uint8 [N, 28, 28] -> float [N, 1, 32, 32] in [-1, 1],
// zero-padded (black, -1) by 2 pixels on each side.
torch::Tensor fmnist_to_model_space(const torch::Tensor& images_u8);

}  // namespace dc::train
