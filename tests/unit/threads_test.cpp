// Tests for asyncio/threads.hpp: to_thread, run_coroutine_threadsafe and its ConcurrentFuture,
// wrap_future. These tests cross threads: every wait is bounded (kLimit), loops that other
// threads reach run run_forever() in a std::thread, and scripts/test's TSan stage runs them
// (its filter matches the suite names Threads*).
//
// Translated where it applies from CPython 3.12 Lib/test/test_asyncio/test_threads.py
// (ToThreadTests) and test_tasks.py (RunCoroutineThreadsafeTests), and test_futures.py
// (wrap_future tests).
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"

namespace {

using namespace std::chrono_literals;
using asyncio::CancelledError;
using asyncio::ConcurrentFuture;
using asyncio::Coro;
using asyncio::EventLoop;
using asyncio_test::wait_until;

constexpr auto kLimit = 10s;

struct CustomError : std::exception {
  explicit CustomError(int c) : code(c) {}
  [[nodiscard]] const char* what() const noexcept override { return "custom"; }
  int code;
};

/// A loop running run_forever() on its own thread; stopped, joined and closed on destruction.
class LoopThread {
 public:
  explicit LoopThread(asyncio::RunOptions options = {})
      : loop_(asyncio::new_event_loop(options)), thread_([this] { loop_->run_forever(); }) {}
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;
  ~LoopThread() {
    stop_and_join();
    loop_->close();
  }
  EventLoop& loop() { return *loop_; }
  void stop_and_join() {
    if (!thread_.joinable()) return;
    try {
      (void)loop_->call_soon_threadsafe([l = loop_.get()] { l->stop(); });
    } catch (const asyncio::RuntimeError&) {  // NOLINT(bugprone-empty-catch): closed already
    }
    thread_.join();
  }

