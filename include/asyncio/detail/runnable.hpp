// Internal: the three interfaces the loop's engine is built from.
//
//   Runnable   - an entry of the ready queue (a callback Handle, a task step, a done callback).
//   TimerNode  - an entry of the timer heap, ordered by (when, seq).
//   WaitTarget - what a suspended task is waiting on; Task::cancel() asks it to give up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace asyncio::detail {

/// Something the loop runs from its ready queue. The queue does not own it: whoever pushes it
/// guarantees it stays alive until run() or discard() is called (exactly one of them).
class Runnable {
 public:
  /// Runs the entry. Exceptions escaping it go to the loop's exception handler.
  virtual void run() = 0;
  /// The loop closed with this entry still queued: release what the queue held.
  virtual void discard() noexcept {}
  /// For debug messages (slow callbacks): what this entry is.
  [[nodiscard]] virtual std::string describe() const { return "callback"; }

 protected:
  Runnable() = default;
  Runnable(const Runnable&) = default;
  Runnable& operator=(const Runnable&) = default;
  ~Runnable() = default;
};

inline constexpr std::size_t kNotInHeap = static_cast<std::size_t>(-1);

/// An entry of the loop's timer heap. Equal deadlines fire in scheduling order (the heap keeps
/// the sequence number beside the key; the node only knows where it sits).
class TimerNode {
 public:
  double when = 0;
  std::size_t heap_index = kNotInHeap;
  [[nodiscard]] bool in_heap() const noexcept { return heap_index != kNotInHeap; }
  /// The deadline passed: the node was removed from the heap; typically it pushes a Runnable.
  virtual void on_timer() noexcept = 0;
  /// The loop closed with this timer pending: release what the heap held.
  virtual void on_discard() noexcept {}

 protected:
  TimerNode() = default;
  explicit TimerNode(double deadline) noexcept : when(deadline) {}
  TimerNode(const TimerNode&) = default;
  TimerNode& operator=(const TimerNode&) = default;
  ~TimerNode() = default;
};

/// What a parked task waits on. Task::cancel() calls cancel_wait(); when it returns true the
/// target promises to wake the task, which then sees CancelledError at its suspension point.
/// Returns false when it can no longer be cancelled (already completed or woken).
class WaitTarget {
 public:
  virtual bool cancel_wait(const std::string& msg) = 0;

 protected:
  WaitTarget() = default;
  WaitTarget(const WaitTarget&) = default;
  WaitTarget& operator=(const WaitTarget&) = default;
  ~WaitTarget() = default;
};

}  // namespace asyncio::detail
