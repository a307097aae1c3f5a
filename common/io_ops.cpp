#include "common/io_ops.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <vector>

#include <fmt/format.h>

namespace dc::io {

namespace {

struct FaultPlan {
  long at = 0;       // 1-based index of the operation that fails (0: none)
  int error = 0;     // errno to fail it with
  bool kill = false; // or SIGKILL before it
  std::string trace; // DEEPCACHE_IO_TRACE
};

const FaultPlan& plan() {
  static const FaultPlan p = [] {
    FaultPlan f;
    if (const char* t = std::getenv("DEEPCACHE_IO_TRACE")) f.trace = t;
    const char* s = std::getenv("DEEPCACHE_IO_FAULT");
    if (!s || !*s) return f;
    const std::string v = s;
    const auto colon = v.find(':');
    const std::string what = colon == std::string::npos ? "" : v.substr(colon + 1);
    f.at = std::atol(v.substr(0, colon).c_str());
    if (what == "kill") f.kill = true;
    else if (what == "ENOSPC") f.error = ENOSPC;
    else if (what == "EIO") f.error = EIO;
    else if (what == "EROFS") f.error = EROFS;
    else if (what == "EACCES") f.error = EACCES;
    else if (what == "EDQUOT") f.error = EDQUOT;
    if (f.at < 1 || (!f.kill && f.error == 0)) {
      std::fprintf(stderr, "deepcache-bench: error: DEEPCACHE_IO_FAULT=%s: expected <n>:<ENOSPC|EIO|EROFS|EACCES|EDQUOT|kill>, n >= 1\n", s);
      std::exit(2);
    }
    return f;
  }();
  return p;
}

long g_ops = 0;
std::mutex g_mutex;

// Counts the operation and says whether it is the one to fail (errno set); kills the process
// there when asked to.
bool injected(const char* op, const std::string& path) {
  const FaultPlan& p = plan();
  long n;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    n = ++g_ops;
  }
  if (!p.trace.empty()) {
    if (FILE* t = std::fopen(p.trace.c_str(), "a")) {
      std::fprintf(t, "%ld %s %s\n", n, op, path.c_str());
      std::fclose(t);
    }
  }
  if (n != p.at) return false;
  if (p.kill) ::raise(SIGKILL);
  errno = p.error;
  return true;
}

}  // namespace

int create(const std::string& path) {
  if (injected("create", path)) return -1;
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

bool write_all(int fd, std::string_view bytes, const std::string& path) {
  if (injected("write", path)) return false;
  const char* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    const ssize_t w = ::write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    if (w == 0) {
      errno = ENOSPC;
      return false;
    }
    p += w;
    left -= static_cast<std::size_t>(w);
  }
  return true;
}

bool sync(int fd, const std::string& path) {
  if (injected("fsync", path)) return false;
  return ::fsync(fd) == 0;
}

bool close(int fd, const std::string& path) {
  if (injected("close", path)) {
    const int e = errno;
    ::close(fd);  // the descriptor goes either way, as with a real failed close
    errno = e;
    return false;
  }
  return ::close(fd) == 0;
}

bool rename(const std::string& from, const std::string& to) {
  if (injected("rename", to)) return false;
  return std::rename(from.c_str(), to.c_str()) == 0;
}

bool sync_folder(const std::string& folder) {
  if (injected("fsync-folder", folder)) return false;
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0 || errno == EINVAL;  // some file systems cannot sync a folder
  const int e = errno;
  ::close(fd);
  errno = e;
  return ok;
}

bool make_folder(const std::string& folder) {
  if (injected("mkdir", folder)) return false;
  if (::mkdir(folder.c_str(), 0755) == 0) return true;
  struct stat st {};
  if (errno == EEXIST && ::stat(folder.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return true;
  if (errno == EEXIST) errno = ENOTDIR;
  return false;
}

int open_lock(const std::string& path) {
  if (injected("lock", path)) return -1;
  return ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
}

void make_folders(const std::string& folder) {
  namespace fs = std::filesystem;
  if (folder.empty()) return;
  std::error_code ec;
  if (fs::is_directory(folder, ec)) return;
  fs::path p = fs::absolute(folder, ec).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "a/b/"
  std::vector<fs::path> missing;
  fs::path q = p;
  while (!q.empty() && q != q.root_path() && !fs::exists(q, ec)) {
    missing.push_back(q);
    q = q.parent_path();
  }
  if (missing.empty())
    throw StorageError(fmt::format("{}: cannot make this folder: {} exists and is not a folder", folder, p.string()));
  // Only for a path given from the root: a relative one is under the working folder, which exists
  // (run from "/" in a container, `results/` is a new top-level folder, and meant).
  if (fs::path(folder).is_absolute() && missing.back().parent_path() == p.root_path())
    throw StorageError(fmt::format("{}: cannot make this folder: its top-level folder {} does not exist (a file system that is not "
                                   "mounted?); make it first if it is meant",
                                   folder, missing.back().string()));
  for (auto it = missing.rbegin(); it != missing.rend(); ++it)
    if (!make_folder(it->string()))
      throw StorageError(fmt::format("{}: cannot make this folder: {}", it->string(), std::strerror(errno)));
}

}  // namespace dc::io
