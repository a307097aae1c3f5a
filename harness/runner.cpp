#include "harness/runner.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <optional>
#include <tuple>
#include <set>
#include <ostream>

#include <fmt/format.h>
#include <torch/torch.h>

#include "common/error.h"
#include "common/image_io.h"
#include "common/io_ops.h"
#include "common/memory_peak.h"
#include "common/prompts.h"
#include "dc/build_info.h"
#include "dc/git_describe.h"
#include "harness/denoiser.h"
#include "harness/policies/policy_state.h"
#include "harness/run/batch_sampler.h"
#include "harness/run/conditioner.h"
#include "harness/run/noise_source.h"
#include "harness/run/plain_reference.h"
#include "harness/run/tap_collector.h"
#include "harness/footprint.h"
#include "harness/hdf5_core.h"
#include "harness/resources.h"
#include "harness/quality.h"
#include "harness/call_timer.h"
#include "harness/process_usage.h"
#include "harness/runtime.h"
#include "harness/timing_check.h"
#include "harness/report.h"
#include "harness/sampling/released_stream.h"
#include "harness/sampling/samplers.h"
#include "harness/writer_lock.h"
#include "harness/sampling/schedule.h"
#include "metrics/macs.h"
#include "metrics/sha256.h"
#include "models/deepcache_io.h"
#include "models/model.h"
#include "models/unet_graphs.h"

namespace fs = std::filesystem;

