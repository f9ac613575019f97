// Tests for asyncio/locks.hpp: Lock, Event, Condition, Semaphore, BoundedSemaphore, Barrier.
//
// Most tests translate a test of CPython 3.11's Lib/test/test_asyncio/test_locks.py; the
// comment names it ("test_cancel_race"). Where CPython looks at private state (`lock._waiters`)
// we look at repr() or at behaviour instead. The loop runs one iteration per `sleep(0)`, with
// the same FIFO order as CPython's, so the step-by-step expectations carry over unchanged.
// Tests that go further than CPython (a wake-up passed on, a count that stays exact, misuse)
// say so.
#include <algorithm>
#include <cstddef>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <asyncio/locks.hpp>

#include "asyncio.hpp"
#include "asyncio_test.hpp"

namespace {

using asyncio::Barrier;
using asyncio::BoundedSemaphore;
using asyncio::BrokenBarrierError;
using asyncio::CancelledError;
using asyncio::Condition;
using asyncio::Coro;
using asyncio::create_task;
using asyncio::Event;
using asyncio::get_running_loop;
using asyncio::Lock;
using asyncio::RuntimeError;
using asyncio::Semaphore;
using asyncio::sleep;
using asyncio::Task;
using asyncio::ValueError;
using testing::EndsWith;
using testing::HasSubstr;
using testing::Not;
using testing::StartsWith;

using Log = std::vector<int>;

void run(Coro<void> main) {
  asyncio_test::run_virtual(std::move(main));
}

using asyncio_test::ends_cancelled;

/// The tasks as a vector. (Braced lists built inside a coroutine trip g++ 12's coroutine
/// lowering - "array used as initializer" - so tests build them here.)
template <class T, class... More>
std::vector<Task<T>> tasks_of(Task<T> first, More... more) {
  std::vector<Task<T>> out{std::move(first), std::move(more)...};
  return out;
}

/// Awaits every task, ignoring how each ended (gather(..., return_exceptions=True)).
template <class T>
Coro<void> settle(std::vector<Task<T>> tasks) {
  for (auto& t : tasks) {
    try {
      co_await t;
    } catch (...) {  // NOLINT(bugprone-empty-catch): the caller looks at the tasks
    }
  }
}

/// Awaits every task in order; their results (gather(...) when none fails).
template <class T>
Coro<std::vector<T>> gather_all(std::vector<Task<T>> tasks) {
  std::vector<T> out;
  for (auto& t : tasks) out.push_back(co_await t);
  co_return out;
}

Coro<void> gather_all(std::vector<Task<void>> tasks) {
  for (auto& t : tasks) co_await t;
}

/// Runs `first` on one loop, then `second` on another; both loops stay alive until the end so
/// that they are distinct objects.
void run_on_two_loops(Coro<void> first, Coro<void> second) {
  auto loop1 = asyncio::new_event_loop();
  loop1->run_until_complete(std::move(first));
  auto loop2 = asyncio::new_event_loop();
  loop2->run_until_complete(std::move(second));
  loop2->close();
  loop1->close();
}

// ---- Lock ---------------------------------------------------------------------------------------

Coro<bool> lock_and_log(Lock* lock, Log* log, int tag) {
  co_await lock->acquire();
  log->push_back(tag);
  co_return true;
}

Coro<void> lock_log_unlock(Lock* lock, Log* log, int tag) {
  auto held = co_await lock->scoped();
  log->push_back(tag);
}

Coro<void> acquire_only(Lock* lock) {
  co_await lock->acquire();
}

// test_repr
TEST(Lock, ReprShowsStateAndWaiters) {
  run([]() -> Coro<void> {
    Lock lock;
    EXPECT_THAT(lock.repr(), StartsWith("<asyncio::Lock at 0x"));
    EXPECT_THAT(lock.repr(), EndsWith("[unlocked]>"));
    co_await lock.acquire();
    EXPECT_THAT(lock.repr(), EndsWith("[locked]>"));
    auto t = create_task(acquire_only(&lock));
    co_await sleep(0);
    EXPECT_THAT(lock.repr(), EndsWith("[locked, waiters:1]>"));
    lock.release();
    co_await t;
  }());
}

// test_lock
TEST(Lock, StartsUnlocked) {
  Lock lock;
  EXPECT_FALSE(lock.locked());
}

// test_acquire
TEST(Lock, WaitersAcquireInArrivalOrder) {
  run([]() -> Coro<void> {
    Lock lock;
    Log result;
    co_await lock.acquire();
    auto t1 = create_task(lock_and_log(&lock, &result, 1));
    auto t2 = create_task(lock_and_log(&lock, &result, 2));
    co_await sleep(0);
    EXPECT_EQ(result, Log{});
    lock.release();
    co_await sleep(0);
    EXPECT_EQ(result, (Log{1}));
    co_await sleep(0);
    EXPECT_EQ(result, (Log{1}));
    auto t3 = create_task(lock_and_log(&lock, &result, 3));
    lock.release();
    co_await sleep(0);
    EXPECT_EQ(result, (Log{1, 2}));
    lock.release();
    co_await sleep(0);
    EXPECT_EQ(result, (Log{1, 2, 3}));
    EXPECT_TRUE(t1.done() && t1.result());
    EXPECT_TRUE(t2.done() && t2.result());
    EXPECT_TRUE(t3.done() && t3.result());
  }());
}

// test_acquire_cancel
TEST(Lock, WaiterCancelledWhileWaitingLeavesNoTrace) {
  run([]() -> Coro<void> {
    Lock lock;
    co_await lock.acquire();
    auto task = create_task(acquire_only(&lock));
    get_running_loop().call_soon([task]() mutable { task.cancel(); });
    EXPECT_TRUE(co_await ends_cancelled(task));
    EXPECT_THAT(lock.repr(), EndsWith("[locked]>"));  // no waiter left
    lock.release();
    EXPECT_FALSE(lock.locked());
  }());
}

// test_cancel_race: B is cancelled while A releases; the lock must go to C.
TEST(Lock, CancelRaceHandsTheLockToTheNextWaiter) {
  run([]() -> Coro<void> {
    Lock lock;
    auto lockit = [](Lock* l, asyncio::Future<void> blocker) -> Coro<void> {
      auto held = co_await l->scoped();
      co_await blocker;
    };
    asyncio::Future<void> fa;
    asyncio::Future<void> none;
    none.set_result();
    auto ta = create_task(lockit(&lock, fa));
    co_await sleep(0);
    EXPECT_TRUE(lock.locked());
    auto tb = create_task(lockit(&lock, none));
    co_await sleep(0);
    EXPECT_THAT(lock.repr(), EndsWith("waiters:1]>"));
    auto tc = create_task(lockit(&lock, none));
    co_await sleep(0);
    EXPECT_THAT(lock.repr(), EndsWith("waiters:2]>"));

    fa.set_result();
    tb.cancel();
    co_await sleep(0);
    EXPECT_FALSE(lock.locked());
    EXPECT_TRUE(ta.done());
    EXPECT_TRUE(tb.cancelled());
    co_await tc;
  }());
}

// test_cancel_release_race (bpo-32734): cancel the first waiter and release at once: exactly
// one waiter gets the lock.
TEST(Lock, CancelAndReleaseTogetherTakeTheLockOnce) {
  run([]() -> Coro<void> {
    Lock lock;
    int lock_count = 0;
    int call_count = 0;
    auto lockit = [](Lock* l, int* locks, int* calls) -> Coro<void> {
      ++*calls;
      co_await l->acquire();
      ++*locks;
    };
    co_await lock.acquire();
    auto t1 = create_task(lockit(&lock, &lock_count, &call_count));
    auto t2 = create_task(lockit(&lock, &lock_count, &call_count));
    auto t3 = create_task(lockit(&lock, &lock_count, &call_count));
    co_await sleep(0);
    get_running_loop().call_soon([t1, &lock]() mutable {
      t1.cancel();
      lock.release();
    });
    EXPECT_TRUE(co_await ends_cancelled(t1));
    EXPECT_EQ(lock_count, 1);
    EXPECT_EQ(call_count, 3);
    EXPECT_TRUE(t1.cancelled() && t2.done());
    t3.cancel();
    co_await sleep(0);
    EXPECT_TRUE(t3.cancelled());
  }());
}

// test_finished_waiter_cancelled
TEST(Lock, CancelledWaiterDoesNotBlockALaterOne) {
  run([]() -> Coro<void> {
    Lock lock;
    co_await lock.acquire();
    EXPECT_TRUE(lock.locked());
    auto tb = create_task(acquire_only(&lock));
    co_await sleep(0);
    EXPECT_THAT(lock.repr(), EndsWith("waiters:1]>"));
    auto tc = create_task(acquire_only(&lock));
    tb.cancel();
    lock.release();
    co_await sleep(0);
    EXPECT_TRUE(lock.locked());
    EXPECT_TRUE(tb.cancelled());
    co_await tc;
  }());
}

// test_release_not_acquired
TEST(Lock, ReleaseWhenUnlockedThrowsRuntimeError) {
  Lock lock;
  EXPECT_THROW(lock.release(), RuntimeError);
}

// test_release_no_waiters
TEST(Lock, ReleaseWithoutWaitersUnlocks) {
  run([]() -> Coro<void> {
    Lock lock;
    co_await lock.acquire();
    EXPECT_TRUE(lock.locked());
    lock.release();
    EXPECT_FALSE(lock.locked());
  }());
}

// test_context_manager
TEST(Lock, ScopedHoldsTheLockUntilTheGuardDies) {
  run([]() -> Coro<void> {
    Lock lock;
    EXPECT_FALSE(lock.locked());
    {
      auto held = co_await lock.scoped();
      EXPECT_TRUE(lock.locked());
      EXPECT_TRUE(held.owns());
    }
    EXPECT_FALSE(lock.locked());
  }());
}

TEST(Lock, ScopedReleasesWhenAnExceptionLeavesTheBlock) {
  run([]() -> Coro<void> {
    Lock lock;
    try {
      auto held = co_await lock.scoped();
      throw ValueError("boom");
    } catch (const ValueError&) {  // NOLINT(bugprone-empty-catch)
    }
    EXPECT_FALSE(lock.locked());
  }());
}

TEST(Lock, GuardCanReleaseEarlyAndMove) {
  run([]() -> Coro<void> {
    Lock lock;
    auto held = co_await lock.scoped();
    asyncio::ReleaseGuard<Lock> moved(std::move(held));
    EXPECT_FALSE(held.owns());  // NOLINT(bugprone-use-after-move): checking the moved-from state
    EXPECT_TRUE(lock.locked());
    moved.release();
    EXPECT_FALSE(lock.locked());
    EXPECT_FALSE(moved.owns());
  }());
}

// Misuse: a guard whose lock was released by hand reports through the exception handler
// instead of throwing from its destructor.
TEST(Lock, GuardOfAHandReleasedLockReportsInsteadOfThrowing) {
  run([]() -> Coro<void> {
    asyncio_test::RecordingHandler handler;
    Lock lock;
    {
      auto held = co_await lock.scoped();
      lock.release();
    }
    EXPECT_TRUE(handler.has_message("ReleaseGuard"));
    EXPECT_TRUE(asyncio_test::holds<RuntimeError>(handler.at(0).exception));
  }());
}

// Habit 5: the woken waiter is cancelled before it runs; the lock passes to the next one.
TEST(Lock, WokenWaiterCancelledPassesTheLockOn) {
  run([]() -> Coro<void> {
    Lock lock;
    Log result;
    co_await lock.acquire();
    auto t1 = create_task(lock_and_log(&lock, &result, 1));
    auto t2 = create_task(lock_and_log(&lock, &result, 2));
    co_await sleep(0);
    lock.release();  // t1 is woken...
    t1.cancel();     // ...and cancelled before it runs
    co_await sleep(0);
    co_await sleep(0);
    EXPECT_TRUE(t1.cancelled());
    EXPECT_EQ(result, (Log{2}));
    EXPECT_TRUE(lock.locked());
    EXPECT_THAT(lock.repr(), EndsWith("[locked]>"));
  }());
}

// FIFO: a task that asks after a waiter was woken queues behind it (as CPython's fast path).
TEST(Lock, NewcomerDoesNotOvertakeAWokenWaiter) {
  run([]() -> Coro<void> {
    Lock lock;
    Log result;
    co_await lock.acquire();
    auto t1 = create_task(lock_log_unlock(&lock, &result, 1));
    co_await sleep(0);
    lock.release();
    EXPECT_FALSE(lock.locked());
    co_await lock.acquire();  // t1 was first
    result.push_back(0);
    EXPECT_EQ(result, (Log{1, 0}));
    lock.release();
    co_await t1;
  }());
}

TEST(Lock, AcquiringAFreeLockDoesNotSuspend) {
  run([]() -> Coro<void> {
    Lock lock;
    Log result;
    auto other = create_task([](Log* r) -> Coro<void> {
      r->push_back(1);
      co_return;
    }(&result));
    co_await lock.acquire();
    result.push_back(0);
    co_await other;
    EXPECT_EQ(result, (Log{0, 1}));
  }());
}

// A cancellation requested while the task was running cancels its next wait at once.
TEST(Lock, PendingCancellationCancelsTheWaitAtOnce) {
  run([]() -> Coro<void> {
    Lock lock;
    co_await lock.acquire();
    auto t = create_task([](Lock* l) -> Coro<void> {
      asyncio::current_task().cancel();
      co_await l->acquire();
    }(&lock));
    EXPECT_TRUE(co_await ends_cancelled(t));
    EXPECT_THAT(lock.repr(), EndsWith("[locked]>"));
    lock.release();
    EXPECT_FALSE(lock.locked());
  }());
}

// A time-out is a cancellation: the timed-out waiter leaves no trace (wait_for(lock.acquire())).
TEST(Lock, TimedOutAcquireLeavesNoTrace) {
  run([]() -> Coro<void> {
    Lock lock;
    Log result;
    co_await lock.acquire();
    auto later = create_task(lock_and_log(&lock, &result, 2));
    bool timed_out = false;
    try {
      co_await asyncio::wait_for(lock.acquire(), 0.1);
    } catch (const asyncio::TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_THAT(lock.repr(), EndsWith("[locked, waiters:1]>"));  // only `later`
    lock.release();
    co_await later;
    EXPECT_EQ(result, (Log{2}));
  }());
}

// Misuse: the lock waited on in one loop, then from a task of another loop.
TEST(Lock, WaitingFromAnotherLoopThrowsRuntimeError) {
  Lock lock;
  run_on_two_loops(
      [](Lock* l) -> Coro<void> {
        co_await l->acquire();
        auto t = create_task(acquire_only(l));
        co_await sleep(0);  // t waits: the lock is bound to this loop
        l->release();
        co_await t;
        l->release();
      }(&lock),
      [](Lock* l) -> Coro<void> {
        co_await l->acquire();  // free: no waiting, no loop involved (as in Python)
        bool threw = false;
        try {
          co_await l->acquire();
        } catch (const RuntimeError& e) {
          threw = true;
          EXPECT_THAT(e.what(), HasSubstr("bound to a different event loop"));
        }
        EXPECT_TRUE(threw);
        l->release();
      }(&lock));
}

// Misuse: destroying a lock that tasks wait on makes their waits throw RuntimeError.
TEST(Lock, DestroyedWhileTasksWaitThrowsRuntimeErrorInThem) {
  run([]() -> Coro<void> {
    auto lock = std::make_unique<Lock>();
    co_await lock->acquire();
    auto t = create_task(acquire_only(lock.get()));
    co_await sleep(0);
    lock.reset();
    bool threw = false;
    try {
      co_await t;
    } catch (const RuntimeError&) {
      threw = true;
    }
    EXPECT_TRUE(threw);
  }());
}

// ---- Event --------------------------------------------------------------------------------------

Coro<bool> wait_and_log(Event* ev, Log* log, int tag) {
  co_await ev->wait();
  log->push_back(tag);
  co_return true;
}

Coro<void> wait_only(Event* ev) {
  co_await ev->wait();
}

// test_repr
TEST(Event, ReprShowsFlagAndWaiters) {
  run([]() -> Coro<void> {
    Event ev;
    EXPECT_THAT(ev.repr(), EndsWith("[unset]>"));
    auto t = create_task(wait_only(&ev));
    co_await sleep(0);
    EXPECT_THAT(ev.repr(), EndsWith("[unset, waiters:1]>"));
    ev.set();
    EXPECT_THAT(ev.repr(), EndsWith("[set]>"));
    co_await t;
  }());
}

// test_wait
TEST(Event, SetWakesEveryWaiter) {
  run([]() -> Coro<void> {
    Event ev;
    EXPECT_FALSE(ev.is_set());
    Log result;
    auto t1 = create_task(wait_and_log(&ev, &result, 1));
    auto t2 = create_task(wait_and_log(&ev, &result, 2));
    co_await sleep(0);
    EXPECT_EQ(result, Log{});
    auto t3 = create_task(wait_and_log(&ev, &result, 3));
    ev.set();
    co_await sleep(0);
    EXPECT_EQ(result, (Log{3, 1, 2}));
    EXPECT_TRUE(t1.done() && t2.done() && t3.done());
  }());
}

// test_wait_on_set
TEST(Event, WaitOnSetEventReturnsAtOnce) {
  run([]() -> Coro<void> {
    Event ev;
    ev.set();
    co_await ev.wait();
    EXPECT_TRUE(ev.is_set());
  }());
}

// test_wait_cancel
TEST(Event, WaiterCancelledLeavesNoTrace) {
  run([]() -> Coro<void> {
    Event ev;
    auto wait = create_task(wait_only(&ev));
    get_running_loop().call_soon([wait]() mutable { wait.cancel(); });
    EXPECT_TRUE(co_await ends_cancelled(wait));
    EXPECT_THAT(ev.repr(), EndsWith("[unset]>"));
  }());
}

// test_clear
TEST(Event, ClearResetsTheFlag) {
  Event ev;
  EXPECT_FALSE(ev.is_set());
  ev.set();
  EXPECT_TRUE(ev.is_set());
  ev.clear();
  EXPECT_FALSE(ev.is_set());
}

// test_clear_with_waiters: a waiter woken by set() returns even if clear() came first.
TEST(Event, WokenWaiterReturnsEvenAfterClear) {
  run([]() -> Coro<void> {
    Event ev;
    Log result;
    auto t = create_task(wait_and_log(&ev, &result, 1));
    co_await sleep(0);
    EXPECT_EQ(result, Log{});
    ev.set();
    ev.clear();
    EXPECT_FALSE(ev.is_set());
    ev.set();
    ev.set();
    co_await sleep(0);
    EXPECT_EQ(result, (Log{1}));
    EXPECT_THAT(ev.repr(), EndsWith("[set]>"));
    EXPECT_TRUE(t.done() && t.result());
  }());
}

// As in Python: set() and cancel() before the waiter runs - the cancellation wins.
TEST(Event, WaiterCancelledAfterSetIsCancelled) {
  run([]() -> Coro<void> {
    Event ev;
    auto t = create_task(wait_only(&ev));
    co_await sleep(0);
    ev.set();
    t.cancel();
    EXPECT_TRUE(co_await ends_cancelled(t));
    EXPECT_TRUE(ev.is_set());
  }());
}

TEST(Event, WaitingFromAnotherLoopThrowsRuntimeError) {
  Event ev;
  run_on_two_loops(
      [](Event* e) -> Coro<void> {
        auto t = create_task(wait_only(e));
        co_await sleep(0);
        e->set();
        co_await t;
        e->clear();
      }(&ev),
      [](Event* e) -> Coro<void> {
        bool threw = false;
        try {
          co_await e->wait();
        } catch (const RuntimeError&) {
          threw = true;
        }
        EXPECT_TRUE(threw);
      }(&ev));
}

// ---- Condition ----------------------------------------------------------------------------------

/// acquire; wait; log (keeps the lock). CPython's c1/c2/c3 of test_wait.
Coro<bool> cond_wait_keep(Condition* cond, Log* log, int tag) {
  co_await cond->acquire();
  co_await cond->wait();
  log->push_back(tag);
  co_return true;
}

/// acquire; wait; log; release. CPython's c1/c2/c3 of test_notify.
Coro<bool> cond_wait_release(Condition* cond, Log* log, int tag) {
  auto held = co_await cond->scoped();
  co_await cond->wait();
  log->push_back(tag);
  co_return true;
}

// test_wait
TEST(Condition, WaitersWakeInOrderAndReacquireTheLock) {
  run([]() -> Coro<void> {
    Condition cond;
    Log result;
    auto t1 = create_task(cond_wait_keep(&cond, &result, 1));
    auto t2 = create_task(cond_wait_keep(&cond, &result, 2));
    auto t3 = create_task(cond_wait_keep(&cond, &result, 3));
    co_await sleep(0);
    EXPECT_EQ(result, Log{});
    EXPECT_FALSE(cond.locked());

    co_await cond.acquire();
    cond.notify();
    co_await sleep(0);
    EXPECT_EQ(result, Log{});
    EXPECT_TRUE(cond.locked());

    cond.release();
    co_await sleep(0);
    EXPECT_EQ(result, (Log{1}));
    EXPECT_TRUE(cond.locked());

    cond.notify(2);
    co_await sleep(0);
    EXPECT_EQ(result, (Log{1}));
    EXPECT_TRUE(cond.locked());

    cond.release();
    co_await sleep(0);
    EXPECT_EQ(result, (Log{1, 2}));
    EXPECT_TRUE(cond.locked());

    cond.release();
    co_await sleep(0);
    EXPECT_EQ(result, (Log{1, 2, 3}));
    EXPECT_TRUE(cond.locked());
    EXPECT_TRUE(t1.done() && t2.done() && t3.done());
  }());
}

// test_wait_cancel
TEST(Condition, CancelledWaitStillReacquiresTheLock) {
  run([]() -> Coro<void> {
    Condition cond;
    co_await cond.acquire();
    auto wait = create_task(cond.wait());
    get_running_loop().call_soon([wait]() mutable { wait.cancel(); });
    EXPECT_TRUE(co_await ends_cancelled(wait));
    EXPECT_THAT(cond.repr(), EndsWith("[locked]>"));  // no waiter left, lock held again
    EXPECT_TRUE(cond.locked());
  }());
}

// test_wait_cancel_contested
TEST(Condition, CancelWhileTheLockIsContestedStillReacquires) {
  run([]() -> Coro<void> {
    Condition cond;
    co_await cond.acquire();
    EXPECT_TRUE(cond.locked());
    auto wait_task = create_task(cond.wait());
    co_await sleep(0);
    EXPECT_FALSE(cond.locked());

    // Notify, but contest the lock before cancelling.
    co_await cond.acquire();
    EXPECT_TRUE(cond.locked());
    cond.notify();
    get_running_loop().call_soon([wait_task]() mutable { wait_task.cancel(); });
    get_running_loop().call_soon([&cond] { cond.release(); });
    (void)co_await ends_cancelled(wait_task);
    EXPECT_TRUE(cond.locked());
  }());
}

// test_wait_cancel_after_notify (bpo-32841)
TEST(Condition, CancelAfterNotifyWhileReacquiring) {
  run([]() -> Coro<void> {
    bool waited = false;
    Condition cond;
    auto waiter = create_task([](Condition* c, bool* w) -> Coro<void> {
      auto held = co_await c->scoped();
      *w = true;
      co_await c->wait();
    }(&cond, &waited));
    co_await sleep(0);  // start waiting

    co_await cond.acquire();
    cond.notify();
    co_await sleep(0);  // get to acquire()
    waiter.cancel();
    co_await sleep(0);  // activate the cancellation
    cond.release();
    co_await sleep(0);  // the cancellation happens

    EXPECT_TRUE(waiter.cancelled());
    EXPECT_TRUE(waited);
    EXPECT_FALSE(cond.locked());
  }());
}

// test_wait_unacquired
TEST(Condition, WaitWithoutTheLockThrowsRuntimeError) {
  run([]() -> Coro<void> {
    Condition cond;
    bool threw = false;
    try {
      co_await cond.wait();
    } catch (const RuntimeError&) {
      threw = true;
    }
    EXPECT_TRUE(threw);
  }());
}

// test_wait_for
TEST(Condition, WaitForReturnsOnceThePredicateHolds) {
  run([]() -> Coro<void> {
    Condition cond;
    bool presult = false;
    Log result;
    auto t = create_task([](Condition* c, const bool* p, Log* r) -> Coro<bool> {
      co_await c->acquire();
      if (co_await c->wait_for([p] { return *p; })) {
        r->push_back(1);
        c->release();
      }
      co_return true;
    }(&cond, &presult, &result));
    co_await sleep(0);
    EXPECT_EQ(result, Log{});

    co_await cond.acquire();
    cond.notify();
    cond.release();
    co_await sleep(0);
    EXPECT_EQ(result, Log{});

    presult = true;
    co_await cond.acquire();
    cond.notify();
    cond.release();
    co_await sleep(0);
    EXPECT_EQ(result, (Log{1}));
    EXPECT_TRUE(t.done() && t.result());
  }());
}

// test_wait_for_unacquired
TEST(Condition, WaitForNeedsTheLockOnlyToWait) {
  run([]() -> Coro<void> {
    Condition cond;
    // The predicate holds at once: its value comes back, no lock needed.
    EXPECT_EQ(co_await cond.wait_for([] { return 123; }), 123);
    bool threw = false;
    try {
      (void)co_await cond.wait_for([] { return false; });
    } catch (const RuntimeError&) {
      threw = true;
    }
    EXPECT_TRUE(threw);
  }());
}

// test_notify
TEST(Condition, NotifyWakesAtMostN) {
  run([]() -> Coro<void> {
    Condition cond;
    Log result;
    auto t1 = create_task(cond_wait_release(&cond, &result, 1));
    auto t2 = create_task(cond_wait_release(&cond, &result, 2));
    auto t3 = create_task(cond_wait_release(&cond, &result, 3));
    co_await sleep(0);
    EXPECT_EQ(result, Log{});

    co_await cond.acquire();
    cond.notify(1);
    cond.release();
    co_await sleep(0);
    EXPECT_EQ(result, (Log{1}));

    co_await cond.acquire();
    cond.notify(1);
    cond.notify(2048);
    cond.release();
    co_await sleep(0);
    EXPECT_EQ(result, (Log{1, 2, 3}));
    EXPECT_TRUE(t1.done() && t2.done() && t3.done());
  }());
}

// test_notify_all
TEST(Condition, NotifyAllWakesEveryWaiter) {
  run([]() -> Coro<void> {
    Condition cond;
    Log result;
    auto t1 = create_task(cond_wait_release(&cond, &result, 1));
    auto t2 = create_task(cond_wait_release(&cond, &result, 2));
    co_await sleep(0);
    EXPECT_EQ(result, Log{});
    co_await cond.acquire();
    cond.notify_all();
    cond.release();
    co_await sleep(0);
    EXPECT_EQ(result, (Log{1, 2}));
    EXPECT_TRUE(t1.done() && t2.done());
  }());
}

// test_notify_unacquired
TEST(Condition, NotifyWithoutTheLockThrowsRuntimeError) {
  Condition cond;
  EXPECT_THROW(cond.notify(), RuntimeError);
}

// test_notify_all_unacquired
TEST(Condition, NotifyAllWithoutTheLockThrowsRuntimeError) {
  Condition cond;
  EXPECT_THROW(cond.notify_all(), RuntimeError);
}

// test_repr
TEST(Condition, ReprShowsLockAndWaiters) {
  run([]() -> Coro<void> {
    Condition cond;
    EXPECT_THAT(cond.repr(), EndsWith("[unlocked]>"));
    co_await cond.acquire();
    EXPECT_THAT(cond.repr(), EndsWith("[locked]>"));
    Log result;
    auto t1 = create_task(cond_wait_release(&cond, &result, 1));
    auto t2 = create_task(cond_wait_release(&cond, &result, 2));
    cond.release();
    co_await sleep(0);
    co_await sleep(0);
    EXPECT_THAT(cond.repr(), EndsWith("[unlocked, waiters:2]>"));
    co_await cond.acquire();
    cond.notify_all();
    cond.release();
    co_await t1;
    co_await t2;
  }());
}

// test_context_manager
TEST(Condition, ScopedHoldsTheLock) {
  run([]() -> Coro<void> {
    Condition cond;
    EXPECT_FALSE(cond.locked());
    {
      auto held = co_await cond.scoped();
      EXPECT_TRUE(cond.locked());
    }
    EXPECT_FALSE(cond.locked());
  }());
}

// test_explicit_lock
TEST(Condition, SharesAnExplicitLock) {
  run([]() -> Coro<void> {
    auto check = [](Lock* lock, Condition* cond) -> Coro<void> {
      EXPECT_FALSE(lock->locked());
      EXPECT_FALSE(cond->locked());
      {
        auto held = co_await cond->scoped();
        EXPECT_TRUE(lock->locked());
        EXPECT_TRUE(cond->locked());
      }
      EXPECT_FALSE(lock->locked());
      EXPECT_FALSE(cond->locked());
      {
        auto held = co_await lock->scoped();
        EXPECT_TRUE(lock->locked());
        EXPECT_TRUE(cond->locked());
      }
      EXPECT_FALSE(lock->locked());
      EXPECT_FALSE(cond->locked());
    };
    Lock lock;
    Condition cond(&lock);
    co_await check(&lock, &cond);
    Lock lock2;
    Condition cond2(&lock2);
    co_await check(&lock2, &cond2);
  }());
}

// test_ambiguous_loops: the lock bound to another loop is found out by cond.acquire() (when it
// has to wait); the condition bound to another loop by cond.wait().
TEST(Condition, AmbiguousLoopsThrowRuntimeError) {
  Lock lock;
  Condition cond(&lock);
  Condition cond2;
  run_on_two_loops(
      [](Lock* l, Condition* c2) -> Coro<void> {
        co_await l->acquire();
        auto t = create_task(acquire_only(l));
        co_await sleep(0);  // binds the lock
        l->release();
        co_await t;
        l->release();
        co_await c2->acquire();
        auto w = create_task(c2->wait());  // releases the lock we took, then waits
        co_await sleep(0);  // w waits: binds cond2 (its lock is not bound: never contested)
        co_await c2->acquire();
        c2->notify();
        c2->release();
        co_await w;  // w holds the lock again
        c2->release();
      }(&lock, &cond2),
      [](Lock* l, Condition* c, Condition* c2) -> Coro<void> {
        auto held = co_await l->scoped();  // acquired at once, without any loop
        bool threw = false;
        try {
          co_await c->acquire();  // has to wait: discovers the loop mismatch
        } catch (const RuntimeError& e) {
          threw = true;
          EXPECT_THAT(e.what(), HasSubstr("different event loop"));
        }
        EXPECT_TRUE(threw);
        threw = false;
        auto held2 = co_await c2->scoped();
        try {
          co_await c2->wait();
        } catch (const RuntimeError& e) {
          threw = true;
          EXPECT_THAT(e.what(), HasSubstr("different event loop"));
        }
        EXPECT_TRUE(threw);
        EXPECT_TRUE(c2->locked());  // still held: the failed wait gave nothing up
      }(&lock, &cond, &cond2));
}

// test_timeout_in_block: a wait that times out still leaves the lock held.
TEST(Condition, TimedOutWaitStillHoldsTheLock) {
  run([]() -> Coro<void> {
    Condition cond;
    auto held = co_await cond.scoped();
    bool timed_out = false;
    try {
      co_await asyncio::wait_for(cond.wait(), 0.5);
    } catch (const asyncio::TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_TRUE(cond.locked());
    EXPECT_DOUBLE_EQ(get_running_loop().time(), 0.5);
  }());
}

// Python 3.13 (gh-112202): a waiter notified and then cancelled before it runs hands the
// notification to the next waiter, so notify(1) still wakes somebody.
TEST(Condition, NotifiedWaiterCancelledPassesTheNotificationOn) {
  run([]() -> Coro<void> {
    Condition cond;
    Log result;
    auto t1 = create_task(cond_wait_release(&cond, &result, 1));
    auto t2 = create_task(cond_wait_release(&cond, &result, 2));
    co_await sleep(0);
    co_await cond.acquire();
    cond.notify(1);  // t1
    t1.cancel();
    cond.release();
    EXPECT_TRUE(co_await ends_cancelled(t1));
    co_await t2;
    EXPECT_EQ(result, (Log{2}));
    EXPECT_FALSE(cond.locked());
  }());
}

// Same, when the cancellation hits while re-acquiring the lock after the notification.
TEST(Condition, CancelledWhileReacquiringPassesTheNotificationOn) {
  run([]() -> Coro<void> {
    Condition cond;
    Log result;
    auto t1 = create_task(cond_wait_release(&cond, &result, 1));
    auto t2 = create_task(cond_wait_release(&cond, &result, 2));
    co_await sleep(0);
    co_await cond.acquire();
    cond.notify(1);
    co_await sleep(0);  // t1 now waits for the lock
    t1.cancel();
    co_await sleep(0);  // t1 retries the lock
    cond.release();
    EXPECT_TRUE(co_await ends_cancelled(t1));
    co_await t2;
    EXPECT_EQ(result, (Log{2}));
  }());
}

// A waiter cancelled before any notification passes nothing on.
TEST(Condition, WaiterCancelledBeforeNotifyPassesNothingOn) {
  run([]() -> Coro<void> {
    Condition cond;
    Log result;
    auto t1 = create_task(cond_wait_release(&cond, &result, 1));
    auto t2 = create_task(cond_wait_release(&cond, &result, 2));
    co_await sleep(0);
    t1.cancel();
    EXPECT_TRUE(co_await ends_cancelled(t1));
    co_await sleep(0);
    EXPECT_EQ(result, Log{});
    EXPECT_THAT(cond.repr(), EndsWith("waiters:1]>"));
    co_await cond.acquire();
    cond.notify();
    cond.release();
    co_await t2;
    EXPECT_EQ(result, (Log{2}));
  }());
}

// ---- Semaphore ----------------------------------------------------------------------------------

Coro<bool> sem_and_log(Semaphore* sem, Log* log, int tag) {
  co_await sem->acquire();
  log->push_back(tag);
  co_return true;
}

Coro<void> sem_acquire_only(Semaphore* sem) {
  co_await sem->acquire();
}

// test_initial_value_zero
TEST(Semaphore, InitialValueZeroIsLocked) {
  Semaphore sem(0);
  EXPECT_TRUE(sem.locked());
}

// test_repr
TEST(Semaphore, ReprShowsValueAndWaiters) {
  run([]() -> Coro<void> {
    Semaphore sem;
    EXPECT_THAT(sem.repr(), StartsWith("<asyncio::Semaphore at 0x"));
    EXPECT_THAT(sem.repr(), EndsWith("[unlocked, value:1]>"));
    co_await sem.acquire();
    EXPECT_THAT(sem.repr(), EndsWith("[locked]>"));
    auto t1 = create_task(sem_acquire_only(&sem));
    auto t2 = create_task(sem_acquire_only(&sem));
    co_await sleep(0);
    EXPECT_THAT(sem.repr(), EndsWith("[locked, waiters:2]>"));
    sem.release();
    sem.release();
    co_await t1;
    co_await t2;
  }());
}

// test_semaphore
TEST(Semaphore, DefaultsToOnePermit) {
  Semaphore sem;
  EXPECT_FALSE(sem.locked());
  EXPECT_THAT(sem.repr(), EndsWith("[unlocked, value:1]>"));
}

// test_semaphore_value
TEST(Semaphore, NegativeValueThrowsValueError) {
  EXPECT_THROW(Semaphore(-1), ValueError);
  EXPECT_THROW(BoundedSemaphore(-1), ValueError);
}

// test_acquire
TEST(Semaphore, PermitsGoToWaitersInOrder) {
  run([]() -> Coro<void> {
    Semaphore sem(3);
    Log result;
    co_await sem.acquire();
    co_await sem.acquire();
    EXPECT_FALSE(sem.locked());
    auto t1 = create_task(sem_and_log(&sem, &result, 1));
    auto t2 = create_task(sem_and_log(&sem, &result, 2));
    auto t3 = create_task(sem_and_log(&sem, &result, 3));
    co_await sleep(0);
    EXPECT_EQ(result, (Log{1}));
    EXPECT_TRUE(sem.locked());
    EXPECT_THAT(sem.repr(), EndsWith("waiters:2]>"));

    auto t4 = create_task(sem_and_log(&sem, &result, 4));
    sem.release();
    sem.release();
    co_await sleep(0);
    EXPECT_EQ(result.size(), 3U);
    EXPECT_TRUE(sem.locked());
    EXPECT_THAT(sem.repr(), EndsWith("waiters:1]>"));
    EXPECT_TRUE(t1.done() && t1.result());
    const int done =
        static_cast<int>(t2.done()) + static_cast<int>(t3.done()) + static_cast<int>(t4.done());
    EXPECT_EQ(done, 2);
    EXPECT_TRUE(t2.done() && t3.done());  // FIFO: t4 came last
    sem.release();
    co_await t4;
  }());
}

// test_acquire_cancel
TEST(Semaphore, WaiterCancelledWhileWaitingLeavesNoTrace) {
  run([]() -> Coro<void> {
    Semaphore sem;
    co_await sem.acquire();
    auto acquire = create_task(sem_acquire_only(&sem));
    get_running_loop().call_soon([acquire]() mutable { acquire.cancel(); });
    EXPECT_TRUE(co_await ends_cancelled(acquire));
    EXPECT_THAT(sem.repr(), EndsWith("[locked]>"));
    sem.release();
    EXPECT_THAT(sem.repr(), EndsWith("[unlocked, value:1]>"));
  }());
}

// test_acquire_cancel_before_awoken
TEST(Semaphore, CancelledBeforeAwokenDoNotTakePermits) {
  run([]() -> Coro<void> {
    Semaphore sem(0);
    auto t1 = create_task(sem_acquire_only(&sem));
    auto t2 = create_task(sem_acquire_only(&sem));
    auto t3 = create_task(sem_acquire_only(&sem));
    auto t4 = create_task(sem_acquire_only(&sem));
    co_await sleep(0);
    t1.cancel();
    t2.cancel();
    sem.release();
    co_await sleep(0);
    co_await sleep(0);
    EXPECT_TRUE(t3.done());
    EXPECT_FALSE(t4.done());
    t3.cancel();
    t4.cancel();
    co_await sleep(0);
    EXPECT_TRUE(t4.cancelled());
  }());
}

// test_acquire_hang
TEST(Semaphore, CancelledWaiterDoesNotHangTheNext) {
  run([]() -> Coro<void> {
    Semaphore sem(0);
    auto t1 = create_task(sem_acquire_only(&sem));
    auto t2 = create_task(sem_acquire_only(&sem));
    co_await sleep(0);
    t1.cancel();
    sem.release();
    co_await sleep(0);
    co_await sleep(0);
    EXPECT_TRUE(sem.locked());
    EXPECT_TRUE(t2.done());
  }());
}

// test_acquire_no_hang: the woken waiter is cancelled; its permit comes back.
TEST(Semaphore, WokenWaiterCancelledGivesThePermitBack) {
  run([]() -> Coro<void> {
    Semaphore sem(1);
    Task<void> t2;
    auto t1 = create_task([](Semaphore* s, Task<void>* other) -> Coro<void> {
      {
        auto held = co_await s->scoped();
        co_await sleep(0);
      }
      other->cancel();
    }(&sem, &t2));
    t2 = create_task([](Semaphore* s) -> Coro<void> {
      auto held = co_await s->scoped();
      ADD_FAILURE() << "t2 must not get the permit";
    }(&sem));
    co_await t1;
    EXPECT_TRUE(co_await ends_cancelled(t2));
    EXPECT_FALSE(sem.locked());
    co_await asyncio::wait_for(sem.acquire(), 1.0);  // at once: the permit is there
    EXPECT_THAT(sem.repr(), EndsWith("[locked]>"));
    EXPECT_DOUBLE_EQ(get_running_loop().time(), 0.0);
  }());
}

// test_release_not_acquired
TEST(BoundedSemaphore, ReleaseAboveTheInitialValueThrowsValueError) {
  BoundedSemaphore sem;
  EXPECT_THROW(sem.release(), ValueError);
}

// test_release_no_waiters
TEST(Semaphore, ReleaseWithoutWaitersUnlocks) {
  run([]() -> Coro<void> {
    Semaphore sem;
    co_await sem.acquire();
    EXPECT_TRUE(sem.locked());
    sem.release();
    EXPECT_FALSE(sem.locked());
  }());
}

// (A braced list of std::string inside a coroutine trips g++ 12: "array used as initializer".)
std::vector<std::string> fifo_order_expected() {
  return {"c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"};
}

// test_acquire_fifo_order
TEST(Semaphore, ReacquiringTasksQueueInFifoOrder) {
  run([]() -> Coro<void> {
    Semaphore sem(1);
    std::vector<std::string> result;
    auto coro = [](Semaphore* s, std::vector<std::string>* r, std::string tag) -> Coro<void> {
      co_await s->acquire();
      r->push_back(tag + "_1");
      co_await sleep(0.01);
      s->release();
      co_await s->acquire();
      r->push_back(tag + "_2");
      co_await sleep(0.01);
      s->release();
    };
    co_await gather_all(tasks_of(create_task(coro(&sem, &result, "c1")),
                                 create_task(coro(&sem, &result, "c2")),
                                 create_task(coro(&sem, &result, "c3"))));
    EXPECT_EQ(result, fifo_order_expected());
  }());
}

// test_acquire_fifo_order_2: a task that releases and re-acquires queues behind woken waiters.
TEST(Semaphore, ReleaseAndReacquireDoesNotOvertake) {
  run([]() -> Coro<void> {
    Semaphore sem(1);
    Log result;
    auto t1 = create_task(sem_and_log(&sem, &result, 1));
    auto t2 = create_task([](Semaphore* s, Log* r) -> Coro<bool> {
      co_await s->acquire();
      r->push_back(2);
      s->release();
      co_await s->acquire();
      r->push_back(4);
      co_return true;
    }(&sem, &result));
    auto t3 = create_task(sem_and_log(&sem, &result, 3));
    co_await sleep(0);
    sem.release();
    sem.release();
    (void)co_await gather_all(tasks_of(t1, t2, t3));
    EXPECT_EQ(result, (Log{1, 2, 3, 4}));
  }());
}

// test_acquire_fifo_order_3
TEST(Semaphore, CancelledWaiterIsSkipped) {
  run([]() -> Coro<void> {
    Semaphore sem(0);
    Log result;
    auto t1 = create_task(sem_and_log(&sem, &result, 1));
    auto t2 = create_task(sem_and_log(&sem, &result, 2));
    auto t3 = create_task(sem_and_log(&sem, &result, 3));
    co_await sleep(0);
    t1.cancel();
    co_await sleep(0);
    sem.release();
    sem.release();
    co_await settle(tasks_of(t1, t2, t3));
    EXPECT_EQ(result, (Log{2, 3}));
  }());
}

// Habit 5: the woken waiter is cancelled before it runs; its permit passes to the next one and
// the count stays exact.
TEST(Semaphore, WokenWaiterCancelledPassesThePermitOn) {
  run([]() -> Coro<void> {
    Semaphore sem(0);
    Log result;
    auto t1 = create_task(sem_and_log(&sem, &result, 1));
    auto t2 = create_task(sem_and_log(&sem, &result, 2));
    co_await sleep(0);
    sem.release();  // t1 is woken...
    t1.cancel();    // ...and cancelled before it runs
    EXPECT_TRUE(co_await ends_cancelled(t1));
    co_await t2;
    EXPECT_EQ(result, (Log{2}));
    EXPECT_THAT(sem.repr(), EndsWith("[locked]>"));
    sem.release();
    EXPECT_THAT(sem.repr(), EndsWith("[unlocked, value:1]>"));
  }());
}

// Many waiters, cancelled in every state: afterwards the count is exactly what was released
// minus what was taken.
TEST(Semaphore, CountStaysExactThroughCancellations) {
  run([]() -> Coro<void> {
    Semaphore sem(2);
    co_await sem.acquire();
    co_await sem.acquire();
    Log result;
    std::vector<Task<bool>> tasks;
    for (int i = 0; i < 6; ++i) tasks.push_back(create_task(sem_and_log(&sem, &result, i)));
    co_await sleep(0);
    tasks[1].cancel();  // parked: just leaves
    sem.release();      // wakes 0
    sem.release();      // wakes 2
    tasks[0].cancel();  // woken: its permit passes on to 3
    tasks[4].cancel();  // parked: just leaves
    co_await sleep(0);
    co_await sleep(0);
    EXPECT_EQ(result, (Log{2, 3}));
    EXPECT_THAT(sem.repr(), EndsWith("[locked, waiters:1]>"));  // 5 waits
    sem.release();
    co_await tasks[5];
    EXPECT_EQ(result, (Log{2, 3, 5}));
    // 2 initial + 3 released - 5 taken = 0; give back the 3 that 2, 3 and 5 hold.
    for (int i = 0; i < 3; ++i) sem.release();
    EXPECT_THAT(sem.repr(), EndsWith("[unlocked, value:3]>"));
    for (int i : {0, 1, 4}) EXPECT_TRUE(tasks[static_cast<std::size_t>(i)].cancelled());
  }());
}

// Stricter than CPython: the permit set aside for a woken waiter counts, so releasing past the
// bound is caught even while a waiter is about to take it.
TEST(BoundedSemaphore, OverReleaseIsCaughtWhileAWaiterIsWoken) {
  run([]() -> Coro<void> {
    BoundedSemaphore sem(1);
    co_await sem.acquire();
    auto t = create_task([](Semaphore* s) -> Coro<void> {
      auto held = co_await s->scoped();
      co_return;
    }(&sem));
    co_await sleep(0);
    sem.release();  // t is woken
    EXPECT_THROW(sem.release(), ValueError);
    co_await t;
    EXPECT_THROW(sem.release(), ValueError);
    EXPECT_FALSE(sem.locked());
  }());
}

TEST(Semaphore, ScopedReleasesThePermit) {
  run([]() -> Coro<void> {
    Semaphore sem(2);
    {
      auto a = co_await sem.scoped();
      auto b = co_await sem.scoped();
      EXPECT_TRUE(sem.locked());
    }
    EXPECT_THAT(sem.repr(), EndsWith("[unlocked, value:2]>"));
  }());
}

TEST(Semaphore, WaitingFromAnotherLoopThrowsRuntimeError) {
  Semaphore sem(1);
  run_on_two_loops(
      [](Semaphore* s) -> Coro<void> {
        co_await s->acquire();
        auto t = create_task(sem_acquire_only(s));
        co_await sleep(0);
        s->release();
        co_await t;
      }(&sem),
      [](Semaphore* s) -> Coro<void> {
        bool threw = false;
        try {
          co_await s->acquire();
        } catch (const RuntimeError&) {
          threw = true;
        }
        EXPECT_TRUE(threw);
        s->release();
      }(&sem));
}

// ---- Barrier ------------------------------------------------------------------------------------

constexpr int kParties = 5;

template <class F>
std::vector<Task<void>> make_tasks(int n, F coro) {
  std::vector<Task<void>> tasks;
  for (int i = 0; i < n; ++i) tasks.push_back(create_task(coro()));
  return tasks;
}

Coro<void> barrier_wait(Barrier* b) {
  (void)co_await b->wait();
}

// test_barrier, test_repr
TEST(Barrier, ReprFollowsTheStates) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    EXPECT_THAT(barrier.repr(), EndsWith("[filling, waiters:0/5]>"));
    std::vector<Task<void>> waiters;
    auto add = [&](int n) {
      for (int i = 0; i < n; ++i) waiters.push_back(create_task(barrier_wait(&barrier)));
    };
    add(2);
    co_await sleep(0);
    EXPECT_THAT(barrier.repr(), EndsWith("[filling, waiters:2/5]>"));
    add(static_cast<int>(barrier.parties() - barrier.n_waiting()));
    co_await sleep(0);
    EXPECT_THAT(barrier.repr(), HasSubstr("[draining"));
    add(2);
    co_await sleep(0);
    barrier.reset();
    EXPECT_THAT(barrier.repr(), HasSubstr("[resetting"));
    add(2);
    co_await sleep(0);
    barrier.abort();
    EXPECT_THAT(barrier.repr(), EndsWith("[broken]>"));
    EXPECT_TRUE(barrier.broken());
    co_await settle(waiters);
  }());
}

