// The TLS layer: a protocol over any plain transport that runs OpenSSL on its bytes, and the
// transport the application's protocol sees above it (Python: asyncio/sslproto.py's
// SSLProtocol and _SSLProtocolTransport). docs/design/tls.md.
//
// OpenSSL reads and writes through a BIO of our own instead of Python's two memory BIOs: its
// reads copy out of the buffer the plain transport received into (get_buffer/buffer_updated, so
// the io_uring engine receives straight into it), and its writes go straight to the plain
// transport's write(). That spares a copy each way.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/futures.hpp"
#include "asyncio/protocols.hpp"
#include "asyncio/ssl.hpp"
#include "asyncio/transports.hpp"
#include "ssl_detail.hpp"

namespace asyncio::detail {
namespace {
/// Python's check for a connection or server without `ssl`: TLS time-outs make no sense then.
void check_no_tls_timeouts(std::optional<double> handshake_timeout,
                           std::optional<double> shutdown_timeout) {
  if (handshake_timeout) throw ValueError("ssl_handshake_timeout is only meaningful with ssl");
  if (shutdown_timeout) throw ValueError("ssl_shutdown_timeout is only meaningful with ssl");
}
}  // namespace
}  // namespace asyncio::detail

#if ASYNCIO_HAS_OPENSSL

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace asyncio::detail {

namespace {

std::exception_ptr connection_error(int err, const std::string& what) {
  return make_os_error(err, what);
}

bool is_ip_address(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

/// Empties this thread's OpenSSL error queue before a call whose failure SSL_get_error()
/// classifies (a stale entry would turn a WANT_READ into an error). Usually empty already:
/// peeking is cheaper than ERR_clear_error()'s sweep of every slot.
void clear_errors() noexcept {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

/// True when OpenSSL has nothing left to decrypt: no received byte waits in `in` and none in its
/// own record buffer, so another SSL_read could only say WANT_READ.
bool drained(SSL* ssl, std::size_t unread) noexcept {
  return unread == 0 && SSL_has_pending(ssl) == 0;
}

double check_timeout(std::optional<double> t, double fallback, const char* name) {
  if (!t) return fallback;
  if (!(*t > 0)) {
    throw ValueError(std::string(name) + " should be a positive number, got " + std::to_string(*t));
  }
  return *t;
}

}  // namespace

class TlsTransport;

/// Python: sslproto.SSLProtocol
class TlsProtocol final : public BufferedProtocol,
                          public std::enable_shared_from_this<TlsProtocol> {
 public:
  enum class State : std::uint8_t { unwrapped, do_handshake, wrapped, flushing, shutdown };
  enum class AppState : std::uint8_t { init, con_made, eof, con_lost };

  TlsProtocol(EventLoop& loop, std::shared_ptr<BaseProtocol> app, TlsSettings settings,
              std::optional<Future<void>> waiter, bool call_connection_made);
  TlsProtocol(const TlsProtocol&) = delete;
  TlsProtocol& operator=(const TlsProtocol&) = delete;
  ~TlsProtocol() override;

  // -- The plain transport's protocol ----------------------------------------------------------
  void connection_made(Transport& transport) override;
  std::span<std::byte> get_buffer(std::size_t sizehint) override;
  void buffer_updated(std::size_t nbytes) override;
  bool eof_received() override;
  void connection_lost(std::exception_ptr exc) override;
  void pause_writing() override;
  void resume_writing() override;

  // -- What the application's transport asks -------------------------------------------------
  void write_appdata(std::span<const std::string_view> pieces);
  void start_shutdown();
  void abort_connection();
  void pause_app_reading();
  void resume_app_reading();
  [[nodiscard]] bool app_reading_paused() const noexcept { return app_reading_paused_; }
  [[nodiscard]] std::size_t write_buffer_size() const noexcept {
    return backlog_size_ + (plain_ != nullptr ? plain_->get_write_buffer_size() : 0);
  }
  [[nodiscard]] Transport* plain() const noexcept { return plain_; }
  [[nodiscard]] std::any extra_info(std::string_view name) const;
  void set_app_protocol(std::shared_ptr<BaseProtocol> app);
  [[nodiscard]] std::shared_ptr<BaseProtocol> app_protocol() const { return app_; }
  std::shared_ptr<TlsTransport> app_transport();

  // -- OpenSSL's BIO ---------------------------------------------------------------------------
  int bio_read(char* out, int len) noexcept;
  int bio_write(const char* data, int len) noexcept;

 private:
  void run();
  void step();
  void do_handshake();
  void handshake_complete(const std::exception_ptr& exc);
  void check_handshake_timeout();
  void do_read();
  void do_write();
  void do_shutdown();
  void shutdown_complete(const std::exception_ptr& exc);
  void call_eof_received();
  /// Aborts the connection; `exc` (unless an earlier error is pending) reaches connection_lost.
  void force_close(const std::exception_ptr& exc);
  /// force_close(), and an error other than an OSError goes to the exception handler.
  void fatal_error(const std::exception_ptr& exc, const char* message);
  void wake_waiter(std::exception_ptr exc);
  void control_app_writing();

  EventLoop* loop_;
  SSL* ssl_ = nullptr;
  TlsSettings settings_;
  std::shared_ptr<BaseProtocol> app_;
  Protocol* app_stream_ = nullptr;            // app_ as a Protocol,
  BufferedProtocol* app_buffered_ = nullptr;  // or as a BufferedProtocol
  std::shared_ptr<TlsTransport> app_transport_;
  Transport* plain_ = nullptr;  // the plain transport, which owns this protocol
  std::optional<Future<void>> waiter_;
  TimerHandle handshake_timer_;
  TimerHandle shutdown_timer_;
  std::exception_ptr pending_error_;  // for the connection_lost() of a fatal error's abort()

  State state_ = State::unwrapped;
  AppState app_state_;
  bool busy_ = false;   // run() is on the stack
  bool again_ = false;  // run() was asked for meanwhile
  bool eof_ = false;
  bool shutdown_done_ = false;
  bool app_reading_paused_ = false;
  bool plain_reading_paused_ = false;  // paused by us for the application
  bool app_writing_paused_ = false;
  bool plain_writing_paused_ = false;
  int conn_lost_ = 0;

  // Ciphertext received, not yet read by OpenSSL: [in_begin_, in_end_) of in_.
  std::vector<std::byte> in_;
  std::size_t in_begin_ = 0;
  std::size_t in_end_ = 0;
  std::size_t lent_ = 0;              // where the last get_buffer() began
  std::vector<char> plain_text_;      // what SSL_read decrypts, for a Protocol
  std::vector<std::string> backlog_;  // written during the handshake
  std::size_t backlog_size_ = 0;
};

/// Python: sslproto._SSLProtocolTransport
class TlsTransport final : public Transport {
 public:
  explicit TlsTransport(TlsProtocol& p) noexcept : p_(&p) {}
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;
  ~TlsTransport() override = default;

  [[nodiscard]] std::any get_extra_info(std::string_view name) const override {
    return p_ != nullptr ? p_->extra_info(name) : std::any();
  }
  [[nodiscard]] bool is_closing() const noexcept override { return closed_; }
  void close() override {
    if (closed_) return;
    closed_ = true;
    if (p_ != nullptr) p_->start_shutdown();
  }
  void set_protocol(std::shared_ptr<BaseProtocol> protocol) override {
    if (p_ == nullptr) throw RuntimeError("the TLS connection is gone");
    p_->set_app_protocol(std::move(protocol));
  }
  [[nodiscard]] std::shared_ptr<BaseProtocol> get_protocol() const override {
    return p_ != nullptr ? p_->app_protocol() : nullptr;
  }
  [[nodiscard]] bool is_reading() const noexcept override {
    return p_ != nullptr && !closed_ && !p_->app_reading_paused();
  }
  void pause_reading() override {
    if (p_ != nullptr && !closed_) p_->pause_app_reading();
  }
  void resume_reading() override {
    if (p_ != nullptr && !closed_) p_->resume_app_reading();
  }
  void write(std::string_view data) override {
    const std::string_view one[] = {data};
    writelines(std::span<const std::string_view>(one));
  }
  void writelines(std::span<const std::string_view> pieces) override {
    if (p_ != nullptr) p_->write_appdata(pieces);
  }
  /// TLS has no half-close here (Python raises NotImplementedError).
  void write_eof() override {
    throw RuntimeError(
        "write_eof() is not supported on a TLS transport (can_write_eof() is false)");
  }
  [[nodiscard]] bool can_write_eof() const noexcept override { return false; }
  void abort() override {
    closed_ = true;
    if (p_ != nullptr) p_->abort_connection();
  }
  [[nodiscard]] std::size_t get_write_buffer_size() const noexcept override {
    return p_ != nullptr ? p_->write_buffer_size() : 0;
  }
  [[nodiscard]] std::pair<std::size_t, std::size_t> get_write_buffer_limits()
      const noexcept override {
    if (p_ == nullptr || p_->plain() == nullptr) return {limits_low_, limits_high_};
    return p_->plain()->get_write_buffer_limits();
  }
  void set_write_buffer_limits(std::optional<std::size_t> high,
                               std::optional<std::size_t> low) override {
    if (p_ == nullptr || p_->plain() == nullptr) return;
    p_->plain()->set_write_buffer_limits(high, low);
  }

  TlsProtocol* p_;  // null once the protocol is gone
  bool closed_ = false;
  std::size_t limits_low_ = 16384;
  std::size_t limits_high_ = 65536;
};

// ---- The BIO -------------------------------------------------------------------------------

namespace {

int bio_write_cb(BIO* b, const char* data, int len) {
  BIO_clear_retry_flags(b);
  return static_cast<TlsProtocol*>(BIO_get_data(b))->bio_write(data, len);
}

int bio_read_cb(BIO* b, char* out, int len) {
  BIO_clear_retry_flags(b);
  const int n = static_cast<TlsProtocol*>(BIO_get_data(b))->bio_read(out, len);
  if (n < 0) BIO_set_retry_read(b);
  return n;
}

long bio_ctrl_cb(BIO* /*b*/, int cmd, long /*num*/, void* /*ptr*/) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int bio_create_cb(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

int bio_destroy_cb(BIO* /*b*/) {
  return 1;
}

BIO_METHOD* bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "asyncio-cpp");
    if (m == nullptr) return m;
    (void)BIO_meth_set_write(m, &bio_write_cb);
    (void)BIO_meth_set_read(m, &bio_read_cb);
    (void)BIO_meth_set_ctrl(m, &bio_ctrl_cb);
    (void)BIO_meth_set_create(m, &bio_create_cb);
    (void)BIO_meth_set_destroy(m, &bio_destroy_cb);
    return m;
  }();
  if (method == nullptr) throw RuntimeError("OpenSSL: cannot make the BIO method");
  return method;
}

constexpr std::size_t kInBufferSize = std::size_t{64} * 1024;   // ciphertext received at a time
constexpr std::size_t kPlainTextSize = std::size_t{64} * 1024;  // decrypted, per data_received()

}  // namespace

int TlsProtocol::bio_read(char* out, int len) noexcept {
  const std::size_t avail = in_end_ - in_begin_;
  if (avail == 0) return -1;
  const std::size_t n = std::min(avail, static_cast<std::size_t>(len));
  std::memcpy(out, in_.data() + in_begin_, n);
  in_begin_ += n;
  return static_cast<int>(n);
}

int TlsProtocol::bio_write(const char* data, int len) noexcept {
  if (plain_ == nullptr) return len;  // the connection is gone: dropped
  try {
    plain_->write(std::string_view(data, static_cast<std::size_t>(len)));
  } catch (...) {
    return -1;
  }
  return len;
}

// ---- Life --------------------------------------------------------------------------------

TlsProtocol::TlsProtocol(EventLoop& loop, std::shared_ptr<BaseProtocol> app, TlsSettings settings,
                         std::optional<Future<void>> waiter, bool call_connection_made)
    : loop_(&loop),
      settings_(std::move(settings)),
      waiter_(std::move(waiter)),
      app_state_(call_connection_made ? AppState::init : AppState::con_made) {
  set_app_protocol(std::move(app));
  ssl_ = new_ssl(settings_.context);
  BIO* bio = BIO_new(bio_method());
  if (bio == nullptr) {
    SSL_free(ssl_);
    std::rethrow_exception(ssl_error_from_queue(SSL_ERROR_SSL, "BIO_new"));
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // the SSL owns the BIO (once, for both directions)
  if (settings_.server_side) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
    const std::string& host = settings_.server_hostname;
    if (!host.empty()) {
      set_server_hostname(ssl_, host);
      const bool ip = is_ip_address(host);
      if (!ip) (void)SSL_set_tlsext_host_name(ssl_, host.c_str());  // SNI: names only
      if (settings_.context.check_hostname()) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
        const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                          : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
        if (ok != 1) {
          SSL_free(ssl_);
          ssl_ = nullptr;
          throw ValueError("invalid server_hostname '" + host + "'");
        }
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      }
    }
  }
}