 private:
  std::unique_ptr<EventLoop> loop_;
  std::thread thread_;
};

Coro<int> add_after(int a, int b, std::chrono::milliseconds d) {
  co_await asyncio::sleep(d);
  co_return a + b;
}

Coro<int> fail_with_value_error() {
  co_await asyncio::sleep(0);
  throw asyncio::ValueError("bad value");
}

Coro<void> sleep_forever_recording(std::shared_ptr<std::atomic<bool>> saw_cancel) {
  try {
    co_await asyncio::sleep(3600);
  } catch (const CancelledError&) {
    saw_cancel->store(true);
    throw;
  }
}

Coro<std::thread::id> loop_thread_id() {
  co_await asyncio::sleep(0);
  co_return std::this_thread::get_id();
}

// ---- to_thread -----------------------------------------------------------------------------

// test_to_thread
TEST(ThreadsToThread, ReturnsTheFunctionsResult) {
  const int v = asyncio::run([]() -> Coro<int> {
    co_return co_await asyncio::to_thread([](int a, int b) { return a * b; }, 6, 7);
  }());
  EXPECT_EQ(v, 42);
}

TEST(ThreadsToThread, VoidFunctionCompletes) {
  auto ran = std::make_shared<std::atomic<bool>>(false);
  asyncio::run([](std::shared_ptr<std::atomic<bool>> r) -> Coro<void> {
    co_await asyncio::to_thread([](std::shared_ptr<std::atomic<bool>> f) { f->store(true); }, r);
  }(ran));
  EXPECT_TRUE(ran->load());
}

TEST(ThreadsToThread, MoveOnlyResult) {
  const int v = asyncio::run([]() -> Coro<int> {
    std::unique_ptr<int> p = co_await asyncio::to_thread([] { return std::make_unique<int>(5); });
    co_return *p;
  }());
  EXPECT_EQ(v, 5);
}

TEST(ThreadsToThread, MoveOnlyArgument) {
  const int v = asyncio::run([]() -> Coro<int> {
    co_return co_await asyncio::to_thread([](std::unique_ptr<int> p) { return *p + 1; },
                                          std::make_unique<int>(9));
  }());
  EXPECT_EQ(v, 10);
}

TEST(ThreadsToThread, RunsOnAnotherThread) {
  const bool differ = asyncio::run([]() -> Coro<bool> {
    const std::thread::id me = std::this_thread::get_id();
    const std::thread::id there =
        co_await asyncio::to_thread([] { return std::this_thread::get_id(); });
    co_return there != me;
  }());
  EXPECT_TRUE(differ);
}

TEST(ThreadsToThread, ArgumentsAreCopied) {
  const std::string s = asyncio::run([]() -> Coro<std::string> {
    std::string text = "abc";
    auto fut = asyncio::to_thread([](std::string t) { return t + "!"; }, text);
    text = "changed";
    co_return co_await fut;
  }());
  EXPECT_EQ(s, "abc!");
}

TEST(ThreadsToThread, ReferencesPassWithStdRef) {
  int target = 1;
  asyncio::run([](int* t) -> Coro<void> {
    co_await asyncio::to_thread([](int& x) { x = 99; }, std::ref(*t));
  }(&target));
  EXPECT_EQ(target, 99);
}

// test_to_thread_exception
TEST(ThreadsToThread, CustomExceptionCrossesIntact) {
  const int code = asyncio::run([]() -> Coro<int> {
    try {
      co_await asyncio::to_thread([] { throw CustomError(17); });
    } catch (const CustomError& e) {
      co_return e.code;
    }
    co_return -1;
  }());
  EXPECT_EQ(code, 17);
}

TEST(ThreadsToThread, RuntimeErrorCrossesIntact) {
  const std::string what = asyncio::run([]() -> Coro<std::string> {
    try {
      (void)co_await asyncio::to_thread([]() -> int { throw std::runtime_error("boom"); });
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "";
  }());
  EXPECT_EQ(what, "boom");
}

TEST(ThreadsToThread, AsyncioValueErrorCrossesIntact) {
  EXPECT_THROW(asyncio::run([]() -> Coro<void> {
                 co_await asyncio::to_thread([] { throw asyncio::ValueError("v"); });
               }()),
               asyncio::ValueError);
}

TEST(ThreadsToThread, ThousandCallsOnAFourThreadDefaultExecutorAllComplete) {
  const long sum = asyncio::run([]() -> Coro<long> {
    asyncio::get_running_loop().set_default_executor(
        std::make_shared<asyncio::ThreadPoolExecutor>(4));
    std::vector<asyncio::Future<int>> futs;
    futs.reserve(1000);
    for (int i = 0; i < 1000; ++i) futs.push_back(asyncio::to_thread([](int x) { return x; }, i));
    long total = 0;
    for (auto& f : futs) total += co_await f;
    co_return total;
  }());
  EXPECT_EQ(sum, 999L * 1000 / 2);
}

// Python: the awaiting task is cancelled; the thread runs on, its result is dropped.
TEST(ThreadsToThread, CancellingTheAwaiterLeavesTheFunctionRunningAndDropsItsResult) {
  auto release = std::make_shared<std::atomic<bool>>(false);
  auto finished = std::make_shared<std::atomic<bool>>(false);
  const bool cancelled = asyncio::run([](std::shared_ptr<std::atomic<bool>> rel,
                                         std::shared_ptr<std::atomic<bool>> fin) -> Coro<bool> {
    auto job = [rel, fin] {
      (void)wait_until([&] { return rel->load(); }, kLimit);
      fin->store(true);
      return std::string("dropped");
    };
    auto t = asyncio::create_task([](decltype(job) j) -> Coro<std::string> {
      co_return co_await asyncio::to_thread(std::move(j));
    }(std::move(job)));
    co_await asyncio::sleep(0.01);
    t.cancel();
    const bool ended_cancelled = co_await asyncio_test::ends_cancelled(t);
    const bool still_running = !fin->load();
    rel->store(true);
    co_return ended_cancelled&& still_running;
  }(release, finished));
  EXPECT_TRUE(cancelled);
  // asyncio::run joined the default executor: the function ran to its end.
  EXPECT_TRUE(finished->load());
}

TEST(ThreadsToThread, SeveralLoopsOnSeveralThreadsAtOnce) {
  std::vector<std::thread> threads;
  std::vector<int> results(4, 0);
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &results] {
      results[static_cast<std::size_t>(t)] = asyncio::run([](int base) -> Coro<int> {
        int acc = 0;
        for (int i = 0; i < 50; ++i)
          acc += co_await asyncio::to_thread([](int x) { return x; }, base);
        co_return acc;
      }(t + 1));
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(results[static_cast<std::size_t>(t)], 50 * (t + 1));
}

TEST(ThreadsToThread, VirtualTimeWaitsForAPendingThreadJob) {
  const std::string order = asyncio_test::run_virtual([]() -> Coro<std::string> {
    auto log = std::make_shared<std::string>();
    auto timer = asyncio::create_task([](std::shared_ptr<std::string> l) -> Coro<void> {
      co_await asyncio::sleep(10);
      *l += "timer;";
    }(log));
    co_await asyncio::to_thread([] { std::this_thread::sleep_for(50ms); });
    *log += "thread;";
    co_await timer;
    co_return *log;
  }());
  EXPECT_EQ(order, "thread;timer;");
}

TEST(ThreadsToThread, NoRunningLoopIsARuntimeError) {
  EXPECT_THROW((void)asyncio::to_thread([] { return 1; }), asyncio::RuntimeError);
}

// ---- run_coroutine_threadsafe --------------------------------------------------------------

// test_run_coroutine_threadsafe
TEST(ThreadsRunCoroutineThreadsafe, ResultFromAForeignThread) {
  LoopThread lt;
  ConcurrentFuture<int> f = asyncio::run_coroutine_threadsafe(add_after(1, 2, 1ms), lt.loop());
  EXPECT_EQ(f.result(kLimit), 3);
  EXPECT_TRUE(f.done());
  EXPECT_FALSE(f.cancelled());
}

TEST(ThreadsRunCoroutineThreadsafe, BlockingResultWithoutTimeout) {
  LoopThread lt;
  auto f = asyncio::run_coroutine_threadsafe(add_after(20, 22, 5ms), lt.loop());
  EXPECT_EQ(f.result(), 42);
  EXPECT_EQ(f.result(), 42);  // a copyable result can be read again
}

TEST(ThreadsRunCoroutineThreadsafe, RunsOnTheLoopsThread) {
  LoopThread lt;
  auto f = asyncio::run_coroutine_threadsafe(loop_thread_id(), lt.loop());
  EXPECT_NE(f.result(kLimit), std::this_thread::get_id());
}

// test_run_coroutine_threadsafe_with_timeout
TEST(ThreadsRunCoroutineThreadsafe, ResultWithTimeoutThrowsTimeoutError) {
  LoopThread lt;
  auto f = asyncio::run_coroutine_threadsafe(add_after(1, 1, 3600s), lt.loop());
  EXPECT_THROW((void)f.result(20ms), asyncio::TimeoutError);
  EXPECT_FALSE(f.done());
  EXPECT_TRUE(f.cancel());
}

// test_run_coroutine_threadsafe_with_exception
TEST(ThreadsRunCoroutineThreadsafe, ExceptionPropagates) {
  LoopThread lt;
  auto f = asyncio::run_coroutine_threadsafe(fail_with_value_error(), lt.loop());
  EXPECT_THROW((void)f.result(kLimit), asyncio::ValueError);
  std::exception_ptr e = f.exception(kLimit);
  EXPECT_TRUE(asyncio_test::holds<asyncio::ValueError>(e));
}

TEST(ThreadsRunCoroutineThreadsafe, ExceptionIsNullOnSuccess) {
  LoopThread lt;
  auto f = asyncio::run_coroutine_threadsafe(add_after(1, 1, 0ms), lt.loop());
  EXPECT_EQ(f.exception(), nullptr);
}

// test_run_coroutine_threadsafe_task_cancelled
TEST(ThreadsRunCoroutineThreadsafe, CancelFromTheForeignThreadCancelsTheTask) {
  LoopThread lt;
  auto saw = std::make_shared<std::atomic<bool>>(false);
  auto f = asyncio::run_coroutine_threadsafe(sleep_forever_recording(saw), lt.loop());
  // Let the task start, so that the coroutine is inside sleep().
  auto probe = asyncio::run_coroutine_threadsafe(add_after(0, 0, 20ms), lt.loop());
  (void)probe.result(kLimit);
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(f.done());
  EXPECT_THROW(f.result(kLimit), CancelledError);
  EXPECT_THROW((void)f.exception(kLimit), CancelledError);
  EXPECT_TRUE(wait_until([&] { return saw->load(); }, kLimit));
}

TEST(ThreadsRunCoroutineThreadsafe, CancelAfterCompletionReturnsFalse) {
  LoopThread lt;
  auto f = asyncio::run_coroutine_threadsafe(add_after(2, 3, 0ms), lt.loop());
  EXPECT_EQ(f.result(kLimit), 5);
  EXPECT_FALSE(f.cancel());
  EXPECT_FALSE(f.cancelled());
}

TEST(ThreadsRunCoroutineThreadsafe, CancelBeforeTheTaskStartsNeverRunsTheCoroutine) {
  auto loop = asyncio::new_event_loop();
  auto ran = std::make_shared<std::atomic<bool>>(false);
  auto f = asyncio::run_coroutine_threadsafe(
      [](std::shared_ptr<std::atomic<bool>> r) -> Coro<void> {
        r->store(true);
        co_return;
      }(ran),
      *loop);
  EXPECT_TRUE(f.cancel());
  loop->run_until_complete(asyncio_test::nap(0.01));
  loop->close();
  EXPECT_FALSE(ran->load());
  EXPECT_TRUE(f.cancelled());
}

TEST(ThreadsRunCoroutineThreadsafe, AddDoneCallbackBeforeCompletionRunsOnCompletion) {
  LoopThread lt;
  auto got = std::make_shared<std::atomic<int>>(0);
  auto gate = asyncio::run_coroutine_threadsafe(add_after(1, 1, 50ms), lt.loop());
  gate.add_done_callback([got](const ConcurrentFuture<int>& f) { got->store(f.result()); });
  EXPECT_EQ(got->load(), 0);
  EXPECT_TRUE(wait_until([&] { return got->load() == 2; }, kLimit));
}

TEST(ThreadsRunCoroutineThreadsafe, AddDoneCallbackAfterCompletionRunsAtOnceOnThisThread) {
  LoopThread lt;
  auto f = asyncio::run_coroutine_threadsafe(add_after(3, 4, 0ms), lt.loop());
  (void)f.result(kLimit);
  int got = 0;
  std::thread::id where;
  f.add_done_callback([&](const ConcurrentFuture<int>& g) {
    got = g.result();
    where = std::this_thread::get_id();
  });
  EXPECT_EQ(got, 7);
  EXPECT_EQ(where, std::this_thread::get_id());
}

TEST(ThreadsRunCoroutineThreadsafe, ClosedLoopIsARuntimeErrorAtTheCall) {
  auto loop = asyncio::new_event_loop();
  loop->close();
  try {
    (void)asyncio::run_coroutine_threadsafe(add_after(1, 1, 0ms), *loop);
    FAIL() << "no error";
  } catch (const asyncio::RuntimeError& e) {
    EXPECT_STREQ(e.what(), "Event loop is closed");
  }
}

TEST(ThreadsRunCoroutineThreadsafe, LoopClosedWithTheTaskPendingEndsTheFutureCancelled) {
  auto f = [] {
    LoopThread lt;
    auto fut = asyncio::run_coroutine_threadsafe(add_after(1, 1, 3600s), lt.loop());
    auto probe = asyncio::run_coroutine_threadsafe(add_after(0, 0, 10ms), lt.loop());
    (void)probe.result(kLimit);
    return fut;
  }();  // the loop stops and closes here, the task still pending
  EXPECT_TRUE(f.done());
  EXPECT_THROW((void)f.result(kLimit), CancelledError);
}

TEST(ThreadsRunCoroutineThreadsafe, LoopClosedBeforeTheTaskStartedEndsTheFutureCancelled) {
  auto loop = asyncio::new_event_loop();
  auto f = asyncio::run_coroutine_threadsafe(add_after(1, 1, 0ms), *loop);
  loop->close();  // the posted callback is discarded, never run
  EXPECT_TRUE(f.cancelled());
  EXPECT_THROW((void)f.result(kLimit), CancelledError);
}

TEST(ThreadsRunCoroutineThreadsafe, ManyThreadsAtOnce) {
  LoopThread lt;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        if (asyncio::run_coroutine_threadsafe(add_after(t, i, 0ms), lt.loop()).result(kLimit) ==
            t + i)
          ok.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 200);
}

TEST(ThreadsRunCoroutineThreadsafe, MoveOnlyResultIsTakenOnce) {
  LoopThread lt;
  auto f = asyncio::run_coroutine_threadsafe(
      []() -> Coro<std::unique_ptr<int>> { co_return std::make_unique<int>(8); }(), lt.loop());
  std::unique_ptr<int> p = f.result(kLimit);
  EXPECT_EQ(*p, 8);
  EXPECT_THROW((void)f.result(kLimit), asyncio::InvalidStateError);
}

// ---- ConcurrentFuture on its own -----------------------------------------------------------

TEST(ThreadsConcurrentFuture, SetResultWakesABlockedReader) {
  ConcurrentFuture<std::string> f;
  std::thread setter([f] {
    std::this_thread::sleep_for(10ms);
    f.set_result(std::string("hi"));
  });
  EXPECT_EQ(f.result(kLimit), "hi");
  setter.join();
  EXPECT_THROW(f.set_result(std::string("again")), asyncio::InvalidStateError);
}

TEST(ThreadsConcurrentFuture, CancelledFutureRefusesAResult) {
  ConcurrentFuture<void> f;
  int calls = 0;
  f.add_done_callback([&](const ConcurrentFuture<void>& g) { calls += g.cancelled() ? 1 : 100; });
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.cancel());  // already cancelled: still true, callbacks not run again
  EXPECT_EQ(calls, 1);
  EXPECT_THROW(f.set_result(), asyncio::InvalidStateError);
  EXPECT_THROW(f.result(), CancelledError);
}

