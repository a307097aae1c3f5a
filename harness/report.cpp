#include "harness/report.h"

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/image_io.h"
#include "harness/results_store.h"

namespace fs = std::filesystem;

namespace dc::harness {

namespace {

// matplotlib's viridis at 9 evenly spaced points (sRGB 0..255), linearly interpolated.
constexpr unsigned char kViridis[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},   {44, 113, 142}, {33, 144, 141},
                                          {39, 173, 129}, {92, 200, 99},  {170, 220, 50},  {253, 231, 37}};

struct Row {
  std::string run_id, name, status, role, model, sampler, schedule, weights;
  std::string status_note;  // a shard's slice, or what a partial merge holds
  int steps = 0, k = -1, n_interval = 0;
  double macs = 0, s_per_image = 0, speedup = 0, mac_speedup = 0;
  double macs_per_image = 0;  // per call x model calls: what --reference compares across step counts
  std::string group;  // baseline matching key: the configuration less cache and name
  std::map<std::string, double> metrics;  // quality metrics (metrics/* beyond timings)
};

// Timing scalars have their own columns; every other metrics/* value gets a column and a delta.
bool is_timing(const std::string& k) {
  return k == "metrics/seconds" || k == "metrics/samples" || k == "metrics/seconds_per_image" ||
         k == "metrics/samples_per_second" || k == "metrics/full_call_ms" || k == "metrics/partial_call_ms" ||
         k == "metrics/metric_seconds";
}

}  // namespace

