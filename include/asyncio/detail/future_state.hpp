// Internal: the untyped state shared by every Future<T> and Task<T> handle.
//
// A future is loop-bound and single-threaded: its reference count is not atomic, and it is
// only touched from its loop's thread (cross-thread completion goes through
// call_soon_threadsafe). Waiters - awaiting tasks and done callbacks - are intrusive nodes
// kept in registration order; on completion each is unlinked and told, and it only schedules
// work on the loop (callbacks never run inside set_result(), as in Python).
#pragma once

#include <cassert>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "asyncio/detail/frame_alloc.hpp"
#include "asyncio/detail/intrusive.hpp"
#include "asyncio/detail/loop_core.hpp"
#include "asyncio/detail/runnable.hpp"

namespace asyncio::detail {

class ReadyQueue;
struct PromiseBase;
class FutureStateBase;

/// pending -> {finished | cancelled}; never back.
enum class FutureStatus : std::uint8_t { pending, finished, cancelled };

/// Somebody waiting for a future to complete (an awaiting task, a done callback).
class Waiter : public ListHook {
 public:
  /// The future completed and this node was unlinked. Schedules work; never runs user code.
  virtual void on_future_done(FutureStateBase& f) noexcept = 0;
  /// Non-zero for done callbacks (the id remove_done_callback() takes).
  [[nodiscard]] virtual std::uint64_t callback_id() const noexcept { return 0; }
  /// The future is destroyed (or the callback removed) while this node still waits: a node
  /// the list owns (a done callback) deletes itself; an awaiter in a frame does nothing.
  virtual void on_abandon() noexcept {}

