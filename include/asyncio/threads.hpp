// asyncio/threads.hpp - crossing threads: to_thread, run_coroutine_threadsafe, ConcurrentFuture,
// wrap_future (Python: asyncio/threads.py, asyncio.run_coroutine_threadsafe, asyncio.wrap_future,
// concurrent.futures.Future).
//
// The rules (docs/design/threads.md, "to_thread, run_coroutine_threadsafe, wrap_future"):
// loop state (futures, tasks, frames) is created, touched and released only on its loop's
// thread; other threads reach a loop only through its shared thread-safe queue; a
// ConcurrentFuture is the one object here made to be shared by threads (a mutex and a condition
// variable guard its state).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "asyncio/coroutines.hpp"
#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/executors.hpp"
#include "asyncio/futures.hpp"
#include "asyncio/tasks.hpp"

namespace asyncio {

template <class T>
class ConcurrentFuture;

namespace detail {

/// The shared queue of `loop` (safe to call from any thread while `loop` exists).
std::shared_ptr<PostQueue> threadsafe_queue_of(EventLoop& loop);

/// pending -> {finished | cancelled}; never back.
enum class ConcurrentStatus : std::uint8_t { pending, finished, cancelled };

/// A ConcurrentFuture's state, shared by threads: every member locks `mu_`, and callbacks run
/// outside the lock, on the thread that completes the future.
class ConcurrentStateBase : public std::enable_shared_from_this<ConcurrentStateBase> {
 public:
  ConcurrentStateBase() = default;
  ConcurrentStateBase(const ConcurrentStateBase&) = delete;
  ConcurrentStateBase& operator=(const ConcurrentStateBase&) = delete;
  virtual ~ConcurrentStateBase() = default;

  [[nodiscard]] bool done() const;
  [[nodiscard]] bool cancelled() const;
  /// Blocks until done, at most `timeout` (forever when nullopt); returns done().
  bool wait(std::optional<std::chrono::nanoseconds> timeout) const;
  /// pending -> cancelled; runs the cancel hook (when `notify_source`) and the callbacks.
  /// False when already finished, true when (now) cancelled.
  bool cancel(bool notify_source);
  /// pending -> finished with `e`; false when already done.
  bool try_set_exception(std::exception_ptr e);
  /// Once done: CancelledError if cancelled, else the stored exception (null if none).
  [[nodiscard]] std::exception_ptr exception_when_done() const;
  /// Called by cancel(true), at most once (set before the state is shared).
  void set_cancel_hook(std::function<void()> hook) { cancel_hook_ = std::move(hook); }
  /// Runs `cb` when done (at once, on this thread, if already done).
  void add_callback(std::function<void()> cb);

 protected:
  /// pending -> `s`, after `store()` ran under the lock; then wakes waiters and runs callbacks.
  template <class Store>
  bool finish(ConcurrentStatus s, Store&& store) {
    std::vector<std::function<void()>> callbacks;
    {
      const std::lock_guard<std::mutex> lock(mu_);
      if (status_ != ConcurrentStatus::pending) return false;
      std::forward<Store>(store)();
      status_ = s;
      callbacks.swap(callbacks_);
    }
    cv_.notify_all();
    run_callbacks(callbacks);
    return true;
  }
  static void run_callbacks(std::vector<std::function<void()>>& callbacks) noexcept;
  /// Throws CancelledError or the stored exception; the caller holds `mu_` and the state is done.
  void throw_if_failed_locked() const;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  ConcurrentStatus status_ = ConcurrentStatus::pending;  // guarded by mu_

 private:
  std::exception_ptr error_;                      // guarded by mu_
  std::vector<std::function<void()>> callbacks_;  // guarded by mu_
  std::function<void()> cancel_hook_;             // immutable once shared
};

template <class T>
class ConcurrentState final : public ConcurrentStateBase {
 public:
  template <class... V>
  bool try_set_result(V&&... v) {
    return finish(ConcurrentStatus::finished, [&] { value_.emplace(std::forward<V>(v)...); });
  }
  /// Once done: the result (a copy; a move-only result is moved out, once), or throws.
  T result_when_done() {
    const std::lock_guard<std::mutex> lock(mu_);
    throw_if_failed_locked();
    if constexpr (!std::is_void_v<T>) {
      if constexpr (std::is_copy_constructible_v<T>) {
        return *value_;  // NOLINT(bugprone-unchecked-optional-access): finished with a value
      } else {
        if (!value_) throw InvalidStateError("the move-only result was already taken");
        T v = std::move(*value_);
        value_.reset();
        return v;
      }
    }
  }

