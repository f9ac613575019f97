// Tests for asyncio/tasks.hpp and task_ref.hpp: Task<T>, create_task, names, cancellation and
// its counters, current_task/all_tasks, TaskRef, lifetime (fire-and-forget, loop close), misuse,
// deep await chains, sleep, and the order in which tasks wake.
//
// Where a test translates something CPython checks (Lib/test/test_asyncio/test_tasks.py,
// BaseTaskTests), its comment names the Python test. Anything involving time runs with virtual
// time and checks loop.time() exactly.
//
// Order of wake-ups: tests marked "FIFO" rely on asyncio's documented order: the ready queue runs
// in order, a new task's first step is queued at create_task, awaiters of one future wake in the
// order they started waiting, and timers with equal deadlines fire in scheduling order.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"
#include "t1_helpers.hpp"

namespace {

using asyncio::Coro;
using asyncio::Future;
using asyncio::Task;
using asyncio::TaskRef;
using asyncio_test::run_virtual;
using t1::new_virtual_loop;
using t1::run_briefly;
using t1::thrown;
using t1::Tracker;
using Log = std::vector<std::string>;

// ---- small coroutines used by many tests --------------------------------------------------------

Coro<int> value_after(double seconds, int v) {
  co_await asyncio::sleep(seconds);
  co_return v;
}

Coro<void> sleep_for(double seconds) {
  co_await asyncio::sleep(seconds);
}

Coro<int> return_int(int v) {
  co_return v;
}

Coro<void> set_flag(bool* flag) {
  *flag = true;
  co_return;
}

Coro<void> log_line(Log* log, std::string line) {
  log->push_back(std::move(line));
  co_return;
}

template <class T>
Coro<T> await_future(Future<T> f) {
  co_return co_await f;
}

Coro<void> throw_runtime(std::string what) {
  co_await asyncio::sleep(0);
  throw std::runtime_error(what);
}

/// Sleeps; on cancellation records the message in *seen and lets it propagate.
Coro<void> sleep_recording_cancel(double seconds, std::optional<std::string>* seen) {
  try {
    co_await asyncio::sleep(seconds);
  } catch (const asyncio::CancelledError& e) {
    *seen = e.message();
    throw;
  }
}

// ---- basics ------------------------------------------------------------------------------------

TEST(Task, IsAFuture) {
  static_assert(std::is_base_of_v<Future<int>, Task<int>>);
  static_assert(std::is_base_of_v<Future<void>, Task<void>>);
  static_assert(std::is_copy_constructible_v<Task<int>>);
  auto loop = new_virtual_loop();
  Task<int> t = loop->create_task(return_int(3));
  Future<int> as_future = t;  // NOLINT(cppcoreguidelines-slicing): a Task is-a Future
  EXPECT_TRUE(as_future == t);
  EXPECT_EQ(loop->run_until_complete(as_future), 3);  // run_until_complete(Future)
  EXPECT_TRUE(t.done());
  EXPECT_EQ(t.result(), 3);
}

Coro<int> inner1() {
  co_return 42;
}
Coro<int> inner2() {
  co_return 1000;
}
Coro<int> outer_sum() {
  int a = co_await inner1();
  int b = co_await inner2();
  co_return a + b;
}

// test_task_basics
TEST(Task, AwaitsNestedCoroutines) {
  auto loop = new_virtual_loop();
  EXPECT_EQ(loop->run_until_complete(outer_sum()), 1042);
}

// test_coroutine_non_gen_function
TEST(Task, RunUntilCompleteOfACoroReturnsItsResult) {
  auto loop = new_virtual_loop();
  EXPECT_EQ(loop->run_until_complete(return_int(5)), 5);
}

Coro<Log> body_starts_later() {
  Log log;
  asyncio::get_running_loop().call_soon([&log] { log.push_back("call_soon"); });
  Task<void> t = asyncio::create_task(log_line(&log, "task body"));
  log.push_back("create_task returned");
  co_await asyncio::sleep(0);  // one iteration: the callback, then the task's first step
  log.push_back("after one iteration");
  co_await t;
  co_return log;
}

// FIFO. API: the coroutine starts at a later loop iteration, never inside create_task.
TEST(Task, CreateTaskRunsBodyAtALaterIteration) {
  Log log = run_virtual(body_starts_later());
  EXPECT_EQ(log, (Log{"create_task returned", "call_soon", "task body", "after one iteration"}));
}

TEST(Task, LoopCreateTaskBeforeRunningStartsWhenLoopRuns) {
  auto loop = new_virtual_loop();
  bool ran = false;
  Task<void> t = loop->create_task(set_flag(&ran));
  EXPECT_FALSE(ran);
  EXPECT_FALSE(t.done());
  loop->run_until_complete(t);
  EXPECT_TRUE(ran);
  EXPECT_TRUE(t.done());
}

TEST(Task, CreateTaskWithoutRunningLoopThrowsRuntimeError) {
  EXPECT_THROW((void)asyncio::create_task(return_int(1)), asyncio::RuntimeError);
}

TEST(Task, CreateTaskOnClosedLoopThrowsRuntimeError) {
  auto loop = new_virtual_loop();
  loop->close();
  EXPECT_THROW((void)loop->create_task(return_int(1)), asyncio::RuntimeError);
}

// test_task_set_methods
TEST(Task, SetResultAndSetExceptionOnATaskThrowRuntimeError) {
  auto loop = new_virtual_loop();
  Task<std::string> t = loop->create_task([]() -> Coro<std::string> { co_return "ko"; }());
  EXPECT_THROW(t.set_result("ok"), asyncio::RuntimeError);
  EXPECT_THROW(t.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
               asyncio::RuntimeError);
  EXPECT_EQ(loop->run_until_complete(t), "ko");
}

TEST(Task, ResultOfPendingTaskThrowsInvalidStateError) {
  auto loop = new_virtual_loop();
  Task<int> t = loop->create_task(return_int(1));
  EXPECT_THROW((void)t.result(), asyncio::InvalidStateError);
  EXPECT_THROW((void)t.exception(), asyncio::InvalidStateError);
  loop->run_until_complete(t);
}

Coro<void> void_body(int* counter) {
  co_await asyncio::sleep(1);
  ++*counter;
}

TEST(Task, VoidTaskCompletes) {
  auto loop = new_virtual_loop();
  int counter = 0;
  Task<void> t = loop->create_task(void_body(&counter));
  loop->run_until_complete(t);
  EXPECT_EQ(counter, 1);
  EXPECT_TRUE(t.done());
  EXPECT_NO_THROW(t.result());
  EXPECT_EQ(t.exception(), nullptr);
  EXPECT_DOUBLE_EQ(loop->time(), 1.0);
}

TEST(Task, CopiesOfTheHandleShareTheTask) {
  auto loop = new_virtual_loop();
  Task<int> t = loop->create_task(return_int(4));
  Task<int> copy = t;  // NOLINT(performance-unnecessary-copy-initialization)
  EXPECT_TRUE(copy == t);
  EXPECT_EQ(copy.get_name(), t.get_name());
  loop->run_until_complete(t);
  EXPECT_TRUE(copy.done());
  EXPECT_EQ(copy.result(), 4);
}

TEST(Task, EmptyHandleIsFalseAndNamedAccessThrowsInvalidStateError) {
  Task<int> t;
  EXPECT_FALSE(static_cast<bool>(t));
  EXPECT_THROW((void)t.get_name(), asyncio::InvalidStateError);
  EXPECT_THROW((void)t.cancelling(), asyncio::InvalidStateError);
  auto loop = new_virtual_loop();
  t = loop->create_task(return_int(2));
  EXPECT_TRUE(static_cast<bool>(t));
  EXPECT_EQ(loop->run_until_complete(t), 2);
}

TEST(Task, EmptyHandleFutureMembersThrowInvalidStateError) {
  Task<int> t;
  EXPECT_THROW((void)t.done(), asyncio::InvalidStateError);
  EXPECT_THROW((void)t.cancelled(), asyncio::InvalidStateError);
  EXPECT_THROW((void)t.cancel(), asyncio::InvalidStateError);
  EXPECT_THROW((void)t.result(), asyncio::InvalidStateError);
}

// ---- names
// ---------------------------------------------------------------------------------------

/// The N of "Task-N", or -1 when the name is not of that form.
long task_number(const std::string& name) {
  const std::string prefix = "Task-";
  if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size()) return -1;
  const std::string digits = name.substr(prefix.size());
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return -1;
  }
  return std::stol(digits);
}

