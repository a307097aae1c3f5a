// Helpers shared by the run, resume, metrics, report and merge tests: a tiny experiment, a stored
// run's images, the CLI started as a child process, the journal's committed records, waiting.
#pragma once
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "harness/hdf5.h"
#include "support/fixtures.h"

namespace dc::test {

inline const char* const kTiny = R"(experiment: tiny
base:
  model: {family: ddpm, preset: cifar10, weights: random}
  sampler: {name: ddim, steps: 3, spacing: quad}
  samples: {n: 4, batch: 4, seed: 3, save_images: true, grid: 4}
)";

inline torch::Tensor images_of(const std::string& h5, const std::string& run_id) {
  auto f = dc::h5::open_file(h5);
  return dc::h5::read_tensor(f.id(), "runs/" + run_id + "/images");
}

// `stderr_file`: where the child's stderr goes (default /dev/null, as its stdout).
inline pid_t spawn_cli(const std::vector<std::string>& args, const std::string& stderr_file = "") {
  const std::string cli = dc::test::sibling_program("deepcache-bench");
  const pid_t pid = fork();
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(stderr_file.empty() ? devnull : ::open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
    std::vector<char*> argv{const_cast<char*>(cli.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(cli.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

inline int journal_records(const std::string& results) {
  int n = 0;
  std::error_code ec;
  if (!std::filesystem::is_directory(results + ".journal")) return 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(results + ".journal", ec))
    n += e.path().filename().string().rfind("batch-", 0) == 0 && e.path().extension() == ".h5";  // not batch-*.h5.tmp.<pid>
  return n;
}

inline void wait_for(const std::function<bool()>& seen, const std::string& what) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!seen()) {
    ASSERT_LT(std::chrono::steady_clock::now(), end) << "timed out waiting for " << what;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace dc::test
