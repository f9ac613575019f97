// Datagram endpoints (Python: selector_events._SelectorDatagramTransport,
// base_events.create_datagram_endpoint, loop.sock_recvfrom / sock_sendto) and DatagramSocket.
// docs/design/io.md, "Datagrams".
//
// Readiness-based on both engines: a datagram is received with recvfrom() when the socket may
// be readable (a poll op on the engine waits otherwise), so a cancelled wait never loses a
// datagram. An IP endpoint receives up to kBatch datagrams with one recvmmsg() into a per-thread
// batch buffer (kBatch slots of 64 KiB, more than any IP datagram); a Unix one (whose datagrams
// may be larger) one at a time with recvfrom() into the loop's buffer. sendto() sends at once
// when the socket takes it, else the datagram is buffered (whole, in order) until it is
// writable; while a received batch is being delivered, sendto()s are gathered and leave
// together with one sendmmsg() when the batch has been delivered (an echo server's replies:
// one system call per batch, not per datagram).
#include <algorithm>
#include <any>
#include <cerrno>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/sockets.hpp"
#include "asyncio/tasks.hpp"
#include "asyncio/transports.hpp"
#include "flow_control.hpp"
#include "sys/sys.hpp"
#include "transports_detail.hpp"
#include "unix/io_await.hpp"
#include "unix/io_engine.hpp"
#include "unix/loop_io.hpp"
#include "unix/owned_op.hpp"

namespace asyncio {

namespace detail {
namespace {

std::exception_ptr os_error(long err, const char* what) {
  return make_os_error(static_cast<int>(-err), what);
}

constexpr unsigned kBatch = 32;  // datagrams per recvmmsg()/sendmmsg()
constexpr std::size_t kSlot =
    std::size_t{64} * 1024;  // an IP datagram's payload is at most 65,507 bytes

/// The thread's batch: recvmmsg()'s slots and headers, reused by sendmmsg(). One thread runs one
/// loop and a batch is used from one call to the next only, so endpoints share it.
struct Batch {
  std::unique_ptr<char[]> data{new char[kBatch * kSlot]};  // touched only as far as written
  mmsghdr msgs[kBatch]{};
  iovec iov[kBatch]{};
  SocketAddress from[kBatch];
};

Batch& batch() {
  thread_local Batch b;
  return b;
}

class DatagramSocketTransport final : public DatagramTransport, public IoResource {
 public:
  DatagramSocketTransport(EventLoop& loop, int fd)
      : loop_(&loop),
        io_(&io_of(loop)),
        fd_(fd),
        readable_(OpKind::poll_in, fd, *this, &DatagramSocketTransport::on_readable,
                  ready_queue_of(loop)),
        writable_(OpKind::poll_out, fd, *this, &DatagramSocketTransport::on_writable,
                  ready_queue_of(loop)),
        start_(*this, &DatagramSocketTransport::on_start, ready_queue_of(loop)),
        lost_(*this, &DatagramSocketTransport::on_lost, ready_queue_of(loop)) {}
  DatagramSocketTransport(const DatagramSocketTransport&) = delete;
  DatagramSocketTransport& operator=(const DatagramSocketTransport&) = delete;
  ~DatagramSocketTransport() override {
    if (fd_ >= 0) close_fd();  // creation failed before the transport got going
  }

