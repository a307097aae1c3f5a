// The IDX parser without LibTorch (fuzzed: fuzz/fuzz_idx.cpp): see idx.h for the format.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dc::data {

struct IdxArray {
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // row-major, shape's product bytes
};

// Reads a plain or gzip-compressed IDX file of unsigned bytes. The header is checked before the
// elements are read, and memory grows only with what the file actually delivers (a gzip stream
// that inflates beyond the header's count, or a header claiming 2^40 elements in a small file, is
// an error without allocating them). Throws dc::Error naming the file.
IdxArray read_idx_array(const std::string& path);

}  // namespace dc::data
