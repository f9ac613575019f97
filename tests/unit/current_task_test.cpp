// Tests for asyncio::current_task, asyncio::all_tasks and TaskRef (asyncio/tasks.hpp,
// task_ref.hpp): which task is running (also inside awaited coroutines and across interleaving
// tasks), which tasks a loop lists and in what order, and TaskRef, the handle both return.
//
// Mirrors CPython's Lib/test/test_asyncio/test_tasks.py (BaseTaskTests: test_current_task,
// test_current_task_with_interleaving_tasks; all_tasks); a translated test's comment names the
// Python test. Virtual time throughout.
#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio::Future;
using asyncio::Task;
using asyncio::TaskRef;
using asyncio_test::new_virtual_loop;
using asyncio_test::run_briefly;
using asyncio_test::run_virtual;
using asyncio_test::thrown;

// ---- helpers -----------------------------------------------------------------------------------

Coro<void> sleep_for(double seconds) {
  co_await asyncio::sleep(seconds);
}

Coro<int> return_int(int v) {
  co_return v;
}

TEST(CurrentTask, IsFalseOutsideTasks) {
  EXPECT_FALSE(static_cast<bool>(asyncio::current_task()));
  auto loop = new_virtual_loop();
  bool in_callback = true;
  loop->call_soon([&] { in_callback = static_cast<bool>(asyncio::current_task()); });
  run_briefly(*loop);
  EXPECT_FALSE(in_callback);
  EXPECT_FALSE(static_cast<bool>(asyncio::current_task()));
}

Coro<int> compare_current_with(const Task<int>* self) {
  int matches = asyncio::current_task() == TaskRef(*self);
  co_await asyncio::sleep(1);
  matches += asyncio::current_task() == TaskRef(*self);
  co_return matches;
}

// test_current_task. (Not returning the TaskRef itself: a task whose result holds a reference
// to that same task is a reference cycle that nothing would ever free.)
TEST(CurrentTask, InsideATaskIsThatTask) {
  auto loop = new_virtual_loop();
  Task<int> t;
  t = loop->create_task(compare_current_with(&t));
  EXPECT_EQ(loop->run_until_complete(t), 2);
  EXPECT_FALSE(static_cast<bool>(asyncio::current_task()));
}

Coro<TaskRef> current_in_nested_coro() {
  co_return asyncio::current_task();
}
Coro<bool> nested_sees_same_task() {
  TaskRef mine = asyncio::current_task();
  TaskRef nested = co_await current_in_nested_coro();
  co_return mine == nested&& static_cast<bool>(mine);
}

TEST(CurrentTask, InsideAnAwaitedCoroIsTheAwaitingTask) {
  EXPECT_TRUE(run_virtual(nested_sees_same_task()));
}

Coro<void> interleave1(Future<bool> fut1, Future<bool> fut2, TaskRef* me, int* ok) {
  *ok += asyncio::current_task() == *me;
  co_await fut1;
  *ok += asyncio::current_task() == *me;
  fut2.set_result(true);
}

Coro<void> interleave2(Future<bool> fut1, Future<bool> fut2, TaskRef* me, int* ok) {
  *ok += asyncio::current_task() == *me;
  fut1.set_result(true);
  co_await fut2;
  *ok += asyncio::current_task() == *me;
}

Coro<int> interleaving() {
  Future<bool> fut1;
  Future<bool> fut2;
  TaskRef r1;
  TaskRef r2;
  int ok = 0;
  Task<void> t1 = asyncio::create_task(interleave1(fut1, fut2, &r1, &ok));
  Task<void> t2 = asyncio::create_task(interleave2(fut1, fut2, &r2, &ok));
  r1 = t1;
  r2 = t2;
  co_await t1;
  co_await t2;
  co_return ok;
}

// test_current_task_with_interleaving_tasks
TEST(CurrentTask, FollowsInterleavingTasks) {
  EXPECT_EQ(run_virtual(interleaving()), 4);
}

bool contains(const std::vector<TaskRef>& v, const TaskRef& r) {
  return std::find(v.begin(), v.end(), r) != v.end();
}

Coro<std::string> all_tasks_check() {
  Task<void> sleeping = asyncio::create_task(sleep_for(5));
  Task<int> quick = asyncio::create_task(return_int(1));
  std::string out;
  std::vector<TaskRef> before = asyncio::all_tasks();  // not started yet, but not done: listed
  out += std::to_string(before.size());
  out += contains(before, quick) ? "q" : "-";
  co_await asyncio::sleep(0);  // quick finishes, sleeping parks
  std::vector<TaskRef> after = asyncio::all_tasks();
  out += "," + std::to_string(after.size());
  out += contains(after, asyncio::current_task()) ? "m" : "-";
  out += contains(after, sleeping) ? "s" : "-";
  out += contains(after, quick) ? "q" : "-";
  sleeping.cancel();
  co_await asyncio::sleep(0);
  out += "," + std::to_string(asyncio::all_tasks().size());
  co_return out;
}

