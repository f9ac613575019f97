// The platform part of an EventLoop: the I/O engine (epoll or io_uring), the fd table of
// readers and writers, the queue of call_soon_threadsafe entries, signal handlers, and the bytes
// that cancelled receives left behind (Python: selector_events.py, unix_events.py).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "asyncio/detail/intrusive.hpp"
#include "asyncio/events.hpp"
#include "sys/sys.hpp"
#include "unix/io_engine.hpp"

namespace asyncio {
class BaseTransport;
}  // namespace asyncio

namespace asyncio::detail {

/// The part of a loop that other threads reach: the queue of call_soon_threadsafe entries and
/// executor completions, and the eventfd that wakes the loop. Shared-owned (the loop, and every
/// executor job in flight), so a thread that posts after the loop closed, or after it was
/// destroyed, finds a closed queue rather than freed memory. The loop drains it on its own
/// thread; once closed it refuses posts, and what was queued is discarded on the loop's thread.
class PostQueue {
 public:
  PostQueue();  // creates the eventfd
  PostQueue(const PostQueue&) = delete;
  PostQueue& operator=(const PostQueue&) = delete;
  ~PostQueue();  // closes it

  [[nodiscard]] int wake_fd() const noexcept { return wakefd_; }
  /// From any thread: queues `st` (taking the reference the ready queue will own) and wakes
  /// the loop. False, with `st` untouched, once the loop has closed.
  bool post(HandleState* st);
  /// On the loop's thread: moves what was posted to `ready`, in posting order.
  void drain(ReadyQueue& ready);
  /// On the loop's thread: refuses further posts and discards the queued ones.
  void close() noexcept;
  /// Set while posts wait to be drained (may lag a post by a few instructions; the post's
  /// wake-up comes after it is set).
  [[nodiscard]] const std::atomic<bool>& has_posted() const noexcept { return has_posted_; }

 private:
  /// What head_ holds once closed (never dereferenced).
  static HandleState* closed_mark() noexcept {
    return reinterpret_cast<HandleState*>(std::uintptr_t{1});  // NOLINT(performance-no-int-to-ptr)
  }
  // A lock-free stack of posted handles (linked through HandleState::post_next, newest first;
  // each holds the reference the ready queue will own): a post is one compare-and-swap, a drain
  // one exchange. Several threads posting at once never sleep on a lock.
  std::atomic<HandleState*> head_{nullptr};
  std::atomic<bool> has_posted_{false};
  int wakefd_;
};

/// Something the library owns on a loop (a transport, a listening socket) that must let go of
/// its fd and its references when the loop closes: LoopIo::close() calls on_loop_close() on each
/// one still linked in LoopIo::resources (unlinking it first). The owner unlinks itself when it
/// is done earlier.
class IoResource : public ListHook {
 public:
  virtual void on_loop_close() noexcept = 0;

 protected:
  IoResource() = default;
  IoResource(const IoResource&) = default;
  IoResource& operator=(const IoResource&) = default;
  ~IoResource() = default;
};

struct LoopIo {
  /// The engine `backend` names; Backend::automatic: ASYNCIO_BACKEND from the environment
  /// (epoll, io_uring), else the default (docs/design/io.md). An explicit io_uring that the
  /// kernel refuses throws RuntimeError; automatic falls back to epoll (noted in debug mode).
  explicit LoopIo(Backend backend, bool debug = false);
  LoopIo(const LoopIo&) = delete;
  LoopIo& operator=(const LoopIo&) = delete;
  ~LoopIo();

