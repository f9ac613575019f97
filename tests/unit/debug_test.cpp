// Tests for debug mode (API §9) and the task tree (asyncio/debug.hpp).
//
// Debug mode's checks follow CPython's (test_tasks.py test_exception_marking /
// test_tb_logger_not_called_after_cancel, test_coroutines' "never awaited", test_base_events'
// slow callback warning); every report must reach the loop's exception handler, the one hook a
// user replaces. The slow-callback tests block the loop for real (200 ms), on purpose: that is
// the mistake being detected. Everything else runs on virtual time.
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::CancelledError;
using asyncio::Coro;
using asyncio::Future;
using asyncio::Task;
using asyncio::TaskGroup;
using asyncio_test::holds;
using asyncio_test::RecordingHandler;
using namespace std::chrono_literals;

std::unique_ptr<asyncio::EventLoop> debug_loop(bool debug = true) {
  return asyncio::new_event_loop({.debug = debug, .virtual_time = true});
}

Coro<int> lonely() {
  co_return 1;
}

Coro<void> fail_soon() {
  co_await asyncio::sleep(0.1);
  throw std::runtime_error("lost");
}

Coro<void> nap(double delay) {
  co_await asyncio::sleep(delay);
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---- "coroutine ... was never awaited" ---------------------------------------------------------

TEST(DebugMode, ACoroutineNeverAwaitedIsReportedByName) {
  auto loop = debug_loop();
  RecordingHandler handler(*loop);
  loop->run_until_complete([]() -> Coro<void> {
    { Coro<int> c = lonely(); }
    co_return;
  }());
  ASSERT_EQ(handler.size(), 1U);
  EXPECT_EQ(handler.at(0).message, "coroutine 'lonely' was never awaited");
}

TEST(DebugMode, AwaitedOrScheduledCoroutinesAreNotReported) {
  auto loop = debug_loop();
  RecordingHandler handler(*loop);
  loop->run_until_complete([]() -> Coro<void> {
    co_await lonely();
    Coro<int> c = lonely();
    co_await c;
    co_await asyncio::create_task(lonely());
  }());
  EXPECT_TRUE(handler.empty());
}

TEST(DebugMode, NeverAwaitedIsSilentWithoutDebug) {
  auto loop = debug_loop(false);
  RecordingHandler handler(*loop);
  loop->run_until_complete([]() -> Coro<void> {
    { Coro<int> c = lonely(); }
    co_return;
  }());
  EXPECT_TRUE(handler.empty());
}

// ---- "Task exception was never retrieved" ------------------------------------------------------

TEST(DebugMode, AFailedTaskNobodyLookedAtIsReported) {
  auto loop = debug_loop();
  RecordingHandler handler(*loop);
  loop->run_until_complete([]() -> Coro<void> {
    auto t = asyncio::create_task(fail_soon(), "forgotten");
    (void)t;
    co_await asyncio::sleep(1);
  }());
  ASSERT_EQ(handler.size(), 1U);
  const auto ctx = handler.at(0);
  EXPECT_EQ(ctx.message, "Task exception was never retrieved");
  EXPECT_EQ(asyncio_test::what_of(ctx.exception), "lost");
  ASSERT_TRUE(static_cast<bool>(ctx.task));
  EXPECT_EQ(ctx.task.get_name(), "forgotten");
}

TEST(DebugMode, AHandleDroppedLaterReportsWhenDropped) {
  auto loop = debug_loop();
  RecordingHandler handler(*loop);
  loop->run_until_complete([](RecordingHandler* h) -> Coro<void> {
    Task<void> t = asyncio::create_task(fail_soon());
    co_await asyncio::sleep(1);
    EXPECT_TRUE(h->empty());  // still referenced: nothing yet
    t = Task<void>();
    EXPECT_TRUE(h->has_message("Task exception was never retrieved"));
  }(&handler));
}

TEST(DebugMode, RetrievedExceptionsAreNotReported) {
  auto loop = debug_loop();
  RecordingHandler handler(*loop);
  loop->run_until_complete([]() -> Coro<void> {
    Task<void> awaited = asyncio::create_task(fail_soon());
    Task<void> asked = asyncio::create_task(fail_soon());
    Task<void> result = asyncio::create_task(fail_soon());
    EXPECT_THROW(co_await awaited, std::runtime_error);
    co_await asyncio::sleep(1);
    EXPECT_TRUE(asked.exception() != nullptr);
    EXPECT_THROW(result.result(), std::runtime_error);
  }());
  EXPECT_TRUE(handler.empty());
}

// test_tb_logger_not_called_after_cancel
TEST(DebugMode, ACancelledTaskIsNotReported) {
  auto loop = debug_loop();
  RecordingHandler handler(*loop);
  loop->run_until_complete([]() -> Coro<void> {
    auto t = asyncio::create_task(fail_soon());
    co_await asyncio::sleep(0.05);
    t.cancel();
    co_await asyncio::sleep(1);
  }());
  EXPECT_TRUE(handler.empty());
}

TEST(DebugMode, AFailedFutureNobodyLookedAtIsReported) {
  auto loop = debug_loop();
  RecordingHandler handler(*loop);
  loop->run_until_complete([]() -> Coro<void> {
    {
      Future<int> f;
      f.set_exception(std::make_exception_ptr(std::logic_error("nobody")));
    }
    co_return;
  }());
  EXPECT_TRUE(handler.has_message("Future exception was never retrieved"));
}

TEST(DebugMode, NeverRetrievedIsSilentWithoutDebug) {
  auto loop = debug_loop(false);
  RecordingHandler handler(*loop);
  loop->run_until_complete([]() -> Coro<void> {
    asyncio::create_task(fail_soon());
    co_await asyncio::sleep(1);
  }());
  EXPECT_TRUE(handler.empty());
}

// test_exception_marking: combinators look at their children's errors.
TEST(DebugMode, CombinatorsMarkTheirChildrensErrorsRetrieved) {
  auto loop = debug_loop();
  RecordingHandler handler(*loop);
  loop->run_until_complete([]() -> Coro<void> {
    EXPECT_THROW(co_await asyncio::gather(fail_soon(), fail_soon()), std::runtime_error);
    EXPECT_THROW(co_await asyncio::wait_for(fail_soon(), 1), std::runtime_error);
    EXPECT_THROW(co_await asyncio::task_group([](TaskGroup& tg) -> Coro<void> {
                   tg.create_task(fail_soon());
                   co_return;
                 }),
                 asyncio::ExceptionGroup);
    co_await asyncio::sleep(1);
  }());
  EXPECT_TRUE(handler.empty()) << handler.messages().front();
}

// ---- slow callbacks ----------------------------------------------------------------------------

/// Blocks the loop the way the seed articles warn against (time.sleep in a coroutine).
Coro<void> blocking_step() {
  co_await asyncio::sleep(0);
  std::this_thread::sleep_for(200ms);
  co_await asyncio::sleep(0);
}

TEST(DebugMode, ABlockingSleepInACoroutineIsReportedWithTaskAndDuration) {
  auto loop = debug_loop();
  RecordingHandler handler(*loop);
  loop->run_until_complete(
      []() -> Coro<void> { co_await asyncio::create_task(blocking_step(), "blocker"); }());
  ASSERT_EQ(handler.size(), 1U);
  const std::string msg = handler.at(0).message;
  EXPECT_TRUE(has(msg, "Executing Task 'blocker' in blocking_step took 0.2")) << msg;
  EXPECT_TRUE(has(msg, " seconds")) << msg;
}

TEST(DebugMode, ASlowPlainCallbackIsReported) {
  auto loop = debug_loop();
  RecordingHandler handler(*loop);
  loop->call_soon([] { std::this_thread::sleep_for(150ms); });
  loop->run_until_complete(nap(0));
  EXPECT_TRUE(handler.has_message("Executing callback took 0.1")) << handler.messages().size();
}

TEST(DebugMode, SlowCallbackDurationIsTheThreshold) {
  auto loop = debug_loop();
  loop->slow_callback_duration = 1.0;
  RecordingHandler handler(*loop);
  loop->run_until_complete(blocking_step());
  EXPECT_TRUE(handler.empty());
}

TEST(DebugMode, SlowStepsAreNotReportedWithoutDebug) {
  auto loop = debug_loop(false);
  RecordingHandler handler(*loop);
  loop->run_until_complete(blocking_step());
  EXPECT_TRUE(handler.empty());
}

// ---- switching it on, and the one hook ---------------------------------------------------------

TEST(DebugMode, OnFromRunOptionsOrTheEnvironment) {
  EXPECT_TRUE(debug_loop(true)->get_debug());
  EXPECT_FALSE(debug_loop(false)->get_debug());
  ::setenv("ASYNCIO_DEBUG", "1", 1);
  EXPECT_TRUE(debug_loop(false)->get_debug());
  ::setenv("ASYNCIO_DEBUG", "0", 1);
  EXPECT_FALSE(debug_loop(false)->get_debug());
  ::unsetenv("ASYNCIO_DEBUG");
  EXPECT_FALSE(debug_loop(false)->get_debug());
  bool seen = asyncio::run(
      []() -> Coro<bool> { co_return asyncio::get_running_loop().get_debug(); }(), {.debug = true});
  EXPECT_TRUE(seen);
}

TEST(DebugMode, EveryReportGoesThroughTheReplaceableHandlerAndNothingElse) {
  auto loop = debug_loop();
  RecordingHandler handler(*loop);
  testing::internal::CaptureStderr();
  loop->run_until_complete([]() -> Coro<void> {
    { Coro<int> c = lonely(); }
    asyncio::create_task(fail_soon());
    co_await asyncio::sleep(1);
    co_await blocking_step();
    asyncio::print_task_tree();
  }());
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "");
  EXPECT_TRUE(handler.has_message("was never awaited"));
  EXPECT_TRUE(handler.has_message("Task exception was never retrieved"));
  EXPECT_TRUE(handler.has_message("Executing Task"));
  EXPECT_TRUE(handler.has_message("Task tree:"));
}

