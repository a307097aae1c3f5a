#include "harness/ddpm_sample.h"

#include <filesystem>

#include <fmt/format.h>

#include "common/error.h"
#include "harness/runner.h"
#include "harness/sampling/schedule.h"
#include "models/ddpm_unet.h"

namespace dc::harness {

DdpmSampleResult ddpm_sample(const DdpmSampleOptions& o) {
  // 1. The options as a run of an experiment (validated here with the CLI's names for them).
  models::DdpmConfig::preset(o.preset);
  if (o.sampler != "ddim" && o.sampler != "ddpm")
    throw Error(fmt::format("unknown DDPM sampler '{}' (expected ddim or ddpm)", o.sampler));
  sampling::parse_spacing(o.spacing);
  if (o.n < 1) throw Error(fmt::format("--n must be at least 1, got {}", o.n));
  if (o.batch < 1) throw Error(fmt::format("--batch must be at least 1, got {}", o.batch));
  if (o.eta < 0) throw Error(fmt::format("--eta must be >= 0, got {}", o.eta));
  if (o.device != "cpu" && o.device != "cuda") throw Error(fmt::format("unknown device '{}' (expected cpu or cuda)", o.device));
  if (!o.cache_k && (o.interval != 1 || o.nonuniform))
    throw Error("--interval/--nonuniform need --cache-k (the skip index to cache at)");
  if (o.weights != "random" && !std::filesystem::exists(o.weights))
    throw Error(fmt::format("{}: weights file not found (convert a released checkpoint with "
                            "scripts/convert_ckpt_to_safetensors.py)", o.weights));
  RunSpec spec;
  spec.model = {"ddpm", o.preset, o.weights};
  spec.sampler = {o.sampler, o.steps, o.spacing, o.eta};
  if (o.cache_k) {
    spec.cache.enabled = true;
    spec.cache.k = *o.cache_k;
    spec.cache.interval = o.interval;
    if (o.nonuniform) {
      spec.cache.schedule = "nonuniform";
      spec.cache.center = o.nonuniform->first;
      spec.cache.power = o.nonuniform->second;
    }
  }
  spec.samples.n = o.n;
  spec.samples.batch = o.batch;
  spec.samples.seed = o.seed;
  spec.samples.grid = 0;
  spec.samples.save_images = true;
  spec.device = o.device;

  // 2. Generate.
  const RunResult run = execute_run(spec);
  DdpmSampleResult r;
  if (o.cache_k) {
    deepcache::CachePlan plan;
    plan.skip_index = *o.cache_k;
    plan.full_steps = run.full_steps;
    plan.final_power = run.final_power;
    plan.schedule = o.nonuniform ? fmt::format("non-uniform N={} center={} power={} (final power {:.2f})", o.interval,
                                               o.nonuniform->first, o.nonuniform->second, run.final_power)
                                 : fmt::format("uniform N={}", o.interval);
    r.plan = plan;
  }
  r.images = run.images.defined() ? run.images : torch::Tensor();
  r.model_calls = static_cast<int>(run.timesteps.size());
  r.full_calls = static_cast<int>(run.full_steps.size());
  r.seconds = run.seconds;
  r.macs_full = run.macs_full;
  r.macs_partial = run.macs_partial;
  r.macs_step_average = run.macs_step_average;
  r.weights_note = o.weights == "random" ? "RANDOM INIT (untrained weights: the images are noise, only timings and MACs mean anything)"
                                         : o.weights;
  return r;
}

}  // namespace dc::harness
