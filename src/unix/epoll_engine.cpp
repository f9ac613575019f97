// The epoll engine (docs/design/io.md, "epoll").
//
// Operations: the syscall is tried first when the fd may be ready; on EAGAIN the op parks on
// the fd's state (one FIFO per direction). Each fd is registered once, edge-triggered for
// EPOLLIN | EPOLLRDHUP (EPOLLOUT added the first time a write parks: sends rarely wait, and
// freed send-buffer room would otherwise wake the loop for nothing), and stays registered
// between operations, so a steady stream of operations makes no epoll_ctl call. Edges mark the fd
// ready and retry its parked ops; an EAGAIN clears the mark, and an op submitted while the fd is
// known not to be ready parks without trying.
//
// The fds belong to the caller, who may close one and get the same number back for another
// file. The engine notices when it is about to park an op on an fd that has nothing parked:
// it compares the file's identity (fstat's device and inode) with the one registered, and
// registers the new file afresh (the kernel dropped the old registration with the old file).
//
// Watches (add_reader/add_writer, the signal pipe) want level-triggered reports: an fd with a
// watch is registered level-triggered for the watched directions plus those of parked ops.
#include <array>
#include <cerrno>
#include <memory>
#include <system_error>
#include <vector>

#include <sys/epoll.h>

#include "asyncio/events.hpp"
#include "sys/sys.hpp"
#include "unix/io_engine.hpp"

namespace asyncio::detail {

class EpollEngine final : public IoEngine {
 public:
  explicit EpollEngine(int wakefd) : epfd_(sys::epoll_create()), wakefd_(wakefd) {
    try {
      sys::epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, EPOLLIN);
    } catch (...) {
      sys::close(epfd_);
      throw;
    }
  }
  ~EpollEngine() override { sys::close(epfd_); }

  [[nodiscard]] Backend backend() const noexcept override { return Backend::epoll; }

  void submit(IoOp& op) override {
    const int fd = op.fd();
    // The common case first, as submit_general() would take it: a transport waits for
    // readability again on its own registered socket, which nothing else watches (its last
    // read came up short; every echo or request/response round trip does this).
    if (op.kind() == OpKind::poll_in && op.owned_fd() && static_cast<unsigned>(fd) < fds_.size()) {
      FdState& st = fds_[static_cast<std::size_t>(fd)];
      if (st.registered && !st.hup && st.watch == 0) {
        st.ready[0] = false;
        append(st, 0, op);
        if (sys::take_injected_eagain()) (void)try_ctl(EPOLL_CTL_MOD, fd, st.events);
        return;
      }
    }
    submit_general(op);
  }

  void cancel(IoOp& op) noexcept override {
    op.cancel_requested_ = true;
    if (op.state_ != OpState::parked) return;
    unlink(op);
    complete(op, -ECANCELED);
  }

  void kick(int fd) noexcept override {
    const auto index = static_cast<std::size_t>(fd);
    if (fd < 0 || index >= fds_.size()) return;
    IoOp* op = fds_[index].head[0];
    while (op != nullptr) {
      IoOp* next = op->next_;
      if (op->kind() != OpKind::poll_in) {
        op->kicked_ = true;
        unlink(*op);
        complete(*op, -ECANCELED);
      }
      op = next;
    }
  }

  void abandon(IoOp& op) noexcept override {
    if (op.state_ != OpState::parked) return;
    unlink(op);
    op.state_ = OpState::done;
    op.result_ = -ECANCELED;
  }

  void quiesce() noexcept override {}  // the kernel owns nothing of a parked op

  void forget(int fd) noexcept override {
    const auto index = static_cast<std::size_t>(fd);
    if (fd < 0 || index >= fds_.size()) return;
    FdState& st = fds_[index];
    if (st.registered) (void)try_ctl(EPOLL_CTL_DEL, fd, 0);
    st = FdState{};
  }

  void update(int fd, bool read, bool write) override {
    if (fd < 0) throw ValueError("Invalid file descriptor: " + std::to_string(fd));
    FdState& st = state(fd);
    const std::uint8_t watch = (read ? 1U : 0U) | (write ? 2U : 0U);
    if (watch == st.watch) return;
    const std::uint8_t old = st.watch;
    st.watch = watch;
    try {
      reregister(fd, st);
    } catch (...) {
      st.watch = old;
      throw;
    }
  }

