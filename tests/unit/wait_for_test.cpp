// Tests for asyncio::wait_for (asyncio/composition.hpp).
//
// Translated from CPython's Lib/test/test_asyncio/test_waitfor.py (3.11 and the 3.12+ additions:
// test_wait_for_cancel_suppressed, test_wait_for_issue86296, the new
// test_wait_for_self_cancellation); each test names the Python test it follows. SlowTask's
// time.monotonic() becomes the loop's (virtual) clock, so nothing waits for real time.
// As in 3.12, a coroutine given to wait_for runs inside the awaiting task (under a timeout());
// a task or future is waited for by wait_for's own engine. wait_for_inline_test.cpp has the
// tests of the coroutine case that have no counterpart in test_waitfor.py.
#include <chrono>
#include <cmath>
#include <limits>
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
using asyncio::Task;
using asyncio::TimeoutError;
using asyncio_test::run_virtual;
using namespace std::chrono_literals;

constexpr double kEpsilon = 0.0001;  // test_waitfor.py's _EPSILON

double now() {
  return asyncio::get_running_loop().time();
}

/// Runs for 0.2 s of loop time, ignoring cancel requests (test_waitfor.py's SlowTask).
struct SlowTask {
  static constexpr double kTaskTimeout = 0.2;
  bool exited = false;

  Coro<void> run() {
    const double exit_at = now() + kTaskTimeout;
    for (;;) {
      const double to_sleep = exit_at - now();
      if (to_sleep <= 0) break;
      try {
        co_await asyncio::sleep(to_sleep);
      } catch (const CancelledError&) {  // ignored on purpose
      }
    }
    exited = true;
  }
};

/// Sleeps `delay`, setting *running while it does (test_wait_for's foo()).
Coro<std::string> foo(double delay, bool* running) {
  *running = true;
  struct Finally {
    bool* flag;
    explicit Finally(bool* f) : flag(f) {}
    Finally(const Finally&) = delete;
    Finally& operator=(const Finally&) = delete;
    ~Finally() { *flag = false; }
  } finally{running};
  co_await asyncio::sleep(delay);
  co_return "done";
}

/// On cancellation, takes kEpsilon more before re-raising; sets *done at the end either way
/// (test_wait_for_waits_for_task_cancellation's inner()).
Coro<void> slow_to_cancel(bool* done) {
  std::exception_ptr err;
  try {
    co_await asyncio::sleep(10);
  } catch (...) {
    err = std::current_exception();
  }
  if (err) co_await asyncio::sleep(kEpsilon);
  *done = true;
  if (err) std::rethrow_exception(err);
}

Coro<int> value_after(double delay, int value) {
  co_await asyncio::sleep(delay);
  co_return value;
}

Coro<int> await_future(Future<int> f) {
  co_return co_await f;
}

// ---- results and time-outs ---------------------------------------------------------------------

TEST(WaitFor, ReturnsTheResultWhenInTime) {
  run_virtual([]() -> Coro<void> {
    EXPECT_EQ(co_await asyncio::wait_for(value_after(0.5, 3), 1.0), 3);
    EXPECT_DOUBLE_EQ(now(), 0.5);
  }());
}

TEST(WaitFor, AcceptsChronoDurationsAndSeconds) {
  run_virtual([]() -> Coro<void> {
    EXPECT_EQ(co_await asyncio::wait_for(value_after(0.1, 1), 200ms), 1);
    EXPECT_EQ(co_await asyncio::wait_for(value_after(0.1, 2), 1), 2);
    EXPECT_THROW(co_await asyncio::wait_for(value_after(1, 3), 0.5s), TimeoutError);
  }());
}

// test_wait_for: the task is cancelled at the time-out and has finished before TimeoutError.
TEST(WaitFor, TimeoutCancelsTheTaskAndWaitsForIt) {
  run_virtual([]() -> Coro<void> {
    bool running = false;
    Task<std::string> fut = asyncio::create_task(foo(10, &running));
    const double t0 = now();
    EXPECT_THROW(co_await asyncio::wait_for(fut, 0.1), TimeoutError);
    EXPECT_DOUBLE_EQ(now() - t0, 0.1);
    EXPECT_TRUE(fut.done());
    EXPECT_TRUE(fut.cancelled());
    EXPECT_FALSE(running);
  }());
}

