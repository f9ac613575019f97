// CPython 3.12 conformance: tasks, gather, shield and as_completed.
//
// These translate tests of Lib/test/test_asyncio/test_tasks.py that no other test of ours
// covered (docs/conformance.md lists every one and where it went); each names the Python test
// it follows. Where a translation shows that we differ from CPython, the test stays, skipped with
// "differs from CPython: ...", and docs/conformance.md lists the difference.
#include <exception>
#include <memory>
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
using asyncio::Task;
using asyncio_test::RecordingHandler;
using asyncio_test::run_virtual;

std::unique_ptr<asyncio::EventLoop> virtual_loop(bool debug = false) {
  return asyncio::new_event_loop(asyncio_test::virtual_options(debug));
}

Coro<int> forty_two() {
  co_return 42;
}

// test_as_completed_coroutine_use_running_loop: a coroutine given to as_completed() becomes a
// task of the running loop; its one element yields its result.
TEST(TasksConformance, AsCompletedOfACoroutineUsesTheRunningLoop) {
  const int got = run_virtual([]() -> Coro<int> {
    std::vector<Coro<int>> coros;
    coros.push_back(forty_two());
    auto futs = asyncio::as_completed(std::move(coros));
    EXPECT_EQ(futs.size(), 1U);
    int sum = 0;
    for (auto elem : futs) sum += co_await std::move(elem);
    co_return sum;
  }());
  EXPECT_EQ(got, 42);
}

// test_as_completed_coroutine_without_loop: without a running loop there is nothing to run the
// coroutine on: RuntimeError.
TEST(TasksConformance, AsCompletedOfACoroutineOutsideALoopThrowsRuntimeError) {
  std::vector<Coro<int>> coros;
  coros.push_back(forty_two());
  EXPECT_THROW((void)asyncio::as_completed(std::move(coros)), asyncio::RuntimeError);
}

// test_shield_coroutine_without_loop
TEST(TasksConformance, ShieldOfACoroutineOutsideALoopThrowsRuntimeError) {
  EXPECT_THROW((void)asyncio::shield(forty_two()), asyncio::RuntimeError);
}

// test_constructor_empty_sequence_without_loop (FutureGatherTests): gather() of nothing outside
// a loop is refused like any other gather().
TEST(TasksConformance, GatherOfNothingOutsideALoopThrowsRuntimeError) {
  EXPECT_THROW((void)asyncio::gather(), asyncio::RuntimeError);
}

Coro<void> set_then_sleep(Future<void> started) {
  started.set_result();
  co_await asyncio::sleep(10);
}

/// Awaits a task that a callback cancels with "msg", and turns the CancelledError into a
/// ValueError with the CancelledError nested in it (Python: `raise ValueError() from ex`).
Coro<void> cancelled_inner_becomes_value_error() {
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  Future<void> started = loop.create_future<void>();
  Task<void> inner = asyncio::create_task(set_then_sleep(started));
  co_await started;
  loop.call_soon([inner]() mutable { inner.cancel("msg"); });
  try {
    co_await inner;
  } catch (const CancelledError&) {
    std::throw_with_nested(asyncio::ValueError("cancelled"));
  }
}

// test_cancellation_exception_context: the CancelledError caught from a task cancelled with a
// message carries that message, and an error raised from it keeps it reachable.
TEST(TasksConformance, CancelledErrorCaughtAndRethrownAsAnotherErrorKeepsTheMessage) {
  auto loop = virtual_loop();
  Task<void> task = loop->create_task(cancelled_inner_becomes_value_error());
  std::string message;
  bool nested_cancel = false;
  try {
    loop->run_until_complete(task);
    ADD_FAILURE() << "no ValueError";
  } catch (const asyncio::ValueError& e) {
    message = e.what();
    try {
      std::rethrow_if_nested(e);
    } catch (const CancelledError& c) {
      nested_cancel = c.message() == "msg";
    }
  }
  EXPECT_EQ(message, "cancelled");
  EXPECT_TRUE(nested_cancel);
  EXPECT_TRUE(task.done());
  EXPECT_FALSE(task.cancelled());
}

Coro<Future<std::string>> return_future(Future<std::string> f) {
  co_return f;
}

// test_coroutine_non_gen_function_return_future: a coroutine that returns a future returns that
// future itself, not awaited: the task finishes while the future is still pending.
TEST(TasksConformance, ACoroutineReturningAFutureReturnsItUnawaited) {
  auto loop = virtual_loop();
  Future<std::string> fut = loop->create_future<std::string>();
  Task<Future<std::string>> t1 = loop->create_task(return_future(fut));
  Future<std::string> res = loop->run_until_complete(t1);
  EXPECT_TRUE(t1.done());
  EXPECT_FALSE(res.done());
  res.set_result("test");  // the very same future
  EXPECT_TRUE(fut.done());
  EXPECT_EQ(fut.result(), "test");
}

Coro<void> fail_at_once() {
  throw std::runtime_error("TypeError");
  co_return;
}

// test_tb_logger_not_called_after_cancel: cancel() on a task that already failed returns false,
// but Python's Future.cancel() clears the "exception never retrieved" flag first, so the failure
// is not reported when the task goes. (Our report is debug-mode only, so the loop is in debug
// mode; a second failed task that is not cancelled shows the report itself works.)
TEST(TasksConformance, CancellingAFailedTaskSilencesTheNeverRetrievedReport) {
  auto loop = virtual_loop(/*debug=*/true);
  RecordingHandler handler(*loop);
  loop->run_until_complete([]() -> Coro<void> {
    Task<void> task = asyncio::create_task(fail_at_once(), "cancelled-after-failing");
    co_await asyncio::sleep(0.05);
    EXPECT_TRUE(task.done());
    EXPECT_FALSE(task.cancel());
  }());
  EXPECT_TRUE(handler.empty()) << handler.at(0).message;
  loop->run_until_complete([]() -> Coro<void> {
    Task<void> task = asyncio::create_task(fail_at_once(), "never-looked-at");
    co_await asyncio::sleep(0.05);
  }());
  EXPECT_TRUE(handler.has_message("Task exception was never retrieved"));
}

}  // namespace