  bool wait(int timeout_ms, std::vector<IoEvent>& out) override {
    const int n =
        sys::epoll_wait(epfd_, events_.data(), static_cast<int>(events_.size()), timeout_ms);
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      const epoll_event& ev = events_[static_cast<std::size_t>(i)];
      const int fd = ev.data.fd;
      if (fd == wakefd_) {
        sys::eventfd_drain(wakefd_);
        woken = true;
        continue;
      }
      const auto index = static_cast<std::size_t>(fd);
      if (index >= fds_.size()) continue;
      FdState& st = fds_[index];
      // As Python's selectors: an error or hang-up wakes both directions.
      const bool err = (ev.events & (EPOLLERR | EPOLLHUP)) != 0;
      const bool in = (ev.events & (EPOLLIN | EPOLLRDHUP)) != 0 || err;
      const bool outw = (ev.events & EPOLLOUT) != 0 || err;
      if (st.watch != 0) {
        const bool r = in && (st.watch & 1U) != 0;
        const bool w = outw && (st.watch & 2U) != 0;
        if (r || w) out.push_back({fd, r, w});
      }
      const bool had_ops = st.head[0] != nullptr || st.head[1] != nullptr;
      if ((ev.events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) st.hup = true;
      if (in) {
        st.ready[0] = true;
        run_parked(st, 0);
      }
      if (outw) {
        st.ready[1] = true;
        run_parked(st, 1);
      }
      // Level-triggered (a watch): stop asking for directions no op waits on any more.
      if (had_ops && st.watch != 0) reregister(fd, st);
    }
    return woken;
  }

 private:
  struct FdState {
    std::array<IoOp*, 2> head{};  // parked ops, FIFO, per direction (0: read, 1: write)
    std::array<IoOp*, 2> tail{};
    std::array<bool, 2> ready{true, true};  // may be ready: try before parking
    bool registered = false;
    bool out_armed = false;    // EPOLLOUT is asked for (since a write first parked)
    bool hup = false;          // the peer hung up (or an error): reads will not block again
    std::uint8_t watch = 0;    // level-triggered watch: 1 read, 2 write
    std::uint32_t events = 0;  // what the registration asks for
    sys::FileId id;            // the file registered
  };

  /// submit() for all but its common case (out of line: the common case then saves no
  /// registers).
  [[gnu::noinline]] void submit_general(IoOp& op) {
    const int fd = op.fd();
    if (fd < 0) {
      complete(op, -EBADF);
      return;
    }
    FdState& st = state(fd);
    const int dir = reads(op.kind()) ? 0 : 1;
    const bool poll = is_poll(op.kind());
    bool tried = false;
    if (poll) {
      // The owner has just seen EAGAIN, or a short read of a stream socket (a transport: the
      // receive buffer was drained). But once the peer has hung up no edge will come again:
      // a wait for readability after that is over at once (the owner reads the EOF).
      if (dir == 0 && st.hup && st.registered) {
        complete(op, 1);
        return;
      }
      st.ready[dir] = false;
    } else if (st.head[dir] == nullptr && st.ready[dir]) {
      tried = true;
      if (try_now(op, st, dir)) return;
    }
    if (st.head[0] == nullptr && st.head[1] == nullptr && !(op.owned_fd() && st.registered)) {
      // Nothing is parked on this fd: it may name another file since it was registered (not
      // so for an fd the library owns: it forgets the fd before closing it).
      const int err = revalidate(fd, st, dir == 1);
      if (err < 0) {
        complete(op, err);
        return;
      }
      if (err > 0 && !tried && !poll && try_now(op, st, dir)) return;
    }
    if (dir == 1 && !st.out_armed && st.registered && st.watch == 0) {
      // The first write to park on this fd: from now on the registration asks for EPOLLOUT too
      // (the MOD reports the current state). Until then, room freed in the send buffer did not
      // wake the loop for nothing.
      st.out_armed = true;
      if (const int err = try_ctl(EPOLL_CTL_MOD, fd, wanted(st)); err < 0) {
        complete(op, err);
        return;
      }
      st.events = wanted(st);
      st.ready[1] = false;
    }
    append(st, dir, op);
    if (st.watch != 0) reregister(fd, st);
    // A planned EAGAIN (tests) was a lie: the fd may be ready, and no new edge would come.
    // Re-arming the registration makes the kernel report its readiness again.
    if (sys::take_injected_eagain() && st.registered) (void)try_ctl(EPOLL_CTL_MOD, fd, st.events);
  }

  static bool is_poll(OpKind k) noexcept { return k == OpKind::poll_in || k == OpKind::poll_out; }

  FdState& state(int fd) {
    const auto index = static_cast<std::size_t>(fd);
    if (index >= fds_.size()) fds_.resize(index + 1);
    return fds_[index];
  }

  /// Tries `op` now: true when done (completed), false on EAGAIN (the direction is not ready).
  bool try_now(IoOp& op, FdState& st, int dir) noexcept {
    const long r = op.perform();
    if (r == -EAGAIN) {
      st.ready[static_cast<std::size_t>(dir)] = false;
      return false;
    }
    complete(op, r);
    return true;
  }

  int try_ctl(int op, int fd, std::uint32_t events) const noexcept {
    try {
      sys::epoll_ctl(epfd_, op, fd, events);
      return 0;
    } catch (const std::system_error& e) {
      return -e.code().value();
    }
  }

