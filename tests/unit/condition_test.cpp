// Tests for asyncio/locks.hpp: Condition. wait() releases and reacquires the lock (also when
// cancelled), wait_for(predicate), notify(n) and notify_all(), a notification passed on by a
// cancelled waiter, a shared explicit Lock, repr(), and misuse (no lock held, ambiguous loops).
//
// Most tests translate a test of CPython 3.11's Lib/test/test_asyncio/test_locks.py
// (ConditionTests); the comment names it ("test_cancel_race"). Where CPython looks at private state
// (`lock._waiters`) we look at repr() or at behaviour instead. The loop runs one iteration per
// `sleep(0)`, with the same FIFO order as CPython's, so the step-by-step expectations carry over
// unchanged. Tests that go further than CPython (a wake-up passed on, a count that stays exact,
// misuse) say so.
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <asyncio/locks.hpp>

#include "asyncio.hpp"
#include "asyncio_test.hpp"

namespace {

using asyncio::Condition;
using asyncio::Coro;
using asyncio::create_task;
using asyncio::get_running_loop;
using asyncio::Lock;
using asyncio::RuntimeError;
using asyncio::sleep;
using asyncio_test::ends_cancelled;
using asyncio_test::run_on_two_loops;
using testing::EndsWith;
using testing::HasSubstr;

using Log = std::vector<int>;

void run(Coro<void> main) {
  asyncio_test::run_virtual(std::move(main));
}

Coro<void> acquire_only(Lock* lock) {
  co_await lock->acquire();
}

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

}  // namespace
