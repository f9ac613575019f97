// Tests for asyncio/tasks.hpp, the basics of Task<T>: a task is a future; create_task on the
// running loop and on a loop not yet running; void and valued results; handles (copies, empty
// handles); task names; done callbacks on tasks; and what an idle task costs in memory.
//
// Where a test translates something CPython checks (Lib/test/test_asyncio/test_tasks.py,
// BaseTaskTests), its comment names the Python test. Anything involving time runs with virtual
// time and checks loop.time() exactly.
//
// Order of wake-ups: tests marked "FIFO" rely on asyncio's documented order: the ready queue runs
// in order, a new task's first step is queued at create_task, awaiters of one future wake in the
// order they started waiting, and timers with equal deadlines fire in scheduling order.
#include <algorithm>
#include <coroutine>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
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
using Log = std::vector<std::string>;

// ---- helpers -----------------------------------------------------------------------------------

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

// ---- names --------------------------------------------------------------------------------------

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
  Task<void> a = asyncio::create_task(asyncio_test::noop());
  Task<void> b = asyncio::create_task(asyncio_test::noop());
  Task<void> named = asyncio::create_task(asyncio_test::noop(), "No-op");
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

// ---- a Coro<void> that finished without a frame (Coro::finished, drain()'s fast path) ----------

constexpr asyncio::detail::FinishedCoro kDoneAtOnce{"done_at_once"};

TEST(FinishedCoro, AwaitingItReturnsOnceAndThenRefuses) {
  run_virtual([]() -> Coro<void> {
    Coro<void> c = Coro<void>::finished(kDoneAtOnce);
    EXPECT_TRUE(c.valid());
    EXPECT_STREQ(c.name(), "done_at_once");
    co_await c;
    EXPECT_FALSE(c.valid());
    EXPECT_TRUE(
        asyncio_test::holds<asyncio::RuntimeError>(co_await asyncio_test::error_of(std::move(c))));
  }());
}

TEST(FinishedCoro, ScheduledItIsATaskThatFinishesOnItsFirstStep) {
  run_virtual([]() -> Coro<void> {
    Task<void> t = asyncio::create_task(Coro<void>::finished(kDoneAtOnce));
    EXPECT_FALSE(t.done());
    co_await asyncio::sleep(0);
    EXPECT_TRUE(t.done());
    EXPECT_FALSE(t.cancelled());
    co_await t;
    co_await asyncio::gather(Coro<void>::finished(kDoneAtOnce), sleep_for(1));
    co_await asyncio::wait_for(Coro<void>::finished(kDoneAtOnce), 1.0);
  }());
}

TEST(FinishedCoro, AGroupThatRefusesItClosesItSilently) {
  auto loop = new_virtual_loop();
  loop->set_debug(true);
  std::vector<std::string> reports;
  loop->set_exception_handler([&reports](asyncio::EventLoop&, const asyncio::ExceptionContext& c) {
    reports.push_back(c.message);
  });
  loop->run_until_complete([]() -> Coro<void> {
    std::optional<asyncio::TaskGroup> after;  // a copy kept past the group's end
    co_await asyncio::task_group([&](asyncio::TaskGroup& g) -> Coro<void> {
      after = g;
      co_return;
    });
    EXPECT_TRUE(asyncio_test::thrown<asyncio::RuntimeError>(
        [&] { (void)after->create_task(Coro<void>::finished(kDoneAtOnce)); }));
  }());
  EXPECT_TRUE(reports.empty());
  { Coro<void> unused = Coro<void>::finished(kDoneAtOnce); }  // no loop runs: no report either
  loop->run_until_complete([]() -> Coro<void> {
    { Coro<void> unused = Coro<void>::finished(kDoneAtOnce); }
    co_return;
  }());
  EXPECT_EQ(reports, std::vector<std::string>{"coroutine 'done_at_once' was never awaited"});
}

// ---- a Coro<T> run by an operation instead of a frame (Coro::deferred, StreamReader::read) ----

/// A CoroOp<int> for the tests: ready at once or not, failing where told, parking the awaiting
/// task until wake() when not ready. It records what the Coro asked of it.
class TestOp final : public asyncio::detail::CoroOp<int> {
 public:
  TestOp() noexcept : CoroOp("test_op") {}
  TestOp(const TestOp&) = delete;
  TestOp& operator=(const TestOp&) = delete;
  ~TestOp() = default;

  bool ready() override {
    log.emplace_back("ready");
    if (fail_in_ready) throw asyncio::ValueError("refused in ready");
    if (!at_once) wait_.emplace();
    return at_once;
  }
  void suspend(std::coroutine_handle<> caller) noexcept override {
    log.emplace_back("suspend");
    wait_->park_running(caller, "TestOp");
  }
  int finish() override {
    log.emplace_back("finish");
    try {
      if (wait_) wait_->resume_check();  // CancelledError after a cancelled wait
      if (fail_in_finish) throw asyncio::ValueError("refused in finish");
    } catch (...) {
      release();  // finish() ends the use, also when it throws
      throw;
    }
    release();
    return 42;
  }
  void release() noexcept override {
    log.emplace_back("release");
    wait_.reset();
  }
  std::coroutine_handle<asyncio::detail::CoroPromise<int>> frame() override {
    log.emplace_back("frame");
    release();
    return return_int(7).release_for_task();
  }
  /// Resumes the parked task.
  void wake() { wait_->wake_up(); }

