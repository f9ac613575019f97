// Internal: the engines of wait_for() and shield() (asyncio/composition.hpp); the type-erased
// parts are implemented in src/composition.cpp.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "asyncio/detail/awaitables.hpp"
#include "asyncio/detail/future_state.hpp"
#include "asyncio/detail/runnable.hpp"
#include "asyncio/detail/task_state.hpp"

namespace asyncio {
class Timeout;  // asyncio/timeouts.hpp (WaitForInline names it; used when instantiated)
}  // namespace asyncio

namespace asyncio::detail {

/// The engine of wait_for() for a task or a future (and for any awaitable when the time-out is
/// <= 0, which makes it a task first): waits on the inner future and a timer without resuming
/// the awaiting task until the inner future is done.
///   waiting --inner done--> resolved
///   waiting --timer, then two hops through the ready queue--> cancelling --inner done--> resolved
///   waiting --outer cancel--> forwarded to inner --inner done--> resolved
/// The time-out decision waits for what the deadline's iteration already set in motion:
///     iteration k:    timer due; a callback sets the future the inner task awaits (inner woken)
///     iteration k+1:  the inner task runs and returns its value   <- must win
///                     the decision (hop 2): the inner is done, return its value
/// Python 3.11 decides at the same point: the time-out handle releases a waiter future, and the
/// awaiting task checks fut.done() one iteration later. Deciding at the timer (as 3.12's
/// timeout-based wait_for does) would cancel the woken inner task and lose its result. (For a
/// coroutine, which runs in the awaiting task, wait_for does decide at the timer, as 3.12 does:
/// see WaitForInline.)
class WaitForCore final : public Waiter,
                          public TimerNode,  // also its WaitTarget

                          public Runnable,
                          public AwaitsFutures {
 public:
  WaitForCore(FutureStateBase* inner, double timeout) noexcept : inner_(inner), timeout_(timeout) {}
  WaitForCore(const WaitForCore&) = delete;
  WaitForCore& operator=(const WaitForCore&) = delete;
  ~WaitForCore();

  [[nodiscard]] bool ready() const noexcept { return inner_->done(); }
  void suspend(std::coroutine_handle<> h);
  /// After the wait: CancelledError (a cancellation that came too late to forward),
  /// TimeoutError, or the inner's error; returns normally when the inner has a value.
  void finish();

  void on_future_done(FutureStateBase& f) noexcept override;
  bool cancel_wait(const std::string& msg) override;
  void on_timer() noexcept override;
  void run() override;
  void discard() noexcept override { queued_ = false; }
  [[nodiscard]] std::string describe() const override { return "wait_for time-out"; }
  void awaited_futures(std::vector<FutureStateBase*>& out) const override { out.push_back(inner_); }

  /// What wait_for() has done about the inner awaitable; the inner's completion (resolved_)
  /// can come in any phase and ends the wait.
  ///   waiting --deadline, hop 1--> deadline --hop 2--> timed_out (the inner is cancelled)
  ///   {waiting | deadline | timed_out} --the awaiter is cancelled--> forwarded
  enum class Phase : std::uint8_t { waiting, deadline, timed_out, forwarded };

 private:
  FutureStateBase* inner_;
  double timeout_;
  TaskState* parent_ = nullptr;
  Phase phase_ = Phase::waiting;
  bool resolved_ = false;  // the inner is done; the parent is (being) woken
  bool queued_ = false;    // this Runnable sits in the ready queue
};

/// The engine of wait_for() for a coroutine (or any awaitable that is not a task or a future)
/// with a time-out > 0: Python 3.12's `async with timeout(t): return await coro`. The coroutine
/// runs inside the awaiting task, through its own `co_await` awaiter (no task, no trip through
/// the loop), between the entry and the exit of a Timeout: at the deadline the Timeout cancels
/// the awaiting task, so the coroutine sees CancelledError at its suspension point, and the exit
/// turns that CancelledError - only the Timeout's own - into TimeoutError, as timeout() does.
///   start(): enter the Timeout (deadline armed) -> suspend(): run the coroutine here, until it
///   ends or suspends -> finish(): exit the Timeout (rethrows, maybe as TimeoutError)
/// `Cm` is Timeout: a parameter only because Timeout is public (timeouts.hpp, above this header),
/// so it is complete only where wait_for() is instantiated (composition.hpp includes it).
template <class R, class Cm = Timeout>
class WaitForInline {
 public:
  WaitForInline(Coro<R> coro, double when) : cm_(when), inner_(std::move(coro)) {}
  WaitForInline(const WaitForInline&) = delete;
  WaitForInline& operator=(const WaitForInline&) = delete;
  ~WaitForInline() = default;

  void start() {
    // A consumed coroutine: RuntimeError before any timer is armed. Ready: a Coro that has
    // finished without a frame (Coro<void>::finished), with nothing left to run.
    ready_ = inner_.await_ready();
    cm_.enter();  // RuntimeError outside a task
  }
  template <class P>
  bool suspend(std::coroutine_handle<P> h) noexcept {
    if (ready_) return false;
    return inner_.await_suspend(h);  // false: the coroutine finished without suspending
  }
  R finish() {
    std::exception_ptr error;
    if constexpr (std::is_void_v<R>) {
      try {
        inner_.await_resume();
      } catch (...) {
        error = std::current_exception();
      }
      cm_.exit(error);  // rethrows `error`, as TimeoutError when the deadline caused it
    } else {
      std::optional<R> value;
      try {
        value.emplace(inner_.await_resume());
      } catch (...) {
        error = std::current_exception();
      }
      cm_.exit(error);
      return std::move(*value);
    }
  }

 private:
  Cm cm_;  // first, so that the coroutine (inner_) dies inside the block, as in `async with`
  typename Coro<R>::Awaiter inner_;
  bool ready_ = false;
};

/// The engine of shield(): parks the awaiting task on the inner future; a cancellation of the
/// awaiter detaches it and leaves the inner running.   idle -> parked -> {woken | cancelled}
class ShieldCore final : public ParkedWaiter, public Waiter, public AwaitsFutures {
 public:
  explicit ShieldCore(FutureStateBase* inner) noexcept : inner_(inner) {}
  ShieldCore(const ShieldCore&) = delete;
  ShieldCore& operator=(const ShieldCore&) = delete;
  ~ShieldCore() { inner_->remove_waiter(this); }

  [[nodiscard]] bool ready() const noexcept { return inner_->done(); }
  void suspend(std::coroutine_handle<> h);
  void finish() {
    resume_check();
    inner_->throw_if_not_result();
  }
  void on_future_done(FutureStateBase& f) noexcept override {
    f.mark_retrieved();  // Python's _inner_done_callback reads inner.exception()
    wake_up();
  }
  void awaited_futures(std::vector<FutureStateBase*>& out) const override { out.push_back(inner_); }

 private:
  void on_cancel() noexcept override;
  FutureStateBase* inner_;
};

}  // namespace asyncio::detail
