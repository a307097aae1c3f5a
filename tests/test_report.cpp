// Issue 17's report: the columns a study needs (n, seed, model calls, MACs per call and per image,
// the full-call list and the final power), FID's small-n warning, the plain sampler at equal MACs,
// failed runs with their error (--drop-failed, run --forget), stdout holding the table only, CSV of
// plain numbers, labelled heatmaps with a common scale, and one HTML page checked in a real browser
// (Debian's chromium, headless).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/image_io.h"
#include "harness/config.h"
#include "metrics/fid.h"
#include "harness/report.h"
#include "models/call_plan.h"
#include "harness/report_html.h"
#include "harness/results_store.h"
#include "harness/runner.h"
#include "support/cli.h"
#include "support/csv.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace dc::harness;

namespace {

// DDIM-6 baseline, DeepCache k = 1 N = 2 uniform and non-uniform, plain DDIM-3 and DDIM-4 (their
// costs bracket the cached runs'), FID-FMNIST of 4 samples in 2 batches (128 features: n <= D;
// a bootstrap interval; a timing spread over the 2 batches), similarity maps.
const char* kStudy = R"(experiment: study
description: a small study
base:
  model: {family: ddpm, preset: fmnist, weights: random}
  sampler: {name: ddim, steps: 6, spacing: quad}
  samples: {n: 4, batch: 2, seed: 5, grid: 4}
  similarity: {enabled: true, samples: 2}
  metrics:
    fid_fmnist: {classifier: weights/fmnist/classifier.safetensors, reference: weights/fmnist/test_stats.npz}
sweep: {cache.k: [1], cache.interval: [2]}
runs:
  - {cache.schedule: uniform}
  - {cache.schedule: nonuniform, cache.center: 3, cache.power: 3.0}
  - {cache.enabled: false, sampler.steps: 3}
  - {cache.enabled: false, sampler.steps: 4}
)";

struct Study {
  std::string dir, h5, log;
  ExperimentSpec e;
};

// Runs the study once per test process.
const Study& study() {
  static const Study s = [] {
    Study st;
    st.dir = dc::test::temp_dir() + "/report_study";
    fs::remove_all(st.dir);
    fs::create_directories(st.dir);
    st.h5 = st.dir + "/study.h5";
    std::ofstream(st.dir + "/study.yaml") << kStudy;
    st.e = load_experiment(st.dir + "/study.yaml");
    std::ostringstream log;
    RunOptions o;
    o.results_path = st.h5;
    const auto sum = run_experiment(st.e, o, log, false);
    if (sum.complete != static_cast<int>(st.e.runs.size())) throw std::runtime_error("study failed: " + log.str());
    st.log = log.str();
    return st;
  }();
  return s;
}

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::string c;
  std::istringstream is(line);
  while (std::getline(is, c, sep)) out.push_back(c);
  return out;
}

// The Markdown table as column -> cell per row key.
std::map<std::string, std::map<std::string, std::string>> md_cells(const std::string& md) {
  std::istringstream in(md);
  std::string line;
  std::vector<std::string> head;
  std::map<std::string, std::map<std::string, std::string>> out;
  auto cells = [](const std::string& l) {
    std::vector<std::string> c;
    for (auto& x : split(l.substr(1), '|')) c.push_back(x.size() >= 2 ? x.substr(1, x.size() - 2) : x);
    return c;
  };
  while (std::getline(in, line)) {
    if (!head.empty() && line.empty()) break;  // the main table ends (the Pareto views' tables follow the notes)
    if (line.empty() || line[0] != '|') continue;
    if (head.empty()) {
      head = cells(line);
      continue;
    }
    const auto row = cells(line);
    if (row.empty() || row[0] == "---") continue;
    for (std::size_t i = 0; i < head.size() && i < row.size(); ++i) out[row[0]][head[i]] = row[i];
  }
  return out;
}

}  // namespace

// The tests on the study need the Fashion-MNIST classifier the repository ships.
class ReportStudy : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists("weights/fmnist/classifier.safetensors")) GTEST_SKIP() << "the Fashion-MNIST classifier is absent";
  }
  // The study's results, figures into its folder `figs`.
  static ReportOptions options(const std::string& figs) {
    ReportOptions ro;
    ro.results = study().h5;
    ro.heatmap_dir = study().dir + "/" + figs;
    return ro;
  }
};
class ReportHtml : public ReportStudy {};

