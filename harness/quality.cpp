#include "harness/quality.h"

#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "common/error.h"
#include "common/paths.h"
#include "harness/runtime.h"
#include "metrics/accumulators.h"
#include "metrics/clip_preprocess.h"
#include "metrics/clip_score.h"
#include "metrics/sha256.h"
#include "metrics/fid_fmnist.h"
#include "metrics/fidelity.h"
#include "metrics/fid_pipeline.h"
#include "metrics/npz.h"
#include "metrics/precision_recall.h"

namespace fs = std::filesystem;

namespace dc::harness {

// The files a run's metrics read, resolved (${ENV} expanded) and checked. Outside the anonymous
// namespace: RunQuality::Impl holds one (-Wsubobject-linkage in a unity build).
struct QualityInputs {
  std::string fmnist_classifier, fmnist_reference, inception_weights, fid_reference;
  std::string fid_reference_folder;
  std::string sfid_reference;  // metrics.fid.reference when it is a folder (fid_reference: its cached statistics)
  std::string pr_reference;    // metrics.precision_recall.reference (an .npz or a folder)
  std::string cache_dir;       // where reference statistics and features computed from images are kept
  std::string clip_weights, clip_tokenizer, clip_model_config;  // metrics.clip_score
  std::string prompts_file;    // conditioning.prompts (expanded), empty for conditioning.prompt
};

namespace {

constexpr const char* kUint8Rule = "model output [-1, 1] -> uint8 as torchvision save_image: clamp((x+1)/2) * 255 + 0.5, truncated";
constexpr const char* kUint8RulePaper =
    "model output [-1, 1] -> uint8 as DeepCache's SD script generate.py: (clamp(x/2 + 0.5, 0, 1) * 255).astype(uint8), truncated "
    "(samples.seed_mode paper)";
const char* uint8_rule(const RunSpec& spec) { return spec.samples.seed_mode == "paper" ? kUint8RulePaper : kUint8Rule; }

// sFID reference statistics: `mu_s`, `sigma_s` (the ADM evaluator's reference batches store them
// next to `mu`, `sigma`), else `mu`, `sigma`; 2023 features either way.
std::pair<torch::Tensor, torch::Tensor> read_sfid_stats(const std::string& path) {
  const auto arrays = metrics::read_npz(path);
  const bool spatial = arrays.count("mu_s") && arrays.count("sigma_s");
  if (!spatial) {
    const auto [mu, sigma] = metrics::read_fid_stats(path);
    if (mu.numel() != 2023)
      throw Error(fmt::format("metrics.sfid.reference: {} holds neither mu_s/sigma_s nor statistics of 2023 features (mu has {})", path, mu.numel()));
    return {mu, sigma};
  }
  const torch::Tensor mu = arrays.at("mu_s").to(torch::kFloat64).flatten(), sigma = arrays.at("sigma_s").to(torch::kFloat64);
  if (mu.numel() != 2023 || sigma.dim() != 2 || sigma.size(0) != 2023 || sigma.size(1) != 2023)
    throw Error(fmt::format("metrics.sfid.reference: {}: mu_s {} and sigma_s {} are not statistics of 2023 features", path,
                            c10::str(mu.sizes()), c10::str(sigma.sizes())));
  return {mu, sigma};
}

QualityInputs resolve_inputs(const RunSpec& spec, const torch::Device& device = torch::kCPU, std::ostream* log = nullptr) {
  QualityInputs in;
  const MetricsSpec& m = spec.metrics;
  const std::vector<int64_t>& shape = spec.plan.model.image_shape;
  if (m.fid_fmnist) {
    if (shape[0] != 1)
      throw Error(fmt::format("metrics.fid_fmnist: the {} '{}' model makes {}-channel images; FID-FMNIST is for grey Fashion-MNIST samples",
                              spec.model.family, spec.model.preset, shape[0]));
    in.fmnist_classifier = expand_env(m.classifier, "metrics.fid_fmnist.classifier");
    in.fmnist_reference = expand_env(m.reference, "metrics.fid_fmnist.reference");
    for (const auto& [p, what] : {std::pair{in.fmnist_classifier, "classifier weights"}, std::pair{in.fmnist_reference, "reference statistics"}})
      if (!fs::exists(p))
        throw Error(fmt::format("metrics.fid_fmnist: {} not found: {}{} (the repository ships weights/fmnist/classifier.safetensors "
                                "and weights/fmnist/test_stats.npz; scripts/train_fmnist.sh remakes them, docs/fmnist.md)",
                                what, p, relative_path_note(p)));
    metrics::read_fid_stats(in.fmnist_reference);  // the format before any sampling
  }
  in.cache_dir = (spec.results_path.empty() ? fs::temp_directory_path() / "deepcache-bench-fid-cache"
                                            : fs::path(spec.results_path).parent_path() / "fid_reference_cache").string();
  if (m.fid || m.inception_score || m.sfid || m.precision_recall) {
    const char* key = m.fid ? "metrics.fid.weights" : m.sfid ? "metrics.sfid.weights" : m.inception_score ? "metrics.inception_score.weights"
                                                                                                    : "metrics.precision_recall.weights";
    if (shape[0] != 1 && shape[0] != 3)
      throw Error(fmt::format("{}: the Inception takes grey or RGB images; this model makes {} channels", key, shape[0]));
    in.inception_weights = expand_env(m.inception_weights, key);
    if (!fs::is_regular_file(in.inception_weights))
      throw Error(fmt::format("{}: FID Inception weights not found: {}{} (pt_inception-2015-12-05 as safetensors: docs/weights.md)", key,
                              in.inception_weights, relative_path_note(in.inception_weights)));
  }
  if (m.fid) {
    in.fid_reference = expand_env(m.fid_reference, "metrics.fid.reference");
    if (fs::is_directory(in.fid_reference)) {  // a folder of reference images: its statistics, cached
      in.fid_reference_folder = in.fid_reference;
      in.fid_reference = metrics::cached_folder_reference(in.fid_reference_folder, in.inception_weights, static_cast<int>(m.fid_dims),
                                                          in.cache_dir, device, log);
    }
    if (!fs::is_regular_file(in.fid_reference))
      throw Error(fmt::format("metrics.fid.reference: {} is neither a statistics file nor a folder of images{} (an .npz of mu and sigma: "
                              "`deepcache-bench fid-stats DIR --out FILE`)",
                              in.fid_reference, relative_path_note(in.fid_reference)));
    const auto [mu, sigma] = metrics::read_fid_stats(in.fid_reference);  // the format before any sampling
    if (mu.numel() != m.fid_dims)
      throw Error(fmt::format("metrics.fid.reference: {} holds statistics of {} features; metrics.fid.dims is {}", in.fid_reference,
                              mu.numel(), m.fid_dims));
  }
  if (m.sfid) {
    in.sfid_reference = expand_env(m.sfid_reference, "metrics.sfid.reference");
    if (!fs::is_regular_file(in.sfid_reference))
      throw Error(fmt::format("metrics.sfid.reference: {} is not a file{} (an .npz with mu_s and sigma_s, e.g. an ADM reference batch)",
                              in.sfid_reference, relative_path_note(in.sfid_reference)));
    read_sfid_stats(in.sfid_reference);  // the format before any sampling
  }
  if (m.clip_score) {
    in.clip_weights = expand_env(m.clip_weights, "metrics.clip_score.weights");
    in.clip_tokenizer = expand_env(m.clip_tokenizer, "metrics.clip_score.tokenizer");
    if (!m.clip_model_config.empty()) {
      in.clip_model_config = expand_env(m.clip_model_config, "metrics.clip_score.model_config");
      if (!fs::is_regular_file(in.clip_model_config))
        throw Error(fmt::format("metrics.clip_score.model_config: {} not found (an open_clip model config JSON)", in.clip_model_config));
    }
    if (!fs::is_regular_file(in.clip_weights))
      throw Error(fmt::format("metrics.clip_score.weights: {} not found{} ({} as safetensors: docs/weights.md)", in.clip_weights,
                              relative_path_note(in.clip_weights),
                              m.clip_model == "vit-l-14" ? "OpenAI CLIP ViT-L/14" : "open_clip ViT-g-14 laion2b_s34b_b88k"));
    if (!fs::is_regular_file(fs::path(in.clip_tokenizer) / "vocab.json") || !fs::is_regular_file(fs::path(in.clip_tokenizer) / "merges.txt"))
      throw Error(fmt::format("metrics.clip_score.tokenizer: {} is not a folder with vocab.json and merges.txt (CLIP's BPE)", in.clip_tokenizer));
  }
  if (m.precision_recall) {
    in.pr_reference = expand_env(m.pr_reference, "metrics.precision_recall.reference");
    if (!fs::is_regular_file(in.pr_reference) && !fs::is_directory(in.pr_reference))
      throw Error(fmt::format("metrics.precision_recall.reference: {} not found (an .npz with arr_0 reference images, e.g. an ADM "
                              "reference batch or `export --npz`, or a folder of images)",
                              in.pr_reference));
  }
  return in;
}

}  // namespace

int bootstrap_resamples(const MetricsSpec& m, int64_t dims) { return m.bootstrap >= 0 ? m.bootstrap : dims <= 256 ? 100 : 0; }

namespace {
// Samples behind a Frechet metric's stored state (fid_fmnist, fid, sfid).
int64_t metric_samples(const RunResult& r, const std::string& name) {
  const auto& st = r.metric_states.at(name);
  return name == "fid_fmnist" ? metrics::fmnist_eval_from_state(st, name).n : metrics::feature_stats_from_state(st, name).count();
}
}  // namespace

struct RunQuality::Impl {
  const RunSpec& spec;
  QualityInputs in;
  std::optional<models::FmnistClassifier> classifier;
  metrics::FmnistEval fmnist;
  std::optional<metrics::InceptionFid> inception;
  metrics::FeatureStats fid;
  std::optional<metrics::InceptionScoreAccumulator> is;
  metrics::FeatureStats sfid;  // 2023 dims when asked (its exact state is 32 MB)
  metrics::SampleFeatures pr_features;  // per-sample pool features (float16) for precision/recall
  std::optional<metrics::ClipScorer> clip;
  metrics::ClipScoreAccumulator clip_score;
  // Per-sample features (float32, with their sample indices) of the Frechet metrics with a
  // bootstrap interval: metric -> its features.
  std::map<std::string, metrics::SampleFeatures> boot;
  // metrics.fidelity of a cached run: per-image (PSNR, SSIM) against the plain run.
  bool fidelity = false;
  metrics::SampleFeatures fidelity_values{2, torch::kFloat64};
  torch::Device device;
  Impl(const RunSpec& s, const torch::Device& d) : spec(s), device(d) {}
  int resamples(int64_t dims) const { return bootstrap_resamples(spec.metrics, dims); }
};

RunQuality::RunQuality(const RunSpec& spec, const torch::Device& device, const std::string& prompts_file)
    : impl_(std::make_unique<Impl>(spec, device)) {
  Impl& q = *impl_;
  q.in = resolve_inputs(spec, device, &std::cerr);
  q.in.prompts_file = prompts_file;
  if (spec.metrics.clip_score)
    q.clip.emplace(metrics::load_clip_model(spec.metrics.clip_model, q.in.clip_model_config, q.in.clip_weights, device),
                   models::ClipTokenizer::from_dir(q.in.clip_tokenizer), device);
  if (spec.metrics.fid_fmnist) q.classifier = metrics::load_fmnist_classifier(q.in.fmnist_classifier, device);
  if (spec.metrics.fid || spec.metrics.inception_score || spec.metrics.sfid || spec.metrics.precision_recall)
    q.inception = metrics::load_inception(q.in.inception_weights, device);
  // The reference's features before any sampling (computed once, then read from the cache): a bad
  // reference stops the run here.
  if (spec.metrics.precision_recall)
    metrics::cached_reference_features(q.in.pr_reference, q.in.inception_weights, q.in.cache_dir, device, &std::cerr);
  if (spec.metrics.fid) q.fid = metrics::FeatureStats(spec.metrics.fid_dims);
  if (spec.metrics.sfid) q.sfid = metrics::FeatureStats(2023);
  // Fewer samples than splits (a smoke run) make no score: the run says so when it finishes.
  if (spec.metrics.inception_score && spec.samples.n >= spec.metrics.is_splits) q.is.emplace(spec.metrics.is_splits, spec.samples.n, 1008);
  q.fidelity = spec.metrics.fidelity && spec.cache.enabled;
}

RunQuality::~RunQuality() = default;

bool RunQuality::empty() const { return !impl_->classifier && !impl_->inception && !impl_->clip && !impl_->fidelity; }

bool RunQuality::needs_plain() const { return impl_->fidelity; }

std::map<std::string, torch::Tensor> RunQuality::measure(const torch::Tensor& images_u8, const std::vector<std::string>& prompts,
                                                         const torch::Tensor& plain) {
  Impl& q = *impl_;
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> out;
  if (q.fidelity) {
    if (!plain.defined()) throw Error(fmt::format("run {}: metrics.fidelity needs the plain run's images of the batch", q.spec.run_id));
    out["fidelity/values"] = metrics::fidelity_values(images_u8, plain);
  }
  if (q.clip) {  // (image i, prompt i): open_clip's eval transform of the uint8 image, its tokens
    if (static_cast<int64_t>(prompts.size()) != images_u8.size(0))
      throw Error(fmt::format("run {}: CLIP score of {} images with {} prompts", q.spec.run_id, images_u8.size(0), prompts.size()));
    std::vector<torch::Tensor> hwc;
    for (int64_t i = 0; i < images_u8.size(0); ++i) hwc.push_back(images_u8[i].permute({1, 2, 0}).contiguous());
    const int64_t b = images_u8.size(0);
    out["clip_score/scores"] =
        metrics::clip_score_pairs(q.clip->image_features(hwc, b), q.clip->text_features(prompts, b)).to(torch::kCPU, torch::kFloat64).contiguous();
  }
  if (q.classifier) {
    const bool boot = q.resamples(models::FmnistClassifierImpl::kFeatures) > 0;  // the per-sample features too, for the interval
    torch::Tensor features;
    for (auto& [k, t] : metrics::to_state(metrics::fmnist_evaluate(*q.classifier, images_u8, q.spec.metrics.confidence, 500,
                                                                    boot ? &features : nullptr)))
      out["fid_fmnist/" + k] = t;
    if (boot) out["bootstrap/fid_fmnist"] = features;
  }
  if (!q.inception) return out;
  const torch::Tensor rgb = images_u8.size(1) == 1 ? images_u8.repeat({1, 3, 1, 1}) : images_u8;  // PIL convert('RGB')
  const auto p = (*q.inception)->parameters().front();
  const torch::Tensor x = rgb.to(p.device()).to(torch::kFloat32).div(255);
  // One forward gives every feature asked for: pool3 (FID at 2048 dims, precision/recall), a
  // block's pooled features (FID at 64, 192 or 768), the logits (IS), the spatial features (sFID).
  const MetricsSpec& m = q.spec.metrics;
  const bool fid_pool3 = m.fid && m.fid_dims == 2048;
  const auto o = (*q.inception)->forward(x, /*logits=*/q.is.has_value(), /*debug=*/m.fid && !fid_pool3, /*spatial=*/m.sfid);
  auto cpu = [](const torch::Tensor& t) { return t.to(torch::kCPU, torch::kFloat32).contiguous(); };
  if (q.is) out["inception_score/logits"] = cpu(o.logits);
  if (m.sfid) out["sfid/features"] = cpu(o.spatial);
  if (fid_pool3) out["fid/features"] = cpu(o.pool3);
  if (m.fid && !fid_pool3) {
    const char* block = m.fid_dims == 64 ? "block0" : m.fid_dims == 192 ? "block1" : "block2";
    out["fid/features"] = cpu(o.blocks.at(block).mean({2, 3}));  // adaptive average pool to 1x1, as pytorch-fid
  }
  if (m.precision_recall && !fid_pool3) out["precision_recall/features"] = cpu(o.pool3);
  return out;
}

void RunQuality::apply(const std::map<std::string, torch::Tensor>& inputs, int64_t first) {
  Impl& q = *impl_;
  auto need = [&](const std::string& k) -> const torch::Tensor& {
    auto it = inputs.find(k);
    if (it == inputs.end()) throw Error(fmt::format("run {}: the batch of samples from {} lacks the metric input {}", q.spec.run_id, first, k));
    return it->second;
  };
  if (q.classifier) {
    metrics::MetricState st;
    for (const auto& [k, t] : inputs)
      if (k.rfind("fid_fmnist/", 0) == 0) st[k.substr(11)] = t;
    metrics::merge_into(q.fmnist, metrics::fmnist_eval_from_state(st, "fid_fmnist batch state"));
  }
  if (q.is) q.is->add(need("inception_score/logits"), first);
  if (q.fidelity) q.fidelity_values.add(need("fidelity/values"), first);
  auto keep = [&](const std::string& metric, const torch::Tensor& f) {
    auto it = q.boot.find(metric);
    if (it == q.boot.end()) it = q.boot.emplace(metric, metrics::SampleFeatures(f.size(1), torch::kFloat32)).first;
    it->second.add(f, first);
  };
  if (q.classifier && q.resamples(models::FmnistClassifierImpl::kFeatures) > 0) {
    auto it = inputs.find("bootstrap/fid_fmnist");  // absent in a journal written before the interval existed
    if (it != inputs.end()) keep("fid_fmnist", it->second);
  }
  if (q.spec.metrics.fid && q.resamples(q.spec.metrics.fid_dims) > 0) keep("fid", need("fid/features"));
  if (q.spec.metrics.sfid && q.resamples(2023) > 0) keep("sfid", need("sfid/features"));
  if (q.clip) {
    const torch::Tensor& sc = need("clip_score/scores");
    if (sc.dim() != 1) throw Error(fmt::format("run {}: CLIP scores of the batch from {} have shape {}, expected [B]", q.spec.run_id, first, c10::str(sc.sizes())));
    q.clip_score.add_scores(sc);
  }
  if (q.spec.metrics.sfid) {
    const torch::Tensor& f = need("sfid/features");
    if (f.dim() != 2 || f.size(1) != 2023)
      throw Error(fmt::format("run {}: sFID features of the batch from {} have shape {}, expected [B, 2023]", q.spec.run_id, first,
                              c10::str(f.sizes())));
    q.sfid.add(f);
  }
  if (q.spec.metrics.fid) {
    const torch::Tensor& f = need("fid/features");
    if (f.dim() != 2 || f.size(1) != q.spec.metrics.fid_dims)
      throw Error(fmt::format("run {}: FID features of the batch from {} have shape {}, expected [B, {}]", q.spec.run_id, first,
                              c10::str(f.sizes()), q.spec.metrics.fid_dims));
    q.fid.add(f);
  }
  if (q.spec.metrics.precision_recall) {  // pool3: FID's features when FID uses them
    const bool fid_pool3 = q.spec.metrics.fid && q.spec.metrics.fid_dims == 2048;
    q.pr_features.add(need(fid_pool3 ? "fid/features" : "precision_recall/features"), first);
  }
}

void RunQuality::finish(RunResult& r, bool complete) const {
  const Impl& q = *impl_;
  if (q.classifier) r.metric_states["fid_fmnist"] = metrics::to_state(q.fmnist);
  if (q.spec.metrics.fid) r.metric_states["fid"] = metrics::to_state(q.fid);
  if (q.is) r.metric_states["inception_score"] = q.is->state();
  if (q.spec.metrics.sfid) r.metric_states["sfid"] = metrics::to_state(q.sfid);
  if (q.spec.metrics.precision_recall) r.metric_states["precision_recall"] = q.pr_features.state();
  if (q.clip) r.metric_states["clip_score"] = q.clip_score.state();
  if (q.fidelity) r.metric_states["fidelity"] = q.fidelity_values.state();
  // The per-sample features behind the bootstrap intervals: kept in every result, so that `merge`
  // computes the interval of the whole run from its shards' and `report` compares runs of the same
  // seeds pairwise (metrics::frechet_paired_bootstrap).
  for (const auto& [name, feats] : q.boot) {
    if (feats.count() == metric_samples(r, name)) r.metric_states[metrics::features_state(name)] = feats.state();
    else r.notes.push_back(fmt::format("{}: no bootstrap interval (the journal replayed batches without per-sample features)", name));
  }
  if (!complete) return;
  quality_from_states(q.spec, r, q.device);  // the per-sample features stay: report's paired comparisons resample them
}

namespace {

// metrics.fidelity: the means of the per-image PSNR and SSIM with normal 95% intervals (the images
// are independent samples; comparisons between runs of the same seeds pair them image by image).
void quality_fidelity(RunResult& r) {
  const auto it = r.metric_states.find("fidelity");
  if (it == r.metric_states.end()) return;  // a plain run: the reference itself
  const auto s = metrics::summarize_fidelity(metrics::SampleFeatures::from_state(it->second, "fidelity"));
  if (s.n == 0) return;
  const double z = 1.959964 / std::sqrt(static_cast<double>(s.n));
  r.quality["psnr"] = s.psnr;
  r.quality["ssim"] = s.ssim;
  if (s.n > 1) {
    r.quality["psnr_ci_low"] = s.psnr - z * s.psnr_sd, r.quality["psnr_ci_high"] = s.psnr + z * s.psnr_sd;
    r.quality["ssim_ci_low"] = s.ssim - z * s.ssim_sd, r.quality["ssim_ci_high"] = s.ssim + z * s.ssim_sd;
  }
  metrics::MetricProvenance p;
  p.metric = "fidelity";
  p.implementation = fmt::format("per-image PSNR (255, identical images {} dB) and SSIM (Wang et al. 2004: Gaussian window 11, sigma 1.5, "
                                 "valid, K1 0.01, K2 0.03) against the plain run of the same seeds",
                                 metrics::kPsnrIdentical);
  p.samples = s.n;
  r.metric_provenance["fidelity"] = p.to_json();
  if (s.identical > 0) r.notes.push_back(fmt::format("fidelity: {} of {} images equal the plain run's ({} dB each)", s.identical, s.n, metrics::kPsnrIdentical));
}

}  // namespace

void quality_from_states(const RunSpec& spec, RunResult& r, const torch::Device& device) {
  QualityInputs in = resolve_inputs(spec, device);
  if (spec.metrics.clip_score && !spec.conditioning.prompts.empty())
    in.prompts_file = expand_env(spec.conditioning.prompts, "conditioning.prompts");
  const MetricsSpec& m = spec.metrics;
  auto state = [&](const char* name) -> const metrics::MetricState& {
    auto it = r.metric_states.find(name);
    if (it == r.metric_states.end()) throw Error(fmt::format("run {}: no stored state of metric {}", spec.run_id, name));
    return it->second;
  };
  if (m.fid_fmnist) {
    const auto ev = metrics::fmnist_eval_from_state(state("fid_fmnist"), "fid_fmnist");
    // A covariance needs two samples: a one-sample run (e.g. a `--set samples.n=1` smoke run)
    // keeps its images and timings and has no FID.
    if (ev.n >= 2) {
      r.quality["fid_fmnist"] = metrics::fid_fmnist(ev, in.fmnist_reference);
      r.metric_provenance["fid_fmnist"] = metrics::fid_fmnist_provenance(in.fmnist_classifier, in.fmnist_reference, ev.n).to_json();
    } else {
      r.notes.push_back(fmt::format("FID-FMNIST not computed: it needs at least 2 samples, the run made {}", ev.n));
    }
    r.quality["confident_fraction"] = ev.confident_fraction();
    r.quality_arrays["fmnist_classes"] = torch::tensor(std::vector<int64_t>(ev.classes.begin(), ev.classes.end()), torch::kInt64);
  }
  // FID and sFID: the Fréchet distance of the stored statistics to the reference's.
  auto frechet_metric = [&](const char* name, const char* label, int64_t dims, const std::string& reference,
                            const std::pair<torch::Tensor, torch::Tensor>& ref) {
    const auto stats = metrics::feature_stats_from_state(state(name), name);
    if (stats.count() < 2) {
      r.notes.push_back(fmt::format("{} not computed: it needs at least 2 samples, the run made {}", label, stats.count()));
      return;
    }
    r.quality[name] = metrics::frechet_distance(stats.mean(), stats.covariance(), metrics::to_eigen_vector(ref.first),
                                                metrics::to_eigen_matrix(ref.second)).fid;
    r.metric_provenance[name] = metrics::inception_provenance(name, in.inception_weights, static_cast<int>(dims), reference, stats.count(), uint8_rule(spec)).to_json();
    if (stats.count() < dims)
      r.notes.push_back(fmt::format("{} from {} samples of {}-dimensional features: the covariance is rank-deficient, the value "
                                    "is far from the 50,000-sample figure papers print", label, stats.count(), dims));
  };
  if (m.fid) frechet_metric("fid", "FID", m.fid_dims, in.fid_reference, metrics::read_fid_stats(in.fid_reference));
  if (m.sfid) frechet_metric("sfid", "sFID", 2023, in.sfid_reference, read_sfid_stats(in.sfid_reference));
  if (m.inception_score && spec.samples.n < m.is_splits) {
    r.notes.push_back(fmt::format("Inception Score not computed: {} samples cannot make {} splits", spec.samples.n, m.is_splits));
  } else if (m.inception_score) {
    const auto acc = metrics::InceptionScoreAccumulator::from_state(state("inception_score"), "inception_score");
    const auto s = acc.result();
    r.quality["inception_score"] = s.mean;
    r.quality["inception_score_std"] = s.std;
    r.metric_provenance["inception_score"] = metrics::inception_provenance("inception_score", in.inception_weights, 2048, "", s.samples, uint8_rule(spec)).to_json();
  }
  if (m.clip_score) {
    const auto acc = metrics::ClipScoreAccumulator::from_state(state("clip_score"), "clip_score");
    r.quality["clip_score"] = acc.mean();
    metrics::MetricProvenance p;
    p.metric = "clip_score";
    p.implementation = metrics::clip_score_implementation(m.clip_model, in.clip_model_config);
    p.weights_file = in.clip_weights;
    p.weights_sha256 = metrics::sha256_file(in.clip_weights);
    p.resize_rule = metrics::clip_resize_rule(metrics::clip_image_size(m.clip_model, in.clip_model_config));
    p.uint8_rule = uint8_rule(spec);
    p.samples = acc.count();
    if (in.prompts_file.empty()) {
      p.reference = "conditioning.prompt: " + spec.conditioning.prompt;
    } else {
      p.reference = in.prompts_file;
      p.reference_sha256 = metrics::sha256_file(in.prompts_file);
    }
    r.metric_provenance["clip_score"] = p.to_json();
  }
  if (m.precision_recall) {
    const auto samples = metrics::SampleFeatures::from_state(state("precision_recall"), "precision_recall");
    if (samples.count() <= 3) {
      r.notes.push_back(fmt::format("precision/recall not computed: a k = 3 manifold needs at least 4 samples, the run made {}", samples.count()));
    } else {
      const torch::Tensor ref = metrics::cached_reference_features(in.pr_reference, in.inception_weights, in.cache_dir, device, &std::cerr);
      const auto pr = metrics::precision_recall(ref, samples.features(), 3, 4096, device);
      r.quality["precision"] = pr.precision;
      r.quality["recall"] = pr.recall;
      r.metric_provenance["precision_recall"] =
          metrics::inception_provenance("precision_recall", in.inception_weights, 2048, in.pr_reference, pr.samples, uint8_rule(spec)).to_json();
    }
  }
  if (m.fidelity) quality_fidelity(r);
  // Bootstrap intervals of the Frechet metrics from their per-sample features (a whole run's, or
  // its shards' concatenated by `merge`): the same features and seed give the same interval.
  for (const std::string name : {"fid_fmnist", "fid", "sfid"}) {
    const auto st = r.metric_states.find(metrics::features_state(name));
    if (st == r.metric_states.end() || !r.quality.count(name)) continue;
    const torch::Tensor f = metrics::SampleFeatures::from_state(st->second, st->first).features();
    const int resamples = bootstrap_resamples(m, f.size(1));
    if (resamples <= 0) continue;
    const int64_t count = metric_samples(r, name);
    if (f.size(0) != count) {
      r.notes.push_back(fmt::format("{}: no bootstrap interval ({} per-sample features for {} samples)", name, f.size(0), count));
      continue;
    }
    const auto ref = name == "fid_fmnist" ? metrics::read_fid_stats(in.fmnist_reference)
                     : name == "fid"      ? metrics::read_fid_stats(in.fid_reference)
                                          : read_sfid_stats(in.sfid_reference);
    const auto ci = metrics::frechet_bootstrap(f, r.quality.at(name), metrics::to_eigen_vector(ref.first),
                                               metrics::to_eigen_matrix(ref.second), resamples, 0);
    r.quality[name + "_ci_low"] = ci.low;
    r.quality[name + "_ci_high"] = ci.high;
    r.notes.push_back(fmt::format("{} {:.4g}, 95% bootstrap interval [{:.4g}, {:.4g}] (+/- 1.96 sd of {} resamples of the {} samples)",
                                  name, r.quality.at(name), ci.low, ci.high, ci.resamples, count));
  }
}

}  // namespace dc::harness
