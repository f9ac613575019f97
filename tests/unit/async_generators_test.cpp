// Tests for asyncio/generators.hpp: AsyncGenerator<Y> and async_for.
//
// Where a test translates a behaviour that CPython checks in Lib/test/test_asyncgen.py
// (AsyncGenAsyncioTest: aclose, finalisation by shutdown_asyncgens/asyncio.run, cancellation,
// "already running"), its comment names the Python test or quotes the Python it follows.
// Loops run with virtual time (asyncio_test::run_virtual): sleeps cost no real time and
// loop.time() advances by exactly the slept amounts.
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
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

// ---- helpers -----------------------------------------------------------------------------------

/// Adds "~name" to a log when destroyed: shows which locals of a frame were destroyed.
class Tracker {
 public:
  Tracker(LogLines* log, std::string name) : log_(log), name_(std::move(name)) {}
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;
  ~Tracker() { log_->add("~" + name_); }

 private:
  LogLines* log_;
  std::string name_;
};

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

}  // namespace