 private:
  std::optional<value_or_unit_t<T>> value_;  // guarded by mu_
};

/// Completes the state it holds as cancelled (without asking the loop) if nothing completed it:
/// run_coroutine_threadsafe's promise that the future never stays pending forever. It lives in
/// the posted callback, then in the task's frame; whichever is destroyed first without having
/// completed the future (the post refused or discarded at close(), the frame destroyed by
/// close()) cancels it.
template <class T>
class CompleteGuard {
 public:
  explicit CompleteGuard(std::shared_ptr<ConcurrentState<T>> st) noexcept : st_(std::move(st)) {}
  CompleteGuard(CompleteGuard&& o) noexcept : st_(std::move(o.st_)) {}
  CompleteGuard& operator=(CompleteGuard&&) = delete;
  CompleteGuard(const CompleteGuard&) = delete;
  CompleteGuard& operator=(const CompleteGuard&) = delete;
  ~CompleteGuard() {
    if (st_) (void)st_->cancel(false);
  }
  [[nodiscard]] ConcurrentState<T>& state() const noexcept { return *st_; }
  /// Hands the outcome over (ignored if the future was cancelled meanwhile).
  template <class... V>
  void set_result(V&&... v) {
    (void)st_->try_set_result(std::forward<V>(v)...);
    st_.reset();
  }
  void set_exception(std::exception_ptr e) {
    (void)st_->try_set_exception(std::move(e));
    st_.reset();
  }

 private:
  std::shared_ptr<ConcurrentState<T>> st_;
};

/// The task run_coroutine_threadsafe made; `task` is read and written on its loop's thread
/// only, and is null before the task's first step and after its frame is gone.
struct ThreadsafeTaskLink {
  TaskState* task = nullptr;
};

/// Sets link.task for as long as the task's frame lives.
class TaskBinding {
 public:
  explicit TaskBinding(ThreadsafeTaskLink& link) noexcept : link_(link) {
    link_.task = current_task().get();
  }
  TaskBinding(const TaskBinding&) = delete;
  TaskBinding& operator=(const TaskBinding&) = delete;
  ~TaskBinding() { link_.task = nullptr; }

 private:
  ThreadsafeTaskLink& link_;
};

/// The task's body: runs `coro` and hands its outcome to the ConcurrentFuture. A cancellation
/// ends the task cancelled (and the future too); any other exception goes to the future only
/// (it is retrieved, as Python's chained future retrieves it).
template <class T>
Coro<void> run_threadsafe_body(Coro<T> coro, CompleteGuard<T> outcome,
                               std::shared_ptr<ThreadsafeTaskLink> link) {
  // A local, so that it is destroyed as a cancellation leaves the body (a parameter would
  // live as long as the frame).
  CompleteGuard<T> guard(std::move(outcome));
  const TaskBinding binding(*link);
  // cancel() came before the first step: its request found no task yet; don't start.
  if (guard.state().cancelled()) co_return;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(coro);
      guard.set_result();
    } else {
      guard.set_result(co_await std::move(coro));
    }
  } catch (const CancelledError&) {
    throw;  // the guard cancels the future as the exception leaves the body
  } catch (...) {
    guard.set_exception(std::current_exception());
  }
}

/// wrap_future's side on the awaiting loop; every member is for that loop's thread only.
struct WrapLink {
  FutureStateBase* fut = nullptr;  // the awaited loop future, while wrap_future's frame lives
  LoopCore* core = nullptr;
  bool held = false;  // holds the loop's external-work count (virtual time waits)

  void release() noexcept {
    if (held) {
      held = false;
      core->release_external();
    }
  }
};

/// On the awaiting loop's thread: the concurrent future is done; complete the loop future.
template <class T>
void wrap_deliver(WrapLink& w, const ConcurrentFuture<T>& cf) {
  w.release();
  if (w.fut == nullptr || w.fut->done()) return;
  Future<T> fut = Future<T>::from_state(w.fut);
  if (cf.cancelled()) {
    fut.cancel();
    return;
  }
  if (std::exception_ptr e = cf.exception()) {
    fut.set_exception(std::move(e));
  } else if constexpr (std::is_void_v<T>) {
    fut.set_result();
  } else {
    fut.set_result(cf.result());
  }
}