TEST(DebugMode, TheDefaultHandlerPrintsToStderr) {
  auto loop = debug_loop();
  testing::internal::CaptureStderr();
  loop->run_until_complete([]() -> Coro<void> {
    { Coro<int> c = lonely(); }
    co_return;
  }());
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(has(err, "coroutine 'lonely' was never awaited")) << err;
}

// ---- the task tree -----------------------------------------------------------------------------

Coro<void> inner_fn() {
  co_await asyncio::sleep(10);
}
Coro<void> middle_fn() {
  co_await inner_fn();
}
Coro<void> outer_fn() {
  co_await middle_fn();
}

TEST(TaskTree, ShowsTheChainOfCoroutinesATaskIsSuspendedIn) {
  auto loop = debug_loop(false);
  loop->run_until_complete([]() -> Coro<void> {
    Task<void> w = asyncio::create_task(outer_fn(), "worker");
    co_await asyncio::sleep(1);
    const std::string tree = asyncio::format_task_tree();
    EXPECT_TRUE(has(tree,
                    "── (T) worker\n"
                    "    └── outer_fn\n"
                    "        └── middle_fn\n"
                    "            └── inner_fn\n"))
        << tree;
    w.cancel();
  }());
}

TEST(TaskTree, ShowsTasksUnderTheTaskThatAwaitsThem) {
  auto loop = debug_loop(false);
  std::string tree;
  loop->run_until_complete([](std::string* out) -> Coro<void> {
    auto observer = [](std::string* o) -> Coro<void> {
      co_await asyncio::sleep(1);
      *o = asyncio::format_task_tree();
    };
    auto parent = []() -> Coro<void> {
      Task<void> a = asyncio::create_task(outer_fn(), "child-a");
      Task<void> b = asyncio::create_task(inner_fn(), "child-b");
      co_await asyncio::gather(a, b);
    };
    Task<void> obs = asyncio::create_task(observer(out), "observer");
    Task<void> p = asyncio::create_task(parent(), "parent");
    co_await obs;
    p.cancel();
    EXPECT_THROW(co_await p, CancelledError);
  }(&tree));
  // The parent's coroutine is a lambda: "<lambda>" with g++, "operator()" with clang.
  EXPECT_TRUE(has(tree, "└── (T) parent\n    └── ")) << tree;
  EXPECT_TRUE(has(tree,
                  "\n"
                  "        ├── (T) child-a\n"
                  "        │   └── outer_fn\n"
                  "        │       └── middle_fn\n"
                  "        │           └── inner_fn\n"
                  "        └── (T) child-b\n"
                  "            └── inner_fn\n"))
      << tree;
  EXPECT_TRUE(has(tree, "(T) observer\n")) << tree;
}