namespace dc::harness {

namespace {

std::string now_iso() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// model.dtype on `device`, or one dc::Error naming model.dtype when that device cannot run it.
torch::ScalarType unet_dtype_for(const std::string& dtype, const torch::Device& device) {
  if (dtype == "fp32") return torch::kFloat;
  if (dtype == "fp16") {
    if (!device.is_cuda())
      throw Error("model.dtype: fp16 needs device cuda (LibTorch has no half-precision convolution on the CPU); "
                  "on the CPU use fp32 or bf16");
    return torch::kHalf;
  }
  if (dtype == "bf16") {
    if (device.is_cpu()) {  // LibTorch's CPU bfloat16 convolution is oneDNN's, which needs AVX-512 (BW, VL, DQ)
      static const bool ok = [] {
        try {
          torch::NoGradGuard ng;
          torch::conv2d(torch::zeros({1, 16, 8, 8}, torch::kBFloat16), torch::zeros({16, 16, 3, 3}, torch::kBFloat16), {}, 1, 1);
          return true;
        } catch (const c10::Error&) {
          return false;
        }
      }();
      if (!ok)
        throw Error("model.dtype: bf16: this CPU's LibTorch cannot run bfloat16 convolutions (oneDNN needs AVX-512); use fp32");
    }
    return torch::kBFloat16;
  }
  throw Error(fmt::format("model.dtype: '{}': expected fp32, fp16 or bf16", dtype));
}

// model.cuda_graphs on `device`: one dc::Error naming the key when this device or build cannot.
void check_cuda_graphs(bool wanted, const torch::Device& device) {
  if (!wanted) return;
  if (!device.is_cuda()) throw Error("model.cuda_graphs: true needs device cuda (CUDA graphs replay GPU work); on the CPU set it false");
  const std::string missing = models::cuda_graphs_missing();
  if (!missing.empty()) throw Error(missing);
}

// Untimed warm-up before a run's first batch: the first calls on a device pay one-time costs (CUDA
// context and kernel loading, cuDNN algorithm choice, allocator growth; first-touch pages on the
// CPU) that would otherwise be charged to whichever run of an experiment comes first, usually the
// baseline (on an H200 that made the quick start's baseline ~5x slower than it is). One call of
// each kind the run's policy makes in a generation (deepcache: one full, one partial), or one plain
// call, per batch size in `batches` (the UNet's batch: doubled under classifier-free guidance). With
// `graphs` (model.cuda_graphs) the calls go through them, which captures the graph of each kind of
// call the run makes, so no capture is timed.
void warm_up(models::UNet& net, models::UNetGraphs* graphs, const policies::PolicySettings* policy_settings, int calls,
             const std::vector<int64_t>& batches, const std::vector<int64_t>& sample_shape, torch::ScalarType dtype,
             const torch::Device& device) {
  const auto opts = torch::TensorOptions().device(device);
  for (const int64_t b : batches) {
    std::vector<int64_t> shape = sample_shape;
    shape.insert(shape.begin(), b);
    const torch::Tensor x = torch::zeros(shape, opts.dtype(dtype));
    const torch::Tensor t = torch::full({b}, 500.0f, opts);
    torch::Tensor cond = net.example_conditioning(b, opts);
    if (cond.defined() && cond.is_floating_point()) cond = cond.to(dtype);
    models::StageCache cache;
    const auto call = [&](const models::CallRequest* req, models::CallRecord* record) {
      if (graphs) graphs->forward(x, t, cond, req, &cache);
      else net.forward(x, t, cond, req, &cache, nullptr, record);
    };
    if (!policy_settings) {
      call(nullptr, nullptr);
      continue;
    }
    // The policy's own decisions over one generation; each new kind of call runs once (an adaptive
    // policy sees only the calls that ran: its state is thrown away after).
    const std::unique_ptr<policies::Policy> policy = policy_settings->make();
    policy->begin(b);
    std::set<std::string> seen;
    for (int c = 0; c < calls; ++c) {
      const models::CallRequest req = policy->decide(c, t, x);
      if (!seen.insert(req.kind()).second) continue;
      models::CallRecord record;
      record.computed = models::computed_stages(&req, net.num_skips());
      call(&req, &record);
      policy->observe(c, record, cache);
    }
  }
}


volatile std::sig_atomic_t g_stop_signal = 0;
// The run in progress ("exp: run 3/12 name"), for the handler's message; written between runs
// only, read by the handler (a torn read shows a mixed name, never overruns: the last byte stays 0).
char g_current_run[512] = "";
volatile std::sig_atomic_t g_announce = 0;  // install_stop_handlers: say on stderr what a signal does

void say(const char* text) {  // async-signal-safe
  std::size_t n = 0;
  while (text[n] != '\0') ++n;
  while (n > 0) {
    const ssize_t w = ::write(2, text, n);
    if (w <= 0) return;
    text += w;
    n -= static_cast<std::size_t>(w);
  }
}

// "\n<run>: <before><signal><after>" on stderr, when `run` installed the handlers.
void announce(const char* before, const char* signal, const char* after) {
  if (!g_announce) return;
  for (const char* part : {"\n", g_current_run[0] ? static_cast<const char*>(g_current_run) : "deepcache-bench", before, signal, after})
    say(part);
}

extern "C" void on_stop_signal(int sig) {
  const char* name = sig == SIGINT ? "SIGINT (Ctrl-C)" : sig == SIGTERM ? "SIGTERM" : "SIGUSR1";
  if (g_stop_signal != 0 && sig != SIGUSR1) {  // a second Ctrl-C or TERM: now
    announce(": stopping now on a second ", name,
             ": the batch in progress is lost; the batches committed before it are kept, and the same command resumes from them\n");
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_stop_signal = sig;
  announce(": stop requested (", name,
           sig == SIGUSR1 ? "): the batch in progress finishes and is kept, then the run stops; the same command resumes it\n"
                          : "): the batch in progress finishes and is kept, then the run stops; the same command resumes it. Press "
                            "Ctrl-C again to stop at once (losing that batch)\n");
}

void set_current_run(const std::string& head) {
  const std::size_t n = std::min(head.size(), sizeof(g_current_run) - 1);
  g_current_run[0] = '\0';  // the handler sees "" while the rest changes
  if (n > 1) std::memcpy(g_current_run + 1, head.data() + 1, n - 1);
  g_current_run[n] = '\0';
  if (n > 0) g_current_run[0] = head[0];
}

// The prompts of a text-to-image run (one per sample, sample i from line i + 1), read and checked
// before anything is loaded; none for a single `conditioning.prompt`. `file`: the file's path.
std::vector<std::string> run_prompts(const RunSpec& spec, std::string* file) {
  if (spec.conditioning.prompts.empty()) return {};
  *file = expand_env(spec.conditioning.prompts, "conditioning.prompts");
  std::vector<std::string> prompts = read_prompt_file(*file);
  if (static_cast<int64_t>(prompts.size()) < spec.samples.n)
    throw Error(fmt::format("conditioning.prompts: {} holds {} prompts and samples.n is {}: one sample per prompt (sample i from line i + 1); "
                            "set samples.n to {} or less",
                            *file, prompts.size(), spec.samples.n, prompts.size()));
  return prompts;
}

// What identifies a built model in the ModelCache, with the build's arguments.
struct ModelRequest {
  std::string weights, first_stage_weights, key;
  models::ModelOptions options;
};

ModelRequest model_request(const RunSpec& spec) {
  ModelRequest q;
  q.weights = spec.model.weights == "random" ? "random" : expand_env(spec.model.weights, "model.weights");
  q.first_stage_weights =
      spec.model.first_stage_weights.empty() ? "" : expand_env(spec.model.first_stage_weights, "model.first_stage_weights");
  q.options.image_size = spec.model.image_size;
  q.options.tokenizer = spec.model.tokenizer.empty() ? "" : expand_env(spec.model.tokenizer, "model.tokenizer");
  if (!q.options.tokenizer.empty() && !fs::is_directory(q.options.tokenizer))  // before a model load of a minute
    throw Error(fmt::format("model.tokenizer: {} is not a folder (one with vocab.json and merges.txt)", q.options.tokenizer));
  // The dtype is part of the key: a model cast to fp16 and back would carry rounded weights.
  q.key = fmt::format("{}/{}/{}/{}/{}/{}/{}", spec.model.family, spec.model.preset, q.weights, q.first_stage_weights,
                      q.options.image_size, q.options.tokenizer, spec.model.dtype);
  return q;
}

// The run's model from the cache, built (and its weights loaded, strictly) when the cache holds
// another.
const models::Model& model_for(const RunSpec& spec, ModelCache& mc) {
  const ModelRequest q = model_request(spec);
  if (mc.key != q.key || !mc.model) {
    mc.model.reset();  // free the previous model before building the next
    mc.key.clear();
    mc.model = models::build_model(spec.model.family, spec.model.preset, q.weights, q.first_stage_weights, q.options);
    mc.key = q.key;
    mc.stage_macs.reset();
    mc.warmed.clear();
  }
  return *mc.model;
}

// Samples [first, last) of a run that shard `index` of `count` makes: a contiguous run of whole
// batches of the unsharded run, so that every sample is made in the same batch layout as without
// sharding and the shards together equal the unsharded run bit for bit on one machine
// (docs/experiments.md, "What is reproducible").
std::pair<int64_t, int64_t> shard_range(const RunSpec& spec, int index, int count) {
  const int64_t n = spec.samples.n, batch = spec.samples.batch;
  const int64_t batches = (n + batch - 1) / batch;
  return {std::min(n, batches * index / count * batch), std::min(n, batches * (index + 1) / count * batch)};
}

// A problem found before the first sample, with the runs it stops.
struct Problem {
  std::string message;
  std::vector<std::string> runs;
};

// One line for them all: "run a (name): message", or "N problems ...: run a and 2 more run(s): m1 | m2".
std::string problems_line(const std::vector<Problem>& problems) {
  std::string line;
  for (const auto& pr : problems) {
    std::string who;
    if (!pr.runs.empty()) who = pr.runs.size() == 1 ? pr.runs[0] : fmt::format("{} and {} more run(s)", pr.runs[0], pr.runs.size() - 1);
    line += (line.empty() ? "" : " | ") + (who.empty() ? pr.message : who + ": " + pr.message);
  }
  if (problems.size() > 1) line = fmt::format("{} problems before the first sample, nothing ran: {}", problems.size(), line);
  return line;
}

// The key of a run's metric set (what RunQuality measures once per distinct set).
std::string metrics_key(const RunSpec& spec) {
  const std::string metrics = spec.resolved.contains("metrics") ? spec.resolved["metrics"].dump() : "";
  return fmt::format("metrics {} {} {}", metrics, fmt::join(spec.plan.model.image_shape, "x"), parse_device(spec.device).str());
}

// What a pending run needs of the machine, from its model's and its metrics' measurements.
RunFootprint footprint_of(const RunSpec& spec, const ModelMemory& mm, const MetricMemory& qm, const RunOptions& o, const std::string& label) {
  RunFootprint f;
  f.run = label;
  const auto [first, last] = shard_range(spec, o.shard_index, o.shard_count);
  f.samples = last - first;
  f.batch = spec.samples.batch;
  const double scale = spec.model.dtype == "fp32" ? 1.0 : 0.5;  // fp16 / bf16 halve the UNet's tensors
  f.model_bytes = mm.model_bytes * scale;
  f.call_bytes_per_image = mm.call_bytes_per_image * scale;
  f.call_fixed_bytes = mm.call_fixed_bytes * scale;
  f.host_only = parse_device(spec.device).is_cuda();
  f.metric_model_bytes = qm.model_bytes;
  f.metric_bytes_per_image = qm.bytes_per_image;
  f.record_bytes_per_sample = qm.record_bytes_per_sample;
  f.image_bytes = 1.0;
  for (int64_t d : spec.plan.model.image_shape) f.image_bytes *= static_cast<double>(d);
  f.kept_images = spec.samples.save_images ? f.samples : std::min<int64_t>(f.samples, spec.samples.grid);
  f.method = MemoryPeak::method();
  return f;
}

// What the machine can give: memory, the results folder's free space, the results file's size.
Machine machine_for(const std::string& results_path) {
  Machine m;
  m.memory_usable = static_cast<double>(memory_usable());
  const fs::path folder = fs::path(results_path).has_parent_path() ? fs::path(results_path).parent_path() : fs::path(".");
  m.disk_free = disk_free(folder.string());
  std::error_code ec;
  m.results_size = fs::exists(results_path, ec) ? static_cast<double>(fs::file_size(results_path, ec)) : 0.0;
  return m;
}

// Every input the pending runs of a sweep will need, checked before the first sample, and what
// they will need of the machine: a bad input or a run that cannot fit is one dc::Error listing
// every problem of every run (each distinct input once, with the runs that need it), and nothing
// runs (exit 2); nothing is written either (the caller takes the lock and makes the results
// folder after this). What fails later, while a run samples, is recorded with the run and the
// sweep goes on (exit 1). Each distinct input is checked once: the device and dtype, prompt files
// (read, counted), an explicit tokenizer folder, the metrics' networks and reference statistics
// (RunQuality's own checks, on the run's device, measured on blank images), and every model,
// built and its weights loaded as its run will load them (strictly), and measured
// (harness/footprint.h). The models load last, the first pending run's last, so that it stays in
// the cache for that run: a sweep over one checkpoint loads it once; each further checkpoint is
// loaded once more when its run comes.
// Returns, per pending run id, what it needs of the machine (for the run's log).
std::map<std::string, std::string> preflight(const std::vector<RunSpec>& pending, ModelCache& mc, const std::string& experiment_path,
                                             const RunOptions& o, const std::string& results_path) {
  configure_threads();  // the models run here as in the runs (harness/runtime.h; models/cpu_conv.cpp)
  std::vector<Problem> problems;
  std::map<std::string, std::string> needs;
  std::map<std::string, int> failed;  // input key -> its problem
  std::set<std::string> seen;
  auto label = [](const RunSpec& spec) { return fmt::format("run {} ({})", spec.run_id, spec.name); };
  // Runs `check` for the first run that needs input `key`; later runs of a failed input are added
  // to its problem. A key "" is checked for every run.
  auto check_once = [&](const std::string& key, const RunSpec& spec, const std::function<void()>& check) {
    if (!key.empty() && !seen.insert(key).second) {
      if (auto it = failed.find(key); it != failed.end()) problems[it->second].runs.push_back(label(spec));
      return false;
    }
    std::string message;
    try {
      check();
      return true;
    } catch (const c10::Error& ex) {
      const std::string m = ex.what_without_backtrace();
      message = m.substr(0, m.find('\n'));
    } catch (const Error& ex) {
      message = ex.what();
    }
    if (!key.empty()) failed[key] = static_cast<int>(problems.size());
    problems.push_back({message, {label(spec)}});
    return false;
  };
  std::vector<const RunSpec*> models_to_load;
  std::map<std::string, std::vector<const RunSpec*>> model_runs;  // model key -> the runs of that model
  std::map<std::string, MetricMemory> metric_memory;  // metrics key -> measured
  std::map<std::string, ModelMemory> model_memory;    // model key -> measured
  for (const RunSpec& spec : pending) {
    std::string prompts_file;
    torch::Device device(torch::kCPU);
    if (!check_once("", spec, [&] {
          device = parse_device(spec.device);
          unet_dtype_for(spec.model.dtype, device);
          check_cuda_graphs(spec.model.cuda_graphs, device);
        }))
      continue;
    if (spec.plan.model.conditioning == "text")
      check_once("prompts " + spec.conditioning.prompts + " " + std::to_string(spec.samples.n), spec, [&] { run_prompts(spec, &prompts_file); });
    if (spec.plan.model.conditioning == "text" && !spec.conditioning.prompts.empty())
      prompts_file = expand_env(spec.conditioning.prompts, "conditioning.prompts");
    ModelRequest q;
    if (!check_once("", spec, [&] { q = model_request(spec); })) continue;
    if (model_runs[q.key].empty()) models_to_load.push_back(&spec);
    model_runs[q.key].push_back(&spec);
    if (!q.options.tokenizer.empty())
      check_once("tokenizer " + q.options.tokenizer, spec, [&] { models::ClipTokenizer::from_dir(q.options.tokenizer); });
    const std::string mkey = metrics_key(spec);
    check_once(mkey, spec, [&] { metric_memory[mkey] = measure_metric_memory(spec, device, prompts_file); });
  }
  for (auto it = models_to_load.rbegin(); it != models_to_load.rend(); ++it) {
    const RunSpec& spec = **it;
    const std::string key = model_request(spec).key;
    int64_t largest = 1;
    for (const RunSpec* r : model_runs[key]) {
      const auto [first, last] = shard_range(*r, o.shard_index, o.shard_count);
      largest = std::max<int64_t>(largest, std::min<int64_t>(r->samples.batch, last - first));
    }
    if (!check_once("model " + key, spec, [&] { model_memory[key] = measure_model_memory(model_for(spec, mc), mc.stage_macs, largest); }))
      for (std::size_t i = 1; i < model_runs[key].size(); ++i) problems.back().runs.push_back(label(*model_runs[key][i]));
  }
  if (problems.empty()) {  // what the runs need of the machine, once every input is good
    std::vector<RunFootprint> footprints;
    for (const RunSpec& spec : pending)
      footprints.push_back(footprint_of(spec, model_memory[model_request(spec).key], metric_memory[metrics_key(spec)], o, label(spec)));
    const Machine m = machine_for(results_path);
    for (const auto& msg : check_resources(footprints, m, results_path)) problems.push_back({msg, {}});
    for (std::size_t i = 0; i < footprints.size(); ++i) needs[pending[i].run_id] = memory_note(footprints[i], m);
  }
  if (problems.empty()) return needs;
  throw Error(fmt::format("{}: {}", experiment_path, problems_line(problems)));
}

// The cost of each stage of the run's UNet (metrics::StageMacs), counted on the CPU in fp32 (a count
// does not depend on the dtype) before the model moves to the run's device, once per model
// (ModelCache; the resource check may have made it).
const metrics::StageMacs& stage_macs_of(models::UNet& net, ModelCache& mc) {
  if (!mc.stage_macs) {
    net.to(torch::kCPU, torch::kFloat);
    mc.stage_macs = metrics::stage_macs(net);
  }
  return *mc.stage_macs;
}

// The MACs per image of each model call of one generation, both counts, from the stages it computed.
void batch_call_macs(const metrics::StageMacs& m, BatchRecord& rec) {
  rec.call_macs.clear();
  rec.call_macs_all.clear();
  for (const auto& computed : rec.computed) {
    const metrics::CallMacs c = computed.empty() ? metrics::CallMacs{} : m.of(computed);
    rec.call_macs.push_back(c.total);
    rec.call_macs_all.push_back(c.all);
  }
}

// The run's MACs from the calls it made: per call, averaged over its images (every count is an
// integer; the sums are exact in long double, so a policy deciding alike for every batch gets its
// per-call counts exactly), then the average over the calls, the full call's, and the mean of the
// calls that computed less than everything ("partial"; 0 when none did).
struct MacTotals {
  std::vector<long double> paper, all;  // per call: sum over batches of rows x MACs
  long double rows = 0;
  void add(const BatchRecord& rec) {
    if (paper.empty()) paper.assign(rec.call_macs.size(), 0), all.assign(rec.call_macs.size(), 0);
    if (rec.call_macs.size() != paper.size()) throw Error("a batch record's model calls differ from the run's (damaged journal?)");
    for (std::size_t c = 0; c < paper.size(); ++c) {
      paper[c] += static_cast<long double>(rec.rows) * rec.call_macs[c];
      all[c] += static_cast<long double>(rec.rows) * rec.call_macs_all[c];
    }
    rows += rec.rows;
  }
};

void finish_run_macs(const metrics::StageMacs& m, const MacTotals& totals, RunResult& r) {
  const metrics::CallMacs full = m.full();
  r.macs_full = full.total;
  r.macs_full_all = full.all;
  r.call_macs.clear();
  r.call_macs_all.clear();
  for (std::size_t c = 0; c < totals.paper.size() && totals.rows > 0; ++c) {
    r.call_macs.push_back(static_cast<double>(totals.paper[c] / totals.rows));
    r.call_macs_all.push_back(static_cast<double>(totals.all[c] / totals.rows));
  }
  const auto mean = [](const std::vector<double>& v, const std::function<bool(std::size_t)>& keep) {
    double sum = 0;
    int n = 0;
    for (std::size_t c = 0; c < v.size(); ++c)
      if (keep(c)) sum += v[c], ++n;
    return n ? sum / n : 0.0;
  };
  const auto partial = [&](std::size_t c) { return r.call_macs[c] < r.macs_full; };
  r.macs_partial = mean(r.call_macs, partial);
  r.macs_partial_all = mean(r.call_macs_all, partial);
  r.macs_step_average = r.call_macs.empty() ? r.macs_full : mean(r.call_macs, [](std::size_t) { return true; });
  r.macs_step_average_all = r.call_macs.empty() ? r.macs_full_all : mean(r.call_macs_all, [](std::size_t) { return true; });
}

// A baseline made earlier in this process: what a later run of its settings is timed against.
struct BaselineTiming {
  double s_per_image = 0.0, macs_per_image = 0.0, spread = -1.0;
};

double macs_per_image_all(const RunResult& r) { return r.macs_step_average_all * static_cast<double>(r.step_time_ms.size()); }

BaselineTiming baseline_timing(const RunResult& r) {
  const TimingSpread sp = timing_spread(r);
  return {r.samples ? r.seconds / static_cast<double>(r.samples) : 0.0, macs_per_image_all(r), sp.relative};
}

// What harness/timing_check.h checks of a run just made, against `base` when there is one.
TimingFacts timing_facts(const RunResult& r, const BaselineTiming* base) {
  TimingFacts f = record_facts(r);
  const BaselineTiming own = baseline_timing(r);
  f.spread = own.spread;
  f.is_baseline = r.spec.baseline;
  if (base && base->s_per_image > 0 && own.s_per_image > 0 && own.macs_per_image > 0) {
    f.speedup = base->s_per_image / own.s_per_image;
    f.mac_bound = base->macs_per_image / own.macs_per_image;
    f.spread = std::max(f.spread, base->spread);
  }
  return f;
}

}  // namespace

void install_stop_handlers() {
  for (int sig : {SIGINT, SIGTERM, SIGUSR1}) {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    ::sigaction(sig, &sa, nullptr);
  }
  g_announce = 1;
}

bool stop_requested() { return g_stop_signal != 0; }

void request_stop(int signal) { g_stop_signal = signal; }

const char* stop_signal_name() {
  switch (g_stop_signal) {
    case SIGINT: return "SIGINT (Ctrl-C)";
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    case 0: return "nothing";
    default: return "a signal";
  }
}

namespace {

// What the run keeps of its finished batches (made now or replayed from the journal): times, what
// the calls computed and their MACs, labels, the images it stores or draws its grid from, the first
// batch's similarity maps.
struct KeptBatches {
  KeptBatches(const RunSpec& s, const metrics::StageMacs& m, RunResult& result) : spec(s), stage_macs(m), r(result) {}
  const RunSpec& spec;
  const metrics::StageMacs& stage_macs;
  RunResult& r;
  MacTotals macs;
  std::vector<int64_t> labels;
  std::vector<torch::Tensor> images;
  int64_t kept_for_grid = 0;
  std::map<std::string, torch::Tensor> first_similarity;

