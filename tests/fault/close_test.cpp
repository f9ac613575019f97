// EventLoop::close() while destructors it runs offer the loop new work (issue 11, bug 5).
//
// close() destroys the frames of pending tasks, and a frame's destructor may call
// loop.create_task(), call_soon(), call_later() or create_future() on the loop being closed.
// Such a task used to be registered after the registry had been emptied, so it was never
// destroyed (LeakSanitizer: 152 bytes). close() now accepts that work and destroys it before it
// returns: a task created then never starts, a callback never runs, and nothing leaks. It does
// not refuse it: a refusal is an exception thrown in a destructor (see close() for why).
// The sanitizer builds check that nothing leaks (LeakSanitizer runs at exit).
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio::EventLoop;
using asyncio::Future;
using asyncio::Task;
using asyncio_test::Tracker;
using Log = std::vector<std::string>;

Coro<void> sleep_one() {
  co_await asyncio::sleep(1);
}

/// The work a destructor schedules: records whether it ever runs, and (through its argument)
/// when its frame dies.
Coro<void> late_work([[maybe_unused]] std::shared_ptr<Tracker> arg, Log* log) {
  log->push_back("late task ran");
  co_return;
}

/// What the destructor did, for the test to look at afterwards.
struct Offered {
  std::optional<Task<void>> task;
  bool task_refused = false;
  bool callback_refused = false;
  bool timer_refused = false;
  bool future_refused = false;
};

/// A local whose destructor offers the loop new work, as an RAII guard that schedules clean-up
/// does. It catches what the loop throws: a destructor must not let an exception escape.
struct OffersWork {
  EventLoop* loop;
  Log* log;
  Offered* out;
  OffersWork(EventLoop* l, Log* lg, Offered* o) : loop(l), log(lg), out(o) {}
  OffersWork(const OffersWork&) = delete;
  OffersWork& operator=(const OffersWork&) = delete;
  ~OffersWork() {
    Log* const lg = log;
    try {
      out->task = loop->create_task(late_work(std::make_shared<Tracker>(lg, "task arg"), lg));
    } catch (const asyncio::RuntimeError&) {
      out->task_refused = true;
    }
    try {
      (void)loop->call_soon(
          [lg, t = std::make_shared<Tracker>(lg, "callback capture")] { lg->push_back("ran"); });
    } catch (const asyncio::RuntimeError&) {
      out->callback_refused = true;
    }
    try {
      (void)loop->call_later(
          5, [lg, t = std::make_shared<Tracker>(lg, "timer capture")] { lg->push_back("ran"); });
    } catch (const asyncio::RuntimeError&) {
      out->timer_refused = true;
    }
    try {
      (void)loop->create_future<int>();
    } catch (const asyncio::RuntimeError&) {
      out->future_refused = true;
    }
  }
};

Coro<void> guarded(EventLoop* loop, Future<void> never, Log* log, Offered* out) {
  OffersWork guard(loop, log, out);
  co_await never;
}

// The case: a pending coroutine's local schedules a task and callbacks from its
// destructor while close() destroys the frame. Before the fix the task leaked (LSan) and stayed
// pending forever.
TEST(CloseWhileDestructorsScheduleWork, TaskCreatedByAFrameDestructorNeverRunsAndIsFreed) {
  Log log;
  Offered offered;
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  Future<void> never = loop->create_future<void>();
  Task<void> holder = loop->create_task(guarded(loop.get(), never, &log, &offered));
  loop->run_until_complete(sleep_one());  // the holder is parked on `never`
  ASSERT_TRUE(log.empty());

  loop->close();

  EXPECT_TRUE(loop->is_closed());
  EXPECT_TRUE(holder.cancelled());
  EXPECT_FALSE(offered.task_refused);
  EXPECT_FALSE(offered.callback_refused);
  EXPECT_FALSE(offered.timer_refused);
  EXPECT_FALSE(offered.future_refused);
  ASSERT_TRUE(offered.task.has_value());
  // Accepted, then destroyed by close() before it returned: the task is done (cancelled, as
  // every task close() abandons) without ever running; its frame died, and so did the
  // callbacks' captures, unrun.
  EXPECT_TRUE(offered.task->cancelled());
  for (const std::string& line : log) {
    EXPECT_NE(line, "late task ran");
    EXPECT_NE(line, "ran");
  }
  EXPECT_NE(std::find(log.begin(), log.end(), "~task arg"), log.end());
  EXPECT_NE(std::find(log.begin(), log.end(), "~callback capture"), log.end());
  EXPECT_NE(std::find(log.begin(), log.end(), "~timer capture"), log.end());
}

// Once close() has returned, the loop refuses new work, as Python's closed loop does.
TEST(CloseWhileDestructorsScheduleWork, AfterCloseNewWorkIsRefused) {
  Log log;
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  loop->close();
  EXPECT_THROW((void)loop->create_task(late_work(nullptr, &log)), asyncio::RuntimeError);
  EXPECT_THROW((void)loop->call_soon([] {}), asyncio::RuntimeError);
  EXPECT_THROW((void)loop->call_later(1, [] {}), asyncio::RuntimeError);
  EXPECT_THROW((void)loop->create_future<void>(), asyncio::RuntimeError);
  EXPECT_TRUE(log.empty());
}

