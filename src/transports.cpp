// Stream transports over the loop's I/O engine, connections and servers (Python:
// selector_events._SelectorSocketTransport and BaseSelectorEventLoop._accept_connection,
// base_events.create_connection / create_server, base_events.Server). docs/design/io.md,
// "Transports".
//
// Reading. A Protocol gets views of the loop's shared receive buffer: the transport calls recv
// itself when the socket may be readable (at first, and after each readiness wait), so a
// connection that never sent holds no buffer at all. A recv that fills the buffer is followed by
// another one from the loop's next pass (fairness, as Python reads once per readiness); a short
// one means the kernel's buffer is drained (a stream socket), so on epoll the transport waits
// for readiness (a poll op) without trying again. A BufferedProtocol is read the same way into
// the buffer it lends. On io_uring, after a short read, a Protocol's transport arms one
// multishot receive (stream_, OpKind::recv_multi) that stays in the kernel: each message lands
// in a buffer of the engine's pool, is copied to inbox_ inside the engine's wait, and is
// delivered by on_start() from the ready queue; the op ends at EOF (delivered after inbox_),
// on an error, when cancelled (pause, close), or when the pool ran dry (armed again). Where the
// kernel has no multishot receives (before 6.0) the next receive is a recv op with
// IORING_RECVSEND_POLL_FIRST into the transport's own 1 KiB buffer (kSmallReceive). A
// BufferedProtocol gets such a recv op into the buffer it lends. Bytes that come while reading
// is paused are held and delivered by resume_reading().
//
// Writing. epoll (and pipes): write() sends at once when nothing is buffered; what the socket
// does not take is buffered, and a poll op waits for writability; each time it fires the buffer
// is sent from. io_uring (sockets): write() copies the bytes and submits a send op, which goes to
// the kernel with the loop's next io_uring_enter, so a request/response exchange costs no system
// call of its own (a write of kDirectSend bytes or more is tried with send() first, to save the
// copy). The send op owns `sending_` until it completes; what is written meanwhile waits in
// `wbuf_` and follows in the next send op. The bytes a send op holds count as buffered
// (get_write_buffer_size), as Python's proactor transport counts the writes in flight.
//
// Every completion that needs the transport runs from the ready queue (an OwnedOp is both the
// engine's operation and the queue's entry), never from inside the engine's wait().
//
// Pipes. The same transport runs a pipe's end (Python: unix_events._UnixReadPipeTransport and
// _UnixWritePipeTransport): read()/write() instead of recv()/send(); the end of the data closes
// a read pipe; a write pipe waits for "readable" on its own end, which the kernel reports (as an
// error) once the reading end is gone, and closes then (with BrokenPipeError if data was left).
#include "asyncio/transports.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "asyncio/composition.hpp"
#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/futures.hpp"
#include "asyncio/tasks.hpp"
#include "flow_control.hpp"
#include "ssl_detail.hpp"
#include "sys/sys.hpp"
#include "transports_detail.hpp"
#include "unix/io_engine.hpp"
#include "unix/loop_io.hpp"
#include "unix/owned_op.hpp"

namespace asyncio {

SocketAddress BaseTransport::peername() const {
  const std::any a = get_extra_info("peername");
  if (const auto* p = std::any_cast<SocketAddress>(&a)) return *p;
  return {};
}

SocketAddress BaseTransport::sockname() const {
  const std::any a = get_extra_info("sockname");
  if (const auto* p = std::any_cast<SocketAddress>(&a)) return *p;
  return {};
}

namespace detail {

// ---- Servers' shared state ----------------------------------------------------------------

class SocketTransport;
class Listener;

struct ServerState : std::enable_shared_from_this<ServerState> {
  ServerState(EventLoop& l, ProtocolFactory f, ServerOptions o)
      : loop(&l), factory(std::move(f)), options(o) {}
  ServerState(const ServerState&) = delete;
  ServerState& operator=(const ServerState&) = delete;
  ~ServerState();

  EventLoop* loop;
  ProtocolFactory factory;
  ServerOptions options;
  std::vector<std::unique_ptr<Listener>> listeners;
  IntrusiveList clients;  // SocketTransport::server_hook_
  std::size_t active = 0;
  bool serving = false;
  bool closed = false;  // close() was called (Python: _sockets is None)
  bool woken = false;   // wait_closed's waiters were released (Python: _waiters is None)
  std::vector<Future<void>> waiters;
  std::optional<Future<void>> serving_forever;
  std::string unix_path;  // a Unix server's file, removed on close
  sys::FileId unix_id;

  void attach(SocketTransport& t);
  /// A connection is gone; the last one of a closed server wakes wait_closed() (not when the
  /// loop itself is closing: `wake` false).
  void detach(SocketTransport& t, bool wake_waiters = true) noexcept;
  void start_serving();
  void close();
  void wake() noexcept;
};

// ---- The socket transport -----------------------------------------------------------------

class SocketTransport final : public Transport, public IoResource {
 public:
  struct ServerHook : ListHook {
    SocketTransport* self;
  };

  SocketTransport(EventLoop& loop, int fd, Medium medium = Medium::socket)
      : loop_(&loop),
        io_(&io_of(loop)),
        fd_(fd),
        medium_(medium),
        uring_(io_of(loop).backend() == Backend::io_uring),
        ring_send_(uring_ && medium == Medium::socket),
        readable_(OpKind::poll_in, fd, *this, &SocketTransport::on_readable, ready_queue_of(loop)),
        writable_(ring_send_ ? OpKind::send : OpKind::poll_out, fd, *this,
                  ring_send_ ? &SocketTransport::on_sent : &SocketTransport::on_writable,
                  ready_queue_of(loop)),
        received_(medium == Medium::socket ? OpKind::recv : OpKind::read, fd, *this,
                  &SocketTransport::on_received, ready_queue_of(loop)),
        stream_(OpKind::recv_multi, fd, *this, &SocketTransport::on_stream_end,
                ready_queue_of(loop)),
        start_(*this, &SocketTransport::on_start, ready_queue_of(loop)),
        lost_(*this, &SocketTransport::on_lost, ready_queue_of(loop)) {
    server_hook_.self = this;
  }
  SocketTransport(const SocketTransport&) = delete;
  SocketTransport& operator=(const SocketTransport&) = delete;
  ~SocketTransport() override {
    // Only a transport that never got going (creation failed) still has its fd here.
    if (fd_ >= 0) close_fd();
  }

  /// Wraps the connected socket (or pipe end) `fd` (taken over), calls connection_made and
  /// starts reading on the loop's next pass.
  static std::shared_ptr<SocketTransport> make(EventLoop& loop, int fd,
                                               std::shared_ptr<BaseProtocol> protocol,
                                               std::shared_ptr<ServerState> server,
                                               Medium medium = Medium::socket) {
    auto t = std::make_shared<SocketTransport>(loop, fd, medium);
    t->use_protocol(std::move(protocol));  // ValueError: fd closed by ~SocketTransport
    if (medium == Medium::socket) {
      const int domain = sys::get_option(fd, SOL_SOCKET, SO_DOMAIN);
      if (domain == AF_INET || domain == AF_INET6) {
        (void)sys::set_option(fd, IPPROTO_TCP, TCP_NODELAY, 1);  // Python: _set_nodelay
      }
      t->local_ = socket_address(fd, false);
      t->peer_ = socket_address(fd, true);
    }
    // (Before the transport holds itself: claiming may throw, and ~SocketTransport then
    // closes the fd.)
    if (medium == Medium::socket) t->io_->claim_fd(fd, t.get(), "socket transport");
    t->self_ = t;
    t->io_->resources.push_back(static_cast<IoResource*>(t.get()));
    if (server) {
      t->server_ = std::move(server);
      t->server_->attach(*t);
    }
    t->made_ = true;
    try {
      if (t->proto_ != nullptr) {
        t->proto_->connection_made(*t);
      } else {
        t->bproto_->connection_made(*t);
      }
    } catch (...) {
      t->fatal_error(std::current_exception(),
                     "Fatal error: protocol.connection_made() call failed.");
      return t;
    }
    if (!t->closing_) t->start_.queue();
    return t;
  }

