// Tests for misusing tasks and coroutines (asyncio/tasks.hpp, coroutines.hpp), each refused with
// RuntimeError: awaiting a consumed coroutine, scheduling one twice, a task awaiting itself,
// awaiting a task of another loop, a loop stopped before the task completed, and
// run_until_complete inside the running loop (which never runs the coroutine).
//
// Where a test translates something CPython checks (Lib/test/test_asyncio/test_tasks.py,
// BaseTaskTests: test_task_awaits_on_itself, test_stop_while_run_in_complete), its comment names
// the Python test. Virtual time throughout.
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio::Task;
using asyncio_test::new_virtual_loop;
using asyncio_test::run_virtual;
using asyncio_test::thrown;

// ---- helpers -----------------------------------------------------------------------------------

Coro<int> return_int(int v) {
  co_return v;
}

Coro<void> set_flag(bool* flag) {
  *flag = true;
  co_return;
}

Coro<std::string> await_coro_twice() {
  Coro<int> c = return_int(1);
  int first = co_await c;
  std::string second;
  try {
    (void)co_await c;
  } catch (const asyncio::RuntimeError& e) {
    second = e.what();
  }
  co_return std::to_string(first) + "|" + second;
}

TEST(TaskMisuse, AwaitingAConsumedCoroThrowsRuntimeError) {
  std::string r = run_virtual(await_coro_twice());
  EXPECT_EQ(r.substr(0, 2), "1|") << r;
  EXPECT_NE(r.find("already awaited"), std::string::npos) << r;
}

Coro<bool> await_after_create_task() {
  Coro<int> c = return_int(1);
  EXPECT_TRUE(c.valid());
  Task<int> t = asyncio::create_task(std::move(c));
  bool threw = false;
  try {
    (void)co_await c;  // NOLINT(bugprone-use-after-move): that is the point
  } catch (const asyncio::RuntimeError&) {
    threw = true;
  }
  co_await t;
  co_return threw;
}

TEST(TaskMisuse, AwaitingACoroAfterCreateTaskThrowsRuntimeError) {
  EXPECT_TRUE(run_virtual(await_after_create_task()));
}

TEST(TaskMisuse, CreateTaskOfAnAwaitedCoroThrowsRuntimeError) {
  auto loop = new_virtual_loop();
  auto body = [](Coro<int>* c) -> Coro<int> { co_return co_await *c; };
  Coro<int> c = return_int(3);
  EXPECT_EQ(loop->run_until_complete(body(&c)), 3);
  EXPECT_FALSE(c.valid());
  EXPECT_THROW((void)loop->create_task(std::move(c)), asyncio::RuntimeError);
}

TEST(TaskMisuse, CreateTaskOfAScheduledCoroThrowsRuntimeError) {
  auto loop = new_virtual_loop();
  Coro<int> c = return_int(3);
  Task<int> t = loop->create_task(std::move(c));
  EXPECT_FALSE(c.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_THROW((void)loop->create_task(std::move(c)), asyncio::RuntimeError);
  EXPECT_EQ(loop->run_until_complete(t), 3);
}

Coro<void> await_self(Task<void>* self) {
  co_await *self;
}

// test_task_awaits_on_itself
TEST(TaskMisuse, TaskAwaitingItselfThrowsRuntimeError) {
  auto loop = new_virtual_loop();
  Task<void> t;
  t = loop->create_task(await_self(&t));
  auto e = thrown<asyncio::RuntimeError>([&] { loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_NE(std::string(e->what()).find("itself"), std::string::npos) << e->what();
  EXPECT_TRUE(t.done());
  EXPECT_FALSE(t.cancelled());
}

Coro<void> await_foreign_task(Task<int> foreign) {
  co_await foreign;
}

TEST(TaskMisuse, AwaitingATaskOfAnotherLoopThrowsRuntimeError) {
  auto other = new_virtual_loop();
  Task<int> foreign = other->create_task(return_int(1));
  auto loop = new_virtual_loop();
  EXPECT_THROW(loop->run_until_complete(await_foreign_task(foreign)), asyncio::RuntimeError);
  EXPECT_EQ(other->run_until_complete(foreign), 1);
}

// test_stop_while_run_in_complete
TEST(TaskMisuse, LoopStoppedBeforeTaskCompletedThrowsRuntimeError) {
  auto loop = new_virtual_loop();
  int x = 0;
  auto body = [](int* counter, asyncio::EventLoop* l) -> Coro<void> {
    while (*counter < 10) {
      co_await asyncio::sleep(0.1);
      ++*counter;
      if (*counter == 2) l->stop();
    }
  };
  Task<void> t = loop->create_task(body(&x, loop.get()));
  auto e = thrown<asyncio::RuntimeError>([&] { loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_STREQ(e->what(), "Event loop stopped before Future completed.");
  EXPECT_FALSE(t.done());
  EXPECT_EQ(x, 2);
  EXPECT_NEAR(loop->time(), 0.2, 1e-9);
  t.cancel();
  EXPECT_THROW(loop->run_until_complete(t), asyncio::CancelledError);
}

Coro<std::string> nested_run_until_complete(bool* ran) {
  std::string what;
  try {
    asyncio::get_running_loop().run_until_complete(set_flag(ran));
  } catch (const asyncio::RuntimeError& e) {
    what = e.what();
  }
  co_await asyncio::sleep(1);  // give a wrongly scheduled coroutine every chance to run
  co_return what;
}

// Python's run_until_complete checks that the loop is not running before wrapping the
// coroutine in a task, so the coroutine never runs.
TEST(TaskMisuse, RunUntilCompleteInsideTheRunningLoopThrowsAndNeverRunsTheCoro) {
  bool ran = false;
  std::string what = run_virtual(nested_run_until_complete(&ran));
  EXPECT_NE(what.find("already running"), std::string::npos) << what;
  EXPECT_FALSE(ran);
}

}  // namespace