// ---- wrap_future ---------------------------------------------------------------------------

// test_wrap_future
TEST(ThreadsWrapFuture, CompletesWhenAnotherThreadSetsIt) {
  ConcurrentFuture<int> cf;
  std::thread setter([cf] {
    std::this_thread::sleep_for(20ms);
    cf.set_result(11);
  });
  const int v = asyncio::run(asyncio::wrap_future(cf));
  setter.join();
  EXPECT_EQ(v, 11);
}

TEST(ThreadsWrapFuture, FutureOfLoopAAwaitedOnLoopB) {
  LoopThread a;
  ConcurrentFuture<int> cf = asyncio::run_coroutine_threadsafe(add_after(5, 6, 20ms), a.loop());
  int v = 0;
  std::thread b([&v, cf] { v = asyncio::run(asyncio::wrap_future(cf)); });
  b.join();
  EXPECT_EQ(v, 11);
}

TEST(ThreadsWrapFuture, ExceptionReachesTheAwaiter) {
  ConcurrentFuture<void> cf;
  std::thread setter([cf] {
    std::this_thread::sleep_for(5ms);
    cf.set_exception(std::make_exception_ptr(CustomError(3)));
  });
  int code = 0;
  try {
    asyncio::run(asyncio::wrap_future(cf));
  } catch (const CustomError& e) {
    code = e.code;
  }
  setter.join();
  EXPECT_EQ(code, 3);
}