  // -- BaseTransport ---------------------------------------------------------------------------
  [[nodiscard]] std::any get_extra_info(std::string_view name) const override {
    if (name == "peername" && peer_.size() > 0) return {peer_};
    if (name == "sockname" && local_.size() > 0) return {local_};
    if (name == "socket" && medium_ == Medium::socket) return {fd_};
    if (name == "pipe" && medium_ != Medium::socket) return {fd_};
    return {};
  }
  [[nodiscard]] bool is_closing() const noexcept override { return closing_; }
  void close() override {
    if (closing_) return;
    closing_ = true;
    stop_reading();
    if (buffered() == 0) {
      ++conn_lost_;
      schedule_lost(nullptr);
    }
  }
  void set_protocol(std::shared_ptr<BaseProtocol> protocol) override {
    use_protocol(std::move(protocol));
  }
  [[nodiscard]] std::shared_ptr<BaseProtocol> get_protocol() const override {
    return lost_done_ ? nullptr : protocol_;
  }

  // -- Reading ---------------------------------------------------------------------------------
  [[nodiscard]] bool is_reading() const noexcept override { return !paused_ && !closing_; }
  void pause_reading() override {
    if (closing_ || paused_) return;
    paused_ = true;
    stop_reading();
  }
  void resume_reading() override {
    if (closing_ || !paused_) return;
    paused_ = false;
    if ((pending_updated_ > 0 || !inbox_.empty() || eof_pending_ || !receiving()) &&
        !start_.queued()) {
      start_.queue();
    }
  }

  // -- Writing ---------------------------------------------------------------------------------
  void write(std::string_view data) override {
    // The common case first, as writelines() would take it: a socket that is open for writing,
    // with nothing buffered, takes all of `data` in one send.
    if (medium_ == Medium::socket && !ring_send_ && !eof_ && conn_lost_ == 0 && !dead_ &&
        wpos_ == wbuf_.size() && !data.empty()) {
      const long n = sys::send(fd_, data.data(), data.size());
      if (n != static_cast<long>(data.size())) after_short_send(data, n);
      return;
    }
    const std::string_view one[] = {data};
    writelines(std::span<const std::string_view>(one));
  }
  void writelines(std::span<const std::string_view> pieces) override {
    if (medium_ == Medium::read_pipe) throw RuntimeError("a read pipe transport cannot write");
    // A write pipe drops what is written once it is closing (Python's _UnixWritePipeTransport;
    // the socket transport still sends it).
    if (medium_ == Medium::write_pipe && closing_) return;
    if (eof_) throw RuntimeError("Cannot call write() after write_eof()");
    std::size_t total = 0;
    for (std::string_view p : pieces) total += p.size();
    if (total == 0) return;
    if (conn_lost_ > 0) {
      ++conn_lost_;  // Python warns after 5 such writes ("socket.send() raised exception.")
      return;
    }
    if (dead_) return;  // the loop is gone
    if (ring_send_) {
      write_through_ring(pieces, total);
      maybe_pause_protocol();
      return;
    }
    std::size_t skip = 0;   // bytes of `pieces` the socket took at once
    bool took_all = false;  // it took all it was offered (sendmsg's iovec cap stopped it)
    if (buffered() == 0) {
      std::size_t offered = 0;
      if (!count_sent(send_now(pieces, offered), skip)) return;
      if (skip == total) return;
      took_all = skip == offered;
    }
    buffer_rest(pieces, skip, took_all);
  }
  /// write()'s common case when the send took less than all (or failed): as writelines().
  [[gnu::noinline]] void after_short_send(std::string_view data, long n) {
    std::size_t skip = 0;
    if (!count_sent(n, skip)) return;
    const std::string_view one[] = {data};
    buffer_rest(std::span<const std::string_view>(one), skip, false);
  }
  /// Buffers what the socket did not take of `pieces` (all but the first `skip` bytes) and
  /// has it sent on: on the next pass if the socket took all it was offered, else once it is
  /// writable.
  void buffer_rest(std::span<const std::string_view> pieces, std::size_t skip, bool took_all) {
    append(pieces, skip);
    if (!writable_.busy()) {
      // The socket has room (it took everything offered): send the rest on the next pass. An
      // edge-triggered wait for writability would not fire until it had run out of room.
      if (took_all) {
        writable_.queue(0);
      } else {
        arm_writable();
      }
    }
    maybe_pause_protocol();
  }
  void write_eof() override {
    if (closing_ || eof_) return;
    if (medium_ != Medium::socket) {
      // A pipe's end of data is its closing (Python: _UnixWritePipeTransport.write_eof).
      if (medium_ == Medium::write_pipe) close();
      return;
    }
    eof_ = true;
    if (buffered() == 0) (void)sys::shutdown(fd_, SHUT_WR);
  }
  [[nodiscard]] bool can_write_eof() const noexcept override {
    return medium_ != Medium::read_pipe;
  }
  void abort() override { force_close(nullptr); }
  [[nodiscard]] std::size_t get_write_buffer_size() const noexcept override { return buffered(); }
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
    // The loop is closing with this transport open: let go of the fd and of the protocol
    // without calling it (Python leaves it to the garbage collector).
    dead_ = true;
    closing_ = true;
    for (IoOp* op : {static_cast<IoOp*>(&readable_), static_cast<IoOp*>(&received_),
                     static_cast<IoOp*>(&writable_), static_cast<IoOp*>(&stream_)}) {
      if (op->state() == OpState::parked) io_->engine->abandon(*op);
    }
    if (fd_ >= 0) {
      io_->engine->forget(fd_);
      close_fd();
    }
    if (server_) {
      server_->detach(*this, false);
      server_.reset();
    }
    conn_lost_ = std::max(conn_lost_, 1);
    wbuf_.clear();
    wpos_ = 0;
    sending_.clear();
    spos_ = 0;
    lost_done_ = true;
    maybe_release();
  }
  void on_discarded() noexcept { maybe_release(); }

  /// io_uring: a send op that sent all it held, with nothing written behind it and nobody to
  /// tell (not closing, no write_eof, the protocol not paused for writing), is finished here,
  /// inside the engine's wait, without a pass through the ready queue: a request/response
  /// server's every response. Anything else goes to on_sent().
  bool completes_inline(const IoOp& op) noexcept {
    if (&op != &writable_ || op.kind() != OpKind::send || op.result() <= 0) return false;
    if (closing_ || eof_ || conn_lost_ > 0 || wpos_ != wbuf_.size() || flow_.paused()) {
      return false;
    }
    if (static_cast<std::size_t>(op.result()) != sending_.size() - spos_) return false;
    sending_.clear();
    spos_ = 0;
    return true;
  }

  ServerHook server_hook_;

 private:
  friend class OwnedOp<SocketTransport>;
  friend class OwnedCall<SocketTransport>;

  [[nodiscard]] std::size_t buffered() const noexcept {
    // (sending_ is io_uring's alone: epoll's writes leave its cache line alone.)
    return wbuf_.size() - wpos_ + (ring_send_ ? sending_.size() - spos_ : 0);
  }
  [[nodiscard]] bool reading_active() const noexcept {
    return !paused_ && !closing_ && !eof_received_;
  }

  void use_protocol(std::shared_ptr<BaseProtocol> protocol) {
    if (auto* b = dynamic_cast<BufferedProtocol*>(protocol.get())) {
      bproto_ = b;
      proto_ = nullptr;
    } else if (auto* p = dynamic_cast<Protocol*>(protocol.get())) {
      proto_ = p;
      bproto_ = nullptr;
    } else {
      throw ValueError("a stream transport needs a Protocol or a BufferedProtocol");
    }
    // A receive the kernel may still be writing into the old protocol's buffer keeps that
    // protocol alive until it completes (on_received).
    if (received_.busy() && !retained_) retained_ = protocol_;
    protocol_ = std::move(protocol);
  }

  static std::exception_ptr make_os_error(long err, const char* what) {
    try {
      raise_os_error(static_cast<int>(-err), what);
    } catch (...) {
      return std::current_exception();
    }
  }

  /// Stops the reads in flight (pause, close): a parked wait is cancelled; its completion (at
  /// once on epoll, later on io_uring) comes back as -ECANCELED and is ignored.
  void stop_reading() noexcept {
    if (readable_.parked()) io_->engine->cancel(readable_);
    if (received_.parked()) io_->engine->cancel(received_);
    if (stream_.parked()) io_->engine->cancel(stream_);
  }
  [[nodiscard]] bool receiving() const noexcept {
    return readable_.busy() || received_.busy() || stream_.busy();
  }

  void arm_readable() {
    try {
      readable_.start(*io_->engine);
    } catch (...) {
      fatal_error(std::current_exception(), "Fatal error: cannot wait for the socket");
    }
  }
  void arm_writable() {
    try {
      writable_.start(*io_->engine);
    } catch (...) {
      fatal_error(std::current_exception(), "Fatal error: cannot wait for the socket");
    }
  }

