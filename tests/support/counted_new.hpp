// Replaces the global operator new/delete of the binary that includes this header and counts the
// calls, so a test or a benchmark can say how many heap allocations the code it measures made.
// Include it from exactly one file per binary. malloc called directly (PCRE2's) is not counted.
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
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
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
