// asyncio/timeouts.hpp - timeout() and timeout_at() (Python: timeouts.py, asyncio.timeout()).
//
//   std::string page = co_await asyncio::timeout(10s, fetch(url));   // TimeoutError after 10 s
//   co_await asyncio::timeout(10s, [&](asyncio::Timeout& t) -> asyncio::Coro<> {
//     co_await connect();
//     t.reschedule(asyncio::get_running_loop().time() + 5);          // 5 s more from now
//     co_await transfer();
//   });
//
// C++ has no `async with`, so the block is an awaitable (run inline in the awaiting task, no
// new task) or a coroutine lambda that receives the Timeout. When the deadline passes, the
// awaiting task is cancelled; the CancelledError that comes out of the block is turned into
// TimeoutError - but only if this timeout caused it: the cancellation requests are counted
// (Task::cancelling / uncancel), so a cancellation from outside stays a CancelledError. The
// CancelledError is nested in the TimeoutError (TimeoutError::cause(), std::rethrow_if_nested),
// as Python chains it (`__cause__`).
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "asyncio/coroutines.hpp"
#include "asyncio/detail/awaitables.hpp"
#include "asyncio/detail/task_state.hpp"
#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/tasks.hpp"

namespace asyncio {

/// The deadline of one timeout() block, given to the body lambda. Python: asyncio.Timeout
/// Cancellation: see timeout().
class Timeout {
 public:
  /// created -> active -> {expiring -> expired | finished}; never back.
  /// Python: timeouts._State (CREATED, ENTERED, EXPIRING, EXPIRED, EXITED)
  enum class State : std::uint8_t { created, active, expiring, expired, finished };

  /// A timeout at loop time `when` (empty: never). Python: Timeout(when)
  explicit Timeout(std::optional<double> when) noexcept : when_(when) {}
  Timeout(const Timeout&) = delete;
  Timeout& operator=(const Timeout&) = delete;
  ~Timeout() { handle_.cancel(); }

  /// The current deadline (loop time), empty when disabled. Python: Timeout.when()
  [[nodiscard]] std::optional<double> when() const noexcept { return when_; }
  /// Moves the deadline (empty: disable); a deadline in the past fires at the next iteration.
  /// RuntimeError unless the block is running and has not expired.
  /// Python: Timeout.reschedule(when)
  void reschedule(std::optional<double> when);
  /// True once the deadline passed while the block ran. Python: Timeout.expired()
  [[nodiscard]] bool expired() const noexcept {
    return state_ == State::expiring || state_ == State::expired;
  }
  [[nodiscard]] State state() const noexcept { return state_; }
  /// "<Timeout [active] when=12.5>". Python: Timeout.__repr__
  [[nodiscard]] std::string repr() const;

  /// Internal (the block's entry): binds to the running task. Python: Timeout.__aenter__
  void enter();
  /// Internal (the block's exit): rethrows `error`, turned into TimeoutError (with `error`
  /// nested in it) when this timeout caused it. Python: Timeout.__aexit__
  void exit(const std::exception_ptr& error);

 private:
  static const char* name(State s) noexcept {
    static constexpr const char* kNames[] = {"created", "active", "expiring", "expired",
                                             "finished"};
    return kNames[static_cast<int>(s)];
  }
  void on_timeout();

