#include "harness/config.h"

#include <algorithm>
#include <limits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "common/error.h"
#include "common/strings.h"
#include "harness/config_fields.h"
#include "harness/config_reader.h"
#include "harness/yaml_source.h"
#include "harness/policies/composite.h"
#include "harness/policies/policy.h"
#include "harness/sampling/call_schedule.h"
#include "models/registry.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace dc::harness {

namespace {

void deep_merge(json& into, const json& from) {
  for (auto it = from.begin(); it != from.end(); ++it) {
    if (it.value().is_object() && into.contains(it.key()) && into[it.key()].is_object()) deep_merge(into[it.key()], it.value());
    else into[it.key()] = it.value();
  }
}

void set_dotted(json& j, const std::string& dotted, const json& value) {
  json* cur = &j;
  std::size_t start = 0;
  while (true) {
    const auto dot = dotted.find('.', start);
    const std::string part = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (dot == std::string::npos) {
      (*cur)[part] = value;
      return;
    }
    if (!cur->contains(part) || !(*cur)[part].is_object()) (*cur)[part] = json::object();
    cur = &(*cur)[part];
    start = dot + 1;
  }
}

// ---- the field tables (harness/config_fields.h) ----

const Fields<ModelSpec>& model_fields() {
  static const Fields<ModelSpec> f = {
      {"family", &ModelSpec::family},
      {"preset", &ModelSpec::preset},
      {"weights", &ModelSpec::weights},
      {"first_stage_weights", &ModelSpec::first_stage_weights, InResolved::unless_default},
      {"tokenizer", &ModelSpec::tokenizer, InResolved::unless_default},
      {"image_size", &ModelSpec::image_size, InResolved::unless_default},
      {"dtype", &ModelSpec::dtype, InResolved::unless_default},               // fp32 run ids stay as they were
      {"cuda_graphs", &ModelSpec::cuda_graphs, InResolved::unless_default}};  // as do eager ones
  return f;
}

const Fields<SamplerSpec>& sampler_fields() {
  static const Fields<SamplerSpec> f = {
      {"name", &SamplerSpec::name}, {"steps", &SamplerSpec::steps}, {"spacing", &SamplerSpec::spacing}, {"eta", &SamplerSpec::eta}};
  return f;
}

// batch, seed_mode and ranks change the samples only under some seed modes (resolve()).
const Fields<SamplesSpec>& samples_fields() {
  static const Fields<SamplesSpec> f = {{"n", &SamplesSpec::n},
                                        {"batch", &SamplesSpec::batch, InResolved::by_rule},
                                        {"seed", &SamplesSpec::seed},
                                        {"seed_mode", &SamplesSpec::seed_mode, InResolved::by_rule},
                                        {"ranks", &SamplesSpec::ranks, InResolved::by_rule},
                                        {"save_images", &SamplesSpec::save_images},
                                        {"grid", &SamplesSpec::grid}};
  return f;
}

const Fields<TimingSpec>& timing_fields() {
  static const Fields<TimingSpec> f = {{"repeats", &TimingSpec::repeats, InResolved::by_rule}};  // changes no sample
  return f;
}

// A disabled similarity block resolves to {enabled: false} (resolve()).
const Fields<SimilaritySpec>& similarity_fields() {
  static const Fields<SimilaritySpec> f = {{"enabled", &SimilaritySpec::enabled},
                                           {"taps", &SimilaritySpec::taps},
                                           {"threshold", &SimilaritySpec::threshold},
                                           {"samples", &SimilaritySpec::samples}};
  return f;
}

// Text families: exactly one of prompts (a file) and prompt (resolve()).
const Fields<ConditioningSpec>& text_conditioning_fields() {
  static const Fields<ConditioningSpec> f = {{"guidance", &ConditioningSpec::guidance},
                                             {"prompts", &ConditioningSpec::prompts, InResolved::by_rule},
                                             {"prompt", &ConditioningSpec::prompt, InResolved::by_rule},
                                             {"negative_prompt", &ConditioningSpec::negative_prompt}};
  return f;
}

const Fields<ConditioningSpec>& class_conditioning_fields() {
  static const Fields<ConditioningSpec> f = {{"guidance", &ConditioningSpec::guidance}, {"classes", &ConditioningSpec::classes}};
  return f;
}

const Fields<MetricsSpec>& fid_fmnist_fields() {
  static const Fields<MetricsSpec> f = {
      {"classifier", &MetricsSpec::classifier}, {"reference", &MetricsSpec::reference}, {"confidence", &MetricsSpec::confidence}};
  return f;
}

// model (a preset) or model_config (an open_clip config JSON), whichever is given (resolve()).
const Fields<MetricsSpec>& clip_score_fields() {
  static const Fields<MetricsSpec> f = {{"model", &MetricsSpec::clip_model, InResolved::by_rule},
                                        {"model_config", &MetricsSpec::clip_model_config, InResolved::by_rule},
                                        {"weights", &MetricsSpec::clip_weights},
                                        {"tokenizer", &MetricsSpec::clip_tokenizer}};
  return f;
}

// `cache.policy`: one name, or a list (a composition: the deciding policy, then its modifiers).
std::vector<const policies::PolicyType*> cache_policies(const json& m, const Reader& r, CacheSpec& c) {
  std::vector<std::string> names{c.policy};
  if (m.contains("policy") && m["policy"].is_array()) {
    r.get(m, "cache", "policy", names);
    if (names.empty()) r.fail("cache.policy", "an empty list (name one policy, or a policy and its modifiers)");
  } else {
    r.get(m, "cache", "policy", names.front());
  }
  std::vector<const policies::PolicyType*> types;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const policies::PolicyType* type = policies::find_policy(names[i]);
    if (!type) {
      std::string list;
      for (const auto& n : policies::policy_names()) list += (list.empty() ? "" : ", ") + n;
      r.fail("cache.policy", fmt::format("'{}' is not a caching policy (known: {})", names[i], list));
    }
    if (i > 0 && !type->modifier)
      r.fail("cache.policy", fmt::format("'{}' decides what the calls compute; in a list only the first policy may (the others modify "
                                         "its requests, e.g. [deepcache, taylorseer])",
                                         names[i]));
    for (std::size_t j = 0; j < i; ++j)
      if (names[j] == names[i]) r.fail("cache.policy", fmt::format("'{}' is listed twice", names[i]));
    types.push_back(type);
  }
  c.members = names;
  c.policy = names.front();
  for (std::size_t i = 1; i < names.size(); ++i) c.policy += "+" + names[i];
  return types;
}

