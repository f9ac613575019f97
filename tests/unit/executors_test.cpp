// Tests for asyncio/executors.hpp and EventLoop::run_in_executor: the default pool and an explicit
// ThreadPoolExecutor run jobs on other threads; results, exceptions and void jobs come back to the
// awaiter; a cancelled future drops the late result; a loop destroyed while a job is in flight;
// set_default_executor and shutdown_default_executor; a pool refuses work after shutdown.
//
// Translated from CPython 3.11 Lib/test/test_asyncio/test_base_events.py (BaseEventLoopTests:
// test_run_in_executor..., test_set_default_executor) where the behaviour applies to C++; the
// default max_workers follows concurrent.futures.ThreadPoolExecutor. These tests cross threads:
// they wait in real time, always bounded, and scripts/test's TSan stage runs them too (its
// filter, '^(EventLoop|Loop|Run)[A-Za-z]*\.', matches the suite name RunInExecutor).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
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
using asyncio::Coro;
using asyncio::EventLoop;
using asyncio_test::SetOnDestroy;

// test_run_in_executor: the default pool runs the job on another thread.
TEST(RunInExecutor, DefaultPoolRunsTheJobOnAnotherThreadAndReturnsItsResult) {
  const auto [value, same_thread] = asyncio::run([]() -> Coro<std::pair<int, bool>> {
    const auto me = std::this_thread::get_id();
    auto fut = asyncio::get_running_loop().run_in_executor(
        nullptr, [me] { return std::make_pair(6 * 7, std::this_thread::get_id() == me); });
    co_return co_await fut;
  }());
  EXPECT_EQ(value, 42);
  EXPECT_FALSE(same_thread);
}

TEST(RunInExecutor, ExplicitThreadPoolExecutorRunsTheJob) {
  asyncio::ThreadPoolExecutor pool(2);
  EXPECT_EQ(pool.max_workers(), 2U);
  const std::string s = asyncio::run([](asyncio::Executor* ex) -> Coro<std::string> {
    co_return co_await asyncio::get_running_loop().run_in_executor(
        ex, [] { return std::string("from the pool"); });
  }(&pool));
  EXPECT_EQ(s, "from the pool");
}

// Exceptions raised by the job propagate to the awaiter, type and message intact.
TEST(RunInExecutor, ExceptionFromTheJobPropagatesToTheAwaiter) {
  EXPECT_THROW(asyncio::run([]() -> Coro<int> {
                 co_return co_await asyncio::get_running_loop().run_in_executor(
                     nullptr, []() -> int { throw std::out_of_range("job failed"); });
               }()),
               std::out_of_range);
}

TEST(RunInExecutor, VoidJobCompletes) {
  std::atomic<int> calls{0};
  asyncio::run([](std::atomic<int>* calls) -> Coro<void> {
    co_await asyncio::get_running_loop().run_in_executor(nullptr, [calls] { ++*calls; });
  }(&calls));
  EXPECT_EQ(calls.load(), 1);
}

TEST(RunInExecutor, ManyJobsOnTwoWorkersAllComplete) {
  asyncio::ThreadPoolExecutor pool(2);
  const int sum = asyncio::run([](asyncio::Executor* ex) -> Coro<int> {
    std::vector<asyncio::Future<int>> futs;
    for (int i = 1; i <= 10; ++i) {
      futs.push_back(asyncio::get_running_loop().run_in_executor(ex, [i] {
        std::this_thread::sleep_for(2ms);
        return i;
      }));
    }
    int total = 0;
    for (auto& f : futs) total += co_await f;
    co_return total;
  }(&pool));
  EXPECT_EQ(sum, 55);
}

// Cancelling the future does not stop the job; its late result is dropped, and the loop no
// longer counts it as work in flight (virtual time jumps again once it has finished).
TEST(RunInExecutor, CancelledFutureDropsTheLateResult) {
  std::atomic<bool> job_done{false};
  const double after = asyncio_test::run_virtual([](std::atomic<bool>* done) -> Coro<double> {
    EventLoop& loop = asyncio::get_running_loop();
    auto fut = loop.run_in_executor(nullptr, [done] {
      std::this_thread::sleep_for(30ms);
      done->store(true);
      return 1;
    });
    EXPECT_TRUE(fut.cancel());
    EXPECT_TRUE(fut.cancelled());
    co_await asyncio::sleep(30);  // waits (in real time) for the job to post back, then jumps
    EXPECT_TRUE(fut.cancelled());
    co_return loop.time();
  }(&job_done));
  EXPECT_TRUE(job_done.load());
  EXPECT_DOUBLE_EQ(after, 30.0);
}

