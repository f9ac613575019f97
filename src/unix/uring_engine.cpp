// The io_uring engine (docs/design/io.md, "io_uring").
//
// Every operation is a submission queued in the SQ ring and sent with the loop's wait, in one
// io_uring_enter per iteration (io_uring_submit_and_wait_timeout: submit, then wait for one
// completion or the time-out). A completion (CQE) completes its op. Cancellation submits
// IORING_OP_ASYNC_CANCEL; the op stays parked until its own CQE arrives (-ECANCELED, or the
// result the kernel produced anyway), because until then the kernel may write its buffer.
//
// A multishot receive (OpKind::recv_multi) stays armed: each message lands in a buffer of the
// engine's pool (a provided-buffer ring, registered at the first use), is handed to the op's
// on_data() and the buffer given back at once; the op completes with its last CQE (no
// IORING_CQE_F_MORE).
//
// Watches (add_reader/add_writer, the signal pipe, the loop's wake-up eventfd) are one-shot
// POLL_ADDs, re-armed at the next wait after they fired: by then the callbacks they queued have
// run, so an fd still ready is reported again (level-triggered, as Python's selectors).
#include "unix/io_engine.hpp"

#ifdef ASYNCIO_HAS_LIBURING

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <liburing.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/utsname.h>

#include "asyncio/events.hpp"
#include "sys/sys.hpp"
#include "sys/uring.hpp"

namespace asyncio::detail {

class UringEngine final : public IoEngine {
 public:
  UringEngine(int wakefd, io_uring ring, bool poll_first)
      : ring_(ring), poll_first_ok_(poll_first) {
    wake_.fd = wakefd;
    wake_.interest = 1;
    wake_.wake = true;
    to_arm_.push_back(&wake_);
  }
  ~UringEngine() override {
    quiesce();
    sys::uring_exit(&ring_);  // lets go of the pool's registration too
    if (pool_ring_ != nullptr) ::munmap(pool_ring_, pool_ring_bytes());
  }

  /// A ring, or null with the reason.
  static std::unique_ptr<IoEngine> create(int wakefd, std::string& why) {
    io_uring ring{};
    io_uring_params params{};
    // COOP_TASKRUN: completions are not pushed at the loop with an interrupt; they wait for its
    // next io_uring_enter, and TASKRUN_FLAG tells when some are waiting (see wait()).
    params.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    int r = sys::uring_init(kEntries, &ring, &params);
    bool recent = true;  // Linux 5.19 or later: IORING_RECVSEND_POLL_FIRST is known too
    if (r == -EINVAL) {  // a kernel older than 5.19: without the optional flags
      params = io_uring_params{};
      r = sys::uring_init(kEntries, &ring, &params);
      recent = false;
    }
    if (r < 0) {
      why = std::string("io_uring_setup failed: ") + std::strerror(-r);
      return nullptr;
    }
    if ((params.features & IORING_FEAT_NODROP) == 0 ||
        (params.features & IORING_FEAT_EXT_ARG) == 0) {
      sys::uring_exit(&ring);
      why = "io_uring is too old (needs IORING_FEAT_NODROP and IORING_FEAT_EXT_ARG, Linux 5.11)";
      return nullptr;
    }
    return std::make_unique<UringEngine>(wakefd, ring, recent);
  }

  [[nodiscard]] Backend backend() const noexcept override { return Backend::io_uring; }

  void submit(IoOp& op) override {
    if (op.fd() < 0) {
      complete(op, -EBADF);
      return;
    }
    const bool message = op.kind() == OpKind::sendmsg;
    std::size_t len = message ? message_length(*op.msg_) : op.len_;
    const std::size_t wanted = len;
    // A planned EINTR or EAGAIN means "not now, try again", which a submission does by itself
    // (as the epoll engine retries EINTR and parks on EAGAIN).
    if (const int e = sys::fault_for(call_of(op.kind()), &len);
        e != 0 && e != EINTR && e != EAGAIN) {
      complete(op, -e);
      return;
    }
    if (message && len < wanted) {
      // A planned short sendmsg: send a copy of the message that stops after `len` bytes.
      shortened_.push_back(std::make_unique<ShortMessage>(*op.msg_, len));
      op.msg_ = &shortened_.back()->msg;
    }
    op.len_ = len;
    op.state_ = OpState::parked;
    op.engine_bits_ = 0;
    ++in_flight_;
    // One op per fd and direction in the kernel at a time, the others wait here in order: the
    // kernel would complete two receives on one socket in either order (epoll's order is FIFO).
    if (enqueue(op)) send_to_kernel(op);
  }

