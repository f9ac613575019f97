// Internal: the state behind a Task handle, and how a task parks and wakes.
//
// A task is a chain of Coro frames. Only the innermost frame is ever suspended on something
// outside the task (a future, a timer, a lock...). That awaiter "parks" the task: it records
// the frame to resume and the WaitTarget it waits on. Whatever completes the wait calls wake(),
// which puts the task on the ready queue; the loop's next pass runs one step (run()) that
// resumes the innermost frame, and the chain continues by symmetric transfer.
//
// Cancellation (Python's Task.cancel, __step and _must_cancel):
//   cancel(msg) on a parked task asks its WaitTarget to give up; the target wakes the task and
//   the awaiter throws CancelledError. If the target cannot (already completed, or the task is
//   running or merely scheduled), the request is remembered in must_cancel_ and delivered at
//   the next suspension point: every awaiter calls resume_check() after it really suspended.
//   A task cancelled before its first step never runs its body.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "asyncio/detail/errors.hpp"
#include "asyncio/detail/future_state.hpp"
#include "asyncio/detail/loop_core.hpp"
#include "asyncio/detail/promise.hpp"
#include "asyncio/detail/ready_queue.hpp"
#include "asyncio/detail/task_registry.hpp"

namespace asyncio::detail {

class TaskState;

/// The task whose step is running on this thread (null between steps).
inline thread_local TaskState* tls_current_task = nullptr;

/// A task: a future whose result comes from a chain of Coro frames. The ready queue holds it
/// as itself (ReadyEntry), so it needs no Runnable interface.
class TaskState final : public FutureStateBase {
 public:
  /// `name` may be null ("Task-N"). `promise` is the PromiseBase inside `root`'s frame.
  TaskState(LoopCore* core, std::coroutine_handle<> root, PromiseBase* promise, std::string* name);
  ~TaskState() override;

  // Python Task API
  bool cancel(const std::string& msg) override;
  [[nodiscard]] int cancelling() const noexcept { return extras_ ? extras_->cancels : 0; }
  int uncancel() noexcept;
  [[nodiscard]] std::string get_name() const;
  void set_name(std::string name);
  [[nodiscard]] std::uint64_t id() const noexcept {
    return (std::uint64_t{id_high_} << 32) | id_low_;
  }
  /// Ids wrap around after 2^48 tasks (three days at a task per nanosecond).
  static constexpr std::uint64_t kIdMask = (std::uint64_t{1} << 48) - 1;

  /// One step of the task (from the ready queue).
  void run();
  /// For debug messages: "Task 'name' in function".
  [[nodiscard]] std::string describe() const;

  /// Called from an awaiter's await_suspend: the task suspends at `h` waiting on `target`
  /// (null for a bare yield). A pending cancellation request is forwarded to the target.
  void park(std::coroutine_handle<> h, WaitTarget* target) noexcept {
    resume_ = h;
    waiting_on_ = target;
    if (must_cancel_ && target != nullptr && target->cancel_wait(cancel_message())) {
      must_cancel_ = false;
    }
  }
  /// Schedules the next step (idempotent while already scheduled).
  void wake() {
    if (!scheduled_) {
      scheduled_ = true;
      core_->ready().push(this);
    }
  }
  /// Called first in await_resume after a real suspension: delivers a cancellation that
  /// arrived while the task was scheduled or running.
  void resume_check() {
    if (must_cancel_) [[unlikely]]
      deliver_cancel();
  }
  /// Clears a pending cancellation request; true if there was one.
  bool consume_must_cancel() noexcept {
    const bool was = must_cancel_;
    must_cancel_ = false;
    return was;
  }

  /// The root frame `root` finished (from its final suspend point); `result` points at its
  /// value, `error` (when not null) at the exception that escaped it.
  void on_root_done(std::coroutine_handle<> root, void* result, std::exception_ptr* error) noexcept;
  /// The loop is closing with this task still pending: destroy its frames (from `root`, its
  /// root frame, which the loop's registry kept), no callbacks.
  void abandon(std::coroutine_handle<> root) noexcept;

  [[nodiscard]] bool started() const noexcept { return started_; }
  /// The innermost Coro frame (while this task's step runs, the one the step has reached).
  [[nodiscard]] PromiseBase* leaf() const noexcept {
    return tls_current_task == this ? tls_leaf : stored_leaf();
  }
  [[nodiscard]] WaitTarget* waiting_on() const noexcept { return waiting_on_; }

 private:
  [[noreturn]] void deliver_cancel();
  /// Before the first step and once done, resume_ is the root frame (null once destroyed).
  [[nodiscard]] bool holds_root() const noexcept { return !started_ || done(); }
  /// Where the task stopped: the frame it resumes at, almost always; else what Extras noted.
  [[nodiscard]] PromiseBase* stored_leaf() const noexcept {
    if (holds_root() || leaf_at_resume_) {
      return resume_ ? PromiseBase::in_frame(resume_.address()) : nullptr;
    }
    return extras_ ? extras_->leaf : nullptr;
  }
  /// At the end of a step that left the task pending: notes its innermost frame.
  void note_leaf(PromiseBase* leaf) noexcept;