TEST(WaitFor, TimeoutOnAFutureCancelsIt) {
  run_virtual([]() -> Coro<void> {
    Future<int> f;
    EXPECT_THROW(co_await asyncio::wait_for(f, 1), TimeoutError);
    EXPECT_TRUE(f.cancelled());
  }());
}

TEST(WaitFor, InnerErrorPropagates) {
  run_virtual([]() -> Coro<void> {
    auto fail = []() -> Coro<int> {
      co_await asyncio::sleep(0.1);
      throw std::runtime_error("inner");
    };
    EXPECT_THROW(co_await asyncio::wait_for(fail(), 1), std::runtime_error);
  }());
}

// test_asyncio_wait_for_timeout: a coroutine that ignores the cancellation is waited for; it
// returns normally, so wait_for returns normally too.
TEST(WaitFor, TimedOutCoroutineThatIgnoresCancellationIsWaitedFor) {
  run_virtual([]() -> Coro<void> {
    SlowTask t;
    co_await asyncio::wait_for(t.run(), SlowTask::kTaskTimeout / 2);
    EXPECT_TRUE(t.exited);
    EXPECT_DOUBLE_EQ(now(), SlowTask::kTaskTimeout);
  }());
}

// test_asyncio_wait_for_cancelled: the coroutine runs in the waiting task, so it has taken its
// first step by the time the task is cancelled; it ignores the cancellation, and the wait goes
// on until it exits.
TEST(WaitFor, CancelledWaitForWaitsForTheInnerToExit) {
  run_virtual([]() -> Coro<void> {
    SlowTask t;
    auto waiter = [](SlowTask* slow) -> Coro<void> {
      co_await asyncio::wait_for(slow->run(), SlowTask::kTaskTimeout * 2);
    };
    Task<void> wait_task = asyncio::create_task(waiter(&t));
    co_await asyncio::sleep(0);
    wait_task.cancel();
    std::vector<Task<void>> tasks;
    tasks.push_back(wait_task);
    co_await asyncio::wait(tasks);
    EXPECT_TRUE(t.exited);
  }());
}

// A cancellation in the iteration in which wait_for started reaches the coroutine, which has
// already run to its first co_await (Python 3.12). Until issue 16 this test said the opposite:
// the coroutine was a new task, cancelled before its first step, and never ran. Here it
// swallows the cancellation, so the waiting task returns normally, as in Python.
TEST(WaitFor, CancelledRightAfterItStartsTheCoroutineSeesTheCancellation) {
  run_virtual([]() -> Coro<void> {
    SlowTask t;
    bool started = false;
    auto waiter = [](SlowTask* slow, bool* flag) -> Coro<void> {
      auto body = [](SlowTask* s, bool* f) -> Coro<void> {
        *f = true;
        co_await s->run();
      };
      co_await asyncio::wait_for(body(slow, flag), 1);
    };
    Task<void> wait_task = asyncio::create_task(waiter(&t, &started));
    co_await asyncio::sleep(0);  // wait_for has started the coroutine
    EXPECT_TRUE(started);
    wait_task.cancel();
    co_await wait_task;  // the coroutine swallowed the cancellation
    EXPECT_FALSE(wait_task.cancelled());
    EXPECT_TRUE(t.exited);
    EXPECT_DOUBLE_EQ(now(), SlowTask::kTaskTimeout);
  }());
}

// test_wait_for_timeout_less_then_0_or_0_future_done
TEST(WaitFor, ZeroTimeoutOnADoneFutureReturnsItsResult) {
  run_virtual([]() -> Coro<void> {
    Future<std::string> fut;
    fut.set_result("done");
    const double t0 = now();
    EXPECT_EQ(co_await asyncio::wait_for(fut, 0), "done");
    EXPECT_EQ(now(), t0);
    EXPECT_TRUE(fut.done());
  }());
}

// test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started
TEST(WaitFor, ZeroTimeoutNeverStartsACoroutine) {
  run_virtual([]() -> Coro<void> {
    bool started = false;
    auto body = [](bool* flag) -> Coro<void> {
      *flag = true;
      co_return;
    };
    const double t0 = now();
    EXPECT_THROW(co_await asyncio::wait_for(body(&started), 0), TimeoutError);
    EXPECT_FALSE(started);
    EXPECT_EQ(now(), t0);
  }());
}