  /// Wraps the datagram socket `fd` (taken over), calls connection_made and starts reading on
  /// the loop's next pass. `connected`: the socket is connected to its peer.
  /// `address`: where sendto() without an address goes (Python's _address: the peer of a
  /// connected socket, or allow_broadcast's remote_addr).
  static std::shared_ptr<DatagramSocketTransport> make(EventLoop& loop, int fd,
                                                       std::shared_ptr<DatagramProtocol> protocol,
                                                       bool connected,
                                                       std::optional<SocketAddress> address) {
    auto t = std::make_shared<DatagramSocketTransport>(loop, fd);
    t->protocol_ = std::move(protocol);
    t->local_ = socket_address(fd, false);
    t->inet_ = t->local_.family() == AF_INET || t->local_.family() == AF_INET6;
    t->connected_ = connected;
    if (connected) t->peer_ = socket_address(fd, true);
    t->address_ = connected ? std::optional<SocketAddress>(t->peer_) : address;
    t->io_->claim_fd(fd, t.get(), "datagram transport");  // (may throw: before self_, as there)
    t->self_ = t;
    t->io_->resources.push_back(static_cast<IoResource*>(t.get()));
    t->made_ = true;
    try {
      t->protocol_->connection_made(*t);
    } catch (...) {
      t->fatal_error(std::current_exception(), "Fatal error: protocol.connection_made() failed");
      return t;
    }
    if (!t->closing_) t->start_.queue();
    return t;
  }

  // -- BaseTransport ---------------------------------------------------------------------------
  [[nodiscard]] std::any get_extra_info(std::string_view name) const override {
    if (name == "peername" && peer_.size() > 0) return {peer_};
    if (name == "sockname" && local_.size() > 0) return {local_};
    if (name == "socket") return {fd_};
    return {};
  }
  [[nodiscard]] bool is_closing() const noexcept override { return closing_; }
  void close() override {
    if (closing_) return;
    closing_ = true;
    if (readable_.parked()) io_->engine->cancel(readable_);
    // Closed from datagram_received(): what sendto() gathered so far was sent before close(),
    // so it leaves now (or is buffered, and close waits for it as for any buffered datagram).
    if (gathering_) flush_gathered();
    if (buffer_.empty()) {
      ++conn_lost_;
      schedule_lost(nullptr);
    }
  }
  void set_protocol(std::shared_ptr<BaseProtocol> protocol) override {
    auto p = std::dynamic_pointer_cast<DatagramProtocol>(std::move(protocol));
    if (!p) throw ValueError("a datagram transport needs a DatagramProtocol");
    protocol_ = std::move(p);
  }
  [[nodiscard]] std::shared_ptr<BaseProtocol> get_protocol() const override {
    return lost_done_ ? nullptr : protocol_;
  }

  // -- DatagramTransport -----------------------------------------------------------------------
  void sendto(std::string_view data, std::optional<SocketAddress> addr) override {
    if (address_) {
      if (addr && !(*addr == *address_)) {
        throw ValueError("Invalid address: must be None or " + address_->to_string());
      }
      addr = address_;
    } else if (!addr) {
      throw ValueError("sendto() needs an address: the endpoint is not connected");
    }
    if (closing_ || dead_) throw RuntimeError("sendto() on a closed datagram transport");
    if (data.empty()) return;  // Python 3.12 sends nothing
    if (gathering_ && buffer_.empty()) {
      // Inside a received batch's delivery: leaves with the batch's sendmmsg().
      out_.push_back(
          {out_data_.size(), data.size(), *addr});  // NOLINT(bugprone-unchecked-optional-access)
      out_data_.append(data);
      return;
    }
    if (buffer_.empty()) {
      const long n = send_one(data, *addr);  // NOLINT(bugprone-unchecked-optional-access)
      if (n >= 0) return;
      if (n != -EAGAIN) {
        error_received(os_error(n, "sendto"));
        return;
      }
      arm_writable();
    }
    buffer_.push_back({std::string(data), *addr});  // NOLINT(bugprone-unchecked-optional-access)
    buffered_ += data.size();
    maybe_pause_protocol();
  }
  void abort() override { force_close(nullptr); }
  [[nodiscard]] std::size_t get_write_buffer_size() const noexcept override { return buffered_; }
  [[nodiscard]] std::pair<std::size_t, std::size_t> get_write_buffer_limits()
      const noexcept override {
    return flow_.limits();
  }
  void set_write_buffer_limits(std::optional<std::size_t> high,
                               std::optional<std::size_t> low) override {
    flow_.set_limits(high, low);
    maybe_pause_protocol();
  }

