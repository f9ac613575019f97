// Tests for asyncio/generators.hpp: AsyncGenerator<Y, S> and async_for.
//
// Where a test translates a behaviour that CPython checks in Lib/test/test_asyncgen.py
// (AsyncGenAsyncioTest: aclose, asend, athrow, finalisation by shutdown_asyncgens/asyncio.run,
// cancellation, "already running"), its comment names the Python test or quotes the Python it
// follows.
// Loops run with virtual time (asyncio_test::run_virtual): sleeps cost no real time and
// loop.time() advances by exactly the slept amounts.
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <asyncio.hpp>
#include <asyncio/generators.hpp>

#include "asyncio_test.hpp"

namespace {

using asyncio::AsyncGenerator;
using asyncio::Coro;
using asyncio_test::LogLines;
using asyncio_test::run_virtual;
using asyncio_test::Tracker;

// ---- helpers -----------------------------------------------------------------------------------

double now() {
  return asyncio::get_running_loop().time();
}

AsyncGenerator<int> range_gen(int n) {
  for (int i = 0; i < n; ++i) co_yield i;
}

/// Logs its start, yields 1, 2, 3, logs "end".
AsyncGenerator<int> logged(LogLines* log) {
  log->add("start");
  Tracker t(log, "frame");
  for (int i = 1; i <= 3; ++i) co_yield i;
  log->add("end");
}

/// Yields 1, 2, then sleeps forever (or until cancelled); RAII and catch(...) log what runs.
AsyncGenerator<int> with_cleanup(LogLines* log) {
  Tracker t(log, "raii");
  try {
    co_yield 1;
    co_yield 2;
    co_await asyncio::sleep(3600);
  } catch (...) {
    log->add("catch");
    throw;
  }
}

template <class E>
Coro<std::string> what_next(AsyncGenerator<int>* g) {
  try {
    (void)co_await g->next();
  } catch (const E& e) {
    co_return std::string(e.what());
  }
  co_return "no exception";
}

// ---- iteration ---------------------------------------------------------------------------------

Coro<void> yields_in_order() {
  auto g = range_gen(3);
  std::vector<int> got;
  while (std::optional<int> i = co_await g.next()) got.push_back(*i);
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2}));
}
TEST(AsyncGenerator, YieldsValuesInOrderThenEmpty) {
  run_virtual(yields_in_order());
}

Coro<void> exhausted_every_time() {
  auto g = range_gen(1);
  EXPECT_EQ(co_await g.next(), std::optional<int>(0));
  for (int k = 0; k < 3; ++k) EXPECT_FALSE(co_await g.next());  // StopAsyncIteration each time
}
TEST(AsyncGenerator, NextAfterExhaustionIsEmptyEveryTime) {
  run_virtual(exhausted_every_time());
}

Coro<void> lazy_start(LogLines* log) {
  auto g = logged(log);
  EXPECT_EQ(log->size(), 0U);
  EXPECT_EQ(co_await g.next(), std::optional<int>(1));
  EXPECT_EQ(log->joined(), "start");
  while (co_await g.next()) {
  }
  EXPECT_EQ(log->joined(), "start end ~frame");
}
TEST(AsyncGenerator, NothingRunsBeforeTheFirstNext) {
  LogLines log;
  run_virtual(lazy_start(&log));
}

Coro<int> add_later(int x) {
  co_await asyncio::sleep(0.5);
  co_return x + 100;
}
AsyncGenerator<int> awaiting_gen() {
  co_yield co_await add_later(1);
  co_await asyncio::sleep(1);
  co_yield 2;
}
Coro<void> awaits_between_yields() {
  auto g = awaiting_gen();
  EXPECT_EQ(co_await g.next(), std::optional<int>(101));
  EXPECT_DOUBLE_EQ(now(), 0.5);
  EXPECT_EQ(co_await g.next(), std::optional<int>(2));
  EXPECT_DOUBLE_EQ(now(), 1.5);
  EXPECT_FALSE(co_await g.next());
}
TEST(AsyncGenerator, BodyAwaitsCorosAndSleepsBetweenYields) {
  run_virtual(awaits_between_yields());
}

AsyncGenerator<std::string> lvalue_yields(std::string* seen) {
  std::string s = "kept";
  co_yield s;  // copied: the consumer moves from the copy
  *seen = s;
  co_yield std::string("moved");
}
Coro<void> lvalue_copied(std::string* seen) {
  auto g = lvalue_yields(seen);
  std::optional<std::string> a = co_await g.next();
  std::optional<std::string> b = co_await g.next();
  EXPECT_EQ(*a, "kept");
  EXPECT_EQ(*b, "moved");
  EXPECT_EQ(*seen, "kept");
}
TEST(AsyncGenerator, LvalueYieldIsCopiedSoTheBodyKeepsItsVariable) {
  std::string seen;
  run_virtual(lvalue_copied(&seen));
}

AsyncGenerator<std::unique_ptr<int>> boxes() {
  auto p = std::make_unique<int>(7);
  co_yield std::move(p);
  co_await asyncio::sleep(0);
  co_yield std::make_unique<int>(8);
}
Coro<void> move_only() {
  auto g = boxes();
  std::optional<std::unique_ptr<int>> a = co_await g.next();
  std::optional<std::unique_ptr<int>> b = co_await g.next();
  EXPECT_EQ(**a, 7);
  EXPECT_EQ(**b, 8);
  EXPECT_FALSE(co_await g.next());
}
TEST(AsyncGenerator, MoveOnlyValues) {
  run_virtual(move_only());
}

// ---- exceptions and misuse ---------------------------------------------------------------------

AsyncGenerator<int> raises_after_one() {
  co_yield 1;
  co_await asyncio::sleep(0);
  throw std::logic_error("boom");
}
Coro<void> body_exception() {
  auto g = raises_after_one();
  EXPECT_EQ(co_await g.next(), std::optional<int>(1));
  EXPECT_EQ(co_await what_next<std::logic_error>(&g), "boom");
  EXPECT_FALSE(co_await g.next());  // raised once; then exhausted
  EXPECT_FALSE(co_await g.next());
}
TEST(AsyncGenerator, ExceptionFromBodySurfacesAtNextOnceThenExhausted) {
  run_virtual(body_exception());
}

Coro<int> failing_coro() {
  co_await asyncio::sleep(1);
  throw asyncio::ValueError("inner");
}
AsyncGenerator<int> awaits_failing() {
  co_yield co_await failing_coro();
}
Coro<void> awaited_coro_exception() {
  auto g = awaits_failing();
  EXPECT_EQ(co_await what_next<asyncio::ValueError>(&g), "inner");
  EXPECT_FALSE(co_await g.next());
}
TEST(AsyncGenerator, ExceptionFromACoroTheBodyAwaitsSurfacesAtNext) {
  run_virtual(awaited_coro_exception());
}