// test_barrier_parties
TEST(Barrier, PartiesMustBePositive) {
  EXPECT_THROW(Barrier(0), ValueError);
  EXPECT_THROW(Barrier(-4), ValueError);
  Barrier barrier(kParties);
  EXPECT_EQ(barrier.parties(), 5U);
}

// test_context_manager
TEST(Barrier, EachPartyGetsADistinctIndex) {
  run([]() -> Coro<void> {
    Barrier barrier(3);
    std::vector<Task<std::size_t>> tasks;
    for (int i = 0; i < 3; ++i) tasks.push_back(create_task(barrier.wait()));
    auto results = co_await gather_all(tasks);
    std::sort(results.begin(), results.end());
    EXPECT_EQ(results, (std::vector<std::size_t>{0, 1, 2}));
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_filling_one_task
TEST(Barrier, OnePartyPassesAtOnce) {
  run([]() -> Coro<void> {
    Barrier barrier(1);
    EXPECT_EQ(co_await barrier.wait(), 0U);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_filling_one_task_twice
TEST(Barrier, OnePartyPassesTwice) {
  run([]() -> Coro<void> {
    Barrier barrier(1);
    auto t1 = create_task(barrier.wait());
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    auto t2 = create_task(barrier.wait());
    co_await sleep(0);
    EXPECT_EQ(t1.result(), t2.result());
    EXPECT_EQ(t1.done(), t2.done());
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_filling_task_by_task
TEST(Barrier, FillsTaskByTask) {
  run([]() -> Coro<void> {
    Barrier barrier(3);
    auto t1 = create_task(barrier.wait());
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 1U);
    EXPECT_THAT(barrier.repr(), HasSubstr("filling"));
    auto t2 = create_task(barrier.wait());
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 2U);
    auto t3 = create_task(barrier.wait());
    co_await sleep(0);
    (void)co_await gather_all(tasks_of(t1, t2, t3));
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_filling_tasks_wait_twice
TEST(Barrier, PartiesPassTwice) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    std::vector<bool> results;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, std::vector<bool>* r) -> Coro<void> {
        (void)co_await b->wait();
        r->push_back(true);
        (void)co_await b->wait();
        r->push_back(false);
      }(&barrier, &results);
    }));
    EXPECT_EQ(results.size(), 2U * kParties);
    EXPECT_EQ(std::count(results.begin(), results.end(), true), kParties);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_filling_tasks_check_return_value
TEST(Barrier, SecondRoundIndicesAreDistinct) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    std::vector<Task<std::size_t>> tasks;
    for (int i = 0; i < kParties; ++i) {
      tasks.push_back(create_task([](Barrier* b) -> Coro<std::size_t> {
        (void)co_await b->wait();
        co_return co_await b->wait();
      }(&barrier)));
    }
    auto res = co_await gather_all(tasks);
    std::sort(res.begin(), res.end());
    std::vector<std::size_t> expected(kParties);
    std::iota(expected.begin(), expected.end(), std::size_t{0});
    EXPECT_EQ(res, expected);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_draining_state
TEST(Barrier, DrainsUntilTheLastPartyHasLeft) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    std::vector<bool> results;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, std::vector<bool>* r) -> Coro<void> {
        (void)co_await b->wait();
        r->push_back(b->repr().find("draining") != std::string::npos);
      }(&barrier, &results);
    }));
    EXPECT_EQ(results.size(), static_cast<std::size_t>(kParties));
    if (results.size() != static_cast<std::size_t>(kParties)) co_return;
    EXPECT_FALSE(results.back());
    EXPECT_TRUE(std::all_of(results.begin(), results.end() - 1, [](bool b) { return b; }));
    EXPECT_EQ(barrier.n_waiting(), 0U);
  }());
}