TEST(ReportParts, CompactRangesInterpolationAndBase64) {
  EXPECT_EQ(dc::models::compact_ids({0, 1, 2, 3, 5, 7, 9, 10, 11}), "0-3,5,7,9-11");
  EXPECT_EQ(dc::models::compact_ids({4, 0, 2}), "0,2,4");
  EXPECT_EQ(dc::models::compact_ids({0, 1}), "0,1");
  EXPECT_EQ(dc::models::compact_ids({}), "");
  EXPECT_DOUBLE_EQ(interpolate_at({{1, 10}, {3, 30}}, 2), 20);
  EXPECT_DOUBLE_EQ(interpolate_at({{3, 30}, {1, 10}, {5, 10}}, 4), 20);
  EXPECT_DOUBLE_EQ(interpolate_at({{1, 10}, {3, 30}}, 3), 30);
  EXPECT_TRUE(std::isnan(interpolate_at({{1, 10}, {3, 30}}, 3.5))) << "no extrapolation";
  EXPECT_TRUE(std::isnan(interpolate_at({{1, 10}}, 1))) << "one point is no line";
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
}

// The bootstrap interval: reproducible from the same features and seed, another seed draws other
// resamples, and more samples narrow it.
// The timing spread: seconds per image of the full-size timings only (a short last batch runs at
// another throughput), their relative sample standard deviation, "-" (< 0) with fewer than two.
TEST(ReportParts, TimingSpreadUsesTheFullBatchesOnly) {
  const auto sp = timing_spread({2.0, 4.0, 0.5, 3.0}, {2, 2, 1, 2});  // 1, 2 and 1.5 s/image; the 1-image batch left out
  EXPECT_EQ(sp.count, 3);
  EXPECT_DOUBLE_EQ(sp.mean, 1.5);
  EXPECT_NEAR(sp.relative, 0.5 / 1.5, 1e-12);  // sd of {1, 2, 1.5} is 0.5
  const auto one = timing_spread({2.0, 0.5}, {2, 1});
  EXPECT_EQ(one.count, 1);
  EXPECT_LT(one.relative, 0);
  EXPECT_LT(timing_spread({}, {}).relative, 0);
  EXPECT_LT(timing_spread({1.0}, {1, 2}).relative, 0);  // unpaired: nothing
  // The repeats join the batches (one 2-image batch, two repeats: 1, 1.5 and 2 s/image); unpaired
  // repeats count for nothing.
  const auto rep = timing_spread({2.0, 0.5}, {2, 1}, {3.0, 4.0}, {2, 2});
  EXPECT_EQ(rep.count, 3);
  EXPECT_DOUBLE_EQ(rep.mean, 1.5);
  EXPECT_EQ(timing_spread({2.0}, {2}, {3.0}, {}).count, 1);
}

TEST(ReportParts, FrechetBootstrapIsReproducibleAndNarrowsWithMoreSamples) {
  torch::manual_seed(3);
  const torch::Tensor all = torch::randn({800, 4}, torch::kFloat64);
  const Eigen::VectorXd mu = Eigen::VectorXd::Zero(4);
  const Eigen::MatrixXd sigma = Eigen::MatrixXd::Identity(4, 4);
  const auto a = dc::metrics::frechet_bootstrap(all.slice(0, 0, 50), 1.0, mu, sigma, 200, 7);
  const auto b = dc::metrics::frechet_bootstrap(all.slice(0, 0, 50), 1.0, mu, sigma, 200, 7);
  const auto c = dc::metrics::frechet_bootstrap(all.slice(0, 0, 50), 1.0, mu, sigma, 200, 8);
  EXPECT_EQ(a.low, b.low);
  EXPECT_EQ(a.high, b.high);
  EXPECT_NE(a.sd, c.sd);
  EXPECT_LT(a.low, a.high);
  EXPECT_NEAR(a.high - 1.0, 1.959963984540054 * a.sd, 1e-12) << "centred on the estimate";
  EXPECT_NEAR(1.0 - a.low, 1.959963984540054 * a.sd, 1e-12);
  const auto wide = dc::metrics::frechet_bootstrap(all.slice(0, 0, 50), 1.0, mu, sigma, 200, 1);
  const auto narrow = dc::metrics::frechet_bootstrap(all, 1.0, mu, sigma, 200, 1);
  EXPECT_LT(narrow.high - narrow.low, 0.5 * (wide.high - wide.low)) << "16x the samples: about a quarter of the width";
  EXPECT_NE(dc::test::error_text([&] { dc::metrics::frechet_bootstrap(all.slice(0, 0, 1), 1.0, mu, sigma, 100); }), "");
}

