// Generate images with any registered model family, with or without DeepCache: the work behind
// `deepcache-bench sample`. The options become one run of an experiment (harness/config's
// resolve_run), so `sample` validates, resolves and executes exactly as `run` does.
#pragma once
#include <torch/torch.h>

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>


namespace dc::harness {

struct SampleOptions {
  std::string family = "ddpm";     // models/registry.h
  std::string preset = "cifar10";
  std::string weights = "random";  // a safetensors file, or "random" (untrained: images are noise)
  std::string sampler;             // a name of harness/sampling's registry; empty: the family's default
  int steps = 100;
  std::string spacing = "quad";    // "uniform" or "quad" (the ddim repo's skip types)
  double eta = 0.0;
  std::optional<double> guidance;  // conditional families: classifier-free guidance scale (default: ldm 1 = off, sd 7.5)
  // Text families: one prompt for every image, or a file of prompts (one per line); one of them.
  std::string prompt, prompts_file, negative_prompt;
  std::string tokenizer;           // text families: vocab.json + merges.txt folder ("" = the default search)
  int image_size = 0;              // pixels, 0 = the preset's
  std::string dtype = "fp32";      // the UNet's precision: fp32 | fp16 (cuda) | bf16 (model.dtype)
  bool cuda_graphs = false;         // model.cuda_graphs: the UNet's calls replayed from CUDA graphs (cuda)
  std::string seed_mode = "per_sample";
  std::optional<int> cache_k;      // DeepCache skip index; none = no caching
  int interval = 1;                // N
  std::optional<std::pair<int, double>> nonuniform;  // (center, power)
  int n = 16;
  int batch = 16;
  uint64_t seed = 0;
  std::string device = "cpu";
};

struct SampleResult {
  torch::Tensor images;  // [n, C, H, W] uint8
  std::optional<int> skip_index;  // DeepCache's k (none: no caching)
  std::string schedule;           // "uniform N=5", "non-uniform N=5 center=... (final power 1.38)"
  std::string sampler;        // the sampler used (the family default when none was given)
  std::string model;          // the registry's description of the model
  int model_calls = 0;        // per generation
  int full_calls = 0;
  double seconds = 0.0;       // sampling wall time (device-synchronised)
  double macs_full = 0.0;     // per image per call
  double macs_partial = 0.0;  // 0 without caching
  double macs_step_average = 0.0;
  std::string weights_note;   // "random init (untrained)" or the file
};

// Throws dc::Error with a clear message for every invalid option (unknown family or preset, k out
// of range, N < 1, impossible non-uniform schedule, missing weights file...).
SampleResult sample_images(const SampleOptions& options);

// `deepcache-bench sample`: generates, writes the PNG grid to `out_png` and prints a summary.
void sample_command(const SampleOptions& options, const std::string& out_png, std::ostream& out, std::ostream& err);

}  // namespace dc::harness