  void on_start() {
    if (reading_active()) {
      if (pending_updated_ > 0) {
        const std::size_t n = std::exchange(pending_updated_, 0);
        if (small_ && received_.buffer() == small_.get()) {
          handover(small_.get(), n);  // to whichever protocol is current now
          if (closing_) return maybe_release();
        } else if (!deliver_updated(n)) {
          return maybe_release();
        }
      }
      if (!inbox_.empty() && reading_active()) {
        handover(inbox_.data(), inbox_.size());  // stream_'s messages, to the current protocol
        inbox_.clear();
        if (closing_) return maybe_release();
      }
      if (eof_pending_ && reading_active()) {
        eof_pending_ = false;
        on_eof();
        return maybe_release();
      }
      if (reading_active() && !receiving()) read_some();
    }
    maybe_release();
  }

  /// stream_ brought a message (from inside the engine's wait): kept for on_start(), which the
  /// loop runs next (dropped once the transport is closing, as Python drops what comes after
  /// close()).
  void on_stream_data(const char* data, std::size_t n) noexcept {
    if (closing_) return;
    try {
      inbox_.append(data, n);
      if (!start_.queued()) start_.queue();
    } catch (...) {  // out of memory: the connection cannot go on
      force_close(std::current_exception());
    }
  }

  /// stream_ stopped: end of file, an error, cancelled (pause, close), or the kernel stopped it
  /// (-EAGAIN: arm again). Its messages were queued before this (on_start runs first).
  void on_stream_end(long r) {
    if (r == 0 && !closing_) {
      if (paused_ || !inbox_.empty()) {
        eof_pending_ = true;  // after the messages, once reading resumes
      } else {
        on_eof();
      }
    } else if (r < 0 && r != -ECANCELED && r != -EAGAIN && r != -ENOBUFS && !closing_) {
      fatal_error(make_os_error(r, "recv"), read_error());
    } else if (reading_active() && inbox_.empty() && !receiving() && !start_.queued()) {
      read_some();
    }
    maybe_release();
  }
  void on_readable(long r) {
    if (medium_ == Medium::write_pipe && r != -ECANCELED && !closing_) {
      // The reading end is gone (the kernel reports it as readable/error on this end).
      if (buffered() > 0) {
        force_close(make_os_error(-EPIPE, "write"));
      } else {
        close();
      }
    } else if (r < 0 && r != -ECANCELED) {
      fatal_error(make_os_error(r, "poll"), read_error());
    } else if (reading_active() && !(uring_ && received_.busy())) {  // (only io_uring receives)
      read_some();
    }
    maybe_release();
  }

  /// One receive: a recv into the protocol's memory or the loop's buffer, or (BufferedProtocol
  /// on io_uring) a recv op into the protocol's buffer; `drained`: the last receive found the
  /// socket empty, so that op waits for readiness before it tries.
  void read_some(bool drained = false) {
    if (medium_ == Medium::write_pipe) return arm_readable();  // watches for the reader's end
    std::span<std::byte> lent;
    if (bproto_ != nullptr) {
      if (!get_buffer(lent)) return;
      if (uring_) {
        return start_receive(lent.data(), lent.size(), drained);
      }
    }
    char* buf = lent.empty() ? io_->read_buffer() : reinterpret_cast<char*>(lent.data());
    const std::size_t cap = lent.empty() ? LoopIo::kReadBufferSize : lent.size();
    const long n = medium_ == Medium::socket ? sys::recv(fd_, buf, cap) : sys::read(fd_, buf, cap);
    if (n == -EAGAIN) return arm_readable();
    got(n, buf, cap);
  }

  /// What a receive returned (bytes, 0 at EOF, -errno), delivered; then the next step.
  void got(long n, char* buf, std::size_t cap) {
    if (n < 0) {
      fatal_error(make_os_error(n, medium_ == Medium::socket ? "recv" : "read"), read_error());
      return;
    }
    if (n == 0) {
      on_eof();
      return;
    }
    const auto k = static_cast<std::size_t>(n);
    if (bproto_ != nullptr) {
      if (!deliver_updated(k)) return;
    } else {
      try {
        proto_->data_received(std::string_view(buf, k));
      } catch (const KeyboardInterrupt&) {
        throw;
      } catch (...) {
        fatal_error(std::current_exception(), "Fatal error: protocol.data_received() call failed.");
        return;
      }
    }
    if (!reading_active()) return;
    if (k == cap) {
      start_.queue();  // maybe more: read again on the next pass, after the others
    } else if (uring_ && medium_ == Medium::socket) {
      // A short read drained the socket. io_uring: the next receive goes to the kernel now and
      // waits there (one submission and one completion per message, not a poll and then a
      // receive).
      if (bproto_ != nullptr) {
        read_some(true);
      } else if (io_->engine->multishot_receives()) {
        start_stream();
      } else {
        receive_small();
      }
    } else {
      arm_readable();  // a short read drained the socket: wait for more
    }
  }

  /// io_uring, a Protocol: the multishot receive (each message to on_stream_data()).
  void start_stream() {
    try {
      stream_.start(*io_->engine);
    } catch (...) {
      fatal_error(std::current_exception(), "Fatal error: cannot receive");
    }
  }

  /// io_uring, a Protocol: a recv op into the transport's own small buffer that waits in the
  /// kernel for the next message; a full buffer is followed by ordinary receives (got()).
  void receive_small() {
    if (!small_) small_ = std::make_unique<char[]>(kSmallReceive);
    start_receive(small_.get(), kSmallReceive, true);
  }

  /// Submits the recv op (io_uring) into `buf`; `drained`: wait for readiness before trying.
  void start_receive(void* buf, std::size_t len, bool drained) {
    received_.set_buffer(buf, len);
    received_.set_poll_first(drained);
    try {
      received_.start(*io_->engine);
    } catch (...) {
      fatal_error(std::current_exception(), "Fatal error: cannot receive");
    }
  }

  bool get_buffer(std::span<std::byte>& out) {
    try {
      out = bproto_->get_buffer(LoopIo::kReadBufferSize);
    } catch (const KeyboardInterrupt&) {
      throw;
    } catch (...) {
      fatal_error(std::current_exception(), "Fatal error: protocol.get_buffer() call failed.");
      return false;
    }
    if (out.empty()) {
      fatal_error(std::make_exception_ptr(RuntimeError("get_buffer() returned an empty buffer")),
                  "Fatal error: protocol.get_buffer() call failed.");
      return false;
    }
    return true;
  }

  bool deliver_updated(std::size_t n) {
    try {
      bproto_->buffer_updated(n);
    } catch (const KeyboardInterrupt&) {
      throw;
    } catch (...) {
      fatal_error(std::current_exception(), "Fatal error: protocol.buffer_updated() call failed.");
      return false;
    }
    return true;
  }

  /// A recv op (io_uring: a BufferedProtocol's, or a Protocol's small one) completed.
  void on_received(long r) {
    std::shared_ptr<BaseProtocol> old = std::move(retained_);
    if (r == -ECANCELED || (r > 0 && closing_)) {
      // Cancelled (pause, close), or bytes that came back with a cancel after close (dropped,
      // as Python drops what arrives after close()).
      if (reading_active() && !readable_.busy()) read_some();
      return maybe_release();
    }
    if (r > 0 && old) {
      // The protocol changed while the kernel held the old one's buffer: hand the bytes over.
      handover(static_cast<const char*>(received_.buffer()), static_cast<std::size_t>(r));
      if (reading_active() && !readable_.busy()) read_some();
      return maybe_release();
    }
    if (r > 0 && paused_) {
      pending_updated_ = static_cast<std::size_t>(r);  // delivered by resume_reading()
      return maybe_release();
    }
    got(r, static_cast<char*>(received_.buffer()), received_.length());
    maybe_release();
  }

  /// Delivers bytes that were received for another protocol to the current one.
  void handover(const char* data, std::size_t n) {
    if (proto_ != nullptr) {
      try {
        proto_->data_received(std::string_view(data, n));
      } catch (...) {
        fatal_error(std::current_exception(), "Fatal error: protocol.data_received() call failed.");
      }
      return;
    }
    while (n > 0 && !closing_) {
      std::span<std::byte> lent;
      if (!get_buffer(lent)) return;
      const std::size_t k = std::min(n, lent.size());
      std::memcpy(lent.data(), data, k);
      if (!deliver_updated(k)) return;
      data += k;
      n -= k;
    }
  }

