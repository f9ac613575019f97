// Counts every call of the global operator new, so a benchmark can report allocs/iter and prove
// that a warm step allocates nothing. It replaces the global allocation functions (malloc/free
// underneath): include it in exactly one source file of a benchmark program.
#pragma once

#include <atomic>
#include <cstdlib>
#include <new>

namespace bench {
/// Calls of the global operator new so far.
inline std::atomic<long> g_allocs{0};
}  // namespace bench

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(std::size_t n) {
  bench::g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t /*n*/) noexcept {
  std::free(p);
}
