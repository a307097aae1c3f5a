#include "harness/yaml_source.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common/error.h"
#include "common/strings.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace dc::harness {

namespace {

// ---- YAML -> JSON, remembering the line of every key path (Source: harness/config_reader.h) -----
json scalar_to_json(const YAML::Node& n) {
  const std::string s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted: always a string
  if (s == "~" || s == "null" || s == "Null" || s == "NULL" || s.empty()) return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  char* end = nullptr;
  errno = 0;
  const long long i = std::strtoll(s.c_str(), &end, 10);
  if (end && *end == '\0' && errno == 0) return i;
  errno = 0;
  const double d = std::strtod(s.c_str(), &end);
  if (end && *end == '\0' && errno == 0) return d;
  return s;
}

// A scalar (or key) after YAML's escapes must still be UTF-8: yaml-cpp turns the escapes \_, \N,
// \L, \P and \x80-\xff of a double-quoted string into single bytes, not UTF-8 sequences (found by
// fuzz/fuzz_experiment.cpp).
const std::string& utf8_scalar(const std::string& s, const YAML::Node& n, const std::string& path, const Source& src) {
  if (const std::size_t bad = first_invalid_utf8(s); bad != std::string::npos)
    throw Error(fmt::format("{}:{}: {}: not UTF-8 after YAML's escapes (byte 0x{:02X}; yaml-cpp decodes \\_, \\N, \\L, \\P and "
                            "\\x80-\\xff escapes to single bytes): write the character itself",
                            src.origin, n.Mark().line + 1, path.empty() ? "(top level)" : path, static_cast<unsigned char>(s[bad])));
  return s;
}

json yaml_to_json(const YAML::Node& n, const std::string& path, Source& src) {
  if (n.IsMap()) {
    json o = json::object();
    for (const auto& kv : n) {
      const std::string key = utf8_scalar(kv.first.as<std::string>(), kv.first, path, src);
      const std::string p = path.empty() ? key : path + "." + key;
      if (o.contains(key)) throw Error(fmt::format("{}:{}: key '{}' appears twice", src.origin, kv.first.Mark().line + 1, p));
      src.lines[p] = kv.first.Mark().line + 1;
      o[key] = yaml_to_json(kv.second, p, src);
    }
    return o;
  }
  if (n.IsSequence()) {
    json a = json::array();
    std::size_t i = 0;
    for (const auto& e : n) a.push_back(yaml_to_json(e, fmt::format("{}[{}]", path, i++), src));
    return a;
  }
  if (n.IsScalar()) {
    utf8_scalar(n.Scalar(), n, path, src);
    return scalar_to_json(n);
  }
  return nullptr;
}

}  // namespace

json load_yaml(const std::string& text, Source& src) {
  // YAML is Unicode text; bytes that are not UTF-8 would reach run ids and messages as strings
  // that JSON cannot serialise (found by fuzz/fuzz_experiment.cpp).
  if (const std::size_t bad = first_invalid_utf8(text); bad != std::string::npos) {
    const std::size_t line = 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(bad), '\n'));
    throw Error(fmt::format("{}:{}: not UTF-8 (byte 0x{:02X} at offset {}); an experiment YAML is UTF-8 text", src.origin, line,
                            static_cast<unsigned char>(text[bad]), bad));
  }
  try {
    return yaml_to_json(YAML::Load(text), "", src);
  } catch (const YAML::Exception& e) {
    throw Error(fmt::format("{}:{}: not valid YAML: {}", src.origin, e.mark.line + 1, e.msg));
  }
}

std::string read_text(const std::string& path, const std::string& what) {
  // A regular file of sane size: `include: /dev/zero` or a directory must not read forever.
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!ec && fs::exists(status) && !fs::is_regular_file(status)) throw Error(fmt::format("{}: the {} is not a regular file", path, what));
  constexpr std::uintmax_t kMaxYaml = std::uintmax_t{16} << 20;
  if (const std::uintmax_t size = !ec && fs::is_regular_file(status) ? fs::file_size(path, ec) : 0; !ec && size > kMaxYaml)
    throw Error(fmt::format("{}: the {} has {} bytes (more than 16 MiB): not an experiment description", path, what, size));
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open {}", path, what));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace dc::harness