  bool at_once = true;
  bool fail_in_ready = false;
  bool fail_in_finish = false;
  Log log;

 private:
  struct Wait final : asyncio::detail::ParkedWaiter {
    Wait() = default;
  };
  std::optional<Wait> wait_;
};

Coro<int> await_op(TestOp& op) {
  co_return co_await Coro<int>::deferred(op);
}

TEST(DeferredCoro, ReadyAtOnceItGivesItsResultWithoutSuspending) {
  run_virtual([]() -> Coro<void> {
    TestOp op;
    Coro<int> c = Coro<int>::deferred(op);
    EXPECT_STREQ(c.name(), "test_op");
    EXPECT_EQ(co_await c, 42);
    EXPECT_FALSE(c.valid());
    EXPECT_EQ(op.log, (Log{"ready", "finish", "release"}));
    EXPECT_TRUE(
        asyncio_test::holds<asyncio::RuntimeError>(co_await asyncio_test::error_of(std::move(c))));
  }());
}

TEST(DeferredCoro, NotReadyItParksTheTaskAtTheCallersAwait) {
  run_virtual([]() -> Coro<void> {
    TestOp op;
    op.at_once = false;
    Task<int> t = asyncio::create_task(await_op(op));
    co_await asyncio::sleep(0);
    EXPECT_EQ(op.log, (Log{"ready", "suspend"}));
    EXPECT_FALSE(t.done());
    op.wake();
    EXPECT_EQ(co_await t, 42);
    EXPECT_EQ(op.log, (Log{"ready", "suspend", "finish", "release"}));
  }());
}

TEST(DeferredCoro, CancelledWhileParkedItIsReleasedOnce) {
  run_virtual([]() -> Coro<void> {
    TestOp op;
    op.at_once = false;
    Task<int> t = asyncio::create_task(await_op(op));
    co_await asyncio::sleep(0);
    t.cancel();
    EXPECT_TRUE(co_await asyncio_test::ends_cancelled(t));
    EXPECT_EQ(op.log, (Log{"ready", "suspend", "finish", "release"}));
  }());
}

TEST(DeferredCoro, WhatReadyOrFinishThrowsIsTheAwaitsAndTheOpIsReleased) {
  run_virtual([]() -> Coro<void> {
    TestOp op;
    op.fail_in_ready = true;
    auto err = co_await asyncio_test::error_of(Coro<int>::deferred(op));
    EXPECT_EQ(asyncio_test::what_of(err), "refused in ready");
    EXPECT_EQ(op.log, (Log{"ready", "release"}));
    op.log.clear();
    op.fail_in_ready = false;
    op.fail_in_finish = true;
    err = co_await asyncio_test::error_of(Coro<int>::deferred(op));
    EXPECT_EQ(asyncio_test::what_of(err), "refused in finish");
    EXPECT_EQ(op.log, (Log{"ready", "finish", "release"}));
  }());
}

TEST(DeferredCoro, ScheduledItRunsTheFrameTheOpMakes) {
  run_virtual([]() -> Coro<void> {
    TestOp op;
    Task<int> t = asyncio::create_task(Coro<int>::deferred(op));
    EXPECT_EQ(op.log, (Log{"frame", "release"}));
    EXPECT_EQ(co_await t, 7);
    op.log.clear();
    auto [a, b] = co_await asyncio::gather(Coro<int>::deferred(op), return_int(1));
    EXPECT_EQ(a, 7);
    EXPECT_EQ(b, 1);
    EXPECT_EQ(op.log, (Log{"frame", "release"}));
  }());
}

TEST(DeferredCoro, UnawaitedItIsReportedByTheOpsNameClosedItIsNot) {
  auto loop = new_virtual_loop();
  loop->set_debug(true);
  asyncio_test::RecordingHandler handler(*loop);
  TestOp op;
  loop->run_until_complete([](TestOp& o) -> Coro<void> {
    { Coro<int> unused = Coro<int>::deferred(o); }
    Coro<int> closed = Coro<int>::deferred(o);
    closed.close();
    EXPECT_FALSE(closed.valid());
    co_return;
  }(op));
  EXPECT_EQ(op.log, (Log{"release", "release"}));
  EXPECT_EQ(handler.messages(), std::vector<std::string>{"coroutine 'test_op' was never awaited"});
}

/// Counts the copies and moves made of it.
struct CountsCopies {
  CountsCopies() = default;
  CountsCopies(const CountsCopies& o) : copies(o.copies + 1), moves(o.moves) {}
  CountsCopies(CountsCopies&& o) noexcept : copies(o.copies), moves(o.moves + 1) {}
  CountsCopies& operator=(const CountsCopies&) = delete;
  CountsCopies& operator=(CountsCopies&&) = delete;
  ~CountsCopies() = default;
  int copies = 0;
  int moves = 0;
};

Coro<CountsCopies> return_local() {
  CountsCopies local;
  co_return local;
}

TEST(CoroResult, CoReturnOfALocalMovesItIntoThePromiseOnce) {
  run_virtual([]() -> Coro<void> {
    const CountsCopies got = co_await return_local();
    EXPECT_EQ(got.copies, 0);
    // Into the promise (one move), into the awaiter's slot, out of await_resume.
    EXPECT_LE(got.moves, 3);
  }());
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
