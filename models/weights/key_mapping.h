// Key dialects: how the tensor names of a file become the parameter names of a module.
// Torch-free, so that manifests and `inspect` can use it on names and shapes alone.
//
// Order of application to each source key:
//   1. select_prefix: keep only keys starting with it, and strip it ("" keeps everything);
//   2. ignore prefixes: drop keys starting with any of them (training-only state, schedules);
//   3. rename: an explicit table source -> (target, transform); other keys pass unchanged.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dc::weights {

// A tensor's identity as far as loading is concerned. dtype is the torch-style long name
// ("float32", "int64", ...), as in the fixtures' *.keys.json manifests.
struct KeyShape {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;
};

enum class Transform {
  Copy,          // same tensor
  Squeeze1x1,    // [O, I, 1, 1] conv weight -> [O, I] linear weight
  Unsqueeze1x1,  // [O, I] linear weight -> [O, I, 1, 1] conv weight
};
const char* transform_name(Transform t);
Transform inverse(Transform t);
// Shape after the transform, or nullopt when the transform does not apply to that shape.
std::optional<std::vector<int64_t>> transformed_shape(const std::vector<int64_t>& shape, Transform t);

struct MappedKey {
  std::string source;  // name in the file
  std::string target;  // name in the module
  Transform transform = Transform::Copy;
  std::vector<int64_t> shape;  // after the transform
  std::string dtype;
};

class KeyMapping {
 public:
  KeyMapping& select_prefix(std::string prefix);
  KeyMapping& ignore_prefix(std::string prefix);
  KeyMapping& rename(const std::string& from, const std::string& to, Transform t = Transform::Copy);

  // Reads the object `section` of a JSON map file whose entries are
  //   "source key": ["target key", "copy" | "squeeze_1x1" | "unsqueeze_1x1"]
  // (the layout of fixtures/sd15/sd15_single_file_to_diffusers.map.json). With `invert`, targets
  // become sources (and transforms are inverted). Entries whose (possibly inverted) source does not
  // start with `source_prefix` or whose target does not start with `target_prefix` are skipped; both
  // prefixes are stripped from the kept entries. Throws dc::Error naming the file and the entry.
  static KeyMapping from_map_json(const std::string& path, const std::string& section, bool invert,
                                  const std::string& source_prefix = "",
                                  const std::string& target_prefix = "");

  bool empty() const { return prefix_.empty() && ignores_.empty() && renames_.empty(); }
  const std::string& selected_prefix() const { return prefix_; }
  std::size_t rename_count() const { return renames_.size(); }
  std::string describe() const;

  // Maps every source key. Dropped keys are left out. Throws dc::Error (naming `what`, usually
  // the file) when two sources land on one target or a transform does not fit a shape.
  std::vector<MappedKey> apply(const std::vector<KeyShape>& source, const std::string& what) const;

 private:
  std::string prefix_;
  std::vector<std::string> ignores_;
  std::map<std::string, std::pair<std::string, Transform>> renames_;
};

}  // namespace dc::weights
