// Executor jobs that outlive their loop (issue 11, bug 2). A job run on a user-owned executor
// whose future was abandoned (wait_for timed out, asyncio::run returned, the loop closed or was
// destroyed) finishes later on its thread. It used to post its result through the destroyed
// loop (heap-use-after-free under ASan and TSan); now the loop's thread-safe queue outlives the
// loop, refuses the post, and the result is dropped, as Python drops a late result. The suites
// are named Loop* so that the TSan stage of scripts/test runs them too.
#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio::ThreadPoolExecutor;

/// A gate the test opens; jobs wait on it.
struct Gate {
  std::promise<void> open_;
  std::shared_future<void> opened = open_.get_future().share();
  void open() { open_.set_value(); }
};

/// Starts `job` on `pool` through the running loop and lets wait_for() give up on it.
template <class F>
Coro<bool> abandon_job(ThreadPoolExecutor* pool, F job) {
  try {
    (void)co_await asyncio::wait_for(asyncio::get_running_loop().run_in_executor(pool, job), 0.05);
  } catch (const asyncio::TimeoutError&) {
    co_return true;
  }
  co_return false;
}

TEST(LoopGoneExecutorJob, ResultAfterRunReturnedIsDropped) {
  ThreadPoolExecutor pool(1);  // outlives the loop asyncio::run makes and destroys
  Gate gate;
  std::atomic<bool> finished{false};
  const bool timed_out = asyncio::run(abandon_job(&pool,
                                                  [&gate, &finished] {
                                                    gate.opened.wait();
                                                    finished = true;
                                                    return 42;
                                                  }),
                                      asyncio_test::virtual_options());
  EXPECT_TRUE(timed_out);
  gate.open();          // the job finishes now: its loop is gone
  pool.shutdown(true);  // joined: the late result has come and gone
  EXPECT_TRUE(finished);
}

TEST(LoopGoneExecutorJob, ExceptionAfterRunReturnedIsDropped) {
  ThreadPoolExecutor pool(1);
  Gate gate;
  const bool timed_out = asyncio::run(abandon_job(&pool,
                                                  [&gate]() -> int {
                                                    gate.opened.wait();
                                                    throw std::runtime_error("late");
                                                  }),
                                      asyncio_test::virtual_options());
  EXPECT_TRUE(timed_out);
  gate.open();
  pool.shutdown(true);
}

TEST(LoopGoneExecutorJob, LoopClosedButNotDestroyed) {
  ThreadPoolExecutor pool(1);
  Gate gate;
  std::atomic<bool> finished{false};
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  asyncio::Future<int> fut = loop->run_in_executor(&pool, [&gate, &finished] {
    gate.opened.wait();
    finished = true;
    return 1;
  });
  loop->close();
  gate.open();
  pool.shutdown(true);
  EXPECT_TRUE(finished);
  EXPECT_FALSE(fut.done());  // nobody completed it: the loop had closed
  EXPECT_THROW(loop->call_soon_threadsafe([] {}), asyncio::RuntimeError);
}

TEST(LoopGoneExecutorJob, ManyJobsRacingTheClose) {
  ThreadPoolExecutor pool(4);
  std::atomic<int> ran{0};
  constexpr int kJobs = 200;
  int completed_in_loop = 0;
  {
    auto loop = asyncio::new_event_loop();
    std::vector<asyncio::Future<int>> futs;
    for (int i = 0; i < kJobs; ++i) {
      futs.push_back(loop->run_in_executor(&pool, [&ran, i] {
        std::this_thread::sleep_for(std::chrono::microseconds(50 * (i % 7)));
        ++ran;
        return i;
      }));
    }
    loop->run_until_complete(futs.front());  // some finish in the loop, the rest race close()
    for (auto& f : futs) completed_in_loop += f.done() ? 1 : 0;
  }  // closed and destroyed while jobs still post back
  pool.shutdown(true);
  EXPECT_EQ(ran.load(), kJobs);
  EXPECT_GE(completed_in_loop, 1);
}

TEST(LoopExecutorJob, ResultsStillArrive) {
  ThreadPoolExecutor pool(2);
  const int sum = asyncio::run([](ThreadPoolExecutor* p) -> Coro<int> {
    auto& loop = asyncio::get_running_loop();
    auto a = loop.run_in_executor(p, [] { return 20; });
    auto b = loop.run_in_executor(p, [] { return 22; });
    bool raised = false;
    try {
      co_await loop.run_in_executor(p, []() -> int { throw std::runtime_error("boom"); });
    } catch (const std::runtime_error&) {
      raised = true;
    }
    EXPECT_TRUE(raised);
    co_return co_await a + co_await b;
  }(&pool));
  EXPECT_EQ(sum, 42);
}

}  // namespace
