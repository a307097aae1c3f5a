// Running the built deepcache-bench from tests: exit code, stdout and stderr.
#pragma once
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/fixtures.h"

namespace dc::test {

struct CliRun {
  int code = -1;
  std::string out, err;
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// `args` is a shell-ready argument string (callers quote what needs it). DEEPCACHE_INCEPTION_WEIGHTS
// is removed from the environment so that tests do not depend on the caller's; `env_args` are
// further arguments of env(1) ("-u NAME", "NAME=VALUE").
inline CliRun run_cli(const std::string& args, const std::string& env_args = "") {
  const std::string dir = temp_dir();
  const std::string cmd = "env -u DEEPCACHE_INCEPTION_WEIGHTS " + env_args + " " + shell_quote(sibling_program("deepcache-bench")) + " " + args +
                          " >" + shell_quote(dir + "/out") + " 2>" + shell_quote(dir + "/err");
  const int status = std::system(cmd.c_str());
  CliRun r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::stringstream o, e;
  o << std::ifstream(dir + "/out").rdbuf();
  e << std::ifstream(dir + "/err").rdbuf();
  r.out = o.str();
  r.err = e.str();
  return r;
}

inline CliRun run_cli(const std::vector<std::string>& args) {
  std::string line;
  for (const auto& a : args) line += (line.empty() ? "" : " ") + shell_quote(a);
  return run_cli(line);
}

}  // namespace dc::test
