// One writer per results file: `run` and `merge` hold an exclusive lock on `<results>.lock` while
// they write, with the holder's pid, host and start time in it, so a second process aimed at the
// same file stops at once (exit 2) naming the holder instead of racing it for the file. The lock
// is the kernel's flock(2) on that file: it goes with the process (a killed writer leaves the file,
// not the lock), and shards writing their own files do not contend.
#pragma once
#include <string>

namespace dc::harness {

class WriterLock {
 public:
  // Takes the lock of `results_path` or throws dc::Error naming the file and the holder (pid, host,
  // since) as the lock file says. `what` names the command for the message ("run", "merge").
  WriterLock(const std::string& results_path, const std::string& what);
  ~WriterLock();
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;
  const std::string& lock_path() const { return lock_path_; }

 private:
  std::string lock_path_;
  int fd_ = -1;
};

}  // namespace dc::harness