  bool keep_images() const { return spec.samples.save_images || kept_for_grid < spec.samples.grid; }
  void take(BatchRecord& rec) {
    for (std::size_t c = 0; c < r.step_time_ms.size() && c < rec.step_time_ms.size(); ++c) r.step_time_ms[c] += rec.step_time_ms[c];
    r.is_full = rec.is_full;
    r.computed = rec.computed;
    batch_call_macs(stage_macs, rec);
    macs.add(rec);
    r.seconds += rec.seconds;
    r.batch_seconds.push_back(rec.seconds);
    r.batch_rows.push_back(rec.rows);
    r.metric_seconds += rec.metric_seconds;
    if (rec.labels.defined()) {
      const torch::Tensor l = rec.labels.to(torch::kInt64).contiguous();
      labels.insert(labels.end(), l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel());
    }
    if (rec.images.defined() && keep_images()) {
      images.push_back(rec.images);
      kept_for_grid += rec.rows;
    }
    if (rec.first == 0) first_similarity = rec.similarity;
  }
};

// The run's model on its device (random init is seeded, so shards and resumed runs see the same
// network), what the run records of it and of the machine, and what each of its stages costs.
const models::Model& prepare_model(const RunSpec& spec, ModelCache& mc, const torch::Device& device, torch::ScalarType unet_dtype,
                                   RunResult& r) {
  const models::Model& model = model_for(spec, mc);
  models::UNet& net = *model.unet;
  r.weights_note = model.weights_note;
  stage_macs_of(net, mc);  // on the CPU in fp32, before the move
  r.stage_names.clear();
  for (int s = 0; s < models::num_stages(net.num_skips()); ++s) r.stage_names.push_back(net.stage_name(s));
  net.to(device, unet_dtype);  // the UNet in model.dtype; samplers, first stage and text encoder stay fp32
  if (model.first_stage) model.first_stage->to(device);
  if (model.cond_stage) model.cond_stage->to(device);
  configure_threads();
  r.thread_settings = thread_settings();
  r.cpu = cpu_description();
  r.cpu_kernels = cpu_kernels();
  return model;
}

// The untimed warm-up before the first batch (warm_up above), once per device, UNet batch and
// cache settings in a process; with CUDA graphs, every graph the run replays (a last, smaller
// batch has graphs of its own).
void warm_up_run(const RunSpec& spec, const policies::PolicySettings* policy, const models::Model& model, ModelCache& mc,
                 models::UNetGraphs* graphs, int64_t total, int64_t guided, torch::ScalarType unet_dtype, const torch::Device& device,
                 RunResult& r) {
  if (total <= 0) return;
  const int calls = spec.plan.calls.num_calls();
  const int64_t first_rows = std::min<int64_t>(spec.samples.batch, total);
  const std::string key = fmt::format("{} b={} cache={} {}", r.device, first_rows * guided, spec.resolved.value("cache", nlohmann::json()).dump(),
                                      r.policy_facts.dump());  // a calibrated policy's requests follow its calibration
  if (graphs) {
    std::vector<int64_t> sizes{first_rows * guided};
    if (total > spec.samples.batch && total % spec.samples.batch != 0) sizes.push_back(total % spec.samples.batch * guided);
    warm_up(*model.unet, graphs, policy, calls, sizes, spec.plan.model.sample_shape, unet_dtype, device);
    mc.warmed = key;
    r.notes.push_back(fmt::format("CUDA graphs: {} captured before the first batch", graphs->captures()));
  } else if (mc.warmed != key) {
    mc.warmed = key;
    warm_up(*model.unet, nullptr, policy, calls, {first_rows * guided}, spec.plan.model.sample_shape, unet_dtype, device);
  }
}

// The run's caching policy (nullptr: none). One that measures the uncached network first
// (PolicySettings::calibration) gets its calibration here: untimed generations of the run's first
// samples (every shard measures the same ones), their time and result in the run's policy facts.
std::shared_ptr<const policies::PolicySettings> run_policy(const RunSpec& spec, BatchSampler::Parts parts, const NoiseSource& noise,
                                                         RunResult& r) {
  if (!spec.cache.enabled) return nullptr;
  const auto calibration = spec.cache.settings->calibration();
  if (!calibration) return spec.cache.settings;
  parts.log = std::make_shared<DenoiserLog>();
  parts.denoiser = cond_denoiser(parts.model.unet, calibration->measuring(), parts.log);
  BatchSampler measure(std::move(parts));
  NoiseSource fresh = noise.fresh();
  const int64_t n = std::min<int64_t>(calibration->samples(), spec.samples.n);  // the run's samples only (its prompts, its labels)
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t done = 0; done < n; done += spec.samples.batch) measure.sample(done, std::min<int64_t>(spec.samples.batch, n - done), fresh);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto calibrated = calibration->calibrated(seconds);
  r.policy_facts = calibrated->facts();
  r.notes.push_back(fmt::format("calibration: {} samples of the uncached network measured in {:.3g} s (not in the run's time; "
                                "cache.calibration takes the stored result back)",
                                n, seconds));
  return calibrated;
}

// The batches an interrupted process committed to the run's journal, replayed while they continue
// the slice [first, first + total): returns the samples they hold.
int64_t replay_journal(const RunSpec& spec, int64_t first, int64_t total, const RunJournal& journal, RunQuality& quality,
                       KeptBatches& kept) {
  int dropped = 0;
  auto records = journal.load(first / spec.samples.batch, &dropped);
  if (dropped > 0) kept.r.notes.push_back(fmt::format("{} batch records of another configuration or after a gap were discarded", dropped));
  int64_t done = 0;
  for (auto& rec : records) {
    const int64_t expect = std::min<int64_t>(spec.samples.batch, total - done);
    if (rec.first != first + done || rec.rows != expect) break;  // another slice: made again
    quality.apply(rec.quality, rec.first);
    kept.take(rec);
    done += rec.rows;
  }
  return done;
}

// One batch made into its record: sampled, its metric inputs measured and applied, its similarity
// maps (first batch).
BatchRecord make_batch(const RunSpec& spec, int64_t start, int64_t b, bool tap, BatchSampler& sampler, NoiseSource& noise,
                       RunQuality& quality, TapCollector& taps, PlainReference* plain, KeptBatches& kept) {
  RunResult& r = kept.r;
  BatchRecord rec;
  rec.index = start / spec.samples.batch;
  rec.first = start;
  rec.rows = b;
  const ProcessUsage before = process_usage();
  Sampled sampled = sampler.sample(start, b, noise, tap);
  r.usage += process_usage() - before;
  r.usage_seconds += sampled.seconds;
  const auto t1 = std::chrono::steady_clock::now();
  rec.seconds = sampled.seconds;
  rec.step_time_ms = std::move(sampled.step_ms);
  rec.is_full = std::move(sampled.is_full);
  rec.computed = std::move(sampled.computed);
  rec.labels = sampled.labels;
  rec.quality = quality.measure(sampled.images, sampled.prompts, plain ? plain->images(start, b) : torch::Tensor());
  quality.apply(rec.quality, rec.first);  // the networks and the accumulators: metric_seconds
  rec.metric_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  if (kept.keep_images()) rec.images = sampled.images;
  if (tap) {  // similarity maps of the taps that ran at every call
    std::string skipped;
    rec.similarity = taps.finish(spec.plan.calls.num_calls(), &skipped);
    if (!skipped.empty())
      r.notes.push_back(fmt::format("no similarity map for {}: these taps do not run at every model call (the caching policy "
                                    "skips their blocks in some calls); the uncached baseline has them",
                                    skipped));
  }
  return rec;
}

// The batch loop: the journal's batches replayed, the others made and committed one by one; a stop
// request between batches throws RunInterrupted (what was committed stays).
void run_batches(const RunSpec& spec, int64_t first, int64_t total, BatchSampler& sampler, NoiseSource& noise, RunQuality& quality,
                 TapCollector& taps, PlainReference* plain, KeptBatches& kept, const RunJournal* journal, const ProgressFn& progress) {
  RunResult& r = kept.r;
  const int calls = spec.plan.calls.num_calls();
  int64_t done = 0;
  if (journal) {
    done = replay_journal(spec, first, total, *journal, quality, kept);
    r.resumed_samples = done;
    if (done > 0 && progress) progress({done, total, done});
  }
  if (progress) sampler.on_call([&](int call) { progress({done, total, r.resumed_samples, call + 1, calls}); });
  r.cores = online_cores();
  r.load_start = load_average();
  for (; done < total;) {
    const int64_t b = std::min<int64_t>(spec.samples.batch, total - done);
    const bool tap = spec.similarity.enabled && first == 0 && done == 0;
    BatchRecord rec = make_batch(spec, first + done, b, tap, sampler, noise, quality, taps, plain, kept);
    if (journal) journal->append(rec);
    kept.take(rec);
    done += b;
    if (progress) progress({done, total, r.resumed_samples});
    if (done < total && stop_requested())
      throw RunInterrupted(fmt::format("stopped by {} after sample {} of {} (batches up to there are kept; the same command resumes)",
                                       stop_signal_name(), first + done, first + total));
  }
  r.load_end = load_average();
  sampler.on_call(nullptr);
}

// timing.repeats: the slice's first batch sampled again, timed as the batches are (the same noise:
// a fresh source; images discarded). After the committed batches: a stop request ends the repeats
// and keeps the run.
void time_repeats(const RunSpec& spec, int64_t first, int64_t total, BatchSampler& sampler, const NoiseSource& noise, RunResult& r,
                  const ProgressFn& progress) {
  if (spec.timing.repeats <= 1 || total <= 0) return;
  const int calls = spec.plan.calls.num_calls();
  const int64_t b = std::min<int64_t>(spec.samples.batch, total);
  const int repeats = spec.timing.repeats - 1;
  for (int i = 1; i <= repeats; ++i) {
    if (stop_requested()) {
      r.notes.push_back(fmt::format("timing.repeats: stopped by {} after {} of {} repeats (the run's batches are all kept)",
                                    stop_signal_name(), i - 1, repeats));
      break;
    }
    NoiseSource fresh = noise.fresh();
    if (progress) {
      progress({total, total, r.resumed_samples, -1, calls, i, repeats});
      sampler.on_call([&, i](int call) { progress({total, total, r.resumed_samples, call + 1, calls, i, repeats}); });
    }
    const Sampled again = sampler.sample(first, b, fresh);
    r.repeat_seconds.push_back(again.seconds);
    r.repeat_rows.push_back(b);
  }
  sampler.on_call(nullptr);
  const TimingSpread sp = timing_spread(r);
  if (sp.relative >= 0)
    r.notes.push_back(fmt::format("timing.repeats: {:.4g} s/image (mean), spread +/-{:.1f}% over {} timings of a full batch "
                                  "(the run's batches and {} repeats of its first)",
                                  sp.mean, 100 * sp.relative, sp.count, r.repeat_seconds.size()));
}

// What the run computed and cost (MACs from the calls made; the calls that computed everything, the
// last batch's: a policy that knows its calls ahead decides alike for every batch), its images and
// grid, its quality (values when this process made every sample; a shard's come from merging), the
// first batch's similarity maps with the fraction of other calls above the threshold.
void finish_run(const RunSpec& spec, int64_t first, int64_t total, RunQuality& quality, KeptBatches& kept) {
  RunResult& r = kept.r;
  const int calls = spec.plan.calls.num_calls();
  finish_run_macs(kept.stage_macs, kept.macs, r);
  r.full_calls.clear();
  for (std::size_t c = 0; c < r.is_full.size(); ++c)
    if (r.is_full[c]) r.full_calls.push_back(static_cast<int>(c));
  if (r.is_full.empty()) r.full_calls = spec.plan.full_calls;
  r.samples = total;
  r.first_sample = first;
  if (spec.plan.model.conditioning == "class") r.quality_arrays["class_labels"] = torch::tensor(kept.labels, torch::kInt64);
  const torch::Tensor all = kept.images.empty() ? torch::Tensor() : torch::cat(kept.images);
  quality.finish(r, first == 0 && total == spec.samples.n);
  if (spec.samples.save_images && all.defined()) r.images = all;
  if (spec.samples.grid > 0 && all.defined()) {
    const int64_t g = std::min<int64_t>(spec.samples.grid, all.size(0));
    r.grid = image::make_grid(all.slice(0, 0, g), static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(g)))));
  }
  for (const auto& [tap, m] : kept.first_similarity) {
    r.similarity[tap] = m;
    const torch::Tensor above = (m > spec.similarity.threshold).to(torch::kFloat64);
    r.similarity_fraction[tap] = (above.sum(1) - 1) / std::max(calls - 1, 1);  // other calls only
  }
}

}  // namespace

