// How a relative path was read, for "not found" messages: every path in an experiment YAML, on the
// command line and in `--set` is read from the working directory (only `include:` is relative to
// the YAML's folder; docs/experiments.md, "Paths"), so a message names the directory it looked in.
#pragma once
#include <filesystem>
#include <string>
#include <system_error>

namespace dc {

// "" for an absolute path; otherwise " (relative to the working directory /x; ...)".
inline std::string relative_path_note(const std::string& path) {
  if (path.empty() || std::filesystem::path(path).is_absolute()) return "";
  std::error_code ec;
  const auto cwd = std::filesystem::current_path(ec);
  return " (a relative path, read from the working directory " + (ec ? std::string("?") : cwd.string()) +
         ", not from the experiment file's folder)";
}

}  // namespace dc
