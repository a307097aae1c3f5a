#include <fmt/format.h>

#include "harness/cli/command.h"
#include "models/registry.h"

namespace dc::cli {

std::string presets_help() {
  std::string h = "model preset (default: the family's first; fmnist is this project's Fashion-MNIST model):";
  for (const auto& f : models::family_names())
    for (const auto& n : models::preset_names(f)) {
      const auto info = models::model_info(f, n);
      std::string taps;
      for (const auto& t : info.tap_names) taps += (taps.empty() ? "" : " ") + t;
      h += fmt::format("\n  {}/{}: S = {} (k in 0..{}); similarity taps: {}", f, n, info.num_skips, info.num_skips - 1, taps);
    }
  return h;
}

}  // namespace dc::cli