 protected:
  Waiter() = default;
  Waiter(const Waiter&) = default;
  Waiter& operator=(const Waiter&) = default;
  ~Waiter() = default;
};

class FutureStateBase : public WaitTarget, public PoolAllocated {
 public:
  explicit FutureStateBase(LoopCore* core) noexcept : core_(core), waiters_() {}
  FutureStateBase(const FutureStateBase&) = delete;
  FutureStateBase& operator=(const FutureStateBase&) = delete;
  virtual ~FutureStateBase();

  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) last_release();
  }

  /// The loop it is bound to (which must still exist).
  [[nodiscard]] EventLoop& loop() const noexcept { return core_->loop(); }
  [[nodiscard]] EventLoop* loop_ptr() const noexcept { return &core_->loop(); }
  /// The core of that loop; core_ptr() may be compared after the loop is gone.
  [[nodiscard]] LoopCore& core() const noexcept { return *core_; }
  [[nodiscard]] LoopCore* core_ptr() const noexcept { return core_; }
  [[nodiscard]] bool done() const noexcept { return status_ != FutureStatus::pending; }
  [[nodiscard]] bool cancelled() const noexcept { return status_ == FutureStatus::cancelled; }
  [[nodiscard]] bool is_task() const noexcept { return is_task_; }

  /// Python Future.cancel(msg): pending -> cancelled, schedules the callbacks.
  virtual bool cancel(const std::string& msg);
  bool cancel_wait(const std::string& msg) override { return cancel(msg); }

  /// Throws InvalidStateError when done (and RuntimeError for a task): the check before storing.
  void check_settable() const;
  /// Completes with the value the typed layer stored at `result` (may be null for void).
  void finish(void* result);
  /// Python Future.set_exception.
  void set_exception(std::exception_ptr e);

  /// Python Future.result() minus the value: throws InvalidStateError / CancelledError / the
  /// stored exception; returns normally when a value is there.
  void throw_if_not_result() {
    if (status_ != FutureStatus::finished || has_exception_) [[unlikely]]
      throw_not_result();
  }
  /// Python Future.exception(): null on success; throws CancelledError or InvalidStateError.
  std::exception_ptr exception();
  /// An awaiter took the outcome over when the future completed (Python's Task.__wakeup and
  /// the combinators' done callbacks call result() or exception() then): debug mode will not
  /// report its exception as never retrieved, even if the awaiter is cancelled before it
  /// looks at it.
  void mark_retrieved() noexcept { retrieved_ = true; }
  [[nodiscard]] void* result_ptr() const noexcept {
    return status_ != FutureStatus::finished || has_exception_ ? nullptr : result_;
  }
  [[nodiscard]] std::exception_ptr make_cancelled_error() const;
  /// The cancel message ("" when none).
  [[nodiscard]] const std::string& cancel_message() const noexcept;

  /// `w` waits for this pending future to complete.
  void add_waiter(Waiter* w) noexcept {
    assert(status_ == FutureStatus::pending);
    waiters_.push_back(w);
  }
  /// Removes `w` if it still waits. It must have been added to this future (or be unlinked).
  void remove_waiter(Waiter* w) noexcept {
    if (!w->linked()) return;
    if (status_ == FutureStatus::pending) {
      waiters_.remove(w);
    } else {
      IntrusiveList::unlink(w);  // in the list complete() is working through
    }
  }
  /// Removes the pending done callback with this id; returns how many were removed.
  std::size_t remove_callback(std::uint64_t id) noexcept;

 protected:
  /// The last reference went: in debug mode, reports an exception nobody retrieved (Python's
  /// Future.__del__, "Task exception was never retrieved"), then deletes the state.
  void last_release() noexcept;
  [[noreturn]] void throw_not_result();
  void set_cancel_message(const std::string& msg);
  void mark_cancelled(const std::string& msg);
  /// The future completes (finished or cancelled) with `result` or `*error` (moved from): the
  /// waiters leave the word the outcome takes, the outcome is stored, and they are told. If it
  /// has waiters and its loop is closed, they are dropped and RuntimeError is raised, the
  /// future staying done (Python: call_soon() on a closed loop raises).
  void complete(FutureStatus status, void* result, std::exception_ptr* error);

  /// The stored exception (null when there is none).
  [[nodiscard]] const std::exception_ptr& stored_exception() const noexcept {
    return has_exception_ ? error_ : kNoException;
  }
  /// Rarely set data, allocated on first use: a cancel message, a task's name.
  struct Extras {
    std::string cancel_msg;
    std::string name;
    int cancels = 0;  // a task's cancel requests not yet withdrawn (Task.cancelling())
    bool named = false;
    PromiseBase* leaf = nullptr;  // a task's innermost frame, when it is not the one it resumes
  };
  Extras& extras();

  LoopCore* core_;
  std::uint32_t refs_ = 0;
  FutureStatus status_ = FutureStatus::pending;
  bool is_task_ : 1 = false;
  bool retrieved_ : 1 = false;      // the exception was looked at (Python's __log_traceback)
  bool has_exception_ : 1 = false;  // finished with error_ rather than result_
  // TaskState's step flags and the high bits of its id live in this word's spare bits, so
  // that a TaskState is 64 bytes (tasks.cpp). A plain future leaves them alone.
  bool must_cancel_ : 1 = false;     // a cancel() request not yet delivered
  bool started_ : 1 = false;         // the first step has run
  bool scheduled_ : 1 = false;       // a step is in the ready queue
  bool rethrow_ : 1 = false;         // a KeyboardInterrupt escaped the body: rethrow it
  bool leaf_at_resume_ : 1 = false;  // the innermost frame is the one the task resumes at
  std::uint16_t id_high_ = 0;        // bits 32..47 of a task's id

 private:
  static const std::exception_ptr kNoException;

 protected:
  std::unique_ptr<Extras> extras_;
  // One word, as a future is in every task: while pending, who waits; once finished, a value
  // or an exception (never both); when cancelled, nothing.
  union {
    SlimList waiters_;          ///< while pending
    void* result_;              ///< finished: the value the typed layer stored
    std::exception_ptr error_;  ///< finished with an exception (has_exception_)
  };
};

}  // namespace asyncio::detail
