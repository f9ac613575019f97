// Awaiting one IoOp from a task: the building block of sock_* (src/sockets.cpp) and, later, of
// transports and pipes. Also small coroutines over it for the library's own fds (pipes,
// several buffers), which the engines' tests use directly.
#pragma once

#include <coroutine>
#include <cstddef>
#include <string>

#include "asyncio/coroutines.hpp"
#include "asyncio/detail/task_state.hpp"
#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "unix/io_engine.hpp"
#include "unix/loop_io.hpp"

struct msghdr;

namespace asyncio::detail {

/// `co_await OpAwaiter(kind, fd, ...)`: starts the op on the running loop's engine and returns
/// its result (bytes, or -errno). When the op finishes at once (epoll: the syscall did not
/// block) the task does not suspend, as Python's sock_recv returns without yielding then.
///
/// Cancellation (Task::cancel while parked): the engine is asked for the op back, and the task
/// stays parked until the engine has it (io_uring: until the kernel has let go of the buffer).
/// Then, or when a cancellation arrives after the op completed but before the task resumed,
/// await_resume throws CancelledError; bytes that a receive got anyway are kept for the next
/// receive on the fd (LoopIo::stash), so a cancelled receive consumes nothing.
class OpAwaiter final : public WaitTarget, public IoOp {
 public:
  OpAwaiter(OpKind kind, int fd, void* buf = nullptr, std::size_t len = 0) noexcept
      : IoOp(kind, fd) {
    set_buffer(buf, len);
  }
  OpAwaiter(const OpAwaiter&) = delete;
  OpAwaiter& operator=(const OpAwaiter&) = delete;
  ~OpAwaiter() {
    // Only a frame destroyed while parked gets here with the op still held (the loop closing).
    if (state() == OpState::parked) io_->engine->abandon(*this);
  }

  bool await_ready() {
    io_ = &io_of(get_running_loop());
    io_->engine->submit(*this);
    return state() == OpState::done;
  }
  void await_suspend(std::coroutine_handle<> h) {
    task_ = &running_task("an I/O operation");
    task_->park(h, this);
  }
  /// What await_resume returns for a receive that kick() took back: receive again.
  static constexpr long kReceiveAgain = -(1L << 40);

  long await_resume() {
    if (task_ != nullptr && (task_->consume_must_cancel() || cancel_requested())) [[unlikely]] {
      keep_leftovers();
      throw CancelledError(task_->cancel_message());
    }
    if (kicked()) [[unlikely]] {
      keep_leftovers();  // behind the bytes that made the engine kick it
      return kReceiveAgain;
    }
    return result();
  }

  bool cancel_wait(const std::string& /*msg*/) override {
    if (state() != OpState::parked) return false;  // done: delivered when the task resumes
    if (!cancel_requested()) io_->engine->cancel(*this);
    return true;
  }

 private:
  void on_complete() noexcept override {
    if (task_ != nullptr) task_->wake();
  }
  /// A cancelled receive that got bytes anyway leaves them to the next receive.
  void keep_leftovers() {
    if (result() > 0 && (kind() == OpKind::recv || kind() == OpKind::read)) {
      io_->stash(fd(), static_cast<const char*>(buffer()), static_cast<std::size_t>(result()));
    }
  }

  LoopIo* io_ = nullptr;
  TaskState* task_ = nullptr;  // set once the task really suspended
};

/// Reads up to `n` bytes of `fd` into `buf` (a receive first takes bytes that a cancelled one
/// left behind); the count (0: end of file), or -errno.
Coro<long> io_receive(OpKind kind, int fd, void* buf, std::size_t n);
/// Writes some of `buf` (one send/write); the count or -errno.
Coro<long> io_transmit(OpKind kind, int fd, const void* buf, std::size_t n);
/// One sendmsg of several buffers; the count or -errno.
Coro<long> io_sendmsg(int fd, const msghdr* msg);
/// Waits until `fd` is readable (or writable); 0 or -errno.
Coro<long> io_wait_ready(int fd, bool write);

}  // namespace asyncio::detail