  /// Makes the registration describe the file `fd` names now. Returns 1 when it (re)registered
  /// (what the engine knew of the fd's readiness was stale: the ADD reports the current state),
  /// 0 when the registration stands, -errno when the fd cannot be watched.
  int revalidate(int fd, FdState& st, bool for_write) noexcept {
    const sys::FileId id = sys::file_id(fd);
    if (st.registered && id == st.id) return 0;
    if (id == sys::FileId{}) return -EBADF;
    st.registered = false;
    st.events = 0;
    st.out_armed = for_write;
    // The ADD reports the directions it asks for; writability stays "try first" until a write
    // parks (see submit()).
    st.ready = {false, !for_write};
    st.hup = false;
    st.id = id;
    const std::uint32_t events = wanted(st);
    int err = try_ctl(EPOLL_CTL_ADD, fd, events);
    if (err == -EEXIST) err = try_ctl(EPOLL_CTL_MOD, fd, events);
    if (err < 0) return err;
    st.registered = true;
    st.events = events;
    return 1;
  }

  /// What the registration should ask for: level-triggered for a watched fd, else edge.
  static std::uint32_t wanted(const FdState& st) noexcept {
    if (st.watch == 0) {
      const bool out = st.out_armed || st.head[1] != nullptr;
      return EPOLLIN | EPOLLRDHUP | EPOLLET | (out ? EPOLLOUT : 0U);
    }
    std::uint32_t ev = 0;
    if ((st.watch & 1U) != 0 || st.head[0] != nullptr) ev |= EPOLLIN;
    if ((st.watch & 2U) != 0 || st.head[1] != nullptr) ev |= EPOLLOUT;
    return ev;
  }

  /// Brings a watched (or no longer watched) fd's registration up to date; throws the OSError
  /// of epoll_ctl (a closed fd, a regular file...).
  void reregister(int fd, FdState& st) {
    const bool parked = st.head[0] != nullptr || st.head[1] != nullptr;
    if (st.watch == 0 && !parked) {
      // Nothing to watch any more: deregister (the fd may be closed already: nothing to do).
      if (st.registered) {
        const int err = try_ctl(EPOLL_CTL_DEL, fd, 0);
        if (err < 0 && err != -EBADF && err != -ENOENT) raise_os_error(-err, "epoll_ctl");
      }
      st.registered = false;
      st.events = 0;
      st.ready = {true, true};
      return;
    }
    const std::uint32_t events = wanted(st);
    if (st.registered && events == st.events) return;
    if (st.registered) {
      int err = try_ctl(EPOLL_CTL_MOD, fd, events);
      if (err == -ENOENT) err = try_ctl(EPOLL_CTL_ADD, fd, events);  // the file changed
      if (err < 0) raise_os_error(-err, "epoll_ctl");
    } else {
      sys::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, events);
      st.id = sys::file_id(fd);
    }
    st.registered = true;
    st.events = events;
    st.ready = {false, false};
  }

  void append(FdState& st, int dir, IoOp& op) noexcept {
    const auto d = static_cast<std::size_t>(dir);
    op.next_ = nullptr;
    op.prev_ = st.tail[d];
    if (st.tail[d] != nullptr) {
      st.tail[d]->next_ = &op;
    } else {
      st.head[d] = &op;
    }
    st.tail[d] = &op;
    op.state_ = OpState::parked;
    ++in_flight_;
  }

  void unlink(IoOp& op) noexcept {
    FdState& st = fds_[static_cast<std::size_t>(op.fd())];
    const std::size_t d = reads(op.kind()) ? 0 : 1;
    if (op.prev_ != nullptr) {
      op.prev_->next_ = op.next_;
    } else {
      st.head[d] = op.next_;
    }
    if (op.next_ != nullptr) {
      op.next_->prev_ = op.prev_;
    } else {
      st.tail[d] = op.prev_;
    }
    op.next_ = op.prev_ = nullptr;
    --in_flight_;
  }

  /// The fd became ready in `dir`: completes parked ops in order until one would block.
  void run_parked(FdState& st, int dir) noexcept {
    const auto d = static_cast<std::size_t>(dir);
    while (IoOp* op = st.head[d]) {
      const long r = is_poll(op->kind()) ? 1 : op->perform();
      if (r == -EAGAIN) {
        st.ready[d] = false;
        if (sys::take_injected_eagain()) (void)try_ctl(EPOLL_CTL_MOD, op->fd(), st.events);
        return;
      }
      unlink(*op);
      complete(*op, r);
    }
  }

  int epfd_;
  int wakefd_;  // owned by the loop's PostQueue
  std::vector<FdState> fds_;
  std::array<epoll_event, 256> events_{};
};

std::unique_ptr<IoEngine> make_epoll_engine(int wakefd) {
  return std::make_unique<EpollEngine>(wakefd);
}

long IoOp::perform() noexcept {
  switch (kind_) {
    case OpKind::recv:
      return sys::recv(fd_, buf_, len_);
    case OpKind::send:
      return sys::send(fd_, buf_, len_);
    case OpKind::sendmsg:
      return sys::sendmsg(fd_, msg_);
    case OpKind::read:
      return sys::read(fd_, buf_, len_);
    case OpKind::write:
      return sys::write(fd_, buf_, len_);
    case OpKind::poll_in:
    case OpKind::poll_out:
    case OpKind::recv_multi:  // io_uring's alone
      break;
  }
  return -EAGAIN;
}

}  // namespace asyncio::detail
