// asyncio/locks.hpp - Lock, Event, Condition, Semaphore, BoundedSemaphore, Barrier
// (Python: locks.py).
//
//   asyncio::Lock lock;
//   {
//     auto held = co_await lock.scoped();   // Python: async with lock:
//     ...
//   }                                       // released here, also when an exception leaves
//
// All of them are single-loop objects (no thread safety), bound to the loop of the first task
// that has to wait on them; waiting from a task of another loop throws RuntimeError.
// Waiters are served first come, first served. A waiter that is cancelled leaves no trace, and
// a wake-up given to a waiter that is cancelled before it runs passes on to the next one
// (detail/lock_waiters.hpp explains how). Destroying a primitive while tasks wait on it makes
// their waits throw RuntimeError.
//
// C++ differences (docs/python-mapping.md): acquire()/wait() return nothing (Python returns
// True); `co_await x.scoped()` replaces `async with x`; Barrier::reset()/abort() are plain calls.
#pragma once

#include <concepts>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>

#include "asyncio/coroutines.hpp"
#include "asyncio/detail/lock_waiters.hpp"
#include "asyncio/exceptions.hpp"

namespace asyncio {

class Lock;
class Semaphore;

namespace detail {
/// A guard's release() failed (it was released by hand meanwhile): report it through the
/// running loop's exception handler; a destructor must not throw.
void report_guard_error(std::exception_ptr e) noexcept;
}  // namespace detail

/// Holds an acquired Lock / Semaphore / Condition and releases it when destroyed.
/// Move-only. `co_await lock.scoped()` returns one. Python: the body of `async with lock:`
template <class P>
class [[nodiscard]] ReleaseGuard {
 public:
  /// Adopts an acquisition the caller already made.
  explicit ReleaseGuard(P& p) noexcept : p_(&p) {}
  ReleaseGuard(ReleaseGuard&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  ReleaseGuard(const ReleaseGuard&) = delete;
  ReleaseGuard& operator=(const ReleaseGuard&) = delete;
  ReleaseGuard& operator=(ReleaseGuard&&) = delete;
  ~ReleaseGuard() {
    if (P* p = std::exchange(p_, nullptr)) {
      try {
        p->release();
      } catch (...) {
        detail::report_guard_error(std::current_exception());
      }
    }
  }
  /// Releases now (Python: leaving the `async with` block early).
  void release() {
    if (P* p = std::exchange(p_, nullptr)) p->release();
  }
  /// True until released.
  [[nodiscard]] bool owns() const noexcept { return p_ != nullptr; }

 private:
  P* p_;
};

namespace detail {

/// `co_await x.scoped()`: the acquire awaiter `A`, then a guard for `P`.
template <class P, class A>
class [[nodiscard]] ScopedAcquire {
 public:
  explicit ScopedAcquire(P& p) noexcept : acquire_(p), p_(&p) {}
  bool await_ready() { return acquire_.await_ready(); }
  void await_suspend(std::coroutine_handle<> h) { acquire_.await_suspend(h); }
  ReleaseGuard<P> await_resume() {
    acquire_.await_resume();
    return ReleaseGuard<P>(*p_);
  }

 private:
  A acquire_;
  P* p_;
};

class LockAcquire;
class SemaphoreAcquire;
class EventWait;
class ListWait;

}  // namespace detail

/// A mutual exclusion lock for tasks (not threads). Not owned by a task: any task may release
/// it. Waiters get the lock first come, first served. Python: asyncio.Lock
class Lock {
 public:
  Lock() noexcept = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;
  ~Lock() = default;

