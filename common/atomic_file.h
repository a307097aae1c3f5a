// A file written atomically and durably: a temporary file in the same folder (`<path>.tmp.<pid>`)
// written, fsynced and closed, each step checked; then renamed over `path` and the folder fsynced.
// A reader or a crash sees the old file or the new one, never a part. Used for every file a
// command writes whole: results files and journal records (their HDF5 images made in memory,
// harness/hdf5_core.h), PNGs, the report's SVG, table and HTML page. Every step goes through
// common/io_ops.h (checked, fault-injectable).
#pragma once
#include <string>
#include <string_view>

namespace dc {

// On failure the temporary file is removed, `path` is as it was (byte for byte) unless only the
// final folder fsync failed (then the new file is in place but not known to be on the disk), and
// dc::StorageError "<path>: cannot write (<step>): <reason>" is thrown.
void write_file_atomically(const std::string& path, std::string_view bytes);

// The temporary file name write_file_atomically uses for `path` in this process.
std::string temporary_name(const std::string& path);

}  // namespace dc
