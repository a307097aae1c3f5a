// Hand-made damaged safetensors files, shared by the reader tests and the CLI tests.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace dc::test {

using Bytes = std::vector<uint8_t>;

// 8-byte little-endian length + header text + data bytes.
Bytes make_safetensors(const std::string& header, const Bytes& data, uint64_t length_override = UINT64_MAX);
// A valid file: "alpha" F32 [2, 3] (offsets 0..24), "beta" I64 [4] (24..56), metadata.
Bytes valid_sample();
std::string valid_sample_header();

void write_bytes(const std::string& path, const Bytes& bytes);
Bytes read_bytes(const std::string& path);

struct Damage {
  std::string name;                   // also the file stem
  Bytes bytes;
  std::vector<std::string> phrases;   // each must appear in the error message
  bool fails_on_load = false;         // header is fine; loading the data must fail
};

inline void PrintTo(const Damage& d, std::ostream* os) { *os << d.name; }

// At least 20 kinds: truncation at several points, bad lengths, bad JSON, bad dtypes, overlapping
// and out-of-range offsets, holes, trailing bytes, duplicate names, bad metadata, ...
std::vector<Damage> damage_cases();

}  // namespace dc::test
