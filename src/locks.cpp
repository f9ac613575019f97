// The non-template parts of asyncio/locks.hpp (Python: locks.py): the coroutines
// (Condition.wait, Barrier.wait), error paths and repr().
#include "asyncio/locks.hpp"

#include <cstdio>
#include <exception>
#include <string>

#include "asyncio/events.hpp"

namespace asyncio {
namespace {

/// "<asyncio::Lock at 0x1234 [extra]>", Python's repr of the primitives.
std::string format_repr(const char* type, const void* self, const std::string& extra) {
  char address[32];
  std::snprintf(address, sizeof address, "%p", self);
  return std::string("<") + type + " at " + address + " [" + extra + "]>";
}

std::string with_waiters(std::string extra, std::size_t waiters) {
  if (waiters > 0) extra += ", waiters:" + std::to_string(waiters);
  return extra;
}

}  // namespace

namespace detail {

void report_guard_error(std::exception_ptr e) noexcept {
  EventLoop* loop = tls_running_loop;
  if (loop == nullptr) return;
  try {
    ExceptionContext ctx;
    ctx.message = "ReleaseGuard could not release (released by hand already?)";
    ctx.exception = std::move(e);
    loop->call_exception_handler(ctx);
  } catch (...) {  // NOLINT(bugprone-empty-catch): called from a destructor
  }
}

}  // namespace detail

// ---- Lock ----------------------------------------------------------------------------------

void Lock::throw_not_acquired() {
  throw RuntimeError("Lock is not acquired.");
}

std::string Lock::repr() const {
  return format_repr("asyncio::Lock", this,
                     with_waiters(locked_ ? "locked" : "unlocked", waiters_.size()));
}

// ---- Event ---------------------------------------------------------------------------------

std::string Event::repr() const {
  return format_repr("asyncio::Event", this,
                     with_waiters(value_ ? "set" : "unset", waiters_.size()));
}

// ---- Condition -----------------------------------------------------------------------------

void Condition::throw_not_locked() {
  throw RuntimeError("cannot notify on un-acquired lock");
}

Coro<void> Condition::wait() {
  if (!locked()) throw RuntimeError("cannot wait on un-acquired lock");
  loop_.check("asyncio::Condition");
  release();
  std::exception_ptr err;
  bool notified = false;
  {
    detail::ListWait waiter(waiters_, loop_, "asyncio::Condition");
    try {
      co_await waiter;
    } catch (const detail::OrphanedWait&) {
      throw;  // the condition is gone: touch nothing
    } catch (...) {
      err = std::current_exception();
    }
    notified = waiter.woken();
  }
  // Must re-acquire the lock even if the wait was cancelled (Python's `finally`). A cancellation
  // while re-acquiring is remembered and the acquire retried:
  //     co_await cond.wait();   // notified -> queued on the lock -> cancel() -> retry -> held
  for (;;) {
    try {
      co_await lock_->acquire();
      break;
    } catch (const CancelledError&) {
      err = std::current_exception();  // the most recent one is rethrown, as in Python
    }
  }
  if (err) {
    // Notified, but we will not return normally: hand the notification to the next waiter
    // (Python 3.13), so that notify() never wakes nobody.
    if (notified) waiters_.wake(1);
    std::rethrow_exception(err);
  }
}

std::string Condition::repr() const {
  return format_repr("asyncio::Condition", this,
                     with_waiters(locked() ? "locked" : "unlocked", waiters_.size()));
}

// ---- Semaphore -----------------------------------------------------------------------------

Semaphore::Semaphore(std::ptrdiff_t value, std::ptrdiff_t bound) : value_(value), bound_(bound) {
  if (value < 0) throw ValueError("Semaphore initial value must be >= 0");
}

void Semaphore::throw_released_too_often() {
  throw ValueError("BoundedSemaphore released too many times");
}

std::string Semaphore::repr() const {
  const char* type = bound_ >= 0 ? "asyncio::BoundedSemaphore" : "asyncio::Semaphore";
  std::string extra = locked() ? "locked" : "unlocked, value:" + std::to_string(value_);
  return format_repr(type, this, with_waiters(std::move(extra), waiters_.size()));
}

std::string BoundedSemaphore::repr() const {
  return Semaphore::repr();
}

// ---- Barrier -------------------------------------------------------------------------------

namespace {
std::size_t checked_parties(std::ptrdiff_t parties) {
  if (parties < 1) throw ValueError("parties must be > 0");
  return static_cast<std::size_t>(parties);
}
}  // namespace

Barrier::Barrier(std::ptrdiff_t parties) : parties_(checked_parties(parties)) {}

Coro<std::size_t> Barrier::wait() {
  // Block while the previous round drains or a reset completes (Python: _block).
  while (state_ == State::draining || state_ == State::resetting) co_await park();
  if (state_ == State::broken) throw BrokenBarrierError("Barrier aborted");

  const std::size_t index = count_++;
  std::exception_ptr err;
  try {
    if (index + 1 == parties_) {
      state_ = State::draining;  // the last party: release everybody (Python: _release)
      wake_all();
    } else {
      // Wait for the round to fill (Python: _wait). Every state change wakes us; re-check.
      while (state_ == State::filling) co_await park();
      if (state_ == State::broken || state_ == State::resetting) {
        throw BrokenBarrierError("Abort or reset of barrier");
      }
    }
  } catch (const detail::OrphanedWait&) {
    throw;  // the barrier is gone: touch nothing
  } catch (...) {
    err = std::current_exception();  // cancelled or broken: leave the round all the same
  }
  --count_;
  leave();
  if (err) std::rethrow_exception(err);
  co_return index;
}

void Barrier::leave() {
  // The last task out of a drained or reset round opens the barrier for the next one.
  if (count_ == 0) {
    if (state_ == State::resetting || state_ == State::draining) state_ = State::filling;
    wake_all();
  }
}

void Barrier::reset() {
  state_ = count_ > 0 ? State::resetting : State::filling;
  wake_all();
}

void Barrier::abort() {
  state_ = State::broken;
  wake_all();
}

std::string Barrier::repr() const {
  static constexpr const char* kNames[] = {"filling", "draining", "resetting", "broken"};
  std::string extra = kNames[static_cast<int>(state_)];
  if (!broken())
    extra += ", waiters:" + std::to_string(n_waiting()) + "/" + std::to_string(parties_);
  return format_repr("asyncio::Barrier", this, extra);
}

}  // namespace asyncio
