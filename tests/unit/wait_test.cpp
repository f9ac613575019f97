// Tests for asyncio::wait (asyncio/composition.hpp): ALL_COMPLETED, FIRST_COMPLETED and
// FIRST_EXCEPTION, time-outs (no TimeoutError: what is not done is pending), duplicates, invalid
// arguments, futures and TaskRefs as inputs, and a cancelled waiter that leaves its tasks alone.
//
// Translated from CPython's Lib/test/test_asyncio/test_tasks.py (test_wait*,
// test_yield_wait_does_not_shield_cancel); each test names the Python test it follows. Python's
// sets become vectors in the order given. Virtual time throughout.
#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::CancelledError;
using asyncio::Coro;
using asyncio::Future;
using asyncio::ReturnWhen;
using asyncio::Task;
using asyncio::TaskRef;
using asyncio_test::run_virtual;
using namespace std::chrono_literals;

using asyncio_test::fail_after;
using asyncio_test::nap;
using asyncio_test::now;
using asyncio_test::value_after;
using asyncio_test::vec;

// test_wait
TEST(Wait, AllCompletedByDefault) {
  run_virtual([]() -> Coro<void> {
    Task<void> a = asyncio::create_task(nap(0.1));
    Task<void> b = asyncio::create_task(nap(0.15));
    auto [done, pending] = co_await asyncio::wait(vec(b, a));
    EXPECT_EQ(done, (std::vector{b, a}));
    EXPECT_TRUE(pending.empty());
    EXPECT_DOUBLE_EQ(now(), 0.15);
    // Doing it again takes no time.
    auto again = co_await asyncio::wait(vec(a, b));
    EXPECT_EQ(again.done.size(), 2U);
    EXPECT_DOUBLE_EQ(now(), 0.15);
  }());
}

// test_wait_duplicate_coroutines
TEST(Wait, DuplicatesCountOnce) {
  run_virtual([]() -> Coro<void> {
    Task<std::string> c = asyncio::create_task(value_after(0, "test"));
    Task<std::string> s = asyncio::create_task(value_after(0, "spam"));
    auto [done, pending] = co_await asyncio::wait(vec(c, c, s));
    EXPECT_TRUE(pending.empty());
    EXPECT_EQ(done.size(), 2U);
    std::set<std::string> results;
    for (auto& f : done) results.insert(f.result());
    EXPECT_EQ(results, (std::set<std::string>{"test", "spam"}));
  }());
}

// test_wait_errors, test_wait_invalid_args
TEST(Wait, EmptyOrInvalidArgumentsThrowValueError) {
  run_virtual([]() -> Coro<void> {
    EXPECT_THROW((void)asyncio::wait(std::vector<Task<void>>{}), asyncio::ValueError);
    Task<void> t = asyncio::create_task(nap(0));
    EXPECT_THROW((void)asyncio::wait(vec(t), {.return_when = static_cast<ReturnWhen>(-1)}),
                 asyncio::ValueError);
    co_await t;
  }());
}

// test_wait_first_completed
TEST(Wait, FirstCompleted) {
  run_virtual([]() -> Coro<void> {
    Task<void> a = asyncio::create_task(nap(10));
    Task<void> b = asyncio::create_task(nap(0.1));
    auto [done, pending] =
        co_await asyncio::wait(vec(b, a), {.return_when = ReturnWhen::first_completed});
    EXPECT_EQ(done, std::vector{b});
    EXPECT_EQ(pending, std::vector{a});
    EXPECT_FALSE(a.done());
    EXPECT_DOUBLE_EQ(now(), 0.1);
    a.cancel();
  }());
}

// test_wait_really_done: tasks that finish between the wake-up and the resumption are done.
TEST(Wait, FuturesDoneByTheTimeItResumesAreInDone) {
  run_virtual([]() -> Coro<void> {
    Task<void> a = asyncio::create_task(nap(0));
    Task<void> b = asyncio::create_task(nap(0));
    auto [done, pending] =
        co_await asyncio::wait(vec(b, a), {.return_when = ReturnWhen::first_completed});
    EXPECT_EQ(done.size(), 2U);
    EXPECT_TRUE(pending.empty());
  }());
}

// test_wait_first_exception: a task that already failed returns at once.
TEST(Wait, FirstExceptionAlreadyFailed) {
  run_virtual([]() -> Coro<void> {
    Task<void> a = asyncio::create_task(nap(10));
    Task<void> b = asyncio::create_task(fail_after(0));
    co_await asyncio::sleep(0);
    auto [done, pending] =
        co_await asyncio::wait(vec(b, a), {.return_when = ReturnWhen::first_exception});
    EXPECT_EQ(done, std::vector{b});
    EXPECT_EQ(pending, std::vector{a});
    EXPECT_DOUBLE_EQ(now(), 0.0);
    a.cancel();
  }());
}

// test_wait_first_exception_in_wait
TEST(Wait, FirstExceptionDuringTheWait) {
  run_virtual([]() -> Coro<void> {
    Task<void> a = asyncio::create_task(nap(10));
    Task<void> b = asyncio::create_task(fail_after(0.01));
    auto [done, pending] =
        co_await asyncio::wait(vec(b, a), {.return_when = ReturnWhen::first_exception});
    EXPECT_EQ(done, std::vector{b});
    EXPECT_EQ(pending, std::vector{a});
    EXPECT_DOUBLE_EQ(now(), 0.01);
    a.cancel();
  }());
}