// test_blocking_tasks_while_draining
TEST(Barrier, ArrivalsWhileDrainingWaitForTheNextRound) {
  run([]() -> Coro<void> {
    constexpr int kRewait = 2;
    Barrier barrier(kParties);
    Barrier barrier_nowaiting(kParties - kRewait);
    int rewait_n = kRewait;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, Barrier* nowaiting, int* rewait) -> Coro<void> {
        (void)co_await b->wait();
        if (*rewait > 0) {
          --*rewait;
          (void)co_await b->wait();  // wait again, for the others
        } else {
          (void)co_await nowaiting->wait();  // the end of the draining
          (void)co_await b->wait();
        }
      }(&barrier, &barrier_nowaiting, &rewait_n);
    }));
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_filling_tasks_cancel_one
TEST(Barrier, CancelledPartyLeavesTheRound) {
  run([]() -> Coro<void> {
    Barrier barrier(3);
    std::vector<bool> results;
    auto coro = [](Barrier* b, std::vector<bool>* r) -> Coro<void> {
      (void)co_await b->wait();
      r->push_back(true);
    };
    auto t1 = create_task(coro(&barrier, &results));
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 1U);
    auto t2 = create_task(coro(&barrier, &results));
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 2U);
    t1.cancel();
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 1U);
    EXPECT_TRUE(co_await ends_cancelled(t1));
    EXPECT_TRUE(t1.cancelled());
    auto t3 = create_task(coro(&barrier, &results));
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 2U);
    auto t4 = create_task(coro(&barrier, &results));
    co_await gather_all(tasks_of(t2, t3, t4));
    EXPECT_EQ(results.size(), 3U);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_reset_barrier
