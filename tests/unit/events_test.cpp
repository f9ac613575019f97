// Tests for asyncio/events.hpp: the event loop's callbacks, timers, running and stopping,
// closing, time and debug flag. run_in_executor has its own file, executors_test.cpp.
//
// Translated from CPython 3.11 Lib/test/test_asyncio/test_base_events.py (BaseEventLoopTests:
// test_call_soon, test_call_later, test_call_at, test__run_once, test_run_forever_...,
// test_run_until_complete_..., test_close, test_set_debug) where the behaviour applies to C++.
// Time-dependent tests run on a virtual clock; the few that involve threads wait in real time,
// always bounded.
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"

namespace {

using namespace std::chrono_literals;
using asyncio::Coro;
using asyncio::EventLoop;
using asyncio_test::LogLines;
using asyncio_test::virtual_options;

std::unique_ptr<EventLoop> virtual_loop() {
  return asyncio::new_event_loop(virtual_options());
}

Coro<int> answer() {
  co_return 42;
}

Coro<int> fail_with(std::string message) {
  throw asyncio::ValueError(message);
  co_return 0;
}

using asyncio_test::SetOnDestroy;

// ---- call_soon and handles ---------------------------------------------------------------------

// test_call_soon: callbacks run in the order they were scheduled.
TEST(EventLoopCallbacks, CallSoonRunsCallbacksInFifoOrder) {
  auto loop = asyncio::new_event_loop();
  LogLines log;
  for (int i = 0; i < 5; ++i) loop->call_soon([&log, i] { log.add(std::to_string(i)); });
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  EXPECT_EQ(log.joined(), "0 1 2 3 4");
}

// test__run_once / STYLE habit 3: one iteration runs the callbacks that were ready when it
// began; those they schedule wait for the next iteration.
TEST(EventLoopCallbacks, CallbacksScheduledDuringAnIterationRunInTheNext) {
  auto loop = asyncio::new_event_loop();
  LogLines log;
  loop->call_soon([&] {
    log.add("a");
    loop->call_soon([&] { log.add("c"); });
  });
  loop->call_soon([&] { log.add("b"); });
  asyncio::detail::run_once(*loop);
  EXPECT_EQ(log.joined(), "a b");
  asyncio::detail::run_once(*loop);
  EXPECT_EQ(log.joined(), "a b c");
}

// test_handle: a cancelled handle's callback never runs, and cancelled() says so.
TEST(EventLoopCallbacks, CancelledHandleDoesNotRun) {
  auto loop = asyncio::new_event_loop();
  LogLines log;
  asyncio::Handle h = loop->call_soon([&] { log.add("cancelled one"); });
  loop->call_soon([&] { log.add("kept"); });
  EXPECT_FALSE(h.cancelled());
  h.cancel();
  EXPECT_TRUE(h.cancelled());
  asyncio::detail::run_once(*loop);
  EXPECT_EQ(log.joined(), "kept");
}

TEST(EventLoopCallbacks, CancellingAHandleAfterItRanChangesNothing) {
  auto loop = asyncio::new_event_loop();
  int runs = 0;
  asyncio::Handle h = loop->call_soon([&] { ++runs; });
  asyncio::detail::run_once(*loop);
  h.cancel();
  h.cancel();  // idempotent
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(h.cancelled());
}

TEST(EventLoopCallbacks, DefaultConstructedHandleIsInertAndNotCancelled) {
  asyncio::Handle h;
  EXPECT_FALSE(h.cancelled());
  h.cancel();
  EXPECT_FALSE(h.cancelled());
  asyncio::TimerHandle th;
  EXPECT_EQ(th.when(), 0.0);
}

// C++: callbacks may be move-only, and are destroyed once they have run (captures released).
TEST(EventLoopCallbacks, MoveOnlyCallbackRunsAndIsDestroyedAfterRunning) {
  auto loop = asyncio::new_event_loop();
  auto shared = std::make_shared<int>(7);
  int seen = 0;
  loop->call_soon([p = std::make_unique<int>(5), s = shared, &seen] { seen = *p + *s; });
  EXPECT_EQ(shared.use_count(), 2);
  asyncio::detail::run_once(*loop);
  EXPECT_EQ(seen, 12);
  EXPECT_EQ(shared.use_count(), 1);
}

// ---- timers ------------------------------------------------------------------------------------

// test_call_later: the callback runs once the delay has passed (virtual: exactly then).
TEST(EventLoopTimers, CallLaterFiresAtItsDeadline) {
  auto loop = virtual_loop();
  double fired_at = -1;
  asyncio::TimerHandle h = loop->call_later(1.5, [&] {
    fired_at = loop->time();
    loop->stop();
  });
  EXPECT_DOUBLE_EQ(h.when(), 1.5);
  loop->run_forever();
  EXPECT_DOUBLE_EQ(fired_at, 1.5);
}

TEST(EventLoopTimers, TimersFireInDeadlineOrderNotSchedulingOrder) {
  auto loop = virtual_loop();
  LogLines log;
  loop->call_later(3, [&] {
    log.add("3");
    loop->stop();
  });
  loop->call_later(1, [&] { log.add("1"); });
  loop->call_later(2, [&] { log.add("2"); });
  loop->run_forever();
  EXPECT_EQ(log.joined(), "1 2 3");
  EXPECT_DOUBLE_EQ(loop->time(), 3.0);
}

// STYLE habit 9: equal deadlines fire in the order they were scheduled ((when, seq) key).
TEST(EventLoopTimers, TimersWithEqualDeadlinesFireInSchedulingOrder) {
  auto loop = virtual_loop();
  LogLines log;
  for (int i = 0; i < 20; ++i) loop->call_at(5.0, [&log, i] { log.add(std::to_string(i)); });
  loop->call_at(5.0, [&] { loop->stop(); });
  loop->run_forever();
  std::string expected;
  for (int i = 0; i < 20; ++i) expected += (i ? " " : "") + std::to_string(i);
  EXPECT_EQ(log.joined(), expected);
}

// test_call_later_negative_delays: negative delays are allowed and still ordered by deadline.
TEST(EventLoopTimers, NegativeDelaysRunAtOnceInDeadlineOrder) {
  auto loop = virtual_loop();
  LogLines log;
  loop->call_later(-1, [&] { log.add("1"); });
  loop->call_later(-2, [&] { log.add("2"); });
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  EXPECT_EQ(log.joined(), "2 1");
  EXPECT_DOUBLE_EQ(loop->time(), 0.0);
}

// test_call_at: call_at takes an absolute loop time; TimerHandle::when() reports it.
TEST(EventLoopTimers, CallAtTakesAnAbsoluteLoopTime) {
  auto loop = virtual_loop();
  double fired_at = -1;
  loop->call_later(2, [&] {
    asyncio::TimerHandle h = loop->call_at(10.25, [&] {
      fired_at = loop->time();
      loop->stop();
    });
    EXPECT_DOUBLE_EQ(h.when(), 10.25);
  });
  loop->run_forever();
  EXPECT_DOUBLE_EQ(fired_at, 10.25);
}

TEST(EventLoopTimers, CallLaterAcceptsChronoDurations) {
  auto loop = virtual_loop();
  asyncio::TimerHandle a = loop->call_later(500ms, [] {});
  asyncio::TimerHandle b = loop->call_later(2min, [&] { loop->stop(); });
  EXPECT_DOUBLE_EQ(a.when(), 0.5);
  EXPECT_DOUBLE_EQ(b.when(), 120.0);
  loop->run_forever();
  EXPECT_DOUBLE_EQ(loop->time(), 120.0);
}

// A cancelled timer is removed at once: it never runs and the clock never jumps to it.
TEST(EventLoopTimers, CancelledTimerNeitherRunsNorAdvancesVirtualTime) {
  auto loop = virtual_loop();
  bool ran = false;
  asyncio::TimerHandle far = loop->call_later(100, [&] { ran = true; });
  loop->call_later(1, [&] { loop->stop(); });
  far.cancel();
  EXPECT_TRUE(far.cancelled());
  loop->run_forever();
  EXPECT_FALSE(ran);
  EXPECT_DOUBLE_EQ(loop->time(), 1.0);
}

// Python's Handle.cancel() drops the callback (`self._callback = None`): a cancelled timer's
// captures are released at once, even while the user still holds its TimerHandle.
TEST(EventLoopTimers, CancellingATimerReleasesItsCallbackAtOnce) {
  auto loop = virtual_loop();
  auto shared = std::make_shared<int>(0);
  asyncio::TimerHandle h = loop->call_later(10, [shared] { ++*shared; });
  EXPECT_EQ(shared.use_count(), 2);
  h.cancel();
  EXPECT_EQ(shared.use_count(), 1);
  EXPECT_EQ(*shared, 0);
}

// Two timers due in the same iteration: the first cancels the second, which is already in the
// ready queue; it must not run (test__run_once_cancelled_event_cleanup's spirit).
TEST(EventLoopTimers, TimerCancelledByAnEarlierCallbackOfTheSameIterationDoesNotRun) {
  auto loop = virtual_loop();
  LogLines log;
  asyncio::TimerHandle second;
  loop->call_at(1.0, [&] {
    log.add("first");
    second.cancel();
  });
  second = loop->call_at(1.0, [&] { log.add("second"); });
  loop->call_at(1.0, [&] { loop->stop(); });
  loop->run_forever();
  EXPECT_EQ(log.joined(), "first");
}

// _run_once: timers that became due join the ready queue after what is already there.
TEST(EventLoopTimers, DueTimerRunsAfterCallbacksAlreadyReady) {
  auto loop = virtual_loop();
  LogLines log;
  loop->call_later(-1, [&] { log.add("timer"); });
  loop->call_soon([&] { log.add("soon"); });
  asyncio::detail::run_once(*loop);
  EXPECT_EQ(log.joined(), "soon timer");
}

// ---- run_until_complete, run_forever, stop ----------------------------------------------------

TEST(EventLoopRun, RunUntilCompleteReturnsTheCoroutineResult) {
  auto loop = asyncio::new_event_loop();
  EXPECT_EQ(loop->run_until_complete(answer()), 42);
  EXPECT_FALSE(loop->is_running());
}

TEST(EventLoopRun, RunUntilCompleteRethrowsTheCoroutineException) {
  auto loop = asyncio::new_event_loop();
  try {
    loop->run_until_complete(fail_with("boom"));
    FAIL() << "no exception";
  } catch (const asyncio::ValueError& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
  // The loop is still usable.
  EXPECT_EQ(loop->run_until_complete(answer()), 42);
}

// test_run_until_complete: a plain future completed by a timer callback.
TEST(EventLoopRun, RunUntilCompleteWaitsForAFutureSetByACallback) {
  auto loop = virtual_loop();
  asyncio::Future<std::string> fut = loop->create_future<std::string>();
  loop->call_later(2, [fut]() mutable { fut.set_result("done"); });
  EXPECT_EQ(loop->run_until_complete(fut), "done");
  EXPECT_DOUBLE_EQ(loop->time(), 2.0);
}

TEST(EventLoopRun, RunUntilCompleteOfADoneFutureReturnsItsResult) {
  auto loop = asyncio::new_event_loop();
  asyncio::Future<int> fut = loop->create_future<int>();
  fut.set_result(3);
  EXPECT_EQ(loop->run_until_complete(fut), 3);
}

// test_run_until_complete_loop_orphan_future_close_loop / "Event loop stopped before Future
// completed.": stop() while the future is pending.
TEST(EventLoopRun, RunUntilCompleteStoppedBeforeTheFutureIsDoneThrowsRuntimeError) {
  auto loop = virtual_loop();
  asyncio::Future<int> fut = loop->create_future<int>();
  loop->call_soon([&] { loop->stop(); });
  EXPECT_THROW(loop->run_until_complete(fut), asyncio::RuntimeError);
  EXPECT_FALSE(fut.done());
  EXPECT_FALSE(loop->is_running());
  // Still usable afterwards.
  loop->call_soon([fut]() mutable { fut.set_result(1); });
  EXPECT_EQ(loop->run_until_complete(fut), 1);
}

// test_run_until_complete_loop: a future of another loop is refused.
TEST(EventLoopRun, RunUntilCompleteOfAnotherLoopsFutureThrowsValueError) {
  auto loop = asyncio::new_event_loop();
  auto other = asyncio::new_event_loop();
  asyncio::Future<int> fut = other->create_future<int>();
  EXPECT_THROW(loop->run_until_complete(fut), asyncio::ValueError);
}

// Issue 2 misuse list: run_until_complete on a running loop -> RuntimeError, and the coroutine
// it was given never runs (Python checks before wrapping it in a task).
TEST(EventLoopRun, RunUntilCompleteOnTheRunningLoopThrowsRuntimeErrorAndRunsNothing) {
  auto loop = asyncio::new_event_loop();
  bool threw = false;
  static bool body_ran = false;
  body_ran = false;
  loop->call_soon([&] {
    try {
      loop->run_until_complete([]() -> Coro<void> {
        body_ran = true;
        co_return;
      }());
    } catch (const asyncio::RuntimeError&) {
      threw = true;
    }
  });
  loop->call_later(0.05, [&] { loop->stop(); });
  loop->run_forever();
  EXPECT_TRUE(threw);
  EXPECT_FALSE(body_ran) << "the coroutine passed to a refused run_until_complete still ran";
}

TEST(EventLoopRun, RunForeverRunsUntilStopIsCalled) {
  auto loop = virtual_loop();
  int ticks = 0;
  std::function<void()> tick = [&] {
    if (++ticks == 10) {
      loop->stop();
    } else {
      loop->call_soon(tick);
    }
  };
  loop->call_soon(tick);
  loop->run_forever();
  EXPECT_EQ(ticks, 10);
  EXPECT_FALSE(loop->is_running());
}

// test_run_forever_pre_stopped / stop() before run_forever(): one iteration runs, then it stops.
TEST(EventLoopRun, StopBeforeRunForeverRunsExactlyOneIteration) {
  auto loop = asyncio::new_event_loop();
  LogLines log;
  loop->call_soon([&] {
    log.add("first");
    loop->call_soon([&] { log.add("second"); });
  });
  loop->stop();
  loop->run_forever();
  EXPECT_EQ(log.joined(), "first");
  loop->stop();
  loop->run_forever();
  EXPECT_EQ(log.joined(), "first second");
}

// stop() from a callback lets the rest of the current iteration run.
TEST(EventLoopRun, StopLetsTheCurrentIterationFinish) {
  auto loop = asyncio::new_event_loop();
  LogLines log;
  loop->call_soon([&] {
    log.add("a");
    loop->stop();
    loop->call_soon([&] { log.add("next iteration"); });
  });
  loop->call_soon([&] { log.add("b"); });
  loop->run_forever();
  EXPECT_EQ(log.joined(), "a b");
}

TEST(EventLoopRun, IsRunningIsTrueOnlyWhileTheLoopRuns) {
  auto loop = asyncio::new_event_loop();
  bool inside = false;
  EXPECT_FALSE(loop->is_running());
  loop->call_soon([&] {
    inside = loop->is_running();
    loop->stop();
  });
  loop->run_forever();
  EXPECT_TRUE(inside);
  EXPECT_FALSE(loop->is_running());
}

// test_run_forever_... reentrancy: run_forever inside its own callback.
TEST(EventLoopRun, RunForeverOfTheRunningLoopThrowsRuntimeError) {
  auto loop = asyncio::new_event_loop();
  bool threw = false;
  loop->call_soon([&] {
    try {
      loop->run_forever();
    } catch (const asyncio::RuntimeError&) {
      threw = true;
    }
    loop->stop();
  });
  loop->run_forever();
  EXPECT_TRUE(threw);
}

// One loop per thread may run at a time.
TEST(EventLoopRun, RunningASecondLoopInsideTheFirstThrowsRuntimeError) {
  auto loop = asyncio::new_event_loop();
  auto other = asyncio::new_event_loop();
  bool forever_threw = false;
  bool until_threw = false;
  loop->call_soon([&] {
    try {
      other->run_forever();
    } catch (const asyncio::RuntimeError&) {
      forever_threw = true;
    }
    try {
      other->run_until_complete(other->create_future<int>());
    } catch (const asyncio::RuntimeError&) {
      until_threw = true;
    }
    loop->stop();
  });
  loop->run_forever();
  EXPECT_TRUE(forever_threw);
  EXPECT_TRUE(until_threw);
  EXPECT_FALSE(other->is_running());
}

TEST(EventLoopRun, GetRunningLoopOutsideALoopThrowsRuntimeError) {
  EXPECT_THROW((void)asyncio::get_running_loop(), asyncio::RuntimeError);
  auto loop = asyncio::new_event_loop();
  EXPECT_THROW((void)asyncio::get_running_loop(), asyncio::RuntimeError);  // created, not running
}

TEST(EventLoopRun, GetRunningLoopInCallbacksAndTasksIsTheRunningLoop) {
  auto loop = asyncio::new_event_loop();
  EventLoop* in_callback = nullptr;
  loop->call_soon([&] { in_callback = &asyncio::get_running_loop(); });
  EventLoop* in_task = loop->run_until_complete(
      []() -> Coro<EventLoop*> { co_return &asyncio::get_running_loop(); }());
  EXPECT_EQ(in_callback, loop.get());
  EXPECT_EQ(in_task, loop.get());
  EXPECT_THROW((void)asyncio::get_running_loop(), asyncio::RuntimeError);
}

// ---- close -------------------------------------------------------------------------------------

// test_close: closing is idempotent and is_closed() reports it.
// Regression (issue 4 report): close() destroys the frames of pending tasks; a destructor in one
// frame that wakes another pending task must not leave a freed task in the ready queue.
struct SetFutureOnDestroy {
  asyncio::Future<int> fut;
  ~SetFutureOnDestroy() {
    if (!fut.done()) fut.set_result(1);
  }
};
Coro<void> hold_until_destroyed(asyncio::Future<int> fut) {
  SetFutureOnDestroy guard{std::move(fut)};
  co_await asyncio::sleep(3600);
}
Coro<int> wait_for_future(asyncio::Future<int> fut) {
  co_return co_await fut;
}
Coro<void> pause(double seconds) {
  co_await asyncio::sleep(seconds);
}

TEST(EventLoopClose, AFrameDestructorWakingAnotherPendingTaskIsSafe) {
  auto loop = asyncio::new_event_loop(virtual_options());
  asyncio::Future<int> fut = loop->create_future<int>();
  // No handles kept: the loop holds the only references, as with fire-and-forget tasks. The
  // holder is created first, so close() destroys its frame first and that wakes the waiter.
  (void)loop->create_task(hold_until_destroyed(fut));
  (void)loop->create_task(wait_for_future(fut));
  loop->run_until_complete(pause(1.0));
  EXPECT_EQ(asyncio::detail::tasks_of(*loop).size(), 2U);
  loop->close();  // ASan (frame pool off) reported a heap-use-after-free here
  EXPECT_TRUE(fut.done());
  EXPECT_TRUE(asyncio::detail::tasks_of(*loop).empty());
}

TEST(EventLoopClose, CloseIsIdempotent) {
  auto loop = asyncio::new_event_loop();
  EXPECT_FALSE(loop->is_closed());
  loop->close();
  EXPECT_TRUE(loop->is_closed());
  EXPECT_NO_THROW(loop->close());
  EXPECT_TRUE(loop->is_closed());
}

// test_close / issue 2: everything that schedules on a closed loop throws RuntimeError.
TEST(EventLoopClose, SchedulingOnAClosedLoopThrowsRuntimeError) {
  auto loop = asyncio::new_event_loop();
  loop->close();
  EXPECT_THROW(loop->call_soon([] {}), asyncio::RuntimeError);
  EXPECT_THROW(loop->call_later(1, [] {}), asyncio::RuntimeError);
  EXPECT_THROW(loop->call_at(1.0, [] {}), asyncio::RuntimeError);
  EXPECT_THROW(loop->call_soon_threadsafe([] {}), asyncio::RuntimeError);
  EXPECT_THROW((void)loop->create_future<int>(), asyncio::RuntimeError);
  EXPECT_THROW((void)loop->create_task(answer()), asyncio::RuntimeError);
  EXPECT_THROW(loop->run_forever(), asyncio::RuntimeError);
  EXPECT_THROW(loop->run_until_complete(answer()), asyncio::RuntimeError);
  EXPECT_THROW((void)loop->run_in_executor(nullptr, [] { return 1; }), asyncio::RuntimeError);
}

// Issue 2: closing a running loop -> RuntimeError; the loop keeps running.
TEST(EventLoopClose, ClosingTheRunningLoopThrowsRuntimeError) {
  auto loop = asyncio::new_event_loop();
  bool threw = false;
  loop->call_soon([&] {
    try {
      loop->close();
    } catch (const asyncio::RuntimeError&) {
      threw = true;
    }
  });
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  EXPECT_TRUE(threw);
  EXPECT_FALSE(loop->is_closed());
}

// close() drops pending callbacks and timers, destroying their captures.
TEST(EventLoopClose, CloseDropsPendingCallbacksAndTimersWithoutRunningThem) {
  auto loop = virtual_loop();
  auto shared = std::make_shared<int>(0);
  loop->call_soon([shared] { ++*shared; });
  loop->call_later(10, [shared] { ++*shared; });
  asyncio::TimerHandle kept = loop->call_later(20, [shared] { ++*shared; });
  EXPECT_EQ(shared.use_count(), 4);
  loop->close();
  EXPECT_EQ(*shared, 0);
  EXPECT_EQ(shared.use_count(), 1);
}

// Issue 2: a pending task destroyed with its loop -> its frames are destroyed (no leak; ASan
// checks the rest).
TEST(EventLoopClose, PendingTaskIsDestroyedWithItsLoop) {
  bool frame_destroyed = false;
  bool reached_end = false;
  {
    auto loop = virtual_loop();
    loop->create_task([](bool* destroyed, bool* end) -> Coro<void> {
      SetOnDestroy guard(destroyed);
      co_await asyncio::sleep(1h);
      *end = true;
    }(&frame_destroyed, &reached_end));
    asyncio::detail::run_once(*loop);  // the task starts and parks on its sleep
    EXPECT_FALSE(frame_destroyed);
  }
  EXPECT_TRUE(frame_destroyed);
  EXPECT_FALSE(reached_end);
}

TEST(EventLoopClose, UnstartedTaskIsDestroyedWithItsLoop) {
  bool param_destroyed = false;
  bool body_ran = false;
  {
    auto loop = asyncio::new_event_loop();
    loop->create_task([](SetOnDestroy guard, bool* ran) -> Coro<void> {
      *ran = true;
      (void)guard;
      co_return;
    }(SetOnDestroy(&param_destroyed), &body_ran));
  }
  EXPECT_TRUE(param_destroyed);
  EXPECT_FALSE(body_ran);
}

// A Task handle may outlive its loop: the task counts as cancelled ("event loop closed").
TEST(EventLoopClose, TaskHandleOutlivingItsLoopIsCancelled) {
  asyncio::Task<int> task;
  {
    auto loop = virtual_loop();
    task = loop->create_task([]() -> Coro<int> {
      co_await asyncio::sleep(10);
      co_return 1;
    }());
    asyncio::detail::run_once(*loop);
  }
  ASSERT_TRUE(task.done());
  EXPECT_TRUE(task.cancelled());
  EXPECT_THROW((void)task.result(), asyncio::CancelledError);
}

// ---- time --------------------------------------------------------------------------------------

TEST(EventLoopTime, RealTimeIsMonotonic) {
  auto loop = asyncio::new_event_loop();
  double prev = loop->time();
  for (int i = 0; i < 1000; ++i) {
    const double now = loop->time();
    ASSERT_GE(now, prev);
    prev = now;
  }
}

TEST(EventLoopTime, VirtualTimeStartsAtZeroAndJumpsFromTimerToTimer) {
  auto loop = virtual_loop();
  EXPECT_DOUBLE_EQ(loop->time(), 0.0);
  std::vector<double> seen;
  loop->call_later(0.25, [&] { seen.push_back(loop->time()); });
  loop->call_later(7, [&] {
    seen.push_back(loop->time());
    loop->stop();
  });
  loop->run_forever();
  EXPECT_EQ(seen, (std::vector<double>{0.25, 7.0}));
}

// Issue 2: sleep(1h) returns at once, with loop.time() advanced by exactly 3600 s.
TEST(EventLoopTime, VirtualSleepOfAnHourTakesNoRealTime) {
  const auto t0 = std::chrono::steady_clock::now();
  const double elapsed = asyncio_test::run_virtual([]() -> Coro<double> {
    EventLoop& loop = asyncio::get_running_loop();
    const double start = loop.time();
    co_await asyncio::sleep(1h);
    co_return loop.time() - start;
  }());
  EXPECT_EQ(elapsed, 3600.0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

// Issue 2: virtual time waits for thread work in flight. A 50 ms executor job and a 10 s
// timer: the job's result arrives first, and the clock followed real time, not the timer.
TEST(EventLoopTime, VirtualTimeWaitsForExecutorWorkInFlight) {
  LogLines log;
  asyncio_test::run_virtual([](LogLines* log) -> Coro<void> {
    EventLoop& loop = asyncio::get_running_loop();
    loop.call_later(10, [log] { log->add("timer"); });
    const int v = co_await loop.run_in_executor(nullptr, [] {
      std::this_thread::sleep_for(50ms);
      return 5;
    });
    log->add("job " + std::to_string(v));
    EXPECT_LT(loop.time(), 10.0);
    co_await asyncio::sleep(20);
    EXPECT_GE(loop.time(), 20.0);
  }(&log));
  EXPECT_EQ(log.joined(", "), "job 5, timer");
}

// ---- debug -------------------------------------------------------------------------------------

// test_set_debug.
TEST(EventLoopDebug, DebugIsOffByDefaultAndCanBeToggled) {
  if (std::getenv("ASYNCIO_DEBUG") != nullptr) GTEST_SKIP() << "ASYNCIO_DEBUG is set";
  auto loop = asyncio::new_event_loop();
  EXPECT_FALSE(loop->get_debug());
  loop->set_debug(true);
  EXPECT_TRUE(loop->get_debug());
  loop->set_debug(false);
  EXPECT_FALSE(loop->get_debug());
}

// test_asyncio_run_debug: RunOptions{.debug = true} reaches the loop.
TEST(EventLoopDebug, RunOptionsDebugSwitchesDebugOn) {
  EXPECT_TRUE(asyncio::new_event_loop({.debug = true})->get_debug());
  EXPECT_TRUE(
      asyncio::run([]() -> Coro<bool> { co_return asyncio::get_running_loop().get_debug(); }(),
                   {.debug = true}));
}

TEST(EventLoopDebug, AsyncioDebugEnvironmentVariableSwitchesDebugOn) {
  const char* old = std::getenv("ASYNCIO_DEBUG");
  const std::string saved = old != nullptr ? old : "";
  ::setenv("ASYNCIO_DEBUG", "1", 1);
  const bool on = asyncio::new_event_loop()->get_debug();
  ::setenv("ASYNCIO_DEBUG", "0", 1);
  const bool off = asyncio::new_event_loop()->get_debug();
  if (old != nullptr) {
    ::setenv("ASYNCIO_DEBUG", saved.c_str(), 1);
  } else {
    ::unsetenv("ASYNCIO_DEBUG");
  }
  EXPECT_TRUE(on);
  EXPECT_FALSE(off);
}

TEST(EventLoopDebug, SlowCallbackDurationDefaultsToATenthOfASecond) {
  auto loop = asyncio::new_event_loop();
  EXPECT_DOUBLE_EQ(loop->slow_callback_duration, 0.1);
}

}  // namespace