Coro<void> moved_from() {
  auto g = range_gen(2);
  EXPECT_EQ(co_await g.next(), std::optional<int>(0));
  AsyncGenerator<int> h = std::move(g);
  EXPECT_EQ(co_await what_next<asyncio::RuntimeError>(&g),
            "AsyncGenerator is empty (moved from or default-constructed)");
  EXPECT_EQ(co_await h.next(), std::optional<int>(1));  // the new owner continues
  AsyncGenerator<int> empty;
  EXPECT_EQ(co_await what_next<asyncio::RuntimeError>(&empty),
            "AsyncGenerator is empty (moved from or default-constructed)");
  co_await g.aclose();  // closing an empty one is a no-op
}
TEST(AsyncGenerator, IteratingAMovedFromOrDefaultGeneratorThrowsRuntimeError) {
  run_virtual(moved_from());
}

AsyncGenerator<int> slow_gen() {
  co_await asyncio::sleep(1);
  co_yield 1;
  co_yield 2;
}
Coro<std::string> second_consumer(AsyncGenerator<int>* g) {
  co_return co_await what_next<asyncio::RuntimeError>(g);
}
// test_asyncgen.py test_async_gen_asyncio_anext_stopiteration / "already running":
// a second anext() while the first is still pending raises RuntimeError.
Coro<void> concurrent_next() {
  auto g = slow_gen();
  auto first = asyncio::create_task([](AsyncGenerator<int>* gen) -> Coro<std::optional<int>> {
    co_return co_await gen->next();
  }(&g));
  co_await asyncio::sleep(0);  // the first next() is now parked in the body's sleep
  EXPECT_EQ(co_await second_consumer(&g), "anext(): asynchronous generator is already running");
  std::string closing;
  try {
    co_await g.aclose();
  } catch (const asyncio::RuntimeError& e) {
    closing = e.what();
  }
  EXPECT_EQ(closing, "aclose(): asynchronous generator is already running");
  EXPECT_EQ(co_await first, std::optional<int>(1));  // the first next() is unaffected
  EXPECT_EQ(co_await g.next(), std::optional<int>(2));
}
TEST(AsyncGenerator, NextWhileAnotherNextIsPendingThrowsRuntimeError) {
  run_virtual(concurrent_next());
}

AsyncGenerator<int> reentrant(AsyncGenerator<int>** self) {
  std::string err;
  try {
    (void)co_await (*self)->next();
  } catch (const asyncio::RuntimeError& e) {
    err = e.what();
  }
  co_yield err == "anext(): asynchronous generator is already running" ? 1 : 0;
}
Coro<void> next_from_own_body() {
  AsyncGenerator<int>* self = nullptr;
  auto g = reentrant(&self);
  self = &g;
  EXPECT_EQ(co_await g.next(), std::optional<int>(1));
}
TEST(AsyncGenerator, NextFromItsOwnBodyThrowsRuntimeError) {
  run_virtual(next_from_own_body());
}

Coro<std::optional<int>> next_of(AsyncGenerator<int>* g) {
  co_return co_await g->next();
}
Coro<void> successive_tasks() {
  auto g = awaiting_gen();  // 101 after 0.5 s, then 2 after 1 s more
  EXPECT_EQ(co_await asyncio::create_task(next_of(&g)), std::optional<int>(101));
  EXPECT_EQ(co_await asyncio::create_task(next_of(&g)), std::optional<int>(2));
  EXPECT_DOUBLE_EQ(now(), 1.5);
  EXPECT_FALSE(co_await next_of(&g));
}
TEST(AsyncGenerator, CanBeConsumedBySuccessiveTasks) {
  run_virtual(successive_tasks());
}

Coro<void> tree_while_parked() {
  auto g = slow_gen();
  auto consumer = asyncio::create_task(next_of(&g), "consumer");
  co_await asyncio::sleep(0.5);  // the consumer is parked in slow_gen's sleep
  const std::string tree = asyncio::format_task_tree();
  EXPECT_NE(tree.find("slow_gen"), std::string::npos) << tree;
  EXPECT_NE(tree.find("next_of"), std::string::npos) << tree;
  EXPECT_EQ(co_await consumer, std::optional<int>(1));
}
// The body's frame is part of the consumer's coroutine chain while it runs (debug.hpp).
TEST(AsyncGenerator, TaskTreeShowsTheGeneratorFrameWhileItAwaits) {
  run_virtual(tree_while_parked());
}

