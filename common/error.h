// User-facing errors. A dc::Error carries one line that names the file, key or value at fault and
// what was expected; the CLI prints it and exits non-zero. Bugs use TORCH_INTERNAL_ASSERT instead.
#pragma once
#include <stdexcept>
#include <string>

namespace dc {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace dc