  /// Acquires the lock, waiting while it is held (or while earlier waiters wait).
  /// Cancellation: safe. If cancelled, the lock is not acquired; a wake-up already given to
  ///   this waiter passes to the next one.
  /// Throws: CancelledError; RuntimeError (waiting from another loop's task).
  /// Python: asyncio.Lock.acquire
  [[nodiscard]] detail::LockAcquire acquire() noexcept;
  /// Acquires, then returns a guard that releases the lock when destroyed.
  /// Cancellation: as acquire(). Python: async with lock
  [[nodiscard]] detail::ScopedAcquire<Lock, detail::LockAcquire> scoped() noexcept;
  /// Releases the lock and wakes the first waiter. RuntimeError when it is not locked.
  /// Python: asyncio.Lock.release
  void release() {
    if (!locked_) throw_not_acquired();
    locked_ = false;
    wake_next();
  }
  /// Python: asyncio.Lock.locked
  [[nodiscard]] bool locked() const noexcept { return locked_; }
  /// "<asyncio::Lock at 0x... [locked, waiters:2]>". Python: repr(lock)
  [[nodiscard]] std::string repr() const;

 private:
  friend class detail::LockAcquire;
  [[noreturn]] static void throw_not_acquired();
  void wake_next() {
    if (!locked_) waiters_.wake_up_to(1);
  }

  bool locked_ = false;
  detail::FairWaitQueue waiters_;
  detail::LoopBinding loop_;
};

/// A flag tasks can wait for. Python: asyncio.Event
class Event {
 public:
  Event() noexcept = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() = default;

  /// Waits until the flag is set (returns at once if it is). A waiter woken by set() returns
  /// even if clear() is called before it runs.
  /// Cancellation: safe; nothing to undo.
  /// Throws: CancelledError; RuntimeError (waiting from another loop's task).
  /// Python: asyncio.Event.wait
  [[nodiscard]] detail::EventWait wait() noexcept;
  /// Sets the flag and wakes every waiter. Python: asyncio.Event.set
  void set() {
    if (!value_) {
      value_ = true;
      waiters_.wake_all();
    }
  }
  /// Python: asyncio.Event.clear
  void clear() noexcept { value_ = false; }
  /// Python: asyncio.Event.is_set
  [[nodiscard]] bool is_set() const noexcept { return value_; }
  /// "<asyncio::Event at 0x... [unset, waiters:1]>". Python: repr(event)
  [[nodiscard]] std::string repr() const;

 private:
  friend class detail::EventWait;
  bool value_ = false;
  detail::WaitList waiters_;
  detail::LoopBinding loop_;
};

/// A condition variable for tasks, over a Lock (its own, or one shared with others).
/// Python: asyncio.Condition
class Condition {
 public:
  /// Uses `lock` (which must outlive the condition), or a lock of its own when null.
  explicit Condition(Lock* lock = nullptr) noexcept : lock_(lock != nullptr ? lock : &own_) {}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;
  ~Condition() = default;

  /// The underlying lock's acquire(). Python: asyncio.Condition.acquire
  [[nodiscard]] detail::LockAcquire acquire() noexcept;
  /// Python: asyncio.Condition.release
  void release() { lock_->release(); }
  /// Python: asyncio.Condition.locked
  [[nodiscard]] bool locked() const noexcept { return lock_->locked(); }
  /// Acquires the underlying lock; the guard releases it. Python: async with cond
  [[nodiscard]] detail::ScopedAcquire<Lock, detail::LockAcquire> scoped() noexcept;

