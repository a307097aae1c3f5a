#include "support/damage.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace dc::test {

Bytes make_safetensors(const std::string& header, const Bytes& data, uint64_t length_override) {
  Bytes b(8);
  const uint64_t n = length_override == UINT64_MAX ? header.size() : length_override;
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>((n >> (8 * i)) & 0xff);
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

namespace {
Bytes sample_data(std::size_t n = 56) {
  Bytes d(n);
  for (std::size_t i = 0; i < n; ++i) d[i] = static_cast<uint8_t>(i * 7 + 1);
  return d;
}
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t b, uint64_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}
std::string obj(const std::vector<std::string>& entries) {
  std::string s = "{";
  for (std::size_t i = 0; i < entries.size(); ++i) s += (i ? "," : "") + entries[i];
  return s + "}";
}
const std::string kAlpha = entry("alpha", "F32", "[2,3]", 0, 24);
const std::string kBeta = entry("beta", "I64", "[4]", 24, 56);
}  // namespace

std::string valid_sample_header() { return obj({"\"__metadata__\":{\"format\":\"pt\"}", kAlpha, kBeta}); }
Bytes valid_sample() { return make_safetensors(valid_sample_header(), sample_data()); }

void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<Damage> damage_cases() {
  const Bytes valid = valid_sample();
  const std::string hdr = valid_sample_header();
  std::vector<Damage> d;
  auto add = [&](std::string name, Bytes b, std::vector<std::string> phrases, bool on_load = false) {
    d.push_back({std::move(name), std::move(b), std::move(phrases), on_load});
  };
  // Truncations.
  add("empty_file", {}, {"0 bytes", "too short"});
  add("truncated_in_length", Bytes(valid.begin(), valid.begin() + 5), {"5 bytes", "too short"});
  add("truncated_in_header", Bytes(valid.begin(), valid.begin() + 8 + hdr.size() / 2), {"beyond the end of the file", "truncated"});
  add("truncated_in_data", Bytes(valid.begin(), valid.end() - 3), {"'beta'", "beyond the data section", "truncated"});
  add("truncated_after_header", Bytes(valid.begin(), valid.begin() + 8 + hdr.size()), {"'alpha'", "beyond the data section"});
  // Header length.
  add("header_length_beyond_file", make_safetensors(hdr, sample_data(), 100000), {"header length 100000", "beyond the end of the file"});
  add("header_length_huge", make_safetensors(hdr, sample_data(), uint64_t(1) << 62), {"larger than the 100 MB limit"});
  add("header_length_zero", make_safetensors(hdr, sample_data(), 0), {"header length 0", "too small"});
  // JSON.
  add("invalid_json", make_safetensors("{\"alpha\": {\"dtype\": \"F32\",", sample_data()), {"not valid JSON"});
  add("header_not_object", make_safetensors("[1, 2, 3]", {}), {"does not start with '{'"});
  add("invalid_utf8", make_safetensors("{\"al\xff\xfepha\":{}}", {}), {"not valid JSON"});
  add("deep_nesting", make_safetensors("{\"a\":" + std::string(200, '[') + std::string(200, ']') + "}", {}), {"nested deeper"});
  add("duplicate_name", make_safetensors(obj({kAlpha, entry("alpha", "F32", "[8]", 24, 56)}), sample_data()), {"'alpha'", "appears twice"});
  add("entry_not_object", make_safetensors(obj({kAlpha, "\"beta\":5"}), sample_data()), {"'beta'", "not a JSON object"});
  add("missing_field", make_safetensors(obj({kAlpha, "\"beta\":{\"dtype\":\"I64\",\"shape\":[4]}"}), sample_data()), {"'beta'", "missing field 'data_offsets'"});
  add("bad_metadata", make_safetensors(obj({"\"__metadata__\":{\"epoch\":3}", kAlpha, kBeta}), sample_data()), {"__metadata__", "'epoch'", "not a string"});
  // dtypes and shapes.
  add("unknown_dtype", make_safetensors(obj({kAlpha, entry("beta", "F7", "[4]", 24, 56)}), sample_data()), {"'beta'", "unknown dtype 'F7'"});
  add("unsupported_dtype", make_safetensors(obj({kAlpha, entry("beta", "F8_E4M3", "[32]", 24, 56)}), sample_data()), {"'beta'", "'F8_E4M3'", "not supported"});
  add("shape_byte_mismatch", make_safetensors(obj({kAlpha, entry("beta", "I64", "[5]", 24, 56)}), sample_data()), {"'beta'", "needs 40 bytes", "span 32 bytes"});
  add("negative_dimension", make_safetensors(obj({entry("alpha", "F32", "[-2,3]", 0, 24), kBeta}), sample_data()), {"'alpha'", "not a non-negative integer"});
  add("fractional_dimension", make_safetensors(obj({entry("alpha", "F32", "[2.5,3]", 0, 24), kBeta}), sample_data()), {"'alpha'", "not a non-negative integer"});
  add("shape_overflow", make_safetensors(obj({entry("alpha", "F32", "[4294967296,4294967296]", 0, 24), kBeta}), sample_data()), {"'alpha'", "overflows"});
  // Offsets.
  add("offsets_not_pair", make_safetensors(obj({kAlpha, "\"beta\":{\"dtype\":\"I64\",\"shape\":[4],\"data_offsets\":[24]}"}), sample_data()), {"'beta'", "not a pair"});
  add("offsets_reversed", make_safetensors(obj({kAlpha, entry("beta", "I64", "[0]", 56, 24)}), sample_data()), {"'beta'", "end before they begin"});
  add("offsets_out_of_range", make_safetensors(obj({kAlpha, entry("beta", "I64", "[5]", 24, 64)}), sample_data()), {"'beta'", "[24, 64]", "beyond the data section of 56 bytes"});
  add("offsets_overlap", make_safetensors(obj({kAlpha, entry("beta", "I64", "[5]", 16, 56)}), sample_data()), {"'beta'", "overlap tensor 'alpha'"});
  add("offsets_hole", make_safetensors(obj({kAlpha, entry("beta", "I64", "[3]", 32, 56)}), sample_data()), {"'beta'", "8 unused bytes"});
  add("trailing_garbage", [&] { Bytes b = valid; b.insert(b.end(), 7, 0xAB); return b; }(), {"7 bytes of trailing data"});
  // Not safetensors at all.
  add("zip_checkpoint", [] { Bytes b = {'P', 'K', 3, 4, 20, 0, 0, 0}; b.resize(200, 0); return b; }(), {"zip archive", "convert_ckpt_to_safetensors.py"});
  add("pickle_checkpoint", [] { Bytes b = {0x80, 0x02, 0x7d, 0x71, 0x00, 0x28, 0x58, 0x05}; b.resize(200, 0x41); return b; }(), {"pickle", "convert_ckpt_to_safetensors.py"});
  add("json_manifest", [] { const std::string t = "{\n\"source\": \"x\", \"keys\": []}"; return Bytes(t.begin(), t.end()); }(), {"JSON file", "--against"});
  // Data that only loading sees.
  add("bool_bad_byte", make_safetensors(obj({entry("mask", "BOOL", "[4]", 0, 4)}), Bytes{0, 1, 7, 0}), {"'mask'", "byte 7", "must be 0 or 1"}, true);
  return d;
}

}  // namespace dc::test