// The `cache:` block: `enabled`, `policy` (default deepcache) and the policies' own keys, which each
// policy reads and checks (harness/policies). Read even when disabled (a sweep may enable it).
void read_cache(const json& j, const Reader& r, RunSpec& s, int num_skips) {
  const json none = json::object();
  const json& m = j.contains("cache") ? j["cache"] : none;
  const auto types = cache_policies(m, r, s.cache);
  std::vector<std::string> known = {"enabled"};
  for (const auto* type : types)
    for (const auto& key : type->keys) {
      if (key == "policy" || std::find(known.begin(), known.end(), key) != known.end())
        r.fail("cache.policy", fmt::format("the policies listed both read cache.{}: they cannot be composed", key));
      known.push_back(key);
    }
  known.push_back("policy");
  if (j.contains("cache")) r.only(m, "cache", known);
  r.get(m, "cache", "enabled", s.cache.enabled);
  std::vector<std::shared_ptr<const policies::PolicySettings>> members;
  for (std::size_t i = 0; i < types.size(); ++i) {
    policies::ReadContext context{r,          m,          s.model.family,          s.model.preset,
                                  num_skips,  s.sampler.name, s.plan.calls.num_calls(), s.plan.calls.num_steps(),
                                  &s.plan.warnings, s.cache.enabled};
    context.composed_after.assign(s.cache.members.begin(), s.cache.members.begin() + static_cast<std::ptrdiff_t>(i));
    members.push_back(types[i]->read(context));
  }
  s.cache.settings = policies::compose(s.cache.members, std::move(members));
  // What the run computes, known before sampling where the policy can say: its full calls (every
  // call without caching).
  const auto schedule = s.cache.enabled ? s.cache.settings->schedule() : std::nullopt;
  if (!s.cache.enabled) {
    for (int i = 0; i < s.plan.calls.num_calls(); ++i) s.plan.full_calls.push_back(i);
  } else if (schedule) {
    s.plan.full_calls = policies::full_calls_of(*schedule);
  }
  s.plan.policy_facts = s.cache.enabled ? s.cache.settings->facts() : nlohmann::json::object();
}

// device and model: the family and preset (their registry description), precision, CUDA graphs.
void read_model(const json& j, const Reader& r, RunSpec& s) {
  if (j.contains("device")) {
    if (!j["device"].is_string()) r.fail("device", "expected cpu or cuda");
    s.device = j["device"].get<std::string>();
    r.one_of("device", s.device, {"cpu", "cuda"});
  }
  if (j.contains("model")) read_fields(j["model"], r, "model", model_fields(), s.model);
  r.one_of("model.dtype", s.model.dtype, {"fp32", "fp16", "bf16"});
  if (s.model.dtype == "fp16" && j.contains("device") && s.device == "cpu")  // no device: `run --device` may give cuda (the runner checks)
    r.fail("model.dtype", "fp16 needs device: cuda (LibTorch has no half-precision convolution on the CPU); on the CPU use fp32 or bf16");
  if (s.model.cuda_graphs && j.contains("device") && s.device == "cpu")
    r.fail("model.cuda_graphs", "true needs device: cuda (CUDA graphs replay GPU work); on the CPU leave it false");
  r.one_of("model.family", s.model.family, models::family_names());
  try {
    s.plan.model = models::model_info(s.model.family, s.model.preset);
  } catch (const Error& e) {
    r.fail("model.preset", e.what());
  }
  if (s.model.image_size != 0) {
    try {
      s.plan.model = models::model_info(s.model.family, s.model.preset, s.model.image_size);
    } catch (const Error& e) {
      r.fail_keyed("model", e.what());
    }
  }
  if (!s.model.tokenizer.empty() && s.plan.model.conditioning != "text")
    r.fail("model.tokenizer", fmt::format("the {} family takes no text", s.model.family));
}

