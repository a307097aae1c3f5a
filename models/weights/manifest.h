// Key manifests (`*.keys.json` in the fixtures): the names, shapes and dtypes of a full-size real
// checkpoint, so a model preset can be checked against it without the checkpoint. Torch-free.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/weights/key_mapping.h"
#include "models/weights/safetensors.h"

namespace dc::weights {

struct Manifest {
  std::string path;
  std::string source;                // where the key list comes from
  std::vector<KeyShape> keys;        // in state_dict order
  std::optional<int64_t> num_params; // as the manifest states it (see its notes for what counts)

  // Throws dc::Error naming the file and the offending entry.
  static Manifest load(const std::string& path);
};

struct ShapeMismatch {
  std::string name;
  std::vector<int64_t> expected;
  std::vector<int64_t> actual;
};

struct DTypeDifference {
  std::string name;
  std::string expected;
  std::string actual;
  bool compatible = false;  // both floating (e.g. an fp16 variant of a float32 checkpoint)
};

struct KeyDiff {
  std::size_t matching = 0;               // same name and shape
  std::vector<std::string> missing;       // expected, absent from actual
  std::vector<std::string> unexpected;    // in actual, not expected
  std::vector<ShapeMismatch> shape_mismatches;
  std::vector<DTypeDifference> dtype_differences;

  // True when names and shapes agree and no dtype difference is incompatible.
  bool ok() const;
  // "328 expected, 120 matching, 208 missing, 0 unexpected, 120 shape mismatches"
  std::string summary() const;
};

// Lists follow the order of `expected` (missing, mismatches) and of `actual` (unexpected).
KeyDiff diff_keys(const std::vector<KeyShape>& expected, const std::vector<KeyShape>& actual);

std::vector<KeyShape> keys_of(const st::SafetensorsFile& file);
std::vector<KeyShape> keys_of(const std::vector<MappedKey>& mapped);  // target names

bool dtype_name_is_floating(const std::string& long_name);
// Sum of numel over keys; floating_only skips integer and bool tensors.
int64_t count_elements(const std::vector<KeyShape>& keys, bool floating_only);

}  // namespace dc::weights