  void on_eof() {
    eof_received_ = true;
    bool keep_open = false;
    try {
      keep_open = proto_ != nullptr ? proto_->eof_received() : bproto_->eof_received();
    } catch (const KeyboardInterrupt&) {
      throw;
    } catch (...) {
      fatal_error(std::current_exception(), "Fatal error: protocol.eof_received() call failed.");
      return;
    }
    // A pipe closes at its end whatever the protocol says (Python's read pipe transport).
    if (!keep_open || medium_ != Medium::socket) close();
  }

  // -- Writing ---------------------------------------------------------------------------------
  /// After a send that returned `n` (bytes, or -errno): adds the bytes it took to `skip`. False
  /// after an error (fatal: the transport is closing).
  bool count_sent(long n, std::size_t& skip) {
    if (n < 0 && n != -EAGAIN) {
      fatal_error(make_os_error(n, "send"), write_error());
      return false;
    }
    if (n > 0) skip += static_cast<std::size_t>(n);
    return true;
  }

  /// One send (or sendmsg) of `pieces`; bytes sent or -errno.
  long send_now(std::span<const std::string_view> pieces, std::size_t& offered) noexcept {
    if (pieces.size() == 1 || medium_ != Medium::socket) {
      // A pipe writes its first piece now; the rest is buffered and written on the next pass.
      offered = pieces[0].size();
      return put(pieces[0].data(), pieces[0].size());
    }
    constexpr std::size_t kMaxIov = 64;
    iovec iov[kMaxIov];
    std::size_t k = 0;
    for (std::string_view p : pieces) {
      if (k == kMaxIov) break;
      if (p.empty()) continue;
      iov[k].iov_base = const_cast<char*>(p.data());  // NOLINT: sendmsg does not write
      iov[k].iov_len = p.size();
      offered += p.size();
      ++k;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = k;
    return sys::sendmsg(fd_, &msg);
  }

  /// Python's messages: "Fatal read error on socket transport" / "on pipe transport".
  [[nodiscard]] const char* read_error() const noexcept {
    return medium_ == Medium::socket ? "Fatal read error on socket transport"
                                     : "Fatal read error on pipe transport";
  }
  [[nodiscard]] const char* write_error() const noexcept {
    return medium_ == Medium::socket ? "Fatal write error on socket transport"
                                     : "Fatal write error on pipe transport";
  }

  /// One send (a write on a pipe).
  long put(const char* data, std::size_t n) noexcept {
    return medium_ == Medium::socket ? sys::send(fd_, data, n) : sys::write(fd_, data, n);
  }

  void append(std::span<const std::string_view> pieces, std::size_t skip) {
    if (wpos_ == wbuf_.size()) {
      wbuf_.clear();
      wpos_ = 0;
    } else if (wpos_ > 65536 && wpos_ * 2 > wbuf_.size()) {
      wbuf_.erase(0, wpos_);
      wpos_ = 0;
    }
    append_to(wbuf_, pieces, skip);
  }
  /// Appends `pieces` to `out`, leaving out their first `skip` bytes.
  static void append_to(std::string& out, std::span<const std::string_view> pieces,
                        std::size_t skip) {
    for (std::string_view p : pieces) {
      if (skip >= p.size()) {
        skip -= p.size();
        continue;
      }
      out.append(p.substr(skip));
      skip = 0;
    }
  }

  void on_writable(long r) {
    if (r == -ECANCELED || conn_lost_ > 0) return maybe_release();
    if (r < 0) {
      fatal_error(make_os_error(r, "send"), write_error());
      return maybe_release();
    }
    if (buffered() > 0) {
      const long n = put(wbuf_.data() + wpos_, buffered());
      if (n < 0 && n != -EAGAIN) {
        wbuf_.clear();
        wpos_ = 0;
        fatal_error(make_os_error(n, "send"), write_error());
        return maybe_release();
      }
      if (n > 0) wpos_ += static_cast<std::size_t>(n);
    }
    maybe_resume_protocol();
    if (buffered() > 0) {
      arm_writable();
    } else {
      wbuf_.clear();
      wpos_ = 0;
      finish_writing();
    }
    maybe_release();
  }

  /// The buffer is empty: a close() that waited for it completes, a write_eof() shuts down.
  void finish_writing() noexcept {
    if (closing_) {
      if (conn_lost_ == 0) {
        ++conn_lost_;
        schedule_lost(nullptr);
      }
    } else if (eof_) {
      (void)sys::shutdown(fd_, SHUT_WR);
    }
  }

  /// io_uring: the bytes go to `sending_` and a send op, or (a send op is busy) to `wbuf_`,
  /// behind it. A large write with nothing buffered is tried with send() first.
  void write_through_ring(std::span<const std::string_view> pieces, std::size_t total) {
    if (writable_.busy() || buffered() > 0) {
      append(pieces, 0);
      return;
    }
    std::size_t skip = 0;
    if (total >= kDirectSend) {
      std::size_t offered = 0;
      if (!count_sent(send_now(pieces, offered), skip)) return;
      if (skip == total) return;
    }
    sending_.clear();
    spos_ = 0;
    append_to(sending_, pieces, skip);
    start_send();
  }

  /// Submits the send op for what is left of `sending_`.
  void start_send() {
    writable_.set_buffer(sending_.data() + spos_, sending_.size() - spos_);
    try {
      writable_.start(*io_->engine);
    } catch (...) {
      fatal_error(std::current_exception(), "Fatal error: cannot send");
    }
  }

  /// io_uring: a send op completed (bytes sent, or -errno).
  void on_sent(long r) {
    if (r == -ECANCELED || conn_lost_ > 0) {
      // Cancelled (abort), or the connection ended while the kernel held the bytes.
      sending_.clear();
      spos_ = 0;
      return maybe_release();
    }
    if (r < 0) {
      sending_.clear();
      spos_ = 0;
      wbuf_.clear();
      wpos_ = 0;
      fatal_error(make_os_error(r, "send"), write_error());
      return maybe_release();
    }
    spos_ += static_cast<std::size_t>(r);
    if (spos_ >= sending_.size()) {
      // All sent: what was written meanwhile goes next (the buffers trade places, keeping
      // their memory).
      sending_.clear();
      sending_.swap(wbuf_);
      spos_ = std::exchange(wpos_, 0);
    }
    if (spos_ < sending_.size()) start_send();
    maybe_resume_protocol();  // may write: behind the op just started, or a new one
    if (buffered() == 0 && !writable_.busy()) finish_writing();
    maybe_release();
  }

  void maybe_pause_protocol() {
    flow_.maybe_pause(protocol_.get(), buffered(),
                      [this](std::exception_ptr e, const char* m) { report(std::move(e), m); });
  }
  void maybe_resume_protocol() {
    flow_.maybe_resume(protocol_.get(), buffered(),
                       [this](std::exception_ptr e, const char* m) { report(std::move(e), m); });
  }

  // -- Closing ---------------------------------------------------------------------------------
  void report(std::exception_ptr exc, const std::string& message) noexcept {
    if (!dead_) report_to_loop(*loop_, std::move(exc), message);
  }

  /// Python: _fatal_error: an OSError is the connection's end (reported only in debug mode);
  /// anything else is a bug reported to the exception handler. Then the transport closes.
  void fatal_error(std::exception_ptr exc, const char* message) noexcept {
    bool os_error = false;
    try {
      std::rethrow_exception(exc);
    } catch (const OSError&) {
      os_error = true;
    } catch (...) {  // NOLINT(bugprone-empty-catch): anything else is reported below
    }
    if (!dead_ && (!os_error || loop_->get_debug())) report(exc, message);
    force_close(std::move(exc));
  }

  void force_close(std::exception_ptr exc) noexcept {
    if (conn_lost_ > 0) return;
    if (buffered() > 0) {
      wbuf_.clear();
      wpos_ = 0;
      // A send op's bytes stay where they are until the kernel lets go (on_sent); they no
      // longer count.
      spos_ = sending_.size();
    }
    if (writable_.parked()) io_->engine->cancel(writable_);
    if (!closing_) {
      closing_ = true;
      stop_reading();
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
    stop_reading();
    if (made_ && protocol_) {
      try {
        protocol_->connection_lost(std::exchange(lost_exc_, nullptr));
      } catch (const KeyboardInterrupt&) {
        finish_lost();
        throw;
      } catch (...) {
        report(std::current_exception(), "protocol.connection_lost() failed");
      }
    }
    finish_lost();
  }
  void finish_lost() noexcept {
    lost_done_ = true;
    if (server_) {
      server_->detach(*this);
      server_.reset();
    }
    maybe_release();
  }

  /// Closes the fd, which no transport of this loop uses any more.
  void close_fd() noexcept {
    io_->release_fd(fd_, this);
    sys::close(fd_);
    fd_ = -1;
  }

  /// Once connection_lost has run and no operation is held by the engine or the queue: closes
  /// the socket and drops the loop's reference (which may destroy this: nothing after it).
  void maybe_release() noexcept {
    if (!lost_done_ || receiving() || writable_.busy() || start_.queued() || lost_.queued()) {
      return;
    }
    if (fd_ >= 0) {
      io_->engine->forget(fd_);
      close_fd();
    }
    if (linked()) IntrusiveList::unlink(static_cast<IoResource*>(this));
    retained_.reset();
    protocol_.reset();
    proto_ = nullptr;
    bproto_ = nullptr;
    const std::shared_ptr<SocketTransport> keep = std::move(self_);
  }

  // The fields a connection's every round trip reads come first, so that they share as few
  // cache lines as possible (a server touches them for each of its connections in turn); the
  // ones for set-up, io_uring, flow control and the end follow.
  EventLoop* loop_;
  LoopIo* io_;
  int fd_;
  Medium medium_;
  bool uring_;      // the loop runs io_uring (the recv ops are io_uring's alone)
  bool ring_send_;  // io_uring sockets send through writable_, a send op; epoll and pipes
                    // wait for writability
  bool made_ = false;
  bool closing_ = false;
  bool paused_ = false;
  bool eof_ = false;  // write_eof() was called
  bool eof_received_ = false;
  bool lost_done_ = false;
  bool dead_ = false;  // the loop closed under it
  int conn_lost_ = 0;
  Protocol* proto_ = nullptr;
  BufferedProtocol* bproto_ = nullptr;
  std::string wbuf_;  // bytes waiting (epoll: for writability; io_uring: behind the send op)
  std::size_t wpos_ = 0;
  OwnedOp<SocketTransport> readable_;  // (the ops' destructors do nothing: any order is fine)
  std::string sending_;                // io_uring: the bytes the send op holds, from spos_
  std::size_t spos_ = 0;
  std::shared_ptr<SocketTransport> self_;  // the loop's reference (see the header)
  std::shared_ptr<BaseProtocol> protocol_;
  std::shared_ptr<BaseProtocol> retained_;  // an old protocol whose buffer the kernel holds
  std::shared_ptr<ServerState> server_;
  OwnedOp<SocketTransport> writable_;
  OwnedOp<SocketTransport> received_;
  SocketAddress local_;
  SocketAddress peer_;
  /// io_uring, a Protocol: the multishot receive that stays armed after the first short read.
  OwnedOp<SocketTransport> stream_;
  OwnedCall<SocketTransport> start_;  // read on the next pass
  OwnedCall<SocketTransport> lost_;   // connection_lost on the next pass
  std::exception_ptr lost_exc_;
  /// io_uring: a write at least this large, with nothing buffered, tries send() at once (no
  /// copy for the part the socket takes).
  static constexpr std::size_t kDirectSend = 16384;
  FlowControl flow_;
  std::size_t pending_updated_ = 0;  // bytes received by a recv op while paused
  std::string inbox_;                // io_uring: what stream_ brought, delivered by on_start()
  bool eof_pending_ = false;         // stream_ ended at EOF while inbox_ waited (paused)
  /// A Protocol's recv op buffer (io_uring without multishot receives), made at its first
  /// short read: 1 KiB per connection that has received.
  static constexpr std::size_t kSmallReceive = 1024;
  std::unique_ptr<char[]> small_;
};

// ---- Listening sockets ----------------------------------------------------------------------

/// Python: BaseSelectorEventLoop._accept_connection (accepts up to `backlog` connections per
/// readiness; on EMFILE and the like, stops accepting for a second and tries again).
class Listener final : public IoResource {
 public:
  Listener(ServerState& server, int fd, SocketAddress address)
      : server_(&server),
        fd_(fd),
        address_(address),
        ready_(OpKind::poll_in, fd, *this, &Listener::on_ready, ready_queue_of(*server.loop)) {
    io_of(*server.loop).resources.push_back(static_cast<IoResource*>(this));
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener() {
    if (fd_ >= 0) sys::close(fd_);  // a listener that never started (creation failed)
    if (linked()) IntrusiveList::unlink(static_cast<IoResource*>(this));
  }

  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] const SocketAddress& address() const noexcept { return address_; }

  /// listen() (the first time), then wait for connections.
  void start() {
    if (fd_ < 0 || stopped_) return;
    if (!listening_) {
      if (const int r = sys::listen(fd_, server_->options.backlog); r < 0) {
        raise_os_error(-r, "listen");
      }
      listening_ = true;
    }
    if (!ready_.busy() && !retry_) arm();
  }

  /// Stops accepting for good and closes the socket once the engine has let go of it.
  void stop() noexcept {
    stopped_ = true;
    retry_timer_.cancel();
    retry_ = false;
    if (ready_.parked()) io_of(*server_->loop).engine->cancel(ready_);
    maybe_close();
  }

  void on_loop_close() noexcept override {
    stopped_ = true;
    server_->serving = false;
    server_->closed = true;
    retry_timer_ = TimerHandle();
    LoopIo& io = io_of(*server_->loop);
    if (ready_.parked()) io.engine->abandon(ready_);
    if (fd_ >= 0) {
      io.engine->forget(fd_);
      sys::close(fd_);
      fd_ = -1;
    }
    keep_.reset();  // may destroy the server state, and this: nothing after it
  }
  void on_discarded() noexcept {
    const std::shared_ptr<ServerState> hold = std::move(keep_);
    maybe_close();
  }

 private:
  friend class OwnedOp<Listener>;

  void arm() {
    keep_ = server_->shared_from_this();  // the server lives while its listener waits
    ready_.start(*io_of(*server_->loop).engine);
  }

  void maybe_close() noexcept {
    if (!stopped_ || ready_.busy() || fd_ < 0) return;
    io_of(*server_->loop).engine->forget(fd_);
    sys::close(fd_);
    fd_ = -1;
    if (linked()) IntrusiveList::unlink(static_cast<IoResource*>(this));
  }

  void on_ready(long r) {
    const std::shared_ptr<ServerState> hold = std::move(keep_);  // released last
    if (stopped_ || fd_ < 0) {
      maybe_close();
      return;
    }
    if (r < 0 && r != -ECANCELED) {
      report(r, "Error on listening socket");
      arm_or_report();
      return;
    }
    bool drained = false;  // accept said EAGAIN: the next connection makes an edge
    for (int i = 0; i < std::max(1, server_->options.backlog) && !stopped_; ++i) {
      SocketAddress peer;
      unsigned len = SocketAddress::capacity();
      const int fd = sys::accept(fd_, peer.data(), &len);
      if (fd < 0) {
        if (fd == -EAGAIN) {
          drained = true;
          break;
        }
        if (fd == -ECONNABORTED || fd == -EPROTO) continue;  // that one is gone; try the next
        if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
          // Out of a resource: stop accepting for a while; the listener stays (Python:
          // "socket.accept() out of system resource", retried after ACCEPT_RETRY_DELAY).
          report(fd, "socket.accept() out of system resource");
          back_off();
          return;
        }
        report(fd, "Error accepting a connection");
        drained = true;  // wait for readiness before trying again
        break;
      }
      peer.set_size(len);
      connection(fd);
    }
    if (!drained && !stopped_) {
      // `backlog` connections taken and maybe more queued: accept again on the next pass, after
      // the others (Python's level-triggered selector reports the listener again; an
      // edge-triggered wait would not until a new connection came).
      keep_ = hold;
      ready_.queue(0);
      return;
    }
    arm_or_report();
  }

  void arm_or_report() {
    if (stopped_) return maybe_close();
    try {
      arm();
    } catch (...) {
      ExceptionContext c;
      c.message = "Cannot wait on the listening socket";
      c.exception = std::current_exception();
      server_->loop->call_exception_handler(c);
    }
  }

  void back_off() {
    retry_ = true;
    std::weak_ptr<ServerState> weak = server_->weak_from_this();
    Listener* self = this;
    retry_timer_ = server_->loop->call_later(kAcceptRetryDelay, [weak, self] {
      if (const auto st = weak.lock()) {
        self->retry_ = false;
        // Accept at once rather than wait for readiness: connections queued meanwhile made
        // their edge long ago (epoll), and none may come again.
        if (!self->stopped_) self->on_ready(0);
      }
    });
  }

  void connection(int fd) {
    std::shared_ptr<BaseProtocol> protocol;
    try {
      protocol = server_->factory();
      if (!protocol) throw ValueError("the protocol factory returned no protocol");
      (void)SocketTransport::make(*server_->loop, fd, std::move(protocol),
                                  server_->shared_from_this());
    } catch (const KeyboardInterrupt&) {
      throw;
    } catch (...) {
      if (!protocol) sys::close(fd);     // else: the transport closed it
      if (server_->loop->get_debug()) {  // as Python: reported in debug mode only
        ExceptionContext c;
        c.message = "Error on transport creation for incoming connection";
        c.exception = std::current_exception();
        server_->loop->call_exception_handler(c);
      }
    }
  }

  void report(long err, const char* message) noexcept {
    ExceptionContext c;
    c.message = message;
    try {
      raise_os_error(static_cast<int>(-err), "accept");
    } catch (...) {
      c.exception = std::current_exception();
    }
    server_->loop->call_exception_handler(c);
  }

  static constexpr double kAcceptRetryDelay = 1.0;  // Python: constants.ACCEPT_RETRY_DELAY

  ServerState* server_;
  int fd_;
  SocketAddress address_;
  OwnedOp<Listener> ready_;
  std::shared_ptr<ServerState> keep_;
  TimerHandle retry_timer_;
  bool listening_ = false;
  bool stopped_ = false;
  bool retry_ = false;
};

ServerState::~ServerState() {
  for (auto& l : listeners) l->stop();
}

void ServerState::attach(SocketTransport& t) {
  ++active;
  clients.push_back(&t.server_hook_);
}

void ServerState::detach(SocketTransport& t, bool wake_waiters) noexcept {
  if (t.server_hook_.linked()) IntrusiveList::unlink(&t.server_hook_);
  if (active > 0) --active;
  if (active == 0 && closed && wake_waiters) wake();
}

void ServerState::start_serving() {
  if (serving || closed) return;
  serving = true;
  for (auto& l : listeners) l->start();
}

void ServerState::close() {
  if (closed) return;
  closed = true;
  serving = false;
  for (auto& l : listeners) l->stop();
  if (!unix_path.empty()) {
    // Remove the socket file, if it is still ours (Python 3.13).
    if (sys::path_id(unix_path.c_str()) == unix_id) (void)sys::unlink(unix_path.c_str());
  }
  if (serving_forever && !serving_forever->done()) serving_forever->cancel();
  serving_forever.reset();
  if (active == 0) wake();
}

void ServerState::wake() noexcept {
  if (woken) return;
  woken = true;
  for (Future<void>& w : waiters) {
    if (!w.done()) w.set_result();
  }
  waiters.clear();
}

// ---- Making sockets -------------------------------------------------------------------------

sys::Fd new_socket(int family, const char* what, int type) {
  const int fd = sys::socket(family, type, 0);
  if (fd < 0) raise_os_error(-fd, what);
  return sys::Fd(fd);
}

SocketAddress socket_address(int fd, bool peer) {
  SocketAddress a;
  unsigned n = SocketAddress::capacity();
  const int r = peer ? sys::peer_address(fd, a.data(), &n) : sys::local_address(fd, a.data(), &n);
  if (r == 0) a.set_size(n);
  return a;
}

void remove_stale_unix_socket(const std::string& path) {
  if (path.empty() || path.front() == '\0') return;  // none, or an abstract name
  bool is_socket = false;
  if (sys::path_id(path.c_str(), &is_socket) != sys::FileId{} && is_socket) {
    (void)sys::unlink(path.c_str());
  }
}

namespace {

/// `host`:`port` as addresses: numeric ones without the resolver (Python: _ipaddr_info).
Coro<std::vector<AddrInfo>> resolve(std::string host, std::uint16_t port, int family, int flags) {
  if (!host.empty()) {
    try {
      SocketAddress a = SocketAddress::ip(host, port);
      if (family == AF_UNSPEC || family == a.family()) {
        co_return std::vector<AddrInfo>{AddrInfo{a.family(), SOCK_STREAM, IPPROTO_TCP, {}, a}};
      }
    } catch (const ValueError&) {  // NOLINT(bugprone-empty-catch): a name: resolve it
    }
  }
  std::vector<AddrInfo> infos = co_await getaddrinfo(
      host, std::to_string(port), {.family = family, .type = SOCK_STREAM, .flags = flags});
  if (infos.empty()) throw OSError(0, "getaddrinfo() returned empty list");
  co_return infos;
}

/// One connection attempt: a connected socket, or the attempt's OSError. A local address of
/// another family than `address`'s fails the attempt (Python: "no matching local address").
Coro<int> connect_one(SocketAddress address, std::optional<SocketAddress> local) {
  if (local && local->family() != address.family()) {
    throw OSError(0, std::string("no matching local address with family=") +
                         (address.family() == AF_INET6 ? "AF_INET6" : "AF_INET") + " found");
  }
  sys::Fd fd = new_socket(address.family(), "socket");
  if (local) {
    (void)sys::set_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
    if (const int r = sys::bind(fd.get(), local->data(), local->size()); r < 0) {
      raise_os_error(-r, "error while attempting to bind on address " + local->to_string());
    }
  }
  co_await sock_connect(fd.get(), address);
  co_return fd.release();
}

/// Python's rule for several failed attempts: one error (or all alike) is raised as it is,
/// else an OSError listing them.
[[noreturn]] void raise_connect_errors(const std::vector<std::exception_ptr>& errors) {
  if (errors.size() == 1) std::rethrow_exception(errors.front());
  std::vector<std::string> texts;
  for (const auto& e : errors) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      texts.emplace_back(x.what());
    }
  }
  if (std::all_of(texts.begin(), texts.end(),
                  [&](const std::string& t) { return t == texts[0]; })) {
    std::rethrow_exception(errors.front());
  }
  std::string all = "Multiple exceptions: ";
  for (std::size_t i = 0; i < texts.size(); ++i) all += (i ? ", " : "") + texts[i];
  throw OSError(0, all);
}

/// Families alternate: the first `first_count` of the first family, then one of each in turn
/// (Python: _interleave_addrinfos).
std::vector<SocketAddress> interleave(const std::vector<AddrInfo>& infos, int first_count) {
  std::vector<std::vector<SocketAddress>> by_family;
  std::vector<int> families;
  for (const AddrInfo& i : infos) {
    auto it = std::find(families.begin(), families.end(), i.family);
    if (it == families.end()) {
      families.push_back(i.family);
      by_family.emplace_back();
      it = families.end() - 1;
    }
    by_family[static_cast<std::size_t>(it - families.begin())].push_back(i.address);
  }
  std::vector<SocketAddress> out;
  if (by_family.empty()) return out;
  std::vector<std::size_t> next(by_family.size(), 0);
  const auto take = [&](std::size_t f) {
    if (next[f] < by_family[f].size()) out.push_back(by_family[f][next[f]++]);
  };
  for (int i = 1; i < first_count; ++i) take(0);
  for (;;) {
    const std::size_t before = out.size();
    for (std::size_t f = 0; f < by_family.size(); ++f) take(f);
    if (out.size() == before) break;
  }
  return out;
}

/// Happy eyeballs (Python: staggered.staggered_race): attempt i+1 starts when attempt i fails
/// or `delay` seconds after it started; the first connection wins and the rest are cancelled.
struct RaceResult {
  int fd = -1;
  std::vector<std::exception_ptr> errors;  // of the attempts that failed
};

Coro<RaceResult> race(std::vector<SocketAddress> addresses, double delay,
                      std::optional<SocketAddress> local) {
  std::vector<std::exception_ptr> errors;
  std::vector<Task<int>> running;
  std::size_t next = 0;
  running.push_back(create_task(connect_one(addresses[next++], local)));
  int winner = -1;
  std::exception_ptr interrupted;  // the race itself was cancelled
  while (!running.empty() && winner < 0) {
    WaitOptions opts{.return_when = ReturnWhen::first_completed};
    if (next < addresses.size()) opts.timeout = std::chrono::duration<double>(delay);
    try {
      auto [done, pending] = co_await wait(std::vector<Task<int>>(running), opts);
      for (Task<int>& t : done) {
        for (std::size_t i = 0; i < running.size(); ++i) {
          if (running[i].state() == t.state()) {
            running.erase(running.begin() + static_cast<std::ptrdiff_t>(i));
            break;
          }
        }
        if (t.exception()) {
          errors.push_back(t.exception());
        } else if (winner < 0) {
          winner = t.result();
        } else {
          sys::close(t.result());  // a second one that made it too
        }
      }
    } catch (...) {
      interrupted = std::current_exception();
      break;
    }
    // A failure, or `delay` without an answer: the next attempt starts.
    if (winner < 0 && next < addresses.size()) {
      running.push_back(create_task(connect_one(addresses[next++], local)));
    }
  }
  for (Task<int>& t : running) t.cancel();
  for (Task<int>& t : running) {
    try {
      const int fd = co_await shield(t);
      sys::close(fd);  // connected just before being cancelled
    } catch (...) {    // NOLINT(bugprone-empty-catch): cancelled or failed: nothing to close
    }
  }
  if (interrupted) {
    if (winner >= 0) sys::close(winner);
    std::rethrow_exception(interrupted);
  }
  co_return RaceResult{winner, std::move(errors)};
}

std::shared_ptr<BaseProtocol> make_protocol(const ProtocolFactory& factory) {
  std::shared_ptr<BaseProtocol> p = factory();
  if (!p) throw ValueError("the protocol factory returned no protocol");
  return p;
}

/// The TLS layer over the connected socket `fd` (taken over), and its transport once the
/// handshake is done; the handshake's error (the connection closed) otherwise.
Coro<Connection<BaseProtocol>> connect_tls(int fd, std::shared_ptr<BaseProtocol> protocol,
                                           TlsSettings settings) {
  EventLoop& loop = get_running_loop();
  sys::Fd owned(fd);
  Future<void> waiter = loop.create_future<void>();
  std::shared_ptr<BufferedProtocol> tls =
      make_tls_protocol(loop, protocol, std::move(settings), waiter, true);
  std::shared_ptr<SocketTransport> t = SocketTransport::make(loop, owned.release(), tls, nullptr);
  try {
    co_await waiter;
  } catch (...) {
    t->abort();
    throw;
  }
  co_return Connection<BaseProtocol>{tls_app_transport(*tls), std::move(protocol)};
}

/// A server's factory for TLS: the application's protocol under the TLS layer. Built in a
/// plain function (g++ 12 and capturing lambdas in coroutine bodies).
ProtocolFactory tls_server_factory(EventLoop& loop, ProtocolFactory app, TlsSettings settings) {
  return [&loop, app = std::move(app),
          settings = std::move(settings)]() -> std::shared_ptr<BaseProtocol> {
    return make_tls_protocol(loop, make_protocol(app), settings, std::nullopt, true);
  };
}

}  // namespace

