// Tests for asyncio/tasks.hpp: cancelling a task. cancel(msg) is a request delivered at the next
// real suspension; what it does to the future or task being awaited (and back); tasks that catch
// or ignore the cancellation; the counters cancelling() and uncancel() and the structured
// time-out blocks they support; messages; a CancelledError that escapes or is raised by the body.
// docs/design/cancellation.md is the contract these tests check.
//
// Mirrors the cancellation tests of CPython's Lib/test/test_asyncio/test_tasks.py (BaseTaskTests:
// test_cancel*, test_cancelling, test_uncancel*, test_yield_future_passes_cancel,
// test_baseexception_during_cancel); a translated test's comment names the Python test.
// Anything involving time runs with virtual time and checks loop.time() exactly.
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio::Future;
using asyncio::Task;
using asyncio::TaskRef;
using asyncio_test::new_virtual_loop;
using asyncio_test::run_briefly;
using asyncio_test::run_virtual;
using asyncio_test::thrown;

// ---- helpers -----------------------------------------------------------------------------------

Coro<int> value_after(double seconds, int v) {
  co_await asyncio::sleep(seconds);
  co_return v;
}

Coro<void> sleep_for(double seconds) {
  co_await asyncio::sleep(seconds);
}

Coro<int> return_int(int v) {
  co_return v;
}

Coro<void> set_flag(bool* flag) {
  *flag = true;
  co_return;
}

template <class T>
Coro<T> await_future(Future<T> f) {
  co_return co_await f;
}

Coro<void> throw_runtime(std::string what) {
  co_await asyncio::sleep(0);
  throw std::runtime_error(what);
}

/// Sleeps; on cancellation records the message in *seen and lets it propagate.
Coro<void> sleep_recording_cancel(double seconds, std::optional<std::string>* seen) {
  try {
    co_await asyncio::sleep(seconds);
  } catch (const asyncio::CancelledError& e) {
    *seen = e.message();
    throw;
  }
}

// test_cancel_with_message_before_starting_task
TEST(TaskCancel, CancelBeforeFirstStepNeverRunsBody) {
  auto loop = new_virtual_loop();
  bool ran = false;
  Task<void> t = loop->create_task(set_flag(&ran));
  EXPECT_TRUE(t.cancel("my message"));
  EXPECT_FALSE(t.done());  // a request, delivered at the next step
  auto e = thrown<asyncio::CancelledError>([&] { loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "my message");
  EXPECT_FALSE(ran);
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(t.cancel());
}

Coro<std::string> cancel_new_task_and_wait() {
  bool ran = false;
  Task<void> t = asyncio::create_task(set_flag(&ran));
  t.cancel("before start");
  std::string msg;
  try {
    co_await t;
  } catch (const asyncio::CancelledError& e) {
    msg = e.message();
  }
  co_return (ran ? "ran:" : "never ran:") + msg;
}

TEST(TaskCancel, CancelBeforeFirstStepFromAnotherTask) {
  EXPECT_EQ(run_virtual(cancel_new_task_and_wait()), "never ran:before start");
}

// test_cancel
TEST(TaskCancel, CancelSleepingTaskWithCallSoon) {
  auto loop = new_virtual_loop();
  Task<int> t = loop->create_task(value_after(10.0, 12));
  loop->call_soon([t]() mutable { t.cancel(); });
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(t.cancel());
  EXPECT_DOUBLE_EQ(loop->time(), 0.0);  // the 10 s timer was removed, not waited for
}

TEST(TaskCancel, CancelWhileSleepingThrowsInsideAtTheAwaitWithMessage) {
  auto loop = new_virtual_loop();
  std::optional<std::string> seen;
  Task<void> t = loop->create_task(sleep_recording_cancel(3600, &seen));
  loop->call_later(0.25, [t]() mutable { t.cancel("stop now"); });
  auto e = thrown<asyncio::CancelledError>([&] { loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "stop now");
  EXPECT_EQ(seen, "stop now");
  EXPECT_TRUE(t.cancelled());
  EXPECT_DOUBLE_EQ(loop->time(), 0.25);
}

Coro<std::string> cancel_sleeper_after(double when) {
  Task<void> sleeping = asyncio::create_task(sleep_for(5000));
  asyncio::get_running_loop().call_later(when, [sleeping]() mutable { sleeping.cancel(); });
  bool cancelled = false;
  try {
    co_await sleeping;
  } catch (const asyncio::CancelledError&) {
    cancelled = true;
  }
  co_return cancelled ? "cancelled" : "slept in";
}

// test_task_cancel_sleeping_task
TEST(TaskCancel, AwaiterOfCancelledSleeperSeesCancelledError) {
  auto loop = new_virtual_loop();
  EXPECT_EQ(loop->run_until_complete(cancel_sleeper_after(0.1)), "cancelled");
  EXPECT_DOUBLE_EQ(loop->time(), 0.1);
}

// test_task_cancel_waiter_future
TEST(TaskCancel, CancelWhileAwaitingFutureCancelsTheFuture) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  Task<int> t = loop->create_task(await_future(f));
  run_briefly(*loop);
  EXPECT_FALSE(f.done());
  t.cancel();
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(t.cancelled());
}

// test_cancel_inner_future
TEST(TaskCancel, CancellingTheAwaitedFutureCancelsTheTask) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  Task<int> t = loop->create_task(await_future(f));
  run_briefly(*loop);
  f.cancel();
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(t.cancelled());
}

