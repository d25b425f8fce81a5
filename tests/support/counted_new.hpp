// Replaces the global operator new/delete of the binary that includes this header and counts the
// calls, so a test or a benchmark can say how many heap allocations the code it measures made.
// Include it from exactly one file per binary. aligned_alloc is counted too (Asio allocates the
// coroutine frames its recycler cannot keep with it); malloc called directly (PCRE2's) is not.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace wsgate::counted_new {

inline std::atomic<unsigned long> calls{0};
// Called on every counted allocation when set (e.g. to print where it came from); set it
// before other threads start.
inline void (*hook)() = nullptr;

inline void count() {
  calls.fetch_add(1, std::memory_order_relaxed);
  if (hook) hook();
}

}  // namespace wsgate::counted_new

// glibc's own entry point, which its aligned_alloc is an alias of.
extern "C" void* __libc_memalign(std::size_t align, std::size_t n);

// Replaces libc's for the whole process (the executable's definition comes first).
extern "C" void* aligned_alloc(std::size_t align, std::size_t n) noexcept {
  wsgate::counted_new::count();
  return __libc_memalign(align, n);
}

// Not inlined: GCC would otherwise pair malloc/free with new/delete and warn
// (-Wmismatched-new-delete), though the replaced pairs are consistent.
[[gnu::noinline]] void* operator new(std::size_t n) {
  wsgate::counted_new::count();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new(std::size_t n, std::align_val_t a) {
  wsgate::counted_new::count();
  const auto align = static_cast<std::size_t>(a);
  if (void* p = __libc_memalign(align, n ? n : 1)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