  // -- Loop plumbing ---------------------------------------------------------------------------
  void on_loop_close() noexcept override {
    dead_ = true;
    closing_ = true;
    for (IoOp* op : {static_cast<IoOp*>(&readable_), static_cast<IoOp*>(&writable_)}) {
      if (op->state() == OpState::parked) io_->engine->abandon(*op);
    }
    if (fd_ >= 0) {
      io_->engine->forget(fd_);
      close_fd();
    }
    conn_lost_ = std::max(conn_lost_, 1);
    buffer_.clear();
    buffered_ = 0;
    lost_done_ = true;
    maybe_release();
  }
  void on_discarded() noexcept { maybe_release(); }

 private:
  friend class OwnedOp<DatagramSocketTransport>;
  friend class OwnedCall<DatagramSocketTransport>;

  struct Pending {
    std::string data;
    SocketAddress addr;
  };
  /// A datagram gathered during a batch: its bytes in out_data_.
  struct Out {
    std::size_t offset;
    std::size_t size;
    SocketAddress addr;
  };

  long send_one(std::string_view data, const SocketAddress& addr) const noexcept {
    if (connected_) return sys::send(fd_, data.data(), data.size());
    return sys::sendto(fd_, data.data(), data.size(), addr.data(), addr.size());
  }

  void arm(OwnedOp<DatagramSocketTransport>& op) {
    try {
      op.start(*io_->engine);
    } catch (...) {
      fatal_error(std::current_exception(), "Fatal error: cannot wait for the socket");
    }
  }
  void arm_writable() {
    if (!writable_.busy()) arm(writable_);
  }

  void on_start() {
    if (!closing_ && !readable_.busy()) read_some();
    maybe_release();
  }
  void on_readable(long r) {
    if (r != -ECANCELED && !closing_) read_some();
    maybe_release();
  }

  /// Python: _read_ready, batched: up to kBatch datagrams per recvmmsg(), a few batches per
  /// pass, then the others get a turn. A batch shorter than kBatch drained the socket: wait for
  /// readiness again.
  void read_some() {
    if (!inet_) return read_one_by_one();
    Batch& b = batch();
    for (int pass = 0; pass < 4; ++pass) {
      if (closing_) return;
      for (unsigned i = 0; i < kBatch; ++i) {
        b.iov[i] = {b.data.get() + i * kSlot, kSlot};
        msghdr& h = b.msgs[i].msg_hdr;
        h = {};
        h.msg_name = b.from[i].data();
        h.msg_namelen = SocketAddress::capacity();
        h.msg_iov = &b.iov[i];
        h.msg_iovlen = 1;
      }
      const long n = sys::recvmmsg(fd_, b.msgs, kBatch);
      if (n == -EAGAIN) return arm(readable_);
      if (n < 0) {
        error_received(os_error(n, "recvfrom"));  // ICMP errors and the like: keep reading
        continue;
      }
      gathering_ = true;
      for (long i = 0; i < n && !closing_; ++i) {
        SocketAddress& from = b.from[i];
        from.set_size(b.msgs[i].msg_hdr.msg_namelen);
        if (from.size() == 0 && peer_.size() > 0) from = peer_;
        deliver(std::string_view(b.data.get() + i * kSlot, b.msgs[i].msg_len), from);
      }
      flush_gathered();
      if (n < static_cast<long>(kBatch)) {
        if (!closing_) arm(readable_);
        return;
      }
    }
    if (!closing_) start_.queue();  // more may wait: read on the next pass
  }

  /// Unix datagram sockets: one recvfrom() at a time into the loop's 256 KiB buffer.
  void read_one_by_one() {
    char* buf = io_->read_buffer();
    for (unsigned i = 0; i < kBatch; ++i) {
      if (closing_) return;
      SocketAddress from;
      unsigned len = SocketAddress::capacity();
      const long n = sys::recvfrom(fd_, buf, LoopIo::kReadBufferSize, from.data(), &len);
      if (n == -EAGAIN) return arm(readable_);
      if (n < 0) {
        error_received(os_error(n, "recvfrom"));  // ICMP errors and the like: keep reading
        continue;
      }
      from.set_size(len);
      if (from.size() == 0 && peer_.size() > 0) from = peer_;
      deliver(std::string_view(buf, static_cast<std::size_t>(n)), from);
    }
    if (!closing_) start_.queue();  // more may wait: read on the next pass
  }

