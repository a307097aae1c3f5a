// deepcache-bench: command-line entry point. CLI11 subcommands only; the work lives in the
// libraries. Exit codes: 0 success, 1 "differs" (inspect --against), 2 user error (bad input,
// bad arguments), 3 internal error.
#include <unistd.h>

#include <cmath>
#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/torch.h>

#include "common/error.h"
#include "common/strings.h"
#include "common/image_io.h"
#include "dc/build_info.h"
#include "dc/git_describe.h"
#include "harness/config.h"
#include "harness/report.h"
#include "harness/report_html.h"
#include "harness/runner.h"
#include "harness/sample.h"
#include "harness/plan.h"
#include "harness/slurm.h"
#include "harness/inspect.h"
#include "harness/export.h"
#include "harness/merge.h"
#include "metrics/fid.h"
#include "metrics/fid_pipeline.h"
#include "metrics/clip_score.h"
#include "metrics/provenance.h"
#include "metrics/fid_fmnist.h"
#include "harness/data/idx.h"
#include "harness/train/train.h"
#include "metrics/sha256.h"
#include "models/deepcache_io.h"
#include "models/weights/strict_loader.h"
#include <nlohmann/json.hpp>
#include "metrics/macs.h"
#include "metrics/npz.h"
#include "models/registry.h"
#include "harness/sampling/call_schedule.h"
#include "harness/runtime.h"

namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "deepcache-bench: reproduce and extend DeepCache (Ma, Fang, Wang, CVPR 2024) on DDPM, LDM and "
      "Stable Diffusion models.\nExit codes: 0 ok, 1 differs (inspect --against), 2 bad input, 3 internal error.",
      "deepcache-bench"};
  app.set_version_flag("--version", fmt::format("deepcache-bench {} ({}), LibTorch {}, CUDA in LibTorch: {}",
                                                DC_VERSION, DC_GIT_DESCRIBE, TORCH_VERSION, DC_HAS_CUDA ? "yes" : "no"));
  app.require_subcommand(1);

  dc::harness::InspectOptions inspect;
  bool no_tensors = false;
  auto* cmd_inspect = app.add_subcommand(
      "inspect",
      "Show what a safetensors weights file holds: tensors, dtypes, shapes, parameter count and the "
      "model family recognised from its key patterns; with --against, the difference from a "
      "full-size key manifest (*.keys.json). Exit code 1 when it differs.");
  cmd_inspect->add_option("FILE", inspect.path, "safetensors file")->required();
  cmd_inspect->add_option("--against", inspect.against, "key manifest (*.keys.json) to compare with");
  cmd_inspect->add_option("--prefix", inspect.prefix,
                          "compare only file keys under this prefix, stripped (e.g. model.diffusion_model.)");
  cmd_inspect->add_flag("--no-tensors", no_tensors, "omit the per-tensor listing");
  cmd_inspect->add_flag("--verify", inspect.verify,
                        "read every tensor's data too (checks BOOL bytes, counts NaN/inf values)");

  // ---- sample ----
  dc::harness::SampleOptions so;
  std::string out_path, nonuniform;
  const auto families = dc::models::family_names();
  // Every preset with its S (skip branches: k in 0..S-1) and its similarity taps, from the registry.
  auto presets_help = [&] {
    std::string h = "model preset (default: the family's first; fmnist is this project's Fashion-MNIST model):";
    for (const auto& f : families)
      for (const auto& n : dc::models::preset_names(f)) {
        const auto info = dc::models::model_info(f, n);
        std::string taps;
        for (const auto& t : info.tap_names) taps += (taps.empty() ? "" : " ") + t;
        h += fmt::format("\n  {}/{}: S = {} (k in 0..{}); similarity taps: {}", f, n, info.num_skips, info.num_skips - 1, taps);
      }
    return h;
  };
  std::string samplers_help;
  for (const auto& s : dc::sampling::sampler_registry()) samplers_help += "\n  " + s.name + ": " + s.description;
  int cache_k = -1;
  const std::string k_help =
      "DeepCache skip index k in [0, S-1] (S per preset: --preset above): a partial step computes hs[0..k] and "
      "reuses the cached feature entering the up block that consumes hs[k]. Paper branch m = k+1; DDPM code "
      "--branch b = k-1 (docs/deepcache.md). Omit for no caching.";
  auto* cmd_sample = app.add_subcommand("sample", "Generate images, with or without DeepCache, and save a PNG grid.");
  cmd_sample->add_option("--model", so.family, "model family")->check(CLI::IsMember(families));
  cmd_sample->add_option("--preset", so.preset, presets_help());
  cmd_sample->add_option("--weights", so.weights, "safetensors weights, or 'random' (untrained, said loudly)")->required();
  cmd_sample->add_option("--sampler", so.sampler, "sampler (default: the family's):" + samplers_help)
      ->check(CLI::IsMember(dc::sampling::sampler_names()));
  cmd_sample->add_option("--steps", so.steps, "number of sampling steps");
  cmd_sample->add_option("--spacing", so.spacing, "timestep spacing: uniform or quad");
  cmd_sample->add_option("--eta", so.eta, "DDIM eta (0 = deterministic)");
  double guidance = 1.0;
  cmd_sample->add_option("--guidance", guidance, "classifier-free guidance scale for conditional models (ldm: default 1, the LDM-4-G "
                                                 "paper's 1.5; sd: default 7.5)");
  cmd_sample->add_option("--prompt", so.prompt, "text-to-image (sd): the prompt of every image");
  cmd_sample->add_option("--prompts", so.prompts_file, "text-to-image (sd): a file, one prompt per line (image i from line i + 1)");
  cmd_sample->add_option("--negative-prompt", so.negative_prompt, "text-to-image (sd): the unconditional half of guidance (default \"\")");
  cmd_sample->add_option("--tokenizer", so.tokenizer, "text-to-image (sd): folder with vocab.json and merges.txt (default: the weights "
                                                     "folder's tokenizer/, else $DEEPCACHE_CLIP_TOKENIZER)");
  cmd_sample->add_option("--image-size", so.image_size, "sd: image side in pixels, a multiple of 64 (default: the preset's 512)");
  cmd_sample->add_option("--dtype", so.dtype, "the UNet's precision: fp32 (default), fp16 (cuda only) or bf16 (cuda; CPUs with AVX-512)")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
  cmd_sample->add_flag("--cuda-graphs", so.cuda_graphs, "replay the UNet's calls from CUDA graphs (model.cuda_graphs; cuda, LibTorch with CUDA)");
  cmd_sample->add_option("--seed-mode", so.seed_mode, "per_sample (default) or paper (sd: the released script's manual_seed(seed) per batch)")
      ->check(CLI::IsMember({"per_sample", "paper"}));
  cmd_sample->add_option("--cache-k", cache_k, k_help);
  cmd_sample->add_option("--interval", so.interval, "cache interval N: a full step every N model calls (1 = no reuse)");
  cmd_sample->add_option("--nonuniform", nonuniform, "non-uniform full steps 'center,power' (the paper's DDPM: 50% of the steps, 1.4)");
  cmd_sample->add_option("--n", so.n, "number of images");
  cmd_sample->add_option("--batch", so.batch, "images per batch (changes the images only within rounding: docs/experiments.md, \"What is reproducible\")");
  cmd_sample->add_option("--seed", so.seed, "seed; the noise of image i depends only on (seed, i)");
  cmd_sample->add_option("--device", so.device, "cpu or cuda");
  cmd_sample->add_option("--out", out_path, "PNG grid to write")->required();

  // ---- macs ----
  std::string macs_family = "ddpm", macs_preset = "cifar10";
  int macs_steps = 100, macs_interval = 5;
  auto* cmd_macs = app.add_subcommand(
      "macs", "MACs per image of a full UNet call and of a partial call at every skip index k, and the average per call "
              "of a uniform DeepCache run (counted as the paper's flops.py counts).");
  cmd_macs->add_option("--model", macs_family, "model family")->check(CLI::IsMember(families));
  cmd_macs->add_option("--preset", macs_preset, presets_help());
  cmd_macs->add_option("--steps", macs_steps, "model calls of the run");
  cmd_macs->add_option("--interval", macs_interval, "cache interval N");

  // ---- plan ----
  std::string plan_path;
  bool plan_macs = false;
  auto* cmd_plan = app.add_subcommand(
      "plan", "Parse and validate an experiment YAML and list its runs (run id, baseline, settings) without running anything; "
              "weights need not exist.");
  cmd_plan->add_option("EXPERIMENT", plan_path, "experiment YAML")->required();
  cmd_plan->add_flag("--macs", plan_macs, "also count each run's MACs per call (builds each model once)");
  std::vector<std::string> plan_set;
  cmd_plan->add_option("--set", plan_set, "KEY=VALUE ...: override a setting of every run, as `run --set` does");
  bool plan_slurm = false;
  dc::harness::SlurmOptions slurm;
  cmd_plan->add_flag("--slurm", plan_slurm,
                     "write a Slurm job-array script (one task per run and shard, requeue on pre-emption, a dependent merge "
                     "job) instead of listing the runs; docs/slurm.md");
  cmd_plan->add_option("--shards", slurm.shards, "--slurm: shards per run (each array task makes one shard of one run)");
  cmd_plan->add_option("--out", slurm.out, "--slurm: the script to write (default results/<experiment>/slurm/<experiment>.sbatch)");
  cmd_plan->add_option("--shard-dir", slurm.shard_dir, "--slurm: folder of the tasks' shard files (default: the script's folder)");
  cmd_plan->add_option("--merged", slurm.merged, "--slurm: the merge job's output (default results/<experiment>/<experiment>.h5)");
  cmd_plan->add_option("--partition", slurm.partition, "--slurm: sbatch --partition");
  cmd_plan->add_option("--account", slurm.account, "--slurm: sbatch --account");
  cmd_plan->add_option("--gres", slurm.gres, "--slurm: sbatch --gres of every array task, e.g. gpu:1");
  cmd_plan->add_option("--time", slurm.time, "--slurm: sbatch --time of every task, e.g. 04:00:00");
  cmd_plan->add_option("--throttle", slurm.throttle, "--slurm: array tasks running at once (default 16)");
  cmd_plan->add_option("--cli", slurm.cli, "--slurm: the deepcache-bench the tasks run (default: this program)");

  // ---- merge ----
  dc::harness::MergeOptions mo;
  auto* cmd_merge = app.add_subcommand(
      "merge", "Join the shards of runs (`run --shard i/n`) into complete runs: metric states add exactly, images in sample "
               "order, timings summed; refuses shards of different configurations, overlapping or missing slices.");
  cmd_merge->add_option("RESULTS", mo.inputs, "results files holding the shards")->required();
  cmd_merge->add_option("--out", mo.out, "merged results file (default results/<experiment>/<experiment>.h5; its other runs are kept)");
  cmd_merge->add_flag("--partial", mo.partial, "merge runs whose shards are not all there; marked partial, without metric values");

  // ---- export ----
  dc::harness::ExportOptions eo;
  auto* cmd_export = app.add_subcommand(
      "export", "Write a stored run's images as a PNG folder (zero-padded names: sorted order is sample order) and/or the "
                "npz guided-diffusion's evaluator reads (arr_0 uint8 NHWC, arr_1 class labels).");
  cmd_export->add_option("RESULTS", eo.results, "results file")->required();
  cmd_export->add_option("--run", eo.run, "run id, unique prefix, name, or a shard's key")->required();
  cmd_export->add_option("--png", eo.png_dir, "PNG folder to write");
  cmd_export->add_option("--npz", eo.npz, "evaluator .npz to write");

  // ---- run ----
  std::string run_path, shard;
  dc::harness::RunOptions ro;
  auto* cmd_run = app.add_subcommand(
      "run", "Run an experiment: every run not yet complete in its results file is generated, measured and committed "
             "atomically. Every input of the runs still to make (weights, prompts, tokenizer, metric files) is checked before the "
             "first sample: a bad one is exit 2 and nothing runs; a run failing while it samples is recorded as failed and "
             "the sweep goes on (exit 1 when some runs failed).");
  cmd_run->add_option("EXPERIMENT", run_path, "experiment YAML")->required();
  cmd_run->add_option("--only", ro.only, "run ids (or prefixes, or names) to run");
  cmd_run->add_option("--shard", shard, "i/n: this process generates the i-th of n slices of every run's samples (whole batches)");
  cmd_run->add_option("--device", ro.device, "cpu or cuda (overrides the experiment)");
  cmd_run->add_option("--results", ro.results_path, "results file (default results/<experiment>/<experiment>.h5)");
  std::vector<std::string> run_set, run_forget;
  cmd_run->add_option("--forget", run_forget,
                      "RUN ...: remove these runs' stored results (id or prefix, or name; every shard of it) and journals from the "
                      "results file, e.g. a stale failed run, then stop (nothing is sampled); a later `run` makes them again");
  cmd_run->add_option("--set", run_set,
                      "KEY=VALUE ...: override a setting of every run (dotted key, YAML value), e.g. model.weights=random "
                      "samples.n=1 sampler.steps=2; part of each run's config and run id");

  // ---- report ----
  dc::harness::ReportOptions rep;
  std::string report_out, html_out;
  auto* cmd_report = app.add_subcommand(
      "report", "The table (Markdown or CSV) on stdout, labelled similarity heatmaps (PNG, SVG) and sample grids as files, and with --html "
                "one self-contained page; the files written and notes of a CSV table go to stderr.");
  cmd_report->add_option("RESULTS", rep.results, "results .h5 file")->required();
  auto* report_format = cmd_report->add_option("--format", rep.format, "md (default) or csv; --out FILE.csv implies csv");
  cmd_report->add_option("--out", report_out, "write the table here instead of stdout");
  cmd_report->add_option("--html", html_out, "also write one self-contained HTML page (table, grids, heatmaps, provenance)");
  cmd_report->add_option("--heatmaps", rep.heatmap_dir, "folder for heatmaps and grids (default: next to the results)");
  cmd_report->add_option("--heatmap-scale", rep.heatmap_scale,
                         "own (default: each map from its minimum to 1) or common (one colour scale for every map of the file)");
  cmd_report->add_flag("--drop-failed", rep.drop_failed, "leave failed runs out (`run --forget RUN` removes one from the file)");
  cmd_report->add_option("--reference", rep.reference,
                         "run id (or prefix) or name: speedups and deltas of every row against this run instead of each run's own "
                         "uncached baseline (e.g. fewer-step DDIM and DeepCache against the full-step baseline)");

  // ---- train / fmnist-stats (the Fashion-MNIST model and FID-FMNIST) ----
  std::string train_config;
  bool train_fresh = false;
  int64_t train_stop_after = 0;
  auto* cmd_train = app.add_subcommand("train", "Train a model described by YAML (configs/train/*.yaml): the Fashion-MNIST DDPM or the "
                                                "FID-FMNIST classifier. Resumes from the run's checkpoint unless --fresh.");
  cmd_train->add_option("CONFIG", train_config, "training YAML")->required();
  cmd_train->add_flag("--fresh", train_fresh, "ignore an existing checkpoint and start over");
  cmd_train->add_option("--stop-after", train_stop_after, "stop after this many steps (a checkpoint is written; run again to resume)");
  std::string fs_classifier, fs_split = "test", fs_out, fs_against, fs_data;
  int64_t fs_n = 0;
  auto* cmd_fstats = app.add_subcommand("fmnist-stats", "FID-FMNIST reference statistics (.npz, mu/sigma of the classifier features) of "
                                                        "real Fashion-MNIST images; with --against, their FID-FMNIST to other statistics.");
  cmd_fstats->add_option("--classifier", fs_classifier, "Fashion-MNIST classifier weights (safetensors)")->required();
  cmd_fstats->add_option("--split", fs_split, "train or test");
  cmd_fstats->add_option("--n", fs_n, "use the first n images of the split (default all)");
  cmd_fstats->add_option("--data", fs_data, "Fashion-MNIST folder (default $DEEPCACHE_FASHION_MNIST or /usr/share/datasets/fashion-mnist)");
  cmd_fstats->add_option("--out", fs_out, "write the statistics here (.npz)");
  cmd_fstats->add_option("--against", fs_against, "print the FID-FMNIST of these images against this .npz");

  // ---- clip-score ----
  std::string clip_images, clip_prompts, clip_model = "vit-g-14", clip_model_config, clip_weights, clip_tokenizer, clip_json,
      clip_device = "cpu";
  int64_t clip_batch = 32;
  bool clip_per_pair = false;
  if (const char* t = std::getenv("DEEPCACHE_CLIP_TOKENIZER")) clip_tokenizer = t;
  auto* cmd_clip = app.add_subcommand("clip-score",
                                      "CLIP score of images against prompts (the i-th image in sorted order with the i-th line), "
                                      "max(100 cos, 0) averaged, as the DeepCache paper computes it with open_clip ViT-g-14.");
  cmd_clip->add_option("--images", clip_images, "folder of images (PNG)")->required();
  cmd_clip->add_option("--prompts", clip_prompts, "text file, one prompt per line")->required();
  cmd_clip->add_option("--model", clip_model, "vit-g-14 (open_clip laion2b_s34b_b88k) or vit-l-14 (OpenAI)");
  cmd_clip->add_option("--model-config", clip_model_config, "an open_clip model config JSON instead of a preset");
  cmd_clip->add_option("--weights", clip_weights, "the model's weights (safetensors; convert .bin/.pt with scripts/convert_ckpt_to_safetensors.py)")->required();
  cmd_clip->add_option("--tokenizer", clip_tokenizer, "folder with vocab.json and merges.txt (default $DEEPCACHE_CLIP_TOKENIZER)");
  cmd_clip->add_option("--batch-size", clip_batch, "images / prompts per batch");
  cmd_clip->add_option("--device", clip_device, "cpu or cuda");
  cmd_clip->add_option("--json", clip_json, "also write the value, the per-pair scores and the provenance to this JSON file");
  cmd_clip->add_flag("--per-pair", clip_per_pair, "print every pair's score");

  // ---- fid / fid-stats (pytorch-fid's command line) ----
  std::vector<std::string> fid_paths;
  std::string fid_stats_path, fid_out, inception_weights, fid_device = "cpu";
  int fid_dims = 2048, fid_batch = 50;
  if (const char* w = std::getenv("DEEPCACHE_INCEPTION_WEIGHTS")) inception_weights = w;
  const std::string weights_help =
      "FID Inception weights (pytorch-fid's pt_inception-2015-12-05-6726825d.pth converted with "
      "scripts/convert_ckpt_to_safetensors.py); default $DEEPCACHE_INCEPTION_WEIGHTS";
  auto* cmd_fid = app.add_subcommand("fid", "FID between two folders of images or pytorch-fid .npz statistics files, as pytorch-fid computes it.");
  cmd_fid->add_option("PATHS", fid_paths, "two paths: folders of images or .npz statistics")->required()->expected(2);
  cmd_fid->add_option("--dims", fid_dims, "feature block: 64, 192, 768 or 2048");
  cmd_fid->add_option("--batch-size", fid_batch, "images per batch");
  cmd_fid->add_option("--device", fid_device, "cpu or cuda");
  cmd_fid->add_option("--inception-weights", inception_weights, weights_help);
  std::string fid_json;
  cmd_fid->add_option("--json", fid_json, "also write the value with its provenance (weights SHA-256, resize rule, counts) to this JSON file");
  auto* cmd_fid_stats = app.add_subcommand("fid-stats", "Write the FID statistics (mu, sigma) of a folder of images as a pytorch-fid .npz.");
  cmd_fid_stats->add_option("PATH", fid_stats_path, "folder of images")->required();
  cmd_fid_stats->add_option("--out", fid_out, "output .npz")->required();
  cmd_fid_stats->add_option("--dims", fid_dims, "feature block: 64, 192, 768 or 2048");
  cmd_fid_stats->add_option("--batch-size", fid_batch, "images per batch");
  cmd_fid_stats->add_option("--device", fid_device, "cpu or cuda");
  cmd_fid_stats->add_option("--inception-weights", inception_weights, weights_help);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "deepcache-bench: error: " << e.what() << " (see --help)\n";
    return 2;
  }

  try {
    dc::harness::configure_threads();
    if (*cmd_inspect) {
      inspect.list_tensors = !no_tensors;
      return dc::harness::inspect(inspect, std::cout);
    }
    if (*cmd_sample) {
      if (cmd_sample->count("--guidance")) so.guidance = guidance;
      if (!cmd_sample->count("--preset")) so.preset = dc::models::preset_names(so.family).front();  // the family's first
      if (cache_k >= 0) so.cache_k = cache_k;
      else if (cmd_sample->count("--cache-k")) throw dc::Error(fmt::format("--cache-k {}: the skip index must be >= 0", cache_k));
      if (!nonuniform.empty()) {
        const auto comma = nonuniform.find(',');
        try {
          if (comma == std::string::npos) throw std::invalid_argument("no comma");
          std::size_t used = 0;
          const int c = std::stoi(nonuniform.substr(0, comma), &used);
          const double p = std::stod(nonuniform.substr(comma + 1));
          so.nonuniform = std::make_pair(c, p);
        } catch (const std::exception&) {
          throw dc::Error(fmt::format("--nonuniform '{}': expected 'center,power', e.g. 50,1.4", nonuniform));
        }
      }
      dc::harness::sample_command(so, out_path, std::cout, std::cerr);
      return 0;
    }
    if (*cmd_run) {
      if (!shard.empty()) {
        const auto slash = shard.find('/');
        try {
          if (slash == std::string::npos) throw std::invalid_argument("no slash");
          ro.shard_index = std::stoi(shard.substr(0, slash));
          ro.shard_count = std::stoi(shard.substr(slash + 1));
        } catch (const std::exception&) {
          throw dc::Error(fmt::format("--shard '{}': expected i/n, e.g. 0/4", shard));
        }
      }
      const auto e = dc::harness::load_experiment(run_path, run_set);
      if (!run_forget.empty()) {
        for (const auto& key : dc::harness::forget_runs(e, ro, run_forget))
          std::cout << fmt::format("forgot      {} in {}\n", key, dc::harness::default_results_path(e, ro));
        return 0;
      }
      dc::harness::install_stop_handlers();
      const auto s = dc::harness::run_experiment(e, ro, std::cerr, ::isatty(2) != 0);
      if (s.interrupted) {
        std::cout << fmt::format("interrupted {} (the finished batches are kept: the same command resumes)\n", s.results_path);
        return dc::harness::kExitInterrupted;
      }
      std::cout << fmt::format("results     {} ({} run, {} skipped as complete, {} failed)\n", s.results_path, s.complete, s.skipped,
                               s.failed);
      std::cout << fmt::format("report      deepcache-bench report {}\n", s.results_path);
      return s.failed > 0 ? 1 : 0;
    }
    if (*cmd_export) {
      dc::harness::export_images(eo, std::cout);
      return 0;
    }
    if (*cmd_merge) {
      const auto s = dc::harness::merge_results(mo, std::cerr);
      std::cout << fmt::format("merged      {} ({} runs from {} shard results)\n", s.out, s.runs, s.shards);
      return 0;
    }
    if (*cmd_report) {
      dc::harness::report_command(rep, report_format->count() > 0, report_out, html_out, std::cout, std::cerr);
      return 0;
    }
    if (*cmd_train) {
      const auto spec = dc::train::load_train_spec(train_config);
      dc::train::TrainOptions o;
      o.fresh = train_fresh;
      if (train_stop_after > 0) o.stop_after = train_stop_after;
      const auto t0 = std::chrono::steady_clock::now();
      o.progress = [&](int64_t step, int64_t steps, double loss) {
        if (step % 50 != 0 && step != steps) return;
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::cout << fmt::format("step {:>6}/{}  loss {:.4f}  ({:.0f} s)\n", step, steps, loss, s) << std::flush;
      };
      std::cout << fmt::format("train       {} ({}, {} steps, batch {})\n", spec.name, spec.kind, spec.steps, spec.batch);
      const auto r = dc::train::train(spec, o);
      if (r.resumed_from > 0) std::cout << fmt::format("resumed     from step {}\n", r.resumed_from);
      std::cout << fmt::format("steps       {} of {}{}\n", r.step, spec.steps, r.finished ? "" : " (stopped; run again to resume)");
      std::cout << fmt::format("loss        {:.4f} (mean of the last 100 steps)\n", r.mean_recent_loss);
      if (r.test_accuracy >= 0) std::cout << fmt::format("test acc.   {:.4f}\n", r.test_accuracy);
      std::cout << fmt::format("log         {}/train.h5\n", spec.out);
      if (r.finished) std::cout << fmt::format("weights     {}\n", spec.export_path);
      return 0;
    }
    if (*cmd_fstats) {
      if (fs_out.empty() && fs_against.empty()) throw dc::Error("fmnist-stats: give --out FILE.npz, --against FILE.npz, or both");
      if (fs_n < 0) throw dc::Error(fmt::format("--n {}: must be positive", fs_n));
      auto data = dc::data::read_fashion_mnist(fs_data.empty() ? dc::data::default_fashion_mnist_dir() : fs_data, fs_split);
      if (fs_n > 0) {
        if (fs_n > data.images.size(0)) throw dc::Error(fmt::format("--n {}: the {} split has {} images", fs_n, fs_split, data.images.size(0)));
        data.images = data.images.slice(0, 0, fs_n);
      }
      auto net = dc::metrics::load_fmnist_classifier(fs_classifier, torch::kCPU);  // inputs checked first
      const auto ev = dc::metrics::fmnist_evaluate(net, data.images.unsqueeze(1));
      std::cout << fmt::format("images      {} ({} split), confident (p >= 0.8): {:.4f}\n", ev.n, fs_split, ev.confident_fraction());
      if (!fs_out.empty()) {
        dc::metrics::write_fid_stats(fs_out, ev.stats.mean(), ev.stats.covariance());
        std::cout << fmt::format("statistics  {}\n", fs_out);
      }
      if (!fs_against.empty()) std::cout << fmt::format("FID-FMNIST: {:.4f} (against {})\n", dc::metrics::fid_fmnist(ev, fs_against), fs_against);
      return 0;
    }
    if (*cmd_clip) {
      const torch::Device device = dc::harness::parse_device(clip_device);
      if (clip_tokenizer.empty())
        throw dc::Error("--tokenizer: no tokenizer folder given (vocab.json + merges.txt of CLIP; or set $DEEPCACHE_CLIP_TOKENIZER)");
      dc::metrics::list_images(clip_images);  // inputs first: no model load for a bad path
      dc::metrics::read_prompts(clip_prompts);
      auto tokenizer = dc::models::ClipTokenizer::from_dir(clip_tokenizer);
      const auto model = dc::metrics::load_clip_model(clip_model, clip_model_config, clip_weights, device);
      dc::metrics::ClipScorer scorer(model, tokenizer, device);
      auto r = dc::metrics::clip_score_folder(scorer, clip_images, clip_prompts, clip_batch);
      r.provenance.implementation = dc::metrics::clip_score_implementation(clip_model, clip_model_config);
      r.provenance.weights_file = clip_weights;
      r.provenance.weights_sha256 = dc::metrics::sha256_file(clip_weights);
      if (clip_per_pair)
        for (std::size_t i = 0; i < r.per_pair.size(); ++i) std::cout << fmt::format("pair {:>5}  {:.4f}\n", i, r.per_pair[i]);
      std::cout << fmt::format("CLIP score:  {:.4f}  ({} pairs)\n", r.mean, r.per_pair.size());
      if (!clip_json.empty()) {
        dc::metrics::write_metric_json(clip_json, r.mean, {{"per_pair", r.per_pair}}, r.provenance);
        std::cout << fmt::format("json        {}\n", clip_json);
      }
      return 0;
    }
    if (*cmd_fid || *cmd_fid_stats) {
      const torch::Device device = dc::harness::parse_device(fid_device);
      std::optional<dc::metrics::InceptionFid> net;
      auto stats_of = [&](const std::string& path) -> std::pair<Eigen::VectorXd, Eigen::MatrixXd> {
        if (path.size() > 4 && path.compare(path.size() - 4, 4, ".npz") == 0) {
          const auto [mu, sigma] = dc::metrics::read_fid_stats(path);
          return {dc::metrics::to_eigen_vector(mu), dc::metrics::to_eigen_matrix(sigma)};
        }
        dc::metrics::list_images(path);  // the folder first: no model load for a bad path
        if (!net) net = dc::metrics::load_inception(inception_weights, device);
        const auto s = dc::metrics::folder_statistics(*net, path, fid_dims, fid_batch, device);
        return {s.mean(), s.covariance()};
      };
      if (*cmd_fid_stats) {
        const auto [mu, sigma] = stats_of(fid_stats_path);
        dc::metrics::write_fid_stats(fid_out, mu, sigma);
        std::cout << fmt::format("statistics  {} ({} dims) -> {}\n", fid_stats_path, mu.size(), fid_out);
        return 0;
      }
      const auto a = stats_of(fid_paths[0]);
      const auto b = stats_of(fid_paths[1]);
      const auto r = dc::metrics::frechet_distance(a.first, a.second, b.first, b.second);
      std::cout << fmt::format("FID:  {:.6f}\n", r.fid);
      if (!fid_json.empty()) {
        auto is_npz = [](const std::string& p) { return p.size() > 4 && p.compare(p.size() - 4, 4, ".npz") == 0; };
        dc::metrics::MetricProvenance p = dc::metrics::inception_provenance(
            "fid", net ? inception_weights : "", fid_dims, fid_paths[1], 0, "images read from the files as stored (uint8)");
        nlohmann::json extra = {{"paths", fid_paths}, {"dims", fid_dims}};
        for (int i = 0; i < 2; ++i)
          if (!is_npz(fid_paths[i])) extra["images"][i == 0 ? "first" : "second"] = dc::metrics::list_images(fid_paths[i]).size();
        if (!is_npz(fid_paths[0])) p.samples = static_cast<int64_t>(dc::metrics::list_images(fid_paths[0]).size());
        dc::metrics::write_metric_json(fid_json, r.fid, extra, p);
        std::cout << fmt::format("json        {}\n", fid_json);
      }
      return 0;
    }
    if (*cmd_plan) {
      const auto e = dc::harness::load_experiment(plan_path, plan_set);
      for (const char* opt : {"--shards", "--out", "--shard-dir", "--merged", "--partition", "--account", "--gres", "--time", "--throttle", "--cli"})
        if (!plan_slurm && cmd_plan->count(opt)) throw dc::Error(fmt::format("plan {}: only with --slurm", opt));
      if (plan_slurm) {
        slurm.sets = plan_set;
        dc::harness::write_slurm_script(e, slurm, std::cout);
        return 0;
      }
      dc::harness::print_plan(e, plan_macs, std::cout);
      return 0;
    }
    if (*cmd_macs) {
      if (!cmd_macs->count("--preset")) macs_preset = dc::models::preset_names(macs_family).front();
      dc::harness::print_macs(macs_family, macs_preset, macs_steps, macs_interval, std::cout);
      return 0;
    }
  } catch (const dc::Error& e) {
    std::cerr << "deepcache-bench: error: " << dc::printable(e.what()) << "\n";  // users' bytes quoted as \xNN
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "deepcache-bench: internal error (torch): " << first_line(e.what()) << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "deepcache-bench: internal error: " << e.what() << "\n";
    return 3;
  }
  return 0;
}
