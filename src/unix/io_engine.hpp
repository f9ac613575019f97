// The I/O engine behind a loop, and the one operation object both engines run
// (docs/design/io.md).
//
// An IoOp is an I/O operation (wait for readiness, recv, send, sendmsg, read, write) on one fd.
// The code that awaits it (src/sockets.cpp) hands it to the loop's engine with submit(); the
// engine completes it exactly once, setting `result` (bytes, poll events, or -errno) and calling
// on_complete(), either at once (epoll, when the syscall did not block) or from a later wait().
// cancel() asks for it back: on epoll a parked operation is simply unlinked and completes with
// -ECANCELED at once; on io_uring the kernel may own its buffer, so it completes later, when the
// kernel has let go (with -ECANCELED, or with the result the kernel had already produced).
//
// Two engines implement IoEngine:
//   epoll    (epoll_engine.cpp): tries the syscall first; on EAGAIN parks the op on per-fd
//            state, registered edge-triggered once per fd; readiness edges retry parked ops.
//   io_uring (uring_engine.cpp): every op is a submission, sent in one batch per loop iteration
//            together with the wait (one io_uring_enter), completed by its CQE.
// Both also keep level-triggered watches (add_reader/add_writer, the signal pipe) and the loop's
// wake-up eventfd.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct msghdr;

namespace asyncio {
enum class Backend;
}  // namespace asyncio

namespace asyncio::detail {

/// A level-triggered watch that fired (a reader or writer callback, the signal pipe).
struct IoEvent {
  int fd;
  bool readable;
  bool writable;
};

/// What an operation does.
enum class OpKind : std::uint8_t {
  poll_in,   ///< wait until readable (result: > 0 once it is)
  poll_out,  ///< wait until writable
  recv,      ///< recv(buf, len)
  send,      ///< send(buf, len), never SIGPIPE
  sendmsg,   ///< sendmsg(msg): several buffers
  read,      ///< read(buf, len) (pipes)
  write,     ///< write(buf, len) (pipes)
  /// io_uring only (IoEngine::multishot_receives()): a receive that stays armed. Each message
  /// lands in a buffer of the engine's pool and is handed to on_data() from inside wait(); the
  /// op completes once, when it stops: 0 at end of file, -errno, -ECANCELED, or -EAGAIN when the
  /// kernel stopped it for its own reasons (the pool ran dry): the owner arms it again.
  recv_multi,
};

/// True for the kinds that wait for the fd to be readable (recv, read, poll_in).
constexpr bool reads(OpKind k) noexcept {
  return k == OpKind::poll_in || k == OpKind::recv || k == OpKind::read || k == OpKind::recv_multi;
}

/// Where an operation is: idle -> parked (the engine holds it) -> done. A cancel request
/// (cancel()) completes a parked op at once (epoll) or when the kernel lets go (io_uring).
enum class OpState : std::uint8_t { idle, parked, done };

/// One I/O operation. The owner keeps it (and its buffer) alive until it is done.
class IoOp {
 public:
  IoOp(OpKind kind, int fd) noexcept : kind_(kind), fd_(fd) {}
  IoOp(const IoOp&) = delete;
  IoOp& operator=(const IoOp&) = delete;

  [[nodiscard]] OpKind kind() const noexcept { return kind_; }
  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] OpState state() const noexcept { return state_; }
  /// Bytes transferred, poll events (> 0), or -errno (-ECANCELED when cancelled in time).
  [[nodiscard]] long result() const noexcept { return result_; }
  /// cancel() was asked for.
  [[nodiscard]] bool cancel_requested() const noexcept { return cancel_requested_; }
  /// kick() took this receive back (bytes for it appeared in the loop's stash): its owner
  /// should receive again rather than report the result.
  [[nodiscard]] bool kicked() const noexcept { return kicked_; }

  void set_buffer(void* buf, std::size_t len) noexcept {
    buf_ = buf;
    len_ = len;
  }
  void set_message(const msghdr* msg) noexcept { msg_ = msg; }
  /// The fd belongs to the library, which calls IoEngine::forget() before closing it (a
  /// transport's socket): the engine need not check that the fd still names the file it
  /// registered (epoll's fstat before parking).
  void set_owned_fd(bool owned) noexcept { owned_fd_ = owned; }
  [[nodiscard]] bool owned_fd() const noexcept { return owned_fd_; }
  /// A hint for a receive: the fd was just found drained, so data can only come later (io_uring
  /// then waits for readiness before its first try, IORING_RECVSEND_POLL_FIRST; epoll, which
  /// tries at once, ignores it). Kept until set again.
  void set_poll_first(bool drained) noexcept { poll_first_ = drained; }
  [[nodiscard]] void* buffer() const noexcept { return buf_; }
  [[nodiscard]] std::size_t length() const noexcept { return len_; }
  [[nodiscard]] const msghdr* message() const noexcept { return msg_; }

  /// Makes a done op idle again, to be submitted anew (an op owned by a transport is reused for
  /// every wait).
  void rearm() noexcept {
    state_ = OpState::idle;
    cancel_requested_ = false;
    kicked_ = false;
    engine_bits_ = 0;
    result_ = 0;
  }

