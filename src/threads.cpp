// ConcurrentFuture's shared state, and the bridge to a loop's thread-safe queue
// (Python: concurrent/futures/_base.py Future; asyncio.run_coroutine_threadsafe).
#include "asyncio/threads.hpp"

#include <utility>

#include "unix/loop_io.hpp"

namespace asyncio::detail {

std::shared_ptr<PostQueue> threadsafe_queue_of(EventLoop& loop) {
  return io_of(loop).posts;  // set when the loop is made, never replaced: safe from any thread
}

bool ConcurrentStateBase::done() const {
  const std::lock_guard<std::mutex> lock(mu_);
  return status_ != ConcurrentStatus::pending;
}

bool ConcurrentStateBase::cancelled() const {
  const std::lock_guard<std::mutex> lock(mu_);
  return status_ == ConcurrentStatus::cancelled;
}

bool ConcurrentStateBase::wait(std::optional<std::chrono::nanoseconds> timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  const auto is_done = [this] { return status_ != ConcurrentStatus::pending; };
  if (!timeout) {
    cv_.wait(lock, is_done);
    return true;
  }
  return cv_.wait_for(lock, *timeout, is_done);
}

bool ConcurrentStateBase::cancel(bool notify_source) {
  std::vector<std::function<void()>> callbacks;
  {
    const std::lock_guard<std::mutex> lock(mu_);
    if (status_ == ConcurrentStatus::finished) return false;
    if (status_ == ConcurrentStatus::cancelled) return true;
    status_ = ConcurrentStatus::cancelled;
    callbacks.swap(callbacks_);
  }
  cv_.notify_all();
  if (notify_source && cancel_hook_) {
    try {
      cancel_hook_();
    } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory: the task runs on
    }
  }
  run_callbacks(callbacks);
  return true;
}

bool ConcurrentStateBase::try_set_exception(std::exception_ptr e) {
  return finish(ConcurrentStatus::finished, [&] { error_ = std::move(e); });
}

std::exception_ptr ConcurrentStateBase::exception_when_done() const {
  const std::lock_guard<std::mutex> lock(mu_);
  if (status_ == ConcurrentStatus::cancelled) throw CancelledError();
  return error_;
}

void ConcurrentStateBase::throw_if_failed_locked() const {
  if (status_ == ConcurrentStatus::cancelled) throw CancelledError();
  if (error_) std::rethrow_exception(error_);
}

void ConcurrentStateBase::add_callback(std::function<void()> cb) {
  {
    const std::lock_guard<std::mutex> lock(mu_);
    if (status_ == ConcurrentStatus::pending) {
      callbacks_.push_back(std::move(cb));
      return;
    }
  }
  std::vector<std::function<void()>> now;
  now.push_back(std::move(cb));
  run_callbacks(now);
}

void ConcurrentStateBase::run_callbacks(std::vector<std::function<void()>>& callbacks) noexcept {
  for (std::function<void()>& cb : callbacks) {
    try {
      cb();
    } catch (...) {  // NOLINT(bugprone-empty-catch): Python logs and goes on; we go on
    }
  }
  callbacks.clear();
}

}  // namespace asyncio::detail
