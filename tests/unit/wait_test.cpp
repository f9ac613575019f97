// Tests for asyncio::wait, shield, as_completed and ensure_future (asyncio/composition.hpp).
//
// Translated from CPython's Lib/test/test_asyncio/test_tasks.py (test_wait*, test_shield*,
// test_as_completed*, test_yield_wait_does_not_shield_cancel, test_ensure_future_*); each test
// names the Python test it follows. Python's sets become vectors in the order given.
// Virtual time throughout.
#include <algorithm>
#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
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
using asyncio_test::RecordingHandler;
using asyncio_test::run_virtual;
using namespace std::chrono_literals;

double now() {
  return asyncio::get_running_loop().time();
}

Coro<void> nap(double delay) {
  co_await asyncio::sleep(delay);
}

Coro<std::string> value_after(double delay, std::string value) {
  co_await asyncio::sleep(delay);
  co_return value;
}

Coro<void> fail_after(double delay) {
  co_await asyncio::sleep(delay);
  throw std::runtime_error("err");
}

/// std::vector{xs...} without an initializer_list (g++ 12 rejects initializer_list temporaries
/// in a coroutine's co_await expression: "array used as initializer").
template <class T, class... More>
std::vector<T> vec(T first, More... more) {
  std::vector<T> v;
  v.push_back(std::move(first));
  (v.push_back(std::move(more)), ...);
  return v;
}

// ---- wait --------------------------------------------------------------------------------------

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

// ---- shield ------------------------------------------------------------------------------------

// test_shield_result
TEST(Shield, ReturnsTheResult) {
  run_virtual([]() -> Coro<void> {
    Future<int> inner;
    auto outer = asyncio::shield(inner);
    inner.set_result(42);
    EXPECT_EQ(co_await std::move(outer), 42);
  }());
}

// test_shield_exception
TEST(Shield, RethrowsTheError) {
  run_virtual([]() -> Coro<void> {
    Future<int> inner;
    asyncio::get_running_loop().call_soon([inner]() mutable {
      inner.set_exception(std::make_exception_ptr(std::runtime_error("expected")));
    });
    EXPECT_THROW(co_await asyncio::shield(inner), std::runtime_error);
  }());
}

// test_shield_cancel_inner: cancelled by other means, the shield's awaiter is cancelled too.
TEST(Shield, CancellingTheInnerCancelsTheAwaiter) {
  run_virtual([]() -> Coro<void> {
    Future<int> inner;
    asyncio::get_running_loop().call_soon([inner]() mutable { inner.cancel(); });
    EXPECT_THROW(co_await asyncio::shield(inner), CancelledError);
  }());
}

// test_shield_cancel_outer, test_shield_effect: cancelling the awaiter leaves the inner alone.
TEST(Shield, CancellingTheAwaiterLeavesTheInnerRunning) {
  run_virtual([]() -> Coro<void> {
    Future<void> waiter;
    int proof = 0;
    auto inner = [](Future<void> w, int* p) -> Coro<void> {
      co_await w;
      *p += 1;
    };
    auto outer = [](Coro<void> in, int* p) -> Coro<void> {
      co_await asyncio::shield(std::move(in));
      *p += 100;
    };
    Task<void> f = asyncio::create_task(outer(inner(waiter, &proof), &proof));
    co_await asyncio::sleep(0);
    co_await asyncio::sleep(0);
    f.cancel();
    EXPECT_THROW(co_await f, CancelledError);
    EXPECT_FALSE(waiter.cancelled());
    waiter.set_result();
    co_await asyncio::sleep(0);
    co_await asyncio::sleep(0);
    EXPECT_EQ(proof, 1);
  }());
}

// test_shield_shortcut
TEST(Shield, ADoneFutureReturnsAtOnce) {
  run_virtual([]() -> Coro<void> {
    Future<int> fut;
    fut.set_result(42);
    EXPECT_EQ(co_await asyncio::shield(fut), 42);
  }());
}

// test_shield_gather: a shielded gather completes with its children after the awaiter left.
TEST(Shield, AShieldedGatherCompletesAfterTheAwaiterIsCancelled) {
  run_virtual([]() -> Coro<void> {
    Future<int> child1, child2;
    auto parent = asyncio::ensure_future(asyncio::gather(child1, child2));
    auto awaiter = [](Task<std::tuple<int, int>> p) -> Coro<void> { co_await asyncio::shield(p); };
    Task<void> outer = asyncio::create_task(awaiter(parent));
    co_await asyncio::sleep(0);
    outer.cancel();
    EXPECT_THROW(co_await outer, CancelledError);
    child1.set_result(1);
    child2.set_result(2);
    EXPECT_EQ(co_await parent, std::make_tuple(1, 2));
  }());
}

