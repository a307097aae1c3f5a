// CSV as `report --format csv` writes it (RFC 4180), read back by the tests.
#pragma once
#include <string>
#include <vector>

namespace dc::test {

// RFC 4180 records of a CSV text (quoted cells may hold commas, quotes and newlines).
inline std::vector<std::vector<std::string>> csv_records(const std::string& text) {
  std::vector<std::vector<std::string>> out(1, std::vector<std::string>(1));
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') out.back().back() += '"', ++i;
      else if (c == '"') quoted = false;
      else out.back().back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.back().emplace_back();
    } else if (c == '\n') {
      out.emplace_back(1);
    } else {
      out.back().back() += c;
    }
  }
  if (out.back().size() == 1 && out.back()[0].empty()) out.pop_back();
  return out;
}


}  // namespace dc::test
