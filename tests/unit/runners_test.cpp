// Tests for asyncio/runners.hpp: asyncio::run and Runner.
//
// Translated from CPython 3.11 Lib/test/test_asyncio/test_runners.py (RunTests: return, raises,
// debug, from a running loop, hanging tasks cancelled / their errors reported; RunnerTests:
// run many times, explicit and double close, get_loop, recursive run, interrupt_call_soon,
// interrupt_wait, interrupt_cancelled_task, signal handler not replaced) where it applies to C++.
// SIGINT tests raise the signal in this (main) thread; the Runner turns it into a cancellation.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <signal.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"

namespace {

using namespace std::chrono_literals;
using asyncio::Coro;
using asyncio::EventLoop;
using asyncio_test::LogLines;
using asyncio_test::RecordingHandler;

Coro<int> answer() {
  co_return 42;
}

Coro<void> raise_value_error(std::string message) {
  co_await asyncio::sleep(0);
  throw asyncio::ValueError(message);
}

using asyncio_test::SetOnDestroy;

/// A leftover task: sleeps "forever"; when cancelled, awaits a clean-up step (a sleep, to show
/// that clean-up may await), logs it and lets the cancellation go on.
Coro<void> leftover_with_cleanup(LogLines* log) {
  log->add("started");
  std::exception_ptr err;
  try {
    co_await asyncio::sleep(1h);
  } catch (...) {
    err = std::current_exception();
  }
  if (err) {
    co_await asyncio::sleep(1);
    log->add("cleanup");
    std::rethrow_exception(err);
  }
}

/// The current SIGINT disposition.
void (*sigint_disposition())(int) {
  struct sigaction sa {};
  ::sigaction(SIGINT, nullptr, &sa);
  return sa.sa_handler;  // NOLINT(cppcoreguidelines-pro-type-union-access)
}

// ---- asyncio::run ------------------------------------------------------------------------------

// test_asyncio_run_return.
TEST(Run, ReturnsTheResultOfMain) {
  EXPECT_EQ(asyncio::run(answer()), 42);
  EXPECT_EQ(asyncio::run([]() -> Coro<std::string> { co_return "text"; }()), "text");
}

TEST(Run, ReturnsVoidAndMoveOnlyResults) {
  bool ran = false;
  asyncio::run([](bool* ran) -> Coro<void> {
    *ran = true;
    co_return;
  }(&ran));
  EXPECT_TRUE(ran);
  std::unique_ptr<int> p =
      asyncio::run([]() -> Coro<std::unique_ptr<int>> { co_return std::make_unique<int>(8); }());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 8);
}

// test_asyncio_run_raises.
TEST(Run, RethrowsTheExceptionOfMain) {
  try {
    asyncio::run(raise_value_error("spam"));
    FAIL() << "no exception";
  } catch (const asyncio::ValueError& e) {
    EXPECT_STREQ(e.what(), "spam");
  }
  // No loop is left running in this thread.
  EXPECT_THROW((void)asyncio::get_running_loop(), asyncio::RuntimeError);
}

// test_asyncio_run_from_running_loop / issue 2: run() inside a running loop -> RuntimeError,
// and the coroutine it was given is destroyed without running.
TEST(Run, RunInsideARunningLoopThrowsRuntimeError) {
  bool nested_ran = false;
  bool nested_destroyed = false;
  const bool threw = asyncio::run([](bool* ran, bool* destroyed) -> Coro<bool> {
    try {
      asyncio::run([](SetOnDestroy guard, bool* ran) -> Coro<void> {
        (void)guard;
        *ran = true;
        co_return;
      }(SetOnDestroy(destroyed), ran));
    } catch (const asyncio::RuntimeError& e) {
      co_return std::string(e.what()).find("running event loop") != std::string::npos;
    }
    co_return false;
  }(&nested_ran, &nested_destroyed));
  EXPECT_TRUE(threw);
  EXPECT_FALSE(nested_ran);
  EXPECT_TRUE(nested_destroyed);
}

TEST(Run, RunFromALoopCallbackThrowsRuntimeError) {
  auto loop = asyncio::new_event_loop();
  bool threw = false;
  loop->call_soon([&] {
    try {
      asyncio::run(answer());
    } catch (const asyncio::RuntimeError&) {
      threw = true;
    }
    loop->stop();
  });
  loop->run_forever();
  EXPECT_TRUE(threw);
}