RunResult execute_run(const RunSpec& spec, int64_t first, int64_t count, const ProgressFn& progress, ModelCache* models,
                      const RunJournal* journal) {
  RunResult r;
  r.spec = spec;
  r.started_at = now_iso();
  r.torch_version = TORCH_VERSION;
  r.git_revision = DC_GIT_DESCRIBE;
  const int calls = spec.plan.calls.num_calls();
  const torch::Device device = parse_device(spec.device);
  r.device = device.is_cuda() ? "cuda" : "cpu";
  const torch::ScalarType unet_dtype = unet_dtype_for(spec.model.dtype, device);  // unsupported: one error, nothing runs
  check_cuda_graphs(spec.model.cuda_graphs, device);
  // 1. Inputs checked before anything is loaded or sampled: the prompts (text families), the metric
  // inputs and networks (a missing file must not cost a whole run).
  std::string prompts_file;
  std::vector<std::string> prompts = spec.plan.model.conditioning == "text" ? run_prompts(spec, &prompts_file) : std::vector<std::string>{};
  if (static_cast<int64_t>(prompts.size()) > spec.samples.n && first == 0)
    r.notes.push_back(fmt::format("the first {} of the {} prompts of {}", spec.samples.n, prompts.size(), prompts_file));
  RunQuality quality(spec, device, prompts_file);
  r.policy_facts = spec.plan.policy_facts;
  // 2. The model on its device; the conditioner (text: the negative prompt encoded, which checks the tokenizer).
  ModelCache local;
  ModelCache& mc = models ? *models : local;
  const models::Model& model = prepare_model(spec, mc, device, unet_dtype, r);
  torch::NoGradGuard no_grad;
  const Conditioner conditioner(spec, model, device, std::move(prompts));
  if (spec.plan.model.conditioning == "text" && !model.tokenizer_path.empty()) r.notes.push_back("tokenizer " + model.tokenizer_path);
  // 3. The sampling parts: the denoiser asking the run's caching policy per call (none: the plain
  // network), the noise of samples.seed_mode, per-call timing, the similarity taps.
  const int64_t total = count < 0 ? spec.samples.n - first : std::min<int64_t>(count, spec.samples.n - first);
  sampling::CallSchedule schedule = spec.plan.calls;
  sampling::attach_alphas(schedule, sampling::alphas_cumprod(spec.plan.model.schedule));
  r.step_time_ms.assign(calls, 0.0);
  const auto log = std::make_shared<DenoiserLog>();
  const auto graphs = spec.model.cuda_graphs ? std::make_shared<models::UNetGraphs>(model.unet) : nullptr;
  NoiseSource noise(spec, model, calls, device);
  const std::unique_ptr<CallTimer> timer = make_call_timer(device);  // steady_clock on the CPU, CUDA events on a GPU
  r.timing_clock = timer->clock();
  TapCollector taps(spec.plan.taps, spec.similarity.samples, device);
  const auto policy = run_policy(spec, {spec, model, schedule, conditioner, nullptr, nullptr, *timer, taps, device}, noise, r);
  BatchSampler sampler({spec, model, schedule, conditioner, cond_denoiser(model.unet, policy, log, graphs), log, *timer, taps, device});
  warm_up_run(spec, policy.get(), model, mc, graphs.get(), total, conditioner.guided(), unet_dtype, device, r);
  // 4. The batches, the repeats, what the run made.
  KeptBatches kept(spec, *mc.stage_macs, r);
  // metrics.fidelity: the plain run's images of this slice (stored, or made again per batch).
  const auto plain = PlainReference::make(spec, first, total, {spec, model, schedule, conditioner, nullptr, nullptr, *timer, taps, device}, noise);
  if (plain) r.notes.push_back("fidelity: against " + plain->source());
  run_batches(spec, first, total, sampler, noise, quality, taps, plain.get(), kept, journal, progress);
  time_repeats(spec, first, total, sampler, noise, r, progress);
  if (graphs)
    r.notes.push_back(fmt::format("CUDA graphs: {} captured in all, {} calls replayed; {} calls ran eagerly (requests the graphs do not "
                                  "serve, such as the released LDM pass; the calls with similarity taps)",
                                  graphs->captures(), graphs->replays(), graphs->eager()));
  r.timesteps = schedule.timesteps();
  finish_run(spec, first, total, quality, kept);
  r.finished_at = now_iso();
  return r;
}