// `async for v in inner: yield v * 10` (async generators have no `yield from`).
AsyncGenerator<int> times_ten(AsyncGenerator<int> inner, LogLines* log) {
  Tracker t(log, "outer");
  while (std::optional<int> v = co_await inner.next()) co_yield *v * 10;
}
Coro<void> nested(LogLines* log) {
  auto g = times_ten(with_cleanup(log), log);
  EXPECT_EQ(co_await g.next(), std::optional<int>(10));
  EXPECT_EQ(co_await g.next(), std::optional<int>(20));
  auto consumer = asyncio::create_task(next_of(&g));  // parks in the inner generator's sleep
  co_await asyncio::sleep(1);
  consumer.cancel();
  bool cancelled = false;
  try {
    (void)co_await consumer;
  } catch (const asyncio::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(log->joined(), "catch ~raii ~outer");  // through both bodies, innermost first
}
TEST(AsyncGenerator, NestedGeneratorsPassValuesAndCancellationThrough) {
  LogLines log;
  run_virtual(nested(&log));
}

// ---- aclose ------------------------------------------------------------------------------------

// test_async_gen_asyncio_aclose_06..08 style: aclose() at a yield runs `finally` and `except`.
Coro<void> aclose_runs_cleanup(LogLines* log) {
  auto g = with_cleanup(log);
  EXPECT_EQ(co_await g.next(), std::optional<int>(1));
  co_await g.aclose();
  EXPECT_EQ(log->joined(), "catch ~raii");
  EXPECT_FALSE(co_await g.next());  // closed: exhausted
  co_await g.aclose();              // twice: a no-op
  EXPECT_EQ(log->joined(), "catch ~raii");
}
TEST(AsyncGenerator, AcloseRunsCatchBlocksAndDestructors) {
  LogLines log;
  run_virtual(aclose_runs_cleanup(&log));
}

AsyncGenerator<int> sees_generator_exit(LogLines* log) {
  try {
    co_yield 1;
  } catch (const std::exception&) {
    log->add("std::exception");  // GeneratorExit is not one
    throw;
  } catch (const asyncio::GeneratorExit& e) {
    log->add(e.what());
    throw;
  }
}
Coro<void> generator_exit_type(LogLines* log) {
  auto g = sees_generator_exit(log);
  (void)co_await g.next();
  co_await g.aclose();
  EXPECT_EQ(log->joined(), "GeneratorExit");
}
TEST(AsyncGenerator, AcloseThrowsGeneratorExitWhichIsNotAStdException) {
  LogLines log;
  run_virtual(generator_exit_type(&log));
}

// test_async_gen_asyncio_aclose_10: `finally: await asyncio.sleep(0.01)` during aclose.
AsyncGenerator<int> awaits_in_cleanup(LogLines* log) {
  std::exception_ptr err;
  try {
    co_yield 1;
    co_yield 2;
  } catch (...) {
    err = std::current_exception();
  }
  co_await asyncio::sleep(2);  // C++ cannot co_await in a catch block: capture, await, rethrow
  log->add("cleaned at " + std::to_string(now()));
  if (err) std::rethrow_exception(err);
}
Coro<void> aclose_awaits(LogLines* log) {
  auto g = awaits_in_cleanup(log);
  (void)co_await g.next();
  co_await g.aclose();
  EXPECT_EQ(log->joined(), "cleaned at 2.000000");
  EXPECT_DOUBLE_EQ(now(), 2.0);
}
TEST(AsyncGenerator, AcloseLetsTheCleanupAwait) {
  LogLines log;
  run_virtual(aclose_awaits(&log));
}

Coro<void> aclose_unstarted(LogLines* log) {
  auto g = logged(log);
  co_await g.aclose();
  EXPECT_FALSE(co_await g.next());
  EXPECT_EQ(log->size(), 0U);  // the body never ran
}
TEST(AsyncGenerator, AcloseBeforeTheFirstNextRunsNothing) {
  LogLines log;
  run_virtual(aclose_unstarted(&log));
}

Coro<void> aclose_exhausted(LogLines* log) {
  auto g = logged(log);
  while (co_await g.next()) {
  }
  co_await g.aclose();
  EXPECT_EQ(log->joined(), "start end ~frame");
}
TEST(AsyncGenerator, AcloseAfterExhaustionIsANoop) {
  LogLines log;
  run_virtual(aclose_exhausted(&log));
}

// test_async_gen_asyncio_aclose_07/09: `except GeneratorExit: yield` -> RuntimeError.
AsyncGenerator<int> ignores_exit(LogLines* log) {
  Tracker t(log, "raii");
  try {
    co_yield 1;
  } catch (...) {
    log->add("caught");
  }
  co_yield 2;
}
Coro<void> ignored_exit(LogLines* log) {
  auto g = ignores_exit(log);
  (void)co_await g.next();
  std::string err;
  try {
    co_await g.aclose();
  } catch (const asyncio::RuntimeError& e) {
    err = e.what();
  }
  EXPECT_EQ(err, "async generator ignored GeneratorExit");
  EXPECT_EQ(log->joined(), "caught");
  EXPECT_FALSE(co_await g.next());  // finished; the frame goes with the generator
}
TEST(AsyncGenerator, YieldingAfterGeneratorExitThrowsRuntimeError) {
  LogLines log;
  run_virtual(ignored_exit(&log));
  EXPECT_EQ(log.joined(), "caught ~raii");
}

AsyncGenerator<int> returns_on_exit(LogLines* log) {
  try {
    co_yield 1;
  } catch (const asyncio::GeneratorExit&) {
    log->add("return");
    co_return;
  }
}
Coro<void> exit_then_return(LogLines* log) {
  auto g = returns_on_exit(log);
  (void)co_await g.next();
  co_await g.aclose();
  EXPECT_EQ(log->joined(), "return");
}
TEST(AsyncGenerator, BodyThatCatchesGeneratorExitAndReturnsClosesCleanly) {
  LogLines log;
  run_virtual(exit_then_return(&log));
}

// test_async_gen_asyncio_aclose_08: an exception raised by the cleanup propagates from aclose().
AsyncGenerator<int> cleanup_raises() {
  try {
    co_yield 1;
  } catch (...) {
    throw std::logic_error("in cleanup");
  }
}
Coro<void> cleanup_error() {
  auto g = cleanup_raises();
  (void)co_await g.next();
  std::string err;
  try {
    co_await g.aclose();
  } catch (const std::logic_error& e) {
    err = e.what();
  }
  EXPECT_EQ(err, "in cleanup");
  EXPECT_FALSE(co_await g.next());
}
TEST(AsyncGenerator, ExceptionFromCleanupPropagatesFromAclose) {
  run_virtual(cleanup_error());
}

// ---- cancellation ------------------------------------------------------------------------------

Coro<int> consume_all(AsyncGenerator<int>* g, LogLines* log) {
  int n = 0;
  while (std::optional<int> i = co_await g->next()) {
    log->add("got " + std::to_string(*i));
    ++n;
  }
  co_return n;
}
// test_async_gen_asyncio_gc_aclose_09 / cancellation: the consumer is cancelled while the
// generator sleeps; CancelledError is raised at the generator's await, its cleanup runs,
// and the error propagates out of next() and the consumer's task.
Coro<void> cancel_while_sleeping(LogLines* log) {
  auto g = with_cleanup(log);
  auto consumer = asyncio::create_task(consume_all(&g, log));
  co_await asyncio::sleep(5);
  EXPECT_EQ(log->joined(), "got 1 got 2");
  EXPECT_TRUE(consumer.cancel("stop"));
  std::string msg;
  try {
    (void)co_await consumer;
  } catch (const asyncio::CancelledError& e) {
    msg = e.message();
  }
  EXPECT_EQ(msg, "stop");
  EXPECT_TRUE(consumer.cancelled());
  EXPECT_EQ(log->joined(), "got 1 got 2 catch ~raii");
  EXPECT_DOUBLE_EQ(now(), 5.0);
  EXPECT_FALSE(co_await g.next());  // it finished with the CancelledError
}
TEST(AsyncGenerator, CancellingTheConsumerWhileTheGeneratorSleepsPropagatesIntoIt) {
  LogLines log;
  run_virtual(cancel_while_sleeping(&log));
}

AsyncGenerator<int> cleanup_after_cancel(LogLines* log) {
  std::exception_ptr err;
  try {
    co_await asyncio::sleep(10);
    co_yield 1;
  } catch (...) {
    err = std::current_exception();
  }
  co_await asyncio::sleep(1);  // the cancellation was delivered once; this await is fine
  log->add("cleanup done at " + std::to_string(now()));
  if (err) std::rethrow_exception(err);
}
Coro<void> cancel_then_await_cleanup(LogLines* log) {
  auto g = cleanup_after_cancel(log);
  auto consumer = asyncio::create_task(consume_all(&g, log));
  co_await asyncio::sleep(3);
  consumer.cancel();
  try {
    (void)co_await consumer;
  } catch (const asyncio::CancelledError&) {
    log->add("cancelled at " + std::to_string(now()));
  }
}
TEST(AsyncGenerator, CancelledGeneratorMayAwaitInItsCleanupBeforeRethrowing) {
  LogLines log;
  run_virtual(cancel_then_await_cleanup(&log));
  EXPECT_EQ(log.joined(), "cleanup done at 4.000000 cancelled at 4.000000");
}

Coro<void> close_then_mark(AsyncGenerator<int>* g, LogLines* log) {
  co_await g->aclose();
  log->add("closed");  // not reached
}
Coro<void> cancel_during_aclose(LogLines* log) {
  auto g = awaits_in_cleanup(log);  // its cleanup sleeps 2 s
  (void)co_await g.next();
  auto closer = asyncio::create_task(close_then_mark(&g, log));
  co_await asyncio::sleep(1);
  closer.cancel();
  bool cancelled = false;
  try {
    co_await closer;
  } catch (const asyncio::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(log->size(), 0U);       // neither the cleanup's log line nor "closed"
  EXPECT_FALSE(co_await g.next());  // finished
}
TEST(AsyncGenerator, CancellationDuringAcloseCleanupPropagatesFromAclose) {
  LogLines log;
  run_virtual(cancel_during_aclose(&log));
}

Coro<void> slow_consumer(AsyncGenerator<int>* g) {
  (void)co_await g->next();
  co_await asyncio::sleep(100);  // cancelled here, between two next()
}
Coro<void> cancel_between_nexts(LogLines* log) {
  auto g = with_cleanup(log);
  auto consumer = asyncio::create_task(slow_consumer(&g));
  co_await asyncio::sleep(1);
  consumer.cancel();
  try {
    co_await consumer;
  } catch (const asyncio::CancelledError&) {
  }
  EXPECT_EQ(log->size(), 0U);  // the generator, suspended at a co_yield, was not involved
  EXPECT_EQ(co_await g.next(), std::optional<int>(2));
  co_await g.aclose();
  EXPECT_EQ(log->joined(), "catch ~raii");
}
TEST(AsyncGenerator, CancellingTheConsumerBetweenNextsLeavesTheGeneratorUsable) {
  LogLines log;
  run_virtual(cancel_between_nexts(&log));
}

// ---- destruction and finalisation --------------------------------------------------------------

Coro<void> drop_unfinished(LogLines* log) {
  {
    auto g = with_cleanup(log);
    (void)co_await g.next();
  }
  EXPECT_EQ(log->joined(), "~raii");  // destructors run; catch blocks do not
}
TEST(AsyncGenerator, DestroyingAnUnfinishedGeneratorRunsDestructorsOnly) {
  LogLines log;
  run_virtual(drop_unfinished(&log));
}

Coro<void> move_assign(LogLines* log) {
  auto g = with_cleanup(log);
  (void)co_await g.next();
  g = range_gen(1);  // the old frame is destroyed (and unregistered)
  EXPECT_EQ(log->joined(), "~raii");
  EXPECT_EQ(co_await g.next(), std::optional<int>(0));
}
TEST(AsyncGenerator, MoveAssignmentDestroysTheOldFrame) {
  LogLines log;
  run_virtual(move_assign(&log));
  EXPECT_EQ(log.joined(), "~raii");
}

Coro<void> start(AsyncGenerator<int>* g) {
  (void)co_await g->next();
}

// test_async_gen_asyncio_shutdown_01: loop.shutdown_asyncgens() closes unfinished generators,
// running their `finally` (here with an await in it).
TEST(AsyncGenerator, ShutdownAsyncgensClosesUnfinishedGenerators) {
  LogLines log;
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  auto a = awaits_in_cleanup(&log);
  auto b = with_cleanup(&log);
  auto exhausted = range_gen(1);
  auto unstarted = logged(&log);
  loop->run_until_complete(start(&a));
  loop->run_until_complete(start(&b));
  loop->run_until_complete([](AsyncGenerator<int>* g) -> Coro<void> {
    while (co_await g->next()) {
    }
  }(&exhausted));
  EXPECT_EQ(log.size(), 0U);
  loop->run_until_complete(loop->shutdown_asyncgens());
  EXPECT_EQ(log.joined(), "cleaned at 2.000000 catch ~raii");  // in the order they started
  loop->run_until_complete(
      [](AsyncGenerator<int>* g) -> Coro<void> { EXPECT_FALSE(co_await g->next()); }(&a));
  loop->run_until_complete(loop->shutdown_asyncgens());  // nothing left: no-op
  EXPECT_EQ(log.joined(), "cleaned at 2.000000 catch ~raii");
  loop->close();
}

Coro<void> leave_unfinished(AsyncGenerator<int>* out, LogLines* log) {
  *out = awaits_in_cleanup(log);
  EXPECT_EQ(co_await out->next(), std::optional<int>(1));
}
// test_async_gen_asyncio_run_01 style: asyncio.run() finalises what main left unfinished.
TEST(AsyncGenerator, AsyncioRunFinalisesAnUnfinishedGenerator) {
  LogLines log;
  AsyncGenerator<int> g;
  run_virtual(leave_unfinished(&g, &log));
  EXPECT_EQ(log.joined(), "cleaned at 2.000000");
}

Coro<void> destroy_registered(LogLines* log) {
  {
    auto g = with_cleanup(log);
    (void)co_await g.next();
  }  // unregisters itself: shutdown_asyncgens must not see it (ASan would)
  auto h = with_cleanup(log);
  (void)co_await h.next();
  co_await h.aclose();
}
TEST(AsyncGenerator, DestroyedOrClosedGeneratorsAreNotFinalisedAgain) {
  LogLines log;
  run_virtual(destroy_registered(&log));
  EXPECT_EQ(log.joined(), "~raii catch ~raii");
}

TEST(AsyncGenerator, ErrorDuringFinalisationIsReportedToTheExceptionHandler) {
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  asyncio_test::RecordingHandler handler(*loop);
  auto g = cleanup_raises();
  loop->run_until_complete(start(&g));
  loop->run_until_complete(loop->shutdown_asyncgens());
  ASSERT_EQ(handler.size(), 1U);
  EXPECT_EQ(handler.at(0).message, "an error occurred during closing of asynchronous generator");
  loop->close();
}

// ---- async_for ---------------------------------------------------------------------------------

Coro<void> for_plain() {
  std::vector<int> got;
  co_await asyncio::async_for(range_gen(4), [&got](int i) { got.push_back(i); });
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3}));
}
TEST(AsyncFor, CallsAPlainCallableForEachValue) {
  run_virtual(for_plain());
}