TEST(AllTasks, ListsOnlyNotDoneTasksOfTheRunningLoop) {
  // 3 tasks before (main, sleeping, quick); then main and sleeping; then main alone.
  EXPECT_EQ(run_virtual(all_tasks_check()), "3q,2ms-,1");
}

Coro<std::vector<std::string>> all_tasks_after_slot_reuse() {
  // b finishes and leaves its registry slot; d, created after, takes it. The list still comes
  // in creation order, without b.
  Task<void> a = asyncio::create_task(sleep_for(5), "a");
  Task<int> b = asyncio::create_task(return_int(1), "b");
  Task<void> c = asyncio::create_task(sleep_for(5), "c");
  co_await asyncio::sleep(0);
  Task<void> d = asyncio::create_task(sleep_for(5), "d");
  std::vector<std::string> names;
  for (const TaskRef& t : asyncio::all_tasks()) names.push_back(t.get_name());
  for (Task<void>* t : {&a, &c, &d}) t->cancel();
  co_await asyncio::sleep(0);
  co_return names;
}

TEST(AllTasks, ComeInCreationOrderWhenALaterTaskReusesAFinishedOnesSlot) {
  const std::vector<std::string> names = run_virtual(all_tasks_after_slot_reuse());
  ASSERT_EQ(names.size(), 4U);  // the main task first
  EXPECT_EQ(std::vector<std::string>(names.begin() + 1, names.end()),
            (std::vector<std::string>{"a", "c", "d"}));
}

TEST(AllTasks, WithoutRunningLoopThrowsRuntimeError) {
  EXPECT_THROW((void)asyncio::all_tasks(), asyncio::RuntimeError);
}

Coro<std::size_t> count_tasks_of_this_loop() {
  co_return asyncio::all_tasks().size();
}

TEST(AllTasks, DoesNotListTasksOfOtherLoops) {
  auto other = new_virtual_loop();
  Task<void> foreign = other->create_task(sleep_for(1));
  auto loop = new_virtual_loop();
  EXPECT_EQ(loop->run_until_complete(count_tasks_of_this_loop()), 1U);  // itself only
  other->run_until_complete(foreign);
}

TEST(TaskRef, EqualityIsIdentityOfTheTask) {
  auto loop = new_virtual_loop();
  Task<int> a = loop->create_task(return_int(1));
  Task<int> b = loop->create_task(return_int(2));
  TaskRef ra1 = a;
  TaskRef ra2 = Task<int>(a);
  TaskRef rb = b;
  EXPECT_TRUE(ra1 == ra2);
  EXPECT_FALSE(ra1 == rb);
  EXPECT_TRUE(TaskRef() == TaskRef());
  EXPECT_FALSE(TaskRef() == ra1);
  loop->run_until_complete(a);
  loop->run_until_complete(b);
}

TEST(TaskRef, OffersTheTaskApi) {
  auto loop = new_virtual_loop();
  Task<void> t = loop->create_task(sleep_for(10), "worker");
  TaskRef r = t;
  EXPECT_EQ(r.get_name(), "worker");
  EXPECT_FALSE(r.done());
  EXPECT_TRUE(r.cancel("via ref"));
  EXPECT_EQ(r.cancelling(), 1);
  auto e = thrown<asyncio::CancelledError>([&] { loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "via ref");
  EXPECT_TRUE(r.done());
  EXPECT_TRUE(r.cancelled());
  EXPECT_EQ(r.uncancel(), 0);
}

TEST(TaskRef, EmptyRefThrowsInvalidStateError) {
  TaskRef r;
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_THROW((void)r.done(), asyncio::InvalidStateError);
  EXPECT_THROW((void)r.cancel(), asyncio::InvalidStateError);
  EXPECT_THROW((void)r.get_name(), asyncio::InvalidStateError);
}

TEST(TaskRef, KeepsTheTaskReadableAfterEveryHandleIsGone) {
  auto loop = new_virtual_loop();
  TaskRef r;
  {
    Task<int> t = loop->create_task(return_int(1), "kept");
    r = t;
  }
  run_briefly(*loop);
  EXPECT_TRUE(r.done());
  EXPECT_FALSE(r.cancelled());
  EXPECT_EQ(r.get_name(), "kept");
}

}  // namespace
