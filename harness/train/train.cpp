#include "harness/train/train.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "common/io_ops.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "dc/git_describe.h"
#include "harness/data/idx.h"
#include "harness/config_reader.h"
#include "harness/hdf5.h"
#include "harness/runtime.h"
#include "harness/sampling/samplers.h"
#include "harness/sampling/schedule.h"
#include "harness/yaml_source.h"
#include "models/fmnist_classifier.h"
#include "models/weights/strict_loader.h"
#include "models/weights/tensor_io.h"

namespace fs = std::filesystem;

namespace dc::train {
namespace {

uint64_t mix(uint64_t seed, int64_t step, uint64_t salt) { return sampling::sample_seed(seed ^ (salt * 0x9E3779B97F4A7C15ULL), step); }

// ---- checkpoint helpers ----------------------------------------------------------------------------

std::vector<std::string> param_names(const torch::nn::Module& m) {
  std::vector<std::string> names;
  for (const auto& p : m.named_parameters()) names.push_back(p.key());
  return names;
}

torch::Tensor curve_tensor(const std::vector<double>& v) { return torch::tensor(v, torch::kFloat64); }

std::vector<double> curve_from(const torch::Tensor& t) {
  const auto c = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// Settings that may change between a checkpoint and its resume (extend a run, move its files).
nlohmann::json comparable(nlohmann::json j) {
  for (const char* k : {"steps", "checkpoint_every", "out", "export", "data"}) j.erase(k);
  return j;
}

void check_resume_spec(const st::SafetensorsFile& f, const TrainSpec& spec, const std::string& path) {
  const auto& meta = f.metadata();
  auto it = meta.find("spec");
  if (it == meta.end()) throw Error(fmt::format("{}: not a training checkpoint of this program (no 'spec' metadata)", path));
  const auto saved = nlohmann::json::parse(it->second, nullptr, false);
  if (saved.is_discarded()) throw Error(fmt::format("{}: 'spec' metadata is not JSON", path));
  if (comparable(saved) != comparable(spec.resolved))
    throw Error(fmt::format("{}: the checkpoint was made with other settings ({}) than {} ({}); use --fresh to start over", path,
                            comparable(saved).dump(), spec.path, comparable(spec.resolved).dump()));
}

int64_t meta_int(const st::SafetensorsFile& f, const std::string& key, const std::string& path) {
  auto it = f.metadata().find(key);
  if (it == f.metadata().end()) throw Error(fmt::format("{}: checkpoint metadata lacks '{}'", path, key));
  try {
    return std::stoll(it->second);
  } catch (const std::exception&) {
    throw Error(fmt::format("{}: checkpoint metadata '{}' = '{}' is not an integer", path, key, it->second));
  }
}

void write_log(const std::string& path, const TrainSpec& spec, const std::vector<double>& losses, double seconds, double accuracy) {
  std::string image;  // made in memory, written with checked writes (common/atomic_file.h)
  {
    auto f = h5::create_memory_file(path, 1 << 20);
    h5::set_attr(f.id(), "spec", spec.resolved.dump());
    h5::set_attr(f.id(), "kind", spec.kind);
    h5::set_attr(f.id(), "git_revision", std::string(DC_GIT_DESCRIBE));
    h5::set_attr(f.id(), "thread_settings", harness::thread_settings());
    h5::write_tensor(f.id(), "loss", curve_tensor(losses), true);
    h5::write_scalar(f.id(), "step", static_cast<double>(losses.size()));
    h5::write_scalar(f.id(), "seconds", seconds);
    if (accuracy >= 0) h5::write_scalar(f.id(), "test_accuracy", accuracy);
    image = h5::file_image(f.id(), path);
  }
  write_file_atomically(path, image);
}

}  // namespace

// ---- spec ------------------------------------------------------------------------------------------

namespace {

// The settings as written: the experiment reader's strict, located reading (harness/config_reader.h):
// "t.yaml:6: train.lr: expected a number, got a string ("fast")".
TrainSpec read_train_settings(const nlohmann::json& t, const harness::Reader& r, const std::string& origin) {
  r.only(t, "train", {"name", "kind", "model", "data", "steps", "batch", "lr", "warmup", "grad_clip", "ema", "dropout", "seed",
                      "checkpoint_every", "subset", "out", "export"});
  TrainSpec s;
  s.path = origin;
  r.get(t, "train", "name", s.name);
  r.get(t, "train", "kind", s.kind);
  r.one_of("train.kind", s.kind, {"ddpm", "classifier"});
  if (t.contains("model")) {
    r.only(t["model"], "train.model", {"preset"});
    r.get(t["model"], "train.model", "preset", s.preset);
  }
  s.data_dir = data::default_fashion_mnist_dir();
  if (t.contains("data")) {
    r.only(t["data"], "train.data", {"dir"});
    r.get(t["data"], "train.data", "dir", s.data_dir);
  }
  r.get(t, "train", "steps", s.steps);
  r.get(t, "train", "batch", s.batch);
  r.get(t, "train", "lr", s.lr);
  r.get(t, "train", "warmup", s.warmup);
  r.get(t, "train", "grad_clip", s.grad_clip);
  r.get(t, "train", "ema", s.ema);
  if (t.contains("dropout")) {
    double d = 0;
    r.get(t, "train", "dropout", d);
    s.dropout = d;
  }
  r.get(t, "train", "seed", s.seed);
  r.get(t, "train", "checkpoint_every", s.checkpoint_every);
  r.get(t, "train", "subset", s.subset);
  r.get(t, "train", "out", s.out);
  r.get(t, "train", "export", s.export_path);
  return s;
}

void check_train_settings(const TrainSpec& s, const harness::Reader& r) {
  if (s.kind == "ddpm") {
    try {
      models::DdpmConfig::preset(s.preset);
    } catch (const Error& e) {
      r.fail("train.model.preset", e.what());
    }
  }
  if (s.name.empty()) r.fail("train.name", "missing");
  if (s.out.empty()) r.fail("train.out", "missing (the folder for the checkpoint and train.h5)");
  if (s.export_path.empty()) r.fail("train.export", "missing (where the trained weights go)");
  if (s.steps < 1) r.fail("train.steps", fmt::format("{} < 1", s.steps));
  if (s.batch < 1) r.fail("train.batch", fmt::format("{} < 1", s.batch));
  if (!(s.lr > 0)) r.fail("train.lr", fmt::format("{} must be positive", s.lr));
  if (s.warmup < 0) r.fail("train.warmup", "must be >= 0");
  if (s.grad_clip < 0) r.fail("train.grad_clip", "must be >= 0");
  if (s.ema < 0 || s.ema >= 1) r.fail("train.ema", fmt::format("{} is not in [0, 1)", s.ema));
  if (s.dropout && (*s.dropout < 0 || *s.dropout >= 1)) r.fail("train.dropout", fmt::format("{} is not in [0, 1)", *s.dropout));
  if (s.checkpoint_every < 1) r.fail("train.checkpoint_every", "must be >= 1");
  if (s.subset < 0) r.fail("train.subset", "must be >= 0");
}

}  // namespace

TrainSpec parse_train_spec(const std::string& text, const std::string& origin) {
  harness::Source src;
  src.origin = origin;
  const nlohmann::json root = harness::load_yaml(text, src);
  if (!root.is_object() || !root.contains("train")) throw Error(fmt::format("{}: expected a top-level 'train:' mapping", origin));
  const harness::Reader r(src, "", nullptr, "");
  r.only(root, "", {"train"});
  TrainSpec s = read_train_settings(root["train"], r, origin);
  check_train_settings(s, r);
  s.resolved = {{"name", s.name}, {"kind", s.kind}, {"preset", s.preset}, {"data", s.data_dir}, {"steps", s.steps},
                {"batch", s.batch}, {"lr", s.lr}, {"warmup", s.warmup}, {"grad_clip", s.grad_clip}, {"ema", s.ema},
                {"dropout", s.dropout ? nlohmann::json(*s.dropout) : nlohmann::json(nullptr)}, {"seed", s.seed},
                {"checkpoint_every", s.checkpoint_every}, {"subset", s.subset}, {"out", s.out}, {"export", s.export_path}};
  return s;
}

TrainSpec load_train_spec(const std::string& path) {
  if (!fs::exists(path)) throw Error(fmt::format("{}: training config not found", path));
  return parse_train_spec(harness::read_text(path, "training config"), path);
}

// ---- Adam ------------------------------------------------------------------------------------------

Adam::Adam(std::vector<torch::Tensor> params, double beta1, double beta2, double eps)
    : params_(std::move(params)), b1_(beta1), b2_(beta2), eps_(eps) {
  for (const auto& p : params_) {
    m_.push_back(torch::zeros_like(p));
    v_.push_back(torch::zeros_like(p));
  }
}

void Adam::step(double lr) {
  torch::NoGradGuard ng;
  ++t_;
  const double bc1 = 1.0 - std::pow(b1_, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(b2_, static_cast<double>(t_));
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const auto& g = params_[i].grad();
    if (!g.defined()) continue;
    m_[i].mul_(b1_).add_(g, 1.0 - b1_);
    v_[i].mul_(b2_).addcmul_(g, g, 1.0 - b2_);
    const auto denom = (v_[i].sqrt() / std::sqrt(bc2)).add_(eps_);
    params_[i].addcdiv_(m_[i], denom, -lr / bc1);
  }
}

void Adam::save(std::vector<std::pair<std::string, torch::Tensor>>& out, const std::vector<std::string>& names) const {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back("adam.m." + names[i], m_[i]);
    out.emplace_back("adam.v." + names[i], v_[i]);
  }
}

void Adam::load(const std::map<std::string, torch::Tensor>& in, const std::vector<std::string>& names, int64_t steps, const std::string& what) {
  torch::NoGradGuard ng;
  for (std::size_t i = 0; i < params_.size(); ++i)
    for (auto* dst : {&m_[i], &v_[i]}) {
      const std::string key = (dst == &m_[i] ? "adam.m." : "adam.v.") + names[i];
      auto it = in.find(key);
      if (it == in.end() || it->second.sizes() != dst->sizes()) throw Error(fmt::format("{}: optimizer state '{}' missing or mis-shaped", what, key));
      dst->copy_(it->second);
    }
  t_ = steps;
}

// ---- checkpoints and exports shared by the trainers ---------------------------------------------------

namespace {

using ModuleList = std::vector<std::pair<std::string, torch::nn::Module*>>;  // checkpoint prefix, module
using ConstModuleList = std::vector<std::pair<std::string, const torch::nn::Module*>>;

// A checkpoint: every listed module's parameters under its prefix, Adam's moments, the loss curve,
// and the settings (a resume must match them), the step and the seconds spent.
void save_state(const std::string& path, const TrainSpec& spec, int64_t step, const std::vector<double>& losses, double seconds,
                const ConstModuleList& modules, const Adam& adam, const std::vector<std::string>& names) {
  st::NamedTensors out;
  for (const auto& [prefix, m] : modules)
    for (const auto& p : m->named_parameters()) out.emplace_back(prefix + p.key(), p.value().detach());
  adam.save(out, names);
  out.emplace_back("loss", curve_tensor(losses));
  st::save_tensors(path, out, {{"spec", spec.resolved.dump()}, {"step", std::to_string(step)}, {"kind", spec.kind},
                               {"seconds", fmt::format("{}", seconds)}});
}

int64_t load_state(const std::string& path, const TrainSpec& spec, const ModuleList& modules, Adam& adam,
                   const std::vector<std::string>& names, std::vector<double>& losses) {
  const auto f = st::SafetensorsFile::open(path);
  check_resume_spec(f, spec, path);
  const int64_t step = meta_int(f, "step", path);
  const auto all = st::load_all(f);
  torch::NoGradGuard ng;
  for (const auto& [prefix, m] : modules)
    for (auto& p : m->named_parameters()) {
      auto it = all.find(prefix + p.key());
      if (it == all.end() || it->second.sizes() != p.value().sizes()) throw Error(fmt::format("{}: '{}{}' missing or mis-shaped", path, prefix, p.key()));
      p.value().copy_(it->second);
    }
  adam.load(all, names, step, path);
  auto it = all.find("loss");
  if (it == all.end()) throw Error(fmt::format("{}: no loss curve", path));
  losses = curve_from(it->second);
  if (static_cast<int64_t>(losses.size()) != step) throw Error(fmt::format("{}: loss curve has {} entries for step {}", path, losses.size(), step));
  return step;
}

void export_module(const TrainSpec& spec, const torch::nn::Module& m, int64_t step, std::map<std::string, std::string> meta) {
  st::NamedTensors out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().detach());
  const auto parent = fs::path(spec.export_path).parent_path();
  if (!parent.empty()) dc::io::make_folders(parent);
  meta.insert({{"format", "pt"}, {"train_spec", spec.resolved.dump()}, {"steps", std::to_string(step)}, {"git_revision", DC_GIT_DESCRIBE}});
  st::save_tensors(spec.export_path, out, meta);
}

}  // namespace