// sampler: its name (default the family's), steps, spacing, eta; the model calls of one generation.
void read_sampler(const json& j, const Reader& r, RunSpec& s) {
  s.sampler.name = s.plan.model.default_sampler;
  if (j.contains("sampler")) read_fields(j["sampler"], r, "sampler", sampler_fields(), s.sampler);
  r.one_of("sampler.name", s.sampler.name, sampling::sampler_names());
  r.one_of("sampler.spacing", s.sampler.spacing, {"uniform", "quad"});
  try {  // steps within the model's schedule, eta >= 0, eta 0 for PLMS, timesteps inside T
    s.plan.calls = sampling::make_call_schedule({s.sampler.name, s.sampler.steps, s.sampler.spacing, s.sampler.eta},
                                                s.plan.model.schedule.num_timesteps);
  } catch (const Error& e) {
    r.fail_keyed("sampler", e.what());
  }
}

// samples: how many, in which batches, from which seed, what is kept.
void read_samples(const json& j, const Reader& r, RunSpec& s) {
  if (j.contains("samples")) read_fields(j["samples"], r, "samples", samples_fields(), s.samples);
  r.at_least("samples.n", s.samples.n, 1);
  r.at_least("samples.batch", s.samples.batch, 1);
  r.at_least("samples.grid", s.samples.grid, 0);
}

// timing.repeats.
void read_timing(const json& j, const Reader& r, RunSpec& s) {
  if (!j.contains("timing")) return;
  read_fields(j["timing"], r, "timing", timing_fields(), s.timing);
  if (s.timing.repeats < 1 || s.timing.repeats > 100)
    r.fail("timing.repeats", fmt::format("{}: the times a batch is timed, 1 (no repeat) to 100", s.timing.repeats));
}

// similarity: the tapped blocks (valid taps of the model), threshold, samples.
void read_similarity(const json& j, const Reader& r, RunSpec& s) {
  if (j.contains("similarity")) read_fields(j["similarity"], r, "similarity", similarity_fields(), s.similarity);
  r.at_least("similarity.samples", s.similarity.samples, 1);
  const auto& valid_taps = s.plan.model.tap_names;
  for (const auto& tap : s.similarity.taps)
    if (std::find(valid_taps.begin(), valid_taps.end(), tap) == valid_taps.end()) {
      std::string list;
      for (const auto& v : valid_taps) list += (list.empty() ? "" : ", ") + v;
      r.fail("similarity.taps", fmt::format("'{}' is not a block of the {} '{}' UNet (valid taps: {})", tap, s.model.family,
                                            s.model.preset, list));
    }
  s.plan.taps = s.similarity.taps.empty() ? valid_taps : s.similarity.taps;
  if (s.similarity.threshold < -1 || s.similarity.threshold > 1)
    r.fail("similarity.threshold", fmt::format("{} must be a cosine similarity in [-1, 1]", s.similarity.threshold));
}

// conditioning (conditional families only): guidance, classes, or the prompts of text families.
void read_conditioning(const json& j, const Reader& r, RunSpec& s) {
  const bool conditional = s.plan.model.conditioning != "none";
  const bool text = s.plan.model.conditioning == "text";
  if (text && !(j.contains("conditioning") && j["conditioning"].contains("guidance")))
    s.conditioning.guidance = 7.5;  // the diffusers SD pipeline's default, the paper's
  if (j.contains("conditioning")) {
    if (!conditional)
      r.fail("conditioning", fmt::format("the {} family is unconditional: it takes no class labels, text or guidance", s.model.family));
    read_fields(j["conditioning"], r, "conditioning", text ? text_conditioning_fields() : class_conditioning_fields(), s.conditioning);
  }
  if (conditional) {
    if (s.conditioning.guidance < 1.0)
      r.fail("conditioning.guidance", fmt::format("{} must be at least 1 (1 = no classifier-free guidance)", s.conditioning.guidance));
    if (s.plan.model.conditioning == "class") r.one_of("conditioning.classes", s.conditioning.classes, {"random", "balanced"});
  }
  if (text) {
    const bool has_file = j.contains("conditioning") && j["conditioning"].contains("prompts");
    const bool has_text = j.contains("conditioning") && j["conditioning"].contains("prompt");
    if (has_file == has_text)
      r.fail(has_file ? "conditioning.prompt" : "conditioning.prompts",
             has_file ? "give conditioning.prompts (a file) or conditioning.prompt (one text for every sample), not both"
                      : fmt::format("missing: the {} family generates from text: conditioning.prompts (a file, one prompt per line: sample i "
                                    "is made from line i + 1) or conditioning.prompt (one text for every sample)",
                                    s.model.family));
    if (has_file && s.conditioning.prompts.empty()) r.fail("conditioning.prompts", "empty path (a file, one prompt per line)");
  }
}

// samples.seed_mode against the family and sampler it reproduces (and ranks).
void check_seed_mode(const Reader& r, const RunSpec& s) {
  r.one_of("samples.seed_mode", s.samples.seed_mode, {"per_sample", "released", "paper"});
  if (s.samples.seed_mode == "paper" && s.plan.model.conditioning != "text")
    r.fail("samples.seed_mode", fmt::format("paper reproduces the released Stable Diffusion script's noise (every batch from manual_seed(seed)); "
                                            "the {} family is not text-to-image (released is the LDM script's stream)",
                                            s.model.family));
  if (s.samples.seed_mode == "released") {
    if (s.plan.model.conditioning != "class" || s.sampler.name != "ldm_ddim")
      r.fail("samples.seed_mode",
             fmt::format("released reproduces the stream of DeepCache's released LDM-4-G script (a class-conditional model, "
                         "sampler ldm_ddim); this run is {} with sampler {}", s.model.family, s.sampler.name));
    if (s.conditioning.classes != "random")
      r.fail("conditioning.classes", fmt::format("{}: with samples.seed_mode released the labels are the script's randint "
                                                 "draws; leave classes at random", s.conditioning.classes));
    r.at_least("samples.ranks", s.samples.ranks, 1, "the released script's world size");
    if (s.samples.ranks > 4096) r.fail("samples.ranks", fmt::format("{} ranks: at most 4096", s.samples.ranks));
  } else if (s.samples.ranks != 1) {
    r.fail("samples.ranks", fmt::format("{}: ranks belong to samples.seed_mode released", s.samples.ranks));
  }
}

