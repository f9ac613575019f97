// Tests for asyncio/futures.hpp: Future<T> states, results, cancellation, done callbacks and
// awaiting a future from a task.
//
// Where a test translates something CPython checks (Lib/test/test_asyncio/test_futures.py,
// BaseFutureTests and BaseFutureDoneCallbackTests), its comment names the Python test.
// Everything runs on virtual-time loops; no test waits for real time.
//
// Order of wake-ups: tests marked "FIFO" rely on asyncio's documented order (callbacks and
// awaiters of one future run in registration order; the loop runs its ready queue in order).
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::CallbackId;
using asyncio::Coro;
using asyncio::Future;
using asyncio_test::new_virtual_loop;
using asyncio_test::RecordingHandler;
using asyncio_test::run_briefly;
using asyncio_test::thrown;

using Bag = std::vector<int>;

/// A done callback that appends `thing` to `bag` (test_futures.py's _make_callback).
auto appender(Bag* bag, int thing) {
  return [bag, thing](Future<std::string>& /*f*/) { bag->push_back(thing); };
}

Coro<int> await_int(Future<int> f) {
  co_return co_await f;
}

Coro<void> await_void(Future<void> f) {
  co_await f;
}

// ---- states, result, exception -----------------------------------------------------------------

// test_initial_state
TEST(Future, NewFutureIsPendingAndNotCancelled) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  EXPECT_FALSE(f.done());
  EXPECT_FALSE(f.cancelled());
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(f.done());
}

TEST(Future, CreateFutureIsBoundToThatLoop) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  EXPECT_EQ(&f.get_loop(), loop.get());
  Future<int> g(*loop);
  EXPECT_EQ(&g.get_loop(), loop.get());
}

// test_constructor_use_running_loop
TEST(Future, DefaultConstructorBindsToTheRunningLoop) {
  bool same = asyncio_test::run_virtual([]() -> Coro<bool> {
    Future<int> f;
    co_return &f.get_loop() == &asyncio::get_running_loop();
  }());
  EXPECT_TRUE(same);
}

// test_constructor_without_loop
TEST(Future, DefaultConstructorWithoutRunningLoopThrowsRuntimeError) {
  EXPECT_THROW({ Future<int> f; }, asyncio::RuntimeError);
}

TEST(Future, CreateFutureOnClosedLoopThrowsRuntimeError) {
  auto loop = new_virtual_loop();
  loop->close();
  EXPECT_THROW((void)loop->create_future<int>(), asyncio::RuntimeError);
}

// test_result
TEST(Future, ResultOfPendingFutureThrowsInvalidStateError) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  EXPECT_THROW((void)f.result(), asyncio::InvalidStateError);
  EXPECT_FALSE(f.done());
}

// test_exception
TEST(Future, ExceptionOfPendingFutureThrowsInvalidStateError) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  EXPECT_THROW((void)f.exception(), asyncio::InvalidStateError);
}

// test_result
TEST(Future, SetResultCompletesWithValue) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  f.set_result(42);
  EXPECT_TRUE(f.done());
  EXPECT_FALSE(f.cancelled());
  EXPECT_EQ(f.result(), 42);
  EXPECT_EQ(f.result(), 42);  // reading it does not consume it
  EXPECT_EQ(f.exception(), nullptr);
  EXPECT_FALSE(f.cancel());
  EXPECT_FALSE(f.cancelled());
}

TEST(Future, SetResultTwiceThrowsInvalidStateErrorAndKeepsFirstValue) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  f.set_result(1);
  EXPECT_THROW(f.set_result(2), asyncio::InvalidStateError);
  EXPECT_THROW(f.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
               asyncio::InvalidStateError);
  EXPECT_EQ(f.result(), 1);
}

