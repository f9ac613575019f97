// asyncio/executors.hpp - thread pools for blocking work (Python: concurrent.futures.Executor,
// loop.run_in_executor).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "asyncio/events.hpp"
#include "asyncio/futures.hpp"

namespace asyncio {

/// Runs plain functions somewhere else (threads). Python: concurrent.futures.Executor
class Executor {
 public:
  Executor() = default;
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  virtual ~Executor() = default;
  /// Queues `work`; RuntimeError after shutdown(). Python: Executor.submit(fn)
  virtual void submit(std::function<void()> work) = 0;
  /// Refuses new work; with `wait`, returns once queued work is done. Python: Executor.shutdown()
  virtual void shutdown(bool wait = true) = 0;
};

/// A pool of threads started on demand, up to max_workers. Python: ThreadPoolExecutor
class ThreadPoolExecutor final : public Executor {
 public:
  /// 0 means min(32, hardware threads + 4), as in Python.
  explicit ThreadPoolExecutor(std::size_t max_workers = 0);
  ~ThreadPoolExecutor() override;
  void submit(std::function<void()> work) override;
  void shutdown(bool wait = true) override;
  [[nodiscard]] std::size_t max_workers() const noexcept { return max_workers_; }

 private:
  void worker();

  std::size_t max_workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  bool shutdown_ = false;
};

template <class F>
auto EventLoop::run_in_executor(Executor* executor, F f) -> Future<std::invoke_result_t<F&>> {
  using R = std::invoke_result_t<F&>;
  check_open();
  struct Job {
    Future<R> fut;  // touched on the loop's thread only (moved out there)
    F f;
    std::optional<detail::value_or_unit_t<R>> value;
    std::exception_ptr error;
    EventLoop* loop;
  };
  auto job = std::make_shared<Job>(Job{create_future<R>(), std::move(f), {}, {}, this});
  Future<R> result = job->fut;
  Executor& ex = executor != nullptr ? *executor : default_executor();
  hold_external();
  try {
    ex.submit([job] {
      try {
        if constexpr (std::is_void_v<R>) {
          job->f();
          job->value.emplace();
        } else {
          job->value.emplace(job->f());
        }
      } catch (...) {
        job->error = std::current_exception();
      }
      (void)job->loop->call_soon_threadsafe([job] {
        Future<R> fut = std::move(job->fut);
        job->loop->release_external();
        if (fut.done()) return;  // cancelled meanwhile: the result is dropped
        if (job->error) {
          fut.set_exception(job->error);
        } else if constexpr (std::is_void_v<R>) {
          fut.set_result();
        } else {
          fut.set_result(std::move(*job->value));
        }
      });
    });
  } catch (...) {
    release_external();
    throw;
  }
  return result;
}

}  // namespace asyncio
