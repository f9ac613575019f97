// asyncio/events.hpp - the event loop, handles and run options (Python: events.py,
// base_events.py). The loop's scheduling core (ready queue, timers, tasks, clock, one
// iteration) is detail::LoopCore (detail/loop_core.hpp, src/base_event_loop.cpp), which also
// describes an iteration; the I/O side is below it (src/unix/loop_io.hpp). Layers:
// docs/design/loop.md, "Layering".
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "asyncio/coroutines.hpp"
#include "asyncio/detail/frame_alloc.hpp"
#include "asyncio/detail/intrusive.hpp"
#include "asyncio/detail/loop_core.hpp"
#include "asyncio/detail/runnable.hpp"
#include "asyncio/detail/timer_heap.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/task_ref.hpp"

namespace asyncio {

class EventLoop;
class Executor;
template <class T>
class Future;
template <class T>
class Task;

/// Which I/O engine a loop uses. `automatic` picks the fastest the kernel allows.
enum class Backend { automatic, epoll, io_uring };

/// How asyncio::run / new_event_loop set up a loop. Python: asyncio.run(debug=...)
struct RunOptions {
  /// Debug mode (also switched on by ASYNCIO_DEBUG=1 in the environment).
  bool debug = false;
  /// Virtual time: when nothing is ready and no I/O or thread work is pending, the clock jumps
  /// to the next timer, so sleep(1h) returns at once while time() advances by exactly 1 h.
  bool virtual_time = false;
  /// The I/O engine.
  Backend backend = Backend::automatic;
  /// Shuffle mode, a testing aid no asyncio has (empty: off, unless ASYNCIO_SHUFFLE=N is in
  /// the environment; any seed, 0 included, turns it on). Each iteration runs the entries that
  /// were ready when it began in an order drawn from this seed instead of FIFO; the same seed
  /// gives the same order. A task's own steps stay in order and timers still fire by deadline
  /// (docs/design/loop.md, "Shuffle mode").
  std::optional<std::uint64_t> shuffle_seed = std::nullopt;
};

/// What the exception handler is told. Python: the `context` dict of call_exception_handler.
struct ExceptionContext {
  std::string message;           ///< what happened
  std::exception_ptr exception;  ///< the error, if there is one
  TaskRef task;                  ///< the task involved, if any
  std::string callback;          ///< the callback involved, if any (its description)
};

/// The loop's exception handler. Python: loop.set_exception_handler(handler)
using ExceptionHandler = std::function<void(EventLoop&, const ExceptionContext&)>;

namespace detail {

/// The core of `loop` (defined below EventLoop).
inline LoopCore& core_of(EventLoop& loop) noexcept;

/// A callback scheduled on the loop (call_soon, call_later, readers, signals).
/// Reference-counted atomically because call_soon_threadsafe creates it on another thread.
class HandleState : public Runnable, public PoolAllocated {
 public:
  HandleState() = default;
  HandleState(const HandleState&) = delete;
  HandleState& operator=(const HandleState&) = delete;
  virtual ~HandleState() = default;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  [[nodiscard]] bool cancelled() const noexcept {
    return cancelled_.load(std::memory_order_relaxed);
  }
  virtual void cancel() noexcept { cancelled_.store(true, std::memory_order_relaxed); }

  /// Runs the callback unless cancelled; drops the reference the ready queue held.
  void run() override;

  /// The thread-safe queue's link while the handle is posted (written by the posting thread
  /// before it publishes the handle, read by the loop's thread after it took it).
  HandleState* post_next = nullptr;
  void discard() noexcept override {
    drop();
    release();
  }

 protected:
  virtual void invoke() = 0;
  /// Destroys the callable now (so captures die on the loop's thread, whoever releases last).
  virtual void drop() noexcept = 0;

 private:
  std::atomic<std::uint32_t> refs_{0};
  std::atomic<bool> cancelled_{false};
};

/// A callback run once (call_soon, call_soon_threadsafe) or on every event (readers, signals).
template <class F, bool Repeat = false>
class CallbackHandle final : public HandleState {
 public:
  explicit CallbackHandle(F f) : f_(std::move(f)) {}