// test_exception
TEST(Future, SetExceptionMakesResultRethrowIt) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  auto err = std::make_exception_ptr(std::runtime_error("boom"));
  f.set_exception(err);
  EXPECT_TRUE(f.done());
  EXPECT_FALSE(f.cancelled());
  auto e = thrown<std::runtime_error>([&] { (void)f.result(); });
  ASSERT_TRUE(e.has_value());
  EXPECT_STREQ(e->what(), "boom");
  EXPECT_EQ(f.exception(), err);  // the very same exception object
  EXPECT_THROW(f.set_result(1), asyncio::InvalidStateError);
  EXPECT_THROW(f.set_exception(err), asyncio::InvalidStateError);
  EXPECT_FALSE(f.cancel());
}

TEST(Future, SetExceptionWithNullThrowsValueErrorAndStaysPending) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  EXPECT_THROW(f.set_exception(nullptr), asyncio::ValueError);
  EXPECT_FALSE(f.done());
}

// test_cancel
TEST(Future, CancelledFutureRejectsEverything) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(f.done());
  EXPECT_THROW((void)f.result(), asyncio::CancelledError);
  EXPECT_THROW((void)f.exception(), asyncio::CancelledError);
  EXPECT_THROW(f.set_result(1), asyncio::InvalidStateError);
  EXPECT_THROW(f.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
               asyncio::InvalidStateError);
  EXPECT_FALSE(f.cancel());
}

// test_future_cancel_message_getter
TEST(Future, CancelMessageIsCarriedByCancelledError) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  f.cancel("my message");
  auto e = thrown<asyncio::CancelledError>([&] { (void)f.result(); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "my message");
  EXPECT_STREQ(e->what(), "my message");
  auto e2 = thrown<asyncio::CancelledError>([&] { (void)loop->run_until_complete(f); });
  ASSERT_TRUE(e2.has_value());
  EXPECT_EQ(e2->message(), "my message");
}

TEST(Future, CancelWithoutMessageGivesEmptyMessage) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  f.cancel();
  auto e = thrown<asyncio::CancelledError>([&] { (void)f.exception(); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "");
  EXPECT_STREQ(e->what(), "CancelledError");
}

TEST(Future, VoidFutureCompletesWithSetResult) {
  auto loop = new_virtual_loop();
  Future<void> f = loop->create_future<void>();
  EXPECT_THROW(f.result(), asyncio::InvalidStateError);
  f.set_result();
  EXPECT_TRUE(f.done());
  EXPECT_NO_THROW(f.result());
  EXPECT_EQ(f.exception(), nullptr);
  EXPECT_THROW(f.set_result(), asyncio::InvalidStateError);
}

TEST(Future, CopiesShareOneState) {
  auto loop = new_virtual_loop();
  Future<std::string> f = loop->create_future<std::string>();
  Future<std::string> copy = f;  // NOLINT(performance-unnecessary-copy-initialization)
  Future<std::string> other = loop->create_future<std::string>();
  EXPECT_TRUE(copy == f);
  EXPECT_FALSE(other == f);
  copy.set_result("shared");
  EXPECT_TRUE(f.done());
  EXPECT_EQ(f.result(), "shared");
  EXPECT_FALSE(other.done());
}

TEST(Future, ErrorTypesFollowPythonHierarchy) {
  // Python: CancelledError is a BaseException, InvalidStateError an Exception.
  static_assert(!std::is_base_of_v<std::exception, asyncio::CancelledError>);
  static_assert(std::is_base_of_v<asyncio::Error, asyncio::InvalidStateError>);
  static_assert(std::is_base_of_v<std::runtime_error, asyncio::Error>);
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  f.cancel();
  bool swallowed_by_std_exception = false;
  bool seen_as_cancelled = false;
  try {
    try {
      (void)f.result();
    } catch (const std::exception&) {
      swallowed_by_std_exception = true;
    }
  } catch (const asyncio::CancelledError&) {
    seen_as_cancelled = true;
  }
  EXPECT_FALSE(swallowed_by_std_exception);
  EXPECT_TRUE(seen_as_cancelled);
}

