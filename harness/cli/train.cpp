// deepcache-bench train: a model trained from YAML (the Fashion-MNIST DDPM or its classifier), resumable.
#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <memory>

#include "harness/cli/command.h"
#include "harness/train/train.h"

namespace dc::cli {

namespace {
struct TrainState {
  std::string config;
  bool fresh = false;
  int64_t stop_after = 0;
};

int train_command(const TrainState& s) {
  const auto spec = train::load_train_spec(s.config);
  train::TrainOptions o;
  o.fresh = s.fresh;
  if (s.stop_after > 0) o.stop_after = s.stop_after;
  const auto t0 = std::chrono::steady_clock::now();
  o.progress = [&](int64_t step, int64_t steps, double loss) {
    if (step % 50 != 0 && step != steps) return;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << fmt::format("step {:>6}/{}  loss {:.4f}  ({:.0f} s)\n", step, steps, loss, secs) << std::flush;
  };
  std::cout << fmt::format("train       {} ({}, {} steps, batch {})\n", spec.name, spec.kind, spec.steps, spec.batch);
  const auto r = train::train(spec, o);
  if (r.resumed_from > 0) std::cout << fmt::format("resumed     from step {}\n", r.resumed_from);
  std::cout << fmt::format("steps       {} of {}{}\n", r.step, spec.steps, r.finished ? "" : " (stopped; run again to resume)");
  std::cout << fmt::format("loss        {:.4f} (mean of the last 100 steps)\n", r.mean_recent_loss);
  if (r.test_accuracy >= 0) std::cout << fmt::format("test acc.   {:.4f}\n", r.test_accuracy);
  std::cout << fmt::format("log         {}/train.h5\n", spec.out);
  if (r.finished) std::cout << fmt::format("weights     {}\n", spec.export_path);
  return 0;
}
}  // namespace

Command add_train(CLI::App& app) {
  auto s = std::make_shared<TrainState>();
  auto* cmd = app.add_subcommand("train", "Train a model described by YAML (configs/train/*.yaml): the Fashion-MNIST DDPM or the "
                                          "FID-FMNIST classifier. Resumes from the run's checkpoint unless --fresh.");
  cmd->add_option("CONFIG", s->config, "training YAML")->required();
  cmd->add_flag("--fresh", s->fresh, "ignore an existing checkpoint and start over");
  cmd->add_option("--stop-after", s->stop_after, "stop after this many steps (a checkpoint is written; run again to resume)");
  return {cmd, [s] { return train_command(*s); }};
}

}  // namespace dc::cli