TlsProtocol::~TlsProtocol() {
  if (app_transport_) app_transport_->p_ = nullptr;
  handshake_timer_.cancel();
  shutdown_timer_.cancel();
  if (ssl_ != nullptr) SSL_free(ssl_);
}

void TlsProtocol::set_app_protocol(std::shared_ptr<BaseProtocol> app) {
  if (auto* b = dynamic_cast<BufferedProtocol*>(app.get())) {
    app_buffered_ = b;
    app_stream_ = nullptr;
  } else if (auto* p = dynamic_cast<Protocol*>(app.get())) {
    app_stream_ = p;
    app_buffered_ = nullptr;
  } else {
    throw ValueError("a TLS transport needs a Protocol or a BufferedProtocol");
  }
  app_ = std::move(app);
}

std::shared_ptr<TlsTransport> TlsProtocol::app_transport() {
  if (!app_transport_) app_transport_ = std::make_shared<TlsTransport>(*this);
  return app_transport_;
}

std::any TlsProtocol::extra_info(std::string_view name) const {
  if (name == "sslcontext") return settings_.context;
  if (state_ == State::wrapped || state_ == State::flushing || state_ == State::shutdown) {
    if (name == "ssl_object") return ssl::SSLObject(ssl_);
    if (name == "peercert") {
      if (auto cert = ssl::SSLObject(ssl_).getpeercert()) return *std::move(cert);
      return {};
    }
    if (name == "cipher") {
      if (auto c = ssl::SSLObject(ssl_).cipher()) return *std::move(c);
      return {};
    }
  }
  if (name == "ssl_object" || name == "peercert" || name == "cipher" || name == "compression") {
    return {};
  }
  return plain_ != nullptr ? plain_->get_extra_info(name) : std::any();
}