  /// Performs the syscall now, without blocking (the epoll engine's try and retries); the
  /// result as result() would hold it. A poll op returns -EAGAIN (its readiness comes from the
  /// engine).
  [[nodiscard]] long perform() noexcept;

 protected:
  ~IoOp() = default;
  /// Called once, when the op is done (from submit(), cancel() or the engine's wait()).
  virtual void on_complete() noexcept = 0;
  /// A recv_multi op's message (from inside the engine's wait(); the bytes are the engine's and
  /// valid only during the call). Also after cancel(), until the op is done.
  virtual void on_data(const char* /*data*/, std::size_t /*n*/) noexcept {}

 private:
  friend class EpollEngine;
  friend class UringEngine;
  friend class IoEngine;

  OpKind kind_;
  OpState state_ = OpState::idle;
  bool cancel_requested_ = false;
  bool kicked_ = false;
  bool owned_fd_ = false;
  bool poll_first_ = false;
  std::uint8_t engine_bits_ = 0;  // the engine's own flags
  int fd_;
  void* buf_ = nullptr;
  std::size_t len_ = 0;
  const msghdr* msg_ = nullptr;
  long result_ = 0;
  // The engine's links: the fd's wait list (epoll) or the list of ops in flight (io_uring).
  IoOp* next_ = nullptr;
  IoOp* prev_ = nullptr;
};

class IoEngine {
 public:
  IoEngine() = default;
  IoEngine(const IoEngine&) = delete;
  IoEngine& operator=(const IoEngine&) = delete;
  virtual ~IoEngine() = default;

  /// Which engine this is (Backend::epoll or Backend::io_uring).
  [[nodiscard]] virtual Backend backend() const noexcept = 0;

  // -- Operations ---------------------------------------------------------------------------
  /// Starts `op` (idle). It is done on return when it could finish at once (epoll, or a planned
  /// fault); otherwise parked until a later wait() completes it. A poll op means that its owner
  /// has just seen EAGAIN on the fd (accept, connect), so readiness the engine remembers for
  /// that direction is stale.
  virtual void submit(IoOp& op) = 0;
  /// Asks a parked op back (no effect on an op that is done). It completes, through
  /// on_complete(), with -ECANCELED, or with its real result if the kernel had already
  /// produced it; at once on epoll, after a later wait() on io_uring.
  virtual void cancel(IoOp& op) noexcept = 0;
  /// Takes back the receives (recv, read) parked on `fd`, marking them kicked(): bytes for them
  /// have just been put in the loop's stash, ahead of anything the kernel still holds, so they
  /// must receive again (and get the stash first). Like cancel(): at once on epoll, after the
  /// CQE on io_uring, where a receive that completed anyway stashes its bytes behind.
  virtual void kick(int fd) noexcept = 0;
  /// The owner of a parked op is going away without waiting (its frame is being destroyed):
  /// takes the op back without calling on_complete(). On io_uring this waits until the kernel
  /// has let go of the op's buffer.
  virtual void abandon(IoOp& op) noexcept = 0;
  /// Operations parked now (virtual time waits for them).
  [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_; }
  /// Gets back every op the kernel still owns, completing them (the loop is closing and will
  /// destroy the frames their buffers live in). Blocks until the kernel has let go.
  virtual void quiesce() noexcept = 0;
  /// The library is about to close `fd` (an fd it owns): drops the engine's state for it. Ops
  /// parked on it must be done or cancelled first.
  virtual void forget(int fd) noexcept = 0;
  /// The engine runs OpKind::recv_multi ops (io_uring on Linux 6.0 or later, with a pool of
  /// provided buffers it sets up at the first call).
  [[nodiscard]] virtual bool multishot_receives() noexcept { return false; }
  /// Hands the kernel what was submitted but not yet sent, without waiting (io_uring: the SQEs
  /// queued since the last wait; a transport's send op among them). The loop calls it when it
  /// stops running, so that bytes written just before do not wait for its next run. epoll
  /// submits at once and has nothing to do.
  virtual void flush() noexcept {}

  // -- Level-triggered watches ----------------------------------------------------------------
  /// Sets the watch on `fd` (both false: no watch). Python's selector semantics: reported at
  /// every wait() while the fd stays ready.
  virtual void update(int fd, bool read, bool write) = 0;
  /// Sends what was submitted, waits up to timeout_ms (-1: forever, 0: not at all) for
  /// completions, watches and the wake-up fd; completes the ops that finished (on_complete),
  /// appends the watches that fired to `out`. Returns true when woken through the wake-up fd
  /// (which it empties).
  virtual bool wait(int timeout_ms, std::vector<IoEvent>& out) = 0;

 protected:
  /// Marks `op` done with `result` and tells its owner.
  void complete(IoOp& op, long result) noexcept {
    op.result_ = result;
    op.state_ = OpState::done;
    op.on_complete();
  }
  std::size_t in_flight_ = 0;
};

/// The epoll engine; `wakefd` is the loop's eventfd, which it watches but does not own.
std::unique_ptr<IoEngine> make_epoll_engine(int wakefd);
/// The io_uring engine, or null (with the reason in `why`) where io_uring_setup fails.
std::unique_ptr<IoEngine> make_uring_engine(int wakefd, std::string& why);

}  // namespace asyncio::detail
