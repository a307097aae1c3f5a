#include "harness/report.h"


#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/io_ops.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/image_io.h"
#include "models/call_plan.h"
#include "harness/config.h"
#include "harness/hdf5.h"
#include "harness/policies/policy.h"
#include "harness/results_codec.h"
#include "harness/results_store.h"
#include "harness/timing_check.h"
#include "metrics/accumulators.h"
#include "metrics/fid.h"
#include "metrics/npz.h"
#include "models/registry.h"

namespace fs = std::filesystem;

namespace dc::harness {

TimingSpread timing_spread(const std::vector<double>& batch_seconds, const std::vector<double>& batch_rows,
                           const std::vector<double>& repeat_seconds, const std::vector<double>& repeat_rows) {
  TimingSpread out;
  std::vector<double> seconds, rows;
  auto add = [&](const std::vector<double>& s, const std::vector<double>& r) {
    if (s.size() != r.size()) return;
    seconds.insert(seconds.end(), s.begin(), s.end());
    rows.insert(rows.end(), r.begin(), r.end());
  };
  add(batch_seconds, batch_rows);
  add(repeat_seconds, repeat_rows);
  if (seconds.empty()) return out;
  const double full = *std::max_element(rows.begin(), rows.end());
  if (!(full > 0)) return out;
  std::vector<double> per_image;
  for (std::size_t i = 0; i < seconds.size(); ++i)
    if (rows[i] == full) per_image.push_back(seconds[i] / full);
  if (!batch_seconds.empty() && batch_seconds.size() == batch_rows.size() && batch_rows[0] == full) out.first = batch_seconds[0] / full;
  double mean = 0, var = 0;
  for (double v : per_image) mean += v / per_image.size();
  out.mean = mean;
  out.count = static_cast<int>(per_image.size());
  std::vector<double> sorted = per_image;
  std::sort(sorted.begin(), sorted.end());
  const std::size_t n = sorted.size();
  out.median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  if (per_image.size() < 2 || !(mean > 0)) return out;
  for (double v : per_image) var += (v - mean) * (v - mean) / (per_image.size() - 1);
  out.relative = std::sqrt(var) / mean;
  return out;
}

TimingSpread timing_spread(const RunRecord& r) {
  return timing_spread(r.batch_seconds, {r.batch_rows.begin(), r.batch_rows.end()}, r.repeat_seconds,
                       {r.repeat_rows.begin(), r.repeat_rows.end()});
}

namespace {

// matplotlib's viridis at 9 evenly spaced points (sRGB 0..255), linearly interpolated.
constexpr unsigned char kViridis[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},   {44, 113, 142}, {33, 144, 141},
                                          {39, 173, 129}, {92, 200, 99},  {170, 220, 50},  {253, 231, 37}};

// Quality metrics whose covariance needs more samples than feature dimensions.
// (each stores its state as state/<metric>/sum [D, 2]: the dimension D comes from there)
constexpr const char* kFrechetMetrics[] = {"fid", "sfid", "fid_fmnist"};

// A stored configuration less the keys that do not separate runs being compared.
std::string config_key(const std::string& config_json, bool any_steps) {
  nlohmann::json c = nlohmann::json::parse(config_json, nullptr, false);
  if (c.is_discarded() || !c.is_object()) return config_json;
  c.erase("cache");
  c.erase("name");
  if (any_steps) {  // matched cost: other step counts, any batch size (it changes no sample value beyond rounding)
    if (c.contains("sampler") && c["sampler"].is_object()) c["sampler"].erase("steps");
    if (c.contains("samples") && c["samples"].is_object()) c["samples"].erase("batch");
  }
  return c.dump();
}

// A cached run's Frechet metric minus the plain curve's at its MACs, with the paired 95% interval.
struct PairedDiff {
  double diff = 0, low = 0, high = 0;
};

struct Row {
  const StoredRun* run = nullptr;
  std::string role, model, weights, sampler;
  std::map<std::string, policies::ReportColumn> policy_cells;  // its policy's columns (PolicySettings::report_columns)
  std::vector<std::string> policies;                           // its policy (a composition's, each)
  std::string uncomputed_note;                                 // why its cached calls lack taps (the policy's words)
  std::vector<std::string> similarity_taps;                    // the taps it asked maps for (none: similarity off)
  std::string status_note;  // a shard's slice, or what a partial merge holds
  int steps = 0, calls = 0, full = 0;
  int64_t n = 0;
  uint64_t seed = 0;
  bool cached = false, complete = false;
  double macs = 0, macs_per_image = 0, s_per_image = 0, speedup = 0, mac_speedup = 0;
  double spread = -1;  // relative standard deviation of s/image over the run's full batches (-1: fewer than 2)
  int spread_batches = 0;
  double median = 0, first = -1;  // median s/image over the full batches and repeats; the first batch's
  double macs_all_per_image = 0, mac_bound = 0;  // every multiply-accumulate (0: a file before issue 31)
  std::vector<std::string> flags;  // harness/timing_check.h
  std::string group;    // baseline matching key: the configuration less cache and name
  std::string matched;  // matched-cost key: also less sampler.steps and samples.batch
  std::map<std::string, double> metrics;  // quality metrics (metrics/* beyond timings)
  std::map<std::string, int64_t> dims;    // Frechet metrics: their feature dimension (from the state)
  std::map<std::string, std::pair<double, double>> ci;  // metric -> its 95% bootstrap interval
  std::map<std::string, std::string> frechet_reference;  // fid_fmnist, fid -> the reference statistics (.npz) its value used
  std::map<std::string, PairedDiff> paired;              // metric -> against the plain curve at its MACs (paired_comparisons)
};

// A run's provenance lines ("device: cpu", ...), as the report lists them.
std::vector<std::string> provenance_lines(const StoredRun& r) {
  std::vector<std::string> lines = {fmt::format("status: {}", r.status)};
  auto add = [&](const std::string& label, const std::string& v) {
    if (!v.empty()) lines.push_back(label + ": " + v);
  };
  add("description", r.description);
  add("weights", r.weights_note);
  add("device", r.device);
  for (const auto& [k, v] : std::vector<std::pair<const char*, const std::string*>>{
           {"cpu", &r.cpu}, {"cpu_kernels", &r.cpu_kernels}, {"thread_settings", &r.thread_settings}, {"torch_version", &r.torch_version},
           {"git_revision", &r.git_revision}, {"started_at", &r.started_at}, {"finished_at", &r.finished_at}})
    add(k, *v);
  add("timing_clock", r.timing_clock);
  if (r.scalars.count("usage/sampled_seconds")) {
    auto u = [&](const char* k) {
      auto it = r.scalars.find(std::string("usage/") + k);
      return it == r.scalars.end() ? std::nan("") : it->second;
    };
    add("sampling usage", fmt::format("{:.2f} s user, {:.2f} s system, {:.0f} minor and {:.0f} major page faults over {:.2f} s of "
                                      "sampling (getrusage); load average {:.2f} at the start, {:.2f} at the end, {:.0f} cores",
                                      u("user_seconds"), u("system_seconds"), u("minor_faults"), u("major_faults"),
                                      u("sampled_seconds"), u("load_start"), u("load_end"), u("cores")));
  }
  if (!r.error.empty()) add("error", r.error);
  return lines;
}

// What harness/timing_check.h checks of a row, against its baseline `b` (or none).
TimingFacts timing_facts(const Row& row, const Row* b) {
  TimingFacts f = record_facts(*row.run);
  f.is_baseline = b == &row;
  f.spread = row.spread;
  if (b && !f.is_baseline && row.speedup > 0 && row.mac_bound > 0) {
    f.speedup = row.speedup;
    f.mac_bound = row.mac_bound;
    f.spread = std::max(row.spread, b->spread);
  }
  return f;
}

// A number as CSV holds it: shortest round-trip form.
std::string plain(double v) { return std::isfinite(v) ? fmt::format("{}", v) : ""; }

ReportCell cell(const std::string& text) { return {text, text == "-" ? "" : text}; }
ReportCell number(double v, const std::string& text) { return {text, plain(v), true}; }

std::string first_line(const std::string& s, std::size_t max) {
  std::string l = s.substr(0, s.find('\n'));
  return l.size() > max ? l.substr(0, max) + "..." : l;
}

// Tick positions for an axis of `n` cells: about five, at a round step.
std::vector<int> ticks(int n) {
  int step = 1;
  for (int s : {1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000})
    if (n / s <= 6) {
      step = s;
      break;
    }
  std::vector<int> t;
  for (int i = 0; i < n; i += step) t.push_back(i);
  return t;
}

}  // namespace

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string baseline_key(const std::string& config_json) { return config_key(config_json, false); }