// ---- Events from the plain transport -------------------------------------------------------

void TlsProtocol::connection_made(Transport& transport) {
  plain_ = &transport;
  state_ = State::do_handshake;
  std::weak_ptr<TlsProtocol> weak = weak_from_this();
  handshake_timer_ = loop_->call_later(settings_.handshake_timeout, [weak] {
    if (auto self = weak.lock()) self->check_handshake_timeout();
  });
  run();
}

std::span<std::byte> TlsProtocol::get_buffer(std::size_t /*sizehint*/) {
  if (in_begin_ == in_end_) {
    in_begin_ = in_end_ = 0;
  } else if (in_begin_ > 0 && in_.size() - in_end_ < kInBufferSize / 4) {
    std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
    in_end_ -= in_begin_;
    in_begin_ = 0;
  }
  if (in_.size() < kInBufferSize) in_.resize(kInBufferSize);
  if (in_.size() - in_end_ < kInBufferSize / 4) in_.resize(in_.size() * 2);
  lent_ = in_end_;
  return {in_.data() + in_end_, in_.size() - in_end_};
}

void TlsProtocol::buffer_updated(std::size_t nbytes) {
  in_end_ = lent_ + nbytes;
  run();
}

bool TlsProtocol::eof_received() {
  eof_ = true;
  switch (state_) {
    case State::do_handshake:
      handshake_complete(connection_error(ECONNRESET, "the peer closed during the TLS handshake"));
      break;
    case State::wrapped:
      state_ = State::flushing;
      if (app_reading_paused_) return true;  // finished by resume_reading()
      run();
      break;
    case State::flushing:
      state_ = State::shutdown;
      run();
      break;
    case State::shutdown:
      run();
      break;
    case State::unwrapped:
      break;
  }
  return false;
}

