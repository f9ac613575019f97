// Tests for the lifetime of tasks (asyncio/tasks.hpp): a task whose handle was dropped still runs
// to completion (fire-and-forget); a loop that is closed or destroyed frees its pending and
// unstarted tasks, running their frames' destructors (innermost first) and dropping, not calling,
// their done callbacks; asyncio::run cancels leftover tasks and waits for their clean-up.
//
// Mostly C++-specific: Python leaves these frames to its garbage collector. What asyncio::run
// does with leftovers follows CPython's Lib/test/test_asyncio/test_runners.py
// (test_asyncio_run_cancels_hanging_tasks). Virtual time throughout.
#include <algorithm>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio::Future;
using asyncio::Task;
using asyncio_test::new_virtual_loop;
using asyncio_test::run_briefly;
using asyncio_test::run_virtual;
using asyncio_test::Tracker;
using Log = std::vector<std::string>;

Coro<void> set_flag_after(double seconds, bool* flag, std::shared_ptr<int> token) {
  co_await asyncio::sleep(seconds);
  *flag = true;
  (void)token;
}

Coro<double> fire_and_forget(bool* flag, std::shared_ptr<int> token) {
  asyncio::create_task(set_flag_after(1, flag, std::move(token)));  // handle dropped at once
  co_await asyncio::sleep(2);
  co_return asyncio::get_running_loop().time();
}

TEST(TaskLifetime, DroppedHandleStillRunsToCompletion) {
  bool flag = false;
  auto token = std::make_shared<int>(0);
  EXPECT_DOUBLE_EQ(run_virtual(fire_and_forget(&flag, token)), 2.0);
  EXPECT_TRUE(flag);
  EXPECT_EQ(token.use_count(), 1);  // its frame was freed once it finished
}

Coro<void> inner_tracked(Log* log, Future<int> never) {
  Tracker tr(log, "inner");
  co_await never;
  log->push_back("inner resumed");  // never reached
}

Coro<void> outer_tracked(Log* log, Future<int> never) {
  Tracker tr(log, "outer");
  co_await inner_tracked(log, std::move(never));
  log->push_back("outer resumed");  // never reached
}

TEST(TaskLifetime, PendingTaskDestroyedByLoopCloseRunsFrameDestructors) {
  Log log;
  auto loop = new_virtual_loop();
  Future<int> never = loop->create_future<int>();
  Task<void> t = loop->create_task(outer_tracked(&log, never));
  run_briefly(*loop);
  EXPECT_TRUE(log.empty());
  loop->close();
  EXPECT_EQ(log, (Log{"~inner", "~outer"}));  // innermost frame first
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(never.done());  // the future it waited on is left alone and still usable
  never.set_result(1);
  EXPECT_EQ(never.result(), 1);
}

Coro<void> sleep_tracked(Log* log, std::shared_ptr<int> token) {
  Tracker tr(log, "sleeper");
  co_await asyncio::sleep(3600);
  (void)token;
}

TEST(TaskLifetime, DroppedPendingTaskIsFreedWhenLoopIsDestroyed) {
  Log log;
  auto token = std::make_shared<int>(0);
  {
    auto loop = new_virtual_loop();
    loop->create_task(sleep_tracked(&log, token));  // handle dropped; its timer is pending
    run_briefly(*loop);
    EXPECT_EQ(token.use_count(), 2);
  }  // ~EventLoop closes the loop
  EXPECT_EQ(log, (Log{"~sleeper"}));
  EXPECT_EQ(token.use_count(), 1);
}

TEST(TaskLifetime, TaskHandleOutlivesItsLoop) {
  Task<void> t;
  Log log;
  {
    auto loop = new_virtual_loop();
    t = loop->create_task(sleep_tracked(&log, nullptr), "orphan");
    run_briefly(*loop);
  }
  EXPECT_EQ(log, (Log{"~sleeper"}));
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(t.cancel());
  EXPECT_EQ(t.get_name(), "orphan");
}

TEST(TaskLifetime, UnstartedTaskIsFreedOnLoopClose) {
  Log log;
  auto token = std::make_shared<int>(0);
  auto loop = new_virtual_loop();
  Task<void> t = loop->create_task(sleep_tracked(&log, token));
  loop->close();
  EXPECT_TRUE(log.empty());         // the body never ran, so no Tracker was built
  EXPECT_EQ(token.use_count(), 1);  // but the frame (holding the parameter) is gone
  EXPECT_TRUE(t.cancelled());
}

