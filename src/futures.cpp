// Future state transitions (Python: futures.py, Future.set_result/_schedule_callbacks...).
#include "asyncio/futures.hpp"

#include <atomic>
#include <exception>
#include <memory>
#include <string>

#include "asyncio/detail/future_state.hpp"
#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/task_ref.hpp"

namespace asyncio::detail {

namespace {
const std::string kEmpty;

const char* status_name(FutureStatus s) {
  switch (s) {
    case FutureStatus::pending:
      return "PENDING";
    case FutureStatus::finished:
      return "FINISHED";
    case FutureStatus::cancelled:
      return "CANCELLED";
  }
  return "?";
}
}  // namespace

std::uint64_t next_callback_id() noexcept {
  static std::atomic<std::uint64_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed) + 1;
}

const std::exception_ptr FutureStateBase::kNoException;

FutureStateBase::Extras& FutureStateBase::extras() {
  if (!extras_) extras_ = std::make_unique<Extras>();
  return *extras_;
}

void FutureStateBase::last_release() noexcept {
  // Report only from the loop's own thread while it runs: a state can outlive its loop, and
  // then loop_ must not be touched. The handler may keep a TaskRef: then the state lives on.
  EventLoop* loop = tls_running_loop;
  if (status_ == FutureStatus::finished && has_exception_ && !retrieved_ && loop != nullptr &&
      &core_of(*loop) == core_ && loop->get_debug()) {
    retrieved_ = true;
    ++refs_;
    try {
      ExceptionContext ctx;
      ctx.message =
          is_task_ ? "Task exception was never retrieved" : "Future exception was never retrieved";
      ctx.exception = error_;
      if (is_task_) ctx.task = TaskRef(static_cast<TaskState*>(this));
      loop->call_exception_handler(ctx);
    } catch (...) {  // NOLINT(bugprone-empty-catch): a report must never throw
    }
    if (--refs_ != 0) return;
  }
  delete this;
}

FutureStateBase::~FutureStateBase() {
  if (status_ == FutureStatus::pending) {
    // Done callbacks still waiting belong to this list; awaiters belong to their frames.
    while (ListHook* h = waiters_.pop_front()) static_cast<Waiter*>(h)->on_abandon();
    waiters_.~SlimList();
  } else if (has_exception_) {
    error_.~exception_ptr();
  }
}

bool FutureStateBase::cancel(const std::string& msg) {
  retrieved_ = true;
  if (done()) return false;
  mark_cancelled(msg);
  return true;
}

void FutureStateBase::check_settable() const {
  if (is_task_) throw RuntimeError("Task does not support set_result operation");
  if (done()) throw InvalidStateError(std::string(status_name(status_)) + ": the future is done");
}

void FutureStateBase::finish(void* result) {
  complete(FutureStatus::finished, result, nullptr);
}

void FutureStateBase::set_exception(std::exception_ptr e) {
  if (is_task_) throw RuntimeError("Task does not support set_exception operation");
  if (done()) throw InvalidStateError(std::string(status_name(status_)) + ": the future is done");
  if (!e) throw ValueError("set_exception() needs an exception");
  retrieved_ = false;  // before complete(): a waiter told now may mark it retrieved
  complete(FutureStatus::finished, nullptr, &e);
}

void FutureStateBase::throw_not_result() {
  if (status_ == FutureStatus::pending) throw InvalidStateError("Result is not ready.");
  if (status_ == FutureStatus::cancelled) throw CancelledError(cancel_message());
  retrieved_ = true;
  std::rethrow_exception(error_);
}

std::exception_ptr FutureStateBase::exception() {
  if (status_ == FutureStatus::pending) throw InvalidStateError("Exception is not set.");
  if (status_ == FutureStatus::cancelled) throw CancelledError(cancel_message());
  retrieved_ = true;
  return stored_exception();
}

std::exception_ptr FutureStateBase::make_cancelled_error() const {
  return std::make_exception_ptr(CancelledError(cancel_message()));
}

const std::string& FutureStateBase::cancel_message() const noexcept {
  return extras_ ? extras_->cancel_msg : kEmpty;
}

void FutureStateBase::set_cancel_message(const std::string& msg) {
  if (!msg.empty()) {
    extras().cancel_msg = msg;
  } else if (extras_) {
    extras_->cancel_msg.clear();
  }
}

void FutureStateBase::mark_cancelled(const std::string& msg) {
  set_cancel_message(msg);
  complete(FutureStatus::cancelled, nullptr, nullptr);
}

void FutureStateBase::complete(FutureStatus status, void* result, std::exception_ptr* error) {
  assert(status_ == FutureStatus::pending && status != FutureStatus::pending);
  IntrusiveList due;
  due.splice_back(waiters_);
  waiters_.~SlimList();
  if (error != nullptr) {
    ::new (static_cast<void*>(&error_)) std::exception_ptr(std::move(*error));
    has_exception_ = true;
  } else {
    result_ = result;
  }
  status_ = status;
  if (!due.empty()) {
    try {
      core_->check_open();
    } catch (...) {
      // As Python: the state has changed, the callbacks are dropped, call_soon() raises.
      while (ListHook* h = due.pop_front()) static_cast<Waiter*>(h)->on_abandon();
      throw;
    }
  }
  while (ListHook* h = due.pop_front()) static_cast<Waiter*>(h)->on_future_done(*this);
}

std::size_t FutureStateBase::remove_callback(std::uint64_t id) noexcept {
  if (status_ != FutureStatus::pending) return 0;  // the callbacks were scheduled
  for (ListHook* h = waiters_.first(); h != nullptr; h = waiters_.next(h)) {
    auto* w = static_cast<Waiter*>(h);
    if (w->callback_id() == id) {
      waiters_.remove(w);
      w->on_abandon();
      return 1;
    }
  }
  return 0;
}

}  // namespace asyncio::detail
