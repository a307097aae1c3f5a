// Small string helpers shared across layers (C++17 has no std::string::starts_with).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace dc {

inline bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// `text` safe to print on a terminal and in logs: bytes that are not part of valid UTF-8 and
// control characters other than newline and tab become \xNN (error messages quote users' bytes:
// a damaged file's header, an invalid prompt).
inline std::string printable(std::string_view text) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  const auto escape = [&](unsigned char c) {
    out += "\\x";
    out += hex[c >> 4];
    out += hex[c & 15];
  };
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) escape(c);
      else out += static_cast<char>(c);
      ++i;
      continue;
    }
    // The length of a well-formed UTF-8 sequence starting here (RFC 3629: no overlongs, no
    // surrogates, nothing above U+10FFFF), or 0.
    std::size_t n = 0;
    const auto at = [&](std::size_t k) { return i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0; };
    const auto cont = [&](std::size_t k) { return (at(k) & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF && cont(1)) n = 2;
    else if (c == 0xE0 && at(1) >= 0xA0 && at(1) <= 0xBF && cont(2)) n = 3;
    else if (((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) && cont(1) && cont(2)) n = 3;
    else if (c == 0xED && at(1) >= 0x80 && at(1) <= 0x9F && cont(2)) n = 3;
    else if (c == 0xF0 && at(1) >= 0x90 && at(1) <= 0xBF && cont(2) && cont(3)) n = 4;
    else if (c >= 0xF1 && c <= 0xF3 && cont(1) && cont(2) && cont(3)) n = 4;
    else if (c == 0xF4 && at(1) >= 0x80 && at(1) <= 0x8F && cont(2) && cont(3)) n = 4;
    if (n == 0) {
      escape(c);
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

// The offset of the first byte of `s` that is not part of well-formed UTF-8 (RFC 3629: no
// overlongs, no surrogates, nothing above U+10FFFF), or npos.
inline std::size_t first_invalid_utf8(std::string_view s) {
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned c = b[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return i;  // a continuation byte, an overlong lead (C0, C1) or F5..FF
    if (i + len > n) return i;
    for (std::size_t k = 1; k < len; ++k) {
      if ((b[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (b[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string::npos;
}

}  // namespace dc
