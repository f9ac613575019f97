// Internal: the three interfaces the loop's engine is built from.
//
//   Runnable   - an entry of the ready queue (a callback Handle, a done callback; a task's
//                step is queued as the task itself, see ReadyEntry).
//   WaitTarget - what a suspended task is waiting on; Task::cancel() asks it to give up.
//   TimerNode  - an entry of the timer heap, ordered by (when, seq); also a WaitTarget.
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

inline constexpr std::uint32_t kNotInHeap = 0xFFFFFFFFU;

/// An entry of the loop's timer heap. Equal deadlines fire in scheduling order. The heap keeps
/// the deadline and the sequence number beside the node pointer (EventLoop::add_timer(node,
/// when)); the node only knows where it sits.
/// A timer is also a WaitTarget (one that cannot be cancelled unless a derived class says
/// otherwise): the awaiter of sleep() is both, and one vtable pointer serves the two roles.
/// The node is 12 bytes plus 4 of tail padding, which a derived class may use.
class TimerNode : public WaitTarget {
 public:
  std::uint32_t heap_index = kNotInHeap;  ///< where the heap keeps it (TimerHeap's encoding)
  [[nodiscard]] bool in_heap() const noexcept { return heap_index != kNotInHeap; }
  /// The deadline passed: the node was removed from the heap; typically it pushes a Runnable.
  virtual void on_timer() noexcept = 0;
  /// The loop closed with this timer pending: release what the heap held.
  virtual void on_discard() noexcept {}
  /// A plain timer is not something a task waits on: nothing to give up.
  bool cancel_wait(const std::string& /*msg*/) override { return false; }
  TimerNode& operator=(const TimerNode&) = delete;

 protected:
  TimerNode() = default;
  /// A copy is not in the heap. (g++'s -Wextra wants the base named in a copy constructor.)
  // NOLINTNEXTLINE(readability-redundant-member-init)
  TimerNode(const TimerNode& /*other*/) noexcept : WaitTarget() {}
  ~TimerNode() = default;
};

}  // namespace asyncio::detail