/// Lives in wrap_future's frame: holds the loop's external-work count and makes the concurrent
/// future's completion, on whatever thread, post wrap_deliver to this loop.
template <class T>
class WrapAttach {
 public:
  WrapAttach(EventLoop& loop, const Future<T>& fut, const ConcurrentFuture<T>& cf)
      : link_(std::make_shared<WrapLink>()) {
    link_->fut = fut.state();
    link_->core = &core_of(loop);
    link_->core->hold_external();
    link_->held = true;
    std::shared_ptr<PostQueue> q = threadsafe_queue_of(loop);
    cf.add_done_callback([w = link_, q](const ConcurrentFuture<T>& f) {
      // Any thread. A closed loop refuses the post: nothing waits for it any more.
      (void)post_callback(*q, [w, f] { wrap_deliver(*w, f); });
    });
  }
  WrapAttach(const WrapAttach&) = delete;
  WrapAttach& operator=(const WrapAttach&) = delete;
  ~WrapAttach() {
    link_->fut = nullptr;
    link_->release();
  }

 private:
  std::shared_ptr<WrapLink> link_;
};

}  // namespace detail

/// A result that another thread sets, usable from any thread: blocking result() with an
/// optional time-out, done callbacks. A copyable handle to shared, thread-safe state (a mutex
/// and a condition variable). Python: concurrent.futures.Future
template <class T = void>
class [[nodiscard]] ConcurrentFuture {
 public:
  using value_type = T;

  /// A new pending future. Python: concurrent.futures.Future()
  ConcurrentFuture() : st_(std::make_shared<detail::ConcurrentState<T>>()) {}

  /// Python: Future.done()
  [[nodiscard]] bool done() const { return st_->done(); }
  /// Python: Future.cancelled()
  [[nodiscard]] bool cancelled() const { return st_->cancelled(); }
  /// Cancels a pending future at once (waiters wake, callbacks run) and, for a future of
  /// run_coroutine_threadsafe, asks its loop (through call_soon_threadsafe) to cancel the
  /// task. False if it already finished; true if it is (now) cancelled. Python: Future.cancel()
  bool cancel() const { return st_->cancel(true); }

  /// Blocks until done; the result (a copy; a move-only result is moved out, and can be taken
  /// once), or rethrows its exception; CancelledError if cancelled. Python: Future.result()
  T result() const {
    (void)st_->wait(std::nullopt);
    return st_->result_when_done();
  }
  /// As result(), waiting at most `timeout` (real time): TimeoutError if still pending then.
  /// Python: Future.result(timeout)
  template <class Rep, class Period>
  T result(std::chrono::duration<Rep, Period> timeout) const {
    wait_or_throw(timeout);
    return st_->result_when_done();
  }
  /// Blocks until done; the exception (null if it finished with a result); CancelledError if
  /// cancelled. Python: Future.exception()
  [[nodiscard]] std::exception_ptr exception() const {
    (void)st_->wait(std::nullopt);
    return st_->exception_when_done();
  }
  /// As exception(), waiting at most `timeout`: TimeoutError if still pending then.
  /// Python: Future.exception(timeout)
  template <class Rep, class Period>
  [[nodiscard]] std::exception_ptr exception(std::chrono::duration<Rep, Period> timeout) const {
    wait_or_throw(timeout);
    return st_->exception_when_done();
  }

  /// Calls `fn(future)` once done, on the thread that completes the future (or at once, on this
  /// thread, if it is done already), in registration order. Exceptions it throws are ignored
  /// (Python logs them). Python: Future.add_done_callback(fn)
  template <class F>
  requires std::is_invocable_v<F&, const ConcurrentFuture<T>&>
  void add_done_callback(F fn) const {
    std::weak_ptr<detail::ConcurrentState<T>> weak = st_;  // no cycle state -> callback -> state
    st_->add_callback([weak = std::move(weak), fn = std::move(fn)]() mutable {
      if (auto st = weak.lock()) fn(ConcurrentFuture(std::move(st)));
    });
  }

  /// Completes the future with a value; InvalidStateError if already done (cancelled included).
  /// For code that produces results on threads, and tests. Python: Future.set_result(result)
  template <class... V>
  void set_result(V&&... v) const {
    if (!st_->try_set_result(std::forward<V>(v)...)) throw InvalidStateError("future is done");
  }
  /// Completes the future with an exception; InvalidStateError if already done.
  /// Python: Future.set_exception(exception)
  void set_exception(std::exception_ptr e) const {
    if (!st_->try_set_exception(std::move(e))) throw InvalidStateError("future is done");
  }