TEST(ThreadsWrapFuture, AlreadyDoneFutureCompletesAtOnce) {
  ConcurrentFuture<std::string> cf;
  cf.set_result(std::string("ready"));
  EXPECT_EQ(asyncio::run(asyncio::wrap_future(cf)), "ready");
}

TEST(ThreadsWrapFuture, CancelledConcurrentFutureCancelsTheAwaiter) {
  ConcurrentFuture<int> cf;
  std::thread canceller([cf] {
    std::this_thread::sleep_for(5ms);
    (void)cf.cancel();
  });
  EXPECT_THROW((void)asyncio::run(asyncio::wrap_future(cf)), CancelledError);
  canceller.join();
}

// test_wrap_future_cancel
TEST(ThreadsWrapFuture, CancellingTheAwaitingTaskCancelsTheConcurrentFuture) {
  ConcurrentFuture<int> cf;
  const bool ended_cancelled = asyncio::run([](ConcurrentFuture<int> f) -> Coro<bool> {
    auto t = asyncio::create_task(asyncio::wrap_future(f));
    co_await asyncio::sleep(0.01);
    t.cancel();
    co_return co_await asyncio_test::ends_cancelled(t);
  }(cf));
  EXPECT_TRUE(ended_cancelled);
  EXPECT_TRUE(cf.cancelled());
}

