#include "harness/run/plain_reference.h"

#include <fmt/format.h>

#include <filesystem>

#include "common/error.h"
#include "harness/denoiser.h"
#include "harness/hdf5.h"
#include "harness/results_codec.h"

namespace dc::harness {
namespace {

// What makes two runs' samples the same images but for the caching policy: the resolved settings
// without the cache, the metrics, the similarity maps and the recorded-only fields.
nlohmann::json sample_identity(nlohmann::json config) {
  for (const char* k : {"cache", "metrics", "similarity", "timing"}) config.erase(k);
  if (config.contains("samples"))
    for (const char* k : {"n", "save_images", "grid"}) config["samples"].erase(k);
  // samples.batch changes the samples only where a seed rule puts it in the id: it stays when both
  // hold it from such a rule (then it must agree), and a cached run's own rule (an adaptive policy)
  // does not concern the plain run's samples.
  if (config.contains("samples") && !config["samples"].contains("seed_mode")) config["samples"].erase("batch");
  return config;
}

}  // namespace

std::string find_plain_run(const std::string& path, const RunSpec& spec, int64_t first, int64_t total) {
  if (path.empty() || !std::filesystem::exists(path)) return "";
  const nlohmann::json want = sample_identity(spec.resolved);
  for (const auto& run : read_results_file(path, kNoArrays)) {
    if (run.status != "complete" || !run.partial.empty()) continue;
    const auto config = nlohmann::json::parse(run.config_json, nullptr, false);
    if (config.is_discarded() || !config.contains("cache") || config["cache"].value("enabled", true)) continue;
    if (sample_identity(config) != want) continue;
    if (!config.contains("samples") || !config["samples"].value("save_images", false)) continue;
    if (run.first_sample > first || run.first_sample + run.samples < first + total) continue;
    return run.key;
  }
  return "";
}

PlainReference::PlainReference(BatchSampler::Parts parts, const NoiseSource& noise) : sampler_(std::move(parts)), noise_(noise.fresh()) {}

std::unique_ptr<PlainReference> PlainReference::make(const RunSpec& spec, int64_t first, int64_t total, BatchSampler::Parts parts,
                                                     const NoiseSource& noise) {
  if (!spec.metrics.fidelity || !spec.cache.enabled || total <= 0) return nullptr;
  parts.log = std::make_shared<DenoiserLog>();
  parts.denoiser = cond_denoiser(parts.model.unet, nullptr, parts.log);
  std::unique_ptr<PlainReference> p(new PlainReference(std::move(parts), noise));
  p->first_ = first;
  if (const std::string key = find_plain_run(spec.results_path, spec, first, total); !key.empty()) {
    StoredRunFile stored = read_result(spec.results_path, key, kImages);
    if (stored.arrays.images) {
      const torch::Tensor all = h5::to_tensor(std::move(*stored.arrays.images));
      p->stored_ = all.narrow(0, first - stored.first_sample, total).contiguous();
      p->source_ = fmt::format("the stored plain run {}", key);
      return p;
    }
  }
  p->source_ = "its samples made again without caching, from the same noise (untimed; a plain run of the same settings stored "
               "with samples.save_images: true in this results file is read instead)";
  return p;
}

torch::Tensor PlainReference::images(int64_t start, int64_t b) {
  if (stored_.defined()) return stored_.narrow(0, start - first_, b);
  return sampler_.sample(start, b, noise_).images;
}

}  // namespace dc::harness