// Each run() has a new loop: task numbering starts again, nothing carries over.
TEST(Run, EachRunUsesAFreshLoop) {
  auto main_name = []() -> Coro<std::string> { co_return asyncio::current_task().get_name(); };
  EXPECT_EQ(asyncio::run(main_name()), "Task-1");
  EXPECT_EQ(asyncio::run(main_name()), "Task-1");
}

// test_asyncio_run_debug.
TEST(Run, OptionsReachTheLoop) {
  const auto [debug, time] = asyncio::run(
      []() -> Coro<std::pair<bool, double>> {
        EventLoop& loop = asyncio::get_running_loop();
        co_await asyncio::sleep(90s);
        co_return std::make_pair(loop.get_debug(), loop.time());
      }(),
      {.debug = true, .virtual_time = true});
  EXPECT_TRUE(debug);
  EXPECT_EQ(time, 90.0);
}

// test_asyncio_run_cancels_hanging_tasks, plus: the leftovers' clean-up (which awaits) runs.
TEST(Run, CancelsLeftoverTasksAndTheirCleanupRuns) {
  LogLines log;
  asyncio::Task<void> leftover;
  const int result =
      asyncio_test::run_virtual([](LogLines* log, asyncio::Task<void>* out) -> Coro<int> {
        *out = asyncio::create_task(leftover_with_cleanup(log));
        co_await asyncio::sleep(0);
        co_return 123;
      }(&log, &leftover));
  EXPECT_EQ(result, 123);
  EXPECT_EQ(log.joined(), "started cleanup");
  ASSERT_TRUE(leftover.done());
  EXPECT_TRUE(leftover.cancelled());
}

// A task created just before main returns still gets its first step before shutdown cancels
// it: its step was queued before the loop's stop (CPython orders them the same way).
TEST(Run, TaskCreatedAsMainReturnsStartsBeforeItIsCancelled) {
  bool ran = false;
  asyncio::run([](bool* ran) -> Coro<void> {
    asyncio::create_task([](bool* ran) -> Coro<void> {
      *ran = true;
      co_return;
    }(ran));
    co_return;
  }(&ran));
  EXPECT_TRUE(ran);
}

// test_asyncio_run_reports_hanging_tasks_errors: a leftover task that raises while being
// cancelled is reported through the exception handler, with the task and the exception.
TEST(Run, LeftoverTaskRaisingDuringShutdownIsReportedThroughTheHandler) {
  std::unique_ptr<RecordingHandler> rec;
  asyncio::Task<void> leftover;
  const int result = asyncio_test::run_virtual(
      [](std::unique_ptr<RecordingHandler>* rec, asyncio::Task<void>* out) -> Coro<int> {
        *rec = std::make_unique<RecordingHandler>();
        *out = asyncio::create_task([]() -> Coro<void> {
          bool cancelled = false;
          try {
            co_await asyncio::sleep(0.1);
          } catch (const asyncio::CancelledError&) {
            cancelled = true;
          }
          if (cancelled) throw std::domain_error("1 / 0");
        }());
        co_await asyncio::sleep(0);
        co_return 123;
      }(&rec, &leftover));
  EXPECT_EQ(result, 123);
  ASSERT_TRUE(leftover.done());
  EXPECT_FALSE(leftover.cancelled());
  ASSERT_EQ(rec->size(), 1U);
  const asyncio::ExceptionContext ctx = rec->at(0);
  EXPECT_NE(ctx.message.find("asyncio.run"), std::string::npos) << ctx.message;
  EXPECT_NE(ctx.message.find("shutdown"), std::string::npos) << ctx.message;
  EXPECT_TRUE(ctx.task == asyncio::TaskRef(leftover));
  EXPECT_TRUE(asyncio_test::holds<std::domain_error>(ctx.exception));
}

// Leftovers that end normally (they swallow the cancellation) or are cancelled are not errors.
TEST(Run, LeftoverTasksEndingQuietlyAreNotReported) {
  std::unique_ptr<RecordingHandler> rec;
  asyncio_test::run_virtual([](std::unique_ptr<RecordingHandler>* rec) -> Coro<void> {
    *rec = std::make_unique<RecordingHandler>();
    asyncio::create_task([]() -> Coro<void> {
      try {
        co_await asyncio::sleep(1h);
      } catch (const asyncio::CancelledError&) {  // swallowed: the task ends normally
      }
    }());
    asyncio::create_task([]() -> Coro<void> { co_await asyncio::sleep(1h); }());
    co_await asyncio::sleep(0);
  }(&rec));
  EXPECT_TRUE(rec->empty()) << rec->messages().front();
}