TEST(TaskTree, ShowsTheChildrenOfATaskGroupAndAwaitedTasks) {
  auto loop = debug_loop(false);
  std::string tree;
  loop->run_until_complete([](std::string* out) -> Coro<void> {
    auto grouped = []() -> Coro<void> {
      co_await asyncio::task_group([](TaskGroup& tg) -> Coro<void> {
        tg.create_task(inner_fn(), "member");
        co_return;
      });
    };
    auto awaiting = []() -> Coro<void> {
      Task<void> t = asyncio::create_task(inner_fn(), "awaited");
      co_await t;
    };
    Task<void> g = asyncio::create_task(grouped(), "grouped");
    Task<void> a = asyncio::create_task(awaiting(), "awaiting");
    co_await asyncio::sleep(1);
    *out = asyncio::format_task_tree();
    g.cancel();
    a.cancel();
    EXPECT_THROW(co_await g, CancelledError);
    EXPECT_THROW(co_await a, CancelledError);
  }(&tree));
  EXPECT_TRUE(has(tree, "(T) member\n")) << tree;
  EXPECT_TRUE(has(tree, "── (T) grouped\n")) << tree;
  EXPECT_TRUE(has(tree, "── (T) awaited\n")) << tree;
  // Nobody else awaits "member" or "awaited": they appear once, under their awaiter.
  EXPECT_EQ(tree.find("(T) member"), tree.rfind("(T) member")) << tree;
  EXPECT_LT(tree.find("(T) grouped"), tree.find("(T) member")) << tree;
  EXPECT_LT(tree.find("(T) awaiting"), tree.find("(T) awaited")) << tree;
}