// metrics.clip_score (text families).
void read_clip_score(const json& m, const Reader& r, RunSpec& s) {
  if (!m.contains("clip_score")) return;
  const auto& f = m["clip_score"];
  r.only(f, "metrics.clip_score", keys_of(clip_score_fields()));
  if (s.plan.model.conditioning != "text")
    r.fail("metrics.clip_score", fmt::format("CLIP score pairs each image with its prompt; the {} family is not text-to-image", s.model.family));
  s.metrics.clip_score = true;
  read_fields(f, r, "metrics.clip_score", clip_score_fields(), s.metrics);
  if (s.metrics.clip_model_config.empty()) r.one_of("metrics.clip_score.model", s.metrics.clip_model, {"vit-g-14", "vit-l-14"});
  else if (f.contains("model")) r.fail("metrics.clip_score.model", "give model (a preset) or model_config (an open_clip config JSON), not both");
}

// metrics.fid, sfid, inception_score and precision_recall: one Inception network, its weights given once or alike.
void read_inception_metrics(const json& m, const Reader& r, RunSpec& s) {
  std::string fid_weights, is_weights, sfid_weights, pr_weights;
  // The metrics that take {reference, weights} (the weights are the shared Inception's).
  auto reference_metric = [&](const char* name, bool& on, std::string& reference, std::string& weights, const char* what) {
    if (!m.contains(name)) return;
    const std::string key = std::string("metrics.") + name;
    const auto& f = m[name];
    r.only(f, key, {"reference", "weights"});
    on = true;
    r.get(f, key, "reference", reference);
    r.get(f, key, "weights", weights);
    if (reference.empty()) r.fail(key + ".reference", fmt::format("missing ({})", what));
  };
  reference_metric("precision_recall", s.metrics.precision_recall, s.metrics.pr_reference, pr_weights,
                   "an .npz with arr_0 reference images, e.g. an ADM reference batch, or a folder of images");
  reference_metric("sfid", s.metrics.sfid, s.metrics.sfid_reference, sfid_weights,
                   "statistics .npz with mu_s, sigma_s: an ADM reference batch, or mu, sigma of 2023 features");
  if (m.contains("fid")) {
    const auto& f = m["fid"];
    r.only(f, "metrics.fid", {"reference", "dims", "weights"});
    s.metrics.fid = true;
    r.get(f, "metrics.fid", "reference", s.metrics.fid_reference);
    r.get(f, "metrics.fid", "dims", s.metrics.fid_dims);
    r.get(f, "metrics.fid", "weights", fid_weights);
    if (s.metrics.fid_reference.empty()) r.fail("metrics.fid.reference", "missing (reference statistics .npz: `deepcache-bench fid-stats`)");
    if (s.metrics.fid_dims != 64 && s.metrics.fid_dims != 192 && s.metrics.fid_dims != 768 && s.metrics.fid_dims != 2048)
      r.fail("metrics.fid.dims", fmt::format("{}: pytorch-fid's FID Inception offers 64, 192, 768 or 2048", s.metrics.fid_dims));
  }
  if (m.contains("inception_score")) {
    const auto& f = m["inception_score"];
    r.only(f, "metrics.inception_score", {"splits", "weights"});
    s.metrics.inception_score = true;
    r.get(f, "metrics.inception_score", "splits", s.metrics.is_splits);
    r.get(f, "metrics.inception_score", "weights", is_weights);
    r.at_least("metrics.inception_score.splits", s.metrics.is_splits, 1);
  }
  // FID, sFID, the Inception Score and precision/recall share one Inception network: its weights, given once or alike.
  std::string given, given_key;
  for (const auto& [key, w] : {std::pair{"metrics.fid.weights", fid_weights}, {"metrics.inception_score.weights", is_weights},
                               {"metrics.sfid.weights", sfid_weights}, {"metrics.precision_recall.weights", pr_weights}}) {
    if (w.empty()) continue;
    if (!given.empty() && w != given)
      r.fail(key, fmt::format("{} differs from {} ({}): FID, sFID, the Inception Score and precision/recall share one Inception network", w, given_key, given));
    given = w;
    given_key = key;
  }
  if (!given.empty()) s.metrics.inception_weights = given;
}

// metrics.fid_fmnist: this project's classifier features.
void read_fid_fmnist(const json& m, const Reader& r, RunSpec& s) {
  if (m.contains("fid_fmnist")) {
    s.metrics.fid_fmnist = true;
    read_fields(m["fid_fmnist"], r, "metrics.fid_fmnist", fid_fmnist_fields(), s.metrics);
    if (s.metrics.classifier.empty()) r.fail("metrics.fid_fmnist.classifier", "missing (the Fashion-MNIST classifier weights)");
    if (s.metrics.reference.empty()) r.fail("metrics.fid_fmnist.reference", "missing (reference statistics .npz)");
    if (!(s.metrics.confidence > 0 && s.metrics.confidence <= 1))
      r.fail("metrics.fid_fmnist.confidence", fmt::format("{} must be in (0, 1]", s.metrics.confidence));
  }
}