  /// Releases the lock, waits until notified, re-acquires the lock. The lock is held again
  /// when wait() returns or throws - even when cancelled (Python re-acquires it too).
  /// Cancellation: safe. If cancelled after it was notified, the notification passes to the
  ///   next waiter (Python 3.13). The CancelledError is thrown once the lock is held again.
  /// Throws: RuntimeError (lock not held, or waiting from another loop's task); CancelledError.
  /// Python: asyncio.Condition.wait
  [[nodiscard]] Coro<void> wait();
  /// Waits until `pred()` is true; returns its last value. Checks it first (no wait, and no
  /// need to hold the lock, when already true), then after every wake-up, with the lock held.
  /// Cancellation: as wait(). Python: asyncio.Condition.wait_for
  template <class P>
  requires std::invocable<P&>
  [[nodiscard]] Coro<std::decay_t<std::invoke_result_t<P&>>> wait_for(P pred);
  /// Wakes up to `n` waiters (oldest first). RuntimeError unless the lock is held.
  /// Python: asyncio.Condition.notify
  void notify(std::size_t n = 1) {
    if (!locked()) throw_not_locked();
    waiters_.wake(n);
  }
  /// Wakes every waiter. RuntimeError unless the lock is held. Python: Condition.notify_all
  void notify_all() { notify(static_cast<std::size_t>(-1)); }
  /// "<asyncio::Condition at 0x... [locked, waiters:1]>". Python: repr(cond)
  [[nodiscard]] std::string repr() const;

 private:
  [[noreturn]] static void throw_not_locked();

  Lock own_;
  Lock* lock_;
  detail::WaitList waiters_;
  detail::LoopBinding loop_;
};

/// A counter of permits. acquire() takes one, waiting while there is none; release() gives
/// one back. Waiters are served first come, first served. Python: asyncio.Semaphore
class Semaphore {
 public:
  /// ValueError if `value` < 0. Python: asyncio.Semaphore(value=1)
  explicit Semaphore(std::ptrdiff_t value = 1) : Semaphore(value, -1) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  ~Semaphore() = default;

  /// Takes a permit, waiting while there is none (or while earlier waiters wait).
  /// Cancellation: safe. If cancelled, no permit is taken; a permit already set aside for this
  ///   waiter passes to the next one.
  /// Throws: CancelledError; RuntimeError (waiting from another loop's task).
  /// Python: asyncio.Semaphore.acquire
  [[nodiscard]] detail::SemaphoreAcquire acquire() noexcept;
  /// Acquires, then returns a guard that releases when destroyed. Python: async with sem
  [[nodiscard]] detail::ScopedAcquire<Semaphore, detail::SemaphoreAcquire> scoped() noexcept;
  /// Gives a permit back and wakes the first waiter. A BoundedSemaphore throws ValueError
  /// instead of going above its initial value. Python: asyncio.Semaphore.release
  void release() {
    if (bound_ >= 0 && value_ >= bound_) throw_released_too_often();
    ++value_;
    wake_next();
  }
  /// True when acquire() would wait. Python: asyncio.Semaphore.locked
  [[nodiscard]] bool locked() const noexcept { return value_ == 0 || !waiters_.empty(); }
  /// "<asyncio::Semaphore at 0x... [unlocked, value:2]>". Python: repr(sem)
  [[nodiscard]] std::string repr() const;

 protected:
  Semaphore(std::ptrdiff_t value, std::ptrdiff_t bound);

 private:
  friend class detail::SemaphoreAcquire;
  [[noreturn]] static void throw_released_too_often();
  void wake_next() { waiters_.wake_up_to(static_cast<std::size_t>(value_)); }

  // Permits nobody has taken yet, including those set aside for woken waiters (which take
  // them when they resume): value_ + permits held == initial value, always.
  std::ptrdiff_t value_;
  std::ptrdiff_t bound_;  // BoundedSemaphore's initial value; -1 for a Semaphore
  detail::FairWaitQueue waiters_;
  detail::LoopBinding loop_;
};

/// A Semaphore whose release() throws ValueError rather than exceed the initial value.
/// Python: asyncio.BoundedSemaphore
class BoundedSemaphore : public Semaphore {
 public:
  /// ValueError if `value` < 0. Python: asyncio.BoundedSemaphore(value=1)
  explicit BoundedSemaphore(std::ptrdiff_t value = 1) : Semaphore(value, value) {}
  /// "<asyncio::BoundedSemaphore at 0x... [locked]>". Python: repr(sem)
  [[nodiscard]] std::string repr() const;
};

/// Lets `parties` tasks wait for each other: each wait() returns once all have arrived.
/// Python: asyncio.Barrier
class Barrier {
 public:
  /// ValueError if `parties` < 1. Python: asyncio.Barrier(parties)
  explicit Barrier(std::ptrdiff_t parties);
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;
  ~Barrier() = default;

