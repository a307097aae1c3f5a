// deepcache-bench fid and fid-stats: pytorch-fid's command line (FID of two folders or .npz
// statistics; the statistics of a folder).
#include <fmt/format.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "harness/cli/command.h"
#include "harness/runtime.h"
#include "metrics/fid.h"
#include "metrics/fid_pipeline.h"
#include "metrics/inception_fid.h"
#include "metrics/npz.h"
#include "metrics/provenance.h"

namespace dc::cli {

namespace {
struct FidState {
  std::vector<std::string> paths;
  std::string stats_path, out, weights, device = "cpu", json;
  int dims = 2048, batch = 50;
  std::optional<metrics::InceptionFid> net;
};

bool is_npz(const std::string& p) { return p.size() > 4 && p.compare(p.size() - 4, 4, ".npz") == 0; }

// A path's statistics: an .npz as stored, or a folder's through the Inception network (loaded once).
std::pair<Eigen::VectorXd, Eigen::MatrixXd> stats_of(FidState& s, const std::string& path, const torch::Device& device) {
  if (is_npz(path)) {
    const auto [mu, sigma] = metrics::read_fid_stats(path);
    return {metrics::to_eigen_vector(mu), metrics::to_eigen_matrix(sigma)};
  }
  metrics::list_images(path);  // the folder first: no model load for a bad path
  if (!s.net) s.net = metrics::load_inception(s.weights, device);
  const auto st = metrics::folder_statistics(*s.net, path, s.dims, s.batch, device);
  return {st.mean(), st.covariance()};
}

int fid_command(FidState& s) {
  const torch::Device device = harness::parse_device(s.device);
  const auto a = stats_of(s, s.paths[0], device);
  const auto b = stats_of(s, s.paths[1], device);
  const auto r = metrics::frechet_distance(a.first, a.second, b.first, b.second);
  std::cout << fmt::format("FID:  {:.6f}\n", r.fid);
  if (!s.json.empty()) {
    metrics::MetricProvenance p = metrics::inception_provenance("fid", s.net ? s.weights : "", s.dims, s.paths[1], 0,
                                                                "images read from the files as stored (uint8)");
    nlohmann::json extra = {{"paths", s.paths}, {"dims", s.dims}};
    for (int i = 0; i < 2; ++i)
      if (!is_npz(s.paths[i])) extra["images"][i == 0 ? "first" : "second"] = metrics::list_images(s.paths[i]).size();
    if (!is_npz(s.paths[0])) p.samples = static_cast<int64_t>(metrics::list_images(s.paths[0]).size());
    metrics::write_metric_json(s.json, r.fid, extra, p);
    std::cout << fmt::format("json        {}\n", s.json);
  }
  return 0;
}

int fid_stats_command(FidState& s) {
  const auto [mu, sigma] = stats_of(s, s.stats_path, harness::parse_device(s.device));
  metrics::write_fid_stats(s.out, mu, sigma);
  std::cout << fmt::format("statistics  {} ({} dims) -> {}\n", s.stats_path, mu.size(), s.out);
  return 0;
}
}  // namespace

std::vector<Command> add_fid(CLI::App& app) {
  auto s = std::make_shared<FidState>();
  if (const char* w = std::getenv("DEEPCACHE_INCEPTION_WEIGHTS")) s->weights = w;
  const std::string weights_help =
      "FID Inception weights (pytorch-fid's pt_inception-2015-12-05-6726825d.pth converted with "
      "scripts/convert_ckpt_to_safetensors.py); default $DEEPCACHE_INCEPTION_WEIGHTS";
  auto* fid = app.add_subcommand("fid", "FID between two folders of images or pytorch-fid .npz statistics files, as pytorch-fid computes it.");
  fid->add_option("PATHS", s->paths, "two paths: folders of images or .npz statistics")->required()->expected(2);
  fid->add_option("--dims", s->dims, "feature block: 64, 192, 768 or 2048");
  fid->add_option("--batch-size", s->batch, "images per batch");
  fid->add_option("--device", s->device, "cpu or cuda");
  fid->add_option("--inception-weights", s->weights, weights_help);
  fid->add_option("--json", s->json, "also write the value with its provenance (weights SHA-256, resize rule, counts) to this JSON file");
  auto* stats = app.add_subcommand("fid-stats", "Write the FID statistics (mu, sigma) of a folder of images as a pytorch-fid .npz.");
  stats->add_option("PATH", s->stats_path, "folder of images")->required();
  stats->add_option("--out", s->out, "output .npz")->required();
  stats->add_option("--dims", s->dims, "feature block: 64, 192, 768 or 2048");
  stats->add_option("--batch-size", s->batch, "images per batch");
  stats->add_option("--device", s->device, "cpu or cuda");
  stats->add_option("--inception-weights", s->weights, weights_help);
  return {{fid, [s] { return fid_command(*s); }}, {stats, [s] { return fid_stats_command(*s); }}};
}

}  // namespace dc::cli
