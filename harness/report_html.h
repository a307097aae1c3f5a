// One self-contained HTML page of a report (`report RESULTS.h5 --html OUT.html`): the table, its
// notes, the sample grids and the labelled heatmaps (embedded: PNG as data: URIs, SVG inline) and
// each run's provenance. No script, no external file: it reads offline and prints.
#pragma once
#include <string>

#include "harness/report.h"

namespace dc::harness {

std::string report_html(const Report& report);

// Writes the page atomically (a temporary file renamed over `path`).
void write_report_html(const Report& report, const std::string& path);

// `report`: the table goes to `out` (or to `table_path`, whose .csv extension implies CSV unless
// `format_given`), everything else (notes of a CSV table, the files written) to `err`, so that
// `report R.h5 > t.csv` holds the table only. `html_path`: also the HTML page.
void report_command(ReportOptions options, bool format_given, const std::string& table_path, const std::string& html_path,
                    std::ostream& out, std::ostream& err);

}  // namespace dc::harness