double learning_rate(const TrainSpec& spec, int64_t step_index) {
  const double warm = spec.warmup > 0 ? std::min(1.0, static_cast<double>(step_index + 1) / static_cast<double>(spec.warmup)) : 1.0;
  return spec.lr * warm;
}

// ---- DDPM ------------------------------------------------------------------------------------------

DdpmTrainer::DdpmTrainer(const models::DdpmConfig& cfg_in, const TrainSpec& spec) : spec_(spec) {
  models::DdpmConfig cfg = cfg_in;
  if (spec.dropout) cfg.dropout = *spec.dropout;
  torch::manual_seed(mix(spec.seed, -1, 7));
  model_ = models::DdpmUNet(cfg);
  if (spec.ema > 0) {
    ema_ = models::DdpmUNet(cfg);
    torch::NoGradGuard ng;
    auto src = model_->parameters();
    auto dst = ema_->parameters();
    for (std::size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
    ema_->eval();
  }
  names_ = param_names(*model_);
  adam_ = std::make_unique<Adam>(model_->parameters());
  alphas_cumprod_ = sampling::alphas_cumprod_f32(sampling::make_betas(sampling::BetaSchedule::DdpmLinear, 1000, 1e-4, 0.02));
}

double DdpmTrainer::step(const torch::Tensor& x0, int64_t step_index) {
  model_->train();
  auto gen = at::detail::createCPUGenerator(mix(spec_.seed, step_index, 2));
  const int64_t B = x0.size(0);
  const auto t = torch::randint(0, alphas_cumprod_.size(0), {B}, gen, torch::kInt64);
  const auto noise = torch::randn(x0.sizes(), gen, torch::kFloat32);
  return step_on(x0, t, noise, step_index);
}

double DdpmTrainer::train_step(const torch::Tensor& images_u8, const torch::Tensor&, int64_t step_index) {
  return step(fmnist_to_model_space(images_u8), step_index);
}

double DdpmTrainer::step_on(const torch::Tensor& x0, const torch::Tensor& t, const torch::Tensor& noise, int64_t step_index) {
  model_->train();
  torch::manual_seed(mix(spec_.seed, step_index, 3));  // dropout masks
  const auto a = alphas_cumprod_.index_select(0, t).view({-1, 1, 1, 1});
  const auto xt = x0 * a.sqrt() + noise * (1.0 - a).sqrt();
  const auto pred = model_->forward(xt, t.to(torch::kFloat32));
  // The ddim repo's noise_estimation_loss: squared error summed over pixels, mean over the batch.
  const auto loss = (noise - pred).square().sum({1, 2, 3}).mean();
  model_->zero_grad();
  loss.backward();
  if (spec_.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model_->parameters(), spec_.grad_clip);
  adam_->step(learning_rate(spec_, step_index));
  if (spec_.ema > 0) {
    // EMA with the usual warm-up of the decay, so early averages are not dominated by the init.
    const double decay = std::min(spec_.ema, (1.0 + static_cast<double>(step_index)) / (10.0 + static_cast<double>(step_index)));
    torch::NoGradGuard ng;
    auto src = model_->parameters();
    auto dst = ema_->parameters();
    for (std::size_t i = 0; i < src.size(); ++i) dst[i].mul_(decay).add_(src[i].detach(), 1.0 - decay);
  }
  return loss.item<double>();
}

double DdpmTrainer::loss_at(const torch::Tensor& x0, const torch::Tensor& t, const torch::Tensor& noise) {
  torch::NoGradGuard ng;
  model_->eval();
  const auto a = alphas_cumprod_.index_select(0, t).view({-1, 1, 1, 1});
  const auto pred = model_->forward(x0 * a.sqrt() + noise * (1.0 - a).sqrt(), t.to(torch::kFloat32));
  return (noise - pred).square().sum({1, 2, 3}).mean().item<double>();
}

void DdpmTrainer::save_checkpoint(const std::string& path, int64_t step, const std::vector<double>& losses, double seconds) const {
  ConstModuleList modules = {{"model.", model_.get()}};
  if (spec_.ema > 0) modules.emplace_back("ema.", ema_.get());
  save_state(path, spec_, step, losses, seconds, modules, *adam_, names_);
}

int64_t DdpmTrainer::load_checkpoint(const std::string& path, std::vector<double>& losses) {
  ModuleList modules = {{"model.", model_.get()}};
  if (spec_.ema > 0) modules.emplace_back("ema.", ema_.get());
  return load_state(path, spec_, modules, *adam_, names_, losses);
}

double DdpmTrainer::export_weights(int64_t step) {
  export_module(spec_, *exported(), step, {{"model", "deepcache-bench DDPM preset " + spec_.preset + (spec_.ema > 0 ? " (EMA weights)" : "")}});
  return -1;
}

torch::Tensor fmnist_to_model_space(const torch::Tensor& images_u8) {
  return torch::constant_pad_nd(images_u8.unsqueeze(1).to(torch::kFloat32).div(127.5).sub(1.0), {2, 2, 2, 2}, -1.0);
}

// ---- classifier ------------------------------------------------------------------------------------

ClassifierTrainer::ClassifierTrainer(const TrainSpec& spec) : spec_(spec) {
  torch::manual_seed(mix(spec.seed, -1, 7));
  net_ = models::FmnistClassifier(spec.dropout.value_or(0.25));
  names_ = param_names(*net_);
  adam_ = std::make_unique<Adam>(net_->parameters());
}

double ClassifierTrainer::train_step(const torch::Tensor& images_u8, const torch::Tensor& labels, int64_t step_index) {
  net_->train();
  torch::manual_seed(mix(spec_.seed, step_index, 3));  // dropout masks
  const auto logits = net_->forward(net_->prepare(images_u8.unsqueeze(1)));
  const auto loss = torch::nn::functional::cross_entropy(logits, labels);
  net_->zero_grad();
  loss.backward();
  if (spec_.grad_clip > 0) torch::nn::utils::clip_grad_norm_(net_->parameters(), spec_.grad_clip);
  adam_->step(learning_rate(spec_, step_index));
  return loss.item<double>();
}

double ClassifierTrainer::accuracy(const torch::Tensor& images_u8, const torch::Tensor& labels) {
  torch::NoGradGuard ng;
  net_->eval();
  int64_t correct = 0;
  const int64_t n = images_u8.size(0);
  for (int64_t i = 0; i < n; i += 1000) {
    const auto x = images_u8.slice(0, i, std::min<int64_t>(i + 1000, n)).unsqueeze(1);
    correct += net_->forward(net_->prepare(x)).argmax(1).eq(labels.slice(0, i, i + x.size(0))).sum().item<int64_t>();
  }
  return n ? static_cast<double>(correct) / static_cast<double>(n) : 0.0;
}

void ClassifierTrainer::save_checkpoint(const std::string& path, int64_t step, const std::vector<double>& losses, double seconds) const {
  save_state(path, spec_, step, losses, seconds, {{"model.", net_.get()}}, *adam_, names_);
}

int64_t ClassifierTrainer::load_checkpoint(const std::string& path, std::vector<double>& losses) {
  return load_state(path, spec_, {{"model.", net_.get()}}, *adam_, names_, losses);
}

double ClassifierTrainer::export_weights(int64_t step) {
  const auto test = data::read_fashion_mnist(spec_.data_dir, "test");
  const double acc = accuracy(test.images, test.labels);
  export_module(spec_, *net_, step,
                {{"model", "deepcache-bench Fashion-MNIST classifier (FID-FMNIST features: fc1 after ReLU)"},
                 {"test_accuracy", fmt::format("{:.4f}", acc)}});
  return acc;
}

// ---- the loop ----------------------------------------------------------------------------------------

TrainResult train(const TrainSpec& spec, const TrainOptions& options) {
  harness::configure_threads();
  dc::io::make_folders(spec.out);
  const std::string ckpt = spec.out + "/checkpoint.safetensors";
  const std::string log = spec.out + "/train.h5";
  auto data = data::read_fashion_mnist(spec.data_dir, "train");
  if (spec.subset > 0 && spec.subset < data.images.size(0)) {
    data.images = data.images.slice(0, 0, spec.subset);
    data.labels = data.labels.slice(0, 0, spec.subset);
  }
  const int64_t N = data.images.size(0);
  std::unique_ptr<Trainer> trainer;
  if (spec.kind == "ddpm") trainer = std::make_unique<DdpmTrainer>(models::DdpmConfig::preset(spec.preset), spec);
  else trainer = std::make_unique<ClassifierTrainer>(spec);

  TrainResult r;
  std::vector<double> losses;
  double seconds_before = 0;
  int64_t step = 0;
  if (!options.fresh && fs::exists(ckpt)) {
    step = trainer->load_checkpoint(ckpt, losses);
    const auto f = st::SafetensorsFile::open(ckpt);
    auto it = f.metadata().find("seconds");
    seconds_before = it == f.metadata().end() ? 0.0 : std::stod(it->second);
    r.resumed_from = step;
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  auto save = [&](int64_t s) {
    trainer->save_checkpoint(ckpt, s, losses, elapsed());
    write_log(log, spec, losses, elapsed(), -1);
  };
  int64_t done_here = 0;
  while (step < spec.steps) {
    if (options.stop_after && done_here >= *options.stop_after) break;
    auto gen = at::detail::createCPUGenerator(mix(spec.seed, step, 1));
    const auto idx = torch::randint(0, N, {spec.batch}, gen, torch::kInt64);
    losses.push_back(trainer->train_step(data.images.index_select(0, idx), data.labels.index_select(0, idx), step));
    ++step;
    ++done_here;
    if (options.progress) options.progress(step, spec.steps, losses.back());
    if (step % spec.checkpoint_every == 0 || step == spec.steps) save(step);
  }
  if (done_here > 0 && step % spec.checkpoint_every != 0 && step != spec.steps) save(step);
  r.step = step;
  r.finished = step >= spec.steps;
  if (r.finished) {
    r.test_accuracy = trainer->export_weights(step);
    write_log(log, spec, losses, elapsed(), r.test_accuracy);
    fs::copy_file(log, fs::path(spec.export_path).replace_extension(".train.h5"), fs::copy_options::overwrite_existing);
  }
  const std::size_t k = std::min<std::size_t>(100, losses.size());
  double sum = 0;
  for (std::size_t i = losses.size() - k; i < losses.size(); ++i) sum += losses[i];
  r.mean_recent_loss = k ? sum / static_cast<double>(k) : 0.0;
  r.seconds = elapsed();
  return r;
}

}  // namespace dc::train