// ---- awaiting a future from a task ----------------------------------------------------------

TEST(Future, AwaitInTaskReturnsResultSetLater) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  loop->call_later(2.5, [f]() mutable { f.set_result(7); });
  EXPECT_EQ(loop->run_until_complete(await_int(f)), 7);
  EXPECT_DOUBLE_EQ(loop->time(), 2.5);
}

TEST(Future, AwaitRethrowsStoredException) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  loop->call_soon(
      [f]() mutable { f.set_exception(std::make_exception_ptr(std::invalid_argument("bad"))); });
  auto e = thrown<std::invalid_argument>([&] { (void)loop->run_until_complete(await_int(f)); });
  ASSERT_TRUE(e.has_value());
  EXPECT_STREQ(e->what(), "bad");
}

Coro<std::string> await_and_report_cancel(Future<int> f) {
  try {
    co_await f;
  } catch (const asyncio::CancelledError& e) {
    co_return "cancelled: " + e.message();
  }
  co_return "not cancelled";
}

// test_cancel_inner_future, seen from the awaiting side
TEST(Future, AwaitCancelledFutureThrowsCancelledErrorWithMessage) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  loop->call_soon([f]() mutable { f.cancel("stop"); });
  EXPECT_EQ(loop->run_until_complete(await_and_report_cancel(f)), "cancelled: stop");
}

Coro<std::vector<int>> await_twice(Future<int> f) {
  std::vector<int> got;
  got.push_back(co_await f);
  got.push_back(co_await f);
  co_return got;
}

// test_yield_from_twice
TEST(Future, AwaitingTwiceReturnsSameResult) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  loop->call_soon([f]() mutable { f.set_result(42); });
  EXPECT_EQ(loop->run_until_complete(await_twice(f)), (std::vector<int>{42, 42}));
}

Coro<bool> await_done_future_then_check(Future<int> f, bool* soon_ran) {
  asyncio::get_running_loop().call_soon([soon_ran] { *soon_ran = true; });
  (void)co_await f;
  co_return *soon_ran;  // false: the await did not give the loop a turn
}

TEST(Future, AwaitingDoneFutureDoesNotYieldToTheLoop) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  f.set_result(1);
  bool soon_ran = false;
  EXPECT_FALSE(loop->run_until_complete(await_done_future_then_check(f, &soon_ran)));
  EXPECT_TRUE(soon_ran);
}

Coro<void> append_when_done(Future<int> f, std::vector<std::string>* log, std::string name) {
  int v = co_await f;
  log->push_back(name + "=" + std::to_string(v));
}

Coro<void> several_waiters(Future<int> f, std::vector<std::string>* log) {
  auto a = asyncio::create_task(append_when_done(f, log, "a"));
  auto b = asyncio::create_task(append_when_done(f, log, "b"));
  auto c = asyncio::create_task(append_when_done(f, log, "c"));
  co_await asyncio::sleep(0);  // all three are parked on f now
  f.set_result(5);
  co_await a;
  co_await b;
  co_await c;
}

// FIFO: awaiters of one future resume in the order they started waiting.
TEST(Future, SeveralTasksAwaitOneFutureAndWakeInOrder) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  std::vector<std::string> log;
  loop->run_until_complete(several_waiters(f, &log));
  EXPECT_EQ(log, (std::vector<std::string>{"a=5", "b=5", "c=5"}));
}

// test_tasks.py test_other_loop_future
TEST(Future, AwaitingFutureOfAnotherLoopThrowsRuntimeError) {
  auto other = new_virtual_loop();
  Future<int> f = other->create_future<int>();
  auto loop = new_virtual_loop();
  auto e = thrown<asyncio::RuntimeError>([&] { (void)loop->run_until_complete(await_int(f)); });
  ASSERT_TRUE(e.has_value());
  EXPECT_NE(std::string(e->what()).find("different loop"), std::string::npos) << e->what();
  EXPECT_FALSE(f.done());  // the foreign future is left alone
}