Coro<std::vector<std::string>> default_names() {
  Task<void> a = asyncio::create_task(t1::noop());
  Task<void> b = asyncio::create_task(t1::noop());
  Task<void> named = asyncio::create_task(t1::noop(), "No-op");
  std::vector<std::string> names{asyncio::current_task().get_name(), a.get_name(), b.get_name(),
                                 named.get_name()};
  co_await a;
  co_await b;
  co_await named;
  co_return names;
}

// test_bare_create_named_task, test_task_repr_autogenerated
TEST(Task, DefaultNamesAreTaskNumberedInCreationOrder) {
  auto names = run_virtual(default_names());
  const long main_n = task_number(names[0]);
  ASSERT_GT(main_n, 0) << names[0];
  EXPECT_EQ(task_number(names[1]), main_n + 1) << names[1];
  EXPECT_EQ(task_number(names[2]), main_n + 2) << names[2];
  EXPECT_EQ(names[3], "No-op");
}

TEST(Task, SetNameRenamesTheTaskForEveryHandle) {
  auto loop = new_virtual_loop();
  Task<int> t = loop->create_task(return_int(1), "first");
  EXPECT_EQ(t.get_name(), "first");
  TaskRef ref = t;
  t.set_name("second");
  EXPECT_EQ(t.get_name(), "second");
  EXPECT_EQ(ref.get_name(), "second");
  loop->run_until_complete(t);
  EXPECT_EQ(t.get_name(), "second");  // names outlive completion
}

// ---- results and exceptions
// ----------------------------------------------------------------------

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

// ---- cancellation ----------------------------------------------------------------------------