// The columns of a study, the full-call list and the final power, MACs per call and per image,
// the plain sampler at equal MACs (interpolated from the plain runs) and the small-n warning.
TEST_F(ReportStudy, ColumnsAStudyNeeds) {
  const Study& s = study();
  const ReportOptions ro = options("figs");
  const Report rep = build_report(ro);
  const std::string md = report_table(rep, "md");
  const auto t = md_cells(md);
  const auto stored = read_results(s.h5);
  ASSERT_EQ(t.size(), stored.size()) << md;
  std::map<int, const StoredRun*> plain;  // steps -> plain run
  for (const auto& r : stored) {
    const auto c = nlohmann::json::parse(r.config_json);
    const auto& row = t.at(r.key);
    EXPECT_EQ(row.at("n"), "4") << md;
    EXPECT_EQ(row.at("seed"), "5") << md;
    EXPECT_EQ(row.at("calls"), std::to_string(r.model_calls)) << md;
    const double per_call = r.scalars.at("macs/step_average") / 1e9;
    EXPECT_EQ(row.at("GMACs/call"), fmt::format("{:.3f}", per_call)) << md;
    EXPECT_EQ(row.at("GMACs/image"), fmt::format("{:.2f}", per_call * r.model_calls)) << md;
    EXPECT_NE(row.at("fid_fmnist").find("(n<=D)"), std::string::npos) << "4 samples of 128 features: " << md;
    // The timing spread over the 2 batches; FID-FMNIST's bootstrap interval as stored by `run`.
    EXPECT_TRUE(std::regex_match(row.at("spread"), std::regex("±[0-9]+\\.[0-9]% \\(2\\)"))) << row.at("spread");
    const double low = r.scalars.at("metrics/fid_fmnist_ci_low"), high = r.scalars.at("metrics/fid_fmnist_ci_high");
    EXPECT_LE(low, high);
    EXPECT_LE(low, r.scalars.at("metrics/fid_fmnist")) << "the interval holds its estimate";
    EXPECT_GE(high, r.scalars.at("metrics/fid_fmnist"));
    EXPECT_EQ(row.at("fid_fmnist ci low"), fmt::format("{:.4g}", low)) << md;
    EXPECT_EQ(row.at("fid_fmnist ci high"), fmt::format("{:.4g}", high)) << md;
    if (!c["cache"]["enabled"].get<bool>()) {
      EXPECT_EQ(row.at("full calls"), fmt::format("all {}", r.model_calls)) << md;
      plain[c["sampler"]["steps"].get<int>()] = &r;
    } else if (c["cache"]["schedule"] == "uniform") {
      EXPECT_EQ(row.at("full calls"), "3: 0,2,4") << md;
    } else {
      EXPECT_EQ(row.at("schedule"), fmt::format("nonuniform c=3 p={:.2f}", r.policy_facts.value("final_power", 0.0))) << md;
      EXPECT_GT(r.policy_facts.value("final_power", 0.0), 1.0);
      EXPECT_EQ(row.at("full calls").substr(0, 3), fmt::format("{}: ", r.full_calls.size())) << md;
    }
  }
  ASSERT_EQ(plain.size(), 3u) << "DDIM-3, -4 and the DDIM-6 baseline";
  // Issue 31: the timing columns and the checks. The bound counts every multiply-accumulate, per
  // image, against the baseline of the same settings.
  const StoredRun* base = plain.at(6);
  auto all_per_image = [](const StoredRun& r) { return r.scalars.at("macs/step_average_all") * r.model_calls; };
  for (const auto& r : stored) {
    const auto& row = t.at(r.key);
    const auto c = nlohmann::json::parse(r.config_json);
    EXPECT_TRUE(std::regex_match(row.at("median s/image"), std::regex("[0-9]+\\.[0-9]{4}"))) << row.at("median s/image");
    EXPECT_TRUE(std::regex_match(row.at("first batch s/image"), std::regex("[0-9]+\\.[0-9]{4}"))) << row.at("first batch s/image");
    EXPECT_TRUE(std::regex_match(row.at("timing check"), std::regex("ok|[0-9]+ warnings? \\(notes\\)"))) << row.at("timing check");
    EXPECT_GE(r.scalars.at("macs/full_all"), r.scalars.at("macs/full"));
    if (c["cache"]["enabled"].get<bool>()) {
      EXPECT_EQ(row.at("bound (all MACs)"), fmt::format("{:.2f}x", all_per_image(*base) / all_per_image(r))) << md;
    } else {
      EXPECT_EQ(row.at("bound (all MACs)"), "1.00x") << "each plain run is the baseline of its settings: " << md;
    }
    // getrusage and the load average of its sampling.
    EXPECT_GT(r.scalars.at("usage/sampled_seconds"), 0.0);
    EXPECT_GT(r.scalars.at("usage/user_seconds") + r.scalars.at("usage/system_seconds"), 0.0);
    EXPECT_GE(r.scalars.at("usage/minor_faults"), 0.0);
    EXPECT_GE(r.scalars.at("usage/cores"), 1.0);
    EXPECT_GE(r.scalars.at("usage/load_start"), 0.0);
    // The log compares each cached run with the baseline made before it in the same process.
    if (c["cache"]["enabled"].get<bool>()) {
      EXPECT_TRUE(std::regex_search(s.log, std::regex(r.run_id + ".*: speedup [0-9.]+x over the baseline; every multiply-accumulate "
                                                                 "allows [0-9.]+x")))
          << s.log;
    }
  }
  EXPECT_NE(md.find("bound (all MACs): counting every multiply-accumulate"), std::string::npos) << md;
  // The plain sampler at equal MACs: interpolated between the plain runs around each cached run's cost.
  for (const auto& r : stored) {
    const auto c = nlohmann::json::parse(r.config_json);
    if (!c["cache"]["enabled"].get<bool>()) {
      EXPECT_EQ(t.at(r.key).at("fid_fmnist plain@equal MACs"), "-") << md;
      continue;
    }
    const double cost = r.scalars.at("macs/step_average") * r.model_calls;
    std::vector<std::pair<double, double>> pts;
    for (const auto& [steps, p] : plain) pts.emplace_back(p->scalars.at("macs/step_average") * p->model_calls, p->scalars.at("metrics/fid_fmnist"));
    std::sort(pts.begin(), pts.end());
    double want = NAN;
    for (std::size_t i = 0; i + 1 < pts.size(); ++i)
      if (cost >= pts[i].first && cost <= pts[i + 1].first)
        want = pts[i].second + (pts[i + 1].second - pts[i].second) * (cost - pts[i].first) / (pts[i + 1].first - pts[i].first);
    ASSERT_TRUE(std::isfinite(want)) << "the plain runs bracket the cached run's cost";
    EXPECT_EQ(t.at(r.key).at("fid_fmnist plain@equal MACs"), fmt::format("{:.4g}", want)) << md;
  }
  EXPECT_NE(md.find("(n<=D): fid_fmnist at n = 4 with D = 128 (5 runs)"), std::string::npos) << md;
  EXPECT_NE(md.find("fid_fmnist ci low, fid_fmnist ci high: the 95% bootstrap interval of fid_fmnist"), std::string::npos) << md;
  EXPECT_NE(md.find("spread: the relative standard deviation of s/image"), std::string::npos) << md;
  EXPECT_NE(md.find("plain@equal MACs: the fid_fmnist of the plain (uncached) runs"), std::string::npos) << md;
  EXPECT_NE(md.find("below the cache branch (k = 1)"), std::string::npos) << "taps the cached runs cannot map: " << md;
  // CSV: plain numbers (no "x", no annotations), one line per run, the full error column.
  const std::string csv = report_table(rep, "csv");
  const auto records = dc::test::csv_records(csv);
  ASSERT_FALSE(records.empty());
  const auto& head = records[0];
  const auto col = [&](const std::string& name) { return std::find(head.begin(), head.end(), name) - head.begin(); };
  int rows = 0;
  for (std::size_t i = 1; i < records.size(); ++i) {
    ++rows;
    const auto& cells = records[i];
    ASSERT_EQ(cells.size(), head.size()) << csv;
    for (const char* numeric : {"speedup", "MACs speedup", "fid_fmnist", "fid_fmnist ci low", "GMACs/image", "s/image", "median s/image",
                                "first batch s/image", "spread", "n", "seed"}) {
      const std::string& v = cells[col(numeric)];
      std::size_t used = 0;
      ASSERT_NO_THROW(std::stod(v, &used)) << numeric << " '" << v << "' in " << csv;
      EXPECT_EQ(used, v.size()) << numeric << " '" << v << "' is not a plain number";
    }
  }
  EXPECT_EQ(rows, static_cast<int>(stored.size()));
  EXPECT_EQ(csv.find("(n<=D)"), std::string::npos);
}

