// Tests for asyncio::gather (asyncio/composition.hpp).
//
// Translated from CPython's Lib/test/test_asyncio/test_tasks.py (GatherTestsBase,
// FutureGatherTests, CoroutineGatherTests, test_cancel_gather_*, test_gather_shield); each test
// names the Python test it follows. Everything runs on virtual time: no test waits for real
// time. Our gather reacts to a child's completion at once (Python needs a done callback and a
// loop iteration), so where Python runs the loop before checking done(), we check right away.
#include <coroutine>
#include <memory>
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
using asyncio::Outcome;
using asyncio::Task;
using asyncio::Unit;
using asyncio_test::holds;
using asyncio_test::RecordingHandler;
using asyncio_test::run_virtual;
using namespace std::chrono_literals;

double now() {
  return asyncio::get_running_loop().time();
}

Coro<int> sleeper(double delay, int value) {
  co_await asyncio::sleep(delay);
  co_return value;
}

Coro<int> failer(double delay, std::string what) {
  co_await asyncio::sleep(delay);
  throw std::runtime_error(what);
}

Coro<int> await_future(Future<int> f) {
  co_return co_await f;
}

Coro<void> nap_for(double delay) {
  co_await asyncio::sleep(delay);
}

/// An awaitable that is neither a Coro nor a Future (gather wraps it in a task).
struct ReadyValue {
  int value;
  [[nodiscard]] bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<> /*h*/) const noexcept {}
  [[nodiscard]] int await_resume() const noexcept { return value; }
};

Coro<void> nap(double delay, int* ran) {
  co_await asyncio::sleep(delay);
  ++*ran;
}

/// Waits on `f`, counting in *proof how far it got (test_cancellation_broadcast's inner()).
Coro<void> wait_then_count(Future<void> f, int* proof) {
  co_await f;
  *proof += 1;
}

// ---- results -----------------------------------------------------------------------------------

// test_success (CoroutineGatherTests): results come in argument order, not completion order.
TEST(Gather, ResultsComeInArgumentOrder) {
  auto r = run_virtual([]() -> Coro<std::tuple<int, int, int>> {
    co_return co_await asyncio::gather(sleeper(0.3, 1), sleeper(0.1, 2), sleeper(0.2, 3));
  }());
  EXPECT_EQ(r, std::make_tuple(1, 2, 3));
}

TEST(Gather, ChildrenRunConcurrently) {
  double elapsed = run_virtual([]() -> Coro<double> {
    const double t0 = now();
    co_await asyncio::gather(sleeper(1, 1), sleeper(2, 2), sleeper(3, 3));
    co_return now() - t0;
  }());
  EXPECT_DOUBLE_EQ(elapsed, 3.0);
}

// test_success (FutureGatherTests): futures set out of order; done only when all are.
TEST(Gather, FuturesCompleteTheGatherWhenAllAreDone) {
  run_virtual([]() -> Coro<void> {
    Future<int> a, b, c;
    auto g = asyncio::gather(a, b, c);
    b.set_result(1);
    a.set_result(2);
    co_await asyncio::sleep(0);
    EXPECT_FALSE(g.done());
    c.set_result(3);
    EXPECT_TRUE(g.done());
    EXPECT_EQ(co_await std::move(g), std::make_tuple(2, 1, 3));
  }());
}

// test_constructor_empty_sequence_use_running_loop: gather() of nothing is done at once.
TEST(Gather, NothingGivesAnEmptyTupleAtOnce) {
  run_virtual([]() -> Coro<void> {
    auto g = asyncio::gather();
    EXPECT_TRUE(g.done());
    const double t0 = now();
    std::tuple<> r = co_await std::move(g);
    (void)r;
    EXPECT_EQ(now(), t0);
  }());
}

TEST(Gather, EmptyVectorGivesAnEmptyVectorAtOnce) {
  run_virtual([]() -> Coro<void> {
    std::vector<int> r = co_await asyncio::gather(std::vector<Coro<int>>{});
    EXPECT_TRUE(r.empty());
    std::vector<Outcome<int>> o =
        co_await asyncio::gather(asyncio::return_exceptions, std::vector<Task<int>>{});
    EXPECT_TRUE(o.empty());
  }());
}

TEST(Gather, VoidResultsAreUnit) {
  int ran = 0;
  run_virtual([](int* counter) -> Coro<void> {
    auto [a, b] = co_await asyncio::gather(nap(0.1, counter), sleeper(0.1, 7));
    EXPECT_EQ(a, Unit{});
    EXPECT_EQ(b, 7);
  }(&ran));
  EXPECT_EQ(ran, 1);
}

