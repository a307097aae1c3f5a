// NumPy .npy/.npz without LibTorch (fuzzed: fuzz/fuzz_npz.cpp; metrics/npz.h turns the arrays
// into tensors). Format: numpy/lib/format.py, versions 1.0-3.0; an .npz is a zip (stored or
// deflated) of .npy members, as np.savez / np.savez_compressed and pytorch-fid write them.
//
// The header is a Python dict literal; it is read by a small parser of exactly what numpy writes
// ('descr': a string, 'fortran_order': True/False, 'shape': a tuple of integers), never by a
// regular expression (std::regex recurses per character and a long header overflows the stack).
// Every size is checked before anything is allocated: a member's declared size must equal its
// header's, the header's shape must fit in 2^48 elements, and memory grows only with the bytes the
// archive actually delivers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dc::metrics::npy {

struct Array {
  std::string descr;           // one of descriptors() ("<f8", "|u1", ...)
  std::size_t item_size = 0;   // bytes per element
  bool fortran_order = false;  // data holds the reversed shape in C order when true
  std::vector<int64_t> shape;  // as declared (empty: a scalar)
  std::vector<uint8_t> data;   // exactly product(shape) * item_size bytes, storage order
};

// The descriptors this program reads (little-endian floats and ints, bytes, bools).
const std::vector<std::pair<std::string, std::size_t>>& descriptors();

// The header of a .npy: what parse_header found, where the data starts and how long it must be.
struct Header {
  std::string descr;
  std::size_t item_size = 0;
  bool fortran_order = false;
  std::vector<int64_t> shape;
  std::size_t data_offset = 0;  // bytes before the data (magic + version + length + header)
  std::size_t data_bytes = 0;   // product(shape) * item_size
};

// The header from the first bytes of a .npy (at least data_offset of them: call with 12 bytes to
// learn header_bytes_needed first). Throws dc::Error starting with `what`.
std::size_t header_bytes_needed(const uint8_t* b, std::size_t n, const std::string& what);
Header parse_header(const uint8_t* b, std::size_t n, const std::string& what);

// A whole .npy held in memory: the data must follow the header exactly (no more, no less).
Array parse_npy(const uint8_t* b, std::size_t n, const std::string& what);

// Every .npy member of an .npz, by name without ".npy" (other members are skipped). Throws
// dc::Error naming the file and the member. `max_bytes` caps a member's declared size (default:
// this machine's physical memory).
std::map<std::string, Array> read_npz(const std::string& path, uint64_t max_bytes = 0);
// The same from an archive in memory (`what` names it in errors).
std::map<std::string, Array> read_npz_memory(const uint8_t* b, std::size_t n, const std::string& what, uint64_t max_bytes = 0);

// A version 1.0 .npy of C-order data (np.save's layout: the header padded to 64 bytes).
std::vector<uint8_t> make_npy(const std::string& descr, const std::vector<int64_t>& shape, const void* data, std::size_t nbytes);

}  // namespace dc::metrics::npy