TEST(Barrier, ResetWithNobodyWaiting) {
  run([]() -> Coro<void> {
    Barrier barrier(1);
    barrier.reset();
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

/// Counts BrokenBarrierErrors out of one wait().
Coro<void> wait_count_broken(Barrier* b, int* broken) {
  try {
    (void)co_await b->wait();
  } catch (const BrokenBarrierError&) {
    ++*broken;
  }
}

// test_reset_barrier_while_tasks_waiting
TEST(Barrier, ResetBreaksTheWaitingParties) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    int broken = 0;
    auto tasks = make_tasks(kParties - 1, [&] { return wait_count_broken(&barrier, &broken); });
    co_await sleep(0);
    barrier.reset();
    co_await gather_all(tasks);
    EXPECT_EQ(broken, kParties - 1);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_THAT(barrier.repr(), Not(HasSubstr("resetting")));
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_reset_barrier_when_tasks_half_draining: a drained task resets the barrier while half of
// the round has not left yet; those get BrokenBarrierError.
TEST(Barrier, ResetWhileHalfDrained) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    int broken = 0;
    int left = 0;
    constexpr int kRest = kParties / 2;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, int* brk, int* out) -> Coro<void> {
        bool broken = false;
        try {
          (void)co_await b->wait();
        } catch (const BrokenBarrierError&) {
          broken = true;  // still inside when reset
        }
        if (broken) {
          ++*brk;
        } else if (++*out == kParties - kRest) {
          // Python: `if rest_of_tasks == barrier._count` - kRest tasks are still inside.
          b->reset();
        }
      }(&barrier, &broken, &left);
    }));
    EXPECT_EQ(broken, kRest);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_THAT(barrier.repr(), Not(HasSubstr("resetting")));
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_reset_barrier_when_tasks_half_draining_half_blocking
TEST(Barrier, ResetWhileHalfDrainedHalfBlocked) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    int results1 = 0;
    int results2 = 0;
    int count = 0;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, int* r1, int* r2, int* n) -> Coro<void> {
        bool broken = false;
        try {
          (void)co_await b->wait();
        } catch (const BrokenBarrierError&) {
          broken = true;
        }
        if (broken) {
          ++*r1;                     // still waiting when reset...
          (void)co_await b->wait();  // ...so wait again to reach the parties
        } else if (++*n > kParties / 2) {
          b->reset();  // BrokenBarrierError for the tasks still waiting
          (void)co_await b->wait();
        } else {
          try {
            (void)co_await b->wait();
          } catch (const BrokenBarrierError&) {
            ++*r2;  // never: blocked tasks go on waiting
          }
        }
      }(&barrier, &results1, &results2, &count);
    }));
    EXPECT_EQ(results1, kParties / 2);
    EXPECT_EQ(results2, 0);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_THAT(barrier.repr(), Not(HasSubstr("resetting")));
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_reset_barrier_while_tasks_waiting_and_waiting_again
TEST(Barrier, ResetPartiesWaitAgainForTheNextRound) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    int results1 = 0;
    int results2 = 0;
    auto tasks = make_tasks(kParties - 1, [&] {
      return [](Barrier* b, int* r1, int* r2) -> Coro<void> {
        co_await wait_count_broken(b, r1);
        (void)co_await b->wait();  // Python's `finally`
        ++*r2;
      }(&barrier, &results1, &results2);
    });
    co_await sleep(0);
    barrier.reset();  // the N-1 waiting tasks get BrokenBarrierError
    tasks.push_back(create_task([](Barrier* b, int* r2) -> Coro<void> {
      (void)co_await b->wait();
      ++*r2;
    }(&barrier, &results2)));
    co_await gather_all(tasks);
    EXPECT_FALSE(barrier.broken());
    EXPECT_EQ(results1, kParties - 1);
    EXPECT_EQ(results2, kParties);
    EXPECT_EQ(barrier.n_waiting(), 0U);
  }());
}