std::string journal_identity(const RunSpec& spec) {
  // timing.repeats changes no batch: a run resumed with other repeats keeps its batches.
  nlohmann::json settings = spec.resolved;
  settings.erase("timing");
  std::string identity = settings.dump();
  if (!spec.conditioning.prompts.empty()) {
    try {
      identity += "\nprompts sha256 " + metrics::sha256_file(expand_env(spec.conditioning.prompts, "conditioning.prompts"));
    } catch (const Error&) {
      // unreadable or unset: execute_run reports it, naming the file
    }
  }
  return identity;
}

std::string default_results_path(const ExperimentSpec& e, const RunOptions& o) {
  std::string p = o.results_path.empty() ? fmt::format("results/{}/{}.h5", e.name, e.name) : o.results_path;
  if (o.shard_count > 1 && o.results_path.empty())
    p = fmt::format("results/{}/{}.shard-{}-of-{}.h5", e.name, e.name, o.shard_index, o.shard_count);
  return p;
}

// The runs `--only` selects (all without it); dc::Error for an --only that matches none.
std::vector<const RunSpec*> select_runs(const ExperimentSpec& e, const RunOptions& o) {
  if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count)
    throw Error(fmt::format("--shard {}/{}: expected i/n with 0 <= i < n", o.shard_index, o.shard_count));
  auto matches = [](const RunSpec& r, const std::string& id) { return r.run_id.rfind(id, 0) == 0 || r.name == id; };
  std::vector<const RunSpec*> selected;
  for (const auto& r : e.runs)
    if (o.only.empty() || std::any_of(o.only.begin(), o.only.end(), [&](const std::string& id) { return matches(r, id); }))
      selected.push_back(&r);
  for (const auto& id : o.only)
    if (std::none_of(selected.begin(), selected.end(), [&](const RunSpec* r) { return matches(*r, id); }))
      throw Error(fmt::format("{}: --only {}: no run has this id or name (see `deepcache-bench plan`)", e.path, id));
  return selected;
}

