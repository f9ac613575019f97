// The frame pool's slow path: a fresh block, and the per-thread clean-up at thread exit.
#include "asyncio/detail/frame_alloc.hpp"

#include <new>

namespace asyncio::detail {
namespace {

/// Returns every cached block of this thread to the system when the thread exits.
struct FrameListsCleanup {
  FrameListsCleanup() = default;
  FrameListsCleanup(const FrameListsCleanup&) = delete;
  FrameListsCleanup& operator=(const FrameListsCleanup&) = delete;
  ~FrameListsCleanup() {
    FrameLists& l = tls_frame_lists;
    for (std::size_t c = 0; c < kFrameClasses; ++c) {
      while (FreeBlock* b = l.head[c]) {
        l.head[c] = b->next;
        ::operator delete(b);
      }
      l.count[c] = 0;
    }
  }
};

}  // namespace

void* frame_alloc_slow(std::size_t rounded) {
  FrameLists& l = tls_frame_lists;
  if (!l.registered) {
    static thread_local FrameListsCleanup cleanup;
    (void)cleanup;
    l.registered = true;
  }
  return ::operator new(rounded);
}

}  // namespace asyncio::detail
