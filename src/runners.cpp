// asyncio::Runner: loop set-up, SIGINT handling and orderly shutdown (Python: runners.py).
#include "asyncio/runners.hpp"

#include <csignal>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "asyncio/tasks.hpp"
#include "sys/sys.hpp"

namespace asyncio {
namespace {

/// While the main task runs in the main thread with SIGINT at its default disposition,
/// Ctrl-C cancels the main task; a Ctrl-C that finds the main task already done, or a second
/// one, throws KeyboardInterrupt out of the loop (Python's Runner._on_sigint). The callback
/// runs on the loop, so a loop blocked inside a callback only sees it when that returns.
class SigintGuard {
 public:
  SigintGuard(EventLoop& loop, detail::FutureStateBase* task) : loop_(loop), task_(task) {
    if (!sys::is_main_thread()) return;
    if (sys::signal_handler_of(SIGINT) != SIG_DFL) return;
    loop_.add_signal_handler(SIGINT, [this] { on_sigint(); });
    installed_ = true;
  }
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;
  ~SigintGuard() {
    if (installed_) loop_.remove_signal_handler(SIGINT);
  }
  [[nodiscard]] bool interrupted() const noexcept { return count_ > 0; }

 private:
  void on_sigint() {
    ++count_;
    if (count_ == 1 && !task_->done()) {
      task_->cancel({});
      return;
    }
    throw KeyboardInterrupt();
  }

  EventLoop& loop_;
  detail::FutureStateBase* task_;
  int count_ = 0;
  bool installed_ = false;
};

Coro<void> wait_all(std::vector<TaskRef> tasks) {
  for (const TaskRef& t : tasks) co_await detail::WaitDone(t.get());
}

/// Python: runners._cancel_all_tasks
void cancel_all_tasks(EventLoop& loop) {
  std::vector<TaskRef> tasks = detail::tasks_of(loop);
  if (tasks.empty()) return;
  for (TaskRef& t : tasks) t.cancel();
  loop.run_until_complete(wait_all(tasks));
  for (const TaskRef& t : tasks) {
    if (t.cancelled()) continue;
    if (std::exception_ptr e = t.get()->exception()) {
      loop.call_exception_handler({"unhandled exception during asyncio.run() shutdown", e, t, {}});
    }
  }
}

}  // namespace

Runner::~Runner() {
  try {
    close();
  } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
  }
}

EventLoop& Runner::get_loop() {
  if (state_ == State::closed) throw RuntimeError("Runner is closed");
  if (!loop_) {
    loop_ = new_event_loop(options_);
    state_ = State::initialized;
  }
  return *loop_;
}

EventLoop& Runner::begin_run() {
  if (state_ == State::closed) throw RuntimeError("Runner is closed");
  if (detail::tls_running_loop != nullptr) {
    throw RuntimeError("Runner.run() cannot be called from a running event loop");
  }
  return get_loop();
}

void Runner::run_main(detail::FutureStateBase* task) {
  SigintGuard sigint(*loop_, task);
  detail::run_until_done(*loop_, task);
  if (task->cancelled() && sigint.interrupted()) {
    if (static_cast<detail::TaskState*>(task)->uncancel() == 0) throw KeyboardInterrupt();
  }
}

void Runner::close() {
  if (state_ != State::initialized) {
    state_ = State::closed;
    return;
  }
  struct Finally {
    Runner* r;
    explicit Finally(Runner* runner) : r(runner) {}
    Finally(const Finally&) = delete;
    Finally& operator=(const Finally&) = delete;
    ~Finally() {
      r->loop_->close();
      r->loop_.reset();
      r->state_ = State::closed;
    }
  } finally(this);
  EventLoop& loop = *loop_;
  cancel_all_tasks(loop);
  loop.run_until_complete(loop.shutdown_asyncgens());
  loop.run_until_complete(loop.shutdown_default_executor());
}

}  // namespace asyncio
