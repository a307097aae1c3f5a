// SHA-256 (FIPS 180-4) of files and strings, for provenance records (weights and reference
// statistics are identified by content, not by path). Torch-free.
#pragma once
#include <cstdint>
#include <string>

namespace dc::metrics {

std::string sha256_hex(const std::string& bytes);
// Streams the file; throws dc::Error naming it when it cannot be read. Remembered per process by
// (path, size, modification time): a sweep's provenance records hash each weights file (CLIP
// ViT-g-14: 5.5 GB) once, not once per run; a rewritten file is hashed again.
std::string sha256_file(const std::string& path);

}  // namespace dc::metrics