TEST(TaskTree, MarksTasksBeingCancelled) {
  auto loop = debug_loop(false);
  loop->run_until_complete([]() -> Coro<void> {
    auto stubborn = []() -> Coro<void> {
      try {
        co_await asyncio::sleep(1);
      } catch (const CancelledError&) {
      }
      co_await asyncio::sleep(10);
    };
    Task<void> t = asyncio::create_task(stubborn(), "stubborn");
    co_await asyncio::sleep(0.5);
    t.cancel();
    co_await asyncio::sleep(0.5);
    EXPECT_TRUE(has(asyncio::format_task_tree(), "(T) stubborn [cancelling]"))
        << asyncio::format_task_tree();
    t.cancel();
  }());
}

TEST(TaskTree, ATaskNotStartedShowsItsCoroutine) {
  auto loop = debug_loop(false);
  loop->run_until_complete([]() -> Coro<void> {
    Task<void> t = asyncio::create_task(outer_fn(), "fresh");
    EXPECT_TRUE(has(asyncio::format_task_tree(), "(T) fresh\n    └── outer_fn\n"))
        << asyncio::format_task_tree();
    t.cancel();
    co_return;
  }());
}

TEST(TaskTree, EmptyWithoutTasksAndPrintedThroughTheHandler) {
  auto loop = debug_loop(false);
  EXPECT_EQ(asyncio::format_task_tree(*loop), "");
  RecordingHandler handler(*loop);
  asyncio::print_task_tree(*loop);
  ASSERT_EQ(handler.size(), 1U);
  EXPECT_EQ(handler.at(0).message, "Task tree:\n");
  EXPECT_THROW((void)asyncio::format_task_tree(), asyncio::RuntimeError);  // no running loop
}

}  // namespace