// metrics: which are computed in `run`, their references and weights.
void read_metrics(const json& j, const Reader& r, RunSpec& s) {
  if (!j.contains("metrics")) return;
  const auto& m = j["metrics"];
  r.only(m, "metrics", {"fid_fmnist", "fid", "inception_score", "sfid", "precision_recall", "clip_score", "fidelity", "bootstrap"});
  if (m.contains("fidelity")) {  // `fidelity: {}`: no settings yet (its rules are metrics/fidelity.h's)
    r.only(m["fidelity"], "metrics.fidelity", {});
    s.metrics.fidelity = true;
  }
  if (m.contains("bootstrap")) {
    r.get(m, "metrics", "bootstrap", s.metrics.bootstrap);
    if (s.metrics.bootstrap != 0 && (s.metrics.bootstrap < 20 || s.metrics.bootstrap > 100000))
      r.fail("metrics.bootstrap", fmt::format("{} resamples: 0 (no interval) or 20 to 100000", s.metrics.bootstrap));
  }
  read_clip_score(m, r, s);
  read_inception_metrics(m, r, s);
  read_fid_fmnist(m, r, s);
}

// The resolved config (every setting that changes a sample, defaults included, in a fixed layout)
// and the run id, its FNV-1a 64 hash; then what is recorded without being part of the id.
void resolve(RunSpec& s) {
  const bool conditional = s.plan.model.conditioning != "none";
  const bool text = s.plan.model.conditioning == "text";
  // Resolved config: every setting, defaults included, in a fixed layout.
  json cache = {{"enabled", s.cache.enabled}};
  if (s.cache.enabled) {
    // The default policy is not named: the run ids of every run made before policies existed stay.
    if (s.cache.members.size() > 1) cache["policy"] = s.cache.members;
    else if (s.cache.policy != policies::default_policy()) cache["policy"] = s.cache.policy;
    cache.update(s.cache.settings->resolved());
  }
  s.resolved = {
      {"model", resolved_fields(model_fields(), s.model)},
      {"sampler", resolved_fields(sampler_fields(), s.sampler)},
      {"cache", cache},
      {"samples", resolved_fields(samples_fields(), s.samples)},
      {"similarity", s.similarity.enabled ? resolved_fields(similarity_fields(), s.similarity) : json{{"enabled", false}}},
      {"device", s.device},
  };
  if (text) {
    s.resolved["conditioning"] = resolved_fields(text_conditioning_fields(), s.conditioning);
    if (s.conditioning.prompts.empty()) s.resolved["conditioning"]["prompt"] = s.conditioning.prompt;
    else s.resolved["conditioning"]["prompts"] = s.conditioning.prompts;
  } else if (conditional) {  // only for conditional families: the run ids of DDPM runs stay as they were
    s.resolved["conditioning"] = resolved_fields(class_conditioning_fields(), s.conditioning);
  }
  if (s.cache.enabled && s.cache.settings->decides_per_batch())  // an adaptive rule measures the whole batch: the batch changes the samples
    s.resolved["samples"]["batch"] = s.samples.batch;
  if (s.samples.seed_mode == "paper") {  // every batch starts from manual_seed(seed): the batch changes the samples
    s.resolved["samples"]["seed_mode"] = s.samples.seed_mode;
    s.resolved["samples"]["batch"] = s.samples.batch;
  }
  if (s.samples.seed_mode == "released") {  // only when set: existing run ids stay; batch and ranks then change samples
    s.resolved["samples"]["seed_mode"] = s.samples.seed_mode;
    s.resolved["samples"]["ranks"] = s.samples.ranks;
    s.resolved["samples"]["batch"] = s.samples.batch;
  }
  if (s.metrics.fidelity) s.resolved["metrics"]["fidelity"] = json::object();
  if (s.metrics.fid_fmnist)  // only when asked: run ids of experiments without metrics stay as they were
    s.resolved["metrics"]["fid_fmnist"] = resolved_fields(fid_fmnist_fields(), s.metrics);
  if (s.metrics.fid)
    s.resolved["metrics"]["fid"] = {{"reference", s.metrics.fid_reference}, {"dims", s.metrics.fid_dims},
                                    {"weights", s.metrics.inception_weights}};
  if (s.metrics.inception_score)
    s.resolved["metrics"]["inception_score"] = {{"splits", s.metrics.is_splits}, {"weights", s.metrics.inception_weights}};
  if (s.metrics.sfid)
    s.resolved["metrics"]["sfid"] = {{"reference", s.metrics.sfid_reference}, {"weights", s.metrics.inception_weights}};
  if (s.metrics.precision_recall)
    s.resolved["metrics"]["precision_recall"] = {{"reference", s.metrics.pr_reference}, {"weights", s.metrics.inception_weights}};
  if (s.metrics.clip_score) {
    s.resolved["metrics"]["clip_score"] = resolved_fields(clip_score_fields(), s.metrics);
    if (s.metrics.clip_model_config.empty()) s.resolved["metrics"]["clip_score"]["model"] = s.metrics.clip_model;
    else s.resolved["metrics"]["clip_score"]["model_config"] = s.metrics.clip_model_config;
  }
  // FNV-1a 64 of the canonical JSON (keys sorted by nlohmann's std::map).
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char ch : s.resolved.dump()) {
    h ^= ch;
    h *= 0x100000001b3ULL;
  }
  s.run_id = fmt::format("{:016x}", h);
  s.resolved["samples"]["batch"] = s.samples.batch;  // recorded, but not part of the id
  if (s.metrics.bootstrap >= 0 && (s.metrics.fid_fmnist || s.metrics.fid || s.metrics.sfid))
    s.resolved["metrics"]["bootstrap"] = s.metrics.bootstrap;  // likewise: it changes no sample
  if (s.timing.repeats > 1) s.resolved["timing"]["repeats"] = s.timing.repeats;  // likewise
}

