// What a run needs of the machine, from measurements made before its first sample, checked
// against what the machine has (issue 32): the memory of a batch and the disk its journal and the
// results file will take. `run` refuses a sweep that cannot fit (exit 2, one line with the
// estimate and the setting to change) instead of failing inside the allocator or on a full disk.
//
// Memory, per run on the CPU: the model's parameters and buffers; a full UNet call (and, for
// latent families, a decode) at batch 1 and 2, measured (common/memory_peak.h): what grows with
// the batch and what does not;
// the metric networks (their weights and their peak per image, measured on one and two images);
// the images kept until the commit (save_images, grid) and the metrics' per-sample inputs; the
// results file made in memory at the commit (harness/hdf5_core.h). On CUDA devices the device
// memory is not checked here (LibTorch reports an out-of-memory run as a failed run); the host's is.
//
// Disk, per sweep: the largest journal a run writes (its images uncompressed, its metric inputs)
// plus a copy of the results file (a commit writes the new file beside the old one) must fit in
// the results folder's free space; the images compressed into the results file are not counted
// (their size is not known before sampling), so a sweep that passes may still fill a disk: then
// the commit fails cleanly (common/atomic_file.h) and nothing committed is lost.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dc::harness {

// Measured once per model and per metric set (bytes).
struct RunFootprint {
  std::string run;                  // "run <id> (<name>)"
  int64_t batch = 1, samples = 0;   // the batch and this process's samples of the run
  double model_bytes = 0.0;         // parameters and buffers of every stage, at the run's dtype
  double call_bytes_per_image = 0.0;  // peak of a full call (or decode), per image
  double call_fixed_bytes = 0.0;      // and its part that does not grow with the batch
  double metric_model_bytes = 0.0;  // the metric networks' weights
  double metric_bytes_per_image = 0.0;  // their peak per image
  double record_bytes_per_sample = 0.0;  // metric inputs per sample (journal, results file)
  double image_bytes = 0.0;         // one decoded image, uint8
  int64_t kept_images = 0;          // images held until the commit
  bool host_only = false;           // a CUDA run: only the host's part is checked
  std::string method;               // how the peaks were measured
};

struct Machine {
  double memory_usable = 0.0;  // bytes (common/memory_peak.h); 0: unknown, not checked
  double disk_free = 0.0;      // bytes free for this user in the results folder; < 0: unknown
  double results_size = 0.0;   // the results file now
};

// The memory a batch of the run needs, bytes, and its parts for the message.
double memory_need(const RunFootprint& f, int64_t batch);
// The bytes a run's journal takes at its end (and its results, uncompressed).
double journal_bytes(const RunFootprint& f);

// "memory: about 1.2 GiB for a batch of 128 (model ..., ... per image, measured); 23.0 GiB usable":
// a line of the run's log.
std::string memory_note(const RunFootprint& f, const Machine& machine);

// One message per run that does not fit (memory) and one for the sweep's disk; empty when all fit.
std::vector<std::string> check_resources(const std::vector<RunFootprint>& runs, const Machine& machine, const std::string& results_path);

// Free bytes for this user on the file system of `path` (its first existing folder); -1 unknown.
double disk_free(const std::string& path);

// "1.2 GiB", "340 MiB", "12 KiB" (TiB and PiB above).
std::string bytes_text(double bytes);

}  // namespace dc::harness
