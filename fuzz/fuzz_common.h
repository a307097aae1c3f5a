// Helpers shared by the libFuzzer targets: the parsers under test read files, so each input is
// written to a file in memory (/dev/shm when present) first. A parser may throw dc::Error (a bad
// input, reported to the user as one line): that is the expected outcome, not a finding. Anything
// else (a crash, a sanitizer report, another exception type, a hang) is.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace dc::fuzz {

inline std::string scratch_path(const char* name) {
  const std::string dir = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path().string();
  return dir + "/dc-fuzz-" + std::to_string(::getpid()) + "-" + name;
}

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

}  // namespace dc::fuzz