  /// datagram_received(). What it throws is reported and the endpoint reads on, as in Python
  /// (where it leaves the reader callback, and the loop reports it): one datagram that its
  /// protocol fails on does not end a server.
  void deliver(std::string_view data, const SocketAddress& from) {
    try {
      protocol_->datagram_received(data, from);
    } catch (const KeyboardInterrupt&) {
      throw;
    } catch (...) {
      report(std::current_exception(), "Exception in protocol.datagram_received()");
    }
  }

  /// Sends what sendto() gathered during a batch: sendmmsg() in chunks of kBatch; a datagram
  /// that fails goes to error_received() (as sendto()'s own failure does) and the rest go on;
  /// what the socket does not take now is buffered as sendto() buffers.
  void flush_gathered() {
    gathering_ = false;
    if (out_.empty()) return;
    Batch& b = batch();
    std::size_t i = 0;
    while (i < out_.size() && buffer_.empty() && conn_lost_ == 0) {
      const auto count = static_cast<unsigned>(std::min<std::size_t>(kBatch, out_.size() - i));
      for (unsigned k = 0; k < count; ++k) {
        Out& o = out_[i + k];
        b.iov[k] = {out_data_.data() + o.offset, o.size};
        msghdr& h = b.msgs[k].msg_hdr;
        h = {};
        if (!connected_) {
          h.msg_name = o.addr.data();
          h.msg_namelen = o.addr.size();
        }
        h.msg_iov = &b.iov[k];
        h.msg_iovlen = 1;
      }
      const long n = sys::sendmmsg(fd_, b.msgs, count);
      if (n == -EAGAIN) break;
      if (n < 0) {
        ++i;  // the first one failed: report it, go on with the next
        error_received(os_error(n, "sendto"));
        continue;
      }
      i += static_cast<std::size_t>(n);
    }
    if (conn_lost_ == 0) {
      for (; i < out_.size(); ++i) {
        const Out& o = out_[i];
        buffer_.push_back({out_data_.substr(o.offset, o.size), o.addr});
        buffered_ += o.size;
      }
      if (!buffer_.empty()) {
        arm_writable();
        maybe_pause_protocol();
      }
    }
    out_.clear();
    out_data_.clear();
  }

  /// Python: _sendto_ready
  void on_writable(long r) {
    if (r == -ECANCELED || conn_lost_ > 0) return maybe_release();
    while (!buffer_.empty()) {
      Pending& p = buffer_.front();
      const long n = send_one(p.data, p.addr);
      if (n == -EAGAIN) break;
      buffered_ -= p.data.size();
      buffer_.pop_front();
      if (n < 0) {
        error_received(os_error(n, "sendto"));
        if (dead_ || conn_lost_ > 0) return maybe_release();
      }
    }
    maybe_resume_protocol();
    if (!buffer_.empty()) {
      arm_writable();
    } else if (closing_ && conn_lost_ == 0) {
      ++conn_lost_;
      schedule_lost(nullptr);
    }
    maybe_release();
  }

  void error_received(std::exception_ptr exc) {
    try {
      protocol_->error_received(std::move(exc));
    } catch (const KeyboardInterrupt&) {
      throw;
    } catch (...) {  // reported, the endpoint goes on (as deliver())
      report(std::current_exception(), "Exception in protocol.error_received()");
    }
  }

  void maybe_pause_protocol() {
    flow_.maybe_pause(protocol_.get(), buffered_,
                      [this](std::exception_ptr e, const char* m) { report(std::move(e), m); });
  }
  void maybe_resume_protocol() {
    flow_.maybe_resume(protocol_.get(), buffered_,
                       [this](std::exception_ptr e, const char* m) { report(std::move(e), m); });
  }