  /// Waits until `parties` tasks are waiting, then all return, each with a distinct arrival
  /// index in [0, parties). Tasks arriving while the previous round drains wait for the next.
  /// Cancellation: safe. A task cancelled while it waits leaves the round (n_waiting() drops);
  ///   the barrier is not broken.
  /// Throws: BrokenBarrierError (aborted, or reset while waiting); CancelledError.
  /// Python: asyncio.Barrier.wait
  [[nodiscard]] Coro<std::size_t> wait();
  /// Back to the initial state; tasks waiting now get BrokenBarrierError. A plain call here
  /// (a coroutine in Python, which never needs to wait). Python: asyncio.Barrier.reset
  void reset();
  /// Breaks the barrier: waiting and future wait() calls throw BrokenBarrierError until
  /// reset(). A plain call here. Python: asyncio.Barrier.abort
  void abort();
  /// Python: asyncio.Barrier.parties
  [[nodiscard]] std::size_t parties() const noexcept { return parties_; }
  /// Tasks waiting for the current round to fill. Python: asyncio.Barrier.n_waiting
  [[nodiscard]] std::size_t n_waiting() const noexcept {
    return state_ == State::filling ? count_ : 0;
  }
  /// Python: asyncio.Barrier.broken
  [[nodiscard]] bool broken() const noexcept { return state_ == State::broken; }
  /// "<asyncio::Barrier at 0x... [filling, waiters:2/5]>". Python: repr(barrier)
  [[nodiscard]] std::string repr() const;

 private:
  /// filling -> draining     the last party arrives: everybody returns
  /// draining -> filling     the last of them has left
  /// filling|draining -> resetting   reset() with tasks inside; -> filling when they have left
  /// any -> broken           abort(); broken -> resetting|filling by reset()
  /// (Python: locks._BarrierState)
  enum class State : unsigned char { filling, draining, resetting, broken };
  [[nodiscard]] detail::ListWait park() noexcept;
  void leave();
  void wake_all() { waiters_.wake_all(); }

  std::size_t parties_;
  std::size_t count_ = 0;  // tasks inside wait(), past the draining/resetting gate
  State state_ = State::filling;
  detail::WaitList waiters_;  // woken on every state change; each re-checks
  detail::LoopBinding loop_;
};

// ---- Awaiters ------------------------------------------------------------------------------

namespace detail {

/// Lock.acquire(): takes the lock at once when it is free and nobody waits, else queues.
class [[nodiscard]] LockAcquire final : public FairWaiter {
 public:
  explicit LockAcquire(Lock& lock) noexcept : lock_(&lock) {}
  bool await_ready() {
    if (!lock_->locked_ && lock_->waiters_.empty()) {
      lock_->locked_ = true;
      return true;
    }
    lock_->loop_.check("asyncio::Lock");
    return false;
  }
  void await_suspend(std::coroutine_handle<> h) {
    lock_->waiters_.park(*this, h, false, "Lock.acquire");
    lock_->wake_next();
  }
  void await_resume() {
    if (state() == State::idle) return;  // taken in await_ready
    check_orphaned();
    lock_->waiters_.leave(*this);
    try {
      resume_check();
    } catch (...) {
      lock_->wake_next();  // cancelled: a wake-up given to us passes on
      throw;
    }
    lock_->locked_ = true;
  }

