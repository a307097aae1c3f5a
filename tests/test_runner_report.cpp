// Reports of runs made here: the table with speedups and heatmaps, baselines per sampler setting
// and against a reference run, the publication heatmaps script.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "harness/config.h"
#include "harness/report.h"
#include "harness/results_store.h"
#include "harness/runner.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace dc::harness;
#include "support/runs.h"

using dc::test::kTiny;

namespace {
// Runs an experiment into `h5` and returns its Markdown report (against `reference` when given).
std::string run_and_report(const ExperimentSpec& e, const std::string& h5, const std::string& reference = "") {
  std::ostringstream log;
  RunOptions o;
  o.results_path = h5;
  run_experiment(e, o, log, false);
  ReportOptions ro;
  ro.results = h5;
  ro.reference = reference;
  return render_report(ro);
}


// Lines of the Markdown table (the report may add notes and Pareto views' tables under it: the
// table ends at the first blank line after it).
int table_lines(const std::string& md) {
  int n = 0;
  std::istringstream in(md);
  for (std::string line; std::getline(in, line);) {
    if (n > 0 && line.empty()) break;
    n += !line.empty() && line[0] == '|';
  }
  return n;
}
}  // namespace


TEST(Report, TableWithSpeedupsAndHeatmaps) {
  const std::string dir = dc::test::temp_dir();
  std::string yaml = kTiny;
  yaml += "  similarity: {enabled: true, samples: 2}\nsweep: {cache.k: [1]}\n";
  const auto e = parse_experiment(yaml, "tiny.yaml");
  std::ostringstream log;
  RunOptions o;
  o.results_path = dir + "/rep.h5";
  run_experiment(e, o, log, false);
  ReportOptions ro;
  ro.results = o.results_path;
  std::vector<std::string> maps;
  const std::string md = render_report(ro, &maps);
  EXPECT_NE(md.find("| run_id | role | model |"), std::string::npos) << md;
  EXPECT_NE(md.find("RANDOM (untrained)"), std::string::npos) << md;
  EXPECT_NE(md.find("| plain |"), std::string::npos) << md;
  // speedup, MACs speedup and bound against itself; the timing check's cell (the load of a test run
  // may warn), then the status.
  EXPECT_TRUE(std::regex_search(md, std::regex("\\| 1\\.00x \\| 1\\.00x \\| 1\\.00x \\| [^|]+ \\| complete \\|"))) << "baseline against itself: " << md;
  EXPECT_EQ(table_lines(md), 4) << md;
  // Under the table: how the per-call times were taken (harness/call_timer.h), from the runs.
  EXPECT_NE(md.find("per-call times (step_time_ms): steady_clock on cpu"), std::string::npos) << md;
  // The baseline ran every up block at every step: 12 maps; the cached run only the shallow ones.
  EXPECT_GE(maps.size(), 12u);
  for (const auto& m : maps) EXPECT_TRUE(fs::exists(m)) << m;
  const auto runs = read_results(o.results_path);
  for (const auto& r : runs) {
    if (!r.baseline) continue;
    const auto& m = r.similarity.at("up.0.block.2");
    EXPECT_EQ(m.sizes(), (std::vector<int64_t>{3, 3}));
    EXPECT_NEAR(m[1][1].item<double>(), 1.0, 1e-5) << "a step is identical to itself";
    EXPECT_TRUE(torch::allclose(m, m.t()));
  }
  ro.format = "csv";
  const std::string csv = render_report(ro);
  EXPECT_EQ(csv.rfind("run_id,role,model,", 0), 0u) << csv;
  EXPECT_EQ(csv.find("steady_clock"), std::string::npos) << "the CSV is one table: " << csv;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3) << csv;
  for (const auto& r : runs) EXPECT_EQ(r.timing_clock, "steady_clock") << r.run_id;
  ro.format = "xml";
  EXPECT_THROW(render_report(ro), dc::Error);
}