void TlsProtocol::connection_lost(std::exception_ptr exc) {
  if (!exc) exc = std::exchange(pending_error_, nullptr);
  backlog_.clear();
  backlog_size_ = 0;
  ++conn_lost_;
  if (app_transport_) app_transport_->closed_ = true;
  handshake_timer_.cancel();
  shutdown_timer_.cancel();
  state_ = State::unwrapped;
  plain_ = nullptr;
  std::shared_ptr<BaseProtocol> app = std::move(app_);
  app_stream_ = nullptr;
  app_buffered_ = nullptr;
  wake_waiter(
      exc ? exc : connection_error(ECONNRESET, "the connection was lost during the TLS handshake"));
  // Python skips the application when the connection dies during the handshake; an application
  // that already had connection_made() (start_tls) still gets its one connection_lost() here.
  if (app_state_ == AppState::con_made || app_state_ == AppState::eof) {
    app_state_ = AppState::con_lost;
    app->connection_lost(exc);  // from the loop already: the plain transport's lost callback
  }
}

void TlsProtocol::pause_writing() {
  plain_writing_paused_ = true;
  control_app_writing();
}

void TlsProtocol::resume_writing() {
  plain_writing_paused_ = false;
  control_app_writing();
}

/// The application is paused while the plain transport is, or while more than the plain
/// transport's high-water mark waits for the handshake.
void TlsProtocol::control_app_writing() {
  const bool full = plain_writing_paused_ ||
                    (plain_ != nullptr && backlog_size_ > plain_->get_write_buffer_limits().second);
  if (full == app_writing_paused_ || !app_) return;
  app_writing_paused_ = full;
  try {
    if (full) {
      app_->pause_writing();
    } else {
      app_->resume_writing();
    }
  } catch (...) {
    ExceptionContext c;
    c.message = full ? "protocol.pause_writing() failed" : "protocol.resume_writing() failed";
    c.exception = std::current_exception();
    loop_->call_exception_handler(c);
  }
}

