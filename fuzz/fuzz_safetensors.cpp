// safetensors: header length, JSON header (dtypes, shapes, offsets, metadata), data extent.
#include <cstring>

#include "common/error.h"
#include "fuzz_common.h"
#include "models/weights/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = dc::fuzz::scratch_path("in.safetensors");
  dc::fuzz::write_file(path, data, size);
  try {
    const auto f = dc::st::SafetensorsFile::open(path);
    volatile uint64_t sum = 0;
    for (const auto& t : f.tensors()) {  // every byte the header promises must be readable
      const uint8_t* p = f.data(t);
      if (t.nbytes() > 0) sum += p[0] + p[t.nbytes() - 1];
      (void)f.at(t.name);
    }
  } catch (const dc::Error&) {
  }
  return 0;
}
