#include "harness/writer_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include <fmt/format.h>

#include "common/error.h"
#include "common/io_ops.h"

namespace dc::harness {

namespace {
std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "unknown host";
  return buf;
}

std::string read_holder(int fd) {
  char buf[512] = {0};
  const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  std::string s = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s.empty() ? "a process that has not written its name yet" : s;
}
}  // namespace

WriterLock::WriterLock(const std::string& results_path, const std::string& what) : lock_path_(results_path + ".lock") {
  const auto parent = std::filesystem::path(lock_path_).parent_path();
  if (!parent.empty()) io::make_folders(parent.string());
  fd_ = io::open_lock(lock_path_);
  if (fd_ < 0) throw StorageError(fmt::format("{}: cannot open the results file's lock: {}", lock_path_, std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = err == EWOULDBLOCK ? read_holder(fd_) : "";
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw Error(fmt::format("{}: another process is writing this results file ({}); {} refuses to write it at the same time: "
                              "wait for it, stop it, or give another --results (shards write their own files)",
                              results_path, holder, what));
    throw Error(fmt::format("{}: cannot lock the results file's lock: {}", lock_path_, std::strerror(err)));
  }
  char when[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  const std::string me = fmt::format("`{}`, pid {} on {}, since {}\n", what, ::getpid(), host_name(), when);
  if (::ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] const ssize_t w = ::pwrite(fd_, me.data(), me.size(), 0);
  }
}

WriterLock::~WriterLock() {
  if (fd_ >= 0) {
    [[maybe_unused]] const int r = ::ftruncate(fd_, 0);
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
}

}  // namespace dc::harness
