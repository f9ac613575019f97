// Tests for asyncio/locks.hpp: Event. set() wakes every waiter, clear() resets the flag, a woken
// waiter returns even after clear(), cancelled waiters, repr(), and waiting from another loop.
//
// Most tests translate a test of CPython 3.11's Lib/test/test_asyncio/test_locks.py
// (EventTests); the comment names it ("test_cancel_race"). Where CPython looks at private state
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

using asyncio::Coro;
using asyncio::create_task;
using asyncio::Event;
using asyncio::get_running_loop;
using asyncio::RuntimeError;
using asyncio::sleep;
using asyncio_test::ends_cancelled;
using asyncio_test::run_on_two_loops;
using testing::EndsWith;

using Log = std::vector<int>;

void run(Coro<void> main) {
  asyncio_test::run_virtual(std::move(main));
}

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

}  // namespace