  void cancel(IoOp& op) noexcept override {
    op.cancel_requested_ = true;
    take_back(op);
  }

  /// cancel() and kick(): a queued op completes at once, one in the kernel after its CQE.
  void take_back(IoOp& op) noexcept {
    if (op.state_ != OpState::parked || (op.engine_bits_ & kCancelSent) != 0) return;
    if ((op.engine_bits_ & kInKernel) == 0) {  // still waiting here: nothing to get back
      dequeue(op);
      --in_flight_;
      complete(op, -ECANCELED);
      return;
    }
    op.engine_bits_ |= kCancelSent;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel(sqe, &op, 0);
    io_uring_sqe_set_data64(sqe, kIgnore);
  }

  void kick(int fd) noexcept override {
    const auto index = static_cast<std::size_t>(fd);
    if (fd < 0 || index >= queues_.size()) return;
    IoOp* op = queues_[index].head[0];
    while (op != nullptr) {
      IoOp* next = op->next_;
      if (op->kind() != OpKind::poll_in && op->state_ == OpState::parked) {
        op->kicked_ = true;
        take_back(*op);
      }
      op = next;
    }
  }

  void abandon(IoOp& op) noexcept override {
    if (op.state_ != OpState::parked) return;
    if ((op.engine_bits_ & kInKernel) == 0) {
      dequeue(op);
      --in_flight_;
      op.state_ = OpState::done;
      op.result_ = -ECANCELED;
      return;
    }
    op.engine_bits_ |= kAbandoned;
    cancel(op);
    std::vector<IoEvent> scratch;
    while (op.state_ == OpState::parked) (void)wait(-1, scratch);
  }

  void quiesce() noexcept override {
    // Ops still waiting here complete at once; those in the kernel are cancelled and waited for.
    for (FdQueue& q : queues_) {
      for (IoOp* head : q.head) {
        if (head == nullptr) continue;
        while (IoOp* next = head->next_) cancel(*next);
        cancel(*head);
      }
    }
    std::vector<IoEvent> scratch;
    while (in_flight_ > 0) (void)wait(-1, scratch);
  }

  void forget(int /*fd*/) noexcept override {}  // the queues hold nothing once their ops are done

  bool multishot_receives() noexcept override {
    if (pool_state_ == 0) pool_state_ = set_up_pool() ? 1 : -1;
    return pool_state_ > 0;
  }

  void flush() noexcept override {
    if (io_uring_sq_ready(&ring_) > 0) (void)sys::uring_submit(&ring_);
  }

  void update(int fd, bool read, bool write) override {
    if (fd < 0) throw ValueError("Invalid file descriptor: " + std::to_string(fd));
    const std::uint8_t interest = (read ? 1U : 0U) | (write ? 2U : 0U);
    auto it = watches_.find(fd);
    if (it == watches_.end()) {
      if (interest == 0) return;
      if (sys::file_id(fd) == sys::FileId{}) raise_os_error(EBADF, "add_reader");
      auto w = std::make_unique<Watch>();
      w->fd = fd;
      it = watches_.emplace(fd, std::move(w)).first;
    }
    Watch* w = it->second.get();
    if (w->interest == interest) return;
    w->interest = interest;
    if (w->armed) {
      // The armed poll asks for the old interest: take it back; its CQE re-arms (or frees).
      io_uring_sqe* sqe = get_sqe();
      io_uring_prep_poll_remove(sqe, tag(w));
      io_uring_sqe_set_data64(sqe, kIgnore);
    }
    if (interest == 0) {
      std::unique_ptr<Watch> owned = std::move(it->second);
      watches_.erase(it);
      owned->dead = true;
      if (owned->armed) {
        graveyard_.push_back(std::move(owned));  // freed when its poll's CQE comes back
      } else {
        drop_from_arm_list(owned.get());
      }
      return;
    }
    if (!w->armed && !w->queued) queue_arm(w);
  }

  bool wait(int timeout_ms, std::vector<IoEvent>& out) override {
    arm_watches();
    io_uring_cqe* cqe = nullptr;
    if (timeout_ms == 0) {
      if (io_uring_sq_ready(&ring_) > 0) {
        (void)sys::uring_submit(&ring_);
      } else if ((IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) != 0) {
        (void)sys::uring_get_events(&ring_);  // completions are waiting for us to enter
      }
    } else if (io_uring_cq_ready(&ring_) == 0) {
      __kernel_timespec ts{};
      if (timeout_ms > 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1000000;
      }
      (void)sys::uring_submit_and_wait(&ring_, &cqe, timeout_ms > 0 ? &ts : nullptr);
    } else if (io_uring_sq_ready(&ring_) > 0) {
      (void)sys::uring_submit(&ring_);
    }
    bool woken = false;
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      woken |= handle(*cqe, out);
    }
    io_uring_cq_advance(&ring_, seen);
    return woken;
  }