// A failed run shows its error; --drop-failed leaves it out; `run --forget` removes it from the file.
TEST(ReportFailedRuns, ShowTheirErrorAndCanBeDroppedOrForgotten) {
  const std::string dir = dc::test::temp_dir() + "/report_failed";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir + "/e.yaml") << "experiment: failing\nbase:\n  model: {family: ddpm, preset: fmnist, weights: random}\n"
                                    "  sampler: {name: ddim, steps: 3}\n  samples: {n: 2, batch: 2}\nsweep: {cache.k: [1]}\n";
  const auto e = load_experiment(dir + "/e.yaml");
  RunOptions o;
  o.results_path = dir + "/r.h5";
  std::ostringstream log;
  run_experiment(e, o, log, false);
  // The cached run is stored as failed (as a failure while sampling is recorded).
  RunResult failed;
  failed.spec = e.runs.back();
  failed.status = "failed";
  failed.error = "conv2d: out of memory\nwhile sampling batch 3";
  ResultsStore(o.results_path, e.name, e.description).commit(failed);
  ReportOptions ro;
  ro.results = o.results_path;
  std::string md = render_report(ro);
  const std::string id = e.runs.back().run_id;
  EXPECT_NE(md.find("| failed: conv2d: out of memory |"), std::string::npos) << md;
  EXPECT_NE(md.find("Run " + id + " (" + e.runs.back().name + ") failed: conv2d: out of memory\nwhile sampling batch 3. Rerun `run` to "
                    "retry it, or `run --forget " + id + "`"),
            std::string::npos) << md;
  const auto records = dc::test::csv_records(report_table(build_report(ro), "csv"));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].back(), "error");
  EXPECT_EQ(records[2][records[0].size() - 2], "failed");
  EXPECT_EQ(records[2].back(), "conv2d: out of memory\nwhile sampling batch 3");
  ro.drop_failed = true;
  md = render_report(ro);
  EXPECT_EQ(md.find(id), std::string::npos) << md;
  EXPECT_EQ(md_cells(md).size(), 1u) << md;
  // --forget: by id prefix through the CLI; the run is gone from the file, the baseline stays.
  const auto bad = dc::test::run_cli("run " + dc::test::shell_quote(dir + "/e.yaml") + " --results " +
                                     dc::test::shell_quote(o.results_path) + " --forget ffffffff");
  EXPECT_EQ(bad.code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--forget ffffffff: no stored run has this id (prefix) or name (stored: "), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find(id + " (failed)"), std::string::npos) << bad.err;
  const auto r = dc::test::run_cli("run " + dc::test::shell_quote(dir + "/e.yaml") + " --results " +
                                   dc::test::shell_quote(o.results_path) + " --forget " + id.substr(0, 8));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("forgot      " + id), std::string::npos) << r.out;
  const auto left = read_results(o.results_path);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].run_id, e.runs.front().run_id);
  EXPECT_EQ(left[0].status, "complete");
}