// ---- The state machine ---------------------------------------------------------------------

/// Runs the state machine until it has nothing more to do. Never re-entered: a call made while
/// it runs (a protocol callback that closes the transport) is taken up by the running one.
void TlsProtocol::run() {
  if (busy_) {
    again_ = true;
    return;
  }
  busy_ = true;
  // Keeps this alive through callbacks that may drop the last other reference.
  const std::shared_ptr<TlsProtocol> self = shared_from_this();
  try {
    do {
      again_ = false;
      step();
    } while (again_);
  } catch (...) {
    busy_ = false;
    throw;
  }
  busy_ = false;
}

void TlsProtocol::step() {
  switch (state_) {
    case State::do_handshake:
      do_handshake();
      break;
    case State::wrapped:
      do_read();
      break;
    case State::flushing:
      // Python's _do_flush: deliver what was received, then shut down.
      do_read();
      if (state_ == State::flushing) {
        state_ = State::shutdown;
        again_ = true;
      }
      break;
    case State::shutdown:
      do_shutdown();
      break;
    case State::unwrapped:
      break;
  }
}

void TlsProtocol::do_handshake() {
  clear_errors();
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) return handshake_complete(nullptr);
  const int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
  handshake_complete(ssl_connection_error(ssl_, e, settings_.server_hostname));
}

void TlsProtocol::handshake_complete(const std::exception_ptr& exc) {
  handshake_timer_.cancel();
  if (exc) {
    state_ = State::unwrapped;
    fatal_error(exc, "SSL handshake failed");
    wake_waiter(exc);
    return;
  }
  state_ = State::wrapped;
  if (app_state_ == AppState::init) {
    app_state_ = AppState::con_made;
    std::shared_ptr<TlsTransport> t = app_transport();
    try {
      if (app_stream_ != nullptr) {
        app_stream_->connection_made(*t);
      } else {
        app_buffered_->connection_made(*t);
      }
    } catch (...) {
      fatal_error(std::current_exception(), "Fatal error: protocol.connection_made() call failed.");
      wake_waiter(std::current_exception());
      return;
    }
  }
  wake_waiter(nullptr);
  do_write();
  again_ = true;  // read what came with the handshake's last flight
}

void TlsProtocol::check_handshake_timeout() {
  if (state_ != State::do_handshake) return;
  auto exc = std::make_exception_ptr(
      ConnectionAbortedError(ECONNABORTED, "SSL handshake is taking longer than " +
                                               std::to_string(settings_.handshake_timeout) +
                                               " seconds: aborting the connection"));
  fatal_error(exc, "SSL handshake timed out");
}

void TlsProtocol::wake_waiter(std::exception_ptr exc) {
  if (!waiter_) return;
  Future<void> w = std::move(*waiter_);
  waiter_.reset();
  if (w.done()) return;  // cancelled
  if (exc) {
    w.set_exception(std::move(exc));
  } else {
    w.set_result();
  }
}

void TlsProtocol::do_read() {
  if (app_reading_paused_ || !app_) return;
  int last = 1;
  int err = SSL_ERROR_NONE;
  if (app_buffered_ != nullptr) {
    // Python's _do_read__buffered: decrypt straight into the application's buffer.
    while (state_ == State::wrapped || state_ == State::flushing) {
      if (app_reading_paused_ || app_buffered_ == nullptr) return;
      std::span<std::byte> buf = app_buffered_->get_buffer(kPlainTextSize);
      if (buf.empty()) throw RuntimeError("get_buffer() returned an empty buffer");
      std::size_t got = 0;
      clear_errors();
      last = SSL_read_ex(ssl_, buf.data(), buf.size(), &got);
      if (last != 1) {
        err = SSL_get_error(ssl_, last);
        break;
      }
      app_buffered_->buffer_updated(got);
      if (drained(ssl_, in_end_ - in_begin_)) {
        last = 0;
        err = SSL_ERROR_WANT_READ;
        break;
      }
    }
  } else {
    // Python's _do_read__copied: everything available in one data_received() per buffer.
    if (plain_text_.size() < kPlainTextSize) plain_text_.resize(kPlainTextSize);
    while (state_ == State::wrapped || state_ == State::flushing) {
      if (app_reading_paused_ || app_stream_ == nullptr) return;
      std::size_t filled = 0;
      while (filled < plain_text_.size()) {
        std::size_t got = 0;
        clear_errors();
        last = SSL_read_ex(ssl_, plain_text_.data() + filled, plain_text_.size() - filled, &got);
        if (last != 1) {
          err = SSL_get_error(ssl_, last);
          break;
        }
        filled += got;
        if (drained(ssl_, in_end_ - in_begin_)) {
          last = 0;
          err = SSL_ERROR_WANT_READ;
          break;
        }
      }
      if (filled > 0) app_stream_->data_received(std::string_view(plain_text_.data(), filled));
      if (last != 1) break;
    }
  }
  if (last == 1) return;
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
  if (err == SSL_ERROR_ZERO_RETURN) {  // the peer's close_notify
    call_eof_received();
    start_shutdown();
    return;
  }
  fatal_error(ssl_connection_error(ssl_, err, settings_.server_hostname),
              "Fatal error on SSL protocol");
}

