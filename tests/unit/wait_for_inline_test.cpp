// Tests for wait_for() of a coroutine (asyncio/composition.hpp, issue 16): as in Python 3.12,
// `wait_for(coro, t)` is `async with timeout(t): return await coro`, so the coroutine runs inside
// the awaiting task, starts at once, and sees the awaiting task's cancellations itself. Until
// issue 16 it became a new task (Python 3.11's ensure_future), which started one loop iteration
// later. Tasks and futures passed to wait_for keep their own engine (wait_for_test.cpp).
//
// The last test counts allocations; this file replaces the global operator new for that.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {
std::atomic<long> g_allocs{0};  // calls of the global operator new (AllocatesNoMoreThan...)
}  // namespace

// Every form of new and delete that shares malloc/free, so that pairs always match. (g++ sees
// the free() of what an inlined operator new returned, and warns: it is what they are for.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  return ::operator new(n);
}
void* operator new(std::size_t n, const std::nothrow_t& /*tag*/) noexcept {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t& tag) noexcept {
  return ::operator new(n, tag);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t /*n*/) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t /*n*/) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t& /*tag*/) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t& /*tag*/) noexcept {
  std::free(p);
}

namespace {

using asyncio::CancelledError;
using asyncio::Coro;
using asyncio::ExceptionGroup;
using asyncio::Future;
using asyncio::Task;
using asyncio::TaskGroup;
using asyncio::TaskRef;
using asyncio::TimeoutError;
using asyncio_test::ends_cancelled;
using asyncio_test::holds;
using asyncio_test::run_virtual;
using namespace std::chrono_literals;

double now() {
  return asyncio::get_running_loop().time();
}

/// Sets *flag when destroyed: a coroutine's RAII clean-up ran.
class Cleanup {
 public:
  explicit Cleanup(bool* flag) : flag_(flag) {}
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;
  ~Cleanup() { *flag_ = true; }

