// Internal: the loop's scheduling core, below the public EventLoop (Python: the part of
// base_events.BaseEventLoop that _run_once uses). It owns the ready queue, the timers, the
// registry of pending tasks, the clock (real or virtual), the count of work in flight outside
// the loop, and runs one iteration. What the library's own headers need from a loop, they take
// from here (detail::core_of(loop), or the LoopCore a future is bound to), never from public
// members of EventLoop. The I/O side (LoopIo, src/unix/loop_io.hpp) sits below this core.
//
// One iteration (run_once), exactly as CPython's BaseEventLoop._run_once:
//   1. poll for I/O with a time-out: 0 if anything is ready or the loop is stopping, else until
//      the earliest timer, else forever (virtual time: see RunOptions::virtual_time);
//   2. readiness callbacks and call_soon_threadsafe entries join the ready queue;
//   3. every timer whose deadline has passed joins the ready queue, in (when, seq) order;
//   4. the entries that were ready when the pass began run, in FIFO order (in an order drawn
//      from RunOptions::shuffle_seed in shuffle mode). Entries they add wait for the next
//      iteration. This is the only place callbacks are called.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "asyncio/detail/errors.hpp"
#include "asyncio/detail/intrusive.hpp"
#include "asyncio/detail/promise.hpp"
#include "asyncio/detail/ready_queue.hpp"
#include "asyncio/detail/runnable.hpp"
#include "asyncio/detail/task_registry.hpp"
#include "asyncio/detail/timer_heap.hpp"

namespace asyncio {
class EventLoop;
}

namespace asyncio::detail {

/// The running loop of this thread (null when none).
inline thread_local EventLoop* tls_running_loop = nullptr;

struct LoopIo;    // the platform part of the loop (src/unix)
class PostQueue;  // the loop's thread-safe queue, shared with other threads (src/unix)
class TaskState;

/// An async generator the loop must finalise at shutdown (see generators.hpp).
class AsyncGenFinalizer : public ListHook {
 public:
  /// Runs the generator's clean-up (Python: agen.aclose()).
  virtual Coro<void> finalize() = 0;

 protected:
  AsyncGenFinalizer() = default;
  AsyncGenFinalizer(const AsyncGenFinalizer&) = default;
  AsyncGenFinalizer& operator=(const AsyncGenFinalizer&) = default;
  ~AsyncGenFinalizer() = default;
};

/// Registers `g` with the loop running on this thread, if any (its shutdown_asyncgens()).
void register_asyncgen(AsyncGenFinalizer* g) noexcept;
/// `g` is closed or destroyed: the loop forgets it.
inline void unregister_asyncgen(AsyncGenFinalizer* g) noexcept {
  if (g->linked()) IntrusiveList::unlink(g);
}

/// How a LoopCore is set up (from RunOptions, after the environment had its say).
struct LoopCoreOptions {
  bool debug = false;
  bool virtual_time = false;
  std::optional<std::uint64_t> shuffle_seed;
};

/// The scheduling core of one EventLoop. Not copyable, not movable: futures and tasks point
/// at it. Every member is for the loop's thread, except what PostQueue does.
class LoopCore {
 public:
  LoopCore(EventLoop& owner, std::unique_ptr<LoopIo> io, const LoopCoreOptions& options);
  ~LoopCore();
  LoopCore(const LoopCore&) = delete;
  LoopCore& operator=(const LoopCore&) = delete;

  /// The public loop this core belongs to.
  [[nodiscard]] EventLoop& loop() const noexcept { return *owner_; }

  // -- Ready queue, timers, clock --------------------------------------------------------------