// Leftovers are cancelled even when main raised; main's exception is what run() throws.
TEST(Run, LeftoversAreCancelledWhenMainRaises) {
  LogLines log;
  EXPECT_THROW(asyncio_test::run_virtual([](LogLines* log) -> Coro<void> {
                 asyncio::create_task(leftover_with_cleanup(log));
                 co_await asyncio::sleep(0);
                 throw asyncio::ValueError("main failed");
               }(&log)),
               asyncio::ValueError);
  EXPECT_EQ(log.joined(), "started cleanup");
}

// The default executor is shut down (waiting for its jobs) before run() returns.
TEST(Run, WaitsForDefaultExecutorJobsBeforeReturning) {
  std::atomic<bool> job_finished{false};
  asyncio::run([](std::atomic<bool>* finished) -> Coro<void> {
    (void)asyncio::get_running_loop().run_in_executor(nullptr, [finished] {
      std::this_thread::sleep_for(50ms);
      finished->store(true);
    });
    co_return;  // without awaiting the job
  }(&job_finished));
  EXPECT_TRUE(job_finished.load());
}

// A KeyboardInterrupt raised by main itself (not a signal) leaves run() as it is.
TEST(Run, KeyboardInterruptRaisedByMainPropagates) {
  EXPECT_THROW(asyncio::run([]() -> Coro<void> {
                 co_await asyncio::sleep(0);
                 throw asyncio::KeyboardInterrupt();
               }()),
               asyncio::KeyboardInterrupt);
  EXPECT_EQ(sigint_disposition(), SIG_DFL);
}

// Exceptions that are not std::exceptions propagate unchanged too.
TEST(Run, NonStdExceptionFromMainPropagatesUnchanged) {
  try {
    asyncio::run([]() -> Coro<void> {
      co_await asyncio::sleep(0);
      throw 42;
    }());
    FAIL() << "no exception";
  } catch (int v) {
    EXPECT_EQ(v, 42);
  }
}

// Not in the main thread, run() works and leaves SIGINT alone.
TEST(Run, WorksInAThreadOtherThanMain) {
  int result = 0;
  std::thread t([&] { result = asyncio_test::run_virtual(answer()); });
  t.join();
  EXPECT_EQ(result, 42);
  EXPECT_EQ(sigint_disposition(), SIG_DFL);
}

// ---- Runner ------------------------------------------------------------------------------------

// test_run: several coroutines, one loop.
TEST(Runner, RunsManyCoroutinesOnOneLoop) {
  asyncio::Runner runner(asyncio_test::virtual_options());
  auto which_loop = []() -> Coro<EventLoop*> { co_return &asyncio::get_running_loop(); };
  EventLoop* first = runner.run(which_loop());
  EventLoop* second = runner.run(which_loop());
  EXPECT_EQ(first, second);
  EXPECT_EQ(first, &runner.get_loop());
  EXPECT_EQ(runner.run(answer()), 42);
}

// The loop survives between runs: a task left pending by one run continues in the next.
TEST(Runner, TasksLeftPendingContinueInTheNextRun) {
  asyncio::Runner runner(asyncio_test::virtual_options());
  asyncio::Task<int> task = runner.run([]() -> Coro<asyncio::Task<int>> {
    co_return asyncio::create_task([]() -> Coro<int> {
      co_await asyncio::sleep(5);
      co_return 77;
    }());
  }());
  EXPECT_FALSE(task.done());
  const int v = runner.run([](asyncio::Task<int> t) -> Coro<int> { co_return co_await t; }(task));
  EXPECT_EQ(v, 77);
  EXPECT_DOUBLE_EQ(runner.get_loop().time(), 5.0);
}

// test_explicit_close / get_loop: the loop is created lazily and is not running outside run().
TEST(Runner, GetLoopCreatesTheLoopLazily) {
  asyncio::Runner runner;
  EventLoop& loop = runner.get_loop();
  EXPECT_EQ(&loop, &runner.get_loop());
  EXPECT_FALSE(loop.is_running());
  EXPECT_FALSE(loop.is_closed());
  EXPECT_EQ(runner.run(answer()), 42);
}

// test_double_close / test_explicit_close: close is idempotent; a closed runner refuses work.
TEST(Runner, CloseIsIdempotentAndAClosedRunnerRefusesWork) {
  asyncio::Runner runner;
  EXPECT_EQ(runner.run(answer()), 42);
  runner.close();
  EXPECT_NO_THROW(runner.close());
  EXPECT_THROW(runner.run(answer()), asyncio::RuntimeError);
  EXPECT_THROW((void)runner.get_loop(), asyncio::RuntimeError);
}