// stdout holds the table only; the files written go to stderr; --out x.csv implies CSV.
TEST_F(ReportStudy, StdoutHoldsTheTableOnly) {
  const Study& s = study();
  const std::string figs = dc::test::shell_quote(s.dir + "/cli_figs");
  auto r = dc::test::run_cli("report " + dc::test::shell_quote(s.h5) + " --format csv --heatmaps " + figs);
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream in(r.out);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("run_id,role,model,", 0), 0u) << r.out;
  int lines = 1;
  while (std::getline(in, line)) ++lines;
  EXPECT_EQ(lines, static_cast<int>(study().e.runs.size()) + 1) << "the CSV is the table: " << r.out;
  EXPECT_NE(r.err.find("heatmap     "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("grid        "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("note: (n<=D)"), std::string::npos) << "a CSV's notes go to stderr: " << r.err;
  r = dc::test::run_cli("report " + dc::test::shell_quote(s.h5) + " --heatmaps " + figs);
  EXPECT_EQ(r.out.find("heatmap "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.rfind("| run_id |", 0), 0u) << r.out;
  const std::string out = s.dir + "/t.csv";
  r = dc::test::run_cli("report " + dc::test::shell_quote(s.h5) + " --out " + dc::test::shell_quote(out) + " --heatmaps " + figs);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(dc::test::read_text(out).rfind("run_id,role,model,", 0), 0u) << dc::test::read_text(out);
  EXPECT_NE(r.err.find("table       " + out), std::string::npos) << r.err;
}

// Heatmaps: a labelled SVG per map (title with run and tap, axes in model calls, colour bar) beside
// the pixel PNG; --heatmap-scale common gives every map the same colour bar.
TEST_F(ReportStudy, HeatmapsAreLabelledAndCanShareAScale) {
  ReportOptions ro = options("scale");
  auto bottom_tick = [](const std::string& svg) {  // the colour bar's lowest label
    std::smatch m;
    EXPECT_TRUE(std::regex_search(svg, m, std::regex("<text x=\"[0-9.]+\" y=\"[0-9.]+\">(-?[0-9.]+)</text>"))) << svg.substr(0, 400);
    return m.size() > 1 ? m[1].str() : std::string();
  };
  const Report own = build_report(ro);
  ASSERT_GE(own.heatmaps.size(), 9u) << "the baselines map every tap";
  std::set<std::string> lows;
  for (const auto& h : own.heatmaps) {
    ASSERT_TRUE(fs::exists(h.png)) << h.png;
    ASSERT_TRUE(fs::exists(h.svg)) << h.svg;
    const std::string svg = dc::test::read_text(h.svg);
    EXPECT_EQ(svg, h.svg_text);
    EXPECT_NE(svg.find("run " + h.run_key), std::string::npos) << svg.substr(0, 300);
    EXPECT_NE(svg.find(", tap up."), std::string::npos);
    EXPECT_NE(svg.find("model call i (0 = noisiest)"), std::string::npos);
    EXPECT_NE(svg.find("model call j (0 = noisiest)"), std::string::npos);
    EXPECT_NE(svg.find("cosine similarity"), std::string::npos);
    EXPECT_NE(svg.find("data:image/png;base64,"), std::string::npos);
    lows.insert(bottom_tick(svg));
  }
  EXPECT_GT(lows.size(), 1u) << "own scales differ between maps";
  ro.heatmap_scale = "common";
  lows.clear();
  for (const auto& h : build_report(ro).heatmaps) lows.insert(bottom_tick(h.svg_text));
  EXPECT_EQ(lows.size(), 1u) << "one colour scale";
  ro.heatmap_scale = "shared";
  EXPECT_NE(dc::test::error_text([&] { build_report(ro); }).find("--heatmap-scale shared: expected own"), std::string::npos);
}

// The HTML page in a real browser: Debian's chromium renders it headless; every table row, sample
// grid and heatmap is in the DOM with a non-empty box, and each box in the screenshot is not blank.
TEST_F(ReportHtml, RendersInHeadlessChromium) {
  const std::string chromium = "/usr/bin/chromium";
  ASSERT_TRUE(fs::exists(chromium)) << "Debian's chromium is needed (scripts/setup.sh installs it)";
  const Study& s = study();
  const std::string page = s.dir + "/study.html";
  auto r = dc::test::run_cli("report " + dc::test::shell_quote(s.h5) + " --html " + dc::test::shell_quote(page) + " --heatmaps " +
                             dc::test::shell_quote(s.dir + "/html_figs"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("html        " + page), std::string::npos) << r.err;
  const std::string html = dc::test::read_text(page);
  EXPECT_EQ(html.find("src=\"http"), std::string::npos) << "self-contained";
  EXPECT_EQ(html.find("<script"), std::string::npos);
  // A probe copy: a script that records what the browser laid out into the DOM.
  std::string probe = html;
  probe.insert(probe.rfind("</body>"), R"(<script>
window.addEventListener('load', () => {
  const box = e => { const b = e.getBoundingClientRect(); return [b.left + scrollX, b.top + scrollY, b.width, b.height]; };
  const r = {
    rows: document.querySelectorAll('#runs tbody tr').length,
    table: box(document.getElementById('runs')),
    imgs: [...document.querySelectorAll('figure.grid img')].map(i => ({ok: i.complete && i.naturalWidth > 0, box: box(i)})),
    svgs: [...document.querySelectorAll('figure.heatmap svg')].map(e => ({box: box(e), images: e.querySelectorAll('image').length})),
    height: document.documentElement.scrollHeight
  };
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script>
)");
  const std::string probe_path = s.dir + "/probe.html";
  std::ofstream(probe_path) << probe;
  const std::string flags = "--headless=new --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 "
                            "--no-first-run --disable-extensions --virtual-time-budget=10000 --window-size=1600,1200 ";
  const std::string dom_file = s.dir + "/dom.html";
  int rc = std::system((chromium + " " + flags + "--dump-dom file://" + probe_path + " > " + dc::test::shell_quote(dom_file) +
                        " 2>" + dc::test::shell_quote(s.dir + "/chromium.log")).c_str());
  ASSERT_EQ(rc, 0) << dc::test::read_text(s.dir + "/chromium.log");
  const std::string dom = dc::test::read_text(dom_file);
  const auto at = dom.find("<pre id=\"probe\">");
  ASSERT_NE(at, std::string::npos) << dom.substr(0, 2000);
  const auto j = nlohmann::json::parse(dom.substr(at + 16, dom.find("</pre>", at) - at - 16));
  const auto stored = read_results(s.h5);
  EXPECT_EQ(j["rows"].get<size_t>(), stored.size());
  ASSERT_EQ(j["imgs"].size(), stored.size()) << "a grid per run";
  int maps = 0;
  for (const auto& r2 : stored)
    for (const auto& [tap, m] : r2.similarity) maps += m.dim() == 2;
  ASSERT_EQ(j["svgs"].size(), static_cast<size_t>(maps)) << "a heatmap per stored map";
  // The screenshot of the whole page: every box holds more than one colour.
  const int height = std::min(j["height"].get<int>() + 10, 16000);
  const std::string shot = s.dir + "/shot.png";
  rc = std::system((chromium + " " + flags + "--window-size=1600," + std::to_string(height) + " --screenshot=" + dc::test::shell_quote(shot) +
                    " file://" + probe_path + " >/dev/null 2>>" + dc::test::shell_quote(s.dir + "/chromium.log")).c_str());
  ASSERT_EQ(rc, 0) << dc::test::read_text(s.dir + "/chromium.log");
  const torch::Tensor img = dc::image::read_png(shot).to(torch::kInt32);  // [C, H, W]
  auto not_blank = [&](const nlohmann::json& box, const std::string& what) {
    const int x = box[0].get<double>(), y = box[1].get<double>(), w = box[2].get<double>(), h = box[3].get<double>();
    ASSERT_GT(w, 8) << what;
    ASSERT_GT(h, 8) << what;
    ASSERT_LE(y + h, img.size(1)) << what << ": below the screenshot";
    const torch::Tensor region = img.slice(1, y + 2, y + h - 2).slice(2, x + 2, x + w - 2).contiguous();
    const auto acc = region.accessor<int32_t, 3>();
    std::set<int64_t> colours;
    for (int64_t yy = 0; yy < region.size(1); ++yy)
      for (int64_t xx = 0; xx < region.size(2); ++xx) {
        int64_t c = 0;
        for (int64_t ch = 0; ch < region.size(0); ++ch) c = c * 256 + acc[ch][yy][xx];
        colours.insert(c);
      }
    const int distinct = static_cast<int>(colours.size());
    EXPECT_GT(distinct, 3) << what << " is blank in the screenshot";
  };
  not_blank(j["table"], "the table");
  for (const auto& i : j["imgs"]) {
    EXPECT_TRUE(i["ok"].get<bool>()) << "a grid image did not decode";
    not_blank(i["box"], "a sample grid");
  }
  for (const auto& v : j["svgs"]) {
    EXPECT_EQ(v["images"].get<int>(), 1);
    not_blank(v["box"], "a heatmap");
  }
}