  /// Polls and moves what became ready (fd callbacks, signals, thread-safe posts) to `ready`.
  /// A zero time-out with nothing to watch skips the system call: only the thread-safe queue
  /// (an atomic flag) can have anything then.
  void poll(int timeout_ms, ReadyQueue& ready);
  /// Queues a handle from any thread; RuntimeError once closed.
  void post(HandleState* st);
  /// The thread-safe queue (shared with executor jobs in flight).
  std::shared_ptr<PostQueue> posts = std::make_shared<PostQueue>();
  /// Drops everything (the loop is closing).
  void close() noexcept;
  /// True while I/O the loop must wait for is outstanding (watched fds, operations in flight):
  /// virtual time does not jump over it.
  [[nodiscard]] bool has_pending_io() const noexcept {
    return watchers > 0 || engine->in_flight() > 0;
  }
  /// Gets back every operation the kernel still owns (the loop is about to destroy frames).
  void quiesce() noexcept { engine->quiesce(); }
  /// Sends the engine's queued submissions now (the loop stops running).
  void flush() noexcept { engine->flush(); }
  /// The engine running.
  [[nodiscard]] Backend backend() const noexcept { return engine->backend(); }

  // -- What cancelled receives left behind (docs/design/io.md, "Cancellation") --------------
  /// Keeps `data` (bytes a cancelled receive got from the kernel anyway) for the next receive
  /// on `fd`, behind what is kept already.
  void stash(int fd, const char* data, std::size_t n);
  /// Up to `n` kept bytes of `fd` into `out`; the count (0: none, or the fd names another file
  /// now, and what was kept for the old one is dropped).
  std::size_t take_stash(int fd, char* out, std::size_t n);
  [[nodiscard]] bool has_stash() const noexcept { return !stashes_.empty(); }
  void set_fd_handle(int fd, bool write, Ref<HandleState> h);
  bool clear_fd_handle(int fd, bool write);
  void set_signal_handle(int sig, Ref<HandleState> h);
  bool clear_signal_handle(int sig);

  // -- Which transport uses a socket (Python: BaseSelectorEventLoop._transports) ------------
  /// Records that transport `t` (`what`: how errors name it) uses socket `fd`, from its
  /// creation until it closes the fd. Socket and datagram transports do, as Python's selector
  /// transports do; pipe transports do not.
  void claim_fd(int fd, const BaseTransport* t, const char* what);
  /// `t` is done with `fd` (before closing it): forgets it, unless a later transport has the
  /// number now.
  void release_fd(int fd, const BaseTransport* t) noexcept;
  /// RuntimeError when a transport that is not closing uses `fd`: such an fd is the
  /// transport's alone (add_reader and the others, the sock_* functions, a second transport).
  /// Python: _ensure_fd_no_transport
  void check_no_transport(int fd) const;

  /// The loop's receive buffer, shared by every transport whose protocol takes data as views
  /// (Protocol::data_received): a recv lands here and is handed on before the next one.
  /// Allocated on first use.
  char* read_buffer();
  static constexpr std::size_t kReadBufferSize = 256 * 1024;  // Python: max_size = 256 KiB

  std::unique_ptr<IoEngine> engine;
  int watchers = 0;         // user fd directions being watched
  IntrusiveList resources;  // IoResource: closed with the loop

 private:
  struct FdWatch {
    Ref<HandleState> reader;
    Ref<HandleState> writer;
  };
  /// True when a signal this loop handles arrived since the last check (clears the flags).
  bool take_signal_flags() noexcept;
  void drain_signals(ReadyQueue& ready);

  std::vector<FdWatch> fds_;
  struct FdUser {
    const BaseTransport* transport = nullptr;
    const char* what = nullptr;
  };
  std::vector<FdUser> fd_users_;  // by fd: the transport using it (claim_fd)
  std::vector<IoEvent> events_;
  bool closed_ = false;
  int sigpipe_[2] = {-1, -1};
  struct SignalWatch {
    Ref<HandleState> handle;
    std::size_t slot;  // in the process-wide table of the signal's watchers (loop_io.cpp)
  };
  std::map<int, SignalWatch> signals_;
  struct Stash {
    sys::FileId id;
    std::string data;
  };
  std::map<int, Stash> stashes_;
  std::unique_ptr<char[]> read_buffer_;
  unsigned fork_generation_;      // the process's fork generation when made (loop_io.cpp)
  bool waited_last_ = false;      // the previous poll() waited on the engine
  bool skip_zero_waits_ = false;  // epoll: see poll()
};

}  // namespace asyncio::detail