 private:
  bool* flag_;
};

/// What a body saw.
struct Seen {
  bool started = false;  // it ran
  bool caught = false;   // its catch block saw CancelledError
  bool cleaned = false;  // its destructors ran
  TaskRef task;          // current_task() inside it
};

/// Sleeps `delay`, noting in *s that it started, which task it runs in, whether CancelledError
/// reached its catch block (rethrown) and that its clean-up ran.
Coro<void> sleep_noting(Seen* s, double delay) {
  s->started = true;
  s->task = asyncio::current_task();
  Cleanup cleanup(&s->cleaned);
  try {
    co_await asyncio::sleep(delay);
  } catch (const CancelledError&) {
    s->caught = true;
    throw;
  }
}

/// Cancels its own task before its first suspension point, then sleeps as sleep_noting().
Coro<void> cancel_self_then_sleep(Seen* s) {
  asyncio::current_task().cancel();
  co_await sleep_noting(s, 10);
}

Coro<int> value_now(int value) {
  co_return value;
}

Coro<int> value_after(double delay, int value) {
  co_await asyncio::sleep(delay);
  co_return value;
}

Coro<int> await_future(Future<int> f) {
  co_return co_await f;
}

Coro<void> fail_after(double delay) {
  co_await asyncio::sleep(delay);
  throw std::runtime_error("child failed");
}

// ---- where and when the coroutine runs ---------------------------------------------------------

TEST(WaitForInline, TheCoroutineRunsInTheAwaitingTask) {
  run_virtual([]() -> Coro<void> {
    Seen seen;
    co_await asyncio::wait_for(sleep_noting(&seen, 0.1), 1);
    EXPECT_TRUE(seen.task == asyncio::current_task());
    EXPECT_EQ(asyncio::all_tasks().size(), 1U);  // none was made for it
  }());
}

// Like `co_await coro`, it starts at once: a coroutine that returns without suspending gives
// its result before any other callback runs (as a task, it would have run an iteration later).
TEST(WaitForInline, ACoroutineThatReturnsAtOnceTakesNoLoopIteration) {
  run_virtual([]() -> Coro<void> {
    int iterations = 0;
    asyncio::get_running_loop().call_soon([&iterations] { ++iterations; });
    EXPECT_EQ(co_await asyncio::wait_for(value_now(5), 1), 5);
    EXPECT_EQ(iterations, 0);
    co_await asyncio::sleep(0);
    EXPECT_EQ(iterations, 1);
  }());
}

// The deadline is taken when the wait starts, not when wait_for() is called (Python 3.12's
// wait_for calls timeout(t) once its coroutine runs).
TEST(WaitForInline, TheDeadlineIsTakenWhenTheWaitStarts) {
  run_virtual([]() -> Coro<void> {
    auto w = asyncio::wait_for(value_after(0.5, 3), 1);
    co_await asyncio::sleep(0.8);
    EXPECT_EQ(co_await w, 3);
    EXPECT_DOUBLE_EQ(now(), 1.3);
  }());
}

// The task tree shows the coroutine inside the awaiting task, and no task of its own.
Coro<void> tree_leaf() {
  co_await asyncio::sleep(10);
}
Coro<void> tree_middle() {
  co_await tree_leaf();
}
Coro<void> tree_waiter() {
  co_await asyncio::wait_for(tree_middle(), 20);
}

TEST(WaitForInline, TheTaskTreeShowsTheCoroutineInsideTheAwaitingTask) {
  run_virtual([]() -> Coro<void> {
    Task<void> w = asyncio::create_task(tree_waiter(), "waiter");
    co_await asyncio::sleep(1);
    const std::string tree = asyncio::format_task_tree();
    EXPECT_NE(tree.find("── (T) waiter\n"
                        "    └── tree_waiter\n"
                        "        └── tree_middle\n"
                        "            └── tree_leaf\n"),
              std::string::npos)
        << tree;
    std::size_t tasks = 0;
    for (std::size_t at = tree.find("(T)"); at != std::string::npos; at = tree.find("(T)", at + 1))
      ++tasks;
    EXPECT_EQ(tasks, 2U) << tree;  // the main task and the waiter
    w.cancel();
    EXPECT_TRUE(co_await ends_cancelled(w));
  }());
}

// ---- cancellation of the awaiting task ---------------------------------------------------------

// The waiter is cancelled in the iteration in which it entered wait_for. The body has already
// run to its first co_await, so the CancelledError is delivered there: its catch block and its
// destructors run (Python 3.12). As a task it would have been cancelled before its first step,
// its body never run. The Timeout did not cause the cancellation: CancelledError, not
// TimeoutError.
TEST(WaitForInline, ACancellationRightAfterTheStartIsDeliveredInsideTheBody) {
  run_virtual([]() -> Coro<void> {
    Seen seen;
    auto waiter = [](Seen* s) -> Coro<void> { co_await asyncio::wait_for(sleep_noting(s, 10), 1); };
    Task<void> t = asyncio::create_task(waiter(&seen));
    co_await asyncio::sleep(0);  // t took its first step before this task resumed
    EXPECT_TRUE(seen.started);
    t.cancel();
    EXPECT_TRUE(co_await ends_cancelled(t));
    EXPECT_TRUE(seen.caught);
    EXPECT_TRUE(seen.cleaned);
    EXPECT_DOUBLE_EQ(now(), 0);
  }());
}

// A cancellation requested while the body runs, before its first suspension, is delivered at
// that suspension, inside the body.
TEST(WaitForInline, ACancellationBeforeTheFirstSuspensionIsDeliveredThere) {
  run_virtual([]() -> Coro<void> {
    Seen seen;
    auto waiter = [](Seen* s) -> Coro<void> {
      co_await asyncio::wait_for(cancel_self_then_sleep(s), 1);
    };
    Task<void> t = asyncio::create_task(waiter(&seen));
    EXPECT_TRUE(co_await ends_cancelled(t));
    EXPECT_TRUE(seen.caught);
    EXPECT_TRUE(seen.cleaned);
    EXPECT_DOUBLE_EQ(now(), 0);
  }());
}

// An outer cancellation in the deadline's own iteration stays CancelledError: the Timeout
// withdraws its own request and finds another one pending (timeouts.py's __aexit__).
TEST(WaitForInline, AnOuterCancellationAtTheDeadlineStaysCancelledError) {
  run_virtual([]() -> Coro<void> {
    Seen seen;
    auto waiter = [](Seen* s) -> Coro<void> { co_await asyncio::wait_for(sleep_noting(s, 10), 1); };
    Task<void> t = asyncio::create_task(waiter(&seen));
    co_await asyncio::sleep(0);  // the deadline is armed for t = 1
    asyncio::get_running_loop().call_at(1.0, [t]() mutable { t.cancel(); });
    EXPECT_TRUE(co_await ends_cancelled(t));
    EXPECT_TRUE(seen.caught);
    EXPECT_DOUBLE_EQ(now(), 1);
  }());
}

// ---- the deadline ------------------------------------------------------------------------------

// test_wait_for, for a coroutine: at the deadline the body sees CancelledError, its clean-up
// runs, and wait_for throws TimeoutError once it has finished. The Timeout withdrew its
// cancellation request: nothing is left pending on the awaiting task.
TEST(WaitForInline, AtTheDeadlineTheBodySeesCancelledErrorAndWaitForThrowsTimeoutError) {
  run_virtual([]() -> Coro<void> {
    Seen seen;
    EXPECT_THROW(co_await asyncio::wait_for(sleep_noting(&seen, 10), 0.1), TimeoutError);
    EXPECT_TRUE(seen.caught);
    EXPECT_TRUE(seen.cleaned);
    EXPECT_DOUBLE_EQ(now(), 0.1);
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
    co_await asyncio::sleep(0);  // no cancellation delivered here
  }());
}

// The TimeoutError comes from timeout()'s exit, so it carries the body's CancelledError as
// its cause (Python: `raise TimeoutError from exc_val`).
TEST(WaitForInline, TheTimeoutErrorCarriesTheBodysCancelledError) {
  run_virtual([]() -> Coro<void> {
    Seen seen;
    std::exception_ptr error;
    try {
      co_await asyncio::wait_for(sleep_noting(&seen, 10), 0.1);
    } catch (...) {
      error = std::current_exception();
    }
    bool nested_cancel = false;
    try {
      std::rethrow_exception(error);
    } catch (const TimeoutError& e) {
      try {
        std::rethrow_if_nested(e);
      } catch (const CancelledError&) {
        nested_cancel = true;
      }
    }
    EXPECT_TRUE(nested_cancel);
  }());
}

// A body that cleans up slowly is waited for: TimeoutError comes once it has finished.
TEST(WaitForInline, TimeoutErrorComesOnceTheBodyHasFinishedCancelling) {
  run_virtual([]() -> Coro<void> {
    auto slow = [](bool* done) -> Coro<void> {
      std::exception_ptr err;
      try {
        co_await asyncio::sleep(10);
      } catch (...) {
        err = std::current_exception();
      }
      co_await asyncio::sleep(0.5);
      *done = true;
      if (err) std::rethrow_exception(err);
    };
    bool done = false;
    EXPECT_THROW(co_await asyncio::wait_for(slow(&done), 0.1), TimeoutError);
    EXPECT_TRUE(done);
    EXPECT_DOUBLE_EQ(now(), 0.6);
  }());
}

// test_wait_for_cancel_suppressed, and timeouts.py's __aexit__: a body that swallows the
// cancellation returns its value. The Timeout has expired and fires no second time; its
// request is withdrawn (cancelling() back to 0).
TEST(WaitForInline, ABodyThatSwallowsTheTimeoutReturnsItsValue) {
  run_virtual([]() -> Coro<void> {
    auto swallow = []() -> Coro<int> {
      try {
        co_await asyncio::sleep(10);
      } catch (const CancelledError&) {
      }
      co_await asyncio::sleep(1);  // past the deadline, not cancelled again
      co_return 42;
    };
    EXPECT_EQ(co_await asyncio::wait_for(swallow(), 0.1), 42);
    EXPECT_DOUBLE_EQ(now(), 1.1);
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
  }());
}

// A result that arrives in the deadline's own iteration loses to the deadline, as in Python
// 3.12: the Timeout cancels the awaiting task at the deadline, before the woken coroutine runs.
// (A task or future keeps such a value: WaitFor.AResultArrivingInTheDeadlinesIterationIsNotLost.)
TEST(WaitForInline, AResultArrivingInTheDeadlinesIterationLosesToTheDeadline) {
  run_virtual([]() -> Coro<void> {
    Future<int> f;
    asyncio::get_running_loop().call_at(1.0, [f]() mutable { f.set_result(7); });  // first
    EXPECT_THROW(co_await asyncio::wait_for(await_future(f), 1.0), TimeoutError);
    EXPECT_EQ(f.result(), 7);
  }());
}

// test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started, in full: with a time-out
// <= 0 the coroutine becomes a task (ensure_future) that is cancelled before its first step. Its
// body never runs, its frame is destroyed (the parameter it holds is released), no loop time
// passes, and the awaiting task's cancelling count is untouched.
TEST(WaitForInline, ZeroOrNegativeTimeoutNeverRunsTheBody) {
  run_virtual([]() -> Coro<void> {
    auto body = [](bool* started, std::shared_ptr<int> held) -> Coro<int> {
      *started = true;
      co_return *held;
    };
    const std::vector<double> timeouts{0.0, -1.0};
    for (double timeout : timeouts) {
      bool started = false;
      auto held = std::make_shared<int>(1);
      EXPECT_THROW(co_await asyncio::wait_for(body(&started, held), timeout), TimeoutError);
      EXPECT_FALSE(started);
      EXPECT_EQ(held.use_count(), 1);
      EXPECT_DOUBLE_EQ(now(), 0);
      EXPECT_EQ(asyncio::current_task().cancelling(), 0);
    }
  }());
}

// ---- nesting -----------------------------------------------------------------------------------

// The outer deadline first: the inner wait_for lets the CancelledError through (it is not its
// own) and the outer one turns it into TimeoutError.
TEST(WaitForInline, NestedTheOuterDeadlineFirst) {
  run_virtual([]() -> Coro<void> {
    auto middle = [](Seen* s, bool* inner_timed_out) -> Coro<void> {
      try {
        co_await asyncio::wait_for(sleep_noting(s, 10), 5);
      } catch (const TimeoutError&) {
        *inner_timed_out = true;
        throw;
      }
    };
    Seen seen;
    bool inner_timed_out = false;
    EXPECT_THROW(co_await asyncio::wait_for(middle(&seen, &inner_timed_out), 1), TimeoutError);
    EXPECT_FALSE(inner_timed_out);
    EXPECT_TRUE(seen.caught);
    EXPECT_DOUBLE_EQ(now(), 1);
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
  }());
}

// The inner deadline first: the inner wait_for throws TimeoutError; the coroutine around it
// may catch it and go on within the outer time-out.
TEST(WaitForInline, NestedTheInnerDeadlineFirst) {
  run_virtual([]() -> Coro<void> {
    auto middle = []() -> Coro<int> {
      bool timed_out = false;
      try {
        co_return co_await asyncio::wait_for(value_after(10, 1), 1);
      } catch (const TimeoutError&) {
        timed_out = true;
      }
      EXPECT_TRUE(timed_out);
      co_return co_await value_after(1, 2);
    };
    EXPECT_EQ(co_await asyncio::wait_for(middle(), 5), 2);
    EXPECT_DOUBLE_EQ(now(), 2);
    // wait_for of a wait_for: both run inline; the inner one's deadline comes first.
    EXPECT_THROW(co_await asyncio::wait_for(asyncio::wait_for(value_after(10, 1), 1), 2),
                 TimeoutError);
    EXPECT_DOUBLE_EQ(now(), 3);
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
  }());
}

// ---- task groups -------------------------------------------------------------------------------

// A wait_for that times out in a task group's body: its TimeoutError is the body's error; the
// children are cancelled and the group throws ExceptionGroup{TimeoutError}.
TEST(WaitForInline, ATimeoutInATaskGroupBodyIsTheBodysError) {
  run_virtual([]() -> Coro<void> {
    Seen child;
    std::vector<std::exception_ptr> errors;
    try {
      co_await asyncio::task_group([&child](TaskGroup& tg) -> Coro<void> {
        tg.create_task(sleep_noting(&child, 10));
        co_await asyncio::wait_for(value_after(10, 1), 1);
      });
    } catch (const ExceptionGroup& eg) {
      errors = eg.exceptions();
    }
    EXPECT_EQ(errors.size(), 1U);
    EXPECT_TRUE(!errors.empty() && holds<TimeoutError>(errors[0]));
    EXPECT_TRUE(child.caught);
    EXPECT_DOUBLE_EQ(now(), 1);
  }());
}

// The group's own cancellation of its body is no time-out: a child fails while the body waits
// inside wait_for; the body sees CancelledError, wait_for passes it on, and the group throws
// ExceptionGroup with the child's error only.
TEST(WaitForInline, ATaskGroupAbortDuringWaitForIsNotATimeout) {
  run_virtual([]() -> Coro<void> {
    Seen body;
    std::vector<std::exception_ptr> errors;
    try {
      co_await asyncio::task_group([&body](TaskGroup& tg) -> Coro<void> {
        tg.create_task(fail_after(0.5));
        co_await asyncio::wait_for(sleep_noting(&body, 10), 1);
      });
    } catch (const ExceptionGroup& eg) {
      errors = eg.exceptions();
    }
    EXPECT_EQ(errors.size(), 1U);
    EXPECT_TRUE(!errors.empty() && holds<std::runtime_error>(errors[0]));
    EXPECT_TRUE(body.caught);
    EXPECT_DOUBLE_EQ(now(), 0.5);
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
  }());
}

// In a task group's child, the coroutine runs in the child's task; its TimeoutError fails the
// child like any error.
TEST(WaitForInline, InATaskGroupChildTheCoroutineRunsInTheChild) {
  run_virtual([]() -> Coro<void> {
    auto child = [](Seen* s, TaskRef* self) -> Coro<void> {
      *self = asyncio::current_task();
      co_await asyncio::wait_for(sleep_noting(s, 10), 1);
    };
    Seen seen;
    TaskRef self;
    std::vector<std::exception_ptr> errors;
    try {
      co_await asyncio::task_group([&](TaskGroup& tg) -> Coro<void> {
        tg.create_task(child(&seen, &self));
        co_return;
      });
    } catch (const ExceptionGroup& eg) {
      errors = eg.exceptions();
    }
    EXPECT_TRUE(seen.task == self);
    EXPECT_EQ(errors.size(), 1U);
    EXPECT_TRUE(!errors.empty() && holds<TimeoutError>(errors[0]));
  }());
}

// ---- other awaitables --------------------------------------------------------------------------

// Any awaitable that is not a task or a future runs inline too, as `await aw` does in 3.12:
// gather() (its children are cancelled through the awaiting task) and a lock's acquire().
TEST(WaitForInline, OtherAwaitablesRunInTheAwaitingTaskToo) {
  run_virtual([]() -> Coro<void> {
    Seen a;
    Seen b;
    EXPECT_THROW(
        co_await asyncio::wait_for(asyncio::gather(sleep_noting(&a, 10), sleep_noting(&b, 10)), 1),
        TimeoutError);
    EXPECT_TRUE(a.caught);
    EXPECT_TRUE(b.caught);
    EXPECT_EQ(asyncio::all_tasks().size(), 1U);
    asyncio::Lock lock;
    co_await lock.acquire();
    EXPECT_THROW(co_await asyncio::wait_for(lock.acquire(), 1), TimeoutError);
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
    lock.release();
    co_await asyncio::wait_for(lock.acquire(), 1);
    EXPECT_TRUE(lock.locked());
    lock.release();
  }());
}

// ---- cost --------------------------------------------------------------------------------------

// No task: wait_for(coro) allocates no more than waiting on a task did (what it used to do with
// a coroutine). With the frame pool on, both are 0 once warm; without it (sanitizer builds),
// every frame and runtime object counts.
TEST(WaitForInline, AllocatesNoMoreThanWaitingOnATask) {
  run_virtual([]() -> Coro<void> {
    constexpr int kRounds = 50;
    int sum = 0;
    for (int i = 0; i < 5; ++i) {  // warm up
      sum += co_await asyncio::wait_for(value_now(i), 1s);
      sum += co_await asyncio::wait_for(asyncio::create_task(value_now(i)), 1s);
    }
    const long before_inline = g_allocs.load();
    for (int i = 0; i < kRounds; ++i) sum += co_await asyncio::wait_for(value_now(i), 1s);
    const long inline_allocs = g_allocs.load() - before_inline;
    const long before_task = g_allocs.load();
    for (int i = 0; i < kRounds; ++i) {
      sum += co_await asyncio::wait_for(asyncio::create_task(value_now(i)), 1s);
    }
    const long task_allocs = g_allocs.load() - before_task;
    testing::Test::RecordProperty("allocs_per_wait_for_coro",
                                  std::to_string(inline_allocs / kRounds));
    testing::Test::RecordProperty("allocs_per_wait_for_task",
                                  std::to_string(task_allocs / kRounds));
    EXPECT_LE(inline_allocs, task_allocs)
        << "wait_for(coro): " << inline_allocs << ", wait_for(task): " << task_allocs;
    EXPECT_GT(sum, 0);
  }());
}

}  // namespace