RunSpec read_run(const json& j, const Source& src, const std::string& context, const Origins* origins = nullptr) {
  const Reader r(src, context, origins);
  RunSpec s;
  r.only(j, "", {"name", "model", "sampler", "cache", "samples", "similarity", "conditioning", "metrics", "timing", "device"});
  r.get(j, "", "name", s.name);
  read_model(j, r, s);
  read_sampler(j, r, s);
  read_cache(j, r, s, s.plan.model.num_skips);
  read_samples(j, r, s);
  read_timing(j, r, s);
  read_similarity(j, r, s);
  read_conditioning(j, r, s);
  check_seed_mode(r, s);
  read_metrics(j, r, s);
  resolve(s);
  if (s.name.empty()) s.name = describe_run(s);
  return s;
}

std::vector<std::pair<std::string, json>> axis_entries(const json& obj, const Source& src, const std::string& where) {
  std::vector<std::pair<std::string, json>> out;
  if (!obj.is_object()) throw Error(fmt::format("{}: '{}' must map dotted keys (e.g. cache.k) to lists of values", src.where(where), where));
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string p = where + "." + it.key();
    if (!it.value().is_array() || it.value().empty())
      throw Error(fmt::format("{}: {}: expected a non-empty list of values", src.where(p), p));
    out.emplace_back(it.key(), it.value());
  }
  return out;
}

}  // namespace

