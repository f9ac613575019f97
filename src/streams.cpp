// The high-level stream API (Python: asyncio/streams.py): StreamReader, StreamWriter, the stream
// protocol that joins them to a transport (Python: StreamReaderProtocol + FlowControlMixin), and
// open_connection / start_server with their Unix variants.
//
// Ownership (no cycle outlives a connection):
//   StreamWriter handle -> StreamWriterState -> { Transport, StreamProtocol, StreamReaderState }
//   Transport -> StreamProtocol (until connection_lost() returns) -> StreamReaderState
// The protocol never holds the writer state: when the last StreamWriter handle goes, the state's
// destructor closes the transport (Python closes it in StreamWriter.__del__). The reader state
// knows its transport only weakly (to pause and resume reading).
//
// Waiting: a reader has at most one waiting task (Python: StreamReader._waiter), parked on a
// ReaderWait that lives in the waiting frame; drain() and wait_closed() park on broadcast lists
// of the protocol. None of them allocates, and a cancelled wait only unlinks itself, so a read or
// drain cancelled while it waits consumes nothing and leaves the stream as it was.
//
// Deviations from Python 3.12 (docs/python-mapping.md):
//   * RAII: a connection whose every StreamWriter handle is gone is closed, silently (Python
//     closes it from __del__ with a ResourceWarning). On the server side the protocol does not
//     keep the writer (Python's StreamReaderProtocol._stream_writer does), so a handler that
//     returns without keeping its writer anywhere closes its connection.
//   * A handler that ends cancelled has its transport closed (Python 3.12's done callback calls
//     task.exception(), which raises CancelledError inside the callback and leaves the
//     transport open).
//   * read(-1) takes everything buffered at each wake-up instead of limit-sized blocks: the same
//     bytes, fewer copies.
//   * feed_data() after feed_eof() throws RuntimeError (Python asserts).
//   * A reader made by hand is bound to the loop of the first task that waits on it (Python
//     binds it to the current loop at construction); waiting from another loop: RuntimeError.
// Kept from Python on purpose: a drain() parked on a paused transport returns normally when the
// connection is lost without an error (FlowControlMixin.connection_lost); the next drain()
// throws ConnectionResetError("Connection lost").
#include "asyncio/streams.hpp"

#include <algorithm>
#include <cerrno>
#include <coroutine>
#include <optional>

#include "asyncio/detail/lock_waiters.hpp"
#include "asyncio/detail/task_state.hpp"
#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/task_ref.hpp"
#include "asyncio/tasks.hpp"
#include "ssl_detail.hpp"
#include "streams_detail.hpp"
#include "sys/sys.hpp"
#include "transports_detail.hpp"

namespace asyncio {
namespace detail {

class StreamReaderState;

namespace {
Coro<std::string> read_some(std::shared_ptr<StreamReaderState> s, std::ptrdiff_t n);
}  // namespace

/// The task waiting for data on a reader (Python: the future in StreamReader._waiter). Lives
/// in the waiting frame (or in the reader's ReadOp); the reader points at it while it is parked.
class ReaderWait final : public ParkedWaiter {
 public:
  ReaderWait(StreamReaderState& s, const char* func) noexcept : s_(&s), func_(func) {}
  ReaderWait(const ReaderWait&) = delete;
  ReaderWait& operator=(const ReaderWait&) = delete;
  ~ReaderWait() { detach(); }

  inline bool await_ready();
  inline void await_suspend(std::coroutine_handle<> h);
  void await_resume() {
    resume_check();
    if (error_) std::rethrow_exception(error_);
  }
  /// From the reader: data or EOF came.
  void wake() { wake_up(); }
  /// From the reader: its error came.
  void wake(std::exception_ptr error) {
    error_ = std::move(error);
    wake_up();
  }
  /// Ready for another wait (ReadOp's, reused): leaves the reader if still parked there.
  void reset() noexcept {
    detach();
    if (error_) error_ = nullptr;  // (rarely set: no exception_ptr assignment then)
    rearm();
  }

 private:
  void on_cancel() noexcept override { detach(); }
  inline void detach() noexcept;

