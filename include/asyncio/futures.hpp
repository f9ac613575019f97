// asyncio/futures.hpp - Future<T> and Outcome<T> (Python: futures.py).
#pragma once

#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "asyncio/detail/future_state.hpp"
#include "asyncio/detail/task_state.hpp"
#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"

namespace asyncio {

/// Identifies a done callback for remove_done_callback().
using CallbackId = std::uint64_t;

/// A value or an exception: one child's result in gather(return_exceptions, ...).
/// For a void result, T is Unit. Python: the result-or-exception items of gather().
template <class T>
class Outcome {
 public:
  Outcome(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Outcome(std::exception_ptr error) : error_(std::move(error)) {}  // NOLINT
  [[nodiscard]] bool has_value() const noexcept { return value_.has_value(); }
  /// The value; rethrows the exception when there is none.
  T& value() & {
    if (!value_) std::rethrow_exception(error_);
    return *value_;
  }
  const T& value() const& {
    if (!value_) std::rethrow_exception(error_);
    return *value_;
  }
  T&& value() && {
    if (!value_) std::rethrow_exception(error_);
    return std::move(*value_);
  }
  /// The exception (null when there is a value).
  [[nodiscard]] std::exception_ptr exception() const noexcept { return error_; }

 private:
  std::optional<T> value_;
  std::exception_ptr error_;
};

namespace detail {

/// A plain (non-task) future's state: the base plus storage for the value.
template <class T>
class FutureState final : public FutureStateBase {
 public:
  explicit FutureState(LoopCore* core) noexcept : FutureStateBase(core) {}
  std::optional<value_or_unit_t<T>> value;
};

std::uint64_t next_callback_id() noexcept;

/// A done callback: owned by the future's list while it waits (no reference, so a forgotten
/// pending future is freed with its callbacks), then queued with a reference and run once.
template <class T, class F>
class DoneCallback final : public Waiter, public Runnable, public PoolAllocated {
 public:
  explicit DoneCallback(F f) : f_(std::move(f)) {}
  void on_future_done(FutureStateBase& f) noexcept override {
    keep_ = Ref<FutureStateBase>(&f);
    f.core().ready().push(this);
  }
  [[nodiscard]] std::uint64_t callback_id() const noexcept override { return id_; }
  void on_abandon() noexcept override { delete this; }
  void run() override {
    std::unique_ptr<DoneCallback> self(this);
    Future<T> fut = Future<T>::from_state(keep_.get());
    f_(fut);
  }
  void discard() noexcept override { delete this; }
  const std::uint64_t id_ = next_callback_id();

 private:
  F f_;
  Ref<FutureStateBase> keep_;
};

/// The awaiter of a Future/Task: parks the task on the future, wakes when it completes.
/// Cancelling the task cancels the future (Python's Task.__step _fut_waiter.cancel()).
/// While the task waits, the awaiter holds a reference to the future's state (Python's
/// Task._fut_waiter), so the handle it was given may be dropped meanwhile (an entry erased
/// from a table of pending requests, a Task member reassigned): taken in await_suspend, a
/// counter increment, never an allocation.
template <class T, bool Move>
class FutureAwaiter final : public Waiter {
 public:
  explicit FutureAwaiter(FutureStateBase* st) noexcept : st_(st) {}
  FutureAwaiter(const FutureAwaiter&) = delete;
  FutureAwaiter& operator=(const FutureAwaiter&) = delete;
  ~FutureAwaiter() {
    if (task_ != nullptr) {  // suspended: the reference taken there
      st_->remove_waiter(this);
      st_->release();
    }
  }

  [[nodiscard]] bool await_ready() const noexcept { return st_->done(); }
  void await_suspend(std::coroutine_handle<> h) {
    TaskState& task = running_task("await a future");
    if (st_->core_ptr() != task.core_ptr()) {
      throw RuntimeError("Task got Future attached to a different loop");
    }
    if (st_ == static_cast<FutureStateBase*>(&task)) {
      throw RuntimeError("Task cannot await on itself");
    }
    task_ = &task;
    st_->add_ref();
    st_->add_waiter(this);
    task.park(h, st_);
  }
  void on_future_done(FutureStateBase& /*f*/) noexcept override { task_->wake(); }
  T await_resume() {
    if (task_ != nullptr) task_->resume_check();
    st_->throw_if_not_result();
    if constexpr (!std::is_void_v<T>) {
      if constexpr (Move) {
        return std::move(*static_cast<T*>(st_->result_ptr()));
      } else {
        return *static_cast<T*>(st_->result_ptr());
      }
    }
  }