// A loop destroyed while a default-executor job is still running: the job finishes, its late
// post is refused quietly, the awaiting task's frame is destroyed, nothing leaks or crashes.
TEST(RunInExecutor, LoopDestroyedWhileAJobIsInFlight) {
  std::atomic<bool> job_finished{false};
  bool frame_destroyed = false;
  {
    auto loop = asyncio::new_event_loop();
    loop->create_task([](std::atomic<bool>* finished, bool* destroyed) -> Coro<void> {
      SetOnDestroy guard(destroyed);
      co_await asyncio::get_running_loop().run_in_executor(nullptr, [finished] {
        std::this_thread::sleep_for(50ms);
        finished->store(true);
        return 1;
      });
    }(&job_finished, &frame_destroyed));
    loop->call_soon([&] { loop->stop(); });
    loop->run_forever();  // the task starts, submits the job and parks
  }
  EXPECT_TRUE(frame_destroyed);
  EXPECT_TRUE(job_finished.load());  // the pool was joined when the loop died
}

/// An executor that counts submissions and remembers how it was shut down.
class CountingExecutor final : public asyncio::Executor {
 public:
  void submit(std::function<void()> work) override {
    ++submitted;
    pool_.submit(std::move(work));
  }
  void shutdown(bool wait) override {
    shutdowns.fetch_add(1);
    if (wait) waited = true;
    pool_.shutdown(wait);
  }
  std::atomic<int> submitted{0};
  std::atomic<int> shutdowns{0};
  std::atomic<bool> waited{false};

 private:
  asyncio::ThreadPoolExecutor pool_{1};
};

// set_default_executor: nullptr jobs go to it; asyncio::run shuts it down (waiting) at the end.
TEST(RunInExecutor, SetDefaultExecutorIsUsedAndShutDownByRun) {
  auto ex = std::make_shared<CountingExecutor>();
  asyncio::run([](std::shared_ptr<asyncio::Executor> ex) -> Coro<void> {
    EventLoop& loop = asyncio::get_running_loop();
    loop.set_default_executor(std::move(ex));
    EXPECT_EQ(co_await loop.run_in_executor(nullptr, [] { return 3; }), 3);
  }(ex));
  EXPECT_EQ(ex->submitted.load(), 1);
  EXPECT_GE(ex->shutdowns.load(), 1);
  EXPECT_TRUE(ex->waited.load());
}

// shutdown_default_executor(): later run_in_executor(nullptr) calls are refused.
TEST(RunInExecutor, DefaultExecutorRefusesWorkAfterShutdown) {
  EXPECT_THROW(asyncio::run([]() -> Coro<void> {
                 EventLoop& loop = asyncio::get_running_loop();
                 co_await loop.run_in_executor(nullptr, [] {});
                 co_await loop.shutdown_default_executor();
                 (void)loop.run_in_executor(nullptr, [] {});
               }()),
               asyncio::RuntimeError);
}

TEST(RunInExecutor, ThreadPoolExecutorRefusesWorkAfterShutdown) {
  asyncio::ThreadPoolExecutor pool(1);
  std::atomic<int> ran{0};
  pool.submit([&] { ++ran; });
  pool.shutdown(true);
  EXPECT_EQ(ran.load(), 1);  // queued work finished before shutdown(wait) returned
  EXPECT_THROW(pool.submit([] {}), asyncio::RuntimeError);
  EXPECT_NO_THROW(pool.shutdown(true));  // idempotent
}

// Python: max_workers defaults to min(32, os.cpu_count() + 4).
TEST(RunInExecutor, ThreadPoolExecutorDefaultMaxWorkersFollowsPython) {
  asyncio::ThreadPoolExecutor pool;
  const std::size_t expected = std::min<std::size_t>(32, std::thread::hardware_concurrency() + 4);
  EXPECT_EQ(pool.max_workers(), expected);
}

}  // namespace
