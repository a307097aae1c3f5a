// A file written atomically: a temporary file in the same folder (`<path>.tmp.<pid>`), flushed and
// fsynced, then renamed over `path`, so a reader or a crash sees the old file or the new one, never
// a part. Used for every output a command writes whole (PNG, the report's SVG, table and HTML page).
#pragma once
#include <string>
#include <string_view>

namespace dc {

// Throws dc::Error "<path>: cannot write: <reason>"; the temporary file is removed on failure.
void write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace dc
