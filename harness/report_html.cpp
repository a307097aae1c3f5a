#include "harness/report_html.h"

#include <ostream>
#include <sstream>

#include <fmt/format.h>

#include "common/atomic_file.h"
#include "common/error.h"

namespace dc::harness {

namespace {

// The SVG as an inline element: without its XML prolog, ids made unique per figure (every heatmap
// defines the colour bar's gradient).
std::string inline_svg(const std::string& svg, std::size_t index) {
  std::string s = svg;
  const std::string id = fmt::format("viridis-{}", index);
  for (const std::string from : {"id=\"viridis\"", "url(#viridis)"}) {
    const std::string to = from[0] == 'i' ? "id=\"" + id + "\"" : "url(#" + id + ")";
    for (auto p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  }
  return s;
}

}  // namespace

std::string report_html(const Report& rep) {
  std::ostringstream o;
  const std::string title = rep.experiment.empty() ? rep.results : rep.experiment;
  o << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" << xml_escape(title) << " - deepcache-bench report</title>\n"
    << "<style>\n"
       "body{font-family:sans-serif;margin:1.5em;color:#111}\n"
       "table{border-collapse:collapse;font-size:12px}\n"
       "th,td{border:1px solid #bbb;padding:2px 6px;text-align:right;white-space:nowrap}\n"
       "th{background:#eee}td.text{text-align:left}\n"
       "tr.failed td{background:#fdd}\n"
       ".figs{display:flex;flex-wrap:wrap;gap:12px}\n"
       "figure{margin:0;border:1px solid #ddd;padding:6px;max-width:560px}\n"
       "figcaption{font-size:12px;max-width:330px}\n"
       ".scroll{overflow-x:auto;max-width:100%}\n"
       "figure img{image-rendering:pixelated;width:320px;height:auto}\n"
       "p.note{max-width:70em;font-size:13px}\n"
       "dl{font-size:12px}dt{font-weight:bold;margin-top:.6em}dd{margin-left:1em}\n"
       "</style>\n</head>\n<body>\n";
  o << "<h1>" << xml_escape(title) << "</h1>\n";
  if (!rep.description.empty()) o << "<p>" << xml_escape(rep.description) << "</p>\n";
  o << "<p>Results file: <code>" << xml_escape(rep.results) << "</code></p>\n";
  o << "<h2>Runs</h2>\n<div class=\"scroll\"><table id=\"runs\">\n<thead><tr>";
  const std::size_t error_col = rep.head.size() - 1;  // errors are under the table
  for (std::size_t i = 0; i < rep.head.size(); ++i)
    if (i != error_col) o << "<th>" << xml_escape(rep.head[i]) << "</th>";
  o << "</tr></thead>\n<tbody>\n";
  for (std::size_t r = 0; r < rep.rows.size(); ++r) {
    const auto& row = rep.rows[r];
    const bool failed = rep.row_status[r] == "failed";
    o << "<tr id=\"run-" << xml_escape(rep.row_keys[r]) << "\"" << (failed ? " class=\"failed\"" : "") << ">";
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (i == error_col) continue;
      o << "<td" << (row[i].numeric ? "" : " class=\"text\"") << ">" << xml_escape(row[i].text) << "</td>";
    }
    o << "</tr>\n";
  }
  o << "</tbody>\n</table></div>\n";
  for (const auto& n : rep.notes) o << "<p class=\"note\">" << xml_escape(n) << "</p>\n";
  if (!rep.grids.empty()) {
    o << "<h2>Samples</h2>\n<div class=\"figs\">\n";
    for (const auto& g : rep.grids)
      o << "<figure class=\"grid\"><img alt=\"" << xml_escape(g.title) << "\" src=\"data:image/png;base64," << base64(g.png_bytes)
        << "\"><figcaption>" << xml_escape(g.title) << "</figcaption></figure>\n";
    o << "</div>\n";
  }
  if (!rep.heatmaps.empty()) {
    o << "<h2>Feature similarity</h2>\n<p class=\"note\">Cosine similarity of a block's output between model calls i and j, "
         "averaged over the first samples; call 0 is the noisiest.</p>\n<div class=\"figs\">\n";
    for (std::size_t i = 0; i < rep.heatmaps.size(); ++i)
      o << "<figure class=\"heatmap\">" << inline_svg(rep.heatmaps[i].svg_text, i) << "</figure>\n";
    o << "</div>\n";
  }
  o << "<h2>Provenance</h2>\n<dl>\n";
  for (const auto& [label, lines] : rep.provenance) {
    o << "<dt>" << xml_escape(label) << "</dt>\n";
    for (const auto& l : lines) o << "<dd>" << xml_escape(l) << "</dd>\n";
  }
  o << "</dl>\n</body>\n</html>\n";
  return o.str();
}

void write_report_html(const Report& rep, const std::string& path) { write_file_atomically(path, report_html(rep)); }

void report_command(ReportOptions o, bool format_given, const std::string& table_path, const std::string& html_path, std::ostream& out,
                    std::ostream& err) {
  if (!format_given && table_path.size() > 4 && table_path.compare(table_path.size() - 4, 4, ".csv") == 0) o.format = "csv";
  const Report rep = build_report(o);
  const std::string table = report_table(rep, o.format);
  if (table_path.empty()) {
    out << table << std::flush;
  } else {
    write_file_atomically(table_path, table);
    err << "table       " << table_path << "\n";
  }
  if (o.format == "csv")  // Markdown holds its notes under the table
    for (const auto& n : rep.notes) err << "note: " << n << "\n";
  for (const auto& f : rep.heatmaps) {
    if (!f.png.empty()) err << "heatmap     " << f.png << "\n";
    if (!f.svg.empty()) err << "heatmap     " << f.svg << " (labelled)\n";
  }
  for (const auto& f : rep.grids)
    if (!f.png.empty()) err << "grid        " << f.png << "\n";
  if (!html_path.empty()) {
    write_report_html(rep, html_path);
    err << "html        " << html_path << "\n";
  }
}

}  // namespace dc::harness
