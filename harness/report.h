// Paper-style tables (Markdown, CSV), labelled similarity heatmaps (PNG and SVG), sample grids and
// one self-contained HTML page from a results file (docs/experiments.md, "Reports").
#pragma once
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "harness/results_codec.h"

namespace dc::harness {

// How much a run's time per image varies: the timings of its full batch size (the largest) among
// its batches and its timing.repeats, their mean seconds per image, relative standard deviation
// (< 0 with fewer than two) and number. Seconds and rows pair up (a batch's time, its images);
// unpaired lists count for nothing. `median`: their median seconds per image, which one slow
// timing (a cold first batch, a burst of load) does not move; `first`: the first batch's seconds
// per image, shown apart (< 0 when the first batch is not of the full size).
struct TimingSpread {
  double mean = 0, relative = -1, median = 0, first = -1;
  int count = 0;
};
TimingSpread timing_spread(const std::vector<double>& batch_seconds, const std::vector<double>& batch_rows,
                           const std::vector<double>& repeat_seconds = {}, const std::vector<double>& repeat_rows = {});
// The same of a run's stored timings (timing/batch_*, repeat_*).
TimingSpread timing_spread(const RunRecord& r);

struct ReportOptions {
  std::string results;        // .h5
  std::string format = "md";  // md | csv
  std::string heatmap_dir;    // figures (heatmaps, grids): default the results file's folder
  std::string reference;      // run id (or prefix) or name: speedups and deltas of every row against
                              // it instead of each run's own baseline
  bool drop_failed = false;   // leave failed runs out of the table
  // Heatmap colour scale: "own" (each map from its minimum to 1) or "common" (one scale, from the
  // smallest value of every map in the file to 1, so maps compare by colour).
  std::string heatmap_scale = "own";
  bool figures = true;        // write heatmap and grid files
};

// One cell: as Markdown/HTML shows it, and as CSV holds it (a plain number where it is one).
struct ReportCell {
  std::string text, csv;
  bool numeric = false;  // a number (HTML aligns it right)
};

struct ReportFigure {
  std::string run_key, title;  // title: "run <key> <name>, tap <tap>" or the grid's
  std::string png;             // written file
  std::string svg;             // written labelled figure (heatmaps)
  std::string svg_text;        // its content (for the HTML page)
  std::string png_bytes;       // the PNG's bytes (for the HTML page)
};

// The Pareto view: per comparison group (the runs of one model, sampler and samples, whatever their
// caching and step count) and metric, every complete run's value against its MACs per image (and
// seconds per image), sorted by MACs; the frontier holds the runs no other run of the group beats
// or equals at no more MACs. The plain runs at several step counts are the curve caching must beat.
struct ParetoPoint {
  std::string key, role, name;
  double macs_per_image = 0, s_per_image = 0, value = 0;
  bool frontier = false;
};
struct ParetoView {
  std::string metric, group;
  bool lower_is_better = true;
  std::vector<ParetoPoint> points;
};

struct Report {
  std::string results, experiment, description;
  std::vector<ParetoView> pareto;
  // One line per policy and Frechet metric: its settings that beat, lose to or tie with the plain
  // sampler at equal MACs, by the paired 95% interval (the report's last lines).
  std::vector<std::string> verdicts;
  std::vector<std::string> head;               // column names
  std::vector<std::vector<ReportCell>> rows;   // one per run, in experiment order
  std::vector<std::string> row_keys;           // result key of each row
  std::vector<std::string> row_status;         // complete | failed, per row
  std::vector<std::string> notes;              // warnings and explanations, in order
  std::vector<ReportFigure> heatmaps, grids;
  // Per run (row order): key, label and its provenance lines ("device: cpu", ...).
  std::vector<std::pair<std::string, std::vector<std::string>>> provenance;
};

// Reads the results file, computes the table, its notes and (options.figures) writes the figures.
Report build_report(const ReportOptions& options);

// The table as Markdown (with the notes under it) or CSV (the table only: the caller prints the
// notes elsewhere).
std::string report_table(const Report& report, const std::string& format);

// Table and the written figures' paths (`heatmaps`: PNG and SVG files, then grids), for tests and
// callers that want one string.
std::string render_report(const ReportOptions& options, std::vector<std::string>* heatmaps = nullptr);

// The key that pairs a run with its uncached baseline: its stored configuration less `cache` and
// `name` (config.cpp adds each baseline that way), so every sampler setting (eta, spacing, ...),
// the samples and the device must agree.
std::string baseline_key(const std::string& config_json);

// [S, S] values in [lo, hi] -> [3, S*cell, S*cell] uint8 with the viridis colormap; row i is model
// call i (from the noisiest), column j call j.
torch::Tensor heatmap_image(const torch::Tensor& matrix, double lo, double hi, int64_t cell = 4);

// A labelled figure of a similarity map (SVG): the map (an embedded PNG, one pixel per cell), both
// axes "model call (0 = noisiest)" with ticks, a colour bar from lo to hi, and `title`.
std::string heatmap_svg(const torch::Tensor& matrix, double lo, double hi, const std::string& title);

// Linear interpolation of y at x between the points (x_i, y_i) (any order); NaN when x is outside
// [min x_i, max x_i] or there are fewer than two distinct x_i (no extrapolation).
double interpolate_at(const std::vector<std::pair<double, double>>& points, double x);

// Text for XML and HTML: & < > " escaped.
std::string xml_escape(const std::string& text);

// Base64 (RFC 4648) of bytes, for data: URIs.
std::string base64(const std::string& bytes);

}  // namespace dc::harness