 private:
  Lock* lock_;
};

/// Semaphore.acquire(): takes a permit at once when one is free and nobody waits, else queues.
class [[nodiscard]] SemaphoreAcquire final : public FairWaiter {
 public:
  explicit SemaphoreAcquire(Semaphore& sem) noexcept : sem_(&sem) {}
  bool await_ready() {
    if (sem_->value_ > 0 && sem_->waiters_.empty()) {
      --sem_->value_;
      return true;
    }
    sem_->loop_.check("asyncio::Semaphore");
    return false;
  }
  void await_suspend(std::coroutine_handle<> h) {
    sem_->waiters_.park(*this, h, false, "Semaphore.acquire");
    sem_->wake_next();
  }
  void await_resume() {
    if (state() == State::idle) return;
    check_orphaned();
    sem_->waiters_.leave(*this);
    try {
      resume_check();
    } catch (...) {
      sem_->wake_next();  // the permit set aside for us goes to the next waiter
      throw;
    }
    --sem_->value_;
  }

 private:
  Semaphore* sem_;
};

/// Event.wait().
class [[nodiscard]] EventWait final : public BroadcastWaiter {
 public:
  explicit EventWait(Event& ev) noexcept : ev_(&ev) {}
  bool await_ready() {
    if (ev_->value_) return true;
    ev_->loop_.check("asyncio::Event");
    return false;
  }
  void await_suspend(std::coroutine_handle<> h) {
    ev_->waiters_.push_back(this);
    park_running(h, "Event.wait");
  }
  void await_resume() {
    if (state() == State::idle) return;
    check_orphaned();
    resume_check();
  }

 private:
  Event* ev_;
};

/// Parks on a broadcast list until woken (Condition.wait, Barrier); the caller re-checks.
class [[nodiscard]] ListWait final : public BroadcastWaiter {
 public:
  ListWait(WaitList& list, LoopBinding& loop, const char* what) noexcept
      : list_(&list), loop_(&loop), what_(what) {}
  bool await_ready() {
    loop_->check(what_);
    return false;
  }
  void await_suspend(std::coroutine_handle<> h) {
    list_->push_back(this);
    park_running(h, what_);
  }
  void await_resume() {
    check_orphaned();
    resume_check();
  }
  /// After resuming: true when it was woken, not cancelled while parked.
  [[nodiscard]] bool woken() const noexcept { return state() == State::woken; }

 private:
  WaitList* list_;
  LoopBinding* loop_;
  const char* what_;
};

}  // namespace detail

// ---- Inline members ------------------------------------------------------------------------

inline detail::LockAcquire Lock::acquire() noexcept {
  return detail::LockAcquire(*this);
}
inline detail::ScopedAcquire<Lock, detail::LockAcquire> Lock::scoped() noexcept {
  return detail::ScopedAcquire<Lock, detail::LockAcquire>(*this);
}

inline detail::EventWait Event::wait() noexcept {
  return detail::EventWait(*this);
}

inline detail::LockAcquire Condition::acquire() noexcept {
  return lock_->acquire();
}
inline detail::ScopedAcquire<Lock, detail::LockAcquire> Condition::scoped() noexcept {
  return lock_->scoped();
}

template <class P>
requires std::invocable<P&>
Coro<std::decay_t<std::invoke_result_t<P&>>> Condition::wait_for(P pred) {
  auto result = pred();
  while (!static_cast<bool>(result)) {
    co_await wait();
    result = pred();
  }
  co_return result;
}

inline detail::ListWait Barrier::park() noexcept {
  // NOLINTNEXTLINE(modernize-return-braced-init-list): the type says what is made
  return detail::ListWait(waiters_, loop_, "asyncio::Barrier");
}

inline detail::SemaphoreAcquire Semaphore::acquire() noexcept {
  return detail::SemaphoreAcquire(*this);
}
inline detail::ScopedAcquire<Semaphore, detail::SemaphoreAcquire> Semaphore::scoped() noexcept {
  return detail::ScopedAcquire<Semaphore, detail::SemaphoreAcquire>(*this);
}

}  // namespace asyncio
