// asyncio/executors.hpp - thread pools for blocking work (Python: concurrent.futures.Executor,
// loop.run_in_executor).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
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
  // Read without the lock by a worker that spins before it sleeps (see worker()).
  std::atomic<std::size_t> queued_{0};
  std::atomic<bool> stopping_{false};
};

namespace detail {

/// From any thread: runs `f()` on the loop that owns `q`, unless that loop has closed (then `f`
/// is destroyed here and false is returned).
template <class F>
bool post_callback(PostQueue& q, F&& f) {
  auto* st = new CallbackHandle<std::decay_t<F>>(std::forward<F>(f));
  const Handle h(st);  // released on return: the queue keeps its own reference
  return post_threadsafe(q, st);
}

}  // namespace detail

// The job on the executor's thread never touches loop state: the loop holds the future (it is
// released on the loop's thread, by the completion or by close()), and the job reaches the
// loop only through its shared thread-safe queue. A job that finishes after the loop closed, or
// after it was destroyed, has its result dropped, as Python drops a result that comes back to a
// closed loop; its function and result are destroyed on the executor's thread.
template <class F>
auto EventLoop::run_in_executor(Executor* executor, F f) -> Future<std::invoke_result_t<F&>> {
  using R = std::invoke_result_t<F&>;
  core_.check_open();
  struct Job {
    F f;
    std::optional<detail::value_or_unit_t<R>> value;
    std::exception_ptr error;
  };
  Future<R> result = create_future<R>();
  Executor& ex = executor != nullptr ? *executor : default_executor();
  auto job = std::make_shared<Job>(Job{std::move(f), {}, {}});
  std::shared_ptr<detail::PostQueue> queue = threadsafe_queue();
  const std::uint32_t slot = hold_executor_future(result.state());
  core_.hold_external();
  try {
    ex.submit([job, queue, slot, loop = this] {
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
      try {
        (void)detail::post_callback(*queue, [job, slot, loop] {  // runs on the loop's thread
          // The outcome leaves the job here, so that it is released on the loop's thread
          // whichever thread drops the job last (the exception object included: its reference
          // count is invisible to ThreadSanitizer).
          std::exception_ptr error = std::move(job->error);
          detail::core_of(*loop).release_external();
          const detail::Ref<detail::FutureStateBase> held = loop->take_executor_future(slot);
          if (!held || held->done()) {  // cancelled meanwhile: the result is dropped
            job->value.reset();
            return;
          }
          Future<R> fut = Future<R>::from_state(held.get());
          if (error) {
            fut.set_exception(std::move(error));
          } else if constexpr (std::is_void_v<R>) {
            fut.set_result();
          } else {
            fut.set_result(std::move(*job->value));  // NOLINT(bugprone-unchecked-optional-access)
          }
          job->value.reset();
        });
      } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory: the result is lost
      }
    });
  } catch (...) {
    core_.release_external();
    (void)take_executor_future(slot);
    throw;
  }
  return result;
}

}  // namespace asyncio
