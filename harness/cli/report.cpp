// deepcache-bench report: the table, heatmaps, grids and the HTML page of a results file.
#include <iostream>
#include <memory>

#include "harness/cli/command.h"
#include "harness/report.h"
#include "harness/report_html.h"

namespace dc::cli {

Command add_report(CLI::App& app) {
  struct ReportState {
    harness::ReportOptions o;
    std::string out, html;
    CLI::Option* format = nullptr;
  };
  auto s = std::make_shared<ReportState>();
  auto* cmd = app.add_subcommand(
      "report", "The table (Markdown or CSV) on stdout, labelled similarity heatmaps (PNG, SVG) and sample grids as files, and with --html "
                "one self-contained page; the files written and notes of a CSV table go to stderr.");
  cmd->add_option("RESULTS", s->o.results, "results .h5 file")->required();
  s->format = cmd->add_option("--format", s->o.format, "md (default) or csv; --out FILE.csv implies csv");
  cmd->add_option("--out", s->out, "write the table here instead of stdout");
  cmd->add_option("--html", s->html, "also write one self-contained HTML page (table, grids, heatmaps, provenance)");
  cmd->add_option("--heatmaps", s->o.heatmap_dir, "folder for heatmaps and grids (default: next to the results)");
  cmd->add_option("--heatmap-scale", s->o.heatmap_scale,
                  "own (default: each map from its minimum to 1) or common (one colour scale for every map of the file)");
  cmd->add_flag("--drop-failed", s->o.drop_failed, "leave failed runs out (`run --forget RUN` removes one from the file)");
  cmd->add_option("--reference", s->o.reference,
                  "run id (or prefix) or name: speedups and deltas of every row against this run instead of each run's own "
                  "uncached baseline (e.g. fewer-step DDIM and DeepCache against the full-step baseline)");
  return {cmd, [s] {
            harness::report_command(s->o, s->format->count() > 0, s->out, s->html, std::cout, std::cerr);
            return 0;
          }};
}

}  // namespace dc::cli
