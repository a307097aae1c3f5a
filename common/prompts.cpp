#include "common/prompts.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common/error.h"
#include "common/paths.h"

namespace dc {

namespace {
constexpr std::uintmax_t kMaxBytes = std::uintmax_t{1} << 30;
constexpr std::size_t kMaxLines = 10'000'000;
}  // namespace

std::vector<std::string> parse_prompts(const std::string& text, const std::string& origin) {
  std::vector<std::string> out;
  std::size_t pos = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;  // a byte-order mark
  std::size_t line_no = 0;
  while (pos < text.size()) {
    const std::size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    ++line_no;
    if (line_no > kMaxLines) throw Error(fmt::format("{}: more than {} lines: not a prompt file", origin, kMaxLines));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find('\0') != std::string::npos)
      throw Error(fmt::format("{}:{}: a NUL byte at column {}: not a text file of prompts", origin, line_no, line.find('\0') + 1));
    if (const std::size_t bad = first_invalid_utf8(line); bad != std::string::npos)
      throw Error(fmt::format("{}:{}: not UTF-8 at column {} (byte 0x{:02X}); prompt files are UTF-8 text, one prompt per line", origin,
                              line_no, bad + 1, static_cast<unsigned char>(line[bad])));
    if (line.find_first_not_of(" \t\f\v\r") == std::string::npos)
      throw Error(fmt::format("{}:{}: an empty line; every line is one prompt (sample i is made from line i + 1), so a blank line would "
                              "shift the prompts after it",
                              origin, line_no));
    out.push_back(std::move(line));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  if (out.empty()) throw Error(fmt::format("{}: no prompts (expected UTF-8 text, one prompt per line)", origin));
  return out;
}

std::vector<std::string> read_prompt_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(fmt::format("{}: a folder, not a prompt file (one prompt per line)", path));
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw Error(fmt::format("{}: prompt file not found or unreadable{}", path, relative_path_note(path)));
  if (size > kMaxBytes) throw Error(fmt::format("{}: {} bytes: larger than a prompt file can be (1 GiB)", path, size));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: prompt file not found or unreadable{}", path, relative_path_note(path)));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_prompts(ss.str(), path);
}

}  // namespace dc