double interpolate_at(const std::vector<std::pair<double, double>>& points, double x) {
  std::vector<std::pair<double, double>> p = points;
  std::sort(p.begin(), p.end());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (p.size() < 2 || p.front().first == p.back().first || x < p.front().first || x > p.back().first) return nan;
  for (std::size_t i = 0; i + 1 < p.size(); ++i) {
    const auto& [x0, y0] = p[i];
    const auto& [x1, y1] = p[i + 1];
    if (x == x0) return y0;
    if (x > x0 && x <= x1) return x1 == x0 ? y1 : y0 + (y1 - y0) * (x - x0) / (x1 - x0);
  }
  return p.back().second;
}

std::string base64(const std::string& bytes) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i + 1 == bytes.size()) {
    const unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    out += {t[v >> 18], t[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return out;
}

torch::Tensor heatmap_image(const torch::Tensor& matrix, double lo, double hi, int64_t cell) {
  const torch::Tensor m = matrix.to(torch::kFloat64).contiguous();
  const int64_t s = m.size(0);
  torch::Tensor img = torch::empty({3, s * cell, s * cell}, torch::kUInt8);
  auto acc = img.accessor<uint8_t, 3>();
  const double* p = m.data_ptr<double>();
  for (int64_t i = 0; i < s; ++i)
    for (int64_t j = 0; j < s; ++j) {
      double v = hi > lo ? (p[i * s + j] - lo) / (hi - lo) : 0.5;
      v = std::min(1.0, std::max(0.0, v)) * 8.0;
      const int a = std::min(7, static_cast<int>(v));
      const double f = v - a;
      for (int c = 0; c < 3; ++c) {
        const auto val = static_cast<uint8_t>(std::lround(kViridis[a][c] * (1 - f) + kViridis[a + 1][c] * f));
        for (int64_t y = 0; y < cell; ++y)
          for (int64_t x = 0; x < cell; ++x) acc[c][i * cell + y][j * cell + x] = val;
      }
    }
  return img;
}

std::string heatmap_svg(const torch::Tensor& matrix, double lo, double hi, const std::string& title) {
  const int s = static_cast<int>(matrix.size(0));
  const double x0 = 70, y0 = 48, side = 360, bar_x = x0 + side + 28, bar_w = 16;
  const double cell = side / std::max(s, 1);
  const std::string png = base64(image::encode_png(heatmap_image(matrix, lo, hi, 1), title));
  std::ostringstream o;
  o << fmt::format(R"X(<svg xmlns="http://www.w3.org/2000/svg" width="540" height="480" viewBox="0 0 540 480" font-family="sans-serif" font-size="11">)X")
    << "\n<title>" << xml_escape(title) << "</title>\n"
    << fmt::format(R"X(<text x="{}" y="22" font-size="{}" text-anchor="middle">{}</text>)X", x0 + side / 2,
                   title.size() > 72 ? 10 : 13, xml_escape(title))
    << "\n"
    << fmt::format(R"X(<image x="{}" y="{}" width="{}" height="{}" preserveAspectRatio="none" style="image-rendering:pixelated" href="data:image/png;base64,{}"/>)X",
                   x0, y0, side, side, png)
    << "\n"
    << fmt::format(R"X(<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="black"/>)X", x0, y0, side, side) << "\n";
  for (int t : ticks(s)) {
    const double c = (t + 0.5) * cell;
    o << fmt::format(R"X(<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="black"/><text x="{0}" y="{3}" text-anchor="middle">{4}</text>)X",
                     x0 + c, y0 + side, y0 + side + 5, y0 + side + 17, t)
      << fmt::format(R"X(<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="black"/><text x="{3}" y="{4}" text-anchor="end">{5}</text>)X",
                     x0 - 5, y0 + c, x0, x0 - 8, y0 + c + 4, t)
      << "\n";
  }
  o << fmt::format(R"X(<text x="{}" y="{}" text-anchor="middle">model call j (0 = noisiest)</text>)X", x0 + side / 2, y0 + side + 36) << "\n"
    << fmt::format(R"X(<text transform="translate({},{}) rotate(-90)" text-anchor="middle">model call i (0 = noisiest)</text>)X", x0 - 40,
                   y0 + side / 2)
    << "\n";
  // Colour bar: viridis from lo (bottom) to hi (top).
  o << R"X(<defs><linearGradient id="viridis" x1="0" y1="1" x2="0" y2="0">)X";
  for (int i = 0; i < 9; ++i)
    o << fmt::format(R"X(<stop offset="{}" stop-color="rgb({},{},{})"/>)X", i / 8.0, kViridis[i][0], kViridis[i][1], kViridis[i][2]);
  o << "</linearGradient></defs>\n"
    << fmt::format(R"X(<rect x="{}" y="{}" width="{}" height="{}" fill="url(#viridis)" stroke="black"/>)X", bar_x, y0, bar_w, side) << "\n";
  for (int i = 0; i <= 4; ++i) {
    const double v = lo + (hi - lo) * i / 4.0, y = y0 + side - side * i / 4.0;
    o << fmt::format(R"X(<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="black"/><text x="{3}" y="{4}">{5:.3f}</text>)X", bar_x + bar_w,
                     y, bar_x + bar_w + 4, bar_x + bar_w + 6, y + 4, v)
      << "\n";
  }
  o << fmt::format(R"X(<text transform="translate({},{}) rotate(-90)" text-anchor="middle">cosine similarity</text>)X", bar_x + bar_w + 50,
                   y0 + side / 2)
    << "\n</svg>\n";
  return o.str();
}

namespace {

// One row of the table from a stored run: its settings (the stored config read back through the
// experiment reader: harness/config.h read_stored_run), its numbers. A run whose config does not
// read back (a file of another version) keeps its numbers, "?" for its settings, and a note.
Row row_of(const StoredRun& r, const std::string& results, std::vector<std::string>& notes) {
  Row row;
  row.run = &r;
  row.complete = r.status == "complete";
  if (r.shard_count > 1) row.status_note = fmt::format("shard {}/{}", r.shard_index, r.shard_count);
  if (!r.partial.empty()) row.status_note = "partial: " + r.partial;
  row.group = baseline_key(r.config_json);
  row.matched = config_key(r.config_json, true);
  std::optional<RunSpec> spec;
  try {
    spec = read_stored_run(r.config_json, r.run_id, fmt::format("{}: runs/{}", results, r.key));
  } catch (const Error& e) {
    notes.push_back(fmt::format("{} Its settings show as '?'.", e.what()));
    row.role = r.baseline ? "plain" : "?";
    row.model = row.weights = row.sampler = "?";
  }
  if (spec) {
    const RunSpec& s = *spec;
    row.cached = s.cache.enabled;
    row.role = row.cached ? s.cache.policy : "plain";  // uncached: each the reference of its own settings
    row.model = s.model.family + "/" + s.model.preset;
    row.weights = s.model.weights;
    row.sampler = s.sampler.name;
    row.steps = s.sampler.steps;
    row.seed = s.samples.seed;
    try {  // the statistics a paired comparison resamples against (a folder reference: none)
      if (s.metrics.fid_fmnist) row.frechet_reference["fid_fmnist"] = expand_env(s.metrics.reference, "metrics.fid_fmnist.reference");
      if (s.metrics.fid) row.frechet_reference["fid"] = expand_env(s.metrics.fid_reference, "metrics.fid.reference");
    } catch (const Error&) {
    }
    row.n = s.samples.n;
    if (s.sampler.eta != 0.0) row.sampler += fmt::format(" eta={:g}", s.sampler.eta);
    if (s.conditioning.guidance != 1.0) row.sampler += fmt::format(" cfg={:g}", s.conditioning.guidance);
    if (row.cached && s.cache.settings) {
      for (auto& c : s.cache.settings->report_columns()) row.policy_cells[c.name] = c;
      row.policies = s.cache.members;
      row.uncomputed_note = s.cache.settings->uncomputed_note();
    }
    if (s.similarity.enabled) {
      row.similarity_taps = s.similarity.taps;
      if (row.similarity_taps.empty()) {
        try {
          row.similarity_taps = models::model_info(s.model.family, s.model.preset).tap_names;
        } catch (const Error&) {
          // a model this build does not know: nothing to compare with
        }
      }
    }
  }
  auto get = [&](const char* k, double fallback = 0.0) { auto it = r.scalars.find(k); return it == r.scalars.end() ? fallback : it->second; };
  row.calls = r.model_calls;
  row.full = static_cast<int>(r.full_calls.size());
  row.macs = r.macs_step_average;
  row.macs_per_image = row.macs * std::max(r.model_calls, 1);
  row.macs_all_per_image = r.macs_step_average_all * std::max(r.model_calls, 1);
  row.s_per_image = get("metrics/seconds_per_image");
  row.n = static_cast<int64_t>(get("metrics/samples", static_cast<double>(row.n)));
  for (const auto& [name, v] : r.quality) {  // every metrics/* value beyond the timings: a column and a delta
    const bool low = name.size() > 7 && name.compare(name.size() - 7, 7, "_ci_low") == 0;
    const bool high = name.size() > 8 && name.compare(name.size() - 8, 8, "_ci_high") == 0;
    if (low) row.ci[name.substr(0, name.size() - 7)].first = v;
    else if (high) row.ci[name.substr(0, name.size() - 8)].second = v;
    else row.metrics[name] = v;
  }
  return row;
}

// The spread of s/image over each run's full batches and repeats (timing/batch_*, repeat_*), and the
// feature dimensions of its Frechet metrics, from their stored states (state/<metric>/sum [D, 2]).
void add_timing_and_dims(std::vector<Row>& rows) {
  for (auto& row : rows) {
    const StoredRun& r = *row.run;
    if (!row.complete || r.batch_seconds.empty() || r.batch_rows.empty()) continue;
    const TimingSpread sp = timing_spread(r);
    row.spread = sp.relative;
    row.spread_batches = sp.count;
    row.median = sp.median;
    row.first = sp.first;
  }
  for (auto& row : rows)
    for (const char* metric : kFrechetMetrics) {
      if (!row.metrics.count(metric)) continue;
      auto it = row.run->state_shapes.find(std::string(metric) + "/sum");
      if (it != row.run->state_shapes.end() && !it->second.empty()) row.dims[metric] = it->second[0];
    }
}

// What each row is compared with: the complete baseline of its own settings, or (--reference) one run.
struct Baselines {
  std::map<std::string, const Row*> baseline;
  const Row* ref = nullptr;
  const Row* of(const Row& row) const {
    if (ref) return ref;
    auto it = baseline.find(row.group);
    return it == baseline.end() ? nullptr : it->second;
  }
};

Baselines find_baselines(const std::vector<Row>& rows, const ReportOptions& o) {
  Baselines out;
  std::map<std::string, const Row*>& baseline = out.baseline;
  const Row*& ref = out.ref;
  for (const auto& row : rows)  // a plain run is the reference of its own settings (the experiment's baseline first)
    if (row.complete && row.role == "plain" && (row.run->baseline || !baseline.count(row.group))) baseline[row.group] = &row;
  if (!o.reference.empty()) {
    std::string known;
    for (const auto& row : rows) {
      if (row.run->run_id.rfind(o.reference, 0) == 0 || row.run->name == o.reference) {
        if (ref)
          throw Error(fmt::format("{}: --reference '{}' matches more than one run ({}, {})", o.results, o.reference, ref->run->key, row.run->key));
        ref = &row;
      }
      known += (known.empty() ? "" : ", ") + row.run->key;
    }
    if (!ref) throw Error(fmt::format("{}: --reference '{}' matches no run id or name (runs: {})", o.results, o.reference, known));
    if (!ref->complete) throw Error(fmt::format("{}: --reference run {} is {}, not complete", o.results, ref->run->key, ref->run->status));
  }
  return out;
}

// Speedups (time, MACs, the bound every multiply-accumulate allows) and the timing check's flags.
void add_speedups(std::vector<Row>& rows, const Baselines& baselines) {
  const auto base_of = [&](const Row& row) { return baselines.of(row); };
  for (auto& row : rows) {
    const Row* b = base_of(row);
    if (b && row.s_per_image > 0) row.speedup = b->s_per_image / row.s_per_image;
    if (b && row.macs_per_image > 0) row.mac_speedup = b->macs_per_image / row.macs_per_image;
    if (b && row.macs_all_per_image > 0 && b->macs_all_per_image > 0) row.mac_bound = b->macs_all_per_image / row.macs_all_per_image;
  }
  for (auto& row : rows)
    if (row.complete) row.flags = timing_flags(timing_facts(row, base_of(row)));
}

// Matched cost: each metric of the plain (uncached) runs of the same settings but other step
// counts, interpolated linearly in MACs per image at each run's cost.
using Matched = std::map<std::string, std::map<const Row*, double>>;  // metric -> row -> plain value at its MACs
Matched matched_cost(const std::vector<Row>& rows, const std::set<std::string>& metric_names) {
  Matched matched;
  for (const auto& metric : metric_names)
    for (const auto& row : rows) {
      if (!row.complete || !row.cached || !row.metrics.count(metric)) continue;
      std::vector<std::pair<double, double>> points;
      for (const auto& p : rows)
        if (p.complete && !p.cached && p.matched == row.matched && p.metrics.count(metric) && p.macs_per_image > 0)
          points.emplace_back(p.macs_per_image, p.metrics.at(metric));
      std::set<double> xs;
      for (const auto& pt : points) xs.insert(pt.first);
      if (xs.size() < 2) continue;
      const double v = interpolate_at(points, row.macs_per_image);
      if (std::isfinite(v)) matched[metric][&row] = v;
    }
  return matched;
}

// Paired comparisons (runs of the same seeds): per Frechet metric whose runs keep their per-sample
// features, each cached run's value minus the plain curve's at its MACs (the two plain runs that
// bracket its MACs, interpolated linearly; or the one at exactly its MACs), with the paired
// bootstrap interval (metrics::frechet_paired_bootstrap).
using PairedMap = std::map<std::string, std::map<const Row*, PairedDiff>>;  // metric -> row -> vs plain@MACs

// Whether a smaller value of a metric is better (the Frechet distances), else larger is.
bool lower_is_better(const std::string& metric) { return metric.rfind("fid", 0) == 0 || metric.rfind("sfid", 0) == 0; }

PairedMap paired_comparisons(const std::vector<Row>& rows, const std::string& results, int resamples, std::vector<std::string>& notes) {
  PairedMap out;
  std::map<const Row*, torch::Tensor> features;  // loaded once per row and metric
  for (const std::string metric : {"fid_fmnist", "fid"}) {
    features.clear();
    const auto feats = [&](const Row& r) -> torch::Tensor {
      auto it = features.find(&r);
      if (it != features.end()) return it->second;
      torch::Tensor f;
      auto st = read_metric_state(results, r.run->key, metrics::features_state(metric));
      if (st.count("features") && st.count("index")) {
        metrics::MetricState ms;
        for (auto& [k, a] : st) ms[k] = h5::to_tensor(std::move(a));
        const auto sf = metrics::SampleFeatures::from_state(ms, r.run->key);
        const auto idx = sf.indices();
        // the same samples in the same order for every run: 0..n-1
        if (sf.count() == r.n && sf.count() >= 2 && idx[0].item<int64_t>() == 0 && idx[-1].item<int64_t>() == r.n - 1) f = sf.features();
      }
      return features[&r] = f;
    };
    for (const auto& row : rows) {
      if (!row.complete || !row.cached || !row.metrics.count(metric) || !row.frechet_reference.count(metric)) continue;
      const std::string& ref_path = row.frechet_reference.at(metric);
      if (!std::filesystem::is_regular_file(ref_path)) continue;
      const Row *lo = nullptr, *hi = nullptr;
      for (const auto& p : rows) {
        if (!p.complete || p.cached || p.matched != row.matched || p.n != row.n || !p.metrics.count(metric) || !(p.macs_per_image > 0)) continue;
        if (p.frechet_reference.count(metric) == 0 || p.frechet_reference.at(metric) != ref_path) continue;
        if (p.macs_per_image <= row.macs_per_image && (!lo || p.macs_per_image > lo->macs_per_image)) lo = &p;
        if (p.macs_per_image >= row.macs_per_image && (!hi || p.macs_per_image < hi->macs_per_image)) hi = &p;
      }
      if (!lo || !hi) continue;
      const torch::Tensor a = feats(row), fl = feats(*lo), fh = feats(*hi);
      if (!a.defined() || !fl.defined() || !fh.defined()) continue;
      const double span = hi->macs_per_image - lo->macs_per_image;
      const double w_hi = span > 0 ? (row.macs_per_image - lo->macs_per_image) / span : 0.0;
      std::vector<std::pair<torch::Tensor, double>> reference = {{fl, 1.0 - w_hi}};
      if (w_hi > 0) reference.emplace_back(fh, w_hi);
      const double plain = (1.0 - w_hi) * lo->metrics.at(metric) + w_hi * hi->metrics.at(metric);
      const double diff = row.metrics.at(metric) - plain;
      try {
        const auto stats = metrics::read_fid_stats(ref_path);
        const auto ci = metrics::frechet_paired_bootstrap(a, reference, diff, metrics::to_eigen_vector(stats.first),
                                                         metrics::to_eigen_matrix(stats.second), resamples, 0);
        out[metric][&row] = {diff, ci.low, ci.high};
      } catch (const Error& e) {
        notes.push_back(fmt::format("{}: no paired interval for run {}: {}", metric, row.run->key, e.what()));
      }
    }
  }
  return out;
}

// One line per policy and metric: how many of its settings beat, lose to or tie with the plain
// curve at equal MACs, by the paired 95% interval of the difference.
std::vector<std::string> verdicts(const std::vector<Row>& rows, const PairedMap& paired) {
  std::vector<std::string> lines;
  for (const auto& [metric, byrow] : paired) {
    std::vector<std::string> roles;
    for (const auto& row : rows)
      if (byrow.count(&row) && std::find(roles.begin(), roles.end(), row.role) == roles.end()) roles.push_back(row.role);
    for (const auto& role : roles) {
      int beat = 0, lose = 0, tie = 0;
      for (const auto& row : rows) {
        const auto it = byrow.find(&row);
        if (it == byrow.end() || row.role != role) continue;
        const PairedDiff& d = it->second;
        const bool lower_better = lower_is_better(metric);
        const bool better = lower_better ? d.high < 0 : d.low > 0, worse = lower_better ? d.low > 0 : d.high < 0;
        (better ? beat : worse ? lose : tie)++;
      }
      lines.push_back(fmt::format("Verdict, {} ({}): {} of {} settings beat the plain sampler at equal MACs, {} lose, {} within the "
                                  "interval (paired 95%)",
                                  role, metric, beat, beat + lose + tie, lose, tie));
    }
  }
  return lines;
}

// report's Pareto view (report.h): the groups with a cached run and two points or more.
std::vector<ParetoView> pareto_views(const std::vector<Row>& rows, const std::set<std::string>& metric_names) {
  std::vector<ParetoView> views;
  std::vector<std::string> groups;
  for (const auto& row : rows)
    if (std::find(groups.begin(), groups.end(), row.matched) == groups.end()) groups.push_back(row.matched);
  for (const auto& metric : metric_names) {
    if (metric.size() > 4 && metric.compare(metric.size() - 4, 4, "_std") == 0) continue;
    for (const auto& group : groups) {
      ParetoView v{metric, "", lower_is_better(metric), {}};
      bool cached = false;
      for (const auto& row : rows) {
        if (row.matched != group || !row.complete || !row.metrics.count(metric) || !(row.macs_per_image > 0)) continue;
        if (v.group.empty()) v.group = row.model + " " + row.sampler.substr(0, row.sampler.find(' '));
        cached = cached || row.cached;
        v.points.push_back({row.run->key, row.role, row.run->name, row.macs_per_image, row.s_per_image, row.metrics.at(metric), false});
      }
      if (!cached || v.points.size() < 2) continue;
      std::stable_sort(v.points.begin(), v.points.end(), [](const ParetoPoint& a, const ParetoPoint& b) { return a.macs_per_image < b.macs_per_image; });
      const auto better = [&](double a, double b) { return v.lower_is_better ? a < b : a > b; };
      for (auto& p : v.points) {
        p.frontier = true;
        for (const auto& q : v.points) {
          if (&q == &p || q.macs_per_image > p.macs_per_image) continue;
          const bool no_worse = !better(p.value, q.value);
          const bool strictly = q.macs_per_image < p.macs_per_image || better(q.value, p.value);
          if (no_worse && strictly) p.frontier = false;
        }
      }
      views.push_back(std::move(v));
    }
  }
  return views;
}

// The policies' columns: the default policy's always (the table keeps its layout), then those of
// every other registered policy a row uses, in registration order, each name once.
std::vector<std::string> report_policy_columns(const std::vector<Row>& rows) {
  std::vector<std::string> out;
  auto add = [&](const std::string& policy) {
    if (const auto* t = policies::find_policy(policy))
      for (const auto& c : t->report_columns)
        if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  };
  add(policies::default_policy());
  for (const auto& name : policies::policy_names())
    for (const auto& row : rows)
      if (row.cached && std::find(row.policies.begin(), row.policies.end(), name) != row.policies.end()) {
        add(name);
        break;
      }
  return out;
}

// The table's columns: the fixed ones, then per metric its value, interval, delta and matched cost.
std::vector<std::string> table_head(const std::vector<std::string>& policy_columns, const std::set<std::string>& metric_names,
                                    const std::set<std::string>& with_ci, const Matched& matched, const PairedMap& paired) {
  Report rep;
  rep.head = {"run_id", "role", "model", "weights", "sampler", "steps", "calls", "full calls"};
  rep.head.insert(rep.head.end(), policy_columns.begin(), policy_columns.end());
  const std::vector<std::string> rest = {"n", "seed", "GMACs/call", "GMACs/image", "s/image", "median s/image", "first batch s/image", "spread", "speedup", "MACs speedup",
              "bound (all MACs)", "timing check"};
  rep.head.insert(rep.head.end(), rest.begin(), rest.end());
  for (const auto& m : metric_names) {
    rep.head.push_back(m);
    if (with_ci.count(m)) {
      rep.head.push_back(m + " ci low");
      rep.head.push_back(m + " ci high");
    }
    rep.head.push_back("delta " + m);
    if (matched.count(m)) rep.head.push_back(m + " plain@equal MACs");
    if (paired.count(m)) rep.head.push_back(m + " vs plain@MACs (paired)");
  }
  rep.head.push_back("status");
  rep.head.push_back("error");
  return rep.head;
}

// One row's cells; `small_n` is set when a Frechet value comes from n <= D samples.
std::vector<ReportCell> row_cells(const Row& row, const Baselines& baselines, const std::vector<std::string>& policy_columns,
                                  const std::set<std::string>& metric_names, const std::set<std::string>& with_ci, const Matched& matched,
                                  const PairedMap& paired_metrics, bool& small_n) {
  const auto base_of = [&](const Row& other) { return baselines.of(other); };
  const StoredRun& r = *row.run;
  const std::string weights = row.weights == "random" ? "RANDOM (untrained)" : fs::path(row.weights).filename().string();
  std::string full = "-";
  if (row.complete && row.calls > 0)
    full = row.full == row.calls ? fmt::format("all {}", row.calls) : fmt::format("{}: {}", row.full, models::compact_ids(r.full_calls));
  const bool c = row.complete;
  std::vector<ReportCell> cells = {
      cell(r.key), cell(row.role), cell(row.model), {weights, row.weights}, cell(row.sampler), number(row.steps, std::to_string(row.steps)),
      c ? number(row.calls, std::to_string(row.calls)) : cell("-"), {full, full == "-" ? "" : full}};
  for (const auto& name : policy_columns) {
    auto it = row.policy_cells.find(name);
    cells.push_back(it == row.policy_cells.end() ? cell("-")
                    : std::isnan(it->second.value) ? cell(it->second.text)
                                                   : number(it->second.value, it->second.text));
  }
  const std::vector<ReportCell> rest = {
      number(static_cast<double>(row.n), std::to_string(row.n)), {std::to_string(row.seed), std::to_string(row.seed), true},
      c ? number(row.macs / 1e9, fmt::format("{:.3f}", row.macs / 1e9)) : cell("-"),
      c ? number(row.macs_per_image / 1e9, fmt::format("{:.2f}", row.macs_per_image / 1e9)) : cell("-"),
      c ? number(row.s_per_image, fmt::format("{:.4f}", row.s_per_image)) : cell("-"),
      c && row.median > 0 ? number(row.median, fmt::format("{:.4f}", row.median)) : cell("-"),
      c && row.first > 0 ? number(row.first, fmt::format("{:.4f}", row.first)) : cell("-"),
      row.spread >= 0 ? number(row.spread, fmt::format("±{:.1f}% ({})", 100 * row.spread, row.spread_batches)) : cell("-"),
      row.speedup > 0 ? number(row.speedup, fmt::format("{:.2f}x", row.speedup)) : cell("-"),
      row.mac_speedup > 0 ? number(row.mac_speedup, fmt::format("{:.2f}x", row.mac_speedup)) : cell("-"),
      row.mac_bound > 0 ? number(row.mac_bound, fmt::format("{:.2f}x", row.mac_bound)) : cell("-"),
      !c ? cell("-") : row.flags.empty() ? cell("ok") : cell(fmt::format("{} warning{} (notes)", row.flags.size(), row.flags.size() == 1 ? "" : "s"))};
  cells.insert(cells.end(), rest.begin(), rest.end());
  const Row* b = base_of(row);
  for (const auto& m : metric_names) {
    auto it = row.metrics.find(m);
    if (it == row.metrics.end()) {
      cells.push_back(cell("-"));
    } else {
      std::string text = fmt::format("{:.4g}", it->second);
      auto d = row.dims.find(m);
      if (d != row.dims.end() && row.n <= d->second) {
        text += " (n<=D)";
        small_n = true;
      }
      cells.push_back(number(it->second, text));
    }
    if (with_ci.count(m)) {
      auto c = row.ci.find(m);
      cells.push_back(c == row.ci.end() ? cell("-") : number(c->second.first, fmt::format("{:.4g}", c->second.first)));
      cells.push_back(c == row.ci.end() ? cell("-") : number(c->second.second, fmt::format("{:.4g}", c->second.second)));
    }
    const bool has_delta = it != row.metrics.end() && b && b->metrics.count(m);
    cells.push_back(has_delta ? number(it->second - b->metrics.at(m), fmt::format("{:+.4g}", it->second - b->metrics.at(m))) : cell("-"));
    if (matched.count(m)) {
      auto mv = matched.at(m).find(&row);
      cells.push_back(mv == matched.at(m).end() ? cell("-") : number(mv->second, fmt::format("{:.4g}", mv->second)));
    }
    if (paired_metrics.count(m)) {
      const auto pv = row.paired.find(m);
      cells.push_back(pv == row.paired.end() ? cell("-")
                                             : number(pv->second.diff, fmt::format("{:+.3g} [{:+.3g}, {:+.3g}]", pv->second.diff,
                                                                                   pv->second.low, pv->second.high)));
    }
  }
  std::string status = row.status_note.empty() ? r.status : r.status + " (" + row.status_note + ")";
  cells.push_back({r.status == "failed" ? "failed: " + first_line(r.error, 100) : status, status});
  cells.push_back({r.error.empty() ? "-" : "see below", r.error});
  return cells;
}

// The notes under the table: timing flags, failed runs, small n, intervals, matched cost, clocks.
void add_notes(Report& rep, const std::vector<Row>& rows, const Baselines& baselines, bool small_n, const std::set<std::string>& with_ci,
               const Matched& matched) {
  if (baselines.ref)
    rep.notes.push_back(fmt::format("Reference: every row's speedup, MACs speedup and deltas are against run {} ({}), chosen with --reference.",
                                    baselines.ref->run->key, baselines.ref->run->name));
  else
    rep.notes.push_back("Reference: each row's speedup, MACs speedup and deltas are against the plain (uncached) run of its own settings "
                        "(the same model, sampler, step count and samples: role plain); a row without one shows '-'.");
  for (const auto& row : rows)
    for (const auto& flag : row.flags) rep.notes.push_back(fmt::format("Run {} ({}): {}.", row.run->key, row.run->name, flag));
  // Notes (Markdown and HTML show failed runs' errors here instead of the error column).
  for (const auto& row : rows)
    if (row.run->status == "failed")
      rep.notes.push_back(fmt::format("Run {} ({}) failed: {}. Rerun `run` to retry it, or `run --forget {}` to remove it "
                                      "(`report --drop-failed` leaves failed runs out).",
                                      row.run->key, row.run->name, row.run->error, row.run->run_id));
  if (small_n) {
    std::map<std::tuple<std::string, int64_t, int64_t>, std::vector<std::string>> groups;  // (metric, n, D) -> runs
    for (const auto& row : rows)
      for (const auto& [metric, d] : row.dims)
        if (row.n <= d) groups[{metric, row.n, d}].push_back(row.run->key);
    std::string which;
    for (const auto& [g, keys] : groups)
      which += fmt::format("{}{} at n = {} with D = {} ({} run{})", which.empty() ? "" : "; ", std::get<0>(g), std::get<1>(g), std::get<2>(g),
                           keys.size(), keys.size() == 1 ? ": " + keys[0] : "s");
    rep.notes.push_back(fmt::format("(n<=D): {}. A Frechet distance from n samples of D features has a rank-deficient covariance when "
                                    "n <= D: the value is dominated by that and biased high, comparable only with runs of the same n, "
                                    "and far from the paper's (50,000 samples).",
                                    which));
  }
  for (const auto& m : with_ci)
    rep.notes.push_back(fmt::format("{0} ci low, {0} ci high: the 95% bootstrap interval of {0}, the value -/+ 1.96 standard "
                                    "deviations of {0} over resamples of the run's samples (drawn again with replacement, "
                                    "metrics.bootstrap times): how much the value moves with the samples drawn at this n. It does "
                                    "not remove the small-n bias.",
                                    m));
  for (const auto& [metric, byrow] : matched) {
    (void)byrow;
    rep.notes.push_back(fmt::format("{0} plain@equal MACs: the {0} of the plain (uncached) runs of the same settings with other step "
                                    "counts, linearly interpolated in MACs per image at each run's cost (no extrapolation): does "
                                    "caching beat taking fewer steps at the same cost?",
                                    metric));
  }
  {
    std::set<std::string> clocks;
    for (const auto& row : rows)
      if (row.complete && !row.run->timing_clock.empty()) clocks.insert(fmt::format("{} on {}", row.run->timing_clock, row.run->device));
    if (!clocks.empty()) {
      std::string joined;
      for (const auto& c : clocks) joined += (joined.empty() ? "" : "; ") + c;
      rep.notes.push_back("s/image: sampling wall time per image (steady_clock, device synchronised per batch); per-call times "
                          "(step_time_ms): " + joined + ". calls: model calls per image; GMACs/call: their average; GMACs/image = "
                          "GMACs/call x calls. spread: the relative standard deviation of s/image over the run's full batches and its "
                          "timing.repeats (their number in brackets), i.e. how much a repeat of the same run varies; compare "
                          "speedups only beyond it; '-' with fewer than two timings (set timing.repeats). median s/image: the "
                          "median over the same timings, which one slow timing does not move; first batch s/image: the first "
                          "batch alone (it may pay for a cold cache or a busy machine). MACs speedup: as the paper counts MACs; "
                          "bound (all MACs): counting every multiply-accumulate (attention matmuls too), the most a compute-bound "
                          "timing can show. timing check: 'ok', or warnings (listed above) when the speedup exceeds the bound by "
                          "more than the spread, the system time exceeds 10% of the sampling time, the load exceeded the cores "
                          "or the spread exceeds the effect (docs/performance.md, 'Timings checked against the MACs').");
    }
  }
}

// Similarity heatmaps (PNG: one colour per cell; SVG: the labelled figure), and a note for the taps
// asked for that have no map.
void add_heatmaps(Report& rep, const std::vector<Row>& rows, const ReportOptions& o, const fs::path& out_dir) {
  double common_lo = 1.0;
  for (const auto& row : rows)
    for (const auto& [tap, m] : row.run->similarity)
      if (m.dim() == 2 && m.numel() > 0) common_lo = std::min(common_lo, m.min().item<double>());
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> taps_missing;  // (policy's note, taps) -> runs
  std::vector<std::string> shard_without_maps;
  for (const auto& row : rows) {
    const StoredRun& r = *row.run;
    for (const auto& [tap, m] : r.similarity) {
      if (m.dim() != 2 || m.numel() == 0) continue;
      ReportFigure fig;
      fig.run_key = r.key;
      fig.title = fmt::format("run {} {}, tap {}", r.key, r.name, tap);
      const double lo = o.heatmap_scale == "common" ? common_lo : std::min(m.min().item<double>(), 1.0);
      const double hi = std::max(1.0, lo + 1e-12);
      fig.svg_text = heatmap_svg(m, lo, hi, fig.title);
      if (o.figures) {
        fig.png = (out_dir / fmt::format("similarity_{}_{}.png", r.key, tap)).string();
        fig.svg = (out_dir / fmt::format("similarity_{}_{}.svg", r.key, tap)).string();
        image::write_png(fig.png, heatmap_image(m, lo, hi, std::max<int64_t>(4, 400 / std::max<int64_t>(m.size(0), 1))));
        write_file_atomically(fig.svg, fig.svg_text);
      }
      rep.heatmaps.push_back(std::move(fig));
    }
    // Taps asked for that have no map: name them and why.
    if (row.complete && !row.similarity_taps.empty()) {
      const std::vector<std::string>& asked = row.similarity_taps;
      std::string missing;
      for (const auto& t : asked)
        if (!r.similarity.count(t)) missing += (missing.empty() ? "" : ", ") + t;
      if (!missing.empty() && r.shard_count > 1 && r.shard_index > 0)
        shard_without_maps.push_back(r.key);
      else if (!missing.empty())
        taps_missing[{row.uncomputed_note, missing}].push_back(r.key);
    }
  }
  for (const auto& [what, keys] : taps_missing) {
    std::string list;
    for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
    rep.notes.push_back(!what.first.empty() ? fmt::format("No similarity map for tap(s) {} in run{} {}: a map needs the tap at every "
                                                          "model call, and {}. Uncached runs have them.",
                                                          what.second, keys.size() == 1 ? "" : "s", list, what.first)
                                        : fmt::format("No similarity map for tap(s) {} in run{} {} (not stored in the file).", what.second,
                                                      keys.size() == 1 ? "" : "s", list));
  }
  if (!shard_without_maps.empty()) {
    std::string list;
    for (const auto& k : shard_without_maps) list += (list.empty() ? "" : ", ") + k;
    rep.notes.push_back(fmt::format("No similarity maps in {}: maps are made from the first samples, by the shard that holds sample 0.", list));
  }
}

// The stored sample grids.
void add_grids(Report& rep, const std::vector<Row>& rows, const ReportOptions& o, const fs::path& out_dir) {
  for (const auto& row : rows) {
    const torch::Tensor& grid = row.run->grid;
    const std::string path = "runs/" + row.run->key + "/grid";
    if (!row.complete || !grid.defined()) continue;
    if (grid.dim() != 3 || grid.scalar_type() != torch::kUInt8 || (grid.size(0) != 1 && grid.size(0) != 3)) continue;
    ReportFigure fig;
    fig.run_key = row.run->key;
    fig.title = fmt::format("run {} {}: the first samples", row.run->key, row.run->name);
    fig.png_bytes = image::encode_png(grid, path);
    if (o.figures) {
      fig.png = (out_dir / fmt::format("grid_{}.png", row.run->key)).string();
      image::write_png(fig.png, grid);
    }
    rep.grids.push_back(std::move(fig));
  }
}

}  // namespace

Report build_report(const ReportOptions& o) {
  if (o.format != "md" && o.format != "csv") throw Error(fmt::format("--format {}: expected md or csv", o.format));
  if (o.heatmap_scale != "own" && o.heatmap_scale != "common")
    throw Error(fmt::format("--heatmap-scale {}: expected own (each map from its minimum to 1) or common (one scale for every map)",
                            o.heatmap_scale));
  Report rep;
  rep.results = o.results;
  const auto runs = read_results(o.results, /*grids=*/true);
  const ResultsFileInfo info = read_results_info(o.results);
  rep.experiment = info.experiment;
  rep.description = info.description;
  std::vector<Row> rows;
  for (const auto& r : runs)
    if (!(o.drop_failed && r.status == "failed")) rows.push_back(row_of(r, o.results, rep.notes));
  add_timing_and_dims(rows);
  const Baselines baselines = find_baselines(rows, o);
  add_speedups(rows, baselines);
  std::set<std::string> metric_names, with_ci;
  for (const auto& row : rows) {
    for (const auto& [k, v] : row.metrics) metric_names.insert(k);
    for (const auto& [k, v] : row.ci) with_ci.insert(k);
  }
  const Matched matched = matched_cost(rows, metric_names);
  const PairedMap paired = paired_comparisons(rows, o.results, 200, rep.notes);
  for (auto& row : rows)
    for (const auto& [metric, byrow] : paired)
      if (const auto it = byrow.find(&row); it != byrow.end()) row.paired[metric] = it->second;
  const std::vector<std::string> policy_columns = report_policy_columns(rows);
  rep.head = table_head(policy_columns, metric_names, with_ci, matched, paired);
  bool small_n = false;
  for (const auto& row : rows) {
    rep.rows.push_back(row_cells(row, baselines, policy_columns, metric_names, with_ci, matched, paired, small_n));
    rep.row_keys.push_back(row.run->key);
    rep.row_status.push_back(row.run->status);
  }
  add_notes(rep, rows, baselines, small_n, with_ci, matched);
  for (const auto& [metric, byrow] : paired) {
    (void)byrow;
    rep.notes.push_back(fmt::format("{0} vs plain@MACs (paired): the run's {0} minus the plain curve's at its MACs (the two plain runs "
                                    "of the same settings that bracket its MACs, interpolated linearly), and the 95% interval of "
                                    "that difference from 200 paired bootstrap resamples: every run drew the same noise per sample, "
                                    "so each resample takes the same samples of every run and their shared variation cancels (far "
                                    "tighter than two independent intervals). Below 0 (lower is better): caching beats taking fewer "
                                    "steps at the same cost.",
                                    metric));
  }
  rep.pareto = pareto_views(rows, metric_names);
  rep.verdicts = verdicts(rows, paired);
  for (const auto& row : rows) rep.provenance.emplace_back(row.run->key + " " + row.run->name, provenance_lines(*row.run));
  const fs::path dir = o.heatmap_dir.empty() ? fs::path(o.results).parent_path() : fs::path(o.heatmap_dir);
  const fs::path out_dir = dir.empty() ? fs::path(".") : dir;
  if (o.figures) dc::io::make_folders(out_dir);
  add_heatmaps(rep, rows, o, out_dir);
  add_grids(rep, rows, o, out_dir);
  return rep;
}

std::string report_table(const Report& rep, const std::string& format) {
  std::ostringstream out;
  const bool md = format != "csv";
  // Markdown leaves the error column out (the errors are written under the table).
  const std::size_t error_col = rep.head.size() - 1;
  auto line = [&](const std::vector<std::string>& cells) {
    if (md) {
      out << "|";
      for (std::size_t i = 0; i < cells.size(); ++i)
        if (i != error_col) {
          std::string c = cells[i];
          for (auto& ch : c)
            if (ch == '|' || ch == '\n') ch = ch == '|' ? '/' : ' ';
          out << " " << c << " |";
        }
      out << "\n";
    } else {
      for (std::size_t i = 0; i < cells.size(); ++i) {
        std::string c = cells[i];
        if (c.find_first_of(",\"\n\r") != std::string::npos) {
          std::string q = "\"";
          for (char ch : c) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
          c = q + "\"";
        }
        out << (i ? "," : "") << c;
      }
      out << "\n";
    }
  };
  line(rep.head);
  if (md) line(std::vector<std::string>(rep.head.size(), "---"));
  for (const auto& row : rep.rows) {
    std::vector<std::string> cells;
    for (const auto& c : row) cells.push_back(md ? c.text : c.csv);
    line(cells);
  }
  if (md) {
    for (const auto& n : rep.notes) out << "\n" << n << "\n";
    for (const auto& v : rep.pareto) {
      out << fmt::format("\nPareto view, {} ({} is better), {}: every run by MACs per image; * on the frontier (no run of "
                         "the group is as good or better at no more MACs)\n\n",
                         v.metric, v.lower_is_better ? "lower" : "higher", v.group);
      out << "| frontier | role | run | name | GMACs/image | s/image | " << v.metric << " |\n|---|---|---|---|---|---|---|\n";
      for (const auto& p : v.points)
        out << fmt::format("| {} | {} | {} | {} | {:.4g} | {:.4g} | {:.5g} |\n", p.frontier ? "*" : "", p.role, p.key, p.name,
                           p.macs_per_image / 1e9, p.s_per_image, p.value);
    }
    if (!rep.verdicts.empty()) out << "\n";
    for (const auto& v : rep.verdicts) out << v << "\n";
  }
  return out.str();
}

std::string render_report(const ReportOptions& o, std::vector<std::string>* heatmaps) {
  const Report rep = build_report(o);
  if (heatmaps) {
    for (const auto& f : rep.heatmaps) {
      if (!f.png.empty()) heatmaps->push_back(f.png);
      if (!f.svg.empty()) heatmaps->push_back(f.svg);
    }
    for (const auto& f : rep.grids)
      if (!f.png.empty()) heatmaps->push_back(f.png);
  }
  return report_table(rep, o.format);
}

}  // namespace dc::harness
