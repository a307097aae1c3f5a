// Recognise which model family a set of checkpoint keys belongs to, from key patterns and shapes
// alone (no loading). Used by `deepcache-bench inspect`. Torch-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/weights/key_mapping.h"

namespace dc::weights {

struct FamilyComponent {
  std::string family;       // stable id: "ddpm-unet", "compvis-unet", "diffusers-unet", ...
  std::string description;  // human text naming the reference code
  std::string prefix;       // key prefix of this component in the file ("" = none)
  std::size_t tensors = 0;
  int64_t elements = 0;
  std::vector<std::string> details;  // "ch=128", "ch_mult=[1, 2, 2, 2]", ...
};

struct FamilyReport {
  std::string headline;  // e.g. "Stable Diffusion v1 single-file checkpoint", or "unrecognised"
  std::vector<FamilyComponent> components;  // recognised parts, in prefix order
  std::vector<std::string> unrecognised_prefixes;  // groups of keys no pattern claims
  std::size_t unrecognised_tensors = 0;
  bool recognised() const { return !components.empty(); }
};

FamilyReport detect_family(const std::vector<KeyShape>& keys);

}  // namespace dc::weights
