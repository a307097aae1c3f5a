#include "harness/sample.h"

#include <cmath>
#include <filesystem>
#include <ostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/image_io.h"
#include "harness/config.h"
#include "harness/runner.h"
#include "harness/runtime.h"
#include "models/deepcache_io.h"

namespace dc::harness {

SampleResult sample_images(const SampleOptions& o) {
  // 1. The options as a run of an experiment, resolved as `run` resolves it; the CLI-only checks
  // use the CLI's names for the options.
  if (o.n < 1) throw Error(fmt::format("--n must be at least 1, got {}", o.n));
  if (o.batch < 1) throw Error(fmt::format("--batch must be at least 1, got {}", o.batch));
  if (o.eta < 0) throw Error(fmt::format("--eta must be >= 0, got {}", o.eta));
  if (!o.cache_k && (o.interval != 1 || o.nonuniform))
    throw Error("--interval/--nonuniform need --cache-k (the skip index to cache at)");
  nlohmann::json settings = {
      {"model", {{"family", o.family}, {"preset", o.preset}, {"weights", o.weights}}},
      {"sampler", {{"steps", o.steps}, {"spacing", o.spacing}, {"eta", o.eta}}},
      {"samples", {{"n", o.n}, {"batch", o.batch}, {"seed", o.seed}, {"grid", 0}, {"save_images", true}}},
      {"device", o.device},
  };
  if (!o.sampler.empty()) settings["sampler"]["name"] = o.sampler;
  if (o.guidance) settings["conditioning"]["guidance"] = *o.guidance;
  if (!o.prompt.empty() && !o.prompts_file.empty()) throw Error("--prompt and --prompts: give one of them");
  if (!o.prompt.empty()) settings["conditioning"]["prompt"] = o.prompt;
  if (!o.prompts_file.empty()) settings["conditioning"]["prompts"] = o.prompts_file;
  if (!o.negative_prompt.empty()) settings["conditioning"]["negative_prompt"] = o.negative_prompt;
  if (!o.tokenizer.empty()) settings["model"]["tokenizer"] = o.tokenizer;
  if (o.image_size != 0) settings["model"]["image_size"] = o.image_size;
  if (o.dtype != "fp32") settings["model"]["dtype"] = o.dtype;
  if (o.cuda_graphs) settings["model"]["cuda_graphs"] = true;
  if (o.seed_mode != "per_sample") settings["samples"]["seed_mode"] = o.seed_mode;
  if (o.cache_k) {
    settings["cache"] = {{"enabled", true}, {"k", *o.cache_k}, {"interval", o.interval}};
    if (o.nonuniform)
      settings["cache"].update({{"schedule", "nonuniform"}, {"center", o.nonuniform->first}, {"power", o.nonuniform->second}});
  }
  const RunSpec spec = resolve_run(settings, "sample");

  // 2. Generate.
  const RunResult run = execute_run(spec);
  SampleResult r;
  if (o.cache_k) {
    r.skip_index = *o.cache_k;
    r.schedule = o.nonuniform ? fmt::format("non-uniform N={} center={} power={} (final power {:.2f})", o.interval,
                                            o.nonuniform->first, o.nonuniform->second, run.policy_facts.value("final_power", 0.0))
                              : fmt::format("uniform N={}", o.interval);
  }
  r.sampler = spec.sampler.name;
  r.model = spec.plan.model.description;
  r.images = run.images.defined() ? run.images : torch::Tensor();
  r.model_calls = static_cast<int>(run.timesteps.size());
  r.full_calls = static_cast<int>(run.full_calls.size());
  r.seconds = run.seconds;
  r.macs_full = run.macs_full;
  r.macs_partial = run.macs_partial;
  r.macs_step_average = run.macs_step_average;
  r.weights_note = o.weights == "random" ? "RANDOM INIT (untrained weights: the images are noise, only timings and MACs mean anything)"
                                         : o.weights;
  return r;
}

void sample_command(const SampleOptions& so, const std::string& out_path, std::ostream& out, std::ostream& err) {
  const auto r = sample_images(so);
  const auto grid = image::make_grid(r.images, static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(r.images.size(0))))));
  image::write_png(out_path, grid);
  out << fmt::format("model       {} preset {}: {}\n", so.family, so.preset, r.model);
  out << fmt::format("weights     {}\n", r.weights_note);
  out << fmt::format("sampler     {} ({} model calls{}{})\n", r.sampler, r.model_calls,
                     sampling::sampler_info(r.sampler).uses_spacing ? ", " + so.spacing + " spacing" : "",
                     sampling::sampler_info(r.sampler).uses_eta ? fmt::format(", eta {}", so.eta) : "");
  if (r.skip_index)
    out << fmt::format("deepcache   k={} (paper branch m={}), {}: {} full + {} partial calls\n", *r.skip_index,
                       deepcache::paper_branch_from_k(*r.skip_index), r.schedule, r.full_calls,
                       r.model_calls - r.full_calls);
  else
    out << "deepcache   off\n";
  out << fmt::format("MACs        {:.3f} G per call on average (full call {:.3f} G{})\n", r.macs_step_average / 1e9,
                     r.macs_full / 1e9, r.skip_index ? fmt::format(", partial {:.3f} G", r.macs_partial / 1e9) : "");
  out << fmt::format("time        {:.2f} s for {} images on {} ({:.3f} s/image; {})\n", r.seconds, so.n, so.device,
                     r.seconds / so.n, thread_settings());
  if (so.device == "cpu") out << fmt::format("cpu         {}; kernels {}\n", cpu_description(), cpu_kernels());
  out << fmt::format("output      {}\n", out_path);
  if (so.weights == "random") err << "deepcache-bench: warning: --weights random: untrained model\n";
}

}  // namespace dc::harness