// test_shield_coroutine_use_running_loop: shield() schedules a coroutine at once.
TEST(Shield, ACoroutineBecomesATaskRightAway) {
  run_virtual([]() -> Coro<void> {
    bool ran = false;
    auto body = [](bool* r) -> Coro<int> {
      *r = true;
      co_return 42;
    };
    auto s = asyncio::shield(body(&ran));
    co_await asyncio::sleep(0);
    EXPECT_TRUE(ran);
    EXPECT_EQ(co_await std::move(s), 42);
  }());
}

TEST(Shield, AnErrorAfterTheAwaiterLeftIsMarkedRetrieved) {
  auto loop = asyncio::new_event_loop({.debug = true, .virtual_time = true});
  RecordingHandler handler(*loop);
  loop->run_until_complete([]() -> Coro<void> {
    auto awaiter = []() -> Coro<void> { co_await asyncio::shield(fail_after(1)); };
    Task<void> t = asyncio::create_task(awaiter());
    co_await asyncio::sleep(0.5);
    t.cancel();
    EXPECT_THROW(co_await t, CancelledError);
    co_await asyncio::sleep(1);
  }());
  EXPECT_FALSE(handler.has_message("never retrieved"));
}

// ---- as_completed ------------------------------------------------------------------------------

// test_as_completed
TEST(AsCompleted, YieldsResultsInCompletionOrder) {
  run_virtual([]() -> Coro<void> {
    std::vector<Coro<std::string>> fs;
    fs.push_back(value_after(0.01, "b"));
    fs.push_back(value_after(0.15, "c"));
    fs.push_back(value_after(0.01, "a"));
    std::vector<std::string> values;
    for (auto next : asyncio::as_completed(std::move(fs)))
      values.push_back(co_await std::move(next));
    EXPECT_DOUBLE_EQ(now(), 0.15);
    EXPECT_EQ(values, (std::vector<std::string>{"b", "a", "c"}));
  }());
}

// test_as_completed_with_timeout
TEST(AsCompleted, AfterTheTimeoutElementsThrowTimeoutError) {
  run_virtual([]() -> Coro<void> {
    Task<std::string> a = asyncio::create_task(value_after(0.1, "a"));
    Task<std::string> b = asyncio::create_task(value_after(0.15, "b"));
    std::vector<std::string> values;
    int timeouts = 0;
    for (auto next : asyncio::as_completed(vec(a, b), 0.12s)) {
      try {
        values.push_back(co_await std::move(next));
      } catch (const asyncio::TimeoutError&) {
        ++timeouts;
      }
    }
    EXPECT_EQ(values, std::vector<std::string>{"a"});
    EXPECT_EQ(timeouts, 1);
    EXPECT_DOUBLE_EQ(now(), 0.12);
    EXPECT_EQ(co_await b, "b");  // not cancelled
  }());
}

// test_as_completed_with_unused_timeout
TEST(AsCompleted, AnUnusedTimeoutDoesNothing) {
  run_virtual([]() -> Coro<void> {
    std::vector<Coro<std::string>> fs;
    fs.push_back(value_after(0.01, "a"));
    for (auto next : asyncio::as_completed(std::move(fs), 1s)) {
      EXPECT_EQ(co_await std::move(next), "a");
    }
    co_await asyncio::sleep(2);
  }());
}

// test_as_completed_reverse_wait: elements are not bound to futures.
TEST(AsCompleted, ElementsMayBeAwaitedInAnyOrder) {
  run_virtual([]() -> Coro<void> {
    std::vector<Coro<std::string>> fs;
    fs.push_back(value_after(0.05, "a"));
    fs.push_back(value_after(0.10, "b"));
    auto range = asyncio::as_completed(std::move(fs));
    std::vector<Coro<std::string>> futs(range.begin(), range.end());
    EXPECT_EQ(futs.size(), 2U);
    EXPECT_EQ(co_await std::move(futs[1]), "a");
    EXPECT_DOUBLE_EQ(now(), 0.05);
    EXPECT_EQ(co_await std::move(futs[0]), "b");
    EXPECT_DOUBLE_EQ(now(), 0.10);
  }());
}