Coro<int> connect_addresses(std::vector<AddrInfo> infos, ConnectionOptions options) {
  const std::optional<SocketAddress> local = options.local_addr;
  std::vector<std::exception_ptr> errors;
  int fd = -1;
  if (!options.happy_eyeballs_delay) {
    std::vector<SocketAddress> order;
    order.reserve(infos.size());
    for (const AddrInfo& i : infos) order.push_back(i.address);
    if (options.interleave && *options.interleave > 0)
      order = interleave(infos, *options.interleave);
    for (const SocketAddress& a : order) {
      try {
        fd = co_await connect_one(a, local);
        break;
      } catch (const OSError&) {
        errors.push_back(std::current_exception());
      }
    }
  } else {
    const int first = options.interleave.value_or(1);
    std::vector<SocketAddress> order;
    if (first > 0) {
      order = interleave(infos, first);
    } else {
      order.reserve(infos.size());
      for (const AddrInfo& i : infos) order.push_back(i.address);
    }
    RaceResult r = co_await race(std::move(order), *options.happy_eyeballs_delay, local);
    fd = r.fd;
    errors = std::move(r.errors);
  }
  if (fd < 0) {
    if (errors.empty()) throw OSError(0, "no address to connect to");
    raise_connect_errors(errors);
  }
  co_return fd;
}