// test_reset_barrier_while_tasks_draining
TEST(Barrier, ResetAfterTheLastPartyLeftIsHarmless) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    int results1 = 0;
    int results2 = 0;
    int results3 = 0;
    int count = 0;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, int* r1, int* r2, int* r3, int* n) -> Coro<void> {
        (void)co_await b->wait();
        if (++*n == kParties) {
          b->reset();  // the last task out of the barrier
          (void)co_await b->wait();
        } else {
          try {
            (void)co_await b->wait();
            ++*r1;
          } catch (const BrokenBarrierError&) {
            ++*r2;  // never
          }
        }
        (void)co_await b->wait();  // pass the barrier once more
        ++*r3;
      }(&barrier, &results1, &results2, &results3, &count);
    }));
    EXPECT_FALSE(barrier.broken());
    EXPECT_EQ(results1, kParties - 1);
    EXPECT_EQ(results2, 0);
    EXPECT_EQ(results3, kParties);
    EXPECT_EQ(barrier.n_waiting(), 0U);
  }());
}

// test_abort_barrier
TEST(Barrier, AbortBreaksIt) {
  Barrier barrier(1);
  barrier.abort();
  EXPECT_EQ(barrier.n_waiting(), 0U);
  EXPECT_TRUE(barrier.broken());
  run([](Barrier* b) -> Coro<void> {
    bool threw = false;
    try {
      (void)co_await b->wait();
    } catch (const BrokenBarrierError&) {
      threw = true;
    }
    EXPECT_TRUE(threw);
  }(&barrier));
}