  void report(std::exception_ptr exc, const std::string& message) noexcept {
    if (!dead_) report_to_loop(*loop_, std::move(exc), message);
  }
  void fatal_error(std::exception_ptr exc, const char* message) noexcept {
    report(exc, message);
    force_close(std::move(exc));
  }
  void force_close(std::exception_ptr exc) noexcept {
    if (conn_lost_ > 0) return;
    buffer_.clear();
    buffered_ = 0;
    if (writable_.parked()) io_->engine->cancel(writable_);
    if (!closing_) {
      closing_ = true;
      if (readable_.parked()) io_->engine->cancel(readable_);
    }
    ++conn_lost_;
    schedule_lost(std::move(exc));
  }
  void schedule_lost(std::exception_ptr exc) noexcept {
    lost_exc_ = std::move(exc);
    if (dead_) return;
    try {
      lost_.queue();
    } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory; the loop's close cleans up
    }
  }
  /// Python: _call_connection_lost
  void on_lost() {
    if (writable_.parked()) io_->engine->cancel(writable_);
    if (readable_.parked()) io_->engine->cancel(readable_);
    if (made_ && protocol_) {
      try {
        protocol_->connection_lost(std::exchange(lost_exc_, nullptr));
      } catch (const KeyboardInterrupt&) {
        lost_done_ = true;
        maybe_release();
        throw;
      } catch (...) {
        report(std::current_exception(), "protocol.connection_lost() failed");
      }
    }
    lost_done_ = true;
    maybe_release();
  }

  /// Closes the fd, which no transport of this loop uses any more.
  void close_fd() noexcept {
    io_->release_fd(fd_, this);
    sys::close(fd_);
    fd_ = -1;
  }

  /// Once connection_lost has run and nothing is held by the engine or the queue: closes the
  /// socket and drops the loop's reference (which may destroy this: nothing after it).
  void maybe_release() noexcept {
    if (!lost_done_ || readable_.busy() || writable_.busy() || start_.queued() || lost_.queued()) {
      return;
    }
    if (fd_ >= 0) {
      io_->engine->forget(fd_);
      close_fd();
    }
    if (linked()) IntrusiveList::unlink(static_cast<IoResource*>(this));
    protocol_.reset();
    const std::shared_ptr<DatagramSocketTransport> keep = std::move(self_);
  }

