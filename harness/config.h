// Experiments described in YAML (docs/experiments.md): strict parsing into typed run specs, base
// blocks that can be included and overridden, sweeps (grid and zip) and stable run ids.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/policies/policy.h"
#include "harness/sampling/call_schedule.h"
#include "models/registry.h"

namespace dc::harness {

struct ModelSpec {
  std::string family = "ddpm";
  std::string preset = "cifar10";
  std::string weights = "random";  // a safetensors path (may use ${ENV}), or "random"
  std::string first_stage_weights;  // optional separate first-stage file (LDM: the vq-f4 codebook)
  // Text families: the tokenizer folder (vocab.json, merges.txt; ${ENV} allowed). Empty: the weights
  // folder's tokenizer/, else $DEEPCACHE_CLIP_TOKENIZER (models::ModelOptions).
  std::string tokenizer;
  int image_size = 0;  // pixels; 0: the preset's (sd: multiples of 64)
  // The UNet's precision: fp32 (default) | fp16 (CUDA only) | bf16 (CUDA, and CPUs whose LibTorch
  // runs bfloat16 convolutions). Weights cast once; the sampler's arithmetic, the first stage and
  // the text encoder stay fp32; GroupNorm/LayerNorm and softmax run in fp32 (models/trace.h).
  std::string dtype = "fp32";
  // CUDA graphs of the UNet's calls (models/unet_graphs.h): each kind of call (batch, dtype, full or
  // partial at k) captured once, then replayed. Needs device cuda and a LibTorch with CUDA.
  bool cuda_graphs = false;
};

struct SamplerSpec {
  std::string name;              // a sampler of harness/sampling's registry; default: the family's
  int steps = 100;
  std::string spacing = "quad";  // uniform | quad
  double eta = 0.0;
};

// The `cache:` block: whether the run caches, with which policy (harness/policies; default
// deepcache), and the policy's settings read from the block's other keys (shared by the run's copies).
struct CacheSpec {
  bool enabled = false;
  std::string policy = "deepcache";  // its name; a composition's joined by '+' ("deepcache+taylorseer")
  std::vector<std::string> members = {"deepcache"};  // the composition, in order (one name for a single policy)
  std::shared_ptr<const policies::PolicySettings> settings;  // read even when disabled
};

struct SamplesSpec {
  int n = 16;
  int batch = 16;       // does not change results (per-sample seeds), not part of the run id
  uint64_t seed = 0;
  // per_sample: noise and class labels of sample i from (seed, i) (any batch size, any shards).
  // released: the stream of DeepCache's released LDM script (harness/sampling/released_stream.h):
  // generators seeded seed + rank for `ranks` ranks, whole batches of `batch`; then batch and
  // ranks change the samples and are part of the run id.
  // paper: the released SD script (experiments/generate.py): before every batch the generator is
  // seeded `seed` and x_T = randn([B, 4, h, w]); every batch starts from the same noise, so batch
  // is part of the run id. Images become uint8 by its rule (truncation).
  std::string seed_mode = "per_sample";
  int ranks = 1;
  bool save_images = false;
  int grid = 16;        // images in the PNG grid (0 = none)
};

struct SimilaritySpec {
  bool enabled = false;
  std::vector<std::string> taps;  // empty = every up-block output
  double threshold = 0.95;
  int samples = 4;                // the first samples of the run whose features are compared
};

// Conditioning of conditional families (models::ModelInfo::conditioning != "none"); an error for
// unconditional ones. Recorded in the run's config only for conditional families.
struct ConditioningSpec {
  double guidance = 1.0;           // classifier-free guidance scale, batched (1 = off); LDM-4-G paper: 1.5; text families default 7.5
  std::string classes = "random";  // class labels: random (from (seed, i)) | balanced (i mod classes)
  // Text families: sample i is generated from line i + 1 of `prompts` (a file, one prompt per line,
  // ${ENV} allowed), or every sample from `prompt`; exactly one of them. The unconditional half of
  // guidance encodes `negative_prompt` (the diffusers pipeline's default: "").
  std::string prompts;
  std::string prompt;
  std::string negative_prompt;
};

// Quality metrics computed after sampling (stored under metrics/ with provenance attributes).
struct MetricsSpec {
  bool fid_fmnist = false;   // FID-FMNIST: this project's Fashion-MNIST classifier features
  std::string classifier;    // its weights (safetensors; ${ENV} allowed)
  std::string reference;     // reference statistics (.npz, mu/sigma of the classifier features)
  double confidence = 0.8;   // a sample counts as "confident" when the classifier's top probability >= this
  // Inception metrics (pytorch-fid's FID Inception; weights default $DEEPCACHE_INCEPTION_WEIGHTS).
  bool fid = false;
  std::string fid_reference;  // reference statistics (.npz with mu, sigma of the same block)
  int fid_dims = 2048;        // 64, 192, 768 or 2048
  bool inception_score = false;
  int is_splits = 10;
  // sFID (the ADM evaluator's spatial FID on mixed_6/conv [..., :7], 2023 features): its
  // reference holds `mu_s`, `sigma_s` (an ADM reference batch's statistics) or `mu`, `sigma` of 2023.
  bool sfid = false;
  std::string sfid_reference;
  // Improved precision and recall (the ADM evaluator's k = 3 manifolds of pool features): the
  // reference is an .npz with `arr_0` uint8 images [N, H, W, C] (an ADM reference batch, `export
  // --npz`), an .npz with `features` [N, 2048], or a folder of images; its features are cached.
  bool precision_recall = false;
  std::string pr_reference;
  std::string inception_weights = "${DEEPCACHE_INCEPTION_WEIGHTS}";
  // CLIP score of (image i, prompt i) (text families): open_clip ViT-g-14 (laion2b_s34b_b88k, the
  // paper's) or OpenAI ViT-L/14 as `clip_model`, or an open_clip model config JSON.
  bool clip_score = false;
  std::string clip_model = "vit-g-14";
  std::string clip_model_config;
  std::string clip_weights = "${DEEPCACHE_CLIP_WEIGHTS}";
  std::string clip_tokenizer = "${DEEPCACHE_CLIP_TOKENIZER}";
  // Fidelity of a cached run to the plain (uncached) run of the same seeds: per-image PSNR and SSIM
  // (metrics/fidelity.h), against the plain run's stored images or samples made again (untimed).
  bool fidelity = false;
  // Resamples of the bootstrap interval of each Frechet metric (FID-FMNIST, FID, sFID) computed in
  // `run` (harness/quality.cpp): -1 = 100 for metrics of at most 256 features, none above (each
  // resample costs one Frechet distance: milliseconds at 128 features, seconds at 2048). Recorded
  // in the config, not part of the run id (it changes no sample).
  int bootstrap = -1;
};

// What a run executes, resolved once when the experiment is read (the non-uniform search runs
// here, once): `run`, `sample` and `plan` execute and print this, and `report` reads what the
// run recorded of it. Not part of the run id (it follows from `resolved`).
struct RunPlan {
  models::ModelInfo model;        // the registry's description of model.family + preset
  sampling::CallSchedule calls;   // the model calls of one generation (timesteps; coefficients at run time)
  std::vector<int> full_calls;    // call indices that run the whole UNet, when the policy knows them ahead (every call without caching)
  nlohmann::json policy_facts = nlohmann::json::object();  // what the policy resolved beyond its settings (PolicySettings::facts)
  std::vector<std::string> taps;  // similarity taps (the model's tap names when none are given)
  std::vector<std::string> warnings;  // "file:line: key: what" of settings accepted but probably not meant
};

// timing: how a run's speed is measured beyond the batches it makes anyway.
struct TimingSpec {
  // The run's first batch sampled again repeats - 1 times after its batches (same noise, same
  // size, images discarded), each timed like a batch: timing/repeat_seconds, and report's spread
  // for a run of one batch. Changes no sample: recorded in the config, not part of the run id.
  int repeats = 1;
};

struct RunSpec {
  std::string name;
  ModelSpec model;
  SamplerSpec sampler;
  CacheSpec cache;
  SamplesSpec samples;
  SimilaritySpec similarity;
  ConditioningSpec conditioning;
  MetricsSpec metrics;
  TimingSpec timing;
  std::string device = "cpu";
  // Where the run's results go (set by `run` and `merge`, not part of the config or run id): a
  // folder given as metrics.fid.reference caches its statistics beside it.
  std::string results_path;
  bool baseline = false;     // cache off, added by the experiment
  int order = 0;             // position in the experiment (reports keep it)
  RunPlan plan;              // resolved once from the settings below
  nlohmann::json resolved;   // every setting, defaults included (what the run id hashes)
  std::string run_id;        // 16 hex digits of a hash of `resolved` without name and batch
};

struct ExperimentSpec {
  std::string path;
  std::string name;
  std::string description;
  std::vector<RunSpec> runs;  // baselines first, then the sweep in order
};

// Reads and validates an experiment. Every error names the file, the key path and what was
// expected (dc::Error). Weight paths are not expanded or checked here (see expand_env).
// `overrides`: KEY=VALUE settings (`run --set`), applied to every run after the sweep, so they win
// over the YAML; VALUE is read as YAML (1, 0.5, true, random, [0, 3]). They are part of each run's
// resolved config, hence of its run id.
ExperimentSpec load_experiment(const std::string& path, const std::vector<std::string>& overrides = {});

// Same from text (for tests); `origin` names it in messages; includes resolve against `dir`.
ExperimentSpec parse_experiment(const std::string& text, const std::string& origin, const std::string& dir = ".",
                                const std::vector<std::string>& overrides = {});

// One run from its settings (the layout of an experiment's `base:`), validated and resolved as a
// run of an experiment is; `origin` names it in messages (e.g. "sample").
RunSpec resolve_run(const nlohmann::json& settings, const std::string& origin);

// A stored run's settings read back (its `config` attribute: the resolved YAML), through the same
// reader as an experiment, and checked against its stored run id; dc::Error naming `where` when they
// do not read or give another id (a file of another version). merge and report read runs so.
RunSpec read_stored_run(const std::string& config_json, const std::string& run_id, const std::string& where);

// ${VAR} expansion for weight paths; an unset variable is a dc::Error naming it and `what`.
std::string expand_env(const std::string& text, const std::string& what);

// The short description of a run used in plans and reports: "ddpm/cifar10 ddim-100 k=2 N=5 uniform".
std::string describe_run(const RunSpec& run);

}  // namespace dc::harness
