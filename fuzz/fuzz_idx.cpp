// IDX (MNIST / Fashion-MNIST), plain and gzip: magic, element type, dimensions, sizes against the
// data, trailing bytes, damaged or truncated gzip streams, inflation beyond the header's count.
#include "common/error.h"
#include "fuzz_common.h"
#include "harness/data/idx_core.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = dc::fuzz::scratch_path("in.idx");
  dc::fuzz::write_file(path, data, size);
  try {
    const auto a = dc::data::read_idx_array(path);
    uint64_t count = 1;
    for (int64_t n : a.shape) count *= static_cast<uint64_t>(n);
    if (count != a.data.size()) __builtin_trap();  // the contract: exactly the header's count
  } catch (const dc::Error&) {
  }
  return 0;
}