// test_wait_for_timeout_less_then_0_or_0
TEST(WaitFor, ZeroOrNegativeTimeoutCancelsARunningTaskAtOnce) {
  run_virtual([]() -> Coro<void> {
    const std::vector<double> timeouts{0.0, -1.0};
    for (double timeout : timeouts) {
      bool running = false;
      Task<std::string> fut = asyncio::create_task(foo(10, &running));
      co_await asyncio::sleep(0);
      EXPECT_TRUE(running);
      const double t0 = now();
      EXPECT_THROW(co_await asyncio::wait_for(fut, timeout), TimeoutError);
      EXPECT_EQ(now(), t0);
      EXPECT_TRUE(fut.cancelled());
      EXPECT_FALSE(running);
    }
  }());
}

// test_wait_for_blocking (timeout=None has no form here; a long one behaves the same)
TEST(WaitFor, ACoroutineThatReturnsAtOnceGivesItsResult) {
  run_virtual([]() -> Coro<void> {
    auto coro = []() -> Coro<std::string> { co_return "done"; };
    EXPECT_EQ(co_await asyncio::wait_for(coro(), 1h), "done");
  }());
}

TEST(WaitFor, ADoneTaskReturnsWithoutSuspending) {
  run_virtual([]() -> Coro<void> {
    Task<int> t = asyncio::create_task(value_after(0, 5));
    co_await t;
    int iterations = 0;
    asyncio::get_running_loop().call_soon([&iterations] { ++iterations; });
    EXPECT_EQ(co_await asyncio::wait_for(t, 1), 5);
    EXPECT_EQ(iterations, 0);  // no loop iteration ran in between
    co_await asyncio::sleep(0);
  }());
}

// test_wait_for_race_condition
TEST(WaitFor, AResultBeforeTheDeadlineWins) {
  run_virtual([]() -> Coro<void> {
    Future<std::string> fut;
    asyncio::get_running_loop().call_later(0.1, [fut]() mutable { fut.set_result("ok"); });
    EXPECT_EQ(co_await asyncio::wait_for(fut, 0.2), "ok");
  }());
}

// "a result that arrives together with the time-out is not lost": the inner task is woken in
// the deadline's iteration and returns in the next; wait_for returns its value.
TEST(WaitFor, AResultArrivingInTheDeadlinesIterationIsNotLost) {
  run_virtual([]() -> Coro<void> {
    asyncio::EventLoop& loop = asyncio::get_running_loop();
    Future<int> f;
    Task<int> inner = asyncio::create_task(await_future(f));
    co_await asyncio::sleep(0);
    loop.call_at(loop.time() + 1.0, [f]() mutable { f.set_result(7); });  // due with the timer
    EXPECT_EQ(co_await asyncio::wait_for(inner, 1.0), 7);
    EXPECT_FALSE(inner.cancelled());
  }());
}

// test_wait_for_cancellation_race_condition and test_wait_for_cancel_suppressed: the inner
// swallows the cancellation and returns a value, which wait_for returns.
TEST(WaitFor, InnerThatSwallowsTheTimeoutCancellationReturnsItsValue) {
  run_virtual([]() -> Coro<void> {
    auto inner = []() -> Coro<int> {
      try {
        co_await asyncio::sleep(10);
      } catch (const CancelledError&) {
        co_return 42;
      }
      co_return 0;
    };
    EXPECT_EQ(co_await asyncio::wait_for(inner(), 0.1), 42);
    EXPECT_DOUBLE_EQ(now(), 0.1);
  }());
}

// test_wait_for_waits_for_task_cancellation
TEST(WaitFor, WaitsForTheTaskToFinishCancelling) {
  run_virtual([]() -> Coro<void> {
    bool task_done = false;
    Task<void> inner = asyncio::create_task(slow_to_cancel(&task_done));
    EXPECT_THROW(co_await asyncio::wait_for(inner, kEpsilon), TimeoutError);
    EXPECT_TRUE(task_done);
    EXPECT_TRUE(inner.cancelled());
  }());
}