Coro<Connection<BaseProtocol>> create_connection(ProtocolFactory factory, std::string host,
                                                 std::uint16_t port, ConnectionOptions options) {
  if (host.empty()) throw ValueError("host and port were not specified");
  std::optional<TlsSettings> tls = client_tls(options, host);
  std::vector<AddrInfo> infos = co_await resolve(host, port, options.family, 0);
  const int fd = co_await connect_addresses(std::move(infos), options);
  std::shared_ptr<BaseProtocol> protocol;
  try {
    protocol = make_protocol(factory);
  } catch (...) {
    sys::close(fd);
    throw;
  }
  if (tls) co_return co_await connect_tls(fd, std::move(protocol), std::move(*tls));
  auto t = SocketTransport::make(get_running_loop(), fd, protocol, nullptr);
  co_return Connection<BaseProtocol>{std::move(t), std::move(protocol)};
}

Coro<Connection<BaseProtocol>> create_unix_connection(ProtocolFactory factory, std::string path,
                                                      ConnectionOptions options) {
  std::optional<TlsSettings> tls = client_tls(options, {});  // no host: server_hostname
  const SocketAddress address = SocketAddress::unix_path(path);
  sys::Fd fd = new_socket(AF_UNIX, "socket");
  co_await sock_connect(fd.get(), address);
  std::shared_ptr<BaseProtocol> protocol = make_protocol(factory);
  if (tls) co_return co_await connect_tls(fd.release(), std::move(protocol), std::move(*tls));
  auto t = SocketTransport::make(get_running_loop(), fd.release(), protocol, nullptr);
  co_return Connection<BaseProtocol>{std::move(t), std::move(protocol)};
}