 private:
  void invoke() override {
    // f_ holds the callable until invoke() or drop(), and invoke() runs at most once for a
    // one-shot handle (HandleState::run).
    if constexpr (Repeat) {
      (*f_)();  // NOLINT(bugprone-unchecked-optional-access)
    } else {
      F f = std::move(*f_);  // NOLINT(bugprone-unchecked-optional-access)
      f_.reset();
      f();
    }
  }
  void drop() noexcept override { f_.reset(); }
  std::optional<F> f_;
};

/// A timed callback: in the timer heap (holding one reference) until due or cancelled.
class TimerHandleState : public HandleState, public TimerNode {
 public:
  explicit TimerHandleState(LoopCore* core) noexcept : core_(core) {}
  void cancel() noexcept override;
  void on_timer() noexcept override;
  void on_discard() noexcept override {
    drop();  // captures die now, even if a TimerHandle outlives the loop
    release();
  }
  double when = 0;  ///< the deadline (Python: TimerHandle.when())

 private:
  LoopCore* core_;
};

template <class F>
class TimerCallbackHandle final : public TimerHandleState {
 public:
  TimerCallbackHandle(LoopCore* core, F f) : TimerHandleState(core), f_(std::move(f)) {}

 private:
  void invoke() override {
    F f = std::move(*f_);  // NOLINT(bugprone-unchecked-optional-access): runs at most once
    f_.reset();
    f();
  }
  void drop() noexcept override { f_.reset(); }
  std::optional<F> f_;
};

/// From any thread: queues `st` on `q` (taking the ready queue's reference) and wakes its loop.
/// False, with `st` untouched, when that loop has closed (or is gone).
bool post_threadsafe(PostQueue& q, HandleState* st);

inline double to_seconds(double s) noexcept {
  return s;
}
template <class Rep, class Period>
double to_seconds(std::chrono::duration<Rep, Period> d) noexcept {
  return std::chrono::duration<double>(d).count();
}

}  // namespace detail

/// A scheduled callback. Copyable; cancel() prevents it from running if it has not yet.
/// Python: asyncio.Handle
class Handle {
 public:
  Handle() noexcept = default;
  explicit Handle(detail::HandleState* st) noexcept : st_(st) {}
  /// Python: Handle.cancel()
  void cancel() noexcept {
    if (st_) st_->cancel();
  }
  /// Python: Handle.cancelled()
  [[nodiscard]] bool cancelled() const noexcept { return st_ && st_->cancelled(); }

 protected:
  detail::Ref<detail::HandleState> st_;
};

/// A callback scheduled for a time. Python: asyncio.TimerHandle
class TimerHandle : public Handle {
 public:
  TimerHandle() noexcept = default;
  explicit TimerHandle(detail::TimerHandleState* st) noexcept : Handle(st), when_(st->when) {}
  /// The absolute loop time it is scheduled for. Python: TimerHandle.when()
  [[nodiscard]] double when() const noexcept { return when_; }

 private:
  double when_ = 0;
};

/// The event loop: runs tasks and callbacks, timers, I/O readiness, signals.
/// One loop per thread may run at a time; every member except call_soon_threadsafe() must be
/// called from the loop's thread. Python: asyncio.AbstractEventLoop / BaseEventLoop
class EventLoop {
 public:
  explicit EventLoop(RunOptions options = {});
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // -- Running and stopping ------------------------------------------------------------------

  /// Runs the loop until `coro` (wrapped in a task) is done; returns its result or rethrows.
  /// Python: loop.run_until_complete(coro)
  template <class T>
  T run_until_complete(Coro<T> coro);
  /// Runs the loop until the future (or task) is done. Python: loop.run_until_complete(fut)
  template <class T>
  T run_until_complete(Future<T> future);
  /// Runs until stop() is called. Python: loop.run_forever()
  void run_forever();
  /// Stops after the current iteration. Python: loop.stop()
  void stop() noexcept { core_.stop(); }
  /// Closes the loop: pending callbacks are dropped, pending tasks destroyed (their frames'
  /// destructors run, innermost frame first, however deep the await chain). Work those
  /// destructors create (a task, a callback) is destroyed too, without running, before close()
  /// returns; afterwards new work is refused. Futures of executor jobs still running are
  /// released; their results are dropped when they come. Throws RuntimeError while running.
  /// Idempotent. Python: loop.close()
  void close();
  /// Python: loop.is_running()
  [[nodiscard]] bool is_running() const noexcept { return running_; }
  /// Python: loop.is_closed()
  [[nodiscard]] bool is_closed() const noexcept { return core_.closed(); }
  /// Monotonic seconds (virtual when RunOptions::virtual_time). Python: loop.time()
  [[nodiscard]] double time() const noexcept { return core_.time(); }