TEST(Future, RunUntilCompleteWithFutureOfAnotherLoopThrowsValueError) {
  auto other = new_virtual_loop();
  Future<int> f = other->create_future<int>();
  auto loop = new_virtual_loop();
  EXPECT_THROW((void)loop->run_until_complete(f), asyncio::ValueError);
}

TEST(Future, RunUntilCompleteReturnsFutureResult) {
  auto loop = new_virtual_loop();
  Future<std::string> f = loop->create_future<std::string>();
  loop->call_later(1.0, [f]() mutable { f.set_result("late"); });
  EXPECT_EQ(loop->run_until_complete(f), "late");
  EXPECT_DOUBLE_EQ(loop->time(), 1.0);
  EXPECT_EQ(f.result(), "late");  // copied out: the future keeps its value
}

TEST(Future, RunUntilCompleteOfVoidFuture) {
  auto loop = new_virtual_loop();
  Future<void> f = loop->create_future<void>();
  loop->call_later(0.5, [f]() mutable { f.set_result(); });
  loop->run_until_complete(await_void(f));
  EXPECT_TRUE(f.done());
  EXPECT_DOUBLE_EQ(loop->time(), 0.5);
}

Coro<std::unique_ptr<int>> take_unique(Future<std::unique_ptr<int>> f) {
  std::unique_ptr<int> p = co_await std::move(f);
  co_return p;
}

TEST(Future, MoveOnlyResultIsMovedOutByAwaitingAnRvalue) {
  auto loop = new_virtual_loop();
  auto f = loop->create_future<std::unique_ptr<int>>();
  loop->call_soon([f]() mutable { f.set_result(std::make_unique<int>(99)); });
  std::unique_ptr<int> p = loop->run_until_complete(take_unique(f));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 99);
}

TEST(Future, RunUntilCompleteMovesOutMoveOnlyResult) {
  auto loop = new_virtual_loop();
  auto f = loop->create_future<std::unique_ptr<int>>();
  f.set_result(std::make_unique<int>(3));
  std::unique_ptr<int> p = loop->run_until_complete(f);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 3);
}

// ---- done callbacks --------------------------------------------------------------------------

// test_callbacks_invoked_on_set_result
TEST(FutureCallbacks, RunAfterSetResultInRegistrationOrder) {
  auto loop = new_virtual_loop();
  Bag bag;
  auto f = loop->create_future<std::string>();
  f.add_done_callback(appender(&bag, 42));
  f.add_done_callback(appender(&bag, 17));
  EXPECT_TRUE(bag.empty());
  f.set_result("foo");
  run_briefly(*loop);
  EXPECT_EQ(bag, (Bag{42, 17}));
  EXPECT_EQ(f.result(), "foo");
}

TEST(FutureCallbacks, NeverRunInsideSetResult) {
  auto loop = new_virtual_loop();
  Bag bag;
  auto f = loop->create_future<std::string>();
  f.add_done_callback(appender(&bag, 1));
  f.set_result("x");
  EXPECT_TRUE(bag.empty());  // scheduled on the loop, not called
  run_briefly(*loop);
  EXPECT_EQ(bag, (Bag{1}));
}

TEST(FutureCallbacks, OnAClosedLoopAreDroppedAndSetResultRaisesButTheFutureIsDone) {
  // Python: set_result() marks the future finished, then call_soon() on the closed loop raises
  // and the callbacks are gone.
  auto loop = new_virtual_loop();
  Bag bag;
  auto f = loop->create_future<std::string>();
  f.add_done_callback(appender(&bag, 1));
  loop->close();
  EXPECT_THROW(f.set_result("x"), asyncio::RuntimeError);
  EXPECT_TRUE(f.done());
  EXPECT_EQ(f.result(), "x");
  EXPECT_TRUE(bag.empty());
}

