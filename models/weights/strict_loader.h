// Strict state-dict loading into a torch::nn::Module. Every missing, unexpected, mis-shaped or
// type-incompatible key is reported in one dc::Error naming the file; nothing is copied unless
// everything matches (the module is untouched after a failed load).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "models/weights/key_mapping.h"
#include "models/weights/manifest.h"
#include "models/weights/safetensors.h"

namespace dc::weights {

enum class Precision {
  Module,  // floating tensors take the dtype of the module's parameter (float32 module: fp16 -> fp32)
  File,    // floating tensors keep the file's dtype (an fp16 file gives an fp16 module)
};

struct LoadOptions {
  KeyMapping mapping;
  Precision precision = Precision::Module;
  std::string module_name = "module";  // for messages, e.g. "DDPM UNet (cifar10)"
};

struct LoadSummary {
  std::size_t tensors = 0;
  int64_t elements = 0;
  std::size_t converted = 0;  // tensors whose dtype changed
};

// Every parameter and buffer of a module (recursively), with shapes and dtypes.
std::vector<KeyShape> module_keys(const torch::nn::Module& module);

// Compares a module with a manifest (or any key list) after mapping; no loading.
KeyDiff check_module(const torch::nn::Module& module, const std::vector<KeyShape>& keys);

LoadSummary load_strict(torch::nn::Module& module, const st::SafetensorsFile& file,
                        const LoadOptions& options = {});

// Same from tensors already in memory; `what` names their origin in messages.
LoadSummary load_strict(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& tensors,
                        const std::string& what, const LoadOptions& options = {});

// The module's state (parameters and buffers) under its own names, e.g. to save it.
std::vector<std::pair<std::string, torch::Tensor>> state_dict(const torch::nn::Module& module);

}  // namespace dc::weights