  std::optional<double> when_;
  State state_ = State::created;
  detail::TaskState* task_ = nullptr;
  int cancelling_ = 0;
  Handle handle_;
};

namespace detail {

template <class F>
concept TimeoutBody =
    std::invocable<F&, Timeout&> && CoroObject<std::invoke_result_t<F&, Timeout&>>;

template <class F>
using body_result_t = typename std::invoke_result_t<F&, Timeout&>::value_type;

/// The block: enter, run the awaitable inline, exit (which may convert the error).
template <class R, class A>
Coro<R> timeout_block(std::optional<double> when, A aw) {
  Timeout cm(when);
  cm.enter();
  std::exception_ptr error;
  std::optional<value_or_unit_t<R>> result;
  try {
    if constexpr (std::is_void_v<R>) {
      co_await as_awaited(aw);
      result.emplace();
    } else {
      result.emplace(co_await as_awaited(aw));
    }
  } catch (...) {
    error = std::current_exception();
  }
  cm.exit(error);  // rethrows an error (maybe as TimeoutError)
  if constexpr (!std::is_void_v<R>) co_return std::move(*result);
}

/// The block with a body lambda that receives the Timeout (to reschedule it).
template <class R, class F>
Coro<R> timeout_body(std::optional<double> when, F body) {
  Timeout cm(when);
  cm.enter();
  std::exception_ptr error;
  std::optional<value_or_unit_t<R>> result;
  try {
    if constexpr (std::is_void_v<R>) {
      co_await body(cm);
      result.emplace();
    } else {
      result.emplace(co_await body(cm));
    }
  } catch (...) {
    error = std::current_exception();
  }
  cm.exit(error);
  if constexpr (!std::is_void_v<R>) co_return std::move(*result);
}

inline double deadline_after(double delay) {
  return get_running_loop().time() + delay;
}

}  // namespace detail

/// Awaits `aw` inline (a Coro runs in the awaiting task, no new task) with a deadline at loop
/// time `when` (empty: no deadline; in the past: expires at the next iteration). Returns the
/// result of `aw`.
/// Cancellation: at the deadline the awaiting task is cancelled; if the block then ends with
///   CancelledError and no other cancellation is pending (Task::uncancel() brings the count back
///   to where it was on entry), it throws TimeoutError instead. An outer cancellation, even one
///   that arrives at the same time, stays CancelledError. If the block swallows the
///   cancellation and returns, its result is returned (expired() is then true).
/// Throws: TimeoutError (whose cause() is the CancelledError that came out of the block),
///   CancelledError, or the error of `aw`.
/// Python: async with asyncio.timeout_at(when): return await aw
template <class A>
requires(detail::Childlike<A> && !detail::TimeoutBody<A>)
Coro<detail::result_of_t<A>> timeout_at(std::optional<double> when, A&& aw) {
  return detail::timeout_block<detail::result_of_t<A>>(when, detail::stored(std::forward<A>(aw)));
}

/// timeout_at with a body lambda `(Timeout&) -> Coro<R>`, for rescheduling or reading the
/// deadline. The lambda is awaited inside the call, so capturing by reference is safe there
/// (and, with g++ 12, needed for non-trivial captures: see task_group()).
/// Python: async with asyncio.timeout_at(when) as cm: ...
template <class F>
requires detail::TimeoutBody<F>
Coro<detail::body_result_t<F>> timeout_at(std::optional<double> when, F body) {
  return detail::timeout_body<detail::body_result_t<F>>(when, std::move(body));
}

/// Awaits `aw` inline with a time limit of `delay` from now (the deadline is taken when
/// timeout() is called). Everything else as timeout_at().
/// Python: async with asyncio.timeout(delay): return await aw
template <class Rep, class Period, class A>
requires(detail::Childlike<A> || detail::TimeoutBody<A>)
auto timeout(std::chrono::duration<Rep, Period> delay, A&& aw) {
  return timeout_at(detail::deadline_after(detail::to_seconds(delay)), std::forward<A>(aw));
}

/// timeout() with the delay in seconds. Python: asyncio.timeout(delay)
template <class S, class A>
requires std::is_arithmetic_v<S> && (detail::Childlike<A> || detail::TimeoutBody<A>)
auto timeout(S delay, A&& aw) {
  return timeout_at(detail::deadline_after(detail::checked_delay(static_cast<double>(delay))),
                    std::forward<A>(aw));
}

/// timeout() without a limit (Python: asyncio.timeout(None)); the body may reschedule it.
template <class A>
requires(detail::Childlike<A> || detail::TimeoutBody<A>)
auto timeout(std::nullopt_t /*none*/, A&& aw) {
  return timeout_at(std::nullopt, std::forward<A>(aw));
}

// ---- Timeout members ---------------------------------------------------------------------------

inline void Timeout::enter() {
  if (state_ != State::created) throw RuntimeError("Timeout has already been entered");
  detail::TaskState* task = detail::tls_current_task;
  if (task == nullptr) throw RuntimeError("Timeout should be used inside a task");
  state_ = State::active;
  task_ = task;
  cancelling_ = task->cancelling();
  reschedule(when_);
}

inline void Timeout::reschedule(std::optional<double> when) {
  if (state_ != State::active) {
    if (state_ == State::created) throw RuntimeError("Timeout has not been entered");
    throw RuntimeError(std::string("Cannot change state of ") + name(state_) + " Timeout");
  }
  when_ = when;
  handle_.cancel();
  handle_ = Handle();
  if (!when) return;
  EventLoop& loop = task_->loop();
  if (*when <= loop.time()) {
    handle_ = loop.call_soon([this] { on_timeout(); });
  } else {
    handle_ = loop.call_at(*when, [this] { on_timeout(); });
  }
}

inline void Timeout::on_timeout() {
  // The handle is cancelled before the Timeout dies and when it leaves `active`.
  task_->cancel({});
  state_ = State::expiring;
  handle_ = Handle();
}

inline void Timeout::exit(const std::exception_ptr& error) {
  handle_.cancel();
  handle_ = Handle();
  if (state_ == State::expiring) {
    state_ = State::expired;
    // Only our own cancellation becomes TimeoutError: with another request still pending,
    // the CancelledError belongs to somebody else.
    if (detail::withdraw_cancel(*task_) <= cancelling_ && error &&
        detail::classify(error) == detail::ErrorKind::cancelled) {
      detail::throw_timeout_from(error);  // `raise TimeoutError from exc_val`
    }
  } else if (state_ == State::active) {
    state_ = State::finished;
  }
  if (error) std::rethrow_exception(error);
}

inline std::string Timeout::repr() const {
  std::string s = std::string("<Timeout [") + name(state_) + "]";
  if (state_ == State::active) {
    s += " when=";
    if (when_) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.3f", *when_);
      s += buf;
    } else {
      s += "None";
    }
  }
  return s + ">";
}

}  // namespace asyncio