Coro<void> for_coro(std::vector<double>* times) {
  co_await asyncio::async_for(range_gen(3), [times](int i) -> Coro<void> {
    co_await asyncio::sleep(i);
    times->push_back(now());
  });
}
TEST(AsyncFor, AwaitsACallableThatReturnsACoro) {
  std::vector<double> times;
  run_virtual(for_coro(&times));
  EXPECT_EQ(times, (std::vector<double>{0, 1, 3}));
}

Coro<void> for_break(LogLines* log) {
  std::vector<int> got;
  co_await asyncio::async_for(awaits_in_cleanup(log), [&got](int i) {
    got.push_back(i);
    return false;  // break
  });
  EXPECT_EQ(got, (std::vector<int>{1}));
  EXPECT_EQ(log->joined(), "cleaned at 2.000000");  // aclose()d before async_for returned
  bool stop = false;
  co_await asyncio::async_for(range_gen(10), [&stop](int i) -> Coro<bool> {
    co_await asyncio::sleep(0);
    stop = i == 2;
    co_return !stop;
  });
  EXPECT_TRUE(stop);
}
TEST(AsyncFor, FalseBreaksAndTheGeneratorIsClosed) {
  LogLines log;
  run_virtual(for_break(&log));
}

Coro<void> for_throw(LogLines* log) {
  std::string err;
  try {
    co_await asyncio::async_for(with_cleanup(log),
                                [](int) { throw asyncio::ValueError("from the loop body"); });
  } catch (const asyncio::ValueError& e) {
    err = e.what();
  }
  EXPECT_EQ(err, "from the loop body");
  EXPECT_EQ(log->joined(), "catch ~raii");
}
TEST(AsyncFor, ExceptionFromTheCallableClosesTheGeneratorAndPropagates) {
  LogLines log;
  run_virtual(for_throw(&log));
}