std::string expand_env(const std::string& text, const std::string& what) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '{') {
      const auto close = text.find('}', i + 2);
      if (close == std::string::npos) throw Error(fmt::format("{}: unterminated '${{' in '{}'", what, text));
      const std::string var = text.substr(i + 2, close - i - 2);
      const char* v = std::getenv(var.c_str());
      if (!v) throw Error(fmt::format("{}: environment variable {} is not set (used in '{}')", what, var, text));
      out += v;
      i = close;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string describe_run(const RunSpec& r) {
  std::string s = fmt::format("{}/{} {}-{}", r.model.family, r.model.preset, r.sampler.name, r.sampler.steps);
  const std::string cfg = r.plan.model.conditioning != "none" && r.conditioning.guidance != 1.0
                              ? fmt::format(" cfg={}", r.conditioning.guidance) : "";
  if (!r.cache.enabled) return s + cfg + " baseline";
  if (r.cache.members.front() != policies::default_policy()) s += " " + r.cache.members.front();  // a composition's modifiers describe themselves
  s += r.cache.settings->describe();
  return s + cfg;
}

namespace {

// --set KEY=VALUE, each VALUE read as YAML; where each was written, for located errors.
struct SetOverrides {
  std::vector<std::pair<std::string, json>> values;
  std::vector<std::pair<std::string, std::string>> origins;  // key -> "--set KEY=VALUE"
  std::string label;                                          // "--set a=1 b=2"
};
SetOverrides read_set_overrides(const std::vector<std::string>& overrides) {
  SetOverrides o_;
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error(fmt::format("--set {}: expected KEY=VALUE with a dotted key, e.g. model.weights=random or samples.n=1", o));
    Source vsrc;
    vsrc.origin = "--set " + o;
    json v = o.size() == eq + 1 ? json("") : load_yaml(o.substr(eq + 1), vsrc);
    o_.values.emplace_back(o.substr(0, eq), v);
    o_.origins.emplace_back(o.substr(0, eq), "--set " + o);
    o_.label += (o_.label.empty() ? "--set " : " ") + o;
  }
  return o_;
}

// The base of every run: the included blocks in order, then `base:` on top, with where each key
// path was last written.
struct Base {
  json settings = json::object();
  std::map<std::string, std::string> where;  // key path under base -> "file:line" of its last writer
};
Base read_base(const json& top, const Source& src, const std::string& origin, const std::string& dir) {
  Base b;
  if (top.contains("include")) {
    const json inc = top["include"].is_string() ? json::array({top["include"]}) : top["include"];
    if (!inc.is_array()) throw Error(fmt::format("{}: include: expected a path or a list of paths", src.where("include")));
    for (const auto& p : inc) {
      if (!p.is_string()) throw Error(fmt::format("{}: include: expected paths, got {}", src.where("include"), p.dump()));
      const std::string path = (fs::path(dir) / p.get<std::string>()).lexically_normal().string();
      Source isrc;
      isrc.origin = path;
      const json block = load_yaml(read_text(path, "included config block"), isrc);
      if (!block.is_object()) throw Error(fmt::format("{}: a config block is a YAML mapping of run settings", path));
      deep_merge(b.settings, block);
      for (const auto& [key, line] : isrc.lines) b.where[key] = fmt::format("{}:{}", path, line);
    }
  }
  if (top.contains("base")) {
    if (!top["base"].is_object()) throw Error(fmt::format("{}: base: expected a mapping of run settings", src.where("base")));
    deep_merge(b.settings, top["base"]);
    for (const auto& [key, line] : src.lines)
      if (key.rfind("base.", 0) == 0) b.where[key.substr(5)] = fmt::format("{}:{}", origin, line);
  }
  return b;
}

// Explicit runs x sweep grid x zip groups, counted before they are made: an experiment of more runs
// than a results file should hold is refused at once (a typo such as a 1000-value axis crossed with
// others would otherwise have `plan` resolve millions of runs for minutes).
void check_point_count(const json& top, const Source& src) {
  constexpr double kMaxPoints = 100000;
  double count = top.contains("runs") && top["runs"].is_array() ? std::max<std::size_t>(top["runs"].size(), 1) : 1;
  std::string how = top.contains("runs") && top["runs"].is_array() ? fmt::format("runs {}", top["runs"].size()) : "";
  if (top.contains("sweep") && top["sweep"].is_object())
    for (auto it = top["sweep"].begin(); it != top["sweep"].end(); ++it) {
      const std::size_t n = it.value().is_array() ? it.value().size() : 1;
      count *= static_cast<double>(std::max<std::size_t>(n, 1));
      how += fmt::format("{}sweep.{} {}", how.empty() ? "" : " x ", it.key(), n);
    }
  if (top.contains("zip")) {
    const json groups = top["zip"].is_array() ? top["zip"] : json::array({top["zip"]});
    for (std::size_t g = 0; g < groups.size(); ++g)
      if (groups[g].is_object() && !groups[g].empty() && groups[g].begin().value().is_array()) {
        const std::size_t n = groups[g].begin().value().size();
        count *= static_cast<double>(std::max<std::size_t>(n, 1));
        how += fmt::format("{}zip[{}] {}", how.empty() ? "" : " x ", g, n);
      }
  }
  if (count > kMaxPoints)
    throw Error(fmt::format("{}: the experiment expands to {:.0f} runs ({}); at most {:.0f} per experiment: split it into several files",
                            src.where(top.contains("sweep") ? "sweep" : top.contains("zip") ? "zip" : "runs"), count, how, kMaxPoints));
}

// A point of the sweep: its label, its dotted overrides and where each override was written.
struct Point {
  std::string label;
  json overrides;
  std::vector<std::pair<std::string, std::string>> origins;
};

// `runs:` entries, each a point (one empty point without them).
std::vector<Point> run_points(const json& top, const Source& src) {
  std::vector<Point> points = {{"", json::object(), {}}};
  if (top.contains("runs")) {
    if (!top["runs"].is_array()) throw Error(fmt::format("{}: runs: expected a list of override mappings", src.where("runs")));
    points.clear();
    for (std::size_t i = 0; i < top["runs"].size(); ++i) {
      const json& r = top["runs"][i];
      if (!r.is_object()) throw Error(fmt::format("{}: runs[{}]: expected a mapping of dotted overrides", src.where("runs"), i));
      Point p{fmt::format("runs[{}]", i), r, {}};
      for (auto it = r.begin(); it != r.end(); ++it) p.origins.emplace_back(it.key(), fmt::format("runs[{}].{}", i, it.key()));
      points.push_back(std::move(p));
    }
  }
  return points;
}

// The sweep grid crossed with `points`.
void cross_sweep(const json& top, const Source& src, std::vector<Point>& points) {
  if (top.contains("sweep")) {
    for (const auto& [key, values] : axis_entries(top["sweep"], src, "sweep")) {
      std::vector<Point> next;
      for (const auto& p : points)
        for (const auto& v : values) {
          Point q = p;
          if (p.overrides.contains(key)) {  // a `runs` entry that sets the key keeps its value (one run for every value)
            next.push_back(std::move(q));
            continue;
          }
          q.overrides[key] = v;
          q.label += (q.label.empty() ? "" : ", ") + key + "=" + v.dump();
          q.origins.emplace_back(key, "sweep." + key);
          next.push_back(std::move(q));
        }
      points = std::move(next);
    }
  }
}

// Each zip group (axes that vary together) crossed with `points`.
void cross_zip(const json& top, const Source& src, std::vector<Point>& points) {
  if (top.contains("zip")) {
    const json groups = top["zip"].is_array() ? top["zip"] : json::array({top["zip"]});
    for (std::size_t g = 0; g < groups.size(); ++g) {
      const auto axes = axis_entries(groups[g], src, fmt::format("zip[{}]", g));
      const std::size_t len = axes.front().second.size();
      for (const auto& [key, values] : axes)
        if (values.size() != len)
          throw Error(fmt::format("{}: zip[{}]: '{}' has {} values but '{}' has {}; zipped axes vary together and need equal lengths",
                                  src.where(fmt::format("zip[{}]", g)), g, key, values.size(), axes.front().first, len));
      std::vector<Point> next;
      for (const auto& p : points)
        for (std::size_t i = 0; i < len; ++i) {
          Point q = p;
          for (const auto& [key, values] : axes) {
            if (p.overrides.contains(key)) continue;  // as for sweep: the `runs` entry's own value stays
            q.overrides[key] = values[i];
            q.label += (q.label.empty() ? "" : ", ") + key + "=" + values[i].dump();
            q.origins.emplace_back(key, top["zip"].is_array() ? fmt::format("zip[{}].{}", g, key) : "zip." + key);
          }
          next.push_back(std::move(q));
        }
      points = std::move(next);
    }
  }
}

// Every point resolved and validated (a sweep point turns caching on unless it says otherwise);
// duplicates of an earlier run id dropped.
std::vector<RunSpec> resolve_points(const json& top, const Source& src, const Base& base, const std::vector<Point>& points,
                                    const SetOverrides& set, std::set<std::string>& seen) {
  std::vector<RunSpec> runs;
  const bool sweeping = top.contains("sweep") || top.contains("zip") || top.contains("runs");
  for (const auto& point : points) {
    json run = base.settings;
    if (sweeping && !(run.contains("cache") && run["cache"].contains("enabled"))) set_dotted(run, "cache.enabled", true);
    for (auto it = point.overrides.begin(); it != point.overrides.end(); ++it) set_dotted(run, it.key(), it.value());
    for (const auto& [key, value] : set.values) set_dotted(run, key, value);
    Origins origins{point.origins, base.where};
    for (const auto& o : set.origins) origins.overrides.push_back(o);
    const std::string& label = point.label;
    const std::string where = label.empty() ? set.label : set.label.empty() ? label : label + "; " + set.label;
    RunSpec r = read_run(run, src, where.empty() ? "" : "run " + where, &origins);
    if (seen.insert(r.run_id).second) runs.push_back(std::move(r));
  }
  return runs;
}

// Baselines: one uncached run per distinct model/sampler/samples/device, first; then the runs.
std::vector<RunSpec> with_baselines(const json& top, const Source& src, std::vector<RunSpec> runs, std::set<std::string>& seen) {
  std::vector<RunSpec> out;
  const bool baseline = !top.contains("baseline") || (top["baseline"].is_boolean() && top["baseline"].get<bool>());
  if (top.contains("baseline") && !top["baseline"].is_boolean())
    throw Error(fmt::format("{}: baseline: expected true or false", src.where("baseline")));
  if (baseline) {
    for (const auto& r : runs) {
      json b = r.resolved;
      b["cache"] = {{"enabled", false}};
      b["name"] = "";
      RunSpec br = read_run(b, src, "the baseline of run " + r.name);
      br.baseline = true;
      if (seen.insert(br.run_id).second) out.push_back(std::move(br));
      else
        for (auto& x : runs)
          if (x.run_id == br.run_id) x.baseline = true;
    }
  }
  for (auto& r : runs) out.push_back(std::move(r));
  return out;
}

}  // namespace

