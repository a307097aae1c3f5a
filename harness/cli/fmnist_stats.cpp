// deepcache-bench fmnist-stats: FID-FMNIST reference statistics of real Fashion-MNIST images.
#include <fmt/format.h>

#include <iostream>
#include <memory>

#include "common/error.h"
#include "harness/cli/command.h"
#include "harness/data/idx.h"
#include "metrics/fid.h"
#include "metrics/fid_fmnist.h"
#include "metrics/npz.h"

namespace dc::cli {

namespace {
struct FmnistStatsState {
  std::string classifier, split = "test", out, against, data;
  int64_t n = 0;
};

int fmnist_stats_command(const FmnistStatsState& s) {
  if (s.out.empty() && s.against.empty()) throw Error("fmnist-stats: give --out FILE.npz, --against FILE.npz, or both");
  if (s.n < 0) throw Error(fmt::format("--n {}: must be positive", s.n));
  auto data = data::read_fashion_mnist(s.data.empty() ? data::default_fashion_mnist_dir() : s.data, s.split);
  if (s.n > 0) {
    if (s.n > data.images.size(0)) throw Error(fmt::format("--n {}: the {} split has {} images", s.n, s.split, data.images.size(0)));
    data.images = data.images.slice(0, 0, s.n);
  }
  auto net = metrics::load_fmnist_classifier(s.classifier, torch::kCPU);  // inputs checked first
  const auto ev = metrics::fmnist_evaluate(net, data.images.unsqueeze(1));
  std::cout << fmt::format("images      {} ({} split), confident (p >= 0.8): {:.4f}\n", ev.n, s.split, ev.confident_fraction());
  if (!s.out.empty()) {
    metrics::write_fid_stats(s.out, ev.stats.mean(), ev.stats.covariance());
    std::cout << fmt::format("statistics  {}\n", s.out);
  }
  if (!s.against.empty()) std::cout << fmt::format("FID-FMNIST: {:.4f} (against {})\n", metrics::fid_fmnist(ev, s.against), s.against);
  return 0;
}
}  // namespace

Command add_fmnist_stats(CLI::App& app) {
  auto s = std::make_shared<FmnistStatsState>();
  auto* cmd = app.add_subcommand("fmnist-stats", "FID-FMNIST reference statistics (.npz, mu/sigma of the classifier features) of "
                                                 "real Fashion-MNIST images; with --against, their FID-FMNIST to other statistics.");
  cmd->add_option("--classifier", s->classifier, "Fashion-MNIST classifier weights (safetensors)")->required();
  cmd->add_option("--split", s->split, "train or test");
  cmd->add_option("--n", s->n, "use the first n images of the split (default all)");
  cmd->add_option("--data", s->data, "Fashion-MNIST folder (default $DEEPCACHE_FASHION_MNIST or /usr/share/datasets/fashion-mnist)");
  cmd->add_option("--out", s->out, "write the statistics here (.npz)");
  cmd->add_option("--against", s->against, "print the FID-FMNIST of these images against this .npz");
  return {cmd, [s] { return fmnist_stats_command(*s); }};
}

}  // namespace dc::cli