// ---- the seed, and scale -----------------------------------------------------------------------

// examples/seeds/async_generator_ticker.cpp (PEP 525): yields every `delay` seconds.
AsyncGenerator<int> ticker(double delay, int to) {
  for (int i = 0; i < to; ++i) {
    co_yield i;
    co_await asyncio::sleep(delay);
  }
}
Coro<void> ticker_main(std::vector<std::pair<int, double>>* ticks) {
  auto g = ticker(1, 3);
  while (std::optional<int> i = co_await g.next()) ticks->emplace_back(*i, now());
  ticks->emplace_back(-1, now());  // "ticker finished"
}
TEST(AsyncGenerator, SeedTickerYieldsOnceASecondAtExactLoopTimes) {
  std::vector<std::pair<int, double>> ticks;
  run_virtual(ticker_main(&ticks));
  EXPECT_EQ(ticks, (std::vector<std::pair<int, double>>{{0, 0.0}, {1, 1.0}, {2, 2.0}, {-1, 3.0}}));
}

AsyncGenerator<long> counter() {
  for (long i = 0;; ++i) co_yield i;
}
Coro<long> sum_many(long n) {
  auto g = counter();
  long sum = 0;
  for (long k = 0; k < n; ++k) sum += *co_await g.next();
  co_return sum;
}
TEST(AsyncGenerator, ManyElementsWithoutSuspendingKeepTheStackFlat) {
  constexpr long kN = 300'000;  // deep enough to overflow the stack if each step nested
  EXPECT_EQ(run_virtual(sum_many(kN)), kN * (kN - 1) / 2);
}

// ---- asend, athrow, and steps while the body runs ----------------------------------------------

/// What the body catches in the athrow() tests. Python: class FooEr(Exception)
struct FooEr : std::runtime_error {
  FooEr() : std::runtime_error("FooEr") {}
};

std::string describe_value(int v) {
  return std::to_string(v);
}
std::string describe_value(const std::string& v) {
  return v;
}

/// Awaits one step (next, asend, athrow or aclose) and says how it ended: "value V", "empty",
/// "done" (aclose), or the exception ("RuntimeError: <what>", "FooEr", ...).
template <class Step>
Coro<std::string> outcome(Step step) {
  try {
    if constexpr (std::is_void_v<decltype(step.await_resume())>) {
      co_await step;
      co_return "done";
    } else {
      auto v = co_await step;
      co_return v ? "value " + describe_value(*v) : std::string("empty");
    }
  } catch (const asyncio::RuntimeError& e) {
    co_return std::string("RuntimeError: ") + e.what();
  } catch (const asyncio::ValueError& e) {
    co_return std::string("ValueError: ") + e.what();
  } catch (const FooEr&) {
    co_return "FooEr";
  } catch (const asyncio::CancelledError&) {
    co_return "CancelledError";
  } catch (const asyncio::GeneratorExit&) {
    co_return "GeneratorExit";
  } catch (const std::exception& e) {
    co_return std::string("error: ") + e.what();
  }
}

/// Sleeps `delay`, then fails. Python: sleep_n_crash (1 / 0)
Coro<void> sleep_n_crash(double delay) {
  co_await asyncio::sleep(delay);
  throw std::domain_error("division by zero");
}

/// Awaits a sleep that another callback cancels halfway. Python: sleep_n_crash of asend_03
Coro<void> sleep_n_cancelled(double delay) {
  asyncio::Task<void> fut =
      asyncio::create_task([](double d) -> Coro<void> { co_await asyncio::sleep(d); }(delay));
  asyncio::get_running_loop().call_later(delay / 2, [fut]() mutable { fut.cancel(); });
  co_await fut;
}

/// Python (test_async_gen_asyncio_asend_01..03):
///     async def gen():
///         try:
///             await asyncio.sleep(0.01)
///             v = yield 1
///             await middle(0.01)
///             yield v * 2
///             await asyncio.sleep(0.01)
///         finally:
///             await asyncio.sleep(0.01); await asyncio.sleep(0.01)
///             DONE = 1
AsyncGenerator<int, int> doubler(LogLines* log, Coro<void> (*middle)(double)) {
  std::exception_ptr err;
  try {
    co_await asyncio::sleep(0.01);
    const int v = co_yield 1;
    co_await middle(0.01);
    log->add("after middle");
    co_yield v * 2;
    co_await asyncio::sleep(0.01);
  } catch (...) {
    err = std::current_exception();
  }
  co_await asyncio::sleep(0.01);  // the `finally:` awaits
  co_await asyncio::sleep(0.01);
  log->add("DONE");
  if (err) std::rethrow_exception(err);
}

