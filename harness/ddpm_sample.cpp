#include "harness/ddpm_sample.h"

#include <chrono>
#include <filesystem>

#include <fmt/format.h>

#include "common/error.h"
#include "harness/deepcache/skip_index.h"
#include "harness/denoiser.h"
#include "harness/image_io.h"
#include "harness/sampling/samplers.h"
#include "harness/sampling/schedule.h"
#include "metrics/macs.h"
#include "models/ddpm_unet.h"
#include "models/weights/strict_loader.h"

namespace dc::harness {

namespace {
torch::Device parse_device(const std::string& d) {
  if (d == "cpu") return torch::kCPU;
  if (d == "cuda") {
    if (!torch::cuda::is_available()) throw Error("--device cuda: no CUDA device is available to this LibTorch build");
    return torch::kCUDA;
  }
  throw Error(fmt::format("unknown device '{}' (expected cpu or cuda)", d));
}
void synchronize(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}
}  // namespace

DdpmSampleResult ddpm_sample(const DdpmSampleOptions& o) {
  // 1. Validate everything before any work.
  const models::DdpmConfig cfg = models::DdpmConfig::preset(o.preset);
  if (o.sampler != "ddim" && o.sampler != "ddpm")
    throw Error(fmt::format("unknown DDPM sampler '{}' (expected ddim or ddpm)", o.sampler));
  const sampling::Spacing spacing = sampling::parse_spacing(o.spacing);
  if (o.n < 1) throw Error(fmt::format("--n must be at least 1, got {}", o.n));
  if (o.batch < 1) throw Error(fmt::format("--batch must be at least 1, got {}", o.batch));
  if (o.eta < 0) throw Error(fmt::format("--eta must be >= 0, got {}", o.eta));
  const auto seq = sampling::ddim_repo_timesteps(o.steps, spacing, 1000);
  const int calls = static_cast<int>(seq.size());
  const torch::Device device = parse_device(o.device);

  DdpmSampleResult r;
  std::shared_ptr<deepcache::CachePlan> plan;
  if (o.cache_k) {
    deepcache::check_skip_index(*o.cache_k, static_cast<int>(cfg.num_skips()), ("the DDPM '" + o.preset + "' UNet").c_str());
    plan = std::make_shared<deepcache::CachePlan>();
    plan->skip_index = *o.cache_k;
    if (o.nonuniform) {
      const auto nu = deepcache::nonuniform_full_steps(calls, o.interval, o.nonuniform->first, o.nonuniform->second);
      plan->full_steps = nu.steps;
      plan->final_power = nu.final_power;
      plan->schedule = fmt::format("non-uniform N={} center={} power={} (final power {:.2f})", o.interval,
                                   o.nonuniform->first, o.nonuniform->second, nu.final_power);
    } else {
      plan->full_steps = deepcache::uniform_full_steps(calls, o.interval);
      plan->schedule = fmt::format("uniform N={}", o.interval);
    }
    r.plan = *plan;
  } else if (o.interval != 1 || o.nonuniform) {
    throw Error("--interval/--nonuniform need --cache-k (the skip index to cache at)");
  }

  // 2. Model.
  models::DdpmUNet net(cfg);
  if (o.weights == "random") {
    r.weights_note = "RANDOM INIT (untrained weights: the images are noise, only timings and MACs mean anything)";
  } else {
    if (!std::filesystem::exists(o.weights))
      throw Error(fmt::format("{}: weights file not found (convert a released checkpoint with "
                              "scripts/convert_ckpt_to_safetensors.py)", o.weights));
    weights::LoadOptions lo;
    lo.module_name = "DDPM UNet preset '" + o.preset + "'";
    weights::load_strict(*net, st::SafetensorsFile::open(o.weights), lo);
    r.weights_note = o.weights;
  }
  net->eval();
  {
    const auto m = metrics::ddpm_call_macs(net);
    r.macs_full = m.total;
    if (plan) r.macs_partial = metrics::ddpm_call_macs(net, plan->skip_index).total;
    r.macs_step_average = plan ? metrics::step_average_macs(r.macs_full, r.macs_partial, plan->full_steps, calls) : r.macs_full;
  }
  net->to(device);

  // 3. Sample in batches; sample i's noise depends only on (seed, i).
  torch::NoGradGuard no_grad;
  const auto ac = sampling::alphas_cumprod_f32(sampling::make_betas(sampling::BetaSchedule::DdpmLinear, 1000, 1e-4, 0.02)).to(device);
  std::vector<torch::Tensor> out;
  auto log = std::make_shared<DenoiserLog>();
  const auto model = ddpm_denoiser(net, plan, log);
  synchronize(device);
  const auto t0 = std::chrono::steady_clock::now();
  for (int first = 0; first < o.n; first += o.batch) {
    const int b = std::min(o.batch, o.n - first);
    const auto noise = sampling::per_sample_noise(o.seed, first);
    const torch::Tensor shape = torch::empty({b, cfg.in_channels, cfg.resolution, cfg.resolution}, torch::TensorOptions().device(device));
    const torch::Tensor x_T = noise(shape);
    const auto tr = o.sampler == "ddim" ? sampling::ddim_repo_sample(x_T, seq, ac, o.eta, model, noise, false)
                                        : sampling::ddpm_ancestral_sample(x_T, seq, ac, model, noise, false);
    out.push_back(to_uint8(tr.final).cpu());
  }
  synchronize(device);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.images = torch::cat(out);
  r.model_calls = calls;
  r.full_calls = plan ? plan->num_full(calls) : calls;
  return r;
}

}  // namespace dc::harness