void TlsProtocol::do_write() {
  if (backlog_.empty()) return;
  std::vector<std::string> pending = std::move(backlog_);
  backlog_.clear();
  backlog_size_ = 0;
  std::vector<std::string_view> views(pending.begin(), pending.end());
  write_appdata(views);
  control_app_writing();
}

void TlsProtocol::write_appdata(std::span<const std::string_view> pieces) {
  if (state_ == State::do_handshake) {
    for (std::string_view p : pieces) {
      if (p.empty()) continue;
      backlog_.emplace_back(p);
      backlog_size_ += p.size();
    }
    control_app_writing();
    return;
  }
  if (state_ != State::wrapped) {
    ++conn_lost_;  // Python: dropped ("SSL connection is closed" after a few)
    return;
  }
  for (std::string_view p : pieces) {
    while (!p.empty()) {
      std::size_t written = 0;
      clear_errors();
      const int r = SSL_write_ex(ssl_, p.data(), p.size(), &written);
      if (r != 1) {
        const int e = SSL_get_error(ssl_, r);
        fatal_error(ssl_connection_error(ssl_, e, settings_.server_hostname),
                    "Fatal error on SSL protocol");
        return;
      }
      p.remove_prefix(written);
    }
    if (state_ != State::wrapped) return;
  }
}

void TlsProtocol::call_eof_received() {
  if (app_state_ != AppState::con_made) return;
  app_state_ = AppState::eof;
  // Its answer is ignored: TLS closes both ways (Python warns when it is true).
  if (app_stream_ != nullptr) {
    (void)app_stream_->eof_received();
  } else if (app_buffered_ != nullptr) {
    (void)app_buffered_->eof_received();
  }
}

void TlsProtocol::start_shutdown() {
  if (state_ == State::flushing || state_ == State::shutdown || state_ == State::unwrapped) {
    return;
  }
  if (app_transport_) app_transport_->closed_ = true;
  if (state_ == State::do_handshake) {
    abort_connection();
    return;
  }
  state_ = State::flushing;
  std::weak_ptr<TlsProtocol> weak = weak_from_this();
  shutdown_timer_ = loop_->call_later(settings_.shutdown_timeout, [weak] {
    auto self = weak.lock();
    if (!self || self->shutdown_done_ || self->plain_ == nullptr) return;
    if (self->state_ == State::flushing || self->state_ == State::shutdown) {
      // Python's _check_shutdown_timeout: the connection is force-closed, the error goes to
      // connection_lost() and nothing to the exception handler.
      self->force_close(std::make_exception_ptr(TimeoutError("SSL shutdown timed out")));
    }
  });
  run();
}

void TlsProtocol::do_shutdown() {
  if (shutdown_done_) return;
  if (!eof_) {
    clear_errors();
    int r = SSL_shutdown(ssl_);
    if (r == 0) r = SSL_shutdown(ssl_);  // sent ours; now wait for the peer's (Python's unwrap)
    if (r != 1) {
      const int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
      shutdown_complete(ssl_connection_error(ssl_, e, settings_.server_hostname));
      return;
    }
  }
  call_eof_received();
  shutdown_complete(nullptr);
}

void TlsProtocol::shutdown_complete(const std::exception_ptr& exc) {
  shutdown_done_ = true;
  shutdown_timer_.cancel();
  if (exc) {
    fatal_error(exc, "SSL shutdown failed");
  } else if (plain_ != nullptr) {
    plain_->close();
  }
}

void TlsProtocol::abort_connection() {
  state_ = State::unwrapped;
  if (plain_ != nullptr) plain_->abort();
}

void TlsProtocol::pause_app_reading() {
  if (app_reading_paused_) return;
  app_reading_paused_ = true;
  if (state_ == State::wrapped && plain_ != nullptr && plain_->is_reading()) {
    plain_->pause_reading();
    plain_reading_paused_ = true;
  }
}