  friend bool operator==(const ConcurrentFuture& a, const ConcurrentFuture& b) noexcept {
    return a.st_ == b.st_;
  }

  /// Internal.
  [[nodiscard]] const std::shared_ptr<detail::ConcurrentState<T>>& state() const noexcept {
    return st_;
  }

 private:
  explicit ConcurrentFuture(std::shared_ptr<detail::ConcurrentState<T>> st) noexcept
      : st_(std::move(st)) {}
  template <class Rep, class Period>
  void wait_or_throw(std::chrono::duration<Rep, Period> timeout) const {
    const auto ns = std::chrono::ceil<std::chrono::nanoseconds>(timeout);
    if (!st_->wait(ns)) throw TimeoutError();
  }

  std::shared_ptr<detail::ConcurrentState<T>> st_;
};

/// Runs `fn(args...)` on the running loop's default executor and returns a future of its result
/// (void allowed); the function is submitted at the call. Arguments are taken by value and
/// moved to the call (pass references with std::ref). Exceptions it throws reach the awaiter
/// intact. Python's contextvars copy has no C++ counterpart.
/// Cancellation: the awaiting task ends with CancelledError at once; the function keeps running
///   on its thread (threads are never interrupted) and its result is dropped, as in Python.
/// Throws: RuntimeError (no running loop; executor shut down).   Python: asyncio.to_thread
template <class F, class... Args>
[[nodiscard]] auto to_thread(F fn, Args... args) -> Future<std::invoke_result_t<F&&, Args&&...>> {
  return get_running_loop().run_in_executor(
      nullptr, [fn = std::move(fn), ... args = std::move(args)]() mutable {
        return std::invoke(std::move(fn), std::move(args)...);
      });
}

/// From any thread: schedules `coro` as a task on `loop` (through call_soon_threadsafe) and
/// returns a ConcurrentFuture of its result. The future's cancel() cancels the task; if the loop
/// closes before the task completed (or started), the future ends cancelled.
/// Throws: RuntimeError("Event loop is closed") when `loop` is closed; `loop` must exist.
/// Python: asyncio.run_coroutine_threadsafe(coro, loop)
template <class T>
ConcurrentFuture<T> run_coroutine_threadsafe(Coro<T> coro, EventLoop& loop) {
  ConcurrentFuture<T> cf;
  auto link = std::make_shared<detail::ThreadsafeTaskLink>();
  std::shared_ptr<detail::PostQueue> q = detail::threadsafe_queue_of(loop);
  // cancel(), from any thread: the loop cancels the task on its own thread. A request that
  // comes before the task's first step finds no task; the body then sees the cancelled future.
  cf.state()->set_cancel_hook([q, link] {
    (void)detail::post_callback(*q, [link] {
      if (link->task != nullptr) (void)link->task->cancel({});
    });
  });
  detail::CompleteGuard<T> guard(cf.state());
  const bool posted = detail::post_callback(
      *q, [coro = std::move(coro), guard = std::move(guard), link, loop = &loop]() mutable {
        (void)loop->create_task(
            detail::run_threadsafe_body<T>(std::move(coro), std::move(guard), std::move(link)));
      });
  if (!posted) throw RuntimeError("Event loop is closed");
  return cf;
}

/// Awaits a ConcurrentFuture from a coroutine on a loop: its completion, on whatever thread,
/// reaches this loop through its thread-safe queue (virtual time waits for it, as for
/// run_in_executor). Returns its result or rethrows its exception; CancelledError if it was
/// cancelled.
/// Cancellation: cancelling the awaiting task cancels the concurrent future too (Python's
///   chained futures do the same).   Python: asyncio.wrap_future(future)
template <class T>
[[nodiscard]] Coro<T> wrap_future(ConcurrentFuture<T> cf) {
  EventLoop& loop = get_running_loop();
  Future<T> fut = loop.create_future<T>();
  const detail::WrapAttach<T> attach(loop, fut, cf);
  std::exception_ptr err;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await fut;
      co_return;
    } else {
      co_return co_await std::move(fut);
    }
  } catch (const CancelledError&) {
    err = std::current_exception();
  }
  (void)cf.cancel();  // a no-op when the concurrent future itself was cancelled
  std::rethrow_exception(err);
}

}  // namespace asyncio