// The console's account of a run in progress: a resume line, then per batch a line (a terminal's
// status line, at most 5 times a second, with the model calls of the batch), per timing repeat a line.
ProgressFn progress_printer(const std::string& head, std::ostream& log, bool tty) {
  const auto t0 = std::chrono::steady_clock::now();
  auto last_line = std::make_shared<std::chrono::steady_clock::time_point>();
  return [=, &log](const Progress& p) {
    std::chrono::steady_clock::time_point& last = *last_line;
    if (p.repeat == 0 && p.call < 0 && p.done == p.resumed) {
      log << fmt::format("{}: resuming after sample {} of {} (the journal of an interrupted run)\n", head, p.done, p.total);
      return;
    }
    if (p.call >= 0 && !tty) return;  // within a batch: a terminal's status line only, at most 5 times a second
    const auto now = std::chrono::steady_clock::now();
    if (p.call >= 0 && now - last < std::chrono::milliseconds(200)) return;
    last = now;
    std::string line;
    if (p.repeat > 0) {  // timing.repeats: a line per repeat (and its calls on a terminal)
      line = fmt::format("{}: timing repeat {}/{} of the first batch (timing.repeats)", head, p.repeat, p.repeats);
      if (p.call >= 0) line += fmt::format(", model call {}/{}", p.call, p.calls);
    } else {
      const double el = std::chrono::duration<double>(now - t0).count();
      const double rate = el > 0 ? (p.done - p.resumed) / el : 0.0;
      line = fmt::format("{}: samples {}/{}", head, p.done, p.total);
      if (p.call >= 0) line += fmt::format(", batch: model call {}/{}", p.call, p.calls);
      if (rate > 0) line += fmt::format(", {:.2f} images/s, ETA {:.0f} s", rate, (p.total - p.done) / rate);
    }
    if (tty) log << "\r" << line << "\x1b[K" << std::flush;
    else log << line << "\n";
  };
}