// test_wrap_future_cancel2: the concurrent future completed first; cancelling the awaiting
// task then leaves it finished with its result (its cancel() is refused).
TEST(ThreadsWrapFuture, CancellingTheAwaiterAfterTheResultLeavesTheConcurrentFutureDone) {
  ConcurrentFuture<int> cf;
  const bool ended_cancelled = asyncio::run([](ConcurrentFuture<int> f) -> Coro<bool> {
    auto t = asyncio::create_task(asyncio::wrap_future(f));
    co_await asyncio::sleep(0);  // t awaits f
    f.set_result(42);            // its completion is posted to this loop...
    t.cancel();                  // ...and the awaiter is cancelled before it runs
    co_return co_await asyncio_test::ends_cancelled(t);
  }(cf));
  EXPECT_TRUE(ended_cancelled);
  EXPECT_FALSE(cf.cancelled());
  EXPECT_EQ(cf.result(), 42);
}

TEST(ThreadsWrapFuture, CancellingTheAwaiterCancelsTheTaskOnTheOtherLoop) {
  LoopThread a;
  auto saw = std::make_shared<std::atomic<bool>>(false);
  auto cf = asyncio::run_coroutine_threadsafe(sleep_forever_recording(saw), a.loop());
  const bool ended_cancelled = asyncio::run([](ConcurrentFuture<void> f) -> Coro<bool> {
    auto t = asyncio::create_task(asyncio::wrap_future(f));
    co_await asyncio::sleep(0.02);
    t.cancel();
    co_return co_await asyncio_test::ends_cancelled(t);
  }(cf));
  EXPECT_TRUE(ended_cancelled);
  EXPECT_TRUE(cf.cancelled());
  EXPECT_TRUE(wait_until([&] { return saw->load(); }, kLimit));
}