namespace {
/// connect_accepted_socket's first check: `fd` is a stream socket.
void check_stream_socket(int fd) {
  const int type = sys::get_option(fd, SOL_SOCKET, SO_TYPE);
  if (type < 0) raise_os_error(-type, "connect_accepted_socket");
  if (type != SOCK_STREAM)
    throw ValueError("A Stream Socket was expected, got " + std::to_string(type));
}
/// connect_accepted_socket's last check (Python's _make_socket_transport: no transport uses
/// `fd`), then the socket is made non-blocking.
void make_nonblocking(int fd) {
  io_of(get_running_loop()).check_no_transport(fd);
  if (const int r = sys::set_nonblocking(fd); r < 0) raise_os_error(-r, "connect_accepted_socket");
}
}  // namespace

Connection<BaseProtocol> connect_accepted_socket(const ProtocolFactory& factory, int fd) {
  check_stream_socket(fd);
  make_nonblocking(fd);
  std::shared_ptr<BaseProtocol> protocol = make_protocol(factory);
  auto t = SocketTransport::make(get_running_loop(), fd, protocol, nullptr);
  return {std::move(t), std::move(protocol)};
}

Coro<Connection<BaseProtocol>> connect_accepted_socket(ProtocolFactory factory, int fd,
                                                       AcceptedSocketOptions options) {
  // Python's order: the socket's type, then the TLS options; the fd is changed only after.
  check_stream_socket(fd);
  std::optional<TlsSettings> tls =
      server_tls(options.ssl, options.ssl_handshake_timeout, options.ssl_shutdown_timeout);
  make_nonblocking(fd);
  std::shared_ptr<BaseProtocol> protocol = make_protocol(factory);
  if (tls) co_return co_await connect_tls(fd, std::move(protocol), std::move(*tls));
  auto t = SocketTransport::make(get_running_loop(), fd, protocol, nullptr);
  co_return Connection<BaseProtocol>{std::move(t), std::move(protocol)};
}

Connection<BaseProtocol> connect_pipe(const ProtocolFactory& factory, int fd, bool write_end) {
  const char* what = write_end ? "connect_write_pipe" : "connect_read_pipe";
  const int type = sys::file_type(fd);
  if (type < 0) raise_os_error(-type, what);
  if (type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR) {
    throw ValueError(std::string(what) +
                     ": pipe transports are for pipes, sockets and "
                     "character devices only");
  }
  std::shared_ptr<BaseProtocol> protocol = make_protocol(factory);
  auto t = make_pipe_transport(get_running_loop(), fd,
                               write_end ? Medium::write_pipe : Medium::read_pipe, protocol);
  return {std::move(t), std::move(protocol)};
}

