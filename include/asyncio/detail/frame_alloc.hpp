// Internal: the recycling allocator for coroutine frames and small runtime objects.
//
// Coroutine frames are allocated and freed at a high rate (every `co_await f()` makes one), so
// they come from per-thread free lists of fixed size classes (32-byte steps up to 1 KiB), with
// no locking and no header. A block freed on another thread simply joins that thread's lists.
// Each list keeps at most kMaxCached blocks; the rest go back to the system. Sanitizer builds
// (ASYNCIO_SANITIZED) and ASYNCIO_NO_FRAME_POOL use plain operator new so that ASan sees every
// use-after-free.
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

inline constexpr std::size_t kFrameGranule = 32;
inline constexpr std::size_t kFrameClasses = 32;  // up to 1024 bytes
inline constexpr std::uint32_t kMaxCached = 1U << 16;

struct FreeBlock {
  FreeBlock* next;
};

/// Per-thread free lists. Trivially constructible, so access needs no TLS guard.
struct FrameLists {
  FreeBlock* head[kFrameClasses];
  std::uint32_t count[kFrameClasses];
  bool registered;
};

inline thread_local FrameLists tls_frame_lists{};

/// Slow path: registers the thread's clean-up and allocates a fresh block.
void* frame_alloc_slow(std::size_t rounded);

/// Allocates `n` bytes for a coroutine frame or runtime object.
inline void* frame_alloc(std::size_t n) {
  if constexpr (kFramePool) {
    const std::size_t cls = (n - 1) / kFrameGranule;
    if (cls < kFrameClasses) {
      FrameLists& l = tls_frame_lists;
      if (FreeBlock* b = l.head[cls]) {
        l.head[cls] = b->next;
        --l.count[cls];
        return b;
      }
      return frame_alloc_slow((cls + 1) * kFrameGranule);
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
      if (l.count[cls] < kMaxCached) {
        auto* b = static_cast<FreeBlock*>(p);
        b->next = l.head[cls];
        l.head[cls] = b;
        ++l.count[cls];
        return;
      }
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
