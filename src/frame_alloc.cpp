// The frame pool's slow path: slabs, and handing a thread's blocks on when it exits.
#include "asyncio/detail/frame_alloc.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include <pthread.h>

#include "sys/sys.hpp"

namespace asyncio::detail {
namespace {

constexpr std::size_t kSlabBytes = std::size_t{64} * 1024;
// Once the pool holds this much, slabs are cut from 2 MiB arenas that ask the kernel for
// transparent huge pages. A first touch of a 4 KiB page costs a page fault (microseconds on a
// VM); a program with 100,000 live tasks touches 25 MiB, and its start-up is then mostly
// faults. One huge page replaces 512 of them. Small programs never reach the threshold, so
// they keep a small footprint. (The kernel may decline: the arena then works with 4 KiB pages.)
// ASYNCIO_HUGEPAGES=0 in the environment turns the advice off (arenas are still used).
constexpr std::size_t kArenaBytes = std::size_t{2} * 1024 * 1024;
constexpr std::size_t kPlainSlabBudget = std::size_t{2} * 1024 * 1024;

/// Process-wide: every slab ever carved (kept for the process's lifetime: blocks may sit in
/// any thread's lists), and the blocks of threads that exited, per size class.
struct Orphans {
  std::mutex mu;
  std::vector<void*> slabs;  // slabs from operator new, and arenas
  FreeBlock* head[kFrameClasses] = {};
  std::size_t slab_bytes = 0;  // carved so far
  char* arena_next = nullptr;  // the current arena's next slab
  char* arena_end = nullptr;
};

Orphans* make_orphans();

Orphans& orphans() {
  static Orphans* o = make_orphans();  // never destroyed: threads may exit after static destructors
  return *o;
}

// fork(): the lock is held across it, so that a child forked while another thread held it does
// not inherit it locked (the child's first slab would wait for ever).
extern "C" void asyncio_frames_before_fork() {
  orphans().mu.lock();
}
extern "C" void asyncio_frames_after_fork() {
  orphans().mu.unlock();
}

Orphans* make_orphans() {
  auto* o = new Orphans;
  // (pthread_atfork fails only for want of memory: the pool then works without the protection.)
  (void)::pthread_atfork(asyncio_frames_before_fork, asyncio_frames_after_fork,
                         asyncio_frames_after_fork);
  return o;
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

/// A 2 MiB-aligned arena advised for huge pages, or null (then slabs come from operator new).
char* new_arena() {
  // Over-allocate to align: the kernel backs a huge page only at a 2 MiB boundary.
  void* raw = sys::map_anonymous(2 * kArenaBytes);
  if (raw == nullptr) return nullptr;
  auto* base = static_cast<char*>(raw);
  const auto addr = reinterpret_cast<std::uintptr_t>(base);
  const std::size_t head = (kArenaBytes - addr % kArenaBytes) % kArenaBytes;
  if (head > 0) sys::unmap(base, head);
  sys::unmap(base + head + kArenaBytes, kArenaBytes - head);
  char* arena = base + head;
  static const bool advise = [] {
    const char* v = std::getenv("ASYNCIO_HUGEPAGES");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  if (advise) sys::advise_huge_pages(arena, kArenaBytes);  // failure changes nothing
  return arena;
}

/// A fresh slab of kSlabBytes. Called with the orphans' lock held.
char* new_slab(Orphans& o) {
  if (o.slab_bytes >= kPlainSlabBudget) {
    if (o.arena_next == o.arena_end) {
      if (char* arena = new_arena()) {
        o.slabs.push_back(arena);
        o.arena_next = arena;
        o.arena_end = arena + kArenaBytes;
      }
    }
    if (o.arena_next != o.arena_end) {
      char* slab = o.arena_next;
      o.arena_next += kSlabBytes;
      o.slab_bytes += kSlabBytes;
      return slab;
    }
  }
  auto* slab = static_cast<char*>(::operator new(kSlabBytes));
  o.slabs.push_back(slab);
  o.slab_bytes += kSlabBytes;
  return slab;
}

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
  char* slab = new_slab(o);
  const std::size_t n = kSlabBytes / size;
  for (std::size_t i = n - 1; i >= 1; --i) {  // blocks 1..n-1 to the list, in address order
    auto* b = reinterpret_cast<FreeBlock*>(slab + i * size);
    b->next = l.head[cls];
    l.head[cls] = b;
  }
  return slab;
}

}  // namespace asyncio::detail