// test_cancel_both_task_and_inner_future
TEST(TaskCancel, CancelBothTaskAndInnerFuture) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  Task<int> t = loop->create_task(await_future(f));
  run_briefly(*loop);
  f.cancel();
  t.cancel();
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(t.cancelled());
}

Coro<int> catch_on_second_future(Future<int> fut1, Future<int> fut2) {
  co_await fut1;
  try {
    co_await fut2;
  } catch (const asyncio::CancelledError&) {
    co_return 42;
  }
  co_return 0;
}

// test_cancel_task_catching
TEST(TaskCancel, TaskThatCatchesCancelledErrorIsNotCancelled) {
  auto loop = new_virtual_loop();
  Future<int> fut1 = loop->create_future<int>();
  Future<int> fut2 = loop->create_future<int>();
  Task<int> t = loop->create_task(catch_on_second_future(fut1, fut2));
  run_briefly(*loop);
  fut1.set_result(0);
  run_briefly(*loop);
  EXPECT_TRUE(t.cancel());
  EXPECT_TRUE(fut2.cancelled());
  EXPECT_EQ(loop->run_until_complete(t), 42);
  EXPECT_FALSE(t.cancelled());
  EXPECT_EQ(t.cancelling(), 1);  // the request is still counted until uncancel()
}

Coro<int> ignore_cancel_then_await(Future<int> fut1, Future<int> fut2, Future<int> fut3) {
  co_await fut1;
  try {
    co_await fut2;
  } catch (const asyncio::CancelledError&) {  // NOLINT(bugprone-empty-catch): ignoring it
  }
  co_return co_await fut3;
}

// test_cancel_task_ignoring
TEST(TaskCancel, IgnoredCancellationLetsTheTaskAwaitAgain) {
  auto loop = new_virtual_loop();
  Future<int> fut1 = loop->create_future<int>();
  Future<int> fut2 = loop->create_future<int>();
  Future<int> fut3 = loop->create_future<int>();
  Task<int> t = loop->create_task(ignore_cancel_then_await(fut1, fut2, fut3));
  run_briefly(*loop);
  fut1.set_result(0);
  run_briefly(*loop);
  t.cancel();
  EXPECT_TRUE(fut2.cancelled());
  run_briefly(*loop);
  EXPECT_FALSE(t.done());
  fut3.set_result(42);
  EXPECT_EQ(loop->run_until_complete(t), 42);
  EXPECT_FALSE(fut3.cancelled());
  EXPECT_FALSE(t.cancelled());
}

Coro<int> cancel_self_then_sleep(Task<int>* self) {
  self->cancel();
  co_await asyncio::sleep(100);  // cancelled at once
  co_return 12;
}