// test_wait_for_waits_for_task_cancellation_w_timeout_0
TEST(WaitFor, ZeroTimeoutWaitsForTheTaskToFinishCancelling) {
  run_virtual([]() -> Coro<void> {
    bool task_done = false;
    Task<void> inner = asyncio::create_task(slow_to_cancel(&task_done));
    co_await asyncio::sleep(kEpsilon);
    EXPECT_THROW(co_await asyncio::wait_for(inner, 0), TimeoutError);
    EXPECT_TRUE(task_done);
  }());
}

// test_wait_for_reraises_exception_during_cancellation
TEST(WaitFor, ReraisesAnErrorRaisedWhileCancelling) {
  struct FooException : std::runtime_error {
    FooException() : std::runtime_error("foo") {}
  };
  run_virtual([]() -> Coro<void> {
    auto inner = []() -> Coro<void> {
      try {
        co_await asyncio::sleep(0.2);
      } catch (...) {
      }
      throw FooException();
    };
    Task<void> t = asyncio::create_task(inner());
    EXPECT_THROW(co_await asyncio::wait_for(t, kEpsilon), FooException);
  }());
}

// ---- cancellation of the awaiter ---------------------------------------------------------------

// _test_cancel_wait_for (timeout 60): cancelling the wait cancels the task (Python issue 23219).
TEST(WaitFor, CancellingTheWaitCancelsTheInnerTask) {
  run_virtual([]() -> Coro<void> {
    auto blocking = []() -> Coro<void> {
      Future<void> never;
      co_await never;
    };
    Task<void> task = asyncio::create_task(blocking());
    auto waiter = [](Task<void> t) -> Coro<void> { co_await asyncio::wait_for(t, 60.0); };
    Task<void> wait = asyncio::create_task(waiter(task));
    asyncio::get_running_loop().call_soon([wait]() mutable { wait.cancel(); });
    EXPECT_THROW(co_await wait, CancelledError);
    EXPECT_TRUE(task.cancelled());
  }());
}

// test_wait_for_self_cancellation (3.12+): a wait_for cancelled before it starts never touches
// the inner task, which goes on to return its value.
TEST(WaitFor, CancelledBeforeItStartsLeavesTheInnerAlone) {
  run_virtual([]() -> Coro<void> {
    auto inner = []() -> Coro<int> {
      for (int i = 0; i < 3; ++i) {
        try {
          co_await asyncio::sleep(0.3);
          break;
        } catch (const CancelledError&) {
        }
      }
      co_return 42;
    };
    Task<int> inner_task = asyncio::create_task(inner());
    auto waiter = [](Task<int> t) -> Coro<int> { co_return co_await asyncio::wait_for(t, 0.1); };
    Task<int> task = asyncio::create_task(waiter(inner_task));
    task.cancel();
    EXPECT_THROW(co_await task, CancelledError);
    EXPECT_EQ(co_await inner_task, 42);
  }());
}

// The 3.11 variant of test_wait_for_self_cancellation, with 3.12 semantics: the outer
// cancellation is forwarded to the inner task (a second cancel request); the inner swallows
// both and returns, and wait_for returns that value - exactly as `co_await inner_task` would.
TEST(WaitFor, OuterCancellationIsForwardedToTheInnerTask) {
  run_virtual([]() -> Coro<void> {
    int cancels = 0;
    auto inner = [](int* n) -> Coro<int> {
      for (int i = 0; i < 3; ++i) {
        try {
          co_await asyncio::sleep(0.3);
          break;
        } catch (const CancelledError&) {
          ++*n;
        }
      }
      co_return 42;
    };
    Task<int> inner_task = asyncio::create_task(inner(&cancels));
    auto waiter = [](Task<int> t) -> Coro<int> { co_return co_await asyncio::wait_for(t, 0.1); };
    Task<int> task = asyncio::create_task(waiter(inner_task));
    co_await asyncio::sleep(0.2);
    task.cancel();
    EXPECT_EQ(co_await task, 42);
    EXPECT_EQ(cancels, 2);  // the time-out's and the forwarded one
    EXPECT_DOUBLE_EQ(now(), 0.5);
  }());
}