// test_callbacks_invoked_on_set_exception
TEST(FutureCallbacks, RunAfterSetException) {
  auto loop = new_virtual_loop();
  Bag bag;
  auto f = loop->create_future<std::string>();
  f.add_done_callback(appender(&bag, 100));
  auto err = std::make_exception_ptr(std::runtime_error("e"));
  f.set_exception(err);
  EXPECT_TRUE(bag.empty());
  run_briefly(*loop);
  EXPECT_EQ(bag, (Bag{100}));
  EXPECT_EQ(f.exception(), err);
}

TEST(FutureCallbacks, RunAfterCancelAndSeeTheCancelledFuture) {
  auto loop = new_virtual_loop();
  auto f = loop->create_future<int>();
  int calls = 0;
  bool saw_cancelled = false;
  f.add_done_callback([&](Future<int>& g) {
    ++calls;
    saw_cancelled = g.cancelled();
  });
  f.cancel();
  EXPECT_EQ(calls, 0);
  run_briefly(*loop);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(saw_cancelled);
}

TEST(FutureCallbacks, ReceiveAHandleToTheSameFuture) {
  auto loop = new_virtual_loop();
  auto f = loop->create_future<int>();
  bool same = false;
  int value = 0;
  f.add_done_callback([&, f](Future<int>& g) {
    same = (g == f);
    value = g.result();
  });
  f.set_result(8);
  run_briefly(*loop);
  EXPECT_TRUE(same);
  EXPECT_EQ(value, 8);
}

// test_callbacks_remove_first_callback
TEST(FutureCallbacks, RemoveFirstCallback) {
  auto loop = new_virtual_loop();
  Bag bag;
  auto f = loop->create_future<std::string>();
  auto cb1 = f.add_done_callback(appender(&bag, 42));
  f.add_done_callback(appender(&bag, 17));
  f.add_done_callback(appender(&bag, 100));
  EXPECT_EQ(f.remove_done_callback(cb1), 1U);
  EXPECT_EQ(f.remove_done_callback(cb1), 0U);
  f.set_result("foo");
  run_briefly(*loop);
  EXPECT_EQ(bag, (Bag{17, 100}));
}

// test_callbacks_remove_first_and_second_callback
TEST(FutureCallbacks, RemoveFirstAndSecondCallback) {
  auto loop = new_virtual_loop();
  Bag bag;
  auto f = loop->create_future<std::string>();
  auto cb1 = f.add_done_callback(appender(&bag, 42));
  auto cb2 = f.add_done_callback(appender(&bag, 17));
  f.add_done_callback(appender(&bag, 100));
  EXPECT_EQ(f.remove_done_callback(cb1), 1U);
  EXPECT_EQ(f.remove_done_callback(cb2), 1U);
  EXPECT_EQ(f.remove_done_callback(cb1), 0U);
  f.set_result("foo");
  run_briefly(*loop);
  EXPECT_EQ(bag, (Bag{100}));
}

// test_callbacks_remove_third_callback
TEST(FutureCallbacks, RemoveThirdCallback) {
  auto loop = new_virtual_loop();
  Bag bag;
  auto f = loop->create_future<std::string>();
  f.add_done_callback(appender(&bag, 42));
  f.add_done_callback(appender(&bag, 17));
  auto cb3 = f.add_done_callback(appender(&bag, 100));
  EXPECT_EQ(f.remove_done_callback(cb3), 1U);
  EXPECT_EQ(f.remove_done_callback(cb3), 0U);
  f.set_result("foo");
  run_briefly(*loop);
  EXPECT_EQ(bag, (Bag{42, 17}));
}