 private:
  FutureStateBase* st_;
  TaskState* task_ = nullptr;
};

}  // namespace detail

/// A low-level awaitable result that somebody sets. Copyable handle to shared, loop-bound
/// state; awaitable by any number of tasks. Python: asyncio.Future
///
/// Cancellation: awaiting is cancel-safe. Cancelling a task that awaits a future cancels the
///   future itself (as in Python); use shield() to prevent that.
template <class T = void>
class [[nodiscard]] Future {
 public:
  using value_type = T;

  /// A pending future bound to the running loop (RuntimeError when none).
  Future() : Future(get_running_loop()) {}
  /// A pending future bound to `loop`.
  explicit Future(EventLoop& loop)
      : st_(detail::Ref<detail::FutureStateBase>(
            new detail::FutureState<T>(&detail::core_of(loop)))) {}

  /// Python: Future.done()
  [[nodiscard]] bool done() const { return st().done(); }
  /// Python: Future.cancelled()
  [[nodiscard]] bool cancelled() const { return st().cancelled(); }
  /// Cancels a pending future (a task: requests cancellation). Python: Future.cancel(msg)
  bool cancel(const std::string& msg = {}) { return st().cancel(msg); }

  /// The result; InvalidStateError if pending, CancelledError if cancelled, or the stored
  /// exception. Python: Future.result()
  T result() const {
    st().throw_if_not_result();
    if constexpr (!std::is_void_v<T>) return *static_cast<const T*>(st_->result_ptr());
  }
  /// The stored exception (null if the future has a result). CancelledError if cancelled,
  /// InvalidStateError if pending. Python: Future.exception()
  [[nodiscard]] std::exception_ptr exception() const { return st().exception(); }

  /// Calls `f(Future<T>&)` from the loop soon after completion (at once-ish if already done),
  /// in registration order. Python: Future.add_done_callback(fn)
  template <class F>
  requires std::is_invocable_v<F&, Future<T>&>
  CallbackId add_done_callback(F f) {
    st().core().check_open();
    auto* node = new detail::DoneCallback<T, F>(std::move(f));
    const CallbackId id = node->id_;
    if (st_->done()) {
      node->on_future_done(*st_);
    } else {
      st_->add_waiter(node);
    }
    return id;
  }
  /// Removes a callback that has not been scheduled yet; returns how many were removed.
  /// Python: Future.remove_done_callback(fn)
  std::size_t remove_done_callback(CallbackId id) { return st().remove_callback(id); }

  /// Completes the future with a value; InvalidStateError if already done.
  /// Python: Future.set_result(result)
  template <class U = T>
  requires(!std::is_void_v<U>)
  void set_result(U value) {
    st().check_settable();
    auto& s = static_cast<detail::FutureState<T>&>(*st_);
    s.value.emplace(std::move(value));
    st_->finish(&*s.value);
  }
  /// Completes a Future<void>. Python: Future.set_result(None)
  template <class U = T>
  requires std::is_void_v<U>
  void set_result() {
    st().check_settable();
    st_->finish(nullptr);
  }
  /// Completes the future with an exception; InvalidStateError if already done.
  /// Python: Future.set_exception(exception)
  void set_exception(std::exception_ptr e) { st().set_exception(std::move(e)); }

  /// The loop the future is bound to. Python: Future.get_loop()
  [[nodiscard]] EventLoop& get_loop() const { return st().loop(); }

  /// Suspends until done; returns a copy of the result or rethrows.
  auto operator co_await() const& { return detail::FutureAwaiter<T, false>(&st()); }
  /// Suspends until done; moves the result out (for move-only results, and for copyable ones:
  /// other handles then see a moved-from value).
  auto operator co_await() && { return detail::FutureAwaiter<T, true>(&st()); }

  friend bool operator==(const Future& a, const Future& b) noexcept { return a.st_ == b.st_; }

  /// Internal.
  [[nodiscard]] detail::FutureStateBase* state() const noexcept { return st_.get(); }
  /// Internal: a new handle to existing state.
  static Future from_state(detail::FutureStateBase* st) noexcept {
    st->add_ref();
    return Future(Adopt{}, st);
  }

 protected:
  /// The state; InvalidStateError for an empty handle (a default-constructed Task).
  [[nodiscard]] detail::FutureStateBase& st() const {
    if (!st_) [[unlikely]]
      throw InvalidStateError("empty Task/Future handle");
    return *st_;
  }
  struct Adopt {};
  Future(Adopt /*tag*/, detail::FutureStateBase* st) noexcept
      : st_(detail::Ref<detail::FutureStateBase>::adopt(st)) {}
  explicit Future(std::nullptr_t) noexcept {}

  detail::Ref<detail::FutureStateBase> st_;
};

template <class T>
Future<T> EventLoop::create_future() {
  core_.check_open();
  return Future<T>(*this);
}

}  // namespace asyncio