TEST(Runner, ClosingAnUnusedRunnerIsFine) {
  asyncio::Runner runner;
  EXPECT_NO_THROW(runner.close());
  EXPECT_THROW(runner.run(answer()), asyncio::RuntimeError);
}

// close() (and the destructor) cancel leftovers and let their clean-up run.
TEST(Runner, CloseCancelsLeftoverTasks) {
  LogLines log;
  {
    asyncio::Runner runner(asyncio_test::virtual_options());
    runner.run([](LogLines* log) -> Coro<void> {
      asyncio::create_task(leftover_with_cleanup(log));
      co_await asyncio::sleep(0);
    }(&log));
    EXPECT_EQ(log.joined(), "started");
  }  // ~Runner
  EXPECT_EQ(log.joined(), "started cleanup");
}

TEST(Runner, CloseReportsLeftoverErrorsThroughTheLoopsHandler) {
  asyncio::Runner runner(asyncio_test::virtual_options());
  RecordingHandler rec(runner.get_loop());
  runner.run([]() -> Coro<void> {
    asyncio::create_task([]() -> Coro<void> {
      bool cancelled = false;
      try {
        co_await asyncio::sleep(1h);
      } catch (const asyncio::CancelledError&) {
        cancelled = true;
      }
      if (cancelled) throw asyncio::ValueError("while cancelling");
    }());
    co_await asyncio::sleep(0);
  }());
  EXPECT_TRUE(rec.empty());
  runner.close();
  ASSERT_EQ(rec.size(), 1U);
  EXPECT_EQ(asyncio_test::what_of(rec.at(0).exception), "while cancelling");
}

// test_run: an exception leaves the runner usable.
TEST(Runner, RunRethrowsAndTheRunnerStaysUsable) {
  asyncio::Runner runner;
  EXPECT_THROW(runner.run(raise_value_error("first")), asyncio::ValueError);
  EXPECT_EQ(runner.run(answer()), 42);
}

// test_recursive_run: Runner.run from inside its own loop -> RuntimeError.
TEST(Runner, RecursiveRunThrowsRuntimeError) {
  asyncio::Runner runner;
  const bool threw = runner.run([](asyncio::Runner* r) -> Coro<bool> {
    try {
      (void)r->run(answer());
    } catch (const asyncio::RuntimeError&) {
      co_return true;
    }
    co_return false;
  }(&runner));
  EXPECT_TRUE(threw);
  // And from another runner's loop as well.
  asyncio::Runner other;
  const bool threw_other = runner.run([](asyncio::Runner* r) -> Coro<bool> {
    try {
      (void)r->run(answer());
    } catch (const asyncio::RuntimeError&) {
      co_return true;
    }
    co_return false;
  }(&other));
  EXPECT_TRUE(threw_other);
}

// test_debug / test_custom_factory: the runner's options reach its loop.
TEST(Runner, OptionsReachTheLoop) {
  asyncio::Runner runner({.debug = true, .virtual_time = true});
  EXPECT_TRUE(runner.get_loop().get_debug());
  runner.run([]() -> Coro<void> { co_await asyncio::sleep(1h); }());
  EXPECT_DOUBLE_EQ(runner.get_loop().time(), 3600.0);
}

// ---- SIGINT ------------------------------------------------------------------------------------

// API §2: SIGINT while run() runs cancels the main task; run() throws KeyboardInterrupt.
// (test_interrupt_wait: the future the main task awaits is cancelled too.)
TEST(RunSigint, SigintCancelsTheMainTaskAndRunThrowsKeyboardInterrupt) {
  ASSERT_EQ(sigint_disposition(), SIG_DFL);
  std::optional<asyncio::Future<void>> awaited;
  bool saw_cancel = false;
  EXPECT_THROW(asyncio::run([](std::optional<asyncio::Future<void>>* fut, bool* saw) -> Coro<void> {
                 *fut = asyncio::get_running_loop().create_future<void>();
                 ::raise(SIGINT);
                 std::exception_ptr err;
                 try {
                   co_await **fut;
                 } catch (const asyncio::CancelledError&) {
                   err = std::current_exception();
                 }
                 *saw = err != nullptr;
                 if (err) std::rethrow_exception(err);
               }(&awaited, &saw_cancel)),
               asyncio::KeyboardInterrupt);
  EXPECT_TRUE(saw_cancel);
  ASSERT_TRUE(awaited.has_value());
  EXPECT_TRUE(awaited->cancelled());
  EXPECT_EQ(sigint_disposition(), SIG_DFL);  // the handler is removed afterwards
}