// test_async_gen_asyncio_asend_01
Coro<void> asend_delivers(LogLines* log) {
  auto g = doubler(log, [](double d) -> Coro<void> { co_await asyncio::sleep(d); });
  EXPECT_EQ(co_await outcome(g.next()), "value 1");  // Python: asend(None)
  EXPECT_EQ(co_await outcome(g.asend(100)), "value 200");
  EXPECT_EQ(co_await outcome(g.asend(5)), "empty");  // StopAsyncIteration
  EXPECT_EQ(log->joined(), "after middle DONE");
  EXPECT_DOUBLE_EQ(now(), 0.05);
}
TEST(AsyncGeneratorSend, AsendDeliversTheValueToTheCoYield) {
  LogLines log;
  run_virtual(asend_delivers(&log));
}

// test_async_gen_asyncio_asend_02
Coro<void> asend_crash(LogLines* log) {
  auto g = doubler(log, sleep_n_crash);
  EXPECT_EQ(co_await outcome(g.next()), "value 1");
  EXPECT_EQ(co_await outcome(g.asend(100)), "error: division by zero");
  EXPECT_EQ(log->joined(), "DONE");  // the clean-up ran, awaits included, before asend() raised
  EXPECT_EQ(co_await outcome(g.next()), "empty");
}
TEST(AsyncGeneratorSend, AnErrorAfterAsendPropagatesFromItAfterTheCleanup) {
  LogLines log;
  run_virtual(asend_crash(&log));
}

// test_async_gen_asyncio_asend_03
Coro<void> asend_cancelled(LogLines* log) {
  auto g = doubler(log, sleep_n_cancelled);
  EXPECT_EQ(co_await outcome(g.next()), "value 1");
  EXPECT_EQ(co_await outcome(g.asend(100)), "CancelledError");
  EXPECT_EQ(log->joined(), "DONE");
}
TEST(AsyncGeneratorSend, ACancellationInsideTheBodyPropagatesFromAsend) {
  LogLines log;
  run_virtual(asend_cancelled(&log));
}

/// Yields v + i for i = 0, 1, ..., n - 1, where v is the value sent into the previous co_yield.
AsyncGenerator<int, int> plus_index(int n) {
  int v = 0;
  for (int i = 0; i < n; ++i) v = co_yield v + i;
}

// test_async_gen_asyncio_anext_05: `v = yield 1; v = yield v; yield v * 100`, driven by send.
Coro<void> next_sends_default() {
  auto g = plus_index(4);
  EXPECT_EQ(co_await g.next(), std::optional<int>(0));
  EXPECT_EQ(co_await g.asend(10), std::optional<int>(11));
  EXPECT_EQ(co_await g.next(), std::optional<int>(2));  // next() sends S{}: 0 + 2
  EXPECT_EQ(co_await g.asend(20), std::optional<int>(23));
  EXPECT_FALSE(co_await g.asend(1));
  std::vector<int> seen;
  co_await asyncio::async_for(plus_index(3), [&seen](int v) { seen.push_back(v); });
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2}));  // async_for uses next(): S{} each time
}
TEST(AsyncGeneratorSend, NextSendsADefaultConstructedValueAsPythonsNone) {
  run_virtual(next_sends_default());
}

// test_async_gen_exception_10: asend() into a just-started generator. Python raises TypeError
// for a value other than None; asend() always sends a value, so it always refuses.
Coro<void> asend_unstarted(LogLines* log) {
  auto g = [](LogLines* lg) -> AsyncGenerator<int, int> {
    lg->add("started");
    co_yield 123;
  }(log);
  EXPECT_EQ(co_await outcome(g.asend(100)),
            "RuntimeError: can't send non-None value to a just-started async generator");
  EXPECT_EQ(log->size(), 0U);
  EXPECT_EQ(co_await outcome(g.next()), "value 123");  // still unstarted: next() starts it
  EXPECT_EQ(log->joined(), "started");
}
TEST(AsyncGeneratorSend, AsendBeforeTheFirstNextThrowsRuntimeErrorAndStartsNothing) {
  LogLines log;
  run_virtual(asend_unstarted(&log));
}

Coro<void> asend_move_only() {
  auto g = []() -> AsyncGenerator<int, std::unique_ptr<int>> {
    std::unique_ptr<int> box = co_yield 0;
    co_yield box ? *box : -1;
    box = co_yield 0;
    co_yield box ? *box : -1;
  }();
  EXPECT_EQ(co_await g.next(), std::optional<int>(0));
  EXPECT_EQ(co_await g.asend(std::make_unique<int>(42)), std::optional<int>(42));
  EXPECT_EQ(co_await g.next(), std::optional<int>(0));
  EXPECT_EQ(co_await g.next(), std::optional<int>(-1));  // next() sent an empty unique_ptr
}
TEST(AsyncGeneratorSend, SentMoveOnlyValueIsMovedIn) {
  run_virtual(asend_move_only());
}

/// Python (test_async_gen_asyncio_athrow_01, _02):
///     async def gen():
///         try:
///             await asyncio.sleep(0.01)
///             try:
///                 v = yield 1
///             except FooEr:
///                 v = 1000
///                 await handler(0.01)
///             yield v * 2
///             await asyncio.sleep(0.01)
///         finally:
///             await asyncio.sleep(0.01); await asyncio.sleep(0.01)
///             DONE = 1
AsyncGenerator<int, int> catches_fooer(LogLines* log, Coro<void> (*handler)(double)) {
  std::exception_ptr err;
  try {
    co_await asyncio::sleep(0.01);
    int v = 0;
    bool caught = false;
    try {
      v = co_yield 1;
    } catch (const FooEr&) {
      v = 1000;
      caught = true;
    }
    if (caught) co_await handler(0.01);  // (no co_await inside a catch block)
    co_yield v * 2;
    co_await asyncio::sleep(0.01);
  } catch (...) {
    err = std::current_exception();
  }
  co_await asyncio::sleep(0.01);
  co_await asyncio::sleep(0.01);
  log->add("DONE");
  if (err) std::rethrow_exception(err);
}

// test_async_gen_asyncio_athrow_01
Coro<void> athrow_caught(LogLines* log) {
  auto g = catches_fooer(log, [](double d) -> Coro<void> { co_await asyncio::sleep(d); });
  EXPECT_EQ(co_await outcome(g.next()), "value 1");
  EXPECT_EQ(co_await outcome(g.athrow(FooEr{})), "value 2000");
  EXPECT_EQ(co_await outcome(g.next()), "empty");
  EXPECT_EQ(log->joined(), "DONE");
}
TEST(AsyncGeneratorThrow, CaughtInsideTheBodyAthrowReturnsTheNextYield) {
  LogLines log;
  run_virtual(athrow_caught(&log));
}

