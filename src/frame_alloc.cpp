// The frame pool's slow path: slabs, and handing a thread's blocks on when it exits.
#include "asyncio/detail/frame_alloc.hpp"

#include <mutex>
#include <new>
#include <vector>

namespace asyncio::detail {
namespace {

constexpr std::size_t kSlabBytes = 64 * 1024;

/// Process-wide: every slab ever carved (kept for the process's lifetime: blocks may sit in
/// any thread's lists), and the blocks of threads that exited, per size class.
struct Orphans {
  std::mutex mu;
  std::vector<void*> slabs;
  FreeBlock* head[kFrameClasses] = {};
};

Orphans& orphans() {
  static auto* o = new Orphans;  // never destroyed: threads may exit after static destructors
  return *o;
}

/// At thread exit, the thread's cached blocks join the orphans for other threads to adopt.
struct ThreadExit {
  ThreadExit() = default;
  ThreadExit(const ThreadExit&) = delete;
  ThreadExit& operator=(const ThreadExit&) = delete;
  ~ThreadExit() {
    FrameLists& l = tls_frame_lists;
    Orphans& o = orphans();
    std::lock_guard<std::mutex> lock(o.mu);
    for (std::size_t c = 0; c < kFrameClasses; ++c) {
      while (FreeBlock* b = l.head[c]) {
        l.head[c] = b->next;
        b->next = o.head[c];
        o.head[c] = b;
      }
    }
    l.registered = false;
  }
};

}  // namespace

void* frame_alloc_slow(std::size_t cls) {
  FrameLists& l = tls_frame_lists;
  if (!l.registered) {
    static thread_local ThreadExit on_exit;
    (void)on_exit;
    l.registered = true;
  }
  const std::size_t size = (cls + 1) * kFrameGranule;
  Orphans& o = orphans();
  std::lock_guard<std::mutex> lock(o.mu);
  if (FreeBlock* b = o.head[cls]) {  // adopt every orphan of this class
    o.head[cls] = nullptr;
    l.head[cls] = b->next;
    return b;
  }
  auto* slab = static_cast<char*>(::operator new(kSlabBytes));
  o.slabs.push_back(slab);
  const std::size_t n = kSlabBytes / size;
  for (std::size_t i = n - 1; i >= 1; --i) {  // blocks 1..n-1 to the list, in address order
    auto* b = reinterpret_cast<FreeBlock*>(slab + i * size);
    b->next = l.head[cls];
    l.head[cls] = b;
  }
  return slab;
}

}  // namespace asyncio::detail
