// deepcache-bench sample: images from any registered model, with or without DeepCache, as a PNG grid.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <stdexcept>

#include "common/error.h"
#include "harness/cli/command.h"
#include "harness/sample.h"
#include "harness/sampling/samplers.h"
#include "models/registry.h"

namespace dc::cli {

namespace {
struct SampleState {
  harness::SampleOptions so;
  std::string out_path, nonuniform;
  double guidance = 1.0;
  int cache_k = -1;
};

// --nonuniform 'center,power'.
std::pair<int, double> parse_nonuniform(const std::string& text) {
  const auto comma = text.find(',');
  try {
    if (comma == std::string::npos) throw std::invalid_argument("no comma");
    std::size_t used = 0;
    const int c = std::stoi(text.substr(0, comma), &used);
    const double p = std::stod(text.substr(comma + 1));
    return {c, p};
  } catch (const std::exception&) {
    throw Error(fmt::format("--nonuniform '{}': expected 'center,power', e.g. 50,1.4", text));
  }
}
}  // namespace

Command add_sample(CLI::App& app) {
  auto s = std::make_shared<SampleState>();
  harness::SampleOptions& so = s->so;
  std::string samplers_help;
  for (const auto& sm : sampling::sampler_registry()) samplers_help += "\n  " + sm.name + ": " + sm.description;
  const std::string k_help =
      "DeepCache skip index k in [0, S-1] (S per preset: --preset above): a partial step computes hs[0..k] and "
      "reuses the cached feature entering the up block that consumes hs[k]. Paper branch m = k+1; DDPM code "
      "--branch b = k-1 (docs/deepcache.md). Omit for no caching.";
  auto* cmd = app.add_subcommand("sample", "Generate images, with or without DeepCache, and save a PNG grid.");
  cmd->add_option("--model", so.family, "model family")->check(CLI::IsMember(models::family_names()));
  cmd->add_option("--preset", so.preset, presets_help());
  cmd->add_option("--weights", so.weights, "safetensors weights, or 'random' (untrained, said loudly)")->required();
  cmd->add_option("--sampler", so.sampler, "sampler (default: the family's):" + samplers_help)->check(CLI::IsMember(sampling::sampler_names()));
  cmd->add_option("--steps", so.steps, "number of sampling steps");
  cmd->add_option("--spacing", so.spacing, "timestep spacing: uniform or quad");
  cmd->add_option("--eta", so.eta, "DDIM eta (0 = deterministic)");
  cmd->add_option("--guidance", s->guidance, "classifier-free guidance scale for conditional models (ldm: default 1, the LDM-4-G "
                                             "paper's 1.5; sd: default 7.5)");
  cmd->add_option("--prompt", so.prompt, "text-to-image (sd): the prompt of every image");
  cmd->add_option("--prompts", so.prompts_file, "text-to-image (sd): a file, one prompt per line (image i from line i + 1)");
  cmd->add_option("--negative-prompt", so.negative_prompt, "text-to-image (sd): the unconditional half of guidance (default \"\")");
  cmd->add_option("--tokenizer", so.tokenizer, "text-to-image (sd): folder with vocab.json and merges.txt (default: the weights "
                                               "folder's tokenizer/, else $DEEPCACHE_CLIP_TOKENIZER)");
  cmd->add_option("--image-size", so.image_size, "sd: image side in pixels, a multiple of 64 (default: the preset's 512)");
  cmd->add_option("--dtype", so.dtype, "the UNet's precision: fp32 (default), fp16 (cuda only) or bf16 (cuda; CPUs with AVX-512)")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
  cmd->add_flag("--cuda-graphs", so.cuda_graphs, "replay the UNet's calls from CUDA graphs (model.cuda_graphs; cuda, LibTorch with CUDA)");
  cmd->add_option("--seed-mode", so.seed_mode, "per_sample (default) or paper (sd: the released script's manual_seed(seed) per batch)")
      ->check(CLI::IsMember({"per_sample", "paper"}));
  cmd->add_option("--cache-k", s->cache_k, k_help);
  cmd->add_option("--interval", so.interval, "cache interval N: a full step every N model calls (1 = no reuse)");
  cmd->add_option("--nonuniform", s->nonuniform, "non-uniform full steps 'center,power' (the paper's DDPM: 50% of the steps, 1.4)");
  cmd->add_option("--n", so.n, "number of images");
  cmd->add_option("--batch", so.batch, "images per batch (changes the images only within rounding: docs/experiments.md, \"What is reproducible\")");
  cmd->add_option("--seed", so.seed, "seed; the noise of image i depends only on (seed, i)");
  cmd->add_option("--device", so.device, "cpu or cuda");
  cmd->add_option("--out", s->out_path, "PNG grid to write")->required();
  return {cmd, [s, cmd] {
            harness::SampleOptions& o = s->so;
            if (cmd->count("--guidance")) o.guidance = s->guidance;
            if (!cmd->count("--preset")) o.preset = models::preset_names(o.family).front();  // the family's first
            if (s->cache_k >= 0) o.cache_k = s->cache_k;
            else if (cmd->count("--cache-k")) throw Error(fmt::format("--cache-k {}: the skip index must be >= 0", s->cache_k));
            if (!s->nonuniform.empty()) o.nonuniform = parse_nonuniform(s->nonuniform);
            harness::sample_command(o, s->out_path, std::cout, std::cerr);
            return 0;
          }};
}

}  // namespace dc::cli