// test_async_gen_asyncio_athrow_02: the handler's await is cancelled; the CancelledError
// unwinds the body (its clean-up awaits) and propagates from athrow().
Coro<void> athrow_then_cancelled(LogLines* log) {
  auto g = catches_fooer(log, sleep_n_cancelled);
  EXPECT_EQ(co_await outcome(g.next()), "value 1");
  EXPECT_EQ(co_await outcome(g.athrow(FooEr{})), "CancelledError");
  EXPECT_EQ(log->joined(), "DONE");
  EXPECT_EQ(co_await outcome(g.next()), "empty");
}
TEST(AsyncGeneratorThrow, ACancellationWhileHandlingPropagatesFromAthrow) {
  LogLines log;
  run_virtual(athrow_then_cancelled(&log));
}

// test_async_gen_asyncio_athrow_03: the body swallows the exception and returns.
Coro<void> athrow_swallowed(LogLines* log) {
  auto g = [](LogLines* lg) -> AsyncGenerator<int> {
    try {
      co_yield 0;
    } catch (...) {  // NOLINT(bugprone-empty-catch): Python's bare `except: pass`
    }
    lg->add("DONE");
  }(log);
  EXPECT_EQ(co_await outcome(g.next()), "value 0");
  EXPECT_EQ(co_await outcome(g.athrow(asyncio::ValueError("v"))), "empty");  // StopAsyncIteration
  EXPECT_EQ(log->joined(), "DONE");
}
TEST(AsyncGeneratorThrow, BodyThatCatchesAndReturnsGivesEmpty) {
  LogLines log;
  run_virtual(athrow_swallowed(&log));
}

/// Python (test_async_gen_asyncio_anext_04):
///     async def foo():
///         yield 1
///         await asyncio.sleep(0.01)
///         try:
///             yield 2
///             yield 3
///         except ZeroDivisionError:
///             yield 1000
///         await asyncio.sleep(0.01)
///         yield 4
AsyncGenerator<int> foo_1234() {
  co_yield 1;
  co_await asyncio::sleep(0.01);
  bool caught = false;
  try {
    co_yield 2;
    co_yield 3;
  } catch (const std::domain_error&) {
    caught = true;
  }
  if (caught) co_yield 1000;
  co_await asyncio::sleep(0.01);
  co_yield 4;
}
// test_async_gen_asyncio_anext_04 (run2), anext_tuple: throw() into the next step.
Coro<void> athrow_resumes_iteration() {
  auto g = foo_1234();
  EXPECT_EQ(co_await outcome(g.next()), "value 1");
  EXPECT_EQ(co_await outcome(g.next()), "value 2");
  EXPECT_EQ(co_await outcome(g.athrow(std::domain_error("ZeroDivisionError"))), "value 1000");
  EXPECT_EQ(co_await outcome(g.next()), "value 4");
  EXPECT_EQ(co_await outcome(g.next()), "empty");
  EXPECT_EQ(co_await outcome(g.next()), "empty");
}
TEST(AsyncGeneratorThrow, IterationContinuesAfterACaughtAthrow) {
  run_virtual(athrow_resumes_iteration());
}

Coro<void> athrow_uncaught(LogLines* log) {
  auto g = with_cleanup(log);  // RAII "raii" and a catch(...) that logs and rethrows
  EXPECT_EQ(co_await outcome(g.next()), "value 1");
  EXPECT_EQ(co_await outcome(g.athrow(FooEr{})), "FooEr");
  EXPECT_EQ(log->joined(), "catch ~raii");
  EXPECT_EQ(co_await outcome(g.next()), "empty");           // finished
  EXPECT_EQ(co_await outcome(g.athrow(FooEr{})), "empty");  // Python 3.12: athrow() gives None
}
TEST(AsyncGeneratorThrow, UncaughtExceptionPropagatesAndFinishesTheGenerator) {
  LogLines log;
  run_virtual(athrow_uncaught(&log));
}

// test_async_gen_exception_11: athrow(GeneratorExit()) is not aclose(): what escapes the body
// propagates to the caller, GeneratorExit included.
Coro<void> athrow_generator_exit() {
  auto g = range_gen(3);
  EXPECT_EQ(co_await outcome(g.next()), "value 0");
  EXPECT_EQ(co_await outcome(g.athrow(asyncio::GeneratorExit{})), "GeneratorExit");
  EXPECT_EQ(co_await outcome(g.next()), "empty");
}
TEST(AsyncGeneratorThrow, AthrowOfGeneratorExitPropagatesFromAthrow) {
  run_virtual(athrow_generator_exit());
}

// Python: athrow() on a generator that has not started raises the exception at once and
// closes the generator; nothing of its body runs.
Coro<void> athrow_unstarted(LogLines* log) {
  auto g = logged(log);
  EXPECT_EQ(co_await outcome(g.athrow(FooEr{})), "FooEr");
  EXPECT_EQ(log->size(), 0U);
  EXPECT_EQ(co_await outcome(g.next()), "empty");
  EXPECT_EQ(co_await outcome(g.aclose()), "done");
  EXPECT_EQ(log->size(), 0U);
}
TEST(AsyncGeneratorThrow, AthrowBeforeTheFirstNextRaisesAtOnceAndRunsNothing) {
  LogLines log;
  run_virtual(athrow_unstarted(&log));
}

// Python 3.12: `await agen.athrow(exc)` on an exhausted or closed generator returns None.
Coro<void> athrow_finished() {
  auto exhausted = range_gen(1);
  (void)co_await exhausted.next();
  EXPECT_FALSE(co_await exhausted.next());
  EXPECT_EQ(co_await outcome(exhausted.athrow(FooEr{})), "empty");
  auto closed = range_gen(3);
  (void)co_await closed.next();
  co_await closed.aclose();
  EXPECT_EQ(co_await outcome(closed.athrow(FooEr{})), "empty");
  EXPECT_EQ(co_await outcome(closed.next()), "empty");
}
TEST(AsyncGeneratorThrow, AthrowAfterTheEndOrAfterAcloseIsEmpty) {
  run_virtual(athrow_finished());
}

Coro<void> athrow_misuse() {
  auto g = range_gen(2);
  (void)co_await g.next();
  EXPECT_EQ(co_await outcome(g.athrow(std::exception_ptr{})),
            "ValueError: athrow() needs an exception, not a null exception_ptr");
  EXPECT_EQ(co_await outcome(g.next()), "value 1");  // untouched
  AsyncGenerator<int> moved = std::move(g);
  EXPECT_EQ(co_await outcome(g.athrow(FooEr{})),
            "RuntimeError: AsyncGenerator is empty (moved from or default-constructed)");
  AsyncGenerator<int, int> empty;
  EXPECT_EQ(co_await outcome(empty.asend(1)),
            "RuntimeError: AsyncGenerator is empty (moved from or default-constructed)");
}
TEST(AsyncGeneratorThrow, NullExceptionIsAValueErrorAndAnEmptyGeneratorARuntimeError) {
  run_virtual(athrow_misuse());
}