 private:
  static constexpr unsigned kEntries = 256;
  static constexpr std::uint64_t kIgnore = 0;  // the CQEs of cancel and poll-remove requests
  static constexpr std::uint8_t kCancelSent = 1;
  static constexpr std::uint8_t kAbandoned = 2;
  static constexpr std::uint8_t kInKernel = 4;  // its SQE was queued (not waiting behind another)

  struct Watch {
    int fd = -1;
    std::uint8_t interest = 0;  // 1 read, 2 write
    bool armed = false;         // a POLL_ADD is in the kernel
    bool queued = false;        // in to_arm_
    bool dead = false;          // no longer wanted; freed with its last CQE
    bool wake = false;          // the loop's wake-up eventfd
  };

  static std::uint64_t tag(Watch* w) noexcept { return reinterpret_cast<std::uint64_t>(w) | 1U; }

  static sys::Call call_of(OpKind k) noexcept {
    switch (k) {
      case OpKind::recv:
      case OpKind::recv_multi:
        return sys::Call::recv;
      case OpKind::send:
        return sys::Call::send;
      case OpKind::sendmsg:
        return sys::Call::sendmsg;
      case OpKind::read:
        return sys::Call::read;
      case OpKind::write:
        return sys::Call::write;
      case OpKind::poll_in:
      case OpKind::poll_out:
        break;
    }
    return sys::Call::count_;
  }

  /// A free SQE; when the ring is full, what is queued is submitted first.
  io_uring_sqe* get_sqe() noexcept {
    for (;;) {
      if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
      (void)sys::uring_submit(&ring_);
    }
  }

  /// Appends `op` to its fd's queue; true when it is first (then it goes to the kernel now).
  bool enqueue(IoOp& op) {
    const auto index = static_cast<std::size_t>(op.fd());
    if (index >= queues_.size()) queues_.resize(index + 1);
    FdQueue& q = queues_[index];
    const std::size_t d = reads(op.kind()) ? 0 : 1;
    op.next_ = nullptr;
    op.prev_ = q.tail[d];
    if (q.tail[d] != nullptr) {
      q.tail[d]->next_ = &op;
    } else {
      q.head[d] = &op;
    }
    q.tail[d] = &op;
    return q.head[d] == &op;
  }
  /// Takes `op` out of its fd's queue; returns the op that is first now, if `op` was.
  IoOp* dequeue(IoOp& op) noexcept {
    FdQueue& q = queues_[static_cast<std::size_t>(op.fd())];
    const std::size_t d = reads(op.kind()) ? 0 : 1;
    const bool was_first = q.head[d] == &op;
    if (op.prev_ != nullptr) {
      op.prev_->next_ = op.next_;
    } else {
      q.head[d] = op.next_;
    }
    if (op.next_ != nullptr) {
      op.next_->prev_ = op.prev_;
    } else {
      q.tail[d] = op.prev_;
    }
    op.next_ = op.prev_ = nullptr;
    return was_first ? q.head[d] : nullptr;
  }