ExperimentSpec parse_experiment(const std::string& text, const std::string& origin, const std::string& dir,
                                const std::vector<std::string>& overrides) {
  const SetOverrides set = read_set_overrides(overrides);
  Source src;
  src.origin = origin;
  const json top = load_yaml(text, src);
  if (!top.is_object()) throw Error(fmt::format("{}: an experiment is a YAML mapping (experiment:, base:, sweep:, ...)", origin));
  const std::vector<std::string> known = {"experiment", "description", "include", "base", "baseline", "sweep", "zip", "runs"};
  for (auto it = top.begin(); it != top.end(); ++it)
    if (std::find(known.begin(), known.end(), it.key()) == known.end())
      throw Error(fmt::format("{}: unknown top-level key '{}' (known: experiment, description, include, base, baseline, sweep, zip, runs)",
                              src.where(it.key()), it.key()));
  ExperimentSpec e;
  e.path = origin;
  if (!top.contains("experiment") || !top["experiment"].is_string())
    throw Error(fmt::format("{}: 'experiment' (the experiment's name, a string) is required", origin));
  e.name = top["experiment"].get<std::string>();
  if (top.contains("description")) e.description = top["description"].is_string() ? top["description"].get<std::string>() : top["description"].dump();
  const Base base = read_base(top, src, origin, dir);
  check_point_count(top, src);
  std::vector<Point> points = run_points(top, src);
  cross_sweep(top, src, points);
  cross_zip(top, src, points);
  std::set<std::string> seen;
  e.runs = with_baselines(top, src, resolve_points(top, src, base, points, set, seen), seen);
  for (std::size_t i = 0; i < e.runs.size(); ++i) e.runs[i].order = static_cast<int>(i);
  return e;
}

RunSpec resolve_run(const json& settings, const std::string& origin) {
  Source src;
  src.origin = origin;
  return read_run(settings, src, "");
}

RunSpec read_stored_run(const std::string& config_json, const std::string& run_id, const std::string& where) {
  ExperimentSpec e;
  try {
    e = parse_experiment("experiment: stored\nbaseline: false\nbase: " + json::parse(config_json).dump() + "\n", where, ".");
  } catch (const std::exception& ex) {
    throw Error(fmt::format("{}: its stored config does not read back: {}", where, ex.what()));
  }
  if (e.runs.size() != 1 || e.runs[0].run_id != run_id)
    throw Error(fmt::format("{}: its stored config gives run id {}, not {} (written by another version of deepcache-bench?)", where,
                            e.runs.empty() ? "none" : e.runs[0].run_id, run_id));
  return e.runs[0];
}

ExperimentSpec load_experiment(const std::string& path, const std::vector<std::string>& overrides) {
  return parse_experiment(read_text(path, "experiment"), path, fs::path(path).parent_path().string(), overrides);
}

}  // namespace dc::harness
