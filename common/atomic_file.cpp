#include "common/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "common/io_ops.h"

namespace dc {

std::string temporary_name(const std::string& path) { return fmt::format("{}.tmp.{}", path, ::getpid()); }

void write_file_atomically(const std::string& path, std::string_view bytes) {
  const std::string tmp = temporary_name(path);
  auto fail = [&](const char* step, int err) {
    std::remove(tmp.c_str());
    std::string hint;
    if (err == ENOSPC || err == EDQUOT) hint = " (the disk or quota is full: free space and run the same command again)";
    if (err == EROFS || err == EACCES || err == EPERM) hint = " (the folder is not writable here)";
    throw StorageError(fmt::format("{}: cannot write ({}): {}{}; the file is as it was", path, step, std::strerror(err), hint));
  };
  const int fd = io::create(tmp);
  if (fd < 0) fail("creating its temporary file", errno);
  if (!io::write_all(fd, bytes, tmp)) {
    const int e = errno;
    io::close(fd, tmp);
    fail("writing", e);
  }
  if (!io::sync(fd, tmp)) {
    const int e = errno;
    io::close(fd, tmp);
    fail("fsync", e);
  }
  if (!io::close(fd, tmp)) fail("closing", errno);
  if (!io::rename(tmp, path)) fail("renaming its temporary file over it", errno);
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string folder = parent.empty() ? "." : parent.string();
  if (!io::sync_folder(folder))
    throw StorageError(fmt::format("{}: written, but the fsync of its folder {} failed: {}; it may not survive a power loss", path, folder,
                                   std::strerror(errno)));
}

}  // namespace dc
