// Every file operation that changes the disk, for every file the harness writes (results, journal
// records, PNGs, report pages, the writer lock): checked, named in its error, and open to fault
// injection, as SQLite tests its I/O errors (docs/reliability.md, "Faults").
//
// Fault injection: DEEPCACHE_IO_FAULT=<n>:<what> makes the n-th operation of the process (1-based,
// in the order they run) fail with errno <what> (ENOSPC, EIO, EROFS, EACCES, EDQUOT) without
// doing it, or, for <what> = kill, kills the process (SIGKILL) just before it. DEEPCACHE_IO_TRACE=FILE
// appends "<n> <op> <path>" for each operation to FILE (the sweep's list of injection points).
// Both are read once, at the first operation; unset, an operation costs one counter increment.
// Compiled into every build: the tests drive the shipped binary (tests/test_faults.cpp).
#pragma once
#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/error.h"

namespace dc {

// A fault of the environment, not of the input (a full disk, an I/O error, a read-only or missing
// file system, a results file replaced underneath): one line naming the file and the operation.
// `run` stops there (exit 2) with everything committed before intact.
class StorageError : public Error {
 public:
  using Error::Error;
};

namespace io {

// The operations (names as in DEEPCACHE_IO_TRACE and the faults table).
int create(const std::string& path);                      // open(O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644): "create"
bool write_all(int fd, std::string_view bytes, const std::string& path);  // "write" (one op per call, short writes retried)
bool sync(int fd, const std::string& path);               // fsync: "fsync"
bool close(int fd, const std::string& path);              // "close"
bool rename(const std::string& from, const std::string& to);  // "rename"
bool sync_folder(const std::string& folder);              // open + fsync of a folder: "fsync-folder"
bool make_folder(const std::string& folder);              // mkdir (EEXIST of a folder is success): "mkdir"
int open_lock(const std::string& path);                   // open(O_RDWR|O_CREAT) of a lock file: "lock"
// Each returns -1 / false with errno set on failure (an injected one included).

// `folder` and every missing parent, each through make_folder. StorageError naming the folder and
// the reason; a missing top-level folder of an absolute path ("/scratch/me/...") is refused rather
// than made on the root file system (a file system that is not mounted, most likely).
void make_folders(const std::string& folder);


}  // namespace io
}  // namespace dc
