// asyncio/tasks.hpp - Task<T>, create_task, sleep, current_task, all_tasks (Python: tasks.py).
// Composition (gather, wait_for, wait, shield, as_completed) lives in asyncio/composition.hpp.
#pragma once

#include <chrono>
#include <cmath>
#include <concepts>
#include <coroutine>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "asyncio/coroutines.hpp"
#include "asyncio/detail/task_state.hpp"
#include "asyncio/events.hpp"
#include "asyncio/futures.hpp"
#include "asyncio/task_ref.hpp"

namespace asyncio {

/// A coroutine scheduled on a loop. A copyable handle (shared ownership); the loop itself
/// keeps the task alive until it finishes, so dropping every handle never kills or leaks a
/// running task (fire-and-forget is safe, unlike Python where the loop holds tasks weakly).
/// A Task is a Future: await it, add done callbacks, cancel it.
///
/// Cancellation: cancel(msg) throws CancelledError(msg) into the task at its current (or next)
///   suspension point and cancels whatever it awaits; the task may catch it and go on.
/// Not [[nodiscard]]: dropping the handle of a started task is safe (fire-and-forget).
/// Python: asyncio.Task
template <class T = void>
class Task : public Future<T> {
 public:
  /// An empty handle (no task); assign a task to it.
  Task() noexcept : Future<T>(nullptr) {}
  /// Internal: a new handle (a new reference) to a task state.
  explicit Task(detail::TaskState* st) noexcept
      : Future<T>(typename Future<T>::Adopt{}, take_ref(st)) {}

  /// Python: Task.get_name()
  [[nodiscard]] std::string get_name() const { return task().get_name(); }
  /// Python: Task.set_name(value)
  void set_name(std::string name) { task().set_name(std::move(name)); }
  /// How many cancellation requests are pending. Python: Task.cancelling()
  [[nodiscard]] int cancelling() const { return task().cancelling(); }
  /// Decrements the pending cancellation requests; returns the new count. Python: Task.uncancel()
  int uncancel() { return task().uncancel(); }
  /// A type-erased reference to this task.
  operator TaskRef() const noexcept {
    return TaskRef(ptr());
  }  // NOLINT(google-explicit-constructor)
  /// True when the handle refers to a task.
  explicit operator bool() const noexcept { return this->st_.get() != nullptr; }

