// Tests for asyncio/tasks.hpp and coroutines.hpp: what a task or an awaited coroutine delivers.
// Values and exceptions through nested coroutines; move-only and const results; values with
// destructors (destroyed exactly once, never when there was none); when an awaited coroutine's
// frame dies; several awaiters of one task; deep await chains (symmetric transfer keeps the
// stack flat, checked in death tests).
//
// Where a test translates something CPython checks (Lib/test/test_asyncio/test_tasks.py,
// BaseTaskTests), its comment names the Python test. Most of this file is about C++ object
// lifetimes, which Python leaves to its garbage collector. Anything involving time runs with
// virtual time and checks loop.time() exactly.
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <memory>
#include <stdexcept>
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
using asyncio_test::run_virtual;
using asyncio_test::thrown;
using Log = std::vector<std::string>;

// ---- helpers -----------------------------------------------------------------------------------

Coro<int> value_after(double seconds, int v) {
  co_await asyncio::sleep(seconds);
  co_return v;
}

Coro<int> return_int(int v) {
  co_return v;
}

Coro<void> set_flag(bool* flag) {
  *flag = true;
  co_return;
}

Coro<void> throw_runtime(std::string what) {
  co_await asyncio::sleep(0);
  throw std::runtime_error(what);
}

// ---- results and exceptions ---------------------------------------------------------------------

Coro<int> level3() {
  co_await asyncio::sleep(0);
  throw std::out_of_range("deep");
}
Coro<int> level2() {
  co_return co_await level3() + 1;
}
Coro<int> level1(Log* log) {
  try {
    co_return co_await level2() + 1;
  } catch (const std::out_of_range& e) {
    log->push_back(std::string("level1 caught ") + e.what());
    throw;
  }
}