// Each run is compared with the baseline of its own sampler settings (eta included), and
// --reference compares every row with one chosen run instead.
TEST(Report, BaselinePerSamplerSettingAndReferenceRun) {
  const std::string dir = dc::test::temp_dir();
  const auto e = parse_experiment(std::string(kTiny) + "sweep: {cache.k: [1], sampler.eta: [0.0, 1.0]}\n", "tiny.yaml");
  ASSERT_EQ(e.runs.size(), 4u);
  std::map<double, std::set<std::string>> keys;  // eta -> baseline keys of its runs
  for (const auto& r : e.runs) keys[r.resolved["sampler"]["eta"].get<double>()].insert(baseline_key(r.resolved.dump()));
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0.0].size(), 1u) << "a cached run and its baseline share the key";
  EXPECT_EQ(keys[1.0].size(), 1u);
  EXPECT_NE(*keys[0.0].begin(), *keys[1.0].begin()) << "eta must separate baselines";

  const std::string md = run_and_report(e, dir + "/eta.h5");
  ReportOptions ro;
  ro.results = dir + "/eta.h5";
  EXPECT_EQ(table_lines(md), 6) << md;
  std::size_t eta_rows = 0;
  for (std::size_t p = md.find("ddim eta=1"); p != std::string::npos; p = md.find("ddim eta=1", p + 1)) ++eta_rows;
  EXPECT_EQ(eta_rows, 2u) << md;

  // Against one run: that run is 1.00x, a cached run's MAC speedup is the same as against its own.
  const auto runs = read_results(ro.results);
  std::string base0;
  for (const auto& r : runs)
    if (r.baseline && nlohmann::json::parse(r.config_json)["sampler"]["eta"].get<double>() == 0.0) base0 = r.run_id;
  ASSERT_FALSE(base0.empty()) << md;
  ro.reference = base0.substr(0, 8);
  const std::string against = render_report(ro);
  // The cell under `column` in the row of run `id` of a Markdown table.
  const auto cell = [](const std::string& table, const std::string& id, const std::string& column) {
    auto split = [](const std::string& line) {
      std::vector<std::string> cells;
      std::istringstream is(line);
      std::string c;
      while (std::getline(is, c, '|')) cells.push_back(c.size() > 2 ? c.substr(1, c.size() - 2) : c);
      return cells;
    };
    const auto head = split(table.substr(0, table.find('\n')));
    const auto p = table.find("| " + id + " |");
    if (p == std::string::npos) return std::string("(no row)");
    const auto row = split(table.substr(p, table.find('\n', p) - p));
    for (std::size_t i = 0; i < head.size() && i < row.size(); ++i)
      if (head[i] == column) return row[i];
    return std::string("(no column)");
  };
  EXPECT_EQ(cell(against, base0, "speedup"), "1.00x") << against;
  for (const auto& r : runs) {
    // MACs do not depend on eta: against the eta = 0 baseline every row keeps its MAC speedup.
    EXPECT_EQ(cell(against, r.run_id, "MACs speedup"), cell(md, r.run_id, "MACs speedup")) << against;
    if (r.baseline) {
      EXPECT_EQ(cell(md, r.run_id, "speedup"), "1.00x") << "each baseline against itself: " << md;
    }
  }
  // Across step counts the MAC speedup is per image: DDIM-2 against DDIM-3 does 2/3 of the work.
  const auto steps = parse_experiment(std::string(kTiny) + "runs:\n  - {cache.enabled: false}\n  - {cache.enabled: false, sampler.steps: 2}\n",
                                      "steps.yaml");
  ASSERT_EQ(steps.runs.size(), 2u);
  const std::string by_steps = run_and_report(steps, dir + "/steps.h5", steps.runs[0].run_id);
  EXPECT_EQ(cell(by_steps, steps.runs[0].run_id, "MACs speedup"), "1.00x") << by_steps;
  EXPECT_EQ(cell(by_steps, steps.runs[1].run_id, "MACs speedup"), "1.50x") << by_steps;
  ReportOptions own;
  own.results = dir + "/steps.h5";
  EXPECT_EQ(cell(render_report(own), steps.runs[1].run_id, "MACs speedup"), "1.00x") << "against its own baseline";

  ro.reference = "no-such-run";
  try {
    render_report(ro);
    ADD_FAILURE() << "an unknown --reference must fail";
  } catch (const dc::Error& err) {
    EXPECT_NE(std::string(err.what()).find("no-such-run"), std::string::npos) << err.what();
  }
}

TEST(PlotScript, DrawsPublicationHeatmapsFromTheResults) {
  const std::string py = dc::test::python_with("h5py, matplotlib");
  if (py.empty()) GTEST_SKIP() << "no Python with h5py and matplotlib (Debian: python3-h5py python3-matplotlib)";
  const std::string dir = dc::test::temp_dir();
  std::string yaml = kTiny;
  yaml += "  similarity: {enabled: true, taps: [up.0.block.2], samples: 1}\nbaseline: false\n";
  const auto e = parse_experiment(yaml, "tiny.yaml");
  std::ostringstream log;
  RunOptions o;
  o.results_path = dir + "/p.h5";
  run_experiment(e, o, log, false);
  const std::string script = fs::absolute("scripts/plot_similarity.py").string();
  const std::string stem = "plot_similarity_" + e.runs[0].run_id + "_up.0.block.2";
  ASSERT_EQ(std::system((py + " " + script + " " + o.results_path + " --out " + dir + "/plots >" + dir + "/stdout.txt").c_str()), 0);
  EXPECT_TRUE(fs::exists(dir + "/plots/" + stem + ".png"));
  EXPECT_TRUE(fs::exists(dir + "/plots/" + stem + ".pdf"));
  const std::string out = dc::test::read_text(dir + "/stdout.txt");
  EXPECT_NE(out.find(stem + ".png"), std::string::npos) << out;
  EXPECT_EQ(out.find("b'"), std::string::npos) << "bytes printed as b'...': " << out;
  // By default next to the results, where `report` writes similarity_<run>_<tap>.png: that file stays `report`'s.
  const std::string report_png = dir + "/similarity_" + e.runs[0].run_id + "_up.0.block.2.png";
  std::ofstream(report_png) << "report's heatmap";
  ASSERT_EQ(std::system((py + " " + script + " " + o.results_path + " >/dev/null").c_str()), 0);
  EXPECT_TRUE(fs::exists(dir + "/" + stem + ".png"));
  EXPECT_TRUE(fs::exists(dir + "/" + stem + ".pdf"));
  EXPECT_EQ(dc::test::read_text(report_png), "report's heatmap");
}