Coro<void> leftover(Log* log) {
  std::exception_ptr err;
  try {
    co_await asyncio::sleep(3600);
  } catch (...) {
    err = std::current_exception();
  }
  log->push_back("leftover " + asyncio_test::cancel_message_of(err).value_or("not cancelled"));
  co_await asyncio::sleep(5);  // run() waits for this clean-up
  log->push_back("leftover done at " +
                 std::to_string(static_cast<int>(asyncio::get_running_loop().time())));
  if (err) std::rethrow_exception(err);
}

Coro<int> main_leaving_a_task(Log* log) {
  asyncio::create_task(leftover(log));
  co_await asyncio::sleep(1);
  co_return 7;
}

TEST(TaskLifetime, RunCancelsLeftoverTasksAndWaitsForThem) {
  Log log;
  EXPECT_EQ(run_virtual(main_leaving_a_task(&log)), 7);
  EXPECT_EQ(log, (Log{"leftover ", "leftover done at 6"}));
}

Coro<void> await_task_tracked(Log* log, Task<void> other) {
  Tracker tr(log, "awaiter");
  co_await other;
}

TEST(TaskLifetime, InnerCreatedFirstThenAwaiterAreBothFreedOnClose) {
  Log log;
  auto loop = new_virtual_loop();
  Task<void> inner = loop->create_task(sleep_tracked(&log, nullptr));
  Task<void> outer = loop->create_task(await_task_tracked(&log, inner));
  run_briefly(*loop);
  loop->close();
  EXPECT_EQ(log.size(), 2U);
  EXPECT_NE(std::find(log.begin(), log.end(), "~sleeper"), log.end());
  EXPECT_NE(std::find(log.begin(), log.end(), "~awaiter"), log.end());
  EXPECT_TRUE(inner.cancelled());
  EXPECT_TRUE(outer.cancelled());
}

Coro<void> spawn_and_await_tracked(Log* log) {
  Tracker tr(log, "spawner");
  Task<void> child = asyncio::create_task(sleep_tracked(log, nullptr));
  co_await child;
}

TEST(TaskLifetime, AwaiterCreatedFirstThenInnerAreBothFreedOnClose) {
  Log log;
  {
    auto loop = new_virtual_loop();
    loop->create_task(spawn_and_await_tracked(&log));
    run_briefly(*loop);
    EXPECT_TRUE(log.empty());
  }
  EXPECT_EQ(log.size(), 2U);
  EXPECT_NE(std::find(log.begin(), log.end(), "~sleeper"), log.end());
  EXPECT_NE(std::find(log.begin(), log.end(), "~spawner"), log.end());
}

TEST(TaskLifetime, DoneCallbacksOfAbandonedTaskAreDroppedNotCalled) {
  auto token = std::make_shared<int>(0);
  bool called = false;
  Log log;
  auto loop = new_virtual_loop();
  Task<void> t = loop->create_task(sleep_tracked(&log, nullptr));
  t.add_done_callback([token, &called](Future<void>&) { called = true; });
  run_briefly(*loop);
  EXPECT_EQ(token.use_count(), 2);
  loop->close();
  EXPECT_FALSE(called);
  EXPECT_EQ(token.use_count(), 1);
}

/// On destruction, schedules a callback on the loop (as a clean-up object might).
class SchedulesOnDestruction {
 public:
  SchedulesOnDestruction(asyncio::EventLoop* loop, std::shared_ptr<int> token)
      : loop_(loop), token_(std::move(token)) {}
  SchedulesOnDestruction(const SchedulesOnDestruction&) = delete;
  SchedulesOnDestruction& operator=(const SchedulesOnDestruction&) = delete;
  ~SchedulesOnDestruction() {
    try {
      loop_->call_soon([t = token_] { *t += 1; });
    } catch (...) {  // NOLINT(bugprone-empty-catch): a closed loop refuses; that is fine too
    }
  }

 private:
  asyncio::EventLoop* loop_;
  std::shared_ptr<int> token_;
};

Coro<void> hold_scheduler(asyncio::EventLoop* loop, std::shared_ptr<int> token) {
  SchedulesOnDestruction guard(loop, std::move(token));
  co_await asyncio::sleep(3600);
}

TEST(TaskLifetime, CallbackScheduledByAFrameDestructorDuringCloseIsDropped) {
  auto token = std::make_shared<int>(0);
  auto loop = new_virtual_loop();
  loop->create_task(hold_scheduler(loop.get(), token));
  run_briefly(*loop);
  loop->close();
  EXPECT_EQ(*token, 0);             // never run
  EXPECT_EQ(token.use_count(), 1);  // and freed
}

}  // namespace