TEST(Task, ExceptionPropagatesThroughNestedCoroChain) {
  auto loop = new_virtual_loop();
  Log log;
  Task<int> t = loop->create_task(level1(&log));
  auto e = thrown<std::out_of_range>([&] { (void)loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_STREQ(e->what(), "deep");
  EXPECT_EQ(log, (Log{"level1 caught deep"}));
  EXPECT_TRUE(t.done());
  EXPECT_FALSE(t.cancelled());
  EXPECT_TRUE(asyncio_test::holds<std::out_of_range>(t.exception()));
}

Coro<std::string> await_failing_task() {
  Task<void> t = asyncio::create_task(throw_runtime("task failed"));
  std::string first;
  std::string second;
  try {
    co_await t;
  } catch (const std::exception& e) {
    first = e.what();
  }
  try {
    co_await t;  // awaiting the done, failed task again rethrows again
  } catch (const std::exception& e) {
    second = e.what();
  }
  co_return first + "|" + second;
}

TEST(Task, AwaitingFailedTaskRethrowsItsExceptionEachTime) {
  EXPECT_EQ(run_virtual(await_failing_task()), "task failed|task failed");
}

Coro<int> fail_then_other_task_continues(bool* other_done) {
  Task<void> bad = asyncio::create_task(throw_runtime("x"));
  Task<void> good = asyncio::create_task(set_flag(other_done));
  co_await asyncio::sleep(1);
  co_await good;
  co_return bad.done() && !bad.cancelled() ? 1 : 0;
}

TEST(Task, FailingTaskDoesNotStopTheLoopOrOtherTasks) {
  bool other_done = false;
  EXPECT_EQ(run_virtual(fail_then_other_task_continues(&other_done)), 1);
  EXPECT_TRUE(other_done);
}

Coro<std::unique_ptr<int>> make_unique_after(double seconds, int v) {
  co_await asyncio::sleep(seconds);
  co_return std::make_unique<int>(v);
}

Coro<int> take_move_only_result() {
  Task<std::unique_ptr<int>> t = asyncio::create_task(make_unique_after(0.5, 11));
  std::unique_ptr<int> p = co_await std::move(t);
  co_return p ? *p : -1;
}

TEST(Task, MoveOnlyResultIsMovedOutWithCoAwaitStdMove) {
  EXPECT_EQ(run_virtual(take_move_only_result()), 11);
}

TEST(Task, RunUntilCompleteReturnsMoveOnlyResult) {
  auto loop = new_virtual_loop();
  std::unique_ptr<int> p = loop->run_until_complete(make_unique_after(2, 6));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 6);
  EXPECT_DOUBLE_EQ(loop->time(), 2.0);
}

// The value a coroutine returns lives in its frame (CoroPromise keeps no "engaged" flag of its
// own): it must be destroyed exactly once, and never when the body did not return one.
struct Counted {
  static inline int alive = 0;
  int v;
  explicit Counted(int x) : v(x) { ++alive; }
  Counted(Counted&& o) noexcept : v(o.v) { ++alive; }
  Counted(const Counted& o) : v(o.v) { ++alive; }
  Counted& operator=(const Counted&) = delete;
  Counted& operator=(Counted&&) = delete;
  ~Counted() { --alive; }
};

Coro<Counted> make_counted(int x) {
  co_return Counted(x);
}
Coro<Counted> counted_then_throw() {
  throw std::runtime_error("no value");
  co_return Counted(0);  // never reached
}
Coro<Counted> counted_after_sleep(double s) {
  co_await asyncio::sleep(s);
  co_return Counted(7);
}

TEST(Task, ReturnedValuesWithDestructorsAreDestroyedExactlyOnce) {
  Counted::alive = 0;
  EXPECT_EQ(run_virtual([]() -> Coro<int> {
              const Counted c = co_await make_counted(5);  // awaited: moved out, frame freed
              EXPECT_EQ(Counted::alive, 1);
              co_return c.v;
            }()),
            5);
  EXPECT_EQ(Counted::alive, 0);
  {
    auto loop = new_virtual_loop();
    Task<Counted> t = loop->create_task(make_counted(8));
    loop->run_until_complete(t);
    EXPECT_EQ(Counted::alive, 1);  // the task's value, in its root frame
    EXPECT_EQ(t.result().v, 8);
  }
  EXPECT_EQ(Counted::alive, 0);  // freed with the last handle
}

/// Logs "~name" when destroyed, unless moved from (so only the frame's copy logs).
struct MovableMark {
  MovableMark(Log* l, std::string n) : log(l), name(std::move(n)) {}
  MovableMark(MovableMark&& o) noexcept : log(std::exchange(o.log, nullptr)), name(o.name) {}
  MovableMark(const MovableMark&) = delete;
  MovableMark& operator=(const MovableMark&) = delete;
  MovableMark& operator=(MovableMark&&) = delete;
  ~MovableMark() {
    if (log != nullptr) log->push_back("~" + name);
  }
  Log* log;
  std::string name;
};

Coro<int> holds(MovableMark /*param*/) {
  co_return 1;
}

TEST(Task, AnAwaitedCoroutinesFrameDiesAtTheEndOfTheAwait) {
  // Awaiting takes the frame over from the Coro: the frame (and the parameter copy inside it)
  // is destroyed when the await ends, not when the Coro object goes out of scope.
  Log log;
  EXPECT_EQ(run_virtual([](Log* out) -> Coro<int> {
              Coro<int> c = holds(MovableMark(out, "param"));
              out->push_back("awaiting");
              const int v = co_await c;
              out->push_back("awaited");
              EXPECT_FALSE(c.valid());  // consumed: a second await throws
              EXPECT_STREQ(c.name(), "<consumed coroutine>");
              co_return v;
            }(&log)),
            1);
  EXPECT_EQ(log, (Log{"awaiting", "~param", "awaited"}));
}

Coro<Counted> counted_after(bool suspend, bool fail) {
  if (suspend) co_await asyncio::sleep(0);
  if (fail) throw std::runtime_error("no value");
  co_return Counted(3);
}

TEST(Task, AwaitedValuesAndErrorsArriveWhetherTheChildSuspendedOrNot) {
  // A child that finishes without suspending hands its outcome to the awaiter and frees its
  // frame at once; one that suspended is read from its frame. Both deliver the value exactly
  // once, and both rethrow.
  Counted::alive = 0;
  EXPECT_EQ(run_virtual([]() -> Coro<int> {
              int sum = 0;
              for (const bool suspend : {false, true}) {
                const Counted c = co_await counted_after(suspend, false);
                EXPECT_EQ(Counted::alive, 1);
                sum += c.v;
                try {
                  (void)co_await counted_after(suspend, true);
                  ADD_FAILURE() << "no exception";
                } catch (const std::runtime_error& e) {
                  EXPECT_STREQ(e.what(), "no value");
                  sum += 10;
                }
              }
              co_return sum;
            }()),
            26);
  EXPECT_EQ(Counted::alive, 0);
}

/// A local whose destructor throws: it runs after `co_return` has stored the value.
struct ThrowsOnExit {
  bool suspend;
  ~ThrowsOnExit() noexcept(false) { throw std::runtime_error("thrown on exit"); }
};

Coro<Counted> counted_then_throwing_local(bool suspend) {
  const ThrowsOnExit guard{suspend};
  if (guard.suspend) co_await asyncio::sleep(1);
  co_return Counted(5);
}

TEST(Task, AnExceptionAfterTheReturnedValueReplacesIt) {
  // The value and the exception share one word of the promise: the stored value is destroyed
  // when the exception takes its place, and the awaiter sees the exception.
  Counted::alive = 0;
  EXPECT_EQ(run_virtual([]() -> Coro<int> {
              int caught = 0;
              for (const bool suspend : {false, true}) {
                try {
                  (void)co_await counted_then_throwing_local(suspend);
                  ADD_FAILURE() << "no exception";
                } catch (const std::runtime_error& e) {
                  EXPECT_STREQ(e.what(), "thrown on exit");
                  ++caught;
                }
                EXPECT_EQ(Counted::alive, 0);
              }
              co_return caught;
            }()),
            2);
  EXPECT_EQ(Counted::alive, 0);
}

Coro<int> nest_then_sleep(int depth) {
  if (depth == 0) {
    co_await asyncio::sleep(1);
    co_return 0;
  }
  const int below = co_await nest_then_sleep(depth - 1);
  co_return below + 1;
}

TEST(Task, AChainDeeperThanTheSynchronousLimitSuspendsAtTheBottomAndUnwinds) {
  // The first 64 levels run nested on the native stack, the rest start through the task
  // step's driver; the sleep at the bottom suspends all of them, and the chain finishes
  // level by level after it.
  auto loop = new_virtual_loop();
  EXPECT_EQ(loop->run_until_complete(nest_then_sleep(200)), 200);
  EXPECT_DOUBLE_EQ(loop->time(), 1.0);
  EXPECT_EQ(loop->run_until_complete(nest_then_sleep(3)), 3);
}

Coro<const std::string> const_greeting() {
  co_return std::string(40, 'x');
}

TEST(Task, ACoroutineMayReturnAConstValue) {
  EXPECT_EQ(run_virtual([]() -> Coro<std::size_t> {
              const std::string s = co_await const_greeting();
              co_return s.size();
            }()),
            40U);
}

TEST(Task, NoValueIsDestroyedWhenTheBodyReturnedNone) {
  Counted::alive = 0;
  {
    auto never_run = make_counted(1);  // created, never started
  }
  EXPECT_EQ(run_virtual([]() -> Coro<int> {
              try {
                (void)co_await counted_then_throw();
              } catch (const std::runtime_error&) {
                co_return Counted::alive;
              }
              co_return -1;
            }()),
            0);
  {
    auto loop = new_virtual_loop();
    Task<Counted> t = loop->create_task(counted_after_sleep(10));
    loop->run_until_complete([]() -> Coro<void> { co_await asyncio::sleep(1); }());
    EXPECT_FALSE(t.done());
    // The loop closes with the task pending: its frame is destroyed without a value.
  }
  EXPECT_EQ(Counted::alive, 0);
}

Coro<int> await_shared(Task<int> t) {
  co_return co_await t;
}

Coro<std::vector<int>> several_awaiters_of_one_task() {
  Task<int> shared = asyncio::create_task(value_after(3, 21));
  auto a = asyncio::create_task(await_shared(shared));
  auto b = asyncio::create_task(await_shared(shared));
  auto c = asyncio::create_task(await_shared(shared));
  // (One co_await per statement: g++ 12 rejects co_await inside a braced initializer list.)
  std::vector<int> got;
  got.push_back(co_await a);
  got.push_back(co_await b);
  got.push_back(co_await c);
  got.push_back(co_await shared);
  EXPECT_DOUBLE_EQ(asyncio::get_running_loop().time(), 3.0);
  co_return got;
}

// API: any number of tasks may await the same future.
TEST(Task, SeveralTasksAwaitTheSameTask) {
  EXPECT_EQ(run_virtual(several_awaiters_of_one_task()), (std::vector<int>{21, 21, 21, 21}));
}

Coro<int> await_already_finished() {
  Task<int> t = asyncio::create_task(return_int(8));
  co_await asyncio::sleep(1);
  EXPECT_TRUE(t.done());
  co_return co_await t;
}

TEST(Task, AwaitingAnAlreadyFinishedTaskReturnsItsResult) {
  EXPECT_EQ(run_virtual(await_already_finished()), 8);
}

// ---- deep chains: symmetric transfer keeps the stack flat -------------------------------------
//
// Each deep test runs in a child process (a death test expecting a clean exit), so that a stack
// overflow fails that test alone instead of killing the whole suite.
//
// g++ 12 compiles symmetric transfer (await_suspend returning a handle) into a real tail call
// only with sibling-call optimisation (-O2) and never with -fsanitize=address, so the library
// does not rely on it: inside a task step, awaiters hand the next frame to the step's driver
// loop (detail::transfer_to), which keeps the stack depth constant at every optimisation level.
Coro<int> nest(int depth) {
  if (depth == 0) co_return 0;
  int below = co_await nest(depth - 1);
  co_return below + 1;
}

TEST(TaskDeathTest, HundredThousandNestedAwaitsDoNotOverflowTheStack) {
  EXPECT_EXIT(
      {
        auto loop = new_virtual_loop();
        const int depth = loop->run_until_complete(nest(100000));
        std::exit(depth == 100000 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

Coro<long> many_sequential_awaits(int n) {
  long sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await return_int(1);
  co_return sum;
}

TEST(TaskDeathTest, HundredThousandSequentialAwaitsInALoopDoNotGrowTheStack) {
  EXPECT_EXIT(
      {
        auto loop = new_virtual_loop();
        const long sum = loop->run_until_complete(many_sequential_awaits(100000));
        std::exit(sum == 100000 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(Task, ThousandNestedAwaitsWorkEverywhere) {
  // The same shape at a depth that fits any stack, so every build checks the results.
  auto loop = new_virtual_loop();
  EXPECT_EQ(loop->run_until_complete(nest(1000)), 1000);
  EXPECT_EQ(loop->run_until_complete(many_sequential_awaits(1000)), 1000);
}

Coro<long> many_awaits_of_done_future(int n) {
  Future<int> f;
  f.set_result(1);
  long sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await f;
  co_return sum;
}

TEST(Task, HundredThousandAwaitsOfADoneFutureInALoop) {
  // await_ready() is true, so nothing suspends and no compiler help is needed.
  auto loop = new_virtual_loop();
  EXPECT_EQ(loop->run_until_complete(many_awaits_of_done_future(100000)), 100000);
}

Coro<int> chain_link(int depth) {
  if (depth == 0) {
    co_await asyncio::sleep(1);
    co_return 0;
  }
  Task<int> next = asyncio::create_task(chain_link(depth - 1));
  co_return co_await next + 1;
}

TEST(Task, ChainOfTenThousandTasksEachAwaitingTheNext) {
  auto loop = new_virtual_loop();
  EXPECT_EQ(loop->run_until_complete(chain_link(10000)), 10000);
  EXPECT_DOUBLE_EQ(loop->time(), 1.0);
}

}  // namespace