  /// Queues `op`'s SQE (sent with the next wait).
  void send_to_kernel(IoOp& op) noexcept {
    io_uring_sqe* sqe = get_sqe();
    switch (op.kind()) {
      case OpKind::poll_in:
        io_uring_prep_poll_add(sqe, op.fd(), POLLIN | POLLRDHUP);
        break;
      case OpKind::poll_out:
        io_uring_prep_poll_add(sqe, op.fd(), POLLOUT);
        break;
      case OpKind::recv:
        io_uring_prep_recv(sqe, op.fd(), op.buf_, op.len_, 0);
        // The owner knows the socket is drained: the kernel arms its poll at once instead of
        // first trying a receive that would find nothing.
        if (op.poll_first_ && poll_first_ok_) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
        break;
      case OpKind::send:
        io_uring_prep_send(sqe, op.fd(), op.buf_, op.len_, MSG_NOSIGNAL);
        break;
      case OpKind::sendmsg:
        io_uring_prep_sendmsg(sqe, op.fd(), op.msg_, MSG_NOSIGNAL);
        break;
      case OpKind::read:
        io_uring_prep_read(sqe, op.fd(), op.buf_, static_cast<unsigned>(op.len_), ~0ULL);
        break;
      case OpKind::write:
        io_uring_prep_write(sqe, op.fd(), op.buf_, static_cast<unsigned>(op.len_), ~0ULL);
        break;
      case OpKind::recv_multi:
        io_uring_prep_recv_multishot(sqe, op.fd(), nullptr, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = kPoolGroup;
        break;
    }
    io_uring_sqe_set_data(sqe, &op);
    op.engine_bits_ |= kInKernel;
  }

  void queue_arm(Watch* w) {
    w->queued = true;
    to_arm_.push_back(w);
  }
  void drop_from_arm_list(Watch* w) noexcept {
    if (!w->queued) return;
    for (Watch*& p : to_arm_) {
      if (p == w) p = nullptr;
    }
  }
  void arm_watches() noexcept {
    for (Watch* w : to_arm_) {
      if (w == nullptr) continue;
      w->queued = false;
      if (w->dead || w->armed || w->interest == 0) continue;
      unsigned mask = 0;
      if ((w->interest & 1U) != 0) mask |= POLLIN | POLLRDHUP;
      if ((w->interest & 2U) != 0) mask |= POLLOUT;
      io_uring_sqe* sqe = get_sqe();
      io_uring_prep_poll_add(sqe, w->fd, mask);
      io_uring_sqe_set_data64(sqe, tag(w));
      w->armed = true;
    }
    to_arm_.clear();
  }

  /// One completion; true for the wake-up eventfd.
  bool handle(const io_uring_cqe& cqe, std::vector<IoEvent>& out) noexcept {
    const std::uint64_t data = cqe.user_data;
    if (data == kIgnore) return false;
    if ((data & 1U) != 0) {
      auto* w = reinterpret_cast<Watch*>(data & ~std::uint64_t{1});  // NOLINT: our own tag
      w->armed = false;
      if (w->dead) {
        for (auto it = graveyard_.begin(); it != graveyard_.end(); ++it) {
          if (it->get() == w) {
            graveyard_.erase(it);
            break;
          }
        }
        return false;
      }
      bool woken = false;
      if (cqe.res > 0) {
        const auto ev = static_cast<unsigned>(cqe.res);
        const bool err = (ev & (POLLERR | POLLHUP)) != 0;
        const bool r = ((ev & (POLLIN | POLLRDHUP)) != 0 || err) && (w->interest & 1U) != 0;
        const bool wr = ((ev & POLLOUT) != 0 || err) && (w->interest & 2U) != 0;
        if (w->wake) {
          sys::eventfd_drain(w->fd);
          woken = true;
        } else if (r || wr) {
          out.push_back({w->fd, r, wr});
        }
      }
      try {
        queue_arm(w);  // at the next wait, after the callbacks queued now have run
      } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory; the watch stays quiet
      }
      return woken;
    }
    auto* op = reinterpret_cast<IoOp*>(data);  // NOLINT: our own tag
    long r = cqe.res;
    if (op->kind() == OpKind::recv_multi) {
      if (r > 0 && (cqe.flags & IORING_CQE_F_BUFFER) != 0) {
        const auto bid = static_cast<unsigned short>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
        if ((op->engine_bits_ & kAbandoned) == 0) {
          op->on_data(pool_.get() + std::size_t{bid} * kPoolBufSize, static_cast<std::size_t>(r));
        }
        give_back(bid);
      }
      if ((cqe.flags & IORING_CQE_F_MORE) != 0) return false;  // still armed
      if (r > 0) r = -EAGAIN;  // the kernel stopped it after a message: arm again
    }
    if (IoOp* next = dequeue(*op)) send_to_kernel(*next);
    --in_flight_;
    if (!shortened_.empty()) [[unlikely]]
      forget_short_message(*op);
    if ((op->kind() == OpKind::poll_in || op->kind() == OpKind::poll_out) && r == 0) r = 1;
    if ((op->engine_bits_ & kAbandoned) != 0) {
      op->state_ = OpState::done;
      op->result_ = r;
      return false;
    }
    complete(*op, r);
    return false;
  }

  // -- The pool of provided buffers (recv_multi) -----------------------------------------------
  static constexpr unsigned short kPoolGroup = 0;
  static constexpr unsigned kPoolBufs = 512;  // a power of two
  static constexpr std::size_t kPoolBufSize = 4096;
  static std::size_t pool_ring_bytes() noexcept { return kPoolBufs * sizeof(io_uring_buf); }