  // -- Callbacks -----------------------------------------------------------------------------

  /// Runs `f()` at the next iteration, after the callbacks already scheduled.
  /// Python: loop.call_soon(callback)
  template <class F>
  Handle call_soon(F&& f) {
    core_.check_open();
    if (core_.debug()) [[unlikely]]
      check_thread();
    // Thread-safe posts made before this call run before it, as in Python, where both append
    // to one queue (they join the ready queue here rather than at the next poll).
    core_.take_posted_if_any();
    auto* st = new detail::CallbackHandle<std::decay_t<F>>(std::forward<F>(f));
    Handle h(st);
    st->add_ref();  // the queue's reference
    core_.ready().push(st);
    return h;
  }
  /// Runs `f()` after `delay` seconds (a std::chrono duration or a double).
  /// Python: loop.call_later(delay, callback)
  template <class D, class F>
  TimerHandle call_later(D delay, F&& f) {
    return call_at(time() + detail::to_seconds(delay), std::forward<F>(f));
  }
  /// Runs `f()` at loop time `when`. Python: loop.call_at(when, callback)
  template <class F>
  TimerHandle call_at(double when, F&& f) {
    core_.check_open();
    if (core_.debug()) [[unlikely]]
      check_thread();
    auto* st = new detail::TimerCallbackHandle<std::decay_t<F>>(&core_, std::forward<F>(f));
    st->when = when;
    TimerHandle h(st);
    st->add_ref();  // the heap's reference
    core_.add_timer(st, when);
    return h;
  }
  /// Like call_soon, but safe from any thread; wakes the loop. The only thread-safe member.
  /// Python: loop.call_soon_threadsafe(callback)
  template <class F>
  Handle call_soon_threadsafe(F&& f) {
    auto* st = new detail::CallbackHandle<std::decay_t<F>>(std::forward<F>(f));
    Handle h(st);
    post_threadsafe(st);
    return h;
  }

  // -- Tasks and futures ---------------------------------------------------------------------

  /// Schedules `coro` as a task named `name`; it starts at a later iteration.
  /// Python: loop.create_task(coro, name=name)
  template <class T>
  Task<T> create_task(Coro<T> coro, std::string name);
  /// Schedules `coro` as a task named "Task-N". Python: loop.create_task(coro)
  template <class T>
  Task<T> create_task(Coro<T> coro);
  /// A new pending future bound to this loop. Python: loop.create_future()
  template <class T = void>
  Future<T> create_future();

  // -- Debug and errors ----------------------------------------------------------------------

  /// Python: loop.set_debug()
  void set_debug(bool enabled) noexcept { core_.set_debug(enabled); }
  /// Python: loop.get_debug()
  [[nodiscard]] bool get_debug() const noexcept { return core_.debug(); }
  /// Debug mode warns about callbacks/steps that take longer (seconds).
  /// Python: loop.slow_callback_duration
  double slow_callback_duration = 0.1;

  /// Python: loop.set_exception_handler(handler); an empty function restores the default.
  void set_exception_handler(ExceptionHandler handler) { handler_ = std::move(handler); }
  /// Python: loop.get_exception_handler()
  [[nodiscard]] const ExceptionHandler& get_exception_handler() const noexcept { return handler_; }
  /// Reports an error through the handler (never throws). Python: loop.call_exception_handler()
  void call_exception_handler(const ExceptionContext& context) noexcept;
  /// Prints the context to stderr. Python: loop.default_exception_handler()
  void default_exception_handler(const ExceptionContext& context) noexcept;

  // -- I/O readiness and signals -------------------------------------------------------------

  /// Calls `f()` whenever `fd` is readable; replaces a previous reader. Python: loop.add_reader()
  template <class F>
  void add_reader(int fd, F&& f) {
    add_fd_handle(fd, false, make_handle(std::forward<F>(f)));
  }
  /// Python: loop.remove_reader(); false when there was none.
  bool remove_reader(int fd) { return remove_fd_handle(fd, false); }
  /// Calls `f()` whenever `fd` is writable. Python: loop.add_writer()
  template <class F>
  void add_writer(int fd, F&& f) {
    add_fd_handle(fd, true, make_handle(std::forward<F>(f)));
  }
  /// Python: loop.remove_writer(); false when there was none.
  bool remove_writer(int fd) { return remove_fd_handle(fd, true); }
  /// Runs `f()` (as a loop callback, never inside the signal handler) when `sig` arrives.
  /// ValueError for an invalid number, RuntimeError if it cannot be caught.
  /// Python: loop.add_signal_handler(sig, callback)
  template <class F>
  void add_signal_handler(int sig, F&& f) {
    add_signal_handle(sig, make_handle(std::forward<F>(f)));
  }
  /// Restores the default disposition; false when no handler was set.
  /// Python: loop.remove_signal_handler(sig)
  bool remove_signal_handler(int sig);