TEST(Gather, VectorOfCoroutinesKeepsOrder) {
  auto r = run_virtual([]() -> Coro<std::vector<int>> {
    std::vector<Coro<int>> coros;
    for (int i = 0; i < 5; ++i) coros.push_back(sleeper(0.1 * (5 - i), i));
    co_return co_await asyncio::gather(std::move(coros));
  }());
  EXPECT_EQ(r, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(Gather, VectorOfTasksLeavesTheirResultsReadable) {
  run_virtual([]() -> Coro<void> {
    std::vector<Task<int>> tasks;
    for (int i = 0; i < 3; ++i) tasks.push_back(asyncio::create_task(sleeper(0.1, i)));
    std::vector<int> r = co_await asyncio::gather(tasks);
    EXPECT_EQ(r, (std::vector<int>{0, 1, 2}));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(tasks[static_cast<std::size_t>(i)].result(), i);
  }());
}

TEST(Gather, AcceptsFuturesTasksCoroutinesAndOtherAwaitables) {
  run_virtual([]() -> Coro<void> {
    Future<int> f;
    f.set_result(1);
    Task<int> t = asyncio::create_task(sleeper(0.2, 2));
    auto [a, b, c, d] = co_await asyncio::gather(f, t, sleeper(0.1, 3), ReadyValue{4});
    EXPECT_EQ(a + b + c + d, 10);
    EXPECT_EQ(d, 4);
  }());
}

TEST(Gather, MoveOnlyResultsAreMovedOut) {
  run_virtual([]() -> Coro<void> {
    auto make = [](int v) -> Coro<std::unique_ptr<int>> {
      co_await asyncio::sleep(0);
      co_return std::make_unique<int>(v);
    };
    auto [a, b] = co_await asyncio::gather(make(1), make(2));
    EXPECT_EQ(*a + *b, 3);
  }());
}

TEST(Gather, AlreadyDoneChildrenCompleteItAtOnce) {
  run_virtual([]() -> Coro<void> {
    Future<int> a, b;
    a.set_result(1);
    b.set_result(2);
    auto g = asyncio::gather(a, b);
    EXPECT_TRUE(g.done());
    EXPECT_EQ(co_await std::move(g), std::make_tuple(1, 2));
  }());
}

TEST(Gather, AThousandChildren) {
  auto r = run_virtual([]() -> Coro<std::vector<int>> {
    std::vector<Coro<int>> coros;
    for (int i = 0; i < 1000; ++i) coros.push_back(sleeper(0, i));
    co_return co_await asyncio::gather(std::move(coros));
  }());
  ASSERT_EQ(r.size(), 1000U);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(r[static_cast<std::size_t>(i)], i);
}

// test_duplicate_coroutines, with a task: the same child twice yields its result twice.
TEST(Gather, TheSameTaskTwiceGivesItsResultTwice) {
  run_virtual([]() -> Coro<void> {
    Task<int> t = asyncio::create_task(sleeper(0.1, 5));
    auto [a, b, c] = co_await asyncio::gather(t, sleeper(0, 6), t);
    EXPECT_EQ(a, 5);
    EXPECT_EQ(b, 6);
    EXPECT_EQ(c, 5);
  }());
}

// ---- errors ------------------------------------------------------------------------------------

// test_one_exception: the first error completes the gather; the others keep running.
TEST(Gather, FirstErrorPropagatesWhileOthersKeepRunning) {
  int ran = 0;
  run_virtual([](int* counter) -> Coro<void> {
    Task<void> slow = asyncio::create_task(nap(1.0, counter));
    std::string what;
    try {
      co_await asyncio::gather(failer(0.1, "boom"), slow, sleeper(0.2, 1));
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    EXPECT_EQ(what, "boom");
    EXPECT_DOUBLE_EQ(now(), 0.1);
    EXPECT_FALSE(slow.done());
    co_await slow;
  }(&ran));
  EXPECT_EQ(ran, 1);
}

TEST(Gather, TheErrorThatHappensFirstWins) {
  run_virtual([]() -> Coro<void> {
    std::string what;
    try {
      co_await asyncio::gather(failer(0.2, "second"), failer(0.1, "first"));
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    EXPECT_EQ(what, "first");
    co_await asyncio::sleep(0.5);  // let "second" fail too: retrieved by the gather, no report
  }());
}

// test_return_exceptions: errors are gathered as results.
TEST(Gather, ReturnExceptionsGivesOutcomesInOrder) {
  run_virtual([]() -> Coro<void> {
    Future<int> a, b, c, d;
    auto g = asyncio::gather(asyncio::return_exceptions, a, b, c, d);
    b.set_result(1);
    c.set_exception(std::make_exception_ptr(std::runtime_error("zde")));
    a.set_result(3);
    co_await asyncio::sleep(0);
    EXPECT_FALSE(g.done());
    d.set_exception(std::make_exception_ptr(std::logic_error("rte")));
    EXPECT_TRUE(g.done());
    auto [ra, rb, rc, rd] = co_await std::move(g);
    EXPECT_EQ(ra.value(), 3);
    EXPECT_EQ(rb.value(), 1);
    EXPECT_FALSE(rc.has_value());
    EXPECT_TRUE(holds<std::runtime_error>(rc.exception()));
    EXPECT_TRUE(holds<std::logic_error>(rd.exception()));
    EXPECT_THROW((void)rc.value(), std::runtime_error);
  }());
}

TEST(Gather, ReturnExceptionsWaitsForEveryChild) {
  run_virtual([]() -> Coro<void> {
    auto [a, b] =
        co_await asyncio::gather(asyncio::return_exceptions, failer(0.1, "x"), sleeper(2, 9));
    EXPECT_DOUBLE_EQ(now(), 2.0);
    EXPECT_FALSE(a.has_value());
    EXPECT_EQ(b.value(), 9);
  }());
}

TEST(Gather, ReturnExceptionsOverAVector) {
  run_virtual([]() -> Coro<void> {
    std::vector<Coro<int>> coros;
    coros.push_back(sleeper(0.1, 1));
    coros.push_back(failer(0.2, "bad"));
    std::vector<Outcome<int>> r =
        co_await asyncio::gather(asyncio::return_exceptions, std::move(coros));
    EXPECT_EQ(r.size(), 2U);
    if (r.size() != 2) co_return;
    EXPECT_EQ(r[0].value(), 1);
    EXPECT_EQ(asyncio_test::what_of(r[1].exception()), "bad");
  }());
}

// test_one_cancellation: a child cancelled on its own fails the gather with CancelledError,
// but the gather (and its awaiter) is not cancelled.
TEST(Gather, ChildCancelledOnItsOwnSurfacesAsCancelledError) {
  run_virtual([]() -> Coro<void> {
    Future<int> a, b, c;
    auto g = asyncio::gather(a, b, c);
    a.set_result(1);
    b.cancel("b went");
    EXPECT_TRUE(g.done());
    std::string msg = "not thrown";
    try {
      co_await std::move(g);
    } catch (const CancelledError& e) {
      msg = e.message();
    }
    EXPECT_EQ(msg, "b went");
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
    co_await asyncio::sleep(0);  // the awaiter was not cancelled: it keeps running
    c.set_result(3);             // "does nothing"
  }());
}

// test_result_exception_one_cancellation
TEST(Gather, ReturnExceptionsTurnsCancelledChildrenIntoCancelledErrorOutcomes) {
  run_virtual([]() -> Coro<void> {
    Future<int> a, b, c, d;
    auto g = asyncio::gather(asyncio::return_exceptions, a, b, c, d);
    a.set_result(1);
    b.cancel();
    c.set_exception(std::make_exception_ptr(std::runtime_error("rte")));
    EXPECT_FALSE(g.done());
    d.cancel("d");
    auto [ra, rb, rc, rd] = co_await std::move(g);
    EXPECT_EQ(ra.value(), 1);
    EXPECT_TRUE(holds<CancelledError>(rb.exception()));
    EXPECT_TRUE(holds<std::runtime_error>(rc.exception()));
    EXPECT_EQ(asyncio::detail::cancelled_message(rd.exception()), "d");
  }());
}

// test_exception_marking: a later child's error is marked retrieved, so debug mode stays quiet.
TEST(Gather, LaterChildErrorsAreMarkedRetrieved) {
  auto loop = asyncio::new_event_loop({.debug = true, .virtual_time = true});
  RecordingHandler handler(*loop);
  loop->run_until_complete([]() -> Coro<void> {
    try {
      co_await asyncio::gather(failer(0.1, "one"), failer(0.2, "two"));
    } catch (const std::runtime_error&) {
    }
    co_await asyncio::sleep(1);
  }());
  EXPECT_FALSE(handler.has_message("never retrieved")) << handler.messages().size();
}

// "exceptions thrown from done callbacks never lose the child's result"
TEST(Gather, ThrowingDoneCallbackDoesNotLoseTheChildResult) {
  auto loop = asyncio::new_event_loop({.virtual_time = true});
  RecordingHandler handler(*loop);
  auto r = loop->run_until_complete([]() -> Coro<std::tuple<int, int>> {
    Task<int> t = asyncio::create_task(sleeper(0.1, 4));
    t.add_done_callback([](Future<int>& /*f*/) { throw std::runtime_error("callback failed"); });
    co_return co_await asyncio::gather(t, sleeper(0.2, 5));
  }());
  EXPECT_EQ(r, std::make_tuple(4, 5));
  EXPECT_TRUE(handler.has_message("Exception in callback"));
}

// ---- cancellation ------------------------------------------------------------------------------

// test_cancellation_broadcast: cancelling the awaiter cancels every child.
TEST(Gather, CancellingTheAwaiterCancelsEveryChild) {
  run_virtual([]() -> Coro<void> {
    Future<void> waiter;
    int proof = 0;
    Task<void> child1 = asyncio::create_task(wait_then_count(waiter, &proof));
    Task<void> child2 = asyncio::create_task(wait_then_count(waiter, &proof));
    auto outer = [](Task<void> c1, Task<void> c2, int* p) -> Coro<void> {
      co_await asyncio::gather(c1, c2);
      *p += 100;
    };
    Task<void> f = asyncio::create_task(outer(child1, child2, &proof));
    co_await asyncio::sleep(0);
    EXPECT_TRUE(f.cancel());
    EXPECT_THROW(co_await f, CancelledError);
    EXPECT_TRUE(waiter.cancelled());
    EXPECT_TRUE(child1.cancelled());
    EXPECT_TRUE(child2.cancelled());
    EXPECT_EQ(proof, 0);
  }());
}

// test_cancel_gather_2: a cancelled gather with return_exceptions still throws CancelledError,
// and the cancel message reaches the awaiter (Python issue 32684).
TEST(Gather, CancelledGatherWithReturnExceptionsThrowsCancelledErrorWithMessage) {
  run_virtual([]() -> Coro<void> {
    auto looper = []() -> Coro<void> {
      for (int i = 0; i < 100; ++i) {
        co_await asyncio::gather(asyncio::return_exceptions, nap_for(0.05));
      }
    };
    Task<void> t = asyncio::create_task(looper());
    co_await asyncio::sleep(0.2);
    t.cancel("my message");
    std::string msg = "not thrown";
    try {
      co_await t;
    } catch (const CancelledError& e) {
      msg = e.message();
    }
    EXPECT_EQ(msg, "my message");
    EXPECT_TRUE(t.cancelled());
  }());
}

// test_cancel_gather_1: once every child is done, cancelling the gather fails and the result
// is kept (Python issue 26923).
TEST(Gather, CancelAfterEveryChildIsDoneReturnsFalseAndKeepsTheResult) {
  run_virtual([]() -> Coro<void> {
    Future<int> f;
    auto g = asyncio::gather(await_future(f));
    co_await asyncio::sleep(0);  // the child task waits on f
    f.set_result(42);
    co_await asyncio::sleep(0);  // the child finishes
    EXPECT_TRUE(g.done());
    EXPECT_FALSE(g.cancel());
    EXPECT_EQ(std::get<0>(co_await std::move(g)), 42);
  }());
}

TEST(Gather, CancelMethodCancelsTheChildren) {
  run_virtual([]() -> Coro<void> {
    Task<int> a = asyncio::create_task(sleeper(10, 1));
    Task<int> b = asyncio::create_task(sleeper(10, 2));
    auto g = asyncio::gather(a, b);
    co_await asyncio::sleep(0);
    EXPECT_TRUE(g.cancel("stop"));
    EXPECT_THROW(co_await std::move(g), CancelledError);
    EXPECT_TRUE(a.cancelled());
    co_await asyncio::sleep(0);
    EXPECT_TRUE(b.cancelled());
  }());
}

// The gather is done after the first error: cancelling it then cancels nothing.
TEST(Gather, AFailedGatherNoLongerCancelsItsChildren) {
  run_virtual([]() -> Coro<void> {
    Task<int> slow = asyncio::create_task(sleeper(1, 1));
    auto g = asyncio::gather(failer(0.1, "x"), slow);
    co_await asyncio::sleep(0.2);
    EXPECT_TRUE(g.done());
    EXPECT_FALSE(g.cancel());
    EXPECT_THROW(co_await std::move(g), std::runtime_error);
    EXPECT_EQ(co_await slow, 1);
  }());
}

TEST(Gather, CancelledBeforeChildrenStartTheyNeverRun) {
  int ran = 0;
  run_virtual([](int* counter) -> Coro<void> {
    auto g = asyncio::gather(nap(0, counter), nap(0, counter));
    g.cancel();
    EXPECT_THROW(co_await std::move(g), CancelledError);
    co_await asyncio::sleep(0);
  }(&ran));
  EXPECT_EQ(ran, 0);
}

// test_gather_shield: cancelling a gather of shields cancels the shields, not the children.
TEST(Gather, OfShieldsCancelsTheShieldsNotTheirTasks) {
  run_virtual([]() -> Coro<void> {
    Task<int> child1 = asyncio::create_task(sleeper(1, 1));
    Task<int> child2 = asyncio::create_task(sleeper(1, 2));
    auto g = asyncio::gather(asyncio::shield(child1), asyncio::shield(child2));
    co_await asyncio::sleep(0);
    EXPECT_TRUE(g.cancel());
    EXPECT_THROW(co_await std::move(g), CancelledError);
    EXPECT_EQ(co_await child1, 1);
    EXPECT_EQ(co_await child2, 2);
  }());
}

TEST(Gather, OuterCancellationOfTheAwaiterIsCounted) {
  run_virtual([]() -> Coro<void> {
    auto outer = []() -> Coro<void> { co_await asyncio::gather(sleeper(10, 1), sleeper(10, 2)); };
    Task<void> t = asyncio::create_task(outer());
    co_await asyncio::sleep(1);
    t.cancel();
    EXPECT_EQ(t.cancelling(), 1);
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_DOUBLE_EQ(now(), 1.0);
  }());
}

// ---- misuse ------------------------------------------------------------------------------------

TEST(Gather, TheSameCoroutineTwiceThrowsRuntimeError) {
  run_virtual([]() -> Coro<void> {
    Coro<int> c = sleeper(0, 1);
    EXPECT_THROW((void)asyncio::gather(c, c), asyncio::RuntimeError);
    co_await asyncio::sleep(0.1);  // the task made from the first argument still runs fine
  }());
}

TEST(Gather, ACoroutineUsedByAnotherGatherThrowsRuntimeError) {
  run_virtual([]() -> Coro<void> {
    Coro<int> c = sleeper(0, 1);
    auto g1 = asyncio::gather(c);
    EXPECT_THROW((void)asyncio::gather(std::move(c)), asyncio::RuntimeError);
    EXPECT_EQ(std::get<0>(co_await std::move(g1)), 1);
  }());
}

TEST(Gather, AnAlreadyAwaitedCoroutineThrowsRuntimeError) {
  run_virtual([]() -> Coro<void> {
    Coro<int> c = sleeper(0, 1);
    EXPECT_EQ(co_await c, 1);
    EXPECT_THROW((void)asyncio::gather(std::move(c)), asyncio::RuntimeError);
  }());
}

TEST(Gather, AwaitingTwiceThrowsRuntimeError) {
  run_virtual([]() -> Coro<void> {
    auto g = asyncio::gather(sleeper(0, 1));
    co_await g;
    EXPECT_THROW(co_await g, asyncio::RuntimeError);
  }());
}

// test_constructor_heterogenous_futures
TEST(Gather, FuturesOfDifferentLoopsThrowValueError) {
  auto other = asyncio::new_event_loop({.virtual_time = true});
  run_virtual([](asyncio::EventLoop* o) -> Coro<void> {
    Future<int> mine;
    Future<int> theirs(*o);
    EXPECT_THROW((void)asyncio::gather(mine, theirs), asyncio::ValueError);
    co_return;
  }(other.get()));
}

// gather(asyncio.sleep(1), asyncio.sleep(2, result=5)): sleep's awaiter is moved into gather.
TEST(Gather, AcceptsSleepAwaitablesDirectly) {
  run_virtual([]() -> Coro<void> {
    auto [first, second] = co_await asyncio::gather(asyncio::sleep(1), asyncio::sleep(2, 5));
    EXPECT_EQ(first, Unit{});
    EXPECT_EQ(second, 5);
    EXPECT_DOUBLE_EQ(asyncio::get_running_loop().time(), 2.0);
  }());
}

TEST(Gather, OutsideALoopThrowsRuntimeError) {
  EXPECT_THROW((void)asyncio::gather(sleeper(0, 1)), asyncio::RuntimeError);
}

}  // namespace
