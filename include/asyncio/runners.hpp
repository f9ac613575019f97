// asyncio/runners.hpp - asyncio::run and Runner (Python: runners.py).
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

#include "asyncio/coroutines.hpp"
#include "asyncio/events.hpp"
#include "asyncio/tasks.hpp"

namespace asyncio {

/// Runs coroutines on one loop that it creates, and closes it (cancelling leftover tasks,
/// finalising async generators, shutting the default executor down). While run() runs in the
/// main thread, Ctrl-C (SIGINT) cancels the main task and run() throws KeyboardInterrupt once
/// its cleanup ran; a second Ctrl-C (during that cleanup) throws KeyboardInterrupt out of the
/// loop at once, as Python's Runner._on_sigint does. The previous SIGINT disposition is back
/// when run() returns.
/// Python: asyncio.Runner (3.11)
class Runner {
 public:
  explicit Runner(RunOptions options = {}) : options_(options) {}
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;
  /// Closes the runner (errors while closing are reported through the loop's handler).
  ~Runner();

  /// Runs `coro` as a task on the runner's loop to completion; returns its result or rethrows.
  /// RuntimeError if a loop already runs in this thread or the runner is closed.
  /// Python: Runner.run(coro)
  template <class T>
  T run(Coro<T> coro) {
    EventLoop& loop = begin_run();
    Task<T> task = loop.create_task(std::move(coro));
    run_main(task.state());
    task.state()->throw_if_not_result();
    if constexpr (!std::is_void_v<T>) {
      return std::move(*static_cast<T*>(task.state()->result_ptr()));
    }
  }
  /// Cancels what is left, finalises async generators, shuts the default executor down and
  /// closes the loop. Idempotent. Python: Runner.close()
  void close();
  /// The runner's loop (created on first use). Python: Runner.get_loop()
  EventLoop& get_loop();

 private:
  enum class State { created, initialized, closed };  // created -> initialized -> closed
  EventLoop& begin_run();
  void run_main(detail::FutureStateBase* task);

  RunOptions options_;
  State state_ = State::created;
  std::unique_ptr<EventLoop> loop_;
};

/// Runs `main` on a new loop and returns its result (or rethrows its exception); then cancels
/// every remaining task and waits for them, finalises async generators, shuts the default
/// executor down and closes the loop. RuntimeError if a loop already runs in this thread.
/// Python: asyncio.run(main, debug=)
template <class T>
T run(Coro<T> main, RunOptions options = {}) {
  if (detail::tls_running_loop != nullptr) {
    throw RuntimeError("asyncio.run() cannot be called from a running event loop");
  }
  Runner runner(options);
  return runner.run(std::move(main));
}

}  // namespace asyncio
