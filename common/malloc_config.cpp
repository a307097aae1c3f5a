// jemalloc's configuration, compiled into every executable that links jemalloc (CMakeLists.txt:
// the object library dc_malloc; docs/performance.md, "Memory"). jemalloc reads this symbol at its
// first allocation, before main.
//
// Why: glibc's malloc serves large blocks (above 128 KB, rising to at most 32 MB) with mmap and
// returns them to the kernel at every free, so a UNet's activations were page-faulted in again at
// every model call: on a 2-core VM 86% of the quick start's sampling time, and speedups above what
// the MACs allow (issue 31). jemalloc keeps freed pages for reuse; with both decays off (-1) it
// never hands them back while the process lives, so a sampling loop reaches a steady state with no
// page faults. The price: the process keeps its peak footprint until it exits.
extern "C" {
// NOLINTNEXTLINE: the name jemalloc looks for.
const char* malloc_conf = "dirty_decay_ms:-1,muzzy_decay_ms:-1";
}