void TlsProtocol::resume_app_reading() {
  if (!app_reading_paused_) return;
  app_reading_paused_ = false;
  if (plain_reading_paused_ && plain_ != nullptr) {
    plain_reading_paused_ = false;
    plain_->resume_reading();
  }
  // What is already decrypted or buffered is delivered from the loop, as Python does.
  std::weak_ptr<TlsProtocol> weak = weak_from_this();
  (void)loop_->call_soon([weak] {
    if (auto self = weak.lock()) self->run();
  });
}

void TlsProtocol::force_close(const std::exception_ptr& exc) {
  if (plain_ != nullptr) {
    if (!pending_error_) pending_error_ = exc;
    plain_->abort();
  }
}

void TlsProtocol::fatal_error(const std::exception_ptr& exc, const char* message) {
  force_close(exc);
  try {
    std::rethrow_exception(exc);
  } catch (const OSError&) {  // Python: logged only in debug mode
  } catch (...) {
    ExceptionContext c;
    c.message = message;
    c.exception = exc;
    loop_->call_exception_handler(c);
  }
}

// ---- Entry points --------------------------------------------------------------------------

namespace {

ssl::SSLContext context_of(const ssl::ContextRef& ref) {
  if (ref.context() != nullptr) return *ref.context();
  return ssl::create_default_context();
}

}  // namespace

std::optional<TlsSettings> client_tls(const ConnectionOptions& options, std::string_view host) {
  if (!options.ssl) {
    if (options.server_hostname) throw ValueError("server_hostname is only meaningful with ssl");
    check_no_tls_timeouts(options.ssl_handshake_timeout, options.ssl_shutdown_timeout);
    return std::nullopt;
  }
  TlsSettings s{context_of(options.ssl), false, {}, 60.0, 30.0};
  if (s.context.server_side()) {
    throw ValueError("a client connection needs a client context (PROTOCOL_TLS_CLIENT)");
  }
  s.handshake_timeout = check_timeout(options.ssl_handshake_timeout, 60.0, "ssl_handshake_timeout");
  s.shutdown_timeout = check_timeout(options.ssl_shutdown_timeout, 30.0, "ssl_shutdown_timeout");
  if (options.server_hostname) {
    s.server_hostname = std::string(*options.server_hostname);
  } else {
    if (host.empty())
      throw ValueError("You must set server_hostname when using ssl without a host");
    s.server_hostname = std::string(host);
  }
  if (s.server_hostname.empty() && s.context.check_hostname()) {
    throw ValueError("check_hostname requires server_hostname");
  }
  return s;
}

std::optional<TlsSettings> server_tls(const ssl::ContextRef& ssl,
                                      std::optional<double> handshake_timeout,
                                      std::optional<double> shutdown_timeout) {
  if (!ssl) {
    check_no_tls_timeouts(handshake_timeout, shutdown_timeout);
    return std::nullopt;
  }
  if (ssl.context() == nullptr) throw ValueError("Server side SSL needs a valid SSLContext");
  TlsSettings s{*ssl.context(), true, {}, 60.0, 30.0};
  if (!s.context.server_side()) {
    throw ValueError("a server needs a server context (PROTOCOL_TLS_SERVER)");
  }
  s.handshake_timeout = check_timeout(handshake_timeout, 60.0, "ssl_handshake_timeout");
  s.shutdown_timeout = check_timeout(shutdown_timeout, 30.0, "ssl_shutdown_timeout");
  return s;
}

std::optional<TlsSettings> server_tls(const ServerOptions& options) {
  return server_tls(options.ssl, options.ssl_handshake_timeout, options.ssl_shutdown_timeout);
}

TlsSettings start_tls_settings(const ssl::SSLContext& ctx, const StartTlsOptions& options) {
  TlsSettings s{ctx, options.server_side, {}, 60.0, 30.0};
  if (s.context.server_side() != options.server_side) {
    throw ValueError(options.server_side ? "the server side of start_tls() needs a server context"
                                         : "the client side of start_tls() needs a client context");
  }
  s.handshake_timeout = check_timeout(options.ssl_handshake_timeout, 60.0, "ssl_handshake_timeout");
  s.shutdown_timeout = check_timeout(options.ssl_shutdown_timeout, 30.0, "ssl_shutdown_timeout");
  if (options.server_hostname) {
    if (options.server_side) throw ValueError("server_hostname is only meaningful for a client");
    s.server_hostname = std::string(*options.server_hostname);
  }
  if (!options.server_side && s.server_hostname.empty() && s.context.check_hostname()) {
    throw ValueError("check_hostname requires server_hostname");
  }
  return s;
}

