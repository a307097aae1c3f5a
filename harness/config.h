// Experiments described in YAML (docs/experiments.md): strict parsing into typed run specs, base
// blocks that can be included and overridden, sweeps (grid and zip) and stable run ids.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dc::harness {

struct ModelSpec {
  std::string family = "ddpm";
  std::string preset = "cifar10";
  std::string weights = "random";  // a safetensors path (may use ${ENV}), or "random"
};

struct SamplerSpec {
  std::string name = "ddim";     // ddim | ddpm
  int steps = 100;
  std::string spacing = "quad";  // uniform | quad
  double eta = 0.0;
};

struct CacheSpec {
  bool enabled = false;
  int k = 2;                         // skip index (docs/deepcache.md)
  int interval = 5;                  // N
  std::string schedule = "uniform";  // uniform | nonuniform | explicit
  int center = 0;                    // nonuniform
  double power = 1.4;                // nonuniform
  std::vector<int> full_steps;       // explicit
};

struct SamplesSpec {
  int n = 16;
  int batch = 16;       // does not change results (per-sample seeds), not part of the run id
  uint64_t seed = 0;
  bool save_images = false;
  int grid = 16;        // images in the PNG grid (0 = none)
};

struct SimilaritySpec {
  bool enabled = false;
  std::vector<std::string> taps;  // empty = every up-block output
  double threshold = 0.95;
  int samples = 4;                // the first samples of the run whose features are compared
};

// Quality metrics computed after sampling (stored under metrics/ with provenance attributes).
struct MetricsSpec {
  bool fid_fmnist = false;   // FID-FMNIST: this project's Fashion-MNIST classifier features
  std::string classifier;    // its weights (safetensors; ${ENV} allowed)
  std::string reference;     // reference statistics (.npz, mu/sigma of the classifier features)
  double confidence = 0.8;   // a sample counts as "confident" when the classifier's top probability >= this
};

struct RunSpec {
  std::string name;
  ModelSpec model;
  SamplerSpec sampler;
  CacheSpec cache;
  SamplesSpec samples;
  SimilaritySpec similarity;
  MetricsSpec metrics;
  std::string device = "cpu";
  bool baseline = false;     // cache off, added by the experiment
  int order = 0;             // position in the experiment (reports keep it)
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
ExperimentSpec load_experiment(const std::string& path);

// Same from text (for tests); `origin` names it in messages; includes resolve against `dir`.
ExperimentSpec parse_experiment(const std::string& text, const std::string& origin, const std::string& dir = ".");

// ${VAR} expansion for weight paths; an unset variable is a dc::Error naming it and `what`.
std::string expand_env(const std::string& text, const std::string& what);

// The short description of a run used in plans and reports: "ddpm/cifar10 ddim-100 k=2 N=5 uniform".
std::string describe_run(const RunSpec& run);

}  // namespace dc::harness