// test_interrupt_call_soon: a main task that never waits on a future (it only yields) is
// interrupted too.
TEST(RunSigint, SigintInterruptsAMainTaskThatOnlyYields) {
  asyncio::Runner runner;
  runner.get_loop().call_later(0.02, [] { ::raise(SIGINT); });
  int iterations = 0;
  EXPECT_THROW(runner.run([](int* n) -> Coro<void> {
    for (*n = 0; *n < 10'000'000; ++*n) co_await asyncio::sleep(0);
  }(&iterations)),
               asyncio::KeyboardInterrupt);
  EXPECT_LT(iterations, 10'000'000);
}

// test_interrupt_cancelled_task: SIGINT on a main task that was already being cancelled.
// Python handles the signal at once (the task is still pending: the cancellation comes out as
// CancelledError). Here the signal is handled by a loop callback that runs after the main task
// finished cancelling; KeyboardInterrupt (what Python's handler raises once the task is done)
// is accepted too. What must not happen is the process being killed by a first Ctrl-C. Run in a
// child process, so a kill fails this test only.
TEST(RunSigint, SigintOnAnAlreadyCancelledMainTaskRaisesCancelledError) {
  EXPECT_EXIT(
      {
        asyncio::Runner runner;
        try {
          runner.run([]() -> Coro<void> {
            asyncio::create_task([](asyncio::TaskRef main) -> Coro<void> {
              co_await asyncio::sleep(0);
              main.cancel();
              ::raise(SIGINT);
            }(asyncio::current_task()));
            co_await asyncio::sleep(10);
          }());
        } catch (const asyncio::CancelledError&) {
          std::_Exit(0);
        } catch (const asyncio::KeyboardInterrupt&) {
          std::_Exit(0);
        }
        std::_Exit(3);
      },
      testing::ExitedWithCode(0), "");
}

// A SIGINT that arrives while the main task is finishing (it is done, run() has not returned
// yet) is a first Ctrl-C: it may raise KeyboardInterrupt or be ignored, but must not kill the
// process (only a second Ctrl-C does). Python delivers it at once, so the task is cancelled
// and run() raises KeyboardInterrupt. Run in a child process, so a kill fails this test only.
TEST(RunSigint, SigintWhileTheMainTaskFinishesDoesNotKillTheProcess) {
  EXPECT_EXIT(
      {
        try {
          const int v = asyncio::run([]() -> Coro<int> {
            ::raise(SIGINT);
            co_return 5;
          }());
          std::_Exit(v == 5 ? 0 : 4);
        } catch (const asyncio::KeyboardInterrupt&) {
          std::_Exit(0);
        }
        std::_Exit(3);
      },
      testing::ExitedWithCode(0), "");
}

// Python's Runner only raises KeyboardInterrupt when the main task ends cancelled: a main task
// that swallows the interrupt's cancellation returns its value.
TEST(RunSigint, MainTaskThatSwallowsTheInterruptReturnsNormally) {
  const int v = asyncio::run([]() -> Coro<int> {
    ::raise(SIGINT);
    try {
      co_await asyncio::sleep(10);
    } catch (const asyncio::CancelledError&) {
      co_return -1;
    }
    co_return 0;
  }());
  EXPECT_EQ(v, -1);
}

// test_signal_install_not_supported_ok's spirit: a SIGINT disposition set by the program is
// left alone (here: ignored, so raising SIGINT does nothing and main completes).
TEST(RunSigint, ExistingSigintDispositionIsLeftAlone) {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;  // NOLINT(cppcoreguidelines-pro-type-union-access)
  sigemptyset(&ignore.sa_mask);
  struct sigaction old {};
  ASSERT_EQ(::sigaction(SIGINT, &ignore, &old), 0);
  const int v = asyncio_test::run_virtual([]() -> Coro<int> {
    ::raise(SIGINT);
    co_await asyncio::sleep(1);
    co_return 7;
  }());
  const auto after = sigint_disposition();
  ::sigaction(SIGINT, &old, nullptr);
  EXPECT_EQ(v, 7);
  EXPECT_EQ(after, SIG_IGN);
}

}  // namespace