  // -- Executors and shutdown ----------------------------------------------------------------

  /// Runs `f()` on `executor` (nullptr: the default thread pool); the future completes on this
  /// loop. Python: loop.run_in_executor(executor, func)
  template <class F>
  auto run_in_executor(Executor* executor, F f) -> Future<std::invoke_result_t<F&>>;
  /// Python: loop.set_default_executor(executor)
  void set_default_executor(std::shared_ptr<Executor> executor);
  /// Joins the default executor's threads. Python: loop.shutdown_default_executor()
  Coro<void> shutdown_default_executor();
  /// Closes every async generator still open. Python: loop.shutdown_asyncgens()
  Coro<void> shutdown_asyncgens();

 private:
  friend detail::LoopCore& detail::core_of(EventLoop& loop) noexcept;

  template <class T>
  Task<T> create_task_named(Coro<T> coro, std::string* name);
  Executor& default_executor();
  /// The thread-safe queue, for work on other threads that posts back later: it outlives the
  /// loop, and refuses posts once the loop has closed.
  [[nodiscard]] std::shared_ptr<detail::PostQueue> threadsafe_queue() const;
  /// run_in_executor's futures: the loop holds each (a reference, released on its own thread)
  /// until the job's result comes back, or until close(), so a job that finishes after the
  /// loop closed never touches loop state. Returns the slot the job names.
  std::uint32_t hold_executor_future(detail::FutureStateBase* f);
  /// Gives the future held in `slot` back (null after close()).
  detail::Ref<detail::FutureStateBase> take_executor_future(std::uint32_t slot) noexcept;
  template <class F>
  detail::Ref<detail::HandleState> make_handle(F&& f) {
    return detail::Ref<detail::HandleState>(
        new detail::CallbackHandle<std::decay_t<F>, true>(std::forward<F>(f)));
  }
  void add_fd_handle(int fd, bool write, detail::Ref<detail::HandleState> h);
  bool remove_fd_handle(int fd, bool write);
  void add_signal_handle(int sig, detail::Ref<detail::HandleState> h);
  void post_threadsafe(detail::HandleState* st);
  /// Debug mode: RuntimeError unless called from the thread running the loop (or while no
  /// thread runs it). Python: BaseEventLoop._check_thread
  void check_thread() const;
  void drop_executor_futures() noexcept;

  // The core first: it is destroyed last, after everything that may still post to it.
  detail::LoopCore core_;
  RunOptions options_;
  std::atomic<std::thread::id> thread_id_{};  // the thread in run_forever(), for check_thread()
  bool running_ = false;
  bool closing_ = false;  // close() is running (a second call from a destructor returns)
  ExceptionHandler handler_;
  std::shared_ptr<Executor> default_executor_;
  bool executor_shutdown_called_ = false;
  std::vector<detail::FutureStateBase*> executor_futures_;  // each holds a reference; null: free
  std::vector<std::uint32_t> free_executor_slots_;
};

/// The loop running in this thread; RuntimeError when none. Python: asyncio.get_running_loop()
EventLoop& get_running_loop();
/// A new loop (not running, not set anywhere). Python: asyncio.new_event_loop()
std::unique_ptr<EventLoop> new_event_loop(RunOptions options = {});

namespace detail {
inline LoopCore& core_of(EventLoop& loop) noexcept {
  return loop.core_;
}
inline ReadyQueue& ready_queue_of(EventLoop& loop) noexcept {
  return core_of(loop).ready();
}
/// The loop's I/O side (what sockets and the I/O operations reach).
inline LoopIo& io_of(EventLoop& loop) noexcept {
  return core_of(loop).io();
}
/// Runs one iteration of `loop` (tests drive loops step by step with it).
inline void run_once(EventLoop& loop) {
  core_of(loop).run_once();
}
/// The loop's pending tasks, oldest first (all_tasks() of any loop).
std::vector<TaskRef> tasks_of(EventLoop& loop);
}  // namespace detail

}  // namespace asyncio
