// Tests for the order in which tasks run and wake (asyncio/tasks.hpp): tasks start in creation
// order, sleepers wake in deadline order at exact virtual times, equal deadlines wake in
// scheduling order (STYLE habit 9), and tasks yielding with sleep(0) alternate.
//
// Tests marked "FIFO" rely on asyncio's documented order: the ready queue runs in order, a new
// task's first step is queued at create_task, timers with equal deadlines fire in scheduling
// order. CPython's Lib/test/test_asyncio/test_tasks.py relies on the same order throughout.
// Virtual time throughout.
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio::Task;
using asyncio_test::run_virtual;
using Log = std::vector<std::string>;

// ---- helpers -----------------------------------------------------------------------------------

Coro<void> log_line(Log* log, std::string line) {
  log->push_back(std::move(line));
  co_return;
}

Coro<Log> tasks_start_in_creation_order() {
  Log log;
  std::vector<Task<void>> tasks;
  for (int i = 0; i < 5; ++i) {
    tasks.push_back(asyncio::create_task(log_line(&log, "t" + std::to_string(i))));
  }
  for (auto& t : tasks) co_await t;
  co_return log;
}

// FIFO
TEST(TaskOrder, TasksStartInCreationOrder) {
  EXPECT_EQ(run_virtual(tasks_start_in_creation_order()), (Log{"t0", "t1", "t2", "t3", "t4"}));
}

Coro<void> wake_logger(double delay, Log* log, std::string name) {
  co_await asyncio::sleep(delay);
  log->push_back(name + "@" + std::to_string(asyncio::get_running_loop().time()));
}

Coro<Log> sleepers(std::vector<std::pair<double, std::string>> plan) {
  Log log;
  std::vector<Task<void>> tasks;
  for (auto& [d, n] : plan) tasks.push_back(asyncio::create_task(wake_logger(d, &log, n)));
  for (auto& t : tasks) co_await t;
  co_return log;
}

TEST(TaskOrder, SleepersWakeInDeadlineOrderAtExactTimes) {
  Log log = run_virtual(sleepers({{3, "c"}, {1, "a"}, {2, "b"}}));
  EXPECT_EQ(log, (Log{"a@" + std::to_string(1.0), "b@" + std::to_string(2.0),
                      "c@" + std::to_string(3.0)}));
}

// FIFO: equal deadlines fire in the order the timers were scheduled (STYLE habit 9).
TEST(TaskOrder, EqualDeadlinesWakeInSchedulingOrder) {
  Log log = run_virtual(sleepers({{1, "x"}, {1, "y"}, {1, "z"}}));
  const std::string at = "@" + std::to_string(1.0);
  EXPECT_EQ(log, (Log{"x" + at, "y" + at, "z" + at}));
}

Coro<Log> interleaved_yields() {
  Log log;
  auto worker = [](Log* l, std::string name) -> Coro<void> {
    for (int i = 0; i < 3; ++i) {
      l->push_back(name + std::to_string(i));
      co_await asyncio::sleep(0);
    }
  };
  Task<void> a = asyncio::create_task(worker(&log, "a"));
  Task<void> b = asyncio::create_task(worker(&log, "b"));
  co_await a;
  co_await b;
  co_return log;
}

// FIFO: two tasks yielding with sleep(0) alternate strictly.
TEST(TaskOrder, TasksYieldingWithSleepZeroAlternate) {
  EXPECT_EQ(run_virtual(interleaved_yields()), (Log{"a0", "b0", "a1", "b1", "a2", "b2"}));
}

}  // namespace