 private:
  static detail::FutureStateBase* take_ref(detail::TaskState* st) noexcept {
    st->add_ref();
    return st;
  }
  [[nodiscard]] detail::TaskState* ptr() const noexcept {
    return static_cast<detail::TaskState*>(this->st_.get());
  }
  [[nodiscard]] detail::TaskState& task() const {
    if (!this->st_) throw InvalidStateError("empty Task handle");
    return *ptr();
  }
};

namespace detail {
/// The compiler lays out coroutine frames otherwise than the library assumes: says so on stderr
/// and aborts (nothing can work then).
[[noreturn]] void unsupported_frame_layout() noexcept;
}  // namespace detail

template <class T>
Task<T> EventLoop::create_task(Coro<T> coro, std::string name) {
  return create_task_named(std::move(coro), &name);
}

template <class T>
Task<T> EventLoop::create_task(Coro<T> coro) {
  return create_task_named(std::move(coro), nullptr);
}

template <class T>
Task<T> EventLoop::create_task_named(Coro<T> coro, std::string* name) {
  core_.check_open();
  static_assert(alignof(typename Coro<T>::promise_type) <= 16,
                "a task's result type may be aligned to at most 16 bytes");
  auto h = coro.release_for_task();
  if (!h) throw RuntimeError("cannot schedule an already awaited coroutine");
  // The registry finds a task from its root frame through the promise's place in the frame
  // (PromiseBase::kOffsetInFrame). Checked in every build type; the compiler folds it to a
  // constant, so it costs nothing where the assumption holds.
  if (detail::PromiseBase::in_frame(h.address()) != &h.promise()) [[unlikely]]
    detail::unsupported_frame_layout();
  auto* st = new detail::TaskState(&core_, h, &h.promise(), name);
  Task<T> task(st);  // one reference for the handle...
  st->add_ref();     // ...and the loop's, held until the task is done
  core_.register_task(st, h.address());
  return task;
}

/// Schedules `coro` on the running loop as a task named `name`.
/// Python: asyncio.create_task(coro, name=name)
template <class T>
Task<T> create_task(Coro<T> coro, std::string name) {
  return get_running_loop().create_task(std::move(coro), std::move(name));
}
/// Schedules `coro` on the running loop as a task ("Task-N"). Python: asyncio.create_task(coro)
template <class T>
Task<T> create_task(Coro<T> coro) {
  return get_running_loop().create_task(std::move(coro));
}

/// The task running now (false when called outside any task). Python: asyncio.current_task()
TaskRef current_task() noexcept;
/// The running loop's tasks that are not done yet. Python: asyncio.all_tasks()
std::vector<TaskRef> all_tasks();

namespace detail {

/// The timer behind sleep(): it sits in the loop's heap and, when due, wakes the task, which
/// resumes in that same iteration, ordered with the other due timers by (when, seq).
/// (CPython sets a future from a timer callback and resumes the task one iteration later;
/// the loop time the task sees is the same.)
/// Until it is awaited, the delay sits in the word that then holds the task, and the deadline
/// lives in the heap: 24 bytes in every sleeping frame.
class SleepTimer : public ParkedWaiterOn<TimerNode> {
 public:
  explicit SleepTimer(double delay) noexcept { set_argument(delay); }
  /// Movable until awaited (so sleep(1) can be passed to gather()).
  /// (argument() asserts that `other` is not waiting yet.)
  SleepTimer(SleepTimer&& other) noexcept : SleepTimer(other.argument()) {}
  SleepTimer(const SleepTimer&) = delete;
  SleepTimer& operator=(const SleepTimer&) = delete;

  [[nodiscard]] bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    // `when` now holds a deadline, not the delay: a second await would sleep wrongly.
    if (state() != State::idle) throw RuntimeError("cannot reuse an already awaited sleep()");
    const double delay = argument();
    park_running(h, "sleep");
    if (delay <= 0) {  // sleep(0): yield one iteration (a bare yield in Python)
      wake_up();
      return;
    }
    LoopCore& core = task()->core();
    core.add_timer(this, core.time() + delay);
  }
  void on_timer() noexcept override { wake_up(); }

 protected:
  ~SleepTimer() {
    if (in_heap()) task()->core().remove_timer(this);
  }

 private:
  void on_cancel() noexcept override {
    if (in_heap()) task()->core().remove_timer(this);
  }
};

/// sleep(delay, value): returns `value` after the delay.
template <class T>
class SleepAwaiter final : public SleepTimer {
 public:
  SleepAwaiter(double delay, T value) : SleepTimer(delay), value_(std::move(value)) {}
  SleepAwaiter(SleepAwaiter&&) noexcept(std::is_nothrow_move_constructible_v<T>) = default;
  T await_resume() {
    resume_check();
    return std::move(value_);
  }

 private:
  T value_;
};

template <>
class SleepAwaiter<void> final : public SleepTimer {
 public:
  explicit SleepAwaiter(double delay) noexcept : SleepTimer(delay) {}
  SleepAwaiter(SleepAwaiter&&) noexcept = default;
  void await_resume() { resume_check(); }
};

inline double checked_delay(double seconds) {
  if (std::isnan(seconds)) throw ValueError("Invalid delay: NaN (not a number)");
  return seconds;
}

/// Waits for a future/task to be done without looking at its result (composition helpers).
/// Holds a reference to the state while suspended, as FutureAwaiter does.
class WaitDone final : public Waiter {
 public:
  explicit WaitDone(FutureStateBase* st) noexcept : st_(st) {}
  WaitDone(const WaitDone&) = delete;
  WaitDone& operator=(const WaitDone&) = delete;
  ~WaitDone() {
    if (task_ != nullptr) {
      st_->remove_waiter(this);
      st_->release();
    }
  }
  [[nodiscard]] bool await_ready() const noexcept { return st_->done(); }
  void await_suspend(std::coroutine_handle<> h) {
    task_ = &running_task("await a future");
    st_->add_ref();
    st_->add_waiter(this);
    task_->park(h, st_);
  }
  void on_future_done(FutureStateBase& /*f*/) noexcept override { task_->wake(); }
  void await_resume() {
    if (task_ != nullptr) task_->resume_check();
  }