// One run made and committed (or recorded as failed; a storage error stops the sweep, an interrupt
// ends it): what the summary counts.
void make_run(const RunSpec& spec, const RunOptions& o, const std::string& results_path, const std::string& head, ResultsStore& store,
              ModelCache& models, std::map<std::string, BaselineTiming>& baselines, std::ostream& log, bool tty, RunSummary& s) {
  const auto [first, last] = shard_range(spec, o.shard_index, o.shard_count);
  const ProgressFn progress = progress_printer(head, log, tty);
  const std::string key = result_key(spec.run_id, o.shard_index, o.shard_count);
  const RunJournal journal(journal_folder(results_path, key), journal_identity(spec), spec.samples.batch);
  RunResult result;
  try {
    result = execute_run(spec, first, last - first, progress, &models, &journal);
    result.shard_index = o.shard_index;
    result.shard_count = o.shard_count;
    if (tty) log << "\n";
    log << fmt::format("{}: done in {:.1f}s ({:.3f} s/image, {:.2f} G MACs/call)\n", head, result.seconds,
                       result.samples ? result.seconds / result.samples : 0.0, result.macs_step_average / 1e9);
    for (const auto& note : result.notes) log << head << ": note: " << note << "\n";
    const std::string group = baseline_key(spec.resolved.dump());
    if (spec.baseline) baselines[group] = baseline_timing(result);
    const auto base = baselines.find(group);
    const TimingFacts facts = timing_facts(result, base == baselines.end() || spec.baseline ? nullptr : &base->second);
    if (facts.speedup > 0)
      log << fmt::format("{}: speedup {:.2f}x over the baseline; every multiply-accumulate allows {:.2f}x\n", head, facts.speedup,
                         facts.mac_bound);
    for (const auto& flag : timing_flags(facts)) log << head << ": warning: " << flag << "\n";
    store.commit(result);
    journal.remove();
    if (result.grid.defined()) {
      const std::string png = (fs::path(results_path).parent_path() / fmt::format("grid_{}.png", key)).string();
      image::write_png(png, result.grid);
    }
    ++s.complete;
  } catch (const StorageError& ex) {
    // The disk refused a write (full, an I/O error, read-only) or the results file was replaced:
    // the sweep stops (exit 2). The results file is as the last commit left it and this run's
    // finished batches stay in its journal: the same command goes on from there.
    if (tty) log << "\n";
    throw StorageError(fmt::format("run {} ({}): {}; the run's finished batches stay in its journal", spec.run_id, spec.name, ex.what()));
  } catch (const RunInterrupted& ex) {
    if (tty) log << "\n";
    log << head << ": interrupted: " << ex.what() << "\n";
    s.interrupted = true;
  } catch (const std::exception& ex) {
    if (tty) log << "\n";
    std::string msg = ex.what();
    if (const auto* c10e = dynamic_cast<const c10::Error*>(&ex)) msg = c10e->what_without_backtrace();
    log << head << ": FAILED: " << msg << "\n";
    RunResult failed;
    failed.spec = spec;
    failed.status = "failed";
    failed.shard_index = o.shard_index;
    failed.shard_count = o.shard_count;
    failed.error = msg;
    failed.started_at = failed.finished_at = now_iso();
    store.commit(failed);
    ++s.failed;
  }
}