// test_remove_done_callback (ids replace Python's equality on the function object)
TEST(FutureCallbacks, RemoveUnknownIdReturnsZero) {
  auto loop = new_virtual_loop();
  Bag bag;
  auto f = loop->create_future<std::string>();
  auto g = loop->create_future<std::string>();
  auto on_g = g.add_done_callback(appender(&bag, 9));
  f.add_done_callback(appender(&bag, 1));
  EXPECT_EQ(f.remove_done_callback(on_g), 0U);  // belongs to another future
  EXPECT_EQ(f.remove_done_callback(0), 0U);
  f.set_result("a");
  g.set_result("b");
  run_briefly(*loop);
  EXPECT_EQ(bag, (Bag{1, 9}));
}

TEST(FutureCallbacks, IdsAreDistinct) {
  auto loop = new_virtual_loop();
  auto f = loop->create_future<std::string>();
  Bag bag;
  auto a = f.add_done_callback(appender(&bag, 1));
  auto b = f.add_done_callback(appender(&bag, 1));
  auto c = loop->create_future<std::string>().add_done_callback(appender(&bag, 1));
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  EXPECT_NE(a, c);
  EXPECT_NE(a, 0U);
}

TEST(FutureCallbacks, AddedToDoneFutureRunsSoonNotInline) {
  auto loop = new_virtual_loop();
  Bag bag;
  auto f = loop->create_future<std::string>();
  f.set_result("done");
  f.add_done_callback(appender(&bag, 5));
  EXPECT_TRUE(bag.empty());
  run_briefly(*loop);
  EXPECT_EQ(bag, (Bag{5}));
}

TEST(FutureCallbacks, RemoveAfterCompletionReturnsZeroAndCallbackStillRuns) {
  auto loop = new_virtual_loop();
  Bag bag;
  auto f = loop->create_future<std::string>();
  auto id = f.add_done_callback(appender(&bag, 3));
  f.set_result("x");
  EXPECT_EQ(f.remove_done_callback(id), 0U);  // already scheduled (Python: list cleared)
  run_briefly(*loop);
  EXPECT_EQ(bag, (Bag{3}));
}

// test_schedule_callbacks_list_mutation_1
TEST(FutureCallbacks, CallbackRemovingALaterOneDoesNotUnscheduleIt) {
  auto loop = new_virtual_loop();
  Bag bag;
  auto f = loop->create_future<std::string>();
  std::size_t removed = 99;
  CallbackId second = 0;
  f.add_done_callback([&](Future<std::string>& g) {
    bag.push_back(1);
    removed = g.remove_done_callback(second);
  });
  second = f.add_done_callback(appender(&bag, 2));
  f.set_result("x");
  run_briefly(*loop);
  EXPECT_EQ(removed, 0U);
  EXPECT_EQ(bag, (Bag{1, 2}));
}

TEST(FutureCallbacks, CallbackAddedFromACallbackRunsAtALaterIteration) {
  auto loop = new_virtual_loop();
  std::vector<std::string> log;
  auto f = loop->create_future<int>();
  f.add_done_callback([&](Future<int>& g) {
    log.push_back("first");
    g.add_done_callback([&](Future<int>&) { log.push_back("added"); });
  });
  f.add_done_callback([&](Future<int>&) { log.push_back("second"); });
  f.set_result(1);
  run_briefly(*loop);
  // FIFO: "second" was queued before "added" was even registered.
  EXPECT_EQ(log, (std::vector<std::string>{"first", "second", "added"}));
}

// FIFO: completion queues the callbacks, so a call_soon made after set_result runs after them.
TEST(FutureCallbacks, QueuedAtCompletionAheadOfLaterCallSoon) {
  auto loop = new_virtual_loop();
  std::vector<std::string> log;
  auto f = loop->create_future<int>();
  loop->call_soon([&] { log.push_back("soon-before"); });
  f.add_done_callback([&](Future<int>&) { log.push_back("done-cb"); });
  f.set_result(1);
  loop->call_soon([&] { log.push_back("soon-after"); });
  run_briefly(*loop);
  EXPECT_EQ(log, (std::vector<std::string>{"soon-before", "done-cb", "soon-after"}));
}