// test_cancel_with_message_before_starting_task
TEST(TaskCancel, CancelBeforeFirstStepNeverRunsBody) {
  auto loop = new_virtual_loop();
  bool ran = false;
  Task<void> t = loop->create_task(set_flag(&ran));
  EXPECT_TRUE(t.cancel("my message"));
  EXPECT_FALSE(t.done());  // a request, delivered at the next step
  auto e = thrown<asyncio::CancelledError>([&] { loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "my message");
  EXPECT_FALSE(ran);
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(t.cancel());
}

Coro<std::string> cancel_new_task_and_wait() {
  bool ran = false;
  Task<void> t = asyncio::create_task(set_flag(&ran));
  t.cancel("before start");
  std::string msg;
  try {
    co_await t;
  } catch (const asyncio::CancelledError& e) {
    msg = e.message();
  }
  co_return (ran ? "ran:" : "never ran:") + msg;
}

TEST(TaskCancel, CancelBeforeFirstStepFromAnotherTask) {
  EXPECT_EQ(run_virtual(cancel_new_task_and_wait()), "never ran:before start");
}

// test_cancel
TEST(TaskCancel, CancelSleepingTaskWithCallSoon) {
  auto loop = new_virtual_loop();
  Task<int> t = loop->create_task(value_after(10.0, 12));
  loop->call_soon([t]() mutable { t.cancel(); });
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(t.cancel());
  EXPECT_DOUBLE_EQ(loop->time(), 0.0);  // the 10 s timer was removed, not waited for
}

TEST(TaskCancel, CancelWhileSleepingThrowsInsideAtTheAwaitWithMessage) {
  auto loop = new_virtual_loop();
  std::optional<std::string> seen;
  Task<void> t = loop->create_task(sleep_recording_cancel(3600, &seen));
  loop->call_later(0.25, [t]() mutable { t.cancel("stop now"); });
  auto e = thrown<asyncio::CancelledError>([&] { loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "stop now");
  EXPECT_EQ(seen, "stop now");
  EXPECT_TRUE(t.cancelled());
  EXPECT_DOUBLE_EQ(loop->time(), 0.25);
}

Coro<std::string> cancel_sleeper_after(double when) {
  Task<void> sleeping = asyncio::create_task(sleep_for(5000));
  asyncio::get_running_loop().call_later(when, [sleeping]() mutable { sleeping.cancel(); });
  bool cancelled = false;
  try {
    co_await sleeping;
  } catch (const asyncio::CancelledError&) {
    cancelled = true;
  }
  co_return cancelled ? "cancelled" : "slept in";
}

// test_task_cancel_sleeping_task
TEST(TaskCancel, AwaiterOfCancelledSleeperSeesCancelledError) {
  auto loop = new_virtual_loop();
  EXPECT_EQ(loop->run_until_complete(cancel_sleeper_after(0.1)), "cancelled");
  EXPECT_DOUBLE_EQ(loop->time(), 0.1);
}

// test_task_cancel_waiter_future
TEST(TaskCancel, CancelWhileAwaitingFutureCancelsTheFuture) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  Task<int> t = loop->create_task(await_future(f));
  run_briefly(*loop);
  EXPECT_FALSE(f.done());
  t.cancel();
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(t.cancelled());
}

// test_cancel_inner_future
TEST(TaskCancel, CancellingTheAwaitedFutureCancelsTheTask) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  Task<int> t = loop->create_task(await_future(f));
  run_briefly(*loop);
  f.cancel();
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(t.cancelled());
}

// test_cancel_both_task_and_inner_future
TEST(TaskCancel, CancelBothTaskAndInnerFuture) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  Task<int> t = loop->create_task(await_future(f));
  run_briefly(*loop);
  f.cancel();
  t.cancel();
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(t.cancelled());
}

Coro<int> catch_on_second_future(Future<int> fut1, Future<int> fut2) {
  co_await fut1;
  try {
    co_await fut2;
  } catch (const asyncio::CancelledError&) {
    co_return 42;
  }
  co_return 0;
}

// test_cancel_task_catching
TEST(TaskCancel, TaskThatCatchesCancelledErrorIsNotCancelled) {
  auto loop = new_virtual_loop();
  Future<int> fut1 = loop->create_future<int>();
  Future<int> fut2 = loop->create_future<int>();
  Task<int> t = loop->create_task(catch_on_second_future(fut1, fut2));
  run_briefly(*loop);
  fut1.set_result(0);
  run_briefly(*loop);
  EXPECT_TRUE(t.cancel());
  EXPECT_TRUE(fut2.cancelled());
  EXPECT_EQ(loop->run_until_complete(t), 42);
  EXPECT_FALSE(t.cancelled());
  EXPECT_EQ(t.cancelling(), 1);  // the request is still counted until uncancel()
}

Coro<int> ignore_cancel_then_await(Future<int> fut1, Future<int> fut2, Future<int> fut3) {
  co_await fut1;
  try {
    co_await fut2;
  } catch (const asyncio::CancelledError&) {  // NOLINT(bugprone-empty-catch): ignoring it
  }
  co_return co_await fut3;
}

// test_cancel_task_ignoring
TEST(TaskCancel, IgnoredCancellationLetsTheTaskAwaitAgain) {
  auto loop = new_virtual_loop();
  Future<int> fut1 = loop->create_future<int>();
  Future<int> fut2 = loop->create_future<int>();
  Future<int> fut3 = loop->create_future<int>();
  Task<int> t = loop->create_task(ignore_cancel_then_await(fut1, fut2, fut3));
  run_briefly(*loop);
  fut1.set_result(0);
  run_briefly(*loop);
  t.cancel();
  EXPECT_TRUE(fut2.cancelled());
  run_briefly(*loop);
  EXPECT_FALSE(t.done());
  fut3.set_result(42);
  EXPECT_EQ(loop->run_until_complete(t), 42);
  EXPECT_FALSE(fut3.cancelled());
  EXPECT_FALSE(t.cancelled());
}