  /// Registers the pool (Linux 6.0 for multishot receives; 5.19 for buffer rings).
  bool set_up_pool() noexcept {
    utsname u{};
    int major = 0;
    int minor = 0;
    if (::uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2 || major < 6) {
      return false;
    }
    void* mem = ::mmap(nullptr, pool_ring_bytes(), PROT_READ | PROT_WRITE,
                       MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) return false;
    auto* br = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(br);  // NOLINT: the kernel's ABI
    reg.ring_entries = kPoolBufs;
    reg.bgid = kPoolGroup;
    if (io_uring_register_buf_ring(&ring_, &reg, 0) != 0) {
      ::munmap(mem, pool_ring_bytes());
      return false;
    }
    try {
      // Not zeroed: a page costs memory once the kernel first fills a buffer in it.
      pool_ = std::make_unique_for_overwrite<char[]>(kPoolBufs * kPoolBufSize);
    } catch (...) {
      (void)io_uring_unregister_buf_ring(&ring_, kPoolGroup);
      ::munmap(mem, pool_ring_bytes());
      return false;
    }
    pool_ring_ = br;
    io_uring_buf_ring_init(br);
    for (unsigned i = 0; i < kPoolBufs; ++i) {
      io_uring_buf_ring_add(br, pool_.get() + std::size_t{i} * kPoolBufSize, kPoolBufSize,
                            static_cast<unsigned short>(i), io_uring_buf_ring_mask(kPoolBufs),
                            static_cast<int>(i));
    }
    io_uring_buf_ring_advance(br, static_cast<int>(kPoolBufs));
    return true;
  }
  /// Returns buffer `bid` to the pool (its bytes were handed over).
  void give_back(unsigned short bid) noexcept {
    io_uring_buf_ring_add(pool_ring_, pool_.get() + std::size_t{bid} * kPoolBufSize, kPoolBufSize,
                          bid, io_uring_buf_ring_mask(kPoolBufs), 0);
    io_uring_buf_ring_advance(pool_ring_, 1);
  }

  io_uring ring_;
  io_uring_buf_ring* pool_ring_ = nullptr;
  std::unique_ptr<char[]> pool_;
  int pool_state_ = 0;  // 0: not tried, 1: set up, -1: not available
  bool poll_first_ok_;  // the kernel knows IORING_RECVSEND_POLL_FIRST (5.19)
  /// A copy of a message cut short by a planned fault (tests), alive until its op completes.
  struct ShortMessage {
    msghdr msg{};
    std::vector<iovec> iov;
    ShortMessage(const msghdr& m, std::size_t len) : msg(m) {
      for (std::size_t i = 0; i < m.msg_iovlen && len > 0; ++i) {
        iovec v = m.msg_iov[i];  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
        if (v.iov_len > len) v.iov_len = len;
        len -= v.iov_len;
        iov.push_back(v);
      }
      msg.msg_iov = iov.data();
      msg.msg_iovlen = iov.size();
    }
  };
  static std::size_t message_length(const msghdr& m) noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < m.msg_iovlen; ++i) {
      n += m.msg_iov[i].iov_len;  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
    }
    return n;
  }
  void forget_short_message(const IoOp& op) noexcept {
    for (auto it = shortened_.begin(); it != shortened_.end(); ++it) {
      if (&(*it)->msg == op.msg_) {
        shortened_.erase(it);
        return;
      }
    }
  }
  std::vector<std::unique_ptr<ShortMessage>> shortened_;

  struct FdQueue {
    std::array<IoOp*, 2> head{};  // per direction (0: read, 1: write); the head is in the kernel
    std::array<IoOp*, 2> tail{};
  };
  std::vector<FdQueue> queues_;  // by fd
  Watch wake_;
  std::map<int, std::unique_ptr<Watch>> watches_;
  std::vector<std::unique_ptr<Watch>> graveyard_;
  std::vector<Watch*> to_arm_;
};

std::unique_ptr<IoEngine> make_uring_engine(int wakefd, std::string& why) {
  return UringEngine::create(wakefd, why);
}

}  // namespace asyncio::detail

#else

namespace asyncio::detail {

std::unique_ptr<IoEngine> make_uring_engine(int /*wakefd*/, std::string& why) {
  why = "this build has no io_uring support (liburing-dev was not found)";
  return nullptr;
}

}  // namespace asyncio::detail

#endif