// test_abort_barrier_when_tasks_half_draining_half_blocking
TEST(Barrier, AbortWhileHalfDrainedHalfBlocked) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    int results1 = 0;
    int results2 = 0;
    int count = 0;
    constexpr int kBlocking = kParties / 2;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, int* r1, int* r2, int* n) -> Coro<void> {
        bool broken = false;
        try {
          (void)co_await b->wait();
        } catch (const BrokenBarrierError&) {
          broken = true;  // tasks waiting to drain
        }
        if (broken) {
          ++*r1;
        } else if (++*n > kBlocking) {
          b->abort();  // BrokenBarrierError for everybody
        } else {
          co_await wait_count_broken(b, r2);  // blocked tasks (already drained)
        }
      }(&barrier, &results1, &results2, &count);
    }));
    EXPECT_TRUE(barrier.broken());
    EXPECT_EQ(results1, kBlocking);
    EXPECT_EQ(results2, kParties - kBlocking - 1);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_THAT(barrier.repr(), Not(HasSubstr("resetting")));
  }());
}

struct PartyFailed {};

// test_abort_barrier_when_exception (threading's lock_tests.test_reset)
TEST(Barrier, PartyThatFailsAbortsForEverybody) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    int results1 = 0;
    int results2 = 0;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, int* r1, int* r2) -> Coro<void> {
        bool failed = false;
        try {
          if (co_await b->wait() == kParties / 2) throw PartyFailed{};
          (void)co_await b->wait();
          ++*r1;
        } catch (const BrokenBarrierError&) {
          ++*r2;
        } catch (const PartyFailed&) {
          failed = true;
        }
        if (failed) b->abort();
      }(&barrier, &results1, &results2);
    }));
    EXPECT_TRUE(barrier.broken());
    EXPECT_EQ(results1, 0);
    EXPECT_EQ(results2, kParties - 1);
    EXPECT_EQ(barrier.n_waiting(), 0U);
  }());
}