TEST(WaitFor, OuterCancellationWhileTheInnerIsCancellingStaysCancelledError) {
  run_virtual([]() -> Coro<void> {
    bool done = false;
    Task<void> inner = asyncio::create_task(slow_to_cancel(&done));
    auto waiter = [](Task<void> t) -> Coro<void> { co_await asyncio::wait_for(t, 0.1); };
    Task<void> wait = asyncio::create_task(waiter(inner));
    co_await asyncio::sleep(0.1 + kEpsilon / 2);  // timed out; the inner is still cancelling
    EXPECT_FALSE(wait.done());
    wait.cancel();
    EXPECT_THROW(co_await wait, CancelledError);  // not TimeoutError
    EXPECT_TRUE(inner.cancelled());  // the second request interrupted its clean-up sleep
    EXPECT_FALSE(done);
  }());
}

// test_wait_for_issue86296: a cancellation that arrives after the inner finished is not
// swallowed.
TEST(WaitFor, CancellationAfterCompletionIsNotSwallowed) {
  run_virtual([]() -> Coro<void> {
    bool reached_end = false;
    auto wait_for_coro = [](bool* end) -> Coro<void> {
      auto inner = []() -> Coro<void> { co_return; };
      co_await asyncio::wait_for(inner(), 100);
      co_await asyncio::sleep(1);
      *end = true;
    };
    Task<void> task = asyncio::create_task(wait_for_coro(&reached_end));
    co_await asyncio::sleep(0);
    EXPECT_FALSE(task.done());
    task.cancel();
    EXPECT_THROW(co_await task, CancelledError);
    EXPECT_FALSE(reached_end);
  }());
}

TEST(WaitFor, ACancellationRaceWithADoneInnerDropsTheResultNotTheCancellation) {
  run_virtual([]() -> Coro<void> {
    Future<int> f;
    auto waiter = [](Future<int> fut) -> Coro<int> {
      co_return co_await asyncio::wait_for(fut, 10);
    };
    Task<int> t = asyncio::create_task(waiter(f));
    co_await asyncio::sleep(0);
    f.set_result(1);  // the waiter is woken...
    t.cancel();       // ...and cancelled before it runs
    EXPECT_THROW(co_await t, CancelledError);
  }());
}

// ---- composition and misuse --------------------------------------------------------------------

TEST(WaitFor, IsMovableIntoGather) {
  run_virtual([]() -> Coro<void> {
    auto [a, b] = co_await asyncio::gather(asyncio::wait_for(value_after(0.1, 1), 1),
                                           asyncio::wait_for(value_after(0.2, 2), 1));
    EXPECT_EQ(a + b, 3);
    auto r = co_await asyncio::gather(asyncio::return_exceptions,
                                      asyncio::wait_for(value_after(2, 1), 1));
    EXPECT_TRUE(asyncio_test::holds<TimeoutError>(std::get<0>(r).exception()));
  }());
}

TEST(WaitFor, NanTimeoutThrowsValueError) {
  run_virtual([]() -> Coro<void> {
    Future<int> f;
    EXPECT_THROW((void)asyncio::wait_for(f, std::numeric_limits<double>::quiet_NaN()),
                 asyncio::ValueError);
    co_return;
  }());
}

TEST(WaitFor, AwaitingTwiceThrowsRuntimeError) {
  run_virtual([]() -> Coro<void> {
    Future<int> f;
    f.set_result(1);
    auto w = asyncio::wait_for(f, 1);
    EXPECT_EQ(co_await w, 1);
    EXPECT_THROW(co_await w, asyncio::RuntimeError);
  }());
}

TEST(WaitFor, AConsumedCoroutineThrowsRuntimeError) {
  run_virtual([]() -> Coro<void> {
    Coro<int> c = value_after(0, 1);
    EXPECT_EQ(co_await c, 1);
    EXPECT_THROW(co_await asyncio::wait_for(c, 1), asyncio::RuntimeError);
  }());
}

TEST(WaitFor, TheCancellingCountOfTheAwaiterIsUntouchedByATimeout) {
  run_virtual([]() -> Coro<void> {
    EXPECT_THROW(co_await asyncio::wait_for(value_after(1, 1), 0.5), TimeoutError);
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
    co_await asyncio::sleep(0);  // no cancellation left pending
  }());
}

}  // namespace