// test_as_completed_concurrent: elements awaited concurrently by tasks.
TEST(AsCompleted, ElementsMayBeAwaitedConcurrently) {
  run_virtual([]() -> Coro<void> {
    std::vector<Coro<std::string>> fs;
    fs.push_back(value_after(0.05, "a"));
    fs.push_back(value_after(0.05, "b"));
    auto range = asyncio::as_completed(std::move(fs));
    std::vector<Task<std::string>> tasks;
    for (auto next : range) tasks.push_back(asyncio::create_task(std::move(next)));
    auto [done, pending] = co_await asyncio::wait(tasks);
    std::set<std::string> results;
    for (auto& t : done) results.insert(t.result());
    EXPECT_EQ(results, (std::set<std::string>{"a", "b"}));
  }());
}

// test_as_completed_duplicate_coroutines (with tasks: duplicates count once)
TEST(AsCompleted, DuplicatesCountOnce) {
  run_virtual([]() -> Coro<void> {
    Task<std::string> c = asyncio::create_task(value_after(0, "ham"));
    Task<std::string> s = asyncio::create_task(value_after(0, "spam"));
    std::vector<std::string> result;
    auto range = asyncio::as_completed(vec(c, c, s));
    EXPECT_EQ(range.size(), 2U);
    for (auto next : range) result.push_back(co_await std::move(next));
    EXPECT_EQ(std::set<std::string>(result.begin(), result.end()),
              (std::set<std::string>{"ham", "spam"}));
  }());
}

TEST(AsCompleted, AnElementRethrowsThatChildsError) {
  run_virtual([]() -> Coro<void> {
    std::vector<Coro<void>> fs;
    fs.push_back(fail_after(0.1));
    fs.push_back(nap(0.2));
    int errors = 0;
    int ok = 0;
    for (auto next : asyncio::as_completed(std::move(fs))) {
      try {
        co_await std::move(next);
        ++ok;
      } catch (const std::runtime_error&) {
        ++errors;
        EXPECT_EQ(ok, 0);  // the failure came first
      }
    }
    EXPECT_EQ(errors, 1);
    EXPECT_EQ(ok, 1);
  }());
}

// Queue.get semantics: a consumer woken for a result but cancelled before taking it passes
// the wake-up on.
TEST(AsCompleted, ACancelledConsumerPassesTheResultOn) {
  run_virtual([]() -> Coro<void> {
    Future<std::string> f1, f2;
    auto range = asyncio::as_completed(vec(f1, f2));
    std::vector<Coro<std::string>> elems(range.begin(), range.end());
    Task<std::string> t0 = asyncio::create_task(std::move(elems[0]));
    Task<std::string> t1 = asyncio::create_task(std::move(elems[1]));
    co_await asyncio::sleep(0);  // both consumers wait, t0 first
    f1.set_result("one");        // wakes t0...
    t0.cancel();                 // ...which is cancelled before it takes the result
    EXPECT_THROW(co_await t0, CancelledError);
    EXPECT_EQ(co_await t1, "one");
    f2.set_result("two");
  }());
}

TEST(AsCompleted, EmptyInputIsAnEmptyRange) {
  run_virtual([]() -> Coro<void> {
    auto range = asyncio::as_completed(std::vector<Task<int>>{});
    EXPECT_EQ(range.size(), 0U);
    EXPECT_TRUE(range.begin() == range.end());
    co_return;
  }());
}

// ---- ensure_future -----------------------------------------------------------------------------

// test_ensure_future_future, test_ensure_future_coroutine, test_ensure_future_awaitable
TEST(EnsureFuture, KeepsFuturesAndSchedulesCoroutines) {
  run_virtual([]() -> Coro<void> {
    Future<int> f;
    Future<int> same = asyncio::ensure_future(f);
    EXPECT_TRUE(same == f);
    Task<std::string> t = asyncio::ensure_future(value_after(0.1, "ok"));
    EXPECT_EQ(co_await t, "ok");
    auto g = asyncio::ensure_future(asyncio::gather(value_after(0, "x"), f));
    f.set_result(3);
    EXPECT_EQ(std::get<1>(co_await g), 3);
  }());
}

}  // namespace