RunSummary run_experiment(const ExperimentSpec& e, const RunOptions& o, std::ostream& log, bool tty) {
  const std::vector<const RunSpec*> selected = select_runs(e, o);
  RunSummary s;
  s.results_path = default_results_path(e, o);
  // Everything is checked before anything is written: a sweep refused here leaves no folder, lock
  // or file behind. The statuses are read again under the lock (another process may have
  // committed runs in between); runs that became pending then are checked too.
  // The schema is checked first: never replace someone else's HDF5 file.
  std::map<std::string, std::string> status = stored_statuses(s.results_path);
  ModelCache own_models;
  ModelCache& models = o.models ? *o.models : own_models;
  std::map<std::string, BaselineTiming> baselines;  // baseline_key -> the baseline made in this process
  auto pending_of = [&](const std::map<std::string, std::string>& st) {
    std::vector<RunSpec> specs, pending;
    for (const RunSpec* r : selected) {
      RunSpec spec = *r;
      if (!o.device.empty()) spec.device = o.device;
      spec.results_path = s.results_path;
      auto it = st.find(result_key(spec.run_id, o.shard_index, o.shard_count));
      if (it == st.end() || it->second != "complete") pending.push_back(spec);
      specs.push_back(std::move(spec));
    }
    return std::make_pair(specs, pending);
  };
  std::vector<RunSpec> specs, pending;
  std::tie(specs, pending) = pending_of(status);
  std::map<std::string, std::string> needs = preflight(pending, models, e.path, o, s.results_path);
  const WriterLock lock(s.results_path, "run");  // one writer per results file (exit 2 for a second)
  ResultsStore store(s.results_path, e.name, e.description);
  {  // a killed writer's grid PNGs half-written (under the lock: no live writer has one of these keys)
    const fs::path folder = fs::path(s.results_path).has_parent_path() ? fs::path(s.results_path).parent_path() : fs::path(".");
    for (const RunSpec* r : selected)
      remove_temporaries(folder.string(), fmt::format("grid_{}.png.tmp.", result_key(r->run_id, o.shard_index, o.shard_count)));
  }
  if (auto now = store.statuses(); now != status) {
    std::set<std::string> checked;
    for (const auto& p : pending) checked.insert(p.run_id);
    status = now;
    std::tie(specs, pending) = pending_of(status);
    std::vector<RunSpec> unchecked;
    for (const auto& p : pending)
      if (!checked.count(p.run_id)) unchecked.push_back(p);
    for (auto& [id, note] : preflight(unchecked, models, e.path, o, s.results_path)) needs[id] = note;
  }
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const RunSpec& spec = specs[i];
    const std::string head = fmt::format("[run {}/{}] {} {}", i + 1, specs.size(), spec.run_id, describe_run(spec));
    auto it = status.find(result_key(spec.run_id, o.shard_index, o.shard_count));
    if (it != status.end() && it->second == "complete") {
      log << head << ": complete, skipped\n";
      // A process killed between the run's commit and the removal of its journal left it behind.
      RunJournal(journal_folder(s.results_path, it->first), "", spec.samples.batch).remove();
      ++s.skipped;
      continue;
    }
    set_current_run(head);
    for (const auto& w : spec.plan.warnings) log << head << ": warning: " << w << "\n";
    if (auto it = needs.find(spec.run_id); it != needs.end()) log << head << ": " << it->second << "\n";
    if (stop_requested()) {
      log << head << ": not started: stopped by " << stop_signal_name() << "; the same command goes on from here\n";
      s.interrupted = true;
      break;
    }
    make_run(spec, o, s.results_path, head, store, models, baselines, log, tty, s);
    if (s.interrupted) break;
  }
  return s;
}

std::vector<std::string> forget_runs(const ExperimentSpec& e, const RunOptions& o, const std::vector<std::string>& which) {
  const std::string path = default_results_path(e, o);
  if (!fs::exists(path)) throw Error(fmt::format("--forget: {} does not exist (nothing stored for experiment {})", path, e.name));
  const WriterLock lock(path, "run --forget");
  ResultsStore store(path, e.name, e.description);
  const auto stored = store.read_all();
  std::set<std::string> keys;
  for (const auto& w : which) {
    std::set<std::string> ids;
    for (const auto& r : stored)
      if (!w.empty() && (r.run_id.rfind(w, 0) == 0 || r.name == w || r.key == w)) ids.insert(r.run_id);
    if (ids.empty()) {
      std::string known;
      for (const auto& r : stored) known += (known.empty() ? "" : ", ") + r.key + " (" + r.status + ")";
      throw Error(fmt::format("{}: --forget {}: no stored run has this id (prefix) or name (stored: {})", path, w, known));
    }
    if (ids.size() > 1) {
      std::string list;
      for (const auto& id : ids) list += (list.empty() ? "" : ", ") + id;
      throw Error(fmt::format("{}: --forget {}: matches {} runs ({}); give more of the id", path, w, ids.size(), list));
    }
    for (const auto& r : stored)  // the run and every shard result of it
      if (r.run_id == *ids.begin()) keys.insert(r.key);
  }
  store.forget(keys);
  for (const auto& k : keys) RunJournal(journal_folder(path, k), "", 1).remove();
  return {keys.begin(), keys.end()};
}

}  // namespace dc::harness