namespace {

/// Binds every address (the first to get a port when `port` is 0 gives it to the others).
/// Returns the sockets, not yet listening.
std::vector<std::pair<sys::Fd, SocketAddress>> bind_all(const std::vector<AddrInfo>& infos,
                                                        const ServerOptions& o, bool& port_clash) {
  std::vector<std::pair<sys::Fd, SocketAddress>> out;
  std::uint16_t chosen = 0;
  port_clash = false;
  for (const AddrInfo& info : infos) {
    bool dup = false;
    for (const auto& [fd, a] : out) dup = dup || a == info.address;
    if (dup) continue;
    sys::Fd fd = new_socket(info.family, "socket");
    if (o.reuse_address.value_or(true))
      (void)sys::set_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
    if (o.reuse_port) {
      if (const int r = sys::set_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1); r < 0) {
        raise_os_error(-r, "setsockopt(SO_REUSEPORT)");
      }
    }
    if (info.family == AF_INET6) {
      // Python: IPv6 sockets listen to IPv6 only (the IPv4 socket takes the rest).
      (void)sys::set_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 1);
    }
    SocketAddress a = info.address;
    if (a.port() == 0 && chosen != 0) a = SocketAddress::ip(a.host(), chosen);
    if (const int r = sys::bind(fd.get(), a.data(), a.size()); r < 0) {
      const int err = -r;
      if (err == EADDRINUSE && info.address.port() == 0 && chosen != 0) {
        port_clash = true;
        return {};
      }
      raise_os_error(err, "error while attempting to bind on address " + a.to_string());
    }
    unsigned n = SocketAddress::capacity();
    if (sys::local_address(fd.get(), a.data(), &n) == 0) a.set_size(n);
    if (chosen == 0) chosen = a.port();
    out.emplace_back(std::move(fd), a);
  }
  return out;
}

Coro<Server> finish_server(std::shared_ptr<ServerState> st) {
  if (st->options.start_serving) {
    st->start_serving();
    co_await sleep(0);  // Python: await tasks.sleep(0), let the listeners start
  }
  co_return Server(std::move(st));
}

}  // namespace

std::shared_ptr<Transport> make_pipe_transport(EventLoop& loop, int fd, Medium medium,
                                               std::shared_ptr<BaseProtocol> protocol) {
  sys::Fd owned(fd);
  if (const int r = sys::set_nonblocking(fd); r < 0) raise_os_error(-r, "pipe transport");
  if (medium == Medium::write_pipe) sys::ignore_sigpipe_once();
  return SocketTransport::make(loop, owned.release(), std::move(protocol), nullptr, medium);
}

}  // namespace detail

Coro<Server> create_server(ProtocolFactory factory, std::string host, std::uint16_t port,
                           ServerOptions options) {
  if (options.backlog < 0) options.backlog = 0;
  EventLoop& loop = get_running_loop();
  if (std::optional<detail::TlsSettings> tls = detail::server_tls(options)) {
    factory = detail::tls_server_factory(loop, std::move(factory), std::move(*tls));
  }
  options.ssl = {};  // the server keeps the handle, not the caller's reference
  std::vector<AddrInfo> infos = co_await detail::resolve(host, port, options.family, AI_PASSIVE);
  auto st = std::make_shared<detail::ServerState>(loop, std::move(factory), options);
  for (int attempt = 0;; ++attempt) {
    bool clash = false;
    auto bound = detail::bind_all(infos, options, clash);
    if (clash && attempt < 10) continue;
    if (clash) raise_os_error(EADDRINUSE, "cannot find a free port for every address");
    for (auto& [fd, a] : bound) {
      st->listeners.push_back(std::make_unique<detail::Listener>(*st, fd.release(), a));
    }
    break;
  }
  co_return co_await detail::finish_server(std::move(st));
}

Coro<Server> create_unix_server(ProtocolFactory factory, std::string path, ServerOptions options) {
  if (options.backlog < 0) options.backlog = 0;
  EventLoop& loop = get_running_loop();
  if (std::optional<detail::TlsSettings> tls = detail::server_tls(options)) {
    factory = detail::tls_server_factory(loop, std::move(factory), std::move(*tls));
  }
  options.ssl = {};
  const SocketAddress address = SocketAddress::unix_path(path);
  detail::remove_stale_unix_socket(path);  // Python does the same
  sys::Fd fd = detail::new_socket(AF_UNIX, "socket");
  if (const int r = sys::bind(fd.get(), address.data(), address.size()); r < 0) {
    const int err = -r;
    if (err == EADDRINUSE) raise_os_error(err, "Address '" + path + "' is already in use");
    raise_os_error(err, "bind " + path);
  }
  auto st = std::make_shared<detail::ServerState>(loop, std::move(factory), options);
  if (!path.empty() && path[0] != '\0') {
    st->unix_path = path;
    st->unix_id = sys::path_id(path.c_str());
  }
  st->listeners.push_back(std::make_unique<detail::Listener>(*st, fd.release(), address));
  co_return co_await detail::finish_server(std::move(st));
}

// ---- Server ---------------------------------------------------------------------------------

namespace {
[[noreturn]] void raise_empty_server() {
  throw RuntimeError("this Server is empty (moved from or default-constructed)");
}

}  // namespace

Server& Server::operator=(Server&& other) noexcept {
  if (this != &other) {
    if (state_) {
      try {
        state_->close();
      } catch (...) {  // NOLINT(bugprone-empty-catch): closing never throws in practice
      }
    }
    state_ = std::move(other.state_);
  }
  return *this;
}

Server::~Server() {
  if (!state_) return;
  try {
    state_->close();
  } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
  }
}

detail::ServerState& Server::state() const {
  if (!state_) raise_empty_server();
  return *state_;
}

void Server::close() {
  state().close();
}

void Server::close_clients() {
  detail::ServerState& st = state();
  std::vector<std::shared_ptr<BaseTransport>> all;
  for (detail::ListHook* h = st.clients.first(); h != st.clients.end(); h = h->next) {
    all.push_back(static_cast<detail::SocketTransport::ServerHook*>(h)->self->shared_from_this());
  }
  for (auto& t : all) t->close();
}

void Server::abort_clients() {
  detail::ServerState& st = state();
  std::vector<std::shared_ptr<BaseTransport>> all;
  for (detail::ListHook* h = st.clients.first(); h != st.clients.end(); h = h->next) {
    all.push_back(static_cast<detail::SocketTransport::ServerHook*>(h)->self->shared_from_this());
  }
  for (auto& t : all) static_cast<Transport&>(*t).abort();
}

namespace {

Coro<void> server_wait_closed(std::shared_ptr<detail::ServerState> st) {
  if (!st) raise_empty_server();
  if (st->woken) co_return;
  Future<void> w = get_running_loop().create_future<void>();
  st->waiters.push_back(w);
  co_await w;
}

Coro<void> server_start_serving(std::shared_ptr<detail::ServerState> st) {
  if (!st) raise_empty_server();
  st->start_serving();
  co_await sleep(0);
}

Coro<void> server_serve_forever(std::shared_ptr<detail::ServerState> st) {
  if (!st) raise_empty_server();
  if (st->serving_forever) throw RuntimeError("server is already being awaited on serve_forever()");
  if (st->closed) throw RuntimeError("server is closed");
  st->start_serving();
  Future<void> forever = get_running_loop().create_future<void>();
  st->serving_forever = forever;
  std::exception_ptr cancelled;
  try {
    co_await forever;
  } catch (const CancelledError&) {
    cancelled = std::current_exception();
  }
  st->serving_forever.reset();
  if (!cancelled) co_return;
  // Python: close(), then wait_closed(), then re-raise the cancellation.
  st->close();
  try {
    co_await server_wait_closed(st);
  } catch (const CancelledError&) {  // NOLINT(bugprone-empty-catch): re-raised below
  }
  std::rethrow_exception(cancelled);
}

}  // namespace

Coro<void> Server::wait_closed() {
  return server_wait_closed(state_);
}
Coro<void> Server::start_serving() {
  return server_start_serving(state_);
}
Coro<void> Server::serve_forever() {
  return server_serve_forever(state_);
}

bool Server::is_serving() const noexcept {
  return state_ && state_->serving;
}

std::uint16_t Server::port() const noexcept {
  if (!state_ || state_->closed || state_->listeners.empty()) return 0;
  return state_->listeners.front()->address().port();
}

std::vector<int> Server::sockets() const {
  std::vector<int> out;
  if (!state_ || state_->closed) return out;
  for (const auto& l : state_->listeners) out.push_back(l->fd());
  return out;
}

std::vector<SocketAddress> Server::addresses() const {
  std::vector<SocketAddress> out;
  if (!state_ || state_->closed) return out;
  for (const auto& l : state_->listeners) out.push_back(l->address());
  return out;
}

EventLoop& Server::get_loop() const {
  return *state().loop;
}

}  // namespace asyncio