TEST(FutureCallbacks, ExceptionInCallbackGoesToHandlerAndLoopKeepsRunning) {
  auto loop = new_virtual_loop();
  RecordingHandler handler(*loop);
  Bag bag;
  auto f = loop->create_future<std::string>();
  f.add_done_callback([](Future<std::string>&) { throw std::runtime_error("callback failed"); });
  f.add_done_callback(appender(&bag, 2));
  f.set_result("x");
  bool later = false;
  loop->call_later(1.0, [&] { later = true; });
  EXPECT_NO_THROW(run_briefly(*loop));
  ASSERT_EQ(handler.size(), 1U);
  EXPECT_EQ(asyncio_test::what_of(handler.at(0).exception), "callback failed");
  EXPECT_TRUE(handler.has_message("Exception in callback"));
  EXPECT_EQ(bag, (Bag{2}));  // the next callback still ran
  // The loop is still usable: time moves on and the timer fires.
  auto g = loop->create_future<int>();
  loop->call_later(2.0, [g]() mutable { g.set_result(1); });
  EXPECT_EQ(loop->run_until_complete(g), 1);
  EXPECT_TRUE(later);
  EXPECT_DOUBLE_EQ(loop->time(), 2.0);
}

TEST(FutureCallbacks, MoveOnlyCallableIsAccepted) {
  auto loop = new_virtual_loop();
  auto f = loop->create_future<int>();
  int seen = 0;
  f.add_done_callback(
      [p = std::make_unique<int>(4), &seen](Future<int>& g) { seen = *p + g.result(); });
  f.set_result(10);
  run_briefly(*loop);
  EXPECT_EQ(seen, 14);
}

TEST(FutureCallbacks, DroppingPendingFutureFreesItsCallbacks) {
  auto loop = new_virtual_loop();
  auto token = std::make_shared<int>(0);
  {
    auto f = loop->create_future<int>();
    f.add_done_callback([token](Future<int>&) {});
    EXPECT_EQ(token.use_count(), 2);
  }
  EXPECT_EQ(token.use_count(), 1);
}

TEST(FutureCallbacks, RemovedCallbackIsDestroyedAtOnce) {
  auto loop = new_virtual_loop();
  auto token = std::make_shared<int>(0);
  auto f = loop->create_future<int>();
  auto id = f.add_done_callback([token](Future<int>&) {});
  EXPECT_EQ(token.use_count(), 2);
  EXPECT_EQ(f.remove_done_callback(id), 1U);
  EXPECT_EQ(token.use_count(), 1);
}

TEST(FutureCallbacks, QueuedCallbackIsDroppedWhenLoopCloses) {
  auto loop = new_virtual_loop();
  auto token = std::make_shared<int>(0);
  bool ran = false;
  auto f = loop->create_future<int>();
  f.add_done_callback([token, &ran](Future<int>&) { ran = true; });
  f.set_result(1);  // queued, never run
  loop->close();
  EXPECT_FALSE(ran);
  EXPECT_EQ(token.use_count(), 1);
  EXPECT_EQ(f.result(), 1);
}

TEST(FutureCallbacks, AddDoneCallbackOnClosedLoopThrowsRuntimeError) {
  auto loop = new_virtual_loop();
  auto f = loop->create_future<int>();
  loop->close();
  EXPECT_THROW(f.add_done_callback([](Future<int>&) {}), asyncio::RuntimeError);
}

TEST(FutureCallbacks, CallbackRunsOutsideAnyTask) {
  auto loop = new_virtual_loop();
  auto f = loop->create_future<int>();
  bool had_task = true;
  f.add_done_callback([&](Future<int>&) { had_task = static_cast<bool>(asyncio::current_task()); });
  f.set_result(1);
  run_briefly(*loop);
  EXPECT_FALSE(had_task);
}

}  // namespace