  StreamReaderState* s_;
  const char* func_;
  std::exception_ptr error_;
};

/// StreamReader::read(n) for n > 0 without a coroutine frame (Coro<std::string>::deferred):
/// each reader has one, which read() uses while no other Coro holds it (a read() made while
/// an earlier one is still held gets a coroutine frame, read_some). It does what read_some
/// does for n > 0, and waits in its own ReaderWait, reset for each use. The Coro keeps the
/// reader alive through keep_, until it is awaited, scheduled (frame(): read_some's frame) or
/// dropped. A task waiting in it is parked at its caller's await, so the task tree shows the
/// caller innermost.
class ReadOp final : public CoroOp<std::string> {
 public:
  explicit ReadOp(StreamReaderState& s) noexcept
      : CoroOp("StreamReader.read"), s_(&s), wait_(s, "read") {}
  ReadOp(const ReadOp&) = delete;
  ReadOp& operator=(const ReadOp&) = delete;
  ~ReadOp() = default;

  [[nodiscard]] bool busy() const noexcept { return keep_ != nullptr; }
  /// The next read(n); `keep` is the reader's own state.
  Coro<std::string> start(std::shared_ptr<StreamReaderState> keep, std::size_t n) noexcept {
    keep_ = std::move(keep);
    n_ = n;
    return Coro<std::string>::deferred(*this);
  }

  inline bool ready() override;
  void suspend(std::coroutine_handle<> caller) noexcept override {
    // ready() has checked what parking needs (a running task, LoopBinding::check).
    wait_.await_suspend(caller);
  }
  inline std::string finish() override;
  void release() noexcept override {
    wait_.reset();  // (a wait cancelled or never resumed leaves the reader here)
    const std::shared_ptr<StreamReaderState> keep = std::move(keep_);  // may free *this
  }
  std::coroutine_handle<CoroPromise<std::string>> frame() override {
    std::shared_ptr<StreamReaderState> keep = std::move(keep_);  // the frame holds it from here
    const std::size_t n = n_;
    release();
    return read_some(std::move(keep), static_cast<std::ptrdiff_t>(n)).release_for_task();
  }

 private:
  StreamReaderState* s_;
  std::shared_ptr<StreamReaderState> keep_;  // while a Coro holds the op
  std::size_t n_ = 0;
  ReaderWait wait_;
};

/// The shared state behind StreamReader handles. Python: StreamReader's attributes
class StreamReaderState {
 public:
  explicit StreamReaderState(std::size_t limit) : limit_(limit) {
    if (limit == 0) throw ValueError("Limit cannot be <= 0");
  }
  StreamReaderState(const StreamReaderState&) = delete;
  StreamReaderState& operator=(const StreamReaderState&) = delete;
  ~StreamReaderState() = default;

  // ---- The buffer: bytes [pos_, buf_.size()) of buf_ are unread ---------------------------
  [[nodiscard]] std::string_view view() const noexcept {
    return std::string_view(buf_).substr(pos_);
  }
  [[nodiscard]] std::size_t size() const noexcept { return buf_.size() - pos_; }
  /// Removes the first `n` (<= size()) bytes and returns them. Taking all of a buffer bigger
  /// than kKeepAtMost hands the buffer over; otherwise the bytes are copied out and the reader
  /// keeps its buffer for the next data. Handing a small buffer over would cost more: every
  /// connection's next data_received would allocate anew, 100 ready connections in a row, past
  /// what the allocator's per-thread cache holds, while the copy's string is freed by the
  /// reading task before the next one allocates (epoll echo: 1,503 -> 1,477 instructions per
  /// round trip, bench/RESULTS.md).
  std::string take(std::size_t n) {
    if (n == size() && pos_ == 0 && buf_.capacity() > kKeepAtMost) {
      return std::exchange(buf_, std::string());
    }
    return copy_out(n);
  }
  /// Forgets the first `n` (<= size()) bytes. The consumed prefix is erased only once it is at
  /// least half of the string (and not tiny), so a run of small reads costs no memmove each.
  void drop(std::size_t n) noexcept {
    pos_ += n;
    if (pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    } else if (pos_ >= kCompactAt && pos_ >= buf_.size() - pos_) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
  }
  void clear() noexcept {
    buf_.clear();
    pos_ = 0;
  }
  /// take() by copying: a function of its own so that the copy is made in the caller's string.
  std::string copy_out(std::size_t n) {
    std::string out(buf_.data() + pos_, n);
    drop(n);
    return out;
  }

