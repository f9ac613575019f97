// Internal: the recycling allocator for coroutine frames and small runtime objects.
//
// Coroutine frames and task states are allocated and freed at a high rate (every
// `co_await f()` makes one), so they come from per-thread free lists of fixed size classes
// (16-byte steps up to 1 KiB), with no locking and no per-block header. An empty list is refilled
// by carving a 64 KiB slab; once the pool holds 2 MiB, slabs are cut from 2 MiB arenas advised
// for transparent huge pages (src/frame_alloc.cpp says why; ASYNCIO_HUGEPAGES=0 turns the advice
// off). A block freed on another thread simply joins that thread's lists,
// so slabs are never returned to the system while the process runs: the pool keeps its
// high-water mark (a thread's cached blocks are handed to the other threads when it exits).
// Sanitizer builds (ASYNCIO_SANITIZED) and ASYNCIO_NO_FRAME_POOL use plain operator new so that
// ASan sees every use-after-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

namespace asyncio::detail {

#if defined(ASYNCIO_SANITIZED) || defined(ASYNCIO_NO_FRAME_POOL)
inline constexpr bool kFramePool = false;
#else
inline constexpr bool kFramePool = true;
#endif

inline constexpr std::size_t kFrameGranule = 16;  // the alignment operator new promises
inline constexpr std::size_t kFrameClasses = 64;  // up to 1024 bytes

struct FreeBlock {
  FreeBlock* next;
};

/// Per-thread free lists. Trivially constructible, so access needs no TLS guard.
struct FrameLists {
  FreeBlock* head[kFrameClasses];
  bool registered;
};

inline thread_local FrameLists tls_frame_lists{};

/// Slow path: refills size class `cls` (adopting blocks of exited threads, or carving a slab)
/// and returns one block.
void* frame_alloc_slow(std::size_t cls);

/// Allocates `n` bytes for a coroutine frame or runtime object.
inline void* frame_alloc(std::size_t n) {
  if constexpr (kFramePool) {
    const std::size_t cls = (n - 1) / kFrameGranule;
    if (cls < kFrameClasses) {
      FrameLists& l = tls_frame_lists;
      if (FreeBlock* b = l.head[cls]) {
        l.head[cls] = b->next;
        return b;
      }
      return frame_alloc_slow(cls);
    }
  }
  return ::operator new(n);
}

/// Frees a block from frame_alloc(n) (the same `n`).
inline void frame_free(void* p, std::size_t n) noexcept {
  if constexpr (kFramePool) {
    const std::size_t cls = (n - 1) / kFrameGranule;
    if (cls < kFrameClasses) {
      FrameLists& l = tls_frame_lists;
      auto* b = static_cast<FreeBlock*>(p);
      b->next = l.head[cls];
      l.head[cls] = b;
      return;
    }
  }
  ::operator delete(p);
}

/// Base for runtime objects that live in the frame pool (class-specific new/delete).
struct PoolAllocated {
  static void* operator new(std::size_t n) { return frame_alloc(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }
};

}  // namespace asyncio::detail