  EventLoop* loop_;
  LoopIo* io_;
  int fd_;
  std::shared_ptr<DatagramSocketTransport> self_;  // the loop's reference
  std::shared_ptr<DatagramProtocol> protocol_;
  SocketAddress local_;
  SocketAddress peer_;                    // empty: not connected
  std::optional<SocketAddress> address_;  // where sendto() without an address goes
  bool connected_ = false;
  bool inet_ = false;       // AF_INET/AF_INET6: batched receives
  bool gathering_ = false;  // delivering a batch: sendto() gathers into out_
  std::vector<Out> out_;    // (capacity kept: no allocation per batch)
  std::string out_data_;
  OwnedOp<DatagramSocketTransport> readable_;
  OwnedOp<DatagramSocketTransport> writable_;
  OwnedCall<DatagramSocketTransport> start_;
  OwnedCall<DatagramSocketTransport> lost_;
  std::exception_ptr lost_exc_;
  std::deque<Pending> buffer_;
  std::size_t buffered_ = 0;
  FlowControl flow_;
  int conn_lost_ = 0;
  bool made_ = false;
  bool closing_ = false;
  bool lost_done_ = false;
  bool dead_ = false;
};

/// A new non-blocking, close-on-exec datagram socket of `family`.
sys::Fd datagram_socket(int family) {
  return new_socket(family, "socket", SOCK_DGRAM);
}

void check_options(const DatagramOptions& o) {
  if (o.sock >= 0) {
    if (o.local_addr || o.remote_addr || o.family != AF_UNSPEC || o.reuse_port ||
        o.allow_broadcast) {
      throw ValueError("socket modifier keyword arguments can not be used when sock is specified");
    }
    const int type = sys::get_option(o.sock, SOL_SOCKET, SO_TYPE);
    if (type < 0) raise_os_error(-type, "create_datagram_endpoint");
    if (type != SOCK_DGRAM)
      throw ValueError("A UDP Socket was expected, got type " + std::to_string(type));
    return;
  }
  if (!o.local_addr && !o.remote_addr && o.family == AF_UNSPEC) {
    throw ValueError("unexpected address family");
  }
  const int lf = o.local_addr ? o.local_addr->family() : AF_UNSPEC;
  const int rf = o.remote_addr ? o.remote_addr->family() : AF_UNSPEC;
  if (lf != AF_UNSPEC && rf != AF_UNSPEC && lf != rf) {
    throw ValueError("local_addr and remote_addr are of different families");
  }
  const int f = lf != AF_UNSPEC ? lf : rf;
  if (o.family != AF_UNSPEC && f != AF_UNSPEC && o.family != f) {
    throw ValueError("the addresses are not of the family asked for");
  }
}

}  // namespace

Coro<DatagramEndpoint<DatagramProtocol>> create_datagram_endpoint(
    std::function<std::shared_ptr<DatagramProtocol>()> factory, DatagramOptions options) {
  check_options(options);
  EventLoop& loop = get_running_loop();
  sys::Fd fd;
  bool connected = false;
  if (options.sock >= 0) {
    io_of(loop).check_no_transport(options.sock);
    if (const int r = sys::set_nonblocking(options.sock); r < 0) {
      raise_os_error(-r, "create_datagram_endpoint");
    }
    fd = sys::Fd(options.sock);
    connected = socket_address(fd.get(), true).size() > 0;
  } else {
    int family = options.family;
    if (options.local_addr) family = options.local_addr->family();
    if (options.remote_addr) family = options.remote_addr->family();
    fd = datagram_socket(family);
    if (options.reuse_port) {
      if (const int r = sys::set_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1); r < 0) {
        raise_os_error(-r, "setsockopt(SO_REUSEPORT)");
      }
    }
    if (options.allow_broadcast) {
      if (const int r = sys::set_option(fd.get(), SOL_SOCKET, SO_BROADCAST, 1); r < 0) {
        raise_os_error(-r, "setsockopt(SO_BROADCAST)");
      }
    }
    if (options.local_addr) {
      const SocketAddress& local = *options.local_addr;
      if (local.family() == AF_UNIX) remove_stale_unix_socket(local.path());
      if (const int r = sys::bind(fd.get(), local.data(), local.size()); r < 0) {
        raise_os_error(-r, "bind to " + local.to_string());
      }
    }
    if (options.remote_addr && !options.allow_broadcast) {
      co_await sock_connect(fd.get(), *options.remote_addr);
      connected = true;
    }
  }
  std::shared_ptr<DatagramProtocol> protocol = factory();
  if (!protocol) throw ValueError("the protocol factory returned no protocol");
  // With allow_broadcast the socket is not connected, but sendto() without an address goes to
  // remote_addr (Python's r_addr).
  std::optional<SocketAddress> address;
  if (options.remote_addr && options.allow_broadcast) address = options.remote_addr;
  std::shared_ptr<DatagramSocketTransport> t =
      DatagramSocketTransport::make(loop, fd.release(), protocol, connected, address);
  co_return DatagramEndpoint<DatagramProtocol>{std::move(t), std::move(protocol)};
}

}  // namespace detail

// ---- Coroutine-style datagram sockets ----------------------------------------------------------

Coro<Datagram> sock_recvfrom(int fd, std::size_t n) {
  detail::io_of(get_running_loop()).check_no_transport(fd);
  if (const int r = sys::set_nonblocking(fd); r < 0) raise_os_error(-r, "sock_recvfrom");
  Datagram d;
  d.data.resize(n);
  for (;;) {
    unsigned len = SocketAddress::capacity();
    const long r = sys::recvfrom(fd, d.data.data(), n, d.address.data(), &len);
    if (r >= 0) {
      d.data.resize(static_cast<std::size_t>(r));
      d.address.set_size(len);
      co_return d;
    }
    if (r != -EAGAIN) raise_os_error(static_cast<int>(-r), "recvfrom");
    if (const long w = co_await detail::io_wait_ready(fd, false); w < 0) {
      raise_os_error(static_cast<int>(-w), "recvfrom");
    }
  }
}

