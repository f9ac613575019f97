// Debug mode's "exception was never retrieved" must not fire for an exception that was handed
// to an awaiter (issue 11, bug 6). When a task awaits a failed child, through a plain await,
// gather(return_exceptions), wait_for or shield, and is cancelled after the child finished but
// before it resumed, the awaiter took the exception over: Python's Task.__wakeup (and the
// combinators' done callbacks) call fut.result() / fut.exception() when the child completes,
// which marks it retrieved, so CPython reports nothing. Neither do we.
#include <exception>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio::Task;
using asyncio_test::RecordingHandler;

Coro<int> fail_after(double delay) {
  co_await asyncio::sleep(delay);
  throw asyncio::ValueError("child failed");
}

/// Runs `outer_body(awaited)` as a task and, once it is parked, makes `awaited` fail and (in the
/// same iteration, before the outer task resumes) cancels the outer task. `make` returns the
/// awaited thing and what makes it fail: a task failing at t=1 (then the outer task is
/// cancelled at t=1, right after the task's step), or a future and its set_exception().
/// Returns whether the outer task ended cancelled; fails the test if debug mode reported
/// anything.
template <class Make, class Body>
bool cancel_after_failure(Make make, Body outer_body) {
  return asyncio::run(
      [](Make mk, Body body) -> Coro<bool> {
        RecordingHandler handler;
        bool cancelled = false;
        {
          auto [awaited, fail] = mk();
          Task<void> outer = asyncio::create_task(body(awaited));
          co_await asyncio::sleep(0);  // the outer task parks on `awaited` (started first)
          co_await fail();             // `awaited` fails; the outer task is woken, not resumed
          outer.cancel();
          cancelled = co_await asyncio_test::ends_cancelled(outer);
        }  // the last handles to `awaited` go here, while the loop runs
        co_await asyncio::sleep(0);
        EXPECT_FALSE(handler.has_message("never retrieved"))
            << (handler.empty() ? std::string() : handler.at(0).message);
        co_return cancelled;
      }(std::move(make), std::move(outer_body)),
      asyncio_test::virtual_options(/*debug=*/true));
}

/// A task that fails at t=1; failing it is sleeping until its step has run.
auto failing_task() {
  Task<int> child = asyncio::create_task(fail_after(1));
  auto fail = []() -> Coro<void> { co_await asyncio::sleep(1); };  // wakes right after it
  return std::pair{child, fail};
}

/// A future whose set_exception() wakes the awaiter.
auto failing_future() {
  asyncio::Future<int> fut;
  auto fail = [fut]() mutable -> Coro<void> {
    fut.set_exception(std::make_exception_ptr(asyncio::ValueError("boom")));
    co_return;
  };
  return std::pair{fut, fail};
}

template <class Body>
bool cancel_after_child_failed(Body outer_body) {
  return cancel_after_failure(failing_task, std::move(outer_body));
}

template <class Body>
bool cancel_after_future_failed(Body outer_body) {
  return cancel_after_failure(failing_future, std::move(outer_body));
}

TEST(NeverRetrieved, PlainAwaitCancelledAfterChildFailed) {
  EXPECT_TRUE(
      cancel_after_child_failed([](Task<int> child) -> Coro<void> { (void)co_await child; }));
}

TEST(NeverRetrieved, GatherReturnExceptionsCancelledAfterChildrenFinished) {
  EXPECT_TRUE(cancel_after_child_failed([](Task<int> child) -> Coro<void> {
    (void)co_await asyncio::gather(asyncio::return_exceptions, child);
  }));
}

TEST(NeverRetrieved, GatherCancelledAfterChildFailed) {
  EXPECT_TRUE(cancel_after_child_failed(
      [](Task<int> child) -> Coro<void> { (void)co_await asyncio::gather(child); }));
}

TEST(NeverRetrieved, WaitForCancelledAfterInnerFailed) {
  EXPECT_TRUE(cancel_after_child_failed(
      [](Task<int> child) -> Coro<void> { (void)co_await asyncio::wait_for(child, 10); }));
}

TEST(NeverRetrieved, ShieldCancelledAfterInnerFailed) {
  EXPECT_TRUE(cancel_after_child_failed(
      [](Task<int> child) -> Coro<void> { (void)co_await asyncio::shield(child); }));
}

// The same with a plain Future that fails (set_exception used to clear the mark the waiters
// had just set while it told them; found by the cancellation fuzzer, seed 0x157).
TEST(NeverRetrieved, GatherReturnExceptionsOfAFailedFuture) {
  EXPECT_TRUE(cancel_after_future_failed([](asyncio::Future<int> f) -> Coro<void> {
    (void)co_await asyncio::gather(asyncio::return_exceptions, f);
  }));
}

TEST(NeverRetrieved, WaitForOfAFailedFuture) {
  EXPECT_TRUE(cancel_after_future_failed(
      [](asyncio::Future<int> f) -> Coro<void> { (void)co_await asyncio::wait_for(f, 10); }));
}

TEST(NeverRetrieved, PlainAwaitOfAFailedFuture) {
  EXPECT_TRUE(
      cancel_after_future_failed([](asyncio::Future<int> f) -> Coro<void> { (void)co_await f; }));
}

// The report itself still works: a failed task nobody awaited is reported when dropped.
TEST(NeverRetrieved, UnawaitedFailureIsStillReported) {
  const bool reported = asyncio::run(
      []() -> Coro<bool> {
        RecordingHandler handler;
        {
          Task<int> child = asyncio::create_task(fail_after(1));
          co_await asyncio::sleep(2);
          EXPECT_TRUE(child.done());
        }
        co_return handler.has_message("Task exception was never retrieved");
      }(),
      asyncio_test::virtual_options(/*debug=*/true));
  EXPECT_TRUE(reported);
}

// A failed child of gather(return_exceptions) whose outcome the awaiter read is not reported.
TEST(NeverRetrieved, GatherReturnExceptionsNormalPathNotReported) {
  const bool clean = asyncio::run(
      []() -> Coro<bool> {
        RecordingHandler handler;
        {
          Task<int> child = asyncio::create_task(fail_after(1));
          auto [outcome] = co_await asyncio::gather(asyncio::return_exceptions, child);
          EXPECT_FALSE(outcome.has_value());
        }
        co_await asyncio::sleep(0);
        co_return handler.empty();
      }(),
      asyncio_test::virtual_options(/*debug=*/true));
  EXPECT_TRUE(clean);
}

}  // namespace