  // ---- Feeding (the protocol, or by hand) ----------------------------------------------------
  /// Python: StreamReader.feed_data
  void feed_data(std::string_view data) {
    if (eof_) throw RuntimeError("feed_data after feed_eof");
    if (data.empty()) return;
    if (pos_ == buf_.size()) clear();
    buf_.append(data);
    wake();
    if (!paused_ && size() > 2 * limit_) {
      if (Transport* t = transport()) {
        t->pause_reading();
        paused_ = true;
      }
    }
  }
  /// Python: StreamReader.feed_eof
  void feed_eof() {
    eof_ = true;
    wake();
  }
  /// Python: StreamReader.set_exception
  void set_exception(std::exception_ptr exc) {
    exception_ = exc;
    wake(std::move(exc));
  }
  void set_transport(std::weak_ptr<BaseTransport> t) noexcept { transport_ = std::move(t); }
  /// take(n), then a paused transport resumes if the buffer is back under the limit: what each
  /// read ends with (Python: the slice, then _maybe_resume_transport).
  std::string consume(std::size_t n) {
    std::string out = take(n);
    maybe_resume_transport();
    return out;
  }
  /// Python: StreamReader._maybe_resume_transport
  void maybe_resume_transport() {
    if (paused_ && size() <= limit_) {
      paused_ = false;
      if (Transport* t = transport()) t->resume_reading();
    }
  }
  /// Before waiting for data: a paused transport would never bring any (readexactly(n) with n
  /// greater than the limit). Python: the start of StreamReader._wait_for_data
  void resume_before_wait() {
    if (paused_) {
      paused_ = false;
      if (Transport* t = transport()) t->resume_reading();
    }
  }
  void rethrow_if_failed() const {
    if (exception_) std::rethrow_exception(exception_);
  }

  [[nodiscard]] bool at_eof() const noexcept { return eof_ && size() == 0; }

  std::size_t limit_;
  bool eof_ = false;
  bool paused_ = false;
  std::exception_ptr exception_;
  ReaderWait* waiter_ = nullptr;  // the one task waiting for data (Python: _waiter)
  LoopBinding loop_;
  ReadOp read_op_{*this};

 private:
  static constexpr std::size_t kCompactAt = 4096;
  static constexpr std::size_t kKeepAtMost = 4096;  // see take()

  [[nodiscard]] Transport* transport() const noexcept {
    // The transport outlives every call made while it is alive; the lock only tells whether
    // it still is (a reader may outlive its connection).
    const std::shared_ptr<BaseTransport> t = transport_.lock();
    return static_cast<Transport*>(t.get());
  }
  /// Wakes the waiting read, if any, normally or with an error. Python: _wakeup_waiter
  inline void wake();
  inline void wake(std::exception_ptr error);

  std::string buf_;
  std::size_t pos_ = 0;
  std::weak_ptr<BaseTransport> transport_;
};

namespace {
[[noreturn]] void throw_second_waiter(const char* func) {
  throw RuntimeError(std::string(func) +
                     "() called while another coroutine is already waiting for incoming data");
}
}  // namespace

inline bool ReaderWait::await_ready() {
  // Two readers waiting at once could not know which gets the next data. Python raises the
  // same RuntimeError.
  if (s_->waiter_ != nullptr) [[unlikely]]
    throw_second_waiter(func_);
  s_->loop_.check("asyncio::StreamReader");  // RuntimeError outside a task
  s_->resume_before_wait();
  return false;
}
inline void ReaderWait::await_suspend(std::coroutine_handle<> h) {
  s_->waiter_ = this;
  park_running(h, "StreamReader wait");  // a pending cancellation detaches at once
}
inline void ReaderWait::detach() noexcept {
  if (s_->waiter_ == this) s_->waiter_ = nullptr;
}

inline bool ReadOp::ready() {
  s_->rethrow_if_failed();
  if (s_->size() != 0 || s_->eof_) return true;
  return wait_.await_ready();  // checks that a task runs: suspend() cannot fail
}
inline std::string ReadOp::finish() {
  struct Release {
    explicit Release(ReadOp* o) noexcept : op(o) {}
    Release(const Release&) = delete;
    Release& operator=(const Release&) = delete;
    ~Release() { op->release(); }  // after the result is made: it may free the reader
    ReadOp* op;
  } const end(this);
  wait_.await_resume();  // CancelledError, or the reader's error (nothing if it did not wait)
  return s_->consume(std::min(n_, s_->size()));
}

inline void StreamReaderState::wake() {
  if (ReaderWait* w = std::exchange(waiter_, nullptr)) w->wake();
}
inline void StreamReaderState::wake(std::exception_ptr error) {
  if (ReaderWait* w = std::exchange(waiter_, nullptr)) w->wake(std::move(error));
}

/// A task parked on one of the protocol's broadcast lists (drain, wait_closed), woken with an
/// error or not. Python: the futures of FlowControlMixin._drain_waiters and _closed.
class SignalWait final : public BroadcastWaiter {
 public:
  SignalWait(WaitList& list, LoopBinding& loop, const char* what) noexcept
      : list_(&list), loop_(&loop), what_(what) {}
  SignalWait(const SignalWait&) = delete;
  SignalWait& operator=(const SignalWait&) = delete;
  ~SignalWait() = default;