Coro<std::shared_ptr<Transport>> start_tls_on(std::shared_ptr<Transport> transport,
                                              std::shared_ptr<BaseProtocol> protocol,
                                              TlsSettings settings) {
  if (!transport || !protocol) throw ValueError("start_tls() needs a transport and a protocol");
  if (is_tls_transport(*transport)) {
    throw RuntimeError("start_tls() over a TLS transport is not supported");
  }
  // Python: TypeError for a transport that is not _start_tls_compatible (a pipe's, or one of
  // the application's own): only a socket transport takes TLS.
  if (!transport->get_extra_info("socket").has_value()) {
    throw RuntimeError("the transport is not supported by start_tls(): not a socket transport");
  }
  EventLoop& loop = get_running_loop();
  Future<void> waiter = loop.create_future<void>();
  std::shared_ptr<BufferedProtocol> tls =
      make_tls_protocol(loop, std::move(protocol), std::move(settings), waiter, false);
  // Python's order: no read meanwhile, the TLS layer becomes the protocol, the handshake starts.
  transport->pause_reading();
  transport->set_protocol(tls);
  tls->connection_made(*transport);
  transport->resume_reading();
  try {
    co_await waiter;
  } catch (...) {
    transport->close();
    throw;
  }
  co_return tls_app_transport(*tls);
}

std::shared_ptr<BufferedProtocol> make_tls_protocol(EventLoop& loop,
                                                    std::shared_ptr<BaseProtocol> app,
                                                    TlsSettings settings,
                                                    std::optional<Future<void>> waiter,
                                                    bool call_connection_made) {
  return std::make_shared<TlsProtocol>(loop, std::move(app), std::move(settings), std::move(waiter),
                                       call_connection_made);
}

std::shared_ptr<Transport> tls_app_transport(BufferedProtocol& tls) {
  return static_cast<TlsProtocol&>(tls).app_transport();
}

bool is_tls_transport(const Transport& t) noexcept {
  return dynamic_cast<const TlsTransport*>(&t) != nullptr;
}

}  // namespace asyncio::detail

namespace asyncio {

Coro<std::shared_ptr<Transport>> start_tls(std::shared_ptr<Transport> transport,
                                           std::shared_ptr<BaseProtocol> protocol,
                                           const ssl::SSLContext& ctx, StartTlsOptions options) {
  detail::TlsSettings settings = detail::start_tls_settings(ctx, options);
  return detail::start_tls_on(std::move(transport), std::move(protocol), std::move(settings));
}

}  // namespace asyncio

#else  // built without OpenSSL

namespace asyncio::detail {

namespace {
[[noreturn]] void unavailable() {
  throw RuntimeError("asyncio-cpp was built without OpenSSL: TLS is not available");
}
}  // namespace

std::optional<TlsSettings> client_tls(const ConnectionOptions& options, std::string_view) {
  if (options.ssl) unavailable();
  if (options.server_hostname) throw ValueError("server_hostname is only meaningful with ssl");
  return std::nullopt;
}
std::optional<TlsSettings> server_tls(const ssl::ContextRef& ssl,
                                      std::optional<double> handshake_timeout,
                                      std::optional<double> shutdown_timeout) {
  if (ssl) unavailable();
  check_no_tls_timeouts(handshake_timeout, shutdown_timeout);
  return std::nullopt;
}
std::optional<TlsSettings> server_tls(const ServerOptions& options) {
  return server_tls(options.ssl, options.ssl_handshake_timeout, options.ssl_shutdown_timeout);
}
std::shared_ptr<BufferedProtocol> make_tls_protocol(EventLoop&, std::shared_ptr<BaseProtocol>,
                                                    TlsSettings, std::optional<Future<void>>,
                                                    bool) {
  unavailable();
}
std::shared_ptr<Transport> tls_app_transport(BufferedProtocol&) {
  unavailable();
}
bool is_tls_transport(const Transport&) noexcept {
  return false;
}
TlsSettings start_tls_settings(const ssl::SSLContext&, const StartTlsOptions&) {
  unavailable();
}
Coro<std::shared_ptr<Transport>> start_tls_on(std::shared_ptr<Transport>,
                                              std::shared_ptr<BaseProtocol>, TlsSettings) {
  unavailable();
}

}  // namespace asyncio::detail

namespace asyncio {

Coro<std::shared_ptr<Transport>> start_tls(std::shared_ptr<Transport>,
                                           std::shared_ptr<BaseProtocol>, const ssl::SSLContext&,
                                           StartTlsOptions) {
  throw RuntimeError("asyncio-cpp was built without OpenSSL: TLS is not available");
}

}  // namespace asyncio

#endif