 private:
  FutureStateBase* st_;
  TaskState* task_ = nullptr;
};

}  // namespace detail

/// Suspends the current task for `seconds` (<= 0: yields one loop iteration).
/// Cancellation: safe; the timer is removed at once.  Python: asyncio.sleep(delay)
[[nodiscard]] inline detail::SleepAwaiter<void> sleep(double seconds) {
  return detail::SleepAwaiter<void>(detail::checked_delay(seconds));
}
/// Whole seconds. (Also keeps `sleep(1)` unambiguous next to POSIX ::sleep(unsigned) when a
/// user writes `using namespace asyncio;`.) Python: asyncio.sleep(delay)
template <std::integral I>
[[nodiscard]] detail::SleepAwaiter<void> sleep(I seconds) {
  return detail::SleepAwaiter<void>(static_cast<double>(seconds));
}
/// Suspends the current task for a std::chrono duration. Python: asyncio.sleep(delay)
template <class Rep, class Period>
[[nodiscard]] detail::SleepAwaiter<void> sleep(std::chrono::duration<Rep, Period> d) {
  return detail::SleepAwaiter<void>(detail::to_seconds(d));
}
/// Sleeps, then returns `value`. Python: asyncio.sleep(delay, result)
template <class T>
[[nodiscard]] detail::SleepAwaiter<std::decay_t<T>> sleep(double seconds, T&& value) {
  return detail::SleepAwaiter<std::decay_t<T>>(detail::checked_delay(seconds),
                                               std::forward<T>(value));
}
/// Sleeps for a duration, then returns `value`. Python: asyncio.sleep(delay, result)
template <class Rep, class Period, class T>
[[nodiscard]] detail::SleepAwaiter<std::decay_t<T>> sleep(std::chrono::duration<Rep, Period> d,
                                                          T&& value) {
  return detail::SleepAwaiter<std::decay_t<T>>(detail::to_seconds(d), std::forward<T>(value));
}

// -- EventLoop::run_until_complete ---------------------------------------------------------------

namespace detail {
/// RuntimeError unless `loop` could run now (open, not running, no other loop running here).
void check_can_run(EventLoop& loop);
/// Runs `loop` until `st` is done (the body of run_until_complete).
void run_until_done(EventLoop& loop, FutureStateBase* st);
}  // namespace detail

template <class T>
T EventLoop::run_until_complete(Future<T> future) {
  detail::run_until_done(*this, future.state());
  future.state()->throw_if_not_result();
  if constexpr (!std::is_void_v<T>) {
    auto* value = static_cast<T*>(future.state()->result_ptr());
    if constexpr (std::is_copy_constructible_v<T>) {
      return *value;  // others may hold the future too
    } else {
      return std::move(*value);
    }
  }
}

template <class T>
T EventLoop::run_until_complete(Coro<T> coro) {
  detail::check_can_run(*this);  // before the coroutine becomes a task (Python's order)
  Task<T> task = create_task(std::move(coro));
  detail::run_until_done(*this, task.state());
  task.state()->throw_if_not_result();
  if constexpr (!std::is_void_v<T>) {
    return std::move(*static_cast<T*>(task.state()->result_ptr()));  // we hold the only handle
  }
}

}  // namespace asyncio
