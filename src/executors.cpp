// ThreadPoolExecutor: threads started on demand, reused while idle (Python: thread.py).
#include "asyncio/executors.hpp"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "asyncio/detail/spin.hpp"

namespace asyncio {

ThreadPoolExecutor::ThreadPoolExecutor(std::size_t max_workers)
    : max_workers_(max_workers != 0
                       ? max_workers
                       : std::min<std::size_t>(32, std::thread::hardware_concurrency() + 4)) {}

ThreadPoolExecutor::~ThreadPoolExecutor() {
  shutdown(true);
}

void ThreadPoolExecutor::submit(std::function<void()> work) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) throw RuntimeError("cannot schedule new futures after shutdown");
  queue_.push_back(std::move(work));
  queued_.fetch_add(1, std::memory_order_release);
  if (idle_ == 0 && threads_.size() < max_workers_) {
    threads_.emplace_back([this] { worker(); });
  } else {
    cv_.notify_one();
  }
}

void ThreadPoolExecutor::worker() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    ++idle_;
    if (queue_.empty() && !shutdown_) {
      // Spin a little before sleeping: a job submitted within microseconds (the next to_thread
      // of a coroutine that awaits them one after another) is then taken without a futex
      // wake-up of this thread, which costs several microseconds on each side.
      lock.unlock();
      detail::spin_until([this] {
        return queued_.load(std::memory_order_acquire) != 0 ||
               stopping_.load(std::memory_order_relaxed);
      });
      lock.lock();
    }
    cv_.wait(lock, [this] { return shutdown_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) return;  // shut down and drained
    std::function<void()> work = std::move(queue_.front());
    queue_.pop_front();
    queued_.fetch_sub(1, std::memory_order_relaxed);
    lock.unlock();
    try {
      work();
    } catch (...) {  // NOLINT(bugprone-empty-catch): jobs report through their futures
    }
    work = nullptr;
    lock.lock();
  }
}

void ThreadPoolExecutor::shutdown(bool wait) {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
    stopping_.store(true, std::memory_order_relaxed);
    if (wait) threads.swap(threads_);
  }
  cv_.notify_all();
  for (std::thread& t : threads) {
    if (t.get_id() == std::this_thread::get_id()) {
      t.detach();
    } else {
      t.join();
    }
  }
}

}  // namespace asyncio