// test_abort_barrier_when_exception_then_resetting (threading's test_abort_and_reset)
TEST(Barrier, AbortedThenResetWorksAgain) {
  run([]() -> Coro<void> {
    Barrier barrier1(kParties);
    Barrier barrier2(kParties);
    int results1 = 0;
    int results2 = 0;
    int results3 = 0;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b1, Barrier* b2, int* r1, int* r2, int* r3) -> Coro<void> {
        bool failed = false;
        try {
          if (co_await b1->wait() == kParties / 2) throw PartyFailed{};
          (void)co_await b1->wait();
          ++*r1;
        } catch (const BrokenBarrierError&) {
          ++*r2;
        } catch (const PartyFailed&) {
          failed = true;
        }
        if (failed) b1->abort();
        // Synchronise and reset: everybody has left b1 before the reset, nobody enters it
        // before the reset is done.
        if (co_await b2->wait() == kParties / 2) b1->reset();
        (void)co_await b2->wait();
        (void)co_await b1->wait();
        ++*r3;
      }(&barrier1, &barrier2, &results1, &results2, &results3);
    }));
    EXPECT_FALSE(barrier1.broken());
    EXPECT_EQ(results1, 0);
    EXPECT_EQ(results2, kParties - 1);
    EXPECT_EQ(results3, kParties);
    EXPECT_EQ(barrier1.n_waiting(), 0U);
  }());
}

TEST(Barrier, WaitingFromAnotherLoopThrowsRuntimeError) {
  Barrier barrier(2);
  run_on_two_loops(
      [](Barrier* b) -> Coro<void> {
        auto t = create_task(barrier_wait(b));
        co_await sleep(0);
        (void)co_await b->wait();
        co_await t;
      }(&barrier),
      [](Barrier* b) -> Coro<void> {
        bool threw = false;
        try {
          (void)co_await b->wait();
        } catch (const RuntimeError&) {
          threw = true;
        }
        EXPECT_TRUE(threw);
        EXPECT_EQ(b->n_waiting(), 0U);  // the failed wait left the round
      }(&barrier));
}

}  // namespace