Coro<std::size_t> sock_sendto(int fd, std::string_view data, SocketAddress address) {
  detail::io_of(get_running_loop()).check_no_transport(fd);
  if (const int r = sys::set_nonblocking(fd); r < 0) raise_os_error(-r, "sock_sendto");
  for (;;) {
    const long r = address.size() > 0
                       ? sys::sendto(fd, data.data(), data.size(), address.data(), address.size())
                       : sys::send(fd, data.data(), data.size());
    if (r >= 0) co_return static_cast<std::size_t>(r);
    if (r != -EAGAIN) raise_os_error(static_cast<int>(-r), "sendto " + address.to_string());
    if (const long w = co_await detail::io_wait_ready(fd, true); w < 0) {
      raise_os_error(static_cast<int>(-w), "sendto");
    }
  }
}

namespace {
Coro<std::string> recv_datagram(int fd, std::size_t n) {
  Datagram d = co_await sock_recvfrom(fd, n);
  co_return std::move(d.data);
}
}  // namespace

DatagramSocket::DatagramSocket(int fd) : fd_(fd) {
  if (const int r = sys::set_nonblocking(fd); r < 0) {
    fd_ = -1;
    sys::close(fd);
    raise_os_error(-r, "DatagramSocket");
  }
}

DatagramSocket::DatagramSocket(DatagramSocket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)) {}

DatagramSocket& DatagramSocket::operator=(DatagramSocket&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

DatagramSocket::~DatagramSocket() {
  close();
}

void DatagramSocket::close() noexcept {
  // A caller-owned fd, as for the sock_* functions: the engine checks before it parks on an fd
  // again that it still names the same file, so nothing has to be told here.
  sys::close(fd_);
  fd_ = -1;
}

DatagramSocket DatagramSocket::bind(const SocketAddress& local) {
  sys::Fd fd = detail::datagram_socket(local.family());
  if (local.family() == AF_UNIX) detail::remove_stale_unix_socket(local.path());
  if (const int r = sys::bind(fd.get(), local.data(), local.size()); r < 0) {
    raise_os_error(-r, "bind to " + local.to_string());
  }
  return DatagramSocket(fd.release());
}

DatagramSocket DatagramSocket::connect(const SocketAddress& remote) {
  sys::Fd fd = detail::datagram_socket(remote.family());
  // A datagram socket connects at once (no handshake): no need to wait.
  if (const int r = sys::connect(fd.get(), remote.data(), remote.size()); r < 0) {
    raise_os_error(-r, "connect to " + remote.to_string());
  }
  return DatagramSocket(fd.release());
}

Coro<Datagram> DatagramSocket::recvfrom(std::size_t n) const {
  if (fd_ < 0) throw RuntimeError("recvfrom() on a closed DatagramSocket");
  return sock_recvfrom(fd_, n);
}

Coro<std::size_t> DatagramSocket::sendto(std::string_view data, SocketAddress address) const {
  if (fd_ < 0) throw RuntimeError("sendto() on a closed DatagramSocket");
  if (address.size() == 0) throw ValueError("sendto() needs an address");
  return sock_sendto(fd_, data, address);
}

Coro<std::string> DatagramSocket::recv(std::size_t n) const {
  if (fd_ < 0) throw RuntimeError("recv() on a closed DatagramSocket");
  return recv_datagram(fd_, n);
}

Coro<std::size_t> DatagramSocket::send(std::string_view data) const {
  if (fd_ < 0) throw RuntimeError("send() on a closed DatagramSocket");
  return sock_sendto(fd_, data, SocketAddress());
}

SocketAddress DatagramSocket::local_address() const {
  return detail::socket_address(fd_, false);
}

}  // namespace asyncio
