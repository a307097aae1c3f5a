// NumPy .npz (zip, stored or deflated) and bare .npy: the zip directory (through libzip), the .npy
// header (a hand-written parser of numpy's dict literal), declared sizes against the data.
#include "common/error.h"
#include "metrics/npy_core.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dc::metrics::npy;
  auto check = [](const Array& a) {  // the contract: exactly product(shape) * item_size bytes
    uint64_t count = 1;
    for (int64_t n : a.shape) count *= static_cast<uint64_t>(n);
    if (count * a.item_size != a.data.size()) __builtin_trap();
  };
  try {
    if (size >= 6 && data[0] == 0x93 && data[1] == 'N') {
      check(parse_npy(data, size, "in.npy"));
    } else {
      for (const auto& [name, a] : read_npz_memory(data, size, "in.npz", uint64_t{64} << 20)) check(a);
    }
  } catch (const dc::Error&) {
  }
  return 0;
}