Coro<int> cancel_self_then_sleep(Task<int>* self) {
  self->cancel();
  co_await asyncio::sleep(100);  // cancelled at once
  co_return 12;
}

// test_cancel_current_task
TEST(TaskCancel, CancelOwnTaskThenAwaitIsCancelledImmediately) {
  auto loop = new_virtual_loop();
  Task<int> t;
  t = loop->create_task(cancel_self_then_sleep(&t));
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(t.cancel());
  EXPECT_DOUBLE_EQ(loop->time(), 0.0);  // the 100 s sleep never ran
}

Coro<int> cancel_self_then_return(Task<int>* self) {
  self->cancel("at end");
  co_return 12;
}

// test_cancel_at_end
TEST(TaskCancel, CancelThenReturnInSameStepCountsAsCancelled) {
  auto loop = new_virtual_loop();
  Task<int> t;
  t = loop->create_task(cancel_self_then_return(&t));
  auto e = thrown<asyncio::CancelledError>([&] { (void)loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "at end");
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(t.cancel());
}

Coro<void> cancel_self_then_await_nested(Task<void>* self, Task<void>* nested, Future<int> fut) {
  *nested = asyncio::create_task([](Future<int> f) -> Coro<void> { co_await f; }(fut));
  co_await asyncio::sleep(0);
  self->cancel();
  co_await *nested;  // must cancel the nested task at once
}

// test_cancel_awaited_task
TEST(TaskCancel, CancelledTaskCancelsTheNextTaskItAwaits) {
  auto loop = new_virtual_loop();
  Future<int> fut = loop->create_future<int>();
  Task<void> task;
  Task<void> nested;
  task = loop->create_task(cancel_self_then_await_nested(&task, &nested, fut));
  EXPECT_THROW(loop->run_until_complete(task), asyncio::CancelledError);
  EXPECT_TRUE(task.cancelled());
  ASSERT_TRUE(static_cast<bool>(nested));
  EXPECT_TRUE(nested.cancelled());
  EXPECT_TRUE(fut.cancelled());
}

Coro<std::string> outer_awaiting_inner(std::optional<std::string>* inner_saw) {
  Task<void> inner = asyncio::create_task(sleep_recording_cancel(60, inner_saw));
  co_await inner;
  co_return "finished";
}

TEST(TaskCancel, CancelPropagatesInwardToTheAwaitedTaskWithMessage) {
  auto loop = new_virtual_loop();
  std::optional<std::string> inner_saw;
  Task<std::string> outer = loop->create_task(outer_awaiting_inner(&inner_saw));
  loop->call_later(5, [outer]() mutable { outer.cancel("shutdown"); });
  auto e = thrown<asyncio::CancelledError>([&] { (void)loop->run_until_complete(outer); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "shutdown");
  EXPECT_EQ(inner_saw, "shutdown");
  EXPECT_TRUE(outer.cancelled());
  EXPECT_DOUBLE_EQ(loop->time(), 5.0);
}

Coro<int> swallow_cancel_and_return(int v) {
  try {
    co_await asyncio::sleep(60);
  } catch (const asyncio::CancelledError&) {  // NOLINT(bugprone-empty-catch)
  }
  co_return v;
}

Coro<int> outer_of_swallowing_inner() {
  Task<int> inner = asyncio::create_task(swallow_cancel_and_return(5));
  co_return co_await inner;
}

// Python: Task.cancel leaves _fut_waiter set "as it may be a Task that catches and ignores the
// cancellation": the outer task then gets the inner's result and is not cancelled.
TEST(TaskCancel, OuterGetsResultWhenAwaitedInnerSwallowsTheCancellation) {
  auto loop = new_virtual_loop();
  Task<int> outer = loop->create_task(outer_of_swallowing_inner());
  loop->call_later(1, [outer]() mutable { outer.cancel(); });
  EXPECT_EQ(loop->run_until_complete(outer), 5);
  EXPECT_FALSE(outer.cancelled());
  EXPECT_EQ(outer.cancelling(), 1);
  EXPECT_DOUBLE_EQ(loop->time(), 1.0);
}

Coro<void> inner_waiter_proof(Future<int> waiter, int* proof) {
  try {
    co_await waiter;
  } catch (const asyncio::CancelledError&) {
    *proof += 1;
    throw;
  }
  ADD_FAILURE() << "got past the waiter in inner()";
}

Coro<void> outer_proof(Future<int> waiter, int* proof) {
  try {
    co_await inner_waiter_proof(waiter, proof);
  } catch (const asyncio::CancelledError&) {
    *proof += 100;  // expect this path
    co_return;
  }
  *proof += 10;
}

// test_yield_future_passes_cancel: cancelling outer() cancels inner() cancels waiter.
TEST(TaskCancel, CancellationPassesThroughNestedCoroutines) {
  auto loop = new_virtual_loop();
  int proof = 0;
  Future<int> waiter = loop->create_future<int>();
  Task<void> t = loop->create_task(outer_proof(waiter, &proof));
  run_briefly(*loop);
  t.cancel();
  loop->run_until_complete(t);
  EXPECT_EQ(proof, 101);
  EXPECT_TRUE(waiter.cancelled());
  EXPECT_FALSE(t.cancelled());  // outer() caught it
}

Coro<void> catch_std_exception_only(bool* caught_by_std) {
  try {
    co_await asyncio::sleep(10);
  } catch (const std::exception&) {
    *caught_by_std = true;
  }
}

// API §8: catch (const std::exception&) never swallows a cancellation.
TEST(TaskCancel, CatchStdExceptionDoesNotSwallowCancelledError) {
  auto loop = new_virtual_loop();
  bool caught_by_std = false;
  Task<void> t = loop->create_task(catch_std_exception_only(&caught_by_std));
  loop->call_later(1, [t]() mutable { t.cancel(); });
  EXPECT_THROW(loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_FALSE(caught_by_std);
  EXPECT_TRUE(t.cancelled());
  EXPECT_DOUBLE_EQ(loop->time(), 1.0);
}

// test_cancel_yield
TEST(TaskCancel, CancelTaskThatYieldsWithSleepZero) {
  auto loop = new_virtual_loop();
  Task<int> t = loop->create_task([]() -> Coro<int> {
    co_await asyncio::sleep(0);
    co_await asyncio::sleep(0);
    co_return 12;
  }());
  run_briefly(*loop);
  t.cancel();
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(t.cancel());
}

TEST(TaskCancel, CancelOfDoneTaskReturnsFalseAndCountsNothing) {
  auto loop = new_virtual_loop();
  Task<int> ok = loop->create_task(return_int(1));
  Task<void> failed = loop->create_task(throw_runtime("x"));
  loop->run_until_complete(ok);
  EXPECT_THROW(loop->run_until_complete(failed), std::runtime_error);
  EXPECT_FALSE(ok.cancel());
  EXPECT_FALSE(failed.cancel());
  EXPECT_EQ(ok.cancelling(), 0);
  EXPECT_EQ(failed.cancelling(), 0);
  EXPECT_FALSE(ok.cancelled());
  EXPECT_EQ(ok.result(), 1);
}

// test_cancelling
TEST(TaskCancel, CancellingCountsRequestsAndEachCancelReturnsTrue) {
  auto loop = new_virtual_loop();
  Task<void> t = loop->create_task(sleep_for(10));
  EXPECT_EQ(t.cancelling(), 0);
  EXPECT_TRUE(t.cancel());
  EXPECT_EQ(t.cancelling(), 1);
  EXPECT_TRUE(t.cancel());  // 3.11: a second request also returns true
  EXPECT_EQ(t.cancelling(), 2);
  EXPECT_THROW(loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_DOUBLE_EQ(loop->time(), 0.0);
}

Coro<void> uncancel_and_sleep_again() {
  try {
    co_await asyncio::sleep(10);
  } catch (const asyncio::CancelledError&) {
    asyncio::current_task().uncancel();
  }
  co_await asyncio::sleep(10);
}

// test_uncancel_basic
TEST(TaskCancel, UncancelResetsCounterAndTaskCanBeCancelledAgain) {
  auto loop = new_virtual_loop();
  Task<void> t = loop->create_task(uncancel_and_sleep_again());
  loop->run_until_complete(sleep_for(0.01));
  EXPECT_TRUE(t.cancel());
  EXPECT_EQ(t.cancelling(), 1);
  EXPECT_FALSE(t.cancelled());
  loop->run_until_complete(sleep_for(0.01));
  EXPECT_EQ(t.cancelling(), 0);  // after uncancel()
  EXPECT_FALSE(t.done());
  EXPECT_TRUE(t.cancel());
  EXPECT_EQ(t.cancelling(), 1);
  EXPECT_THROW(loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(t.cancelled());
  t.uncancel();  // no longer effective once done
  EXPECT_TRUE(t.cancelled());
  EXPECT_TRUE(t.done());
  EXPECT_NEAR(loop->time(), 0.02, 1e-9);
}

TEST(TaskCancel, UncancelNeverGoesBelowZero) {
  auto loop = new_virtual_loop();
  Task<int> t = loop->create_task(return_int(1));
  EXPECT_EQ(t.uncancel(), 0);
  EXPECT_EQ(t.cancelling(), 0);
  t.cancel();
  t.cancel();
  EXPECT_EQ(t.uncancel(), 1);
  EXPECT_EQ(t.uncancel(), 0);
  EXPECT_EQ(t.uncancel(), 0);
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);  // still requested
}

struct RequestOutcome {
  bool timed_out = false;
  bool block_finished = false;
  bool outer_code_reached = false;
};

/// test_uncancel_structured_blocks: a hand-made timeout around a "structured block".
Coro<RequestOutcome> make_request_with_timeout(double sleep_s, double timeout) {
  TaskRef task = asyncio::current_task();
  auto& loop = asyncio::get_running_loop();
  RequestOutcome out;
  auto handle = loop.call_later(timeout, [&out, task]() mutable {
    out.timed_out = true;
    task.cancel();
  });
  std::exception_ptr err;
  try {
    co_await asyncio::sleep(sleep_s);  // the structured block affected by the timeout
    out.block_finished = true;
  } catch (...) {
    err = std::current_exception();
  }
  handle.cancel();
  // Only our own cancellation, when it brings the count back to 0, becomes a time-out.
  if (out.timed_out && task.uncancel() == 0 && t1::cancel_message_of(err).has_value()) {
    err = nullptr;  // TimeoutError, handled at once
  }
  if (err) std::rethrow_exception(err);
  out.outer_code_reached = true;
  co_await asyncio::sleep(0);
  co_return out;
}

TEST(TaskCancel, UncancelSupportsStructuredTimeoutBlocks) {
  auto loop = new_virtual_loop();
  Task<RequestOutcome> t1 = loop->create_task(make_request_with_timeout(10.0, 0.1));
  RequestOutcome r1 = loop->run_until_complete(t1);
  EXPECT_TRUE(r1.timed_out);
  EXPECT_FALSE(r1.block_finished);
  EXPECT_TRUE(r1.outer_code_reached);
  EXPECT_EQ(t1.cancelling(), 0);
  EXPECT_FALSE(t1.cancelled());
  EXPECT_DOUBLE_EQ(loop->time(), 0.1);

  Task<RequestOutcome> t2 = loop->create_task(make_request_with_timeout(0, 10.0));
  RequestOutcome r2 = loop->run_until_complete(t2);
  EXPECT_FALSE(r2.timed_out);
  EXPECT_TRUE(r2.block_finished);
  EXPECT_TRUE(r2.outer_code_reached);
  EXPECT_EQ(t2.cancelling(), 0);
  EXPECT_DOUBLE_EQ(loop->time(), 0.1);  // the cancelled 10 s timer was not waited for
}

Coro<void> two_cancels_one_delivery(int* deliveries) {
  try {
    co_await asyncio::sleep(10);
  } catch (const asyncio::CancelledError&) {
    ++*deliveries;
  }
  co_await asyncio::sleep(1);  // the second request was not delivered again
}

// Python: the second cancel() finds the sleep already cancelled, sets _must_cancel, and the
// coroutine gets one CancelledError for both.
TEST(TaskCancel, TwoRequestsWhileParkedDeliverOneCancelledError) {
  auto loop = new_virtual_loop();
  int deliveries = 0;
  Task<void> t = loop->create_task(two_cancels_one_delivery(&deliveries));
  run_briefly(*loop);
  EXPECT_TRUE(t.cancel());
  EXPECT_TRUE(t.cancel());
  loop->run_until_complete(t);
  EXPECT_EQ(deliveries, 1);
  EXPECT_FALSE(t.cancelled());
  EXPECT_EQ(t.cancelling(), 2);
  EXPECT_DOUBLE_EQ(loop->time(), 1.0);
}

Coro<int> await_future_then_more(Future<int> f) {
  int v = co_await f;  // the cancellation arrives after f completed, before the task resumed
  co_await asyncio::sleep(5);
  co_return v;
}

// Python: cancel() after the awaited future completed finds _fut_waiter done, sets _must_cancel,
// and __step throws CancelledError at that await.
TEST(TaskCancel, CancelAfterAwaitedFutureCompletedIsDeliveredAtThatAwait) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  Task<int> t = loop->create_task(await_future_then_more(f));
  run_briefly(*loop);
  f.set_result(1);  // wakes t...
  t.cancel();       // ...but it has not run yet
  EXPECT_FALSE(f.cancelled());
  EXPECT_THROW((void)loop->run_until_complete(t), asyncio::CancelledError);
  EXPECT_TRUE(t.cancelled());
  EXPECT_DOUBLE_EQ(loop->time(), 0.0);
}

Coro<void> raise_cancelled_error_itself() {
  co_await asyncio::sleep(0);
  throw asyncio::CancelledError("self-made");
}

TEST(TaskCancel, CancelledErrorEscapingTheBodyMakesTheTaskCancelled) {
  auto loop = new_virtual_loop();
  Task<void> t = loop->create_task(raise_cancelled_error_itself());
  auto e = thrown<asyncio::CancelledError>([&] { loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "self-made");
  EXPECT_TRUE(t.cancelled());
}

Coro<double> cleanup_then_rethrow() {
  std::exception_ptr err;
  try {
    co_await asyncio::sleep(3600);
  } catch (...) {
    err = std::current_exception();
  }
  co_await asyncio::sleep(2);  // clean-up that awaits (STYLE habit 4)
  if (err) std::rethrow_exception(err);
  co_return 0;
}

TEST(TaskCancel, AwaitingCleanupAfterCatchingThenRethrowingEndsCancelled) {
  auto loop = new_virtual_loop();
  Task<double> t = loop->create_task(cleanup_then_rethrow());
  loop->call_later(1, [t]() mutable { t.cancel("bye"); });
  auto e = thrown<asyncio::CancelledError>([&] { (void)loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "bye");
  EXPECT_TRUE(t.cancelled());
  EXPECT_DOUBLE_EQ(loop->time(), 3.0);  // cancelled at 1, cleaned up for 2 more
}

Coro<std::string> result_of_cancelled_task() {
  Task<void> t = asyncio::create_task(sleep_for(10));
  co_await asyncio::sleep(0);
  t.cancel("my message");
  try {
    co_await t;
  } catch (const asyncio::CancelledError&) {  // NOLINT(bugprone-empty-catch): checked below
  }
  std::string via_result;
  std::string via_exception;
  try {
    t.result();
  } catch (const asyncio::CancelledError& e) {
    via_result = e.message();
  }
  try {
    (void)t.exception();
  } catch (const asyncio::CancelledError& e) {
    via_exception = e.message();
  }
  co_return via_result + "|" + via_exception;
}

// test_cancel_with_message_then_future_result / _exception
TEST(TaskCancel, ResultAndExceptionOfCancelledTaskThrowCancelledErrorWithMessage) {
  EXPECT_EQ(run_virtual(result_of_cancelled_task()), "my message|my message");
}

Coro<int> awaiter_survives_cancelled_inner() {
  Task<void> inner = asyncio::create_task(sleep_for(10));
  co_await asyncio::sleep(0);
  inner.cancel();
  int status = 0;
  try {
    co_await inner;
  } catch (const asyncio::CancelledError&) {
    status = 1;
  }
  co_return status * 10 + asyncio::current_task().cancelling();
}

TEST(TaskCancel, AwaiterOfCancelledTaskIsNotItselfCancelled) {
  EXPECT_EQ(run_virtual(awaiter_survives_cancelled_inner()), 10);  // caught, cancelling() == 0
}

Coro<void> kbi_on_cancel() {
  try {
    co_await asyncio::sleep(10);
  } catch (const asyncio::CancelledError&) {
    throw asyncio::KeyboardInterrupt();
  }
}

// test_baseexception_during_cancel (SystemExit there, KeyboardInterrupt here)
TEST(TaskCancel, KeyboardInterruptRaisedWhileCancellingLeavesTheLoop) {
  auto loop = new_virtual_loop();
  Task<void> t = loop->create_task(kbi_on_cancel());
  run_briefly(*loop);
  t.cancel();
  EXPECT_FALSE(t.done());
  EXPECT_THROW(run_briefly(*loop), asyncio::KeyboardInterrupt);
  EXPECT_TRUE(t.done());
  EXPECT_FALSE(t.cancelled());
  EXPECT_TRUE(asyncio_test::holds<asyncio::KeyboardInterrupt>(t.exception()));
}

Coro<std::string> await_shared_future(Future<int> f) {
  try {
    co_return std::to_string(co_await f);
  } catch (const asyncio::CancelledError& e) {
    co_return "cancelled:" + e.message();
  }
}

// Python semantics: cancelling a task cancels the future it awaits, even when others await it
// too (shield() exists for that).
TEST(TaskCancel, CancellingOneAwaiterCancelsTheSharedFutureForAll) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  Task<std::string> a = loop->create_task(await_shared_future(f));
  Task<std::string> b = loop->create_task(await_shared_future(f));
  run_briefly(*loop);
  a.cancel("only a");
  EXPECT_EQ(loop->run_until_complete(a), "cancelled:only a");
  EXPECT_EQ(loop->run_until_complete(b), "cancelled:only a");
  EXPECT_TRUE(f.cancelled());
}

Coro<std::string> self_cancel_then_await_done_future(Task<std::string>* self, Future<int> done) {
  self->cancel();
  std::string out = "got " + std::to_string(co_await done);  // done: does not suspend
  try {
    co_await asyncio::sleep(1);
  } catch (const asyncio::CancelledError&) {
    out += ", cancelled at the sleep";
  }
  co_return out;
}

// Python: `await fut` on a done future returns without yielding, so a pending request waits for
// the next real suspension.
TEST(TaskCancel, PendingRequestIsDeliveredAtTheNextRealSuspension) {
  auto loop = new_virtual_loop();
  Future<int> done = loop->create_future<int>();
  done.set_result(3);
  Task<std::string> t;
  t = loop->create_task(self_cancel_then_await_done_future(&t, done));
  EXPECT_EQ(loop->run_until_complete(t), "got 3, cancelled at the sleep");
  EXPECT_FALSE(t.cancelled());
  EXPECT_DOUBLE_EQ(loop->time(), 0.0);
}

TEST(TaskCancel, LatestCancelMessageWins) {
  auto loop = new_virtual_loop();
  std::optional<std::string> seen;
  Task<void> t = loop->create_task(sleep_recording_cancel(10, &seen));
  run_briefly(*loop);
  t.cancel("first");
  t.cancel("second");
  auto e = thrown<asyncio::CancelledError>([&] { loop->run_until_complete(t); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(seen, "second");
  EXPECT_EQ(e->message(), "second");
}

Coro<void> outer_creating_inner(bool* inner_ran) {
  Task<void> inner = asyncio::create_task(set_flag(inner_ran));
  co_await inner;  // parks before inner's first step
}

TEST(TaskCancel, CancellingOuterBeforeInnerStartedMeansInnerBodyNeverRuns) {
  auto loop = new_virtual_loop();
  bool inner_ran = false;
  Task<void> outer = loop->create_task(outer_creating_inner(&inner_ran));
  // One iteration: outer's first step runs and parks on inner, whose first step is queued.
  loop->call_soon([outer]() mutable { outer.cancel("early"); });
  auto e = thrown<asyncio::CancelledError>([&] { loop->run_until_complete(outer); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message(), "early");
  EXPECT_FALSE(inner_ran);
  EXPECT_TRUE(outer.cancelled());
}

// ---- sleep ------------------------------------------------------------------------------------

Coro<std::string> sleeper(double dt, std::string arg) {
  co_await asyncio::sleep(dt / 2);
  std::string res = co_await asyncio::sleep(dt / 2, arg);
  co_return res;
}

// test_sleep
TEST(Sleep, ReturnsItsValueAfterTheDelay) {
  auto loop = new_virtual_loop();
  Task<std::string> t = loop->create_task(sleeper(0.1, "yeah"));
  loop->run_until_complete(t);
  EXPECT_EQ(t.result(), "yeah");
  EXPECT_NEAR(loop->time(), 0.1, 1e-9);
}

Coro<int> sleep_zero_lets_callbacks_run() {
  int result = 0;
  asyncio::get_running_loop().call_soon([&result] { result += 1; });
  EXPECT_EQ(result, 0);
  int num = co_await asyncio::sleep(0, 10);
  EXPECT_EQ(result, 1);  // the call_soon callback ran during the yield
  co_return result + num;
}

// test_sleep_zero (FIFO)
TEST(Sleep, SleepZeroYieldsOneIterationAndReturnsValue) {
  EXPECT_EQ(run_virtual(sleep_zero_lets_callbacks_run()), 11);
}

Coro<double> sleep_an_hour() {
  using namespace std::chrono_literals;
  co_await asyncio::sleep(1h);
  co_await asyncio::sleep(250ms);
  co_await asyncio::sleep(2);
  co_return asyncio::get_running_loop().time();
}

TEST(Sleep, AcceptsChronoDurationsAndWholeSeconds) {
  EXPECT_DOUBLE_EQ(run_virtual(sleep_an_hour()), 3602.25);
}

Coro<double> sleep_negative() {
  co_await asyncio::sleep(-5.0);
  co_return asyncio::get_running_loop().time();
}

TEST(Sleep, NegativeDelayYieldsWithoutMovingTime) {
  EXPECT_DOUBLE_EQ(run_virtual(sleep_negative()), 0.0);
}

// Python: awaiting the same asyncio.sleep() coroutine twice raises RuntimeError.
TEST(Sleep, AwaitingTheSameSleepTwiceThrowsRuntimeError) {
  auto body = []() -> Coro<double> {
    auto nap = asyncio::sleep(1.5);
    co_await nap;
    EXPECT_DOUBLE_EQ(asyncio::get_running_loop().time(), 1.5);
    EXPECT_THROW(co_await nap, asyncio::RuntimeError);
    co_return asyncio::get_running_loop().time();
  };
  EXPECT_DOUBLE_EQ(run_virtual(body()), 1.5);  // the refused await did not sleep
}

TEST(Sleep, NanDelayThrowsValueError) {
  EXPECT_THROW(run_virtual([]() -> Coro<void> {
                 co_await asyncio::sleep(std::numeric_limits<double>::quiet_NaN());
               }()),
               asyncio::ValueError);
}

// ---- current_task / all_tasks / TaskRef -------------------------------------------------------

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

// ---- lifetime: fire-and-forget, loop close, asyncio::run ---------------------------------------

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
  log->push_back("leftover " + t1::cancel_message_of(err).value_or("not cancelled"));
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

// ---- misuse ------------------------------------------------------------------------------------

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

// ---- ordering ----------------------------------------------------------------------------------

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

// ---- done callbacks on tasks -----------------------------------------------------------------

TEST(TaskCallbacks, DoneCallbackSeesTheFinishedTask) {
  auto loop = new_virtual_loop();
  Task<int> t = loop->create_task(value_after(1, 9));
  int seen = 0;
  bool same = false;
  t.add_done_callback([&, t](Future<int>& f) {
    seen = f.result();
    same = (f == t);
  });
  loop->run_until_complete(t);
  run_briefly(*loop);
  EXPECT_EQ(seen, 9);
  EXPECT_TRUE(same);
}

TEST(TaskCallbacks, DoneCallbackRunsForCancelledTask) {
  auto loop = new_virtual_loop();
  Task<void> t = loop->create_task(sleep_for(5));
  bool cancelled = false;
  t.add_done_callback([&](Future<void>& f) { cancelled = f.cancelled(); });
  t.cancel();
  EXPECT_THROW(loop->run_until_complete(t), asyncio::CancelledError);
  run_briefly(*loop);
  EXPECT_TRUE(cancelled);
}

TEST(TaskCallbacks, CreateTaskFromADoneCallbackRuns) {
  auto loop = new_virtual_loop();
  Future<int> f = loop->create_future<int>();
  bool ran = false;
  Task<void> spawned;
  f.add_done_callback([&](Future<int>&) { spawned = asyncio::create_task(set_flag(&ran)); });
  f.set_result(1);
  run_briefly(*loop);
  ASSERT_TRUE(static_cast<bool>(spawned));
  loop->run_until_complete(spawned);
  EXPECT_TRUE(ran);
}

}  // namespace

// What an idle task costs is a feature (docs/design/loop.md, "Memory"): these sizes are the
// budget bench/RESULTS.md accounts for; growing them is a decision, not an accident.
TEST(TaskMemory, ATaskStateFitsIn64Bytes) {
  EXPECT_LE(sizeof(asyncio::detail::TaskState), 64U);
}

TEST(TaskMemory, ASleepAwaiterIs24Bytes) {
  EXPECT_LE(sizeof(asyncio::detail::SleepAwaiter<void>), 24U);
}

TEST(TaskMemory, ACoroPromiseKeepsValueAndErrorInOneWord) {
  EXPECT_LE(sizeof(asyncio::detail::CoroPromise<long>), 3 * sizeof(void*));
  EXPECT_LE(sizeof(asyncio::detail::CoroPromise<void>), 3 * sizeof(void*));
}
