// Small string helpers shared across layers (C++17 has no std::string::starts_with).
#pragma once
#include <string_view>

namespace dc {

inline bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

}  // namespace dc