TEST(ThreadsWrapFuture, VirtualTimeWaitsForThePendingFuture) {
  ConcurrentFuture<int> cf;
  std::thread setter([cf] {
    std::this_thread::sleep_for(50ms);
    cf.set_result(1);
  });
  const std::string order =
      asyncio_test::run_virtual([](ConcurrentFuture<int> f) -> Coro<std::string> {
        auto log = std::make_shared<std::string>();
        auto timer = asyncio::create_task([](std::shared_ptr<std::string> l) -> Coro<void> {
          co_await asyncio::sleep(10);
          *l += "timer;";
        }(log));
        (void)co_await asyncio::wrap_future(f);
        *log += "future;";
        co_await timer;
        co_return *log;
      }(cf));
  setter.join();
  EXPECT_EQ(order, "future;timer;");
}

TEST(ThreadsWrapFuture, LoopClosedWhileAwaitingLeavesTheFutureUsable) {
  ConcurrentFuture<int> cf;
  {
    auto loop = asyncio::new_event_loop();
    auto t = loop->create_task(asyncio::wrap_future(cf));
    loop->run_until_complete(asyncio_test::nap(0.01));
    loop->close();  // destroys the awaiting frame
  }
  cf.set_result(4);  // the callback finds the queue closed: nothing happens
  EXPECT_EQ(cf.result(kLimit), 4);
}

}  // namespace