  // Every field counts: a TaskState is 64 bytes, the largest part of an idle task's memory
  // (bench/RESULTS.md). resume_ is the frame the next step resumes, and also the root frame
  // before the first step and once done; in between, the loop's registry keeps the root (it is
  // needed only to destroy a pending task's frames). The innermost frame is the one the task
  // resumes at (stored_leaf()). The step flags and the id's high bits share FutureStateBase's
  // word; the count of cancel requests lives in Extras (allocated by the first cancel()).
  std::coroutine_handle<> resume_;
  WaitTarget* waiting_on_ = nullptr;
  std::uint32_t id_low_;

 public:
  /// Where the loop's registry holds it (TaskRegistry::kNoSlot: not held).
  std::uint32_t registry_slot = TaskRegistry::kNoSlot;
};

/// The running task, or RuntimeError naming `what` needed one.
TaskState& running_task(const char* what);

/// A coroutine function's name for messages, from what its promise recorded: g++ records the
/// signature ("asyncio::Coro<int> {anonymous}::fetch(int)"), shortened here to "fetch".
std::string function_display_name(const char* recorded);

/// Where a ParkedWaiter is in its wait: idle -> parked -> {woken | cancelled}.
enum class WaitState : std::uint8_t { idle, parked, woken, cancelled };

/// An awaiter base for "park the running task until somebody wakes it": the building block
/// of sleep, locks, queues and events. Derive, override on_cancel() to unlink from whatever
/// list the waiter sits in, and call wake_up() to resume it normally. Lives in the awaiting
/// frame, so waiting allocates nothing.
/// `Base` is WaitTarget or a class derived from it (TimerNode for sleep(), so a sleeping
/// frame's awaiter has a single vtable pointer).
template <class Base>
class ParkedWaiterOn : public Base {
 public:
  using State = WaitState;
  ParkedWaiterOn(const ParkedWaiterOn&) = delete;
  ParkedWaiterOn& operator=(const ParkedWaiterOn&) = delete;

  [[nodiscard]] State state() const noexcept { return state_; }
  /// The parked (or woken, or cancelled) task; null before the wait starts.
  [[nodiscard]] TaskState* task() const noexcept { return state_ == State::idle ? nullptr : task_; }

  /// From await_suspend: parks the running task on this waiter.
  void park_running(std::coroutine_handle<> h, const char* what) {
    task_ = &running_task(what);
    state_ = State::parked;
    task_->park(h, this);
  }
  /// Wakes the parked task normally; false if it is not parked (already woken or cancelled).
  bool wake_up() {
    if (state_ != State::parked) return false;
    state_ = State::woken;
    task_->wake();
    return true;
  }
  /// From await_resume: throws CancelledError if the wait was cancelled or a cancellation
  /// arrived meanwhile.
  void resume_check() {
    if (state_ == State::idle) return;
    // One CancelledError per wake-up, whether the wait was cancelled or a request came later.
    if (task_->consume_must_cancel() || state_ == State::cancelled) {
      throw CancelledError(task_->cancel_message());
    }
  }

  /// Called by Task::cancel(), which has stored the message in the task.
  bool cancel_wait(const std::string& /*msg*/) override {
    if (state_ != State::parked) return false;
    state_ = State::cancelled;
    on_cancel();
    task_->wake();
    return true;
  }

 protected:
  ParkedWaiterOn() = default;
  /// Moving is allowed before the wait starts (an awaitable handed to gather() and the like).
  ParkedWaiterOn(ParkedWaiterOn&& other) noexcept : Base() {
    (void)other;
    assert(other.state_ == State::idle && "moving a ParkedWaiter that is waiting");
  }
  ~ParkedWaiterOn() = default;
  /// Makes a waiter whose wait has ended (its task resumed) or never started ready for another
  /// wait: for a waiter kept in an object rather than in the awaiting frame.
  void rearm() noexcept { state_ = State::idle; }
  /// The wait is being cancelled: leave whatever wait list this waiter is on.
  virtual void on_cancel() noexcept {}
  /// Until the wait starts, the word that then holds the task can carry one argument of the
  /// awaiter (sleep()'s delay), so that it needs no field of its own.
  void set_argument(double a) noexcept {
    assert(state_ == State::idle);
    argument_ = a;
  }
  [[nodiscard]] double argument() const noexcept {
    assert(state_ == State::idle && "the awaiter's argument is gone once its wait starts");
    return argument_;
  }

 private:
  // state_ first: after a TimerNode it fills the node's tail padding (SleepTimer: 24 bytes).
  State state_ = State::idle;
  union {
    TaskState* task_ = nullptr;  // from park_running() on
    double argument_;            // before: see set_argument()
  };
};

/// The usual ParkedWaiter: a WaitTarget and nothing else.
using ParkedWaiter = ParkedWaiterOn<WaitTarget>;

}  // namespace asyncio::detail