/// A task whose argument, when destroyed, creates another task: close() must keep going until
/// nothing new appears.
struct Spawner {
  EventLoop* loop;
  Log* log;
  int left;
  Spawner(EventLoop* l, Log* lg, int n) : loop(l), log(lg), left(n) {}
  Spawner(const Spawner&) = delete;
  Spawner& operator=(const Spawner&) = delete;
  ~Spawner();
};

Coro<void> spawned([[maybe_unused]] std::shared_ptr<Spawner> s, Log* log) {
  log->push_back("spawned task ran");
  co_return;
}

Spawner::~Spawner() {
  log->push_back("~spawner " + std::to_string(left));
  if (left == 0) return;
  try {
    (void)loop->create_task(spawned(std::make_shared<Spawner>(loop, log, left - 1), log));
  } catch (const asyncio::RuntimeError&) {
    log->push_back("refused");
  }
}

Coro<void> holds_spawner(EventLoop* loop, Future<void> never, Log* log) {
  Spawner s(loop, log, 3);
  co_await never;
}

TEST(CloseWhileDestructorsScheduleWork, WorkCreatedByDestroyingLateWorkIsDestroyedToo) {
  Log log;
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  Future<void> never = loop->create_future<void>();
  Task<void> holder = loop->create_task(holds_spawner(loop.get(), never, &log));
  loop->run_until_complete(sleep_one());
  loop->close();
  // Each generation's task is destroyed unstarted, which destroys its argument, which creates
  // the next: four rounds, and no task body ever ran.
  EXPECT_EQ(log, (Log{"~spawner 3", "~spawner 2", "~spawner 1", "~spawner 0"}));
}

/// Cancels a sibling task from its destructor (a "cancel the worker on scope exit" guard).
struct CancelsSibling {
  std::optional<Task<void>>* sibling;
  bool* threw;
  CancelsSibling(std::optional<Task<void>>* s, bool* t) : sibling(s), threw(t) {}
  CancelsSibling(const CancelsSibling&) = delete;
  CancelsSibling& operator=(const CancelsSibling&) = delete;
  ~CancelsSibling() {
    try {
      if (*sibling) (*sibling)->cancel();
    } catch (...) {
      *threw = true;
    }
  }
};

Coro<void> cancels_on_exit(std::optional<Task<void>>* sibling, bool* threw, Future<void> never) {
  CancelsSibling guard(sibling, threw);
  co_await never;
}

Coro<void> awaits_future(Future<int> fut) {
  (void)co_await fut;
}

// Why close() accepts late work instead of refusing it: cancelling a task that awaits a future
// completes that future, and completing a future with waiters checks that the loop is open. A
// loop that refused work from the moment close() began would throw here, from a destructor
// (std::terminate without the try block above).
TEST(CloseWhileDestructorsScheduleWork, GuardCancellingASiblingAwaitingAFutureDoesNotThrow) {
  bool threw = false;
  std::optional<Task<void>> sibling;
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  Future<void> never = loop->create_future<void>();
  Future<int> pending = loop->create_future<int>();
  // The guard's task is older, so close() destroys its frame first, with the sibling parked.
  Task<void> holder = loop->create_task(cancels_on_exit(&sibling, &threw, never));
  sibling = loop->create_task(awaits_future(pending));
  loop->run_until_complete(sleep_one());
  loop->close();
  EXPECT_FALSE(threw);
  EXPECT_TRUE(pending.cancelled());
  EXPECT_TRUE(sibling->cancelled());
}

/// Closes the loop again from a destructor that close() runs.
struct ClosesAgain {
  EventLoop* loop;
  bool* threw;
  ClosesAgain(EventLoop* l, bool* t) : loop(l), threw(t) {}
  ClosesAgain(const ClosesAgain&) = delete;
  ClosesAgain& operator=(const ClosesAgain&) = delete;
  ~ClosesAgain() {
    try {
      loop->close();
    } catch (...) {
      *threw = true;
    }
  }
};

Coro<void> closes_again(EventLoop* loop, bool* threw, Future<void> never) {
  ClosesAgain c(loop, threw);
  co_await never;
}

Coro<void> guarded_tracker(Log* log, Future<void> never) {
  Tracker t(log, "second");
  co_await never;
}

TEST(CloseWhileDestructorsScheduleWork, CloseCalledAgainFromADestructorIsANoOp) {
  bool threw = false;
  Log log;
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  Future<void> never = loop->create_future<void>();
  Task<void> first = loop->create_task(closes_again(loop.get(), &threw, never));
  Task<void> second = loop->create_task(guarded_tracker(&log, never));
  loop->run_until_complete(sleep_one());
  loop->close();
  EXPECT_FALSE(threw);
  EXPECT_TRUE(first.cancelled());
  EXPECT_TRUE(second.cancelled());
  EXPECT_EQ(log, (Log{"~second"}));
}

}  // namespace