std::string baseline_key(const std::string& config_json) {
  nlohmann::json c = nlohmann::json::parse(config_json, nullptr, false);
  if (c.is_discarded() || !c.is_object()) return config_json;
  c.erase("cache");
  c.erase("name");
  return c.dump();
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

std::string render_report(const ReportOptions& o, std::vector<std::string>* heatmaps) {
  if (o.format != "md" && o.format != "csv") throw Error(fmt::format("--format {}: expected md or csv", o.format));
  const auto runs = read_results(o.results);
  std::vector<Row> rows;
  std::map<std::string, double> baseline_time, baseline_macs;
  std::map<std::string, std::map<std::string, double>> baseline_metrics;
  std::set<std::string> metric_names;
  for (const auto& r : runs) {
    Row row;
    row.run_id = r.run_id;
    row.name = r.name;
    row.status = r.status;
    if (r.shard_count > 1) row.status_note = fmt::format("shard {}/{}", r.shard_index, r.shard_count);
    if (!r.partial.empty()) row.status_note = "partial: " + r.partial;
    row.role = r.baseline ? "baseline" : "deepcache";
    nlohmann::json c = nlohmann::json::parse(r.config_json, nullptr, false);
    if (c.is_discarded()) c = nlohmann::json::object();
    row.model = c.value("/model/family"_json_pointer, std::string("?")) + "/" + c.value("/model/preset"_json_pointer, std::string("?"));
    row.weights = c.value("/model/weights"_json_pointer, std::string("?"));
    row.sampler = c.value("/sampler/name"_json_pointer, std::string("?"));
    row.steps = c.value("/sampler/steps"_json_pointer, 0);
    const bool cached = c.value("/cache/enabled"_json_pointer, false);
    if (cached) {
      row.k = c.value("/cache/k"_json_pointer, -1);
      row.n_interval = c.value("/cache/interval"_json_pointer, 0);
      row.schedule = c.value("/cache/schedule"_json_pointer, std::string("?"));
    } else {
      row.schedule = "-";
      if (!r.baseline) row.role = "no cache";
    }
    row.group = baseline_key(r.config_json);
    const double eta = c.value("/sampler/eta"_json_pointer, 0.0);
    if (eta != 0.0) row.sampler += fmt::format(" eta={:g}", eta);
    const double guidance = c.value("/conditioning/guidance"_json_pointer, 1.0);
    if (guidance != 1.0) row.sampler += fmt::format(" cfg={:g}", guidance);
    if (cached && c.value("/cache/feature"_json_pointer, std::string("cached")) == "zero") row.schedule += " zero-feature";
    if (cached && c.value("/cache/mode"_json_pointer, std::string("chained")) == "ldm_released") row.schedule += " ldm-released";
    auto get = [&](const char* k) { auto it = r.scalars.find(k); return it == r.scalars.end() ? 0.0 : it->second; };
    row.macs = get("macs/step_average");
    row.macs_per_image = row.macs * std::max(r.model_calls, 1);
    row.s_per_image = get("metrics/seconds_per_image");
    for (const auto& [k, v] : r.scalars)
      if (k.rfind("metrics/", 0) == 0 && !is_timing(k)) row.metrics[k.substr(8)] = v;
    if (r.baseline && r.status == "complete") {
      baseline_time[row.group] = row.s_per_image;
      baseline_macs[row.group] = row.macs_per_image;
      baseline_metrics[row.group] = row.metrics;
    }
    for (const auto& [k, v] : row.metrics) metric_names.insert(k);
    rows.push_back(row);
    // Heatmaps.
    if (heatmaps && !r.similarity.empty()) {
      const fs::path dir = o.heatmap_dir.empty() ? fs::path(o.results).parent_path() : fs::path(o.heatmap_dir);
      fs::create_directories(dir.empty() ? fs::path(".") : dir);
      for (const auto& [tap, m] : r.similarity) {
        if (m.dim() != 2) continue;
        const fs::path png = (dir.empty() ? fs::path(".") : dir) / fmt::format("similarity_{}_{}.png", r.run_id, tap);
        image::write_png(png.string(), heatmap_image(m, m.min().item<double>(), 1.0, std::max<int64_t>(4, 400 / std::max<int64_t>(m.size(0), 1))));
        heatmaps->push_back(png.string());
      }
    }
  }
  // --reference: every row against one run (e.g. fewer-step DDIM against the full-step baseline).
  if (!o.reference.empty()) {
    const Row* ref = nullptr;
    std::string known;
    for (const auto& row : rows) {
      if (row.run_id.rfind(o.reference, 0) == 0 || row.name == o.reference) {
        if (ref) throw Error(fmt::format("{}: --reference '{}' matches more than one run ({}, {})", o.results, o.reference, ref->run_id, row.run_id));
        ref = &row;
      }
      known += (known.empty() ? "" : ", ") + row.run_id;
    }
    if (!ref) throw Error(fmt::format("{}: --reference '{}' matches no run id or name (runs: {})", o.results, o.reference, known));
    if (ref->status != "complete") throw Error(fmt::format("{}: --reference run {} is {}, not complete", o.results, ref->run_id, ref->status));
    baseline_time.clear();
    baseline_macs.clear();
    baseline_metrics.clear();
    for (auto& row : rows) {
      baseline_time[row.group] = ref->s_per_image;
      baseline_macs[row.group] = ref->macs_per_image;
      baseline_metrics[row.group] = ref->metrics;
    }
  }
  for (auto& row : rows) {
    auto bt = baseline_time.find(row.group);
    if (bt != baseline_time.end() && row.s_per_image > 0) row.speedup = bt->second / row.s_per_image;
    auto bm = baseline_macs.find(row.group);
    if (bm != baseline_macs.end() && row.macs_per_image > 0) row.mac_speedup = bm->second / row.macs_per_image;
  }
  std::ostringstream out;
  const bool md = o.format == "md";
  std::vector<std::string> head = {"run_id", "role", "model", "weights", "sampler", "steps", "k", "m", "N", "schedule",
                                   "MACs (G)", "s/image", "speedup", "MACs speedup"};
  for (const auto& m : metric_names) {
    head.push_back(m);
    head.push_back("delta " + m);
  }
  head.push_back("status");
  auto line = [&](const std::vector<std::string>& cells) {
    if (md) {
      out << "|";
      for (const auto& c : cells) out << " " << c << " |";
      out << "\n";
    } else {
      for (std::size_t i = 0; i < cells.size(); ++i) {
        std::string c = cells[i];
        if (c.find(',') != std::string::npos || c.find('"') != std::string::npos) {
          std::string q = "\"";
          for (char ch : c) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
          c = q + "\"";
        }
        out << (i ? "," : "") << c;
      }
      out << "\n";
    }
  };
  line(head);
  if (md) line(std::vector<std::string>(head.size(), "---"));
  for (const auto& r : rows) {
    const std::string weights = r.weights == "random" ? "RANDOM (untrained)" : fs::path(r.weights).filename().string();
    std::vector<std::string> cells = {
        r.run_id, r.role, r.model, weights, r.sampler, std::to_string(r.steps), r.k >= 0 ? std::to_string(r.k) : "-",
        r.k >= 0 ? std::to_string(r.k + 1) : "-", r.n_interval ? std::to_string(r.n_interval) : "-", r.schedule,
        r.status == "complete" ? fmt::format("{:.3f}", r.macs / 1e9) : "-",
        r.status == "complete" ? fmt::format("{:.4f}", r.s_per_image) : "-", r.speedup > 0 ? fmt::format("{:.2f}x", r.speedup) : "-",
        r.mac_speedup > 0 ? fmt::format("{:.2f}x", r.mac_speedup) : "-"};
    for (const auto& m : metric_names) {
      auto it = r.metrics.find(m);
      cells.push_back(it == r.metrics.end() ? "-" : fmt::format("{:.4g}", it->second));
      auto b = baseline_metrics.find(r.group);
      const bool has_delta = it != r.metrics.end() && b != baseline_metrics.end() && b->second.count(m);
      cells.push_back(has_delta ? fmt::format("{:+.4g}", it->second - b->second.at(m)) : "-");
    }
    cells.push_back(r.status_note.empty() ? r.status : r.status + " (" + r.status_note + ")");
    line(cells);
  }
  if (md) {  // how the times were taken (the CSV stays one table)
    std::set<std::string> clocks;
    for (const auto& r : runs)
      if (r.status == "complete" && !r.timing_clock.empty()) clocks.insert(fmt::format("{} on {}", r.timing_clock, r.device));
    if (!clocks.empty()) {
      std::string joined;
      for (const auto& c : clocks) joined += (joined.empty() ? "" : "; ") + c;
      out << "\ns/image: sampling wall time per image (steady_clock, device synchronised per batch); per-call times (step_time_ms): "
          << joined << "\n";
    }
  }
  return out.str();
}

}  // namespace dc::harness
