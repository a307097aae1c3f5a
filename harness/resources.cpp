#include "harness/resources.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

namespace fs = std::filesystem;

namespace dc::harness {

std::string bytes_text(double b) {
  constexpr double kTiB = 1024.0 * 1024 * 1024 * 1024;
  if (b >= 1024.0 * kTiB) return fmt::format("{:.1f} PiB", b / (1024.0 * kTiB));
  if (b >= kTiB) return fmt::format("{:.1f} TiB", b / kTiB);
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.1f} GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt::format("{:.0f} MiB", b / (1024.0 * 1024));
  return fmt::format("{:.0f} KiB", std::ceil(b / 1024.0));
}

namespace {
// What does not grow with the batch: the model, the metric networks, the images and metric inputs
// kept until the commit (three times around it: the batches, their concatenation and the results
// file made in memory).
double fixed_need(const RunFootprint& f) {
  const double kept = static_cast<double>(f.kept_images) * f.image_bytes + static_cast<double>(f.samples) * f.record_bytes_per_sample;
  return (f.host_only ? 0.0 : f.model_bytes + f.call_fixed_bytes) + f.metric_model_bytes + 3.0 * kept;
}
double per_image(const RunFootprint& f) { return (f.host_only ? 0.0 : f.call_bytes_per_image) + f.metric_bytes_per_image; }
}  // namespace

double memory_need(const RunFootprint& f, int64_t batch) { return fixed_need(f) + static_cast<double>(batch) * per_image(f); }

std::string memory_note(const RunFootprint& f, const Machine& m) {
  const int64_t b = std::max<int64_t>(1, std::min(f.batch, std::max<int64_t>(f.samples, 1)));
  return fmt::format("memory: about {} for a batch of {} ({}{} per image in a call, metric networks {}; {}){}", bytes_text(memory_need(f, b)), b,
                     f.host_only ? "host only: " : fmt::format("model {}, ", bytes_text(f.model_bytes)),
                     bytes_text(f.host_only ? 0.0 : f.call_bytes_per_image), bytes_text(f.metric_model_bytes), f.method,
                     m.memory_usable > 0 ? fmt::format("; {} usable", bytes_text(m.memory_usable)) : "");
}

double journal_bytes(const RunFootprint& f) {
  return static_cast<double>(f.kept_images) * f.image_bytes + static_cast<double>(f.samples) * f.record_bytes_per_sample;
}

std::vector<std::string> check_resources(const std::vector<RunFootprint>& runs, const Machine& m, const std::string& results_path) {
  std::vector<std::string> out;
  for (const auto& f : runs) {
    if (m.memory_usable <= 0) break;
    const int64_t b = std::max<int64_t>(1, std::min(f.batch, std::max<int64_t>(f.samples, 1)));
    const double need = memory_need(f, b);
    if (need <= m.memory_usable) continue;
    const double room = m.memory_usable - fixed_need(f);
    const int64_t fits = per_image(f) > 0 && room > 0 ? static_cast<int64_t>(std::floor(room / per_image(f))) : 0;
    std::string parts = fmt::format("{}{} per image in a call ({}), metric networks {} + {} per image, images and metric inputs kept until the commit {}",
                                    f.host_only ? "" : fmt::format("model {}, ", bytes_text(f.model_bytes)),
                                    bytes_text(f.host_only ? 0.0 : f.call_bytes_per_image), f.method, bytes_text(f.metric_model_bytes),
                                    bytes_text(f.metric_bytes_per_image), bytes_text(3.0 * journal_bytes(f)));
    const std::string fix = fits >= 1 ? fmt::format("set samples.batch to {} or less", fits)
                                      : "not even a batch of 1 fits: lower samples.n, turn samples.save_images off, or use a machine with more memory";
    out.push_back(fmt::format("{}: a batch of {} needs about {} of memory ({}); this machine can give {}: {}", f.run, b, bytes_text(need), parts,
                              bytes_text(m.memory_usable), fix));
  }
  if (m.disk_free >= 0 && !runs.empty()) {
    const auto largest = std::max_element(runs.begin(), runs.end(), [](const RunFootprint& a, const RunFootprint& b) {
      return journal_bytes(a) < journal_bytes(b);
    });
    const double need = journal_bytes(*largest) + m.results_size;
    if (need > m.disk_free)
      out.push_back(fmt::format("{}: the results folder has {} free; {}'s journal needs {} ({} images kept uncompressed until the commit, "
                                "metric inputs) and a commit a copy of the results file ({}): free space, lower samples.n, or turn "
                                "samples.save_images off",
                                results_path, bytes_text(m.disk_free), largest->run, bytes_text(journal_bytes(*largest)), largest->kept_images,
                                bytes_text(m.results_size)));
  }
  return out;
}

double disk_free(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  while (!p.empty() && !fs::exists(p, ec) && p != p.root_path()) p = p.parent_path();
  struct statvfs s {};
  if (p.empty() || ::statvfs(p.c_str(), &s) != 0) return -1.0;
  return static_cast<double>(s.f_bavail) * static_cast<double>(s.f_frsize);
}

}  // namespace dc::harness