  bool await_ready() {
    loop_->check(what_);
    return false;
  }
  void await_suspend(std::coroutine_handle<> h) {
    list_->push_back(this);
    park_running(h, what_);
  }
  void await_resume() {
    check_orphaned();
    resume_check();
    if (error_) std::rethrow_exception(error_);
  }

  /// Wakes every waiter of `list`, each with `error` (null: a normal wake-up).
  static void wake_all(WaitList& list, const std::exception_ptr& error) {
    while (ListWaiter* w = list.pop_front()) {
      auto* sw = static_cast<SignalWait*>(w);
      sw->error_ = error;
      sw->wake_up();
    }
  }

 private:
  WaitList* list_;
  LoopBinding* loop_;
  const char* what_;
  std::exception_ptr error_;
};

/// The protocol of a stream connection: feeds the reader, implements drain()'s back-pressure
/// and wait_closed(), and on the server side starts the client_connected_cb task.
/// Python: StreamReaderProtocol (+ FlowControlMixin)
class StreamProtocol final : public Protocol, public std::enable_shared_from_this<StreamProtocol> {
 public:
  StreamProtocol(std::shared_ptr<StreamReaderState> reader,
                 std::shared_ptr<const ClientConnected> cb) noexcept
      : reader_(std::move(reader)), cb_(std::move(cb)) {}
  StreamProtocol(const StreamProtocol&) = delete;
  StreamProtocol& operator=(const StreamProtocol&) = delete;
  ~StreamProtocol() override = default;

  void connection_made(Transport& transport) override;
  void data_received(std::string_view data) override { reader_->feed_data(data); }
  /// Keeps the connection half-open: the writer may still write, then close().
  bool eof_received() override {
    reader_->feed_eof();
    return true;
  }
  void connection_lost(std::exception_ptr exc) override {
    if (exc) {
      reader_->set_exception(exc);
    } else {
      reader_->feed_eof();
    }
    reader_->set_transport({});
    closed_ = true;
    closed_error_ = exc;
    SignalWait::wake_all(closed_waiters_, exc);
    // Python's FlowControlMixin.connection_lost: paused drains end with the error, or normally.
    connection_lost_ = true;
    if (paused_) SignalWait::wake_all(drain_waiters_, exc);
    if (on_lost_) std::exchange(on_lost_, nullptr)();
  }
  /// Python: FlowControlMixin.pause_writing
  void pause_writing() override { paused_ = true; }
  /// Python: FlowControlMixin.resume_writing
  void resume_writing() override {
    paused_ = false;
    SignalWait::wake_all(drain_waiters_, nullptr);
  }