// test_cancel_current_task
TEST(TaskCancel, CancelOwnTaskThenAwaitIsCancelledImmediately) {
  auto loop = new_virtual_loop();
  Task<int> t;
  t = loop->create_task(cancel_self_then_sleep(&t));
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(t.cancel());
  EXPECT_DOUBLE_EQ(loop->time(), 0.0);  // the 100 s sleep never ran
}

Coro<int> cancel_self_then_return(Task<int>* self) {
  self->cancel("at end");
  co_return 12;
}

// test_cancel_at_end
TEST(TaskCancel, CancelThenReturnInSameStepCountsAsCancelled) {
  auto loop = new_virtual_loop();
  Task<int> t;
  t = loop->create_task(cancel_self_then_return(&t));
  auto e = thrown<asyncio::CancelledError>([&] { (void)loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "at end");
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(t.cancel());
}

Coro<void> cancel_self_then_await_nested(Task<void>* self, Task<void>* nested, Future<int> fut) {
  *nested = asyncio::create_task([](Future<int> f) -> Coro<void> { co_await f; }(fut));
  co_await asyncio::sleep(0);
  self->cancel();
  co_await *nested;  // must cancel the nested task at once
}

// test_cancel_awaited_task
TEST(TaskCancel, CancelledTaskCancelsTheNextTaskItAwaits) {
  auto loop = new_virtual_loop();
  Future<int> fut = loop->create_future<int>();
  Task<void> task;
  Task<void> nested;
  task = loop->create_task(cancel_self_then_await_nested(&task, &nested, fut));
  EXPECT_THROW(loop->run_until_complete(task), asyncio::CancelledError);
  EXPECT_TRUE(task.cancelled());
  ASSERT_TRUE(static_cast<bool>(nested));
  EXPECT_TRUE(nested.cancelled());
  EXPECT_TRUE(fut.cancelled());
}

Coro<std::string> outer_awaiting_inner(std::optional<std::string>* inner_saw) {
  Task<void> inner = asyncio::create_task(sleep_recording_cancel(60, inner_saw));
  co_await inner;
  co_return "finished";
}

TEST(TaskCancel, CancelPropagatesInwardToTheAwaitedTaskWithMessage) {
  auto loop = new_virtual_loop();
  std::optional<std::string> inner_saw;
  Task<std::string> outer = loop->create_task(outer_awaiting_inner(&inner_saw));
  loop->call_later(5, [outer]() mutable { outer.cancel("shutdown"); });
  auto e = thrown<asyncio::CancelledError>([&] { (void)loop->run_until_complete(outer); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "shutdown");
  EXPECT_EQ(inner_saw, "shutdown");
  EXPECT_TRUE(outer.cancelled());
  EXPECT_DOUBLE_EQ(loop->time(), 5.0);
}

Coro<int> swallow_cancel_and_return(int v) {
  try {
    co_await asyncio::sleep(60);
  } catch (const asyncio::CancelledError&) {  // NOLINT(bugprone-empty-catch)
  }
  co_return v;
}

Coro<int> outer_of_swallowing_inner() {
  Task<int> inner = asyncio::create_task(swallow_cancel_and_return(5));
  co_return co_await inner;
}

// Python: Task.cancel leaves _fut_waiter set "as it may be a Task that catches and ignores the
// cancellation": the outer task then gets the inner's result and is not cancelled.
TEST(TaskCancel, OuterGetsResultWhenAwaitedInnerSwallowsTheCancellation) {
  auto loop = new_virtual_loop();
  Task<int> outer = loop->create_task(outer_of_swallowing_inner());
  loop->call_later(1, [outer]() mutable { outer.cancel(); });
  EXPECT_EQ(loop->run_until_complete(outer), 5);
  EXPECT_FALSE(outer.cancelled());
  EXPECT_EQ(outer.cancelling(), 1);
  EXPECT_DOUBLE_EQ(loop->time(), 1.0);
}

Coro<void> inner_waiter_proof(Future<int> waiter, int* proof) {
  try {
    co_await waiter;
  } catch (const asyncio::CancelledError&) {
    *proof += 1;
    throw;
  }
  ADD_FAILURE() << "got past the waiter in inner()";
}

Coro<void> outer_proof(Future<int> waiter, int* proof) {
  try {
    co_await inner_waiter_proof(waiter, proof);
  } catch (const asyncio::CancelledError&) {
    *proof += 100;  // expect this path
    co_return;
  }
  *proof += 10;
}

// test_yield_future_passes_cancel: cancelling outer() cancels inner() cancels waiter.
TEST(TaskCancel, CancellationPassesThroughNestedCoroutines) {
  auto loop = new_virtual_loop();
  int proof = 0;
  Future<int> waiter = loop->create_future<int>();
  Task<void> t = loop->create_task(outer_proof(waiter, &proof));
  run_briefly(*loop);
  t.cancel();
  loop->run_until_complete(t);
  EXPECT_EQ(proof, 101);
  EXPECT_TRUE(waiter.cancelled());
  EXPECT_FALSE(t.cancelled());  // outer() caught it
}

Coro<void> catch_std_exception_only(bool* caught_by_std) {
  try {
    co_await asyncio::sleep(10);
  } catch (const std::exception&) {
    *caught_by_std = true;
  }
}

// API §8: catch (const std::exception&) never swallows a cancellation.
TEST(TaskCancel, CatchStdExceptionDoesNotSwallowCancelledError) {
  auto loop = new_virtual_loop();
  bool caught_by_std = false;
  Task<void> t = loop->create_task(catch_std_exception_only(&caught_by_std));
  loop->call_later(1, [t]() mutable { t.cancel(); });
  EXPECT_THROW(loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_FALSE(caught_by_std);
  EXPECT_TRUE(t.cancelled());
  EXPECT_DOUBLE_EQ(loop->time(), 1.0);
}

// test_cancel_yield
TEST(TaskCancel, CancelTaskThatYieldsWithSleepZero) {
  auto loop = new_virtual_loop();
  Task<int> t = loop->create_task([]() -> Coro<int> {
    co_await asyncio::sleep(0);
    co_await asyncio::sleep(0);
    co_return 12;
  }());
  run_briefly(*loop);
  t.cancel();
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(t.cancel());
}

TEST(TaskCancel, CancelOfDoneTaskReturnsFalseAndCountsNothing) {
  auto loop = new_virtual_loop();
  Task<int> ok = loop->create_task(return_int(1));
  Task<void> failed = loop->create_task(throw_runtime("x"));
  loop->run_until_complete(ok);
  EXPECT_THROW(loop->run_until_complete(failed), std::runtime_error);
  EXPECT_FALSE(ok.cancel());
  EXPECT_FALSE(failed.cancel());
  EXPECT_EQ(ok.cancelling(), 0);
  EXPECT_EQ(failed.cancelling(), 0);
  EXPECT_FALSE(ok.cancelled());
  EXPECT_EQ(ok.result(), 1);
}

// test_cancelling
TEST(TaskCancel, CancellingCountsRequestsAndEachCancelReturnsTrue) {
  auto loop = new_virtual_loop();
  Task<void> t = loop->create_task(sleep_for(10));
  EXPECT_EQ(t.cancelling(), 0);
  EXPECT_TRUE(t.cancel());
  EXPECT_EQ(t.cancelling(), 1);
  EXPECT_TRUE(t.cancel());  // 3.11: a second request also returns true
  EXPECT_EQ(t.cancelling(), 2);
  EXPECT_THROW(loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_DOUBLE_EQ(loop->time(), 0.0);
}

Coro<void> uncancel_and_sleep_again() {
  try {
    co_await asyncio::sleep(10);
  } catch (const asyncio::CancelledError&) {
    asyncio::current_task().uncancel();
  }
  co_await asyncio::sleep(10);
}

// test_uncancel_basic
TEST(TaskCancel, UncancelResetsCounterAndTaskCanBeCancelledAgain) {
  auto loop = new_virtual_loop();
  Task<void> t = loop->create_task(uncancel_and_sleep_again());
  loop->run_until_complete(sleep_for(0.01));
  EXPECT_TRUE(t.cancel());
  EXPECT_EQ(t.cancelling(), 1);
  EXPECT_FALSE(t.cancelled());
  loop->run_until_complete(sleep_for(0.01));
  EXPECT_EQ(t.cancelling(), 0);  // after uncancel()
  EXPECT_FALSE(t.done());
  EXPECT_TRUE(t.cancel());
  EXPECT_EQ(t.cancelling(), 1);
  EXPECT_THROW(loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(t.cancelled());
  t.uncancel();  // no longer effective once done
  EXPECT_TRUE(t.cancelled());
  EXPECT_TRUE(t.done());
  EXPECT_NEAR(loop->time(), 0.02, 1e-9);
}

TEST(TaskCancel, UncancelNeverGoesBelowZero) {
  auto loop = new_virtual_loop();
  Task<int> t = loop->create_task(return_int(1));
  EXPECT_EQ(t.uncancel(), 0);
  EXPECT_EQ(t.cancelling(), 0);
  t.cancel();
  t.cancel();
  EXPECT_EQ(t.uncancel(), 1);
  EXPECT_EQ(t.uncancel(), 0);
  EXPECT_EQ(t.uncancel(), 0);
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);  // still requested
}

struct RequestOutcome {
  bool timed_out = false;
  bool block_finished = false;
  bool outer_code_reached = false;
};

/// test_uncancel_structured_blocks: a hand-made timeout around a "structured block".
Coro<RequestOutcome> make_request_with_timeout(double sleep_s, double timeout) {
  TaskRef task = asyncio::current_task();
  auto& loop = asyncio::get_running_loop();
  RequestOutcome out;
  auto handle = loop.call_later(timeout, [&out, task]() mutable {
    out.timed_out = true;
    task.cancel();
  });
  std::exception_ptr err;
  try {
    co_await asyncio::sleep(sleep_s);  // the structured block affected by the timeout
    out.block_finished = true;
  } catch (...) {
    err = std::current_exception();
  }
  handle.cancel();
  // Only our own cancellation, when it brings the count back to 0, becomes a time-out.
  if (out.timed_out && task.uncancel() == 0 && asyncio_test::cancel_message_of(err).has_value()) {
    err = nullptr;  // TimeoutError, handled at once
  }
  if (err) std::rethrow_exception(err);
  out.outer_code_reached = true;
  co_await asyncio::sleep(0);
  co_return out;
}

TEST(TaskCancel, UncancelSupportsStructuredTimeoutBlocks) {
  auto loop = new_virtual_loop();
  Task<RequestOutcome> t1 = loop->create_task(make_request_with_timeout(10.0, 0.1));
  RequestOutcome r1 = loop->run_until_complete(t1);
  EXPECT_TRUE(r1.timed_out);
  EXPECT_FALSE(r1.block_finished);
  EXPECT_TRUE(r1.outer_code_reached);
  EXPECT_EQ(t1.cancelling(), 0);
  EXPECT_FALSE(t1.cancelled());
  EXPECT_DOUBLE_EQ(loop->time(), 0.1);

  Task<RequestOutcome> t2 = loop->create_task(make_request_with_timeout(0, 10.0));
  RequestOutcome r2 = loop->run_until_complete(t2);
  EXPECT_FALSE(r2.timed_out);
  EXPECT_TRUE(r2.block_finished);
  EXPECT_TRUE(r2.outer_code_reached);
  EXPECT_EQ(t2.cancelling(), 0);
  EXPECT_DOUBLE_EQ(loop->time(), 0.1);  // the cancelled 10 s timer was not waited for
}

Coro<void> two_cancels_one_delivery(int* deliveries) {
  try {
    co_await asyncio::sleep(10);
  } catch (const asyncio::CancelledError&) {
    ++*deliveries;
  }
  co_await asyncio::sleep(1);  // the second request was not delivered again
}

// Python: the second cancel() finds the sleep already cancelled, sets _must_cancel, and the
// coroutine gets one CancelledError for both.
TEST(TaskCancel, TwoRequestsWhileParkedDeliverOneCancelledError) {
  auto loop = new_virtual_loop();
  int deliveries = 0;
  Task<void> t = loop->create_task(two_cancels_one_delivery(&deliveries));
  run_briefly(*loop);
  EXPECT_TRUE(t.cancel());
  EXPECT_TRUE(t.cancel());
  loop->run_until_complete(t);
  EXPECT_EQ(deliveries, 1);
  EXPECT_FALSE(t.cancelled());
  EXPECT_EQ(t.cancelling(), 2);
  EXPECT_DOUBLE_EQ(loop->time(), 1.0);
}

Coro<int> await_future_then_more(Future<int> f) {
  int v = co_await f;  // the cancellation arrives after f completed, before the task resumed
  co_await asyncio::sleep(5);
  co_return v;
}

// Python: cancel() after the awaited future completed finds _fut_waiter done, sets _must_cancel,
// and __step throws CancelledError at that await.
TEST(TaskCancel, CancelAfterAwaitedFutureCompletedIsDeliveredAtThatAwait) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  Task<int> t = loop->create_task(await_future_then_more(f));
  run_briefly(*loop);
  f.set_result(1);  // wakes t...
  t.cancel();       // ...but it has not run yet
  EXPECT_FALSE(f.cancelled());
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(t.cancelled());
  EXPECT_DOUBLE_EQ(loop->time(), 0.0);
}

Coro<void> raise_cancelled_error_itself() {
  co_await asyncio::sleep(0);
  throw asyncio::CancelledError("self-made");
}

TEST(TaskCancel, CancelledErrorEscapingTheBodyMakesTheTaskCancelled) {
  auto loop = new_virtual_loop();
  Task<void> t = loop->create_task(raise_cancelled_error_itself());
  auto e = thrown<asyncio::CancelledError>([&] { loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "self-made");
  EXPECT_TRUE(t.cancelled());
}

Coro<double> cleanup_then_rethrow() {
  std::exception_ptr err;
  try {
    co_await asyncio::sleep(3600);
  } catch (...) {
    err = std::current_exception();
  }
  co_await asyncio::sleep(2);  // clean-up that awaits (STYLE habit 4)
  if (err) std::rethrow_exception(err);
  co_return 0;
}

TEST(TaskCancel, AwaitingCleanupAfterCatchingThenRethrowingEndsCancelled) {
  auto loop = new_virtual_loop();
  Task<double> t = loop->create_task(cleanup_then_rethrow());
  loop->call_later(1, [t]() mutable { t.cancel("bye"); });
  auto e = thrown<asyncio::CancelledError>([&] { (void)loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "bye");
  EXPECT_TRUE(t.cancelled());
  EXPECT_DOUBLE_EQ(loop->time(), 3.0);  // cancelled at 1, cleaned up for 2 more
}

Coro<std::string> result_of_cancelled_task() {
  Task<void> t = asyncio::create_task(sleep_for(10));
  co_await asyncio::sleep(0);
  t.cancel("my message");
  try {
    co_await t;
  } catch (const asyncio::CancelledError&) {  // NOLINT(bugprone-empty-catch): checked below
  }
  std::string via_result;
  std::string via_exception;
  try {
    t.result();
  } catch (const asyncio::CancelledError& e) {
    via_result = e.message();
  }
  try {
    (void)t.exception();
  } catch (const asyncio::CancelledError& e) {
    via_exception = e.message();
  }
  co_return via_result + "|" + via_exception;
}

// test_cancel_with_message_then_future_result / _exception
TEST(TaskCancel, ResultAndExceptionOfCancelledTaskThrowCancelledErrorWithMessage) {
  EXPECT_EQ(run_virtual(result_of_cancelled_task()), "my message|my message");
}

Coro<int> awaiter_survives_cancelled_inner() {
  Task<void> inner = asyncio::create_task(sleep_for(10));
  co_await asyncio::sleep(0);
  inner.cancel();
  int status = 0;
  try {
    co_await inner;
  } catch (const asyncio::CancelledError&) {
    status = 1;
  }
  co_return status * 10 + asyncio::current_task().cancelling();
}

TEST(TaskCancel, AwaiterOfCancelledTaskIsNotItselfCancelled) {
  EXPECT_EQ(run_virtual(awaiter_survives_cancelled_inner()), 10);  // caught, cancelling() == 0
}

Coro<void> kbi_on_cancel() {
  try {
    co_await asyncio::sleep(10);
  } catch (const asyncio::CancelledError&) {
    throw asyncio::KeyboardInterrupt();
  }
}

// test_baseexception_during_cancel (SystemExit there, KeyboardInterrupt here)
TEST(TaskCancel, KeyboardInterruptRaisedWhileCancellingLeavesTheLoop) {
  auto loop = new_virtual_loop();
  Task<void> t = loop->create_task(kbi_on_cancel());
  run_briefly(*loop);
  t.cancel();
  EXPECT_FALSE(t.done());
  EXPECT_THROW(run_briefly(*loop), asyncio::KeyboardInterrupt);
  EXPECT_TRUE(t.done());
  EXPECT_FALSE(t.cancelled());
  EXPECT_TRUE(asyncio_test::holds<asyncio::KeyboardInterrupt>(t.exception()));
}

Coro<std::string> await_shared_future(Future<int> f) {
  try {
    co_return std::to_string(co_await f);
  } catch (const asyncio::CancelledError& e) {
    co_return "cancelled:" + e.message();
  }
}

// Python semantics: cancelling a task cancels the future it awaits, even when others await it
// too (shield() exists for that).
TEST(TaskCancel, CancellingOneAwaiterCancelsTheSharedFutureForAll) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  Task<std::string> a = loop->create_task(await_shared_future(f));
  Task<std::string> b = loop->create_task(await_shared_future(f));
  run_briefly(*loop);
  a.cancel("only a");
  EXPECT_EQ(loop->run_until_complete(a), "cancelled:only a");
  EXPECT_EQ(loop->run_until_complete(b), "cancelled:only a");
  EXPECT_TRUE(f.cancelled());
}

Coro<std::string> self_cancel_then_await_done_future(Task<std::string>* self, Future<int> done) {
  self->cancel();
  std::string out = "got " + std::to_string(co_await done);  // done: does not suspend
  try {
    co_await asyncio::sleep(1);
  } catch (const asyncio::CancelledError&) {
    out += ", cancelled at the sleep";
  }
  co_return out;
}

// Python: `await fut` on a done future returns without yielding, so a pending request waits for
// the next real suspension.
TEST(TaskCancel, PendingRequestIsDeliveredAtTheNextRealSuspension) {
  auto loop = new_virtual_loop();
  Future<int> done = loop->create_future<int>();
  done.set_result(3);
  Task<std::string> t;
  t = loop->create_task(self_cancel_then_await_done_future(&t, done));
  EXPECT_EQ(loop->run_until_complete(t), "got 3, cancelled at the sleep");
  EXPECT_FALSE(t.cancelled());
  EXPECT_DOUBLE_EQ(loop->time(), 0.0);
}

TEST(TaskCancel, LatestCancelMessageWins) {
  auto loop = new_virtual_loop();
  std::optional<std::string> seen;
  Task<void> t = loop->create_task(sleep_recording_cancel(10, &seen));
  run_briefly(*loop);
  t.cancel("first");
  t.cancel("second");
  auto e = thrown<asyncio::CancelledError>([&] { loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(seen, "second");
  EXPECT_EQ(e->message(), "second");
}

Coro<void> outer_creating_inner(bool* inner_ran) {
  Task<void> inner = asyncio::create_task(set_flag(inner_ran));
  co_await inner;  // parks before inner's first step
}

TEST(TaskCancel, CancellingOuterBeforeInnerStartedMeansInnerBodyNeverRuns) {
  auto loop = new_virtual_loop();
  bool inner_ran = false;
  Task<void> outer = loop->create_task(outer_creating_inner(&inner_ran));
  // One iteration: outer's first step runs and parks on inner, whose first step is queued.
  loop->call_soon([outer]() mutable { outer.cancel("early"); });
  auto e = thrown<asyncio::CancelledError>([&] { loop->run_until_complete(outer); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "early");
  EXPECT_FALSE(inner_ran);
  EXPECT_TRUE(outer.cancelled());
}

}  // namespace