  [[nodiscard]] ReadyQueue& ready() noexcept { return ready_; }
  void add_timer(TimerNode* t, double when) { timers_.push(t, when); }
  void remove_timer(TimerNode* t) noexcept { timers_.remove(t); }
  /// Monotonic seconds (virtual when RunOptions::virtual_time). Python: loop.time()
  [[nodiscard]] double time() const noexcept;
  /// Thread-safe posts made before a call_soon run before it (they join the ready queue now).
  void take_posted_if_any() {
    if (posted_->load(std::memory_order_acquire)) [[unlikely]]
      take_posted();
  }

  // -- State -----------------------------------------------------------------------------------

  [[nodiscard]] bool debug() const noexcept { return debug_; }
  void set_debug(bool enabled) noexcept { debug_ = enabled; }
  [[nodiscard]] bool closed() const noexcept { return closed_; }
  /// RuntimeError once close() has returned. While close() runs, work offered by the
  /// destructors it runs is accepted and then destroyed by close() itself (EventLoop::close()).
  void check_open() const {
    if (closed_) throw RuntimeError("Event loop is closed");
  }
  void stop() noexcept { stopping_ = true; }
  [[nodiscard]] bool stopping() const noexcept { return stopping_; }
  void clear_stopping() noexcept { stopping_ = false; }

  // -- Tasks -----------------------------------------------------------------------------------

  /// Holds task `t` (the loop's reference) whose root frame is `root`, and schedules its first
  /// step. On failure the reference is released and the task never starts.
  void register_task(TaskState* t, void* root);
  /// The task is done: the loop's reference goes.
  void unregister_task(TaskState* t) noexcept;
  /// The pending tasks, oldest first.
  [[nodiscard]] std::vector<TaskState*> tasks() const { return tasks_.list(); }
  [[nodiscard]] std::uint64_t next_task_id() noexcept { return ++task_counter_; }

  // -- Work outside the loop ---------------------------------------------------------------------

  /// Work in flight outside the loop (threads) that will post back: virtual time waits.
  void hold_external() noexcept { external_.fetch_add(1, std::memory_order_relaxed); }
  void release_external() noexcept { external_.fetch_sub(1, std::memory_order_relaxed); }
  /// The I/O engine's side of the loop (src/unix/loop_io.hpp).
  [[nodiscard]] LoopIo& io() const noexcept { return *io_; }
  /// The async generators still open (EventLoop::shutdown_asyncgens() closes them).
  [[nodiscard]] IntrusiveList& asyncgens() noexcept { return asyncgens_; }

  // -- Iterations and closing ------------------------------------------------------------------

  /// Runs one iteration (see the top of this file). Tests drive loops step by step with it.
  void run_once();
  /// close(), one round: drops queued entries and timers, then destroys the pending tasks'
  /// frames, then drops what their destructors queued. Returns the abandoned tasks, whose
  /// references the caller releases.
  std::vector<TaskState*> abandon_all() noexcept;
  /// Whether a round of abandon_all() left anything behind.
  [[nodiscard]] bool has_work() const noexcept {
    return tasks_.size() != 0 || !ready_.empty() || !timers_.empty();
  }
  void mark_closed() noexcept { closed_ = true; }

 private:
  void poll_io();
  void take_posted();
  /// Runs one ready entry in debug mode (timing it for the slow-callback warning).
  void run_ready_debug(ReadyEntry e);
  void drop_pending() noexcept;
  std::vector<TaskState*> abandon_tasks() noexcept;
  [[nodiscard]] static double real_time() noexcept;

  EventLoop* owner_;
  bool debug_;
  bool virtual_time_;
  bool shuffle_;  // a shuffle seed is set
  bool stopping_ = false;
  bool closed_ = false;
  double virtual_now_ = 0;
  ReadyQueue ready_;
  TimerHeap timers_;
  TaskRegistry tasks_;
  IntrusiveList asyncgens_;
  std::uint64_t task_counter_ = 0;
  std::atomic<int> external_{0};
  std::unique_ptr<LoopIo> io_;
  const std::atomic<bool>* posted_;  // the thread-safe queue's "something is waiting" flag
};

}  // namespace asyncio::detail