  // (What every round trip reads first: data_received(), drain().)
  std::shared_ptr<StreamReaderState> reader_;
  bool paused_ = false;
  bool connection_lost_ = false;
  bool server_side_ = false;                   // made by start_server (start_tls's side)
  std::shared_ptr<const ClientConnected> cb_;  // server side only, until connection_made()
  std::function<void()> on_lost_;              // a child's pipe: tells the Process
  WaitList drain_waiters_;
  bool closed_ = false;
  std::exception_ptr closed_error_;
  WaitList closed_waiters_;
  LoopBinding loop_;
};

/// The shared state behind StreamWriter handles; closes the connection when the last goes.
class StreamWriterState {
 public:
  StreamWriterState(std::shared_ptr<Transport> transport, std::shared_ptr<StreamProtocol> protocol,
                    std::shared_ptr<StreamReaderState> reader) noexcept
      : transport_(std::move(transport)),
        protocol_(std::move(protocol)),
        reader_(std::move(reader)) {}
  StreamWriterState(const StreamWriterState&) = delete;
  StreamWriterState& operator=(const StreamWriterState&) = delete;
  ~StreamWriterState() {
    try {
      if (transport_ && !transport_->is_closing()) transport_->close();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
    }
  }

  std::shared_ptr<Transport> transport_;
  std::shared_ptr<StreamProtocol> protocol_;
  std::shared_ptr<StreamReaderState> reader_;
};

namespace {

// ---- Reading (free coroutines: each holds the state, never a handle's `this`) ---------------

Coro<std::string> read_some(std::shared_ptr<StreamReaderState> s, std::ptrdiff_t n) {
  s->rethrow_if_failed();
  if (n == 0) co_return std::string();
  if (n < 0) {
    // Until EOF. Python reads limit-sized blocks; taking all that is buffered at each wake-up
    // gives the same bytes with fewer copies, and resumes a paused transport the same way.
    std::string all;
    for (;;) {
      s->rethrow_if_failed();
      if (s->size() == 0) {
        if (s->eof_) break;
        co_await ReaderWait(*s, "read");
        continue;
      }
      if (all.empty()) {
        all = s->take(s->size());
      } else {
        all.append(s->view());
        s->clear();
      }
      s->maybe_resume_transport();
    }
    co_return all;
  }
  if (s->size() == 0 && !s->eof_) co_await ReaderWait(*s, "read");
  co_return s->consume(std::min(static_cast<std::size_t>(n), s->size()));
}

Coro<std::string> read_exactly(std::shared_ptr<StreamReaderState> s, std::size_t n) {
  s->rethrow_if_failed();
  if (n == 0) co_return std::string();
  while (s->size() < n) {
    if (s->eof_) throw IncompleteReadError(s->take(s->size()), n);
    co_await ReaderWait(*s, "readexactly");
  }
  co_return s->consume(n);
}

/// Python: StreamReader.readuntil. The caller holds the state (and awaits this at once).
// NOLINTNEXTLINE(cppcoreguidelines-avoid-reference-coroutine-parameters): see above
Coro<std::string> read_until(StreamReaderState& s, std::string_view sep, const char* func) {
  if (sep.empty()) throw ValueError("Separator should be at least one-byte string");
  s.rethrow_if_failed();
  // `offset`: how far from the start the separator is known not to begin (so a separator split
  // across two chunks is still found, without rescanning everything each time).
  std::size_t offset = 0;
  std::size_t isep = std::string_view::npos;
  for (;;) {
    const std::size_t buflen = s.size();
    if (buflen >= offset + sep.size()) {
      isep = s.view().find(sep, offset);
      if (isep != std::string_view::npos) break;
      offset = buflen + 1 - sep.size();
      if (offset > s.limit_) {
        throw LimitOverrunError("Separator is not found, and chunk exceed the limit", offset);
      }
    }
    // A complete separator may come with the last chunk, so EOF is checked after the search.
    if (s.eof_) throw IncompleteReadError(s.take(s.size()), std::nullopt);
    co_await ReaderWait(s, func);
  }
  if (isep > s.limit_) {
    throw LimitOverrunError("Separator is found, but chunk is longer than limit", isep);
  }
  co_return s.consume(isep + sep.size());
}

Coro<std::string> read_until_owned(std::shared_ptr<StreamReaderState> s, std::string sep) {
  co_return co_await read_until(*s, sep, "readuntil");
}

Coro<std::string> read_line(std::shared_ptr<StreamReaderState> s) {
  std::string line;
  std::optional<std::string> overrun;  // LimitOverrunError's message
  try {
    line = co_await read_until(*s, "\n", "readline");
  } catch (IncompleteReadError& e) {
    line = std::move(e.partial);
  } catch (const LimitOverrunError& e) {
    // Python drops the too-long line: up to its "\n" when it is there, else all that is buffered.
    if (s->view().substr(std::min(e.consumed, s->size())).starts_with('\n')) {
      s->drop(e.consumed + 1);
    } else {
      s->clear();
    }
    s->maybe_resume_transport();
    overrun = e.what();
  }
  if (overrun) throw ValueError(*overrun);
  co_return line;
}

// ---- Writing -------------------------------------------------------------------------------

/// Python: StreamWriter.drain + FlowControlMixin._drain_helper
Coro<void> drain_writer(std::shared_ptr<StreamWriterState> s) {
  if (s->reader_) s->reader_->rethrow_if_failed();  // a child's stdin has no reader
  if (s->transport_->is_closing()) {
    // Let connection_lost() run, so that `write(); co_await drain();` in a loop sees the error
    // once the peer is gone instead of spinning (bpo-25441).
    co_await sleep(0);
  }
  StreamProtocol& p = *s->protocol_;
  if (p.connection_lost_) throw ConnectionResetError(ECONNRESET, "Connection lost");
  if (!p.paused_) co_return;
  co_await SignalWait(p.drain_waiters_, p.loop_, "StreamWriter.drain");
}

/// Python: StreamWriter.wait_closed (awaits StreamReaderProtocol._closed)
Coro<void> wait_writer_closed(std::shared_ptr<StreamWriterState> s) {
  StreamProtocol& p = *s->protocol_;
  if (p.closed_) {
    if (p.closed_error_) std::rethrow_exception(p.closed_error_);
    co_return;
  }
  co_await SignalWait(p.closed_waiters_, p.loop_, "StreamWriter.wait_closed");
}

/// Python: StreamWriter.start_tls: drain, then the TLS layer over the transport; the writer and
/// the reader go on over the new transport.
Coro<void> upgrade_writer(std::shared_ptr<StreamWriterState> s, TlsSettings settings) {
  co_await drain_writer(s);
  std::shared_ptr<Transport> t =
      co_await start_tls_on(s->transport_, s->protocol_, std::move(settings));
  s->reader_->set_transport(t->weak_from_this());
  s->transport_ = std::move(t);
}

// ---- Server side ---------------------------------------------------------------------------

/// Runs one client_connected_cb. An exception escaping it goes to the loop's exception handler
/// and closes the connection (Python: the done callback of StreamReaderProtocol._task); a
/// cancelled handler closes its connection too, then ends cancelled. Holds no stream handle
/// once the handler has them, so the handler's own copies decide when RAII closes.
Coro<void> serve_client(std::shared_ptr<const ClientConnected> cb, StreamReader reader,
                        StreamWriter writer, std::weak_ptr<BaseTransport> transport) {
  std::exception_ptr error;
  bool cancelled = false;
  try {
    co_await (*cb)(std::move(reader), std::move(writer));
  } catch (const CancelledError&) {
    cancelled = true;
    error = std::current_exception();
  } catch (...) {
    error = std::current_exception();
  }
  if (!error) co_return;
  if (!cancelled) {
    ExceptionContext ctx;
    ctx.message = "Unhandled exception in client_connected_cb";
    ctx.exception = error;
    ctx.task = current_task();
    get_running_loop().call_exception_handler(ctx);
  }
  if (const std::shared_ptr<BaseTransport> t = transport.lock()) t->close();
  if (cancelled) std::rethrow_exception(error);
}

}  // namespace

void StreamProtocol::connection_made(Transport& transport) {
  reader_->set_transport(transport.weak_from_this());
  if (!cb_) return;
  server_side_ = true;
  auto writer = std::make_shared<StreamWriterState>(
      std::static_pointer_cast<Transport>(transport.shared_from_this()), shared_from_this(),
      reader_);
  // The callback goes to the task: kept here, a writer that a callback's captures hold
  // (a chat server's list of clients) would keep itself alive through this protocol.
  get_running_loop().create_task(serve_client(std::move(cb_), StreamReader(reader_),
                                              StreamWriter(std::move(writer)),
                                              transport.weak_from_this()));
}

namespace {

/// A factory that hands out `protocol` (Python: `lambda: protocol`). Built in a plain function:
/// g++ 12 miscompiles some capturing lambdas built inside coroutine bodies.
std::function<std::shared_ptr<StreamProtocol>()> client_factory(
    std::shared_ptr<StreamProtocol> protocol) {
  return [protocol = std::move(protocol)] { return protocol; };
}

/// A factory making a reader and a server-side protocol per connection (Python: the `factory`
/// of start_server). ValueError at once if `limit` is 0.
ProtocolFactory server_factory(ClientConnected cb, std::size_t limit) {
  if (limit == 0) throw ValueError("Limit cannot be <= 0");
  auto shared_cb = std::make_shared<const ClientConnected>(std::move(cb));
  return [shared_cb = std::move(shared_cb), limit]() -> std::shared_ptr<BaseProtocol> {
    return std::make_shared<StreamProtocol>(std::make_shared<StreamReaderState>(limit), shared_cb);
  };
}

std::pair<StreamReader, StreamWriter> make_streams(Connection<StreamProtocol> c) {
  std::shared_ptr<StreamReaderState> reader = c.protocol->reader_;
  return {StreamReader(reader), StreamWriter(std::make_shared<StreamWriterState>(
                                    std::move(c.transport), std::move(c.protocol), reader))};
}

std::shared_ptr<StreamProtocol> client_protocol(std::size_t limit) {
  return std::make_shared<StreamProtocol>(std::make_shared<StreamReaderState>(limit), nullptr);
}

}  // namespace

StreamReader read_pipe_stream(EventLoop& loop, int fd, std::size_t limit,
                              std::function<void()> on_lost) {
  sys::Fd owned(fd);
  auto protocol = client_protocol(limit);  // ValueError for a zero limit: fd closed
  protocol->on_lost_ = std::move(on_lost);
  StreamReader reader(protocol->reader_);
  (void)make_pipe_transport(loop, owned.release(), Medium::read_pipe, std::move(protocol));
  return reader;
}

StreamWriter write_pipe_stream(EventLoop& loop, int fd, std::function<void()> on_lost) {
  sys::Fd owned(fd);
  auto protocol = client_protocol(kDefaultStreamLimit);
  protocol->on_lost_ = std::move(on_lost);
  std::shared_ptr<Transport> t =
      make_pipe_transport(loop, owned.release(), Medium::write_pipe, protocol);
  // The reader state is never fed (a write pipe reads nothing) and is not the writer's.
  return StreamWriter(
      std::make_shared<StreamWriterState>(std::move(t), std::move(protocol), nullptr));
}

}  // namespace detail

namespace {

[[noreturn]] void throw_empty(const char* what) {
  throw InvalidStateError(std::string("empty ") + what + " handle (moved from?)");
}

}  // namespace

// ---- StreamReader --------------------------------------------------------------------------

StreamReader::StreamReader(std::size_t limit)
    : state_(std::make_shared<detail::StreamReaderState>(limit)) {}

Coro<std::string> StreamReader::read(std::ptrdiff_t n) const {
  if (!state_) throw_empty("StreamReader");
  if (n > 0 && !state_->read_op_.busy()) {
    return state_->read_op_.start(state_, static_cast<std::size_t>(n));
  }
  return detail::read_some(state_, n);
}

Coro<std::string> StreamReader::readline() const {
  if (!state_) throw_empty("StreamReader");
  return detail::read_line(state_);
}

Coro<std::string> StreamReader::readexactly(std::size_t n) const {
  if (!state_) throw_empty("StreamReader");
  return detail::read_exactly(state_, n);
}

Coro<std::string> StreamReader::readuntil(std::string separator) const {
  if (!state_) throw_empty("StreamReader");
  return detail::read_until_owned(state_, std::move(separator));
}

bool StreamReader::at_eof() const noexcept {
  return !state_ || state_->at_eof();
}

void StreamReader::feed_data(std::string_view data) const {
  if (!state_) throw_empty("StreamReader");
  state_->feed_data(data);
}

void StreamReader::feed_eof() const {
  if (!state_) throw_empty("StreamReader");
  state_->feed_eof();
}

void StreamReader::set_exception(std::exception_ptr exc) const {
  if (!state_) throw_empty("StreamReader");
  state_->set_exception(std::move(exc));
}

std::exception_ptr StreamReader::exception() const noexcept {
  return state_ ? state_->exception_ : nullptr;
}

std::size_t StreamReader::limit() const noexcept {
  return state_ ? state_->limit_ : 0;
}

std::size_t StreamReader::buffered() const noexcept {
  return state_ ? state_->size() : 0;
}

// ---- StreamWriter --------------------------------------------------------------------------

void StreamWriter::write(std::string_view data) const {
  if (!state_) throw_empty("StreamWriter");
  state_->transport_->write(data);
}

void StreamWriter::writelines_views(std::span<const std::string_view> views) const {
  if (!state_) throw_empty("StreamWriter");
  state_->transport_->writelines(views);
}

Coro<void> StreamWriter::drain() const {
  if (!state_) throw_empty("StreamWriter");
  // The common case, nothing to wait for and nothing to report, needs no frame. The checks are
  // drain_writer's, made now rather than when the Coro is awaited: `drain()` is awaited at once
  // in practice, and a Coro made earlier only misses an error that came in between, which the
  // next read, write or drain reports (docs/python-mapping.md).
  const detail::StreamWriterState& s = *state_;
  if ((!s.reader_ || !s.reader_->exception_) && !s.protocol_->paused_ &&
      !s.protocol_->connection_lost_ && !s.transport_->is_closing()) {
    static constexpr detail::FinishedCoro kDrained{"asyncio::StreamWriter::drain"};
    return Coro<void>::finished(kDrained);
  }
  return detail::drain_writer(state_);
}

Coro<void> StreamWriter::start_tls(const ssl::SSLContext& ctx, StartTlsOptions options) const {
  if (!state_) throw_empty("StreamWriter");
  if (options.server_side) {
    throw ValueError("StreamWriter.start_tls() takes its side from the stream: leave server_side");
  }
  if (!state_->reader_) throw RuntimeError("start_tls() needs a stream that reads (not a pipe)");
  options.server_side = state_->protocol_->server_side_;
  detail::TlsSettings settings = detail::start_tls_settings(ctx, options);
  return detail::upgrade_writer(state_, std::move(settings));
}

void StreamWriter::write_eof() const {
  if (!state_) throw_empty("StreamWriter");
  state_->transport_->write_eof();
}

bool StreamWriter::can_write_eof() const noexcept {
  return state_ && state_->transport_->can_write_eof();
}

void StreamWriter::close() const {
  if (!state_) throw_empty("StreamWriter");
  state_->transport_->close();
}

Coro<void> StreamWriter::wait_closed() const {
  if (!state_) throw_empty("StreamWriter");
  return detail::wait_writer_closed(state_);
}

bool StreamWriter::is_closing() const noexcept {
  return !state_ || state_->transport_->is_closing();
}

std::any StreamWriter::get_extra_info(std::string_view name) const {
  if (!state_) throw_empty("StreamWriter");
  return state_->transport_->get_extra_info(name);
}

SocketAddress StreamWriter::peername() const {
  if (!state_) throw_empty("StreamWriter");
  return state_->transport_->peername();
}

SocketAddress StreamWriter::sockname() const {
  if (!state_) throw_empty("StreamWriter");
  return state_->transport_->sockname();
}

Transport& StreamWriter::transport() const noexcept {
  return *state_->transport_;
}

// ---- Opening streams -----------------------------------------------------------------------

Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, std::uint16_t port,
                                                            ConnectionOptions options) {
  auto protocol = detail::client_protocol(options.limit);
  auto conn =
      co_await create_connection(detail::client_factory(protocol), std::move(host), port, options);
  co_return detail::make_streams(std::move(conn));
}

Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path,
                                                                 ConnectionOptions options) {
  auto protocol = detail::client_protocol(options.limit);
  auto conn =
      co_await create_unix_connection(detail::client_factory(protocol), std::move(path), options);
  co_return detail::make_streams(std::move(conn));
}

Coro<Server> start_server(ClientConnected cb, std::string host, std::uint16_t port,
                          ServerOptions options) {
  ProtocolFactory factory = detail::server_factory(std::move(cb), options.limit);
  co_return co_await create_server(std::move(factory), std::move(host), port, options);
}

Coro<Server> start_unix_server(ClientConnected cb, std::string path, ServerOptions options) {
  ProtocolFactory factory = detail::server_factory(std::move(cb), options.limit);
  co_return co_await create_unix_server(std::move(factory), std::move(path), options);
}

}  // namespace asyncio