TEST(Wait, FirstExceptionWithoutErrorsWaitsForAll) {
  run_virtual([]() -> Coro<void> {
    Task<void> a = asyncio::create_task(nap(0.1));
    Task<void> b = asyncio::create_task(nap(0.2));
    auto [done, pending] =
        co_await asyncio::wait(vec(a, b), {.return_when = ReturnWhen::first_exception});
    EXPECT_EQ(done.size(), 2U);
    EXPECT_DOUBLE_EQ(now(), 0.2);
  }());
}

// test_wait_with_exception
TEST(Wait, AllCompletedIncludesFailures) {
  run_virtual([]() -> Coro<void> {
    Task<void> a = asyncio::create_task(nap(0.1));
    Task<void> b = asyncio::create_task(fail_after(0.15));
    auto [done, pending] = co_await asyncio::wait(vec(b, a));
    EXPECT_EQ(done.size(), 2U);
    EXPECT_TRUE(pending.empty());
    int errors = 0;
    for (auto& f : done) errors += f.exception() != nullptr ? 1 : 0;
    EXPECT_EQ(errors, 1);
    EXPECT_DOUBLE_EQ(now(), 0.15);
  }());
}

// test_wait_with_timeout: no TimeoutError; what is not done is pending (and keeps running).
TEST(Wait, TimeoutSplitsDoneAndPending) {
  run_virtual([]() -> Coro<void> {
    Task<void> a = asyncio::create_task(nap(0.1));
    Task<void> b = asyncio::create_task(nap(0.15));
    auto [done, pending] = co_await asyncio::wait(vec(b, a), {.timeout = 0.11s});
    EXPECT_EQ(done, std::vector{a});
    EXPECT_EQ(pending, std::vector{b});
    EXPECT_DOUBLE_EQ(now(), 0.11);
    co_await b;  // not cancelled
  }());
}

// test_wait_concurrent_complete: a task finishing at the time-out counts as done.
TEST(Wait, ATaskFinishingAtTheTimeoutIsDone) {
  run_virtual([]() -> Coro<void> {
    Task<void> a = asyncio::create_task(nap(0.1));
    Task<void> b = asyncio::create_task(nap(0.15));
    co_await asyncio::sleep(0);  // as in Python, the tasks' timers are set before wait()'s
    auto [done, pending] = co_await asyncio::wait(vec(b, a), {.timeout = 100ms});
    EXPECT_EQ(done, std::vector{a});
    EXPECT_EQ(pending, std::vector{b});
    EXPECT_DOUBLE_EQ(now(), 0.1);
    b.cancel();
  }());
}

TEST(Wait, ZeroTimeoutReturnsAfterOneIteration) {
  run_virtual([]() -> Coro<void> {
    Task<void> a = asyncio::create_task(nap(1));
    auto [done, pending] = co_await asyncio::wait(vec(a), {.timeout = 0s});
    EXPECT_TRUE(done.empty());
    EXPECT_EQ(pending, std::vector{a});
    EXPECT_DOUBLE_EQ(now(), 0.0);
    a.cancel();
  }());
}

// test_yield_wait_does_not_shield_cancel: cancelling the waiter leaves the tasks running.
TEST(Wait, CancellingTheWaiterLeavesTheTasksRunning) {
  run_virtual([]() -> Coro<void> {
    Future<void> waiter;
    int proof = 0;
    auto inner = [](Future<void> w, int* p) -> Coro<void> {
      co_await w;
      *p += 1;
    };
    auto outer = [](Task<void> t, int* p) -> Coro<void> {
      co_await asyncio::wait(vec(t));
      *p += 100;
    };
    Task<void> t = asyncio::create_task(inner(waiter, &proof));
    Task<void> f = asyncio::create_task(outer(t, &proof));
    co_await asyncio::sleep(0);
    f.cancel();
    EXPECT_THROW(co_await f, CancelledError);
    waiter.set_result();
    co_await t;
    EXPECT_EQ(proof, 1);
  }());
}

TEST(Wait, AcceptsFuturesAndTaskRefs) {
  run_virtual([]() -> Coro<void> {
    Future<int> f;
    asyncio::get_running_loop().call_later(0.1, [f]() mutable { f.set_result(1); });
    auto [done, pending] = co_await asyncio::wait(vec(f));
    EXPECT_EQ(done.front().result(), 1);
    Task<void> t = asyncio::create_task(nap(0.1));
    auto r = co_await asyncio::wait(vec(TaskRef(t)));
    EXPECT_TRUE(r.done.front() == TaskRef(t));
  }());
}

// `(void)co_await wait(std::move(tasks))`, Python's `await asyncio.wait(tasks)` with the result
// ignored: the result holds the only handles, and dropping it freed the tasks while the wait's
// engine still meant to unhook itself from them (heap-use-after-free; found by the fuzzer).
TEST(Wait, DiscardedResultHoldingTheOnlyHandles) {
  const bool done = asyncio_test::run_virtual([]() -> asyncio::Coro<bool> {
    std::vector<asyncio::Task<void>> ts;
    for (int i = 0; i < 3; ++i) {
      ts.push_back(asyncio::create_task(
          [](int n) -> asyncio::Coro<void> { co_await asyncio::sleep(n); }(i)));
    }
    (void)co_await asyncio::wait(std::move(ts));
    std::vector<asyncio::Task<void>> one;
    one.push_back(
        asyncio::create_task([]() -> asyncio::Coro<void> { co_await asyncio::sleep(1); }()));
    asyncio::WaitOptions first;
    first.return_when = asyncio::ReturnWhen::first_completed;
    (void)co_await asyncio::wait(std::move(one), first);
    co_return true;
  }());
  EXPECT_TRUE(done);
}

}  // namespace