/// Echoes twice what it receives, after a second's sleep. Yields 0 first.
AsyncGenerator<int, int> slow_doubler() {
  int v = co_yield 0;
  for (;;) {
    co_await asyncio::sleep(1);
    v = co_yield v * 2;
  }
}

// Python: a step started while another task's step is suspended at an await inside the body
// raises RuntimeError with the name of the method (asend shares anext's message), and leaves
// the generator and the step in flight alone. aclose() is refused the same way: the body is
// not at a `co_yield`, where GeneratorExit could be thrown, but inside another task's await.
Coro<void> steps_while_running() {
  auto g = slow_doubler();
  EXPECT_EQ(co_await g.next(), std::optional<int>(0));
  auto first = asyncio::create_task(outcome(g.asend(5)));
  co_await asyncio::sleep(0.5);  // `first` is parked in the body's sleep
  EXPECT_EQ(co_await outcome(g.next()),
            "RuntimeError: anext(): asynchronous generator is already running");
  EXPECT_EQ(co_await outcome(g.asend(3)),
            "RuntimeError: anext(): asynchronous generator is already running");
  EXPECT_EQ(co_await outcome(g.athrow(FooEr{})),
            "RuntimeError: athrow(): asynchronous generator is already running");
  EXPECT_EQ(co_await outcome(g.aclose()),
            "RuntimeError: aclose(): asynchronous generator is already running");
  EXPECT_EQ(co_await first, "value 10");  // unaffected
  EXPECT_DOUBLE_EQ(now(), 1.0);
  EXPECT_EQ(co_await outcome(g.asend(7)), "value 14");
  EXPECT_EQ(co_await outcome(g.aclose()), "done");
  EXPECT_EQ(co_await outcome(g.next()), "empty");
}
TEST(AsyncGeneratorSteps, AsendAthrowAndAcloseWhileTheBodyAwaitsForAnotherTaskThrowRuntimeError) {
  run_virtual(steps_while_running());
}

using SelfStepping = AsyncGenerator<std::string, int>;
SelfStepping steps_itself(SelfStepping** self) {
  co_yield "started";
  co_yield co_await outcome((*self)->asend(1));
  co_yield co_await outcome((*self)->athrow(FooEr{}));
  co_yield co_await outcome((*self)->aclose());
}
Coro<void> steps_from_own_body() {
  SelfStepping* self = nullptr;
  SelfStepping g = steps_itself(&self);
  self = &g;
  EXPECT_EQ(co_await outcome(g.next()), "value started");
  EXPECT_EQ(co_await outcome(g.next()),
            "value RuntimeError: anext(): asynchronous generator is already running");
  EXPECT_EQ(co_await outcome(g.next()),
            "value RuntimeError: athrow(): asynchronous generator is already running");
  EXPECT_EQ(co_await outcome(g.next()),
            "value RuntimeError: aclose(): asynchronous generator is already running");
  EXPECT_EQ(co_await outcome(g.next()), "empty");
}
TEST(AsyncGeneratorSteps, AsendAthrowAndAcloseFromTheBodyItselfThrowRuntimeError) {
  run_virtual(steps_from_own_body());
}

// Destroying the generator while asend()'s or athrow()'s step awaits in the body lets the step
// finish (as for next()); the frame is destroyed afterwards (ASan checks the "afterwards").
Coro<void> destroyed_during_steps(LogLines* log) {
  auto g = std::make_unique<AsyncGenerator<int, int>>(slow_doubler());
  (void)co_await g->next();
  auto sending = asyncio::create_task(outcome(g->asend(5)));
  co_await asyncio::sleep(0.5);
  g.reset();
  EXPECT_EQ(co_await sending, "value 10");

  auto h = std::make_unique<AsyncGenerator<int, int>>(
      catches_fooer(log, [](double d) -> Coro<void> { co_await asyncio::sleep(d); }));
  (void)co_await h->next();
  auto throwing = asyncio::create_task(outcome(h->athrow(FooEr{})));
  co_await asyncio::sleep(0.005);  // inside the handler's sleep
  h.reset();
  EXPECT_EQ(co_await throwing, "value 2000");
  EXPECT_EQ(log->size(), 0U);  // destroyed at its co_yield: the `finally:` part never ran
}
TEST(AsyncGeneratorSteps, DestroyingTheGeneratorDuringAsendOrAthrowLetsTheStepFinish) {
  LogLines log;
  run_virtual(destroyed_during_steps(&log));
}

/// Awaits `step`, an lvalue, once more; returns the RuntimeError's message (or "no error").
template <class Step>
Coro<std::string> await_again(Step* step) {
  try {
    (void)co_await *step;
  } catch (const asyncio::RuntimeError& e) {
    co_return e.what();
  }
  co_return "no error";
}

// test_async_gen_await_same_anext_coro_twice, test_async_gen_await_same_aclose_coro_twice:
// a step's awaiter is good for one await; the second one raises RuntimeError and does nothing.
Coro<void> awaiting_one_step_twice() {
  auto g = plus_index(5);
  auto first = g.next();
  EXPECT_EQ(co_await first, std::optional<int>(0));
  EXPECT_EQ(co_await await_again(&first), "cannot reuse already awaited __anext__()/asend()");
  auto sending = g.asend(10);
  EXPECT_EQ(co_await sending, std::optional<int>(11));
  EXPECT_EQ(co_await await_again(&sending), "cannot reuse already awaited __anext__()/asend()");
  auto throwing = g.athrow(FooEr{});
  EXPECT_EQ(co_await outcome(std::move(throwing)), "FooEr");
  auto closing = g.aclose();
  co_await closing;
  EXPECT_EQ(co_await await_again(&closing), "cannot reuse already awaited aclose()/athrow()");
  auto throwing_again = g.athrow(FooEr{});
  EXPECT_EQ(co_await throwing_again, std::nullopt);  // finished: empty
  EXPECT_EQ(co_await await_again(&throwing_again),
            "cannot reuse already awaited aclose()/athrow()");
  EXPECT_EQ(co_await g.next(), std::nullopt);  // a new awaiter is fine
}
TEST(AsyncGeneratorSteps, AwaitingOneStepTwiceThrowsRuntimeError) {
  run_virtual(awaiting_one_step_twice());
}

}  // namespace
