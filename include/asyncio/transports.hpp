// asyncio/transports.hpp - stream transports, connections and servers (Python:
// asyncio/transports.py, loop.create_connection, loop.create_server, loop.create_unix_connection,
// loop.create_unix_server, loop.connect_accepted_socket, loop.connect_read_pipe,
// loop.connect_write_pipe, asyncio.Server).
//
// Ownership (docs/design/io.md, "Transports"):
//   * A transport is shared-owned (std::shared_ptr<Transport>). The loop holds a reference from
//     the moment the transport exists until its protocol's connection_lost() has returned, so an
//     open transport never disappears under its protocol; the caller of create_connection() gets
//     another. Once closed, every method is harmless (writes are dropped, as Python drops them
//     once the connection is lost).
//   * The transport holds its protocol (std::shared_ptr) until connection_lost() has returned,
//     then lets go of it: a protocol may keep a shared_ptr to its transport without a cycle
//     outliving the connection.
//   * A loop that closes with transports still open closes their sockets without calling their
//     protocols (Python leaves them to the garbage collector with a ResourceWarning).
//   * Everything here belongs to the loop that created it: call it on that loop's thread.
#pragma once

#include <any>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/socket.h>

#include "asyncio/coroutines.hpp"
#include "asyncio/protocols.hpp"
#include "asyncio/sockets.hpp"

namespace asyncio {

class EventLoop;

namespace ssl {
class SSLContext;

/// What the `.ssl` option holds: a context (`.ssl = ctx`), or `true` for
/// ssl::create_default_context() (a client's). It refers to the context, which must outlive the
/// call it is passed to (a server copies the handle it keeps); a temporary context is refused at
/// compile time. Trivially copyable, as the option structs must be. Python: ssl=
class ContextRef {
 public:
  constexpr ContextRef() noexcept = default;
  ContextRef(const SSLContext& ctx) noexcept : ctx_(&ctx), on_(true) {}  // NOLINT: implicit
  ContextRef(const SSLContext* ctx) noexcept : ctx_(ctx), on_(ctx != nullptr) {}  // NOLINT
  ContextRef(SSLContext&&) = delete;  // would dangle: name the context first
  template <class B>
  requires std::is_same_v<B, bool>
  constexpr ContextRef(B on) noexcept : on_(on) {}  // NOLINT: `.ssl = true`
  /// True when TLS is asked for.
  explicit operator bool() const noexcept { return on_; }
  /// The context (null with `.ssl = true`: the default one).
  [[nodiscard]] const SSLContext* context() const noexcept { return ctx_; }

 private:
  const SSLContext* ctx_ = nullptr;
  bool on_ = false;
};
}  // namespace ssl

/// Python: asyncio.BaseTransport
class BaseTransport : public std::enable_shared_from_this<BaseTransport> {
 public:
  BaseTransport() = default;
  BaseTransport(const BaseTransport&) = delete;
  BaseTransport& operator=(const BaseTransport&) = delete;
  virtual ~BaseTransport() = default;

  /// Optional information about the connection, empty when unknown: "peername" and "sockname"
  /// (SocketAddress), "socket" (int, the fd; -1 once closed); over TLS also "sslcontext"
  /// (ssl::SSLContext), "ssl_object" (ssl::SSLObject), "peercert" (ssl::Certificate, when the
  /// peer sent one), "cipher" (ssl::Cipher). Python: get_extra_info(name)
  [[nodiscard]] virtual std::any get_extra_info(std::string_view name) const = 0;
  /// True once close() or abort() was called or the connection was lost. Python: is_closing()
  [[nodiscard]] virtual bool is_closing() const noexcept = 0;
  /// Closes after the buffered data is sent; then calls connection_lost(nullptr) (from the
  /// loop). Python: close()
  virtual void close() = 0;
  /// Replaces the protocol that receives the callbacks (a Protocol or BufferedProtocol; ValueError
  /// otherwise). Python: set_protocol(protocol)
  virtual void set_protocol(std::shared_ptr<BaseProtocol> protocol) = 0;
  /// The protocol (null once connection_lost() has run). Python: get_protocol()
  [[nodiscard]] virtual std::shared_ptr<BaseProtocol> get_protocol() const = 0;

  /// get_extra_info("peername") (an empty SocketAddress when unknown or not connected).
  [[nodiscard]] SocketAddress peername() const;
  /// get_extra_info("sockname").
  [[nodiscard]] SocketAddress sockname() const;
};

/// A bidirectional stream transport (a TCP or Unix-domain connection). Python: asyncio.Transport
/// (ReadTransport + WriteTransport)
class Transport : public BaseTransport {
 public:
  // -- Reading ------------------------------------------------------------------------------
  /// False after pause_reading() (and once closing). Python: is_reading()
  [[nodiscard]] virtual bool is_reading() const noexcept = 0;
  /// Stops calling data_received()/buffer_updated() until resume_reading(). Python:
  /// pause_reading()
  virtual void pause_reading() = 0;
  /// Python: resume_reading()
  virtual void resume_reading() = 0;

  // -- Writing ------------------------------------------------------------------------------
  /// Sends `data` (copied; sent at once when the buffer is empty and the socket takes it, else
  /// buffered). Never blocks; above the high-water mark the protocol's pause_writing() is called.
  /// RuntimeError after write_eof(). Python: write(data)
  virtual void write(std::string_view data) = 0;
  /// Writes the pieces as one write (one system call when they fit). Python: writelines(list)
  virtual void writelines(std::span<const std::string_view> pieces) = 0;
  /// Any range of things convertible to std::string_view. Python: writelines(list_of_data)
  template <std::ranges::input_range R>
  requires std::is_convertible_v<std::ranges::range_reference_t<R>, std::string_view> &&
           (!std::is_same_v<std::remove_cvref_t<R>, std::span<const std::string_view>>)
  void writelines(R&& pieces) {
    std::vector<std::string_view> views;
    for (auto&& p : pieces) views.emplace_back(p);
    writelines(std::span<const std::string_view>(views));
  }
  /// Closes the write side once the buffer is sent (shutdown(SHUT_WR)); reading goes on.
  /// Python: write_eof()
  virtual void write_eof() = 0;
  /// Python: can_write_eof()
  [[nodiscard]] virtual bool can_write_eof() const noexcept = 0;
  /// Closes at once, dropping buffered data; connection_lost(nullptr) follows. Python: abort()
  virtual void abort() = 0;
  /// Bytes buffered, not yet sent. Python: get_write_buffer_size()
  [[nodiscard]] virtual std::size_t get_write_buffer_size() const noexcept = 0;
  /// The (low, high) water marks. Python: get_write_buffer_limits()
  [[nodiscard]] virtual std::pair<std::size_t, std::size_t> get_write_buffer_limits()
      const noexcept = 0;
  /// Sets the water marks: `high` defaults to 64 KiB (4 × low when only low is given), `low`
  /// to high / 4. ValueError unless high >= low. Python: set_write_buffer_limits(high, low)
  virtual void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                       std::optional<std::size_t> low = std::nullopt) = 0;
};

/// A datagram endpoint (UDP, or a Unix datagram socket). Python: asyncio.DatagramTransport
class DatagramTransport : public BaseTransport {
 public:
  /// Sends `data` as one datagram to `addr` (to the remote address when connected: `addr` must
  /// then be empty or that address, else ValueError). Sent at once when the socket takes it,
  /// else buffered; a send that fails goes to the protocol's error_received(). An empty `data`
  /// sends nothing (Python 3.12). RuntimeError once the transport is closing. Python:
  /// sendto(data, addr=None)
  virtual void sendto(std::string_view data, std::optional<SocketAddress> addr = std::nullopt) = 0;
  /// Closes at once, dropping buffered datagrams. Python: abort()
  virtual void abort() = 0;
  /// Bytes buffered, not yet sent. Python: get_write_buffer_size()
  [[nodiscard]] virtual std::size_t get_write_buffer_size() const noexcept = 0;
  /// As Transport's. Python: get_write_buffer_limits(), set_write_buffer_limits(high, low)
  [[nodiscard]] virtual std::pair<std::size_t, std::size_t> get_write_buffer_limits()
      const noexcept = 0;
  virtual void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                       std::optional<std::size_t> low = std::nullopt) = 0;
};

/// What a protocol factory makes: a std::shared_ptr to a Protocol or a BufferedProtocol.
using ProtocolFactory = std::function<std::shared_ptr<BaseProtocol>()>;

/// A transport and the protocol made for it. Python: the (transport, protocol) pair.
template <class P>
struct Connection {
  std::shared_ptr<Transport> transport;
  std::shared_ptr<P> protocol;
};

/// Options of create_connection(), open_connection() and their Unix variants.
struct ConnectionOptions {
  /// The StreamReader's buffer limit (streams only). Python: limit=
  std::size_t limit = 65536;
  /// AF_INET or AF_INET6 to use only that family. Python: family=
  int family = AF_UNSPEC;
  /// Happy eyeballs (RFC 8305): start the next address's attempt after this many seconds while
  /// the previous one is still connecting; first to connect wins. Empty: one after the other.
  /// Python: happy_eyeballs_delay=
  std::optional<double> happy_eyeballs_delay = std::nullopt;
  /// With happy eyeballs, reorder the addresses so that families alternate (the first
  /// `interleave` of the first family, then one of the other...). 0: as resolved; Python's
  /// default is 1 when happy_eyeballs_delay is set. Python: interleave=
  std::optional<int> interleave = std::nullopt;
  /// Bind the socket to this local address first (a numeric one: SocketAddress::ip(host,
  /// port)). Python: local_addr=
  std::optional<SocketAddress> local_addr = std::nullopt;
  /// TLS over the connection: `.ssl = ctx` (an ssl::SSLContext that outlives the call) or
  /// `true` (ssl::create_default_context()). The call returns once the handshake is done; its
  /// failure is the call's SSLError (SSLCertVerificationError...). Python: ssl=
  ssl::ContextRef ssl{};
  /// The name sent with SNI and checked against the certificate; default: `host` (a Unix
  /// connection must give it when the context checks host names). "" sends none and checks
  /// none. Viewed, not copied: it must outlive the call. Python: server_hostname=
  std::optional<std::string_view> server_hostname = std::nullopt;
  /// Seconds the TLS handshake may take before the connection is aborted
  /// (ConnectionAbortedError); default 60. Python: ssl_handshake_timeout=
  std::optional<double> ssl_handshake_timeout = std::nullopt;
  /// Seconds a TLS close may wait for the peer's close_notify before aborting; default 30.
  /// Python: ssl_shutdown_timeout=
  std::optional<double> ssl_shutdown_timeout = std::nullopt;
};
// The option structs stay trivially copyable: g++ 12 destroys an aggregate temporary built in a
// co_await expression twice (`co_await open_connection(h, p, {.limit = 10})`), which is harmless
// only for members without a destructor. A member that owns memory must not be added here.
static_assert(std::is_trivially_copyable_v<ConnectionOptions>);

/// Options of create_server(), start_server() and their Unix variants.
struct ServerOptions {
  /// The StreamReader's buffer limit (streams only). Python: limit=
  std::size_t limit = 65536;
  /// The listen() backlog. Python: backlog=100
  int backlog = 100;
  /// SO_REUSEADDR (TCP; default: on). Python: reuse_address=
  std::optional<bool> reuse_address = std::nullopt;
  /// SO_REUSEPORT: several sockets (several loops, on several threads) may listen on one port
  /// and the kernel spreads connections among them. Python: reuse_port=
  bool reuse_port = false;
  /// AF_INET or AF_INET6 to listen on only that family. Python: family=
  int family = AF_UNSPEC;
  /// Start accepting at once (else: start_serving() or serve_forever()). Python: start_serving=
  bool start_serving = true;
  /// Serve TLS with this context (a PROTOCOL_TLS_SERVER one holding the certificate; the
  /// server keeps a copy of the handle). A connection's protocol gets connection_made() once
  /// its handshake is done; a failed handshake just closes that connection. Python: ssl=
  ssl::ContextRef ssl{};
  /// As ConnectionOptions'. Python: ssl_handshake_timeout=
  std::optional<double> ssl_handshake_timeout = std::nullopt;
  /// As ConnectionOptions'. Python: ssl_shutdown_timeout=
  std::optional<double> ssl_shutdown_timeout = std::nullopt;
};
static_assert(std::is_trivially_copyable_v<ServerOptions>);  // see ConnectionOptions

/// Options of connect_accepted_socket()'s awaited form. Python: connect_accepted_socket's
/// keyword arguments
struct AcceptedSocketOptions {
  /// Serve TLS on the socket, as the server side (Python's choice for an accepted socket), with
  /// this context: a PROTOCOL_TLS_SERVER one holding the certificate, which must outlive the
  /// call. The call returns once the handshake is done. Python: ssl=
  ssl::ContextRef ssl{};
  /// As ConnectionOptions'. Python: ssl_handshake_timeout=
  std::optional<double> ssl_handshake_timeout = std::nullopt;
  /// As ConnectionOptions'. Python: ssl_shutdown_timeout=
  std::optional<double> ssl_shutdown_timeout = std::nullopt;
};
static_assert(std::is_trivially_copyable_v<AcceptedSocketOptions>);  // see ConnectionOptions

/// Options of create_datagram_endpoint(). Addresses are numeric (SocketAddress::ip(host, port),
/// or SocketAddress::unix_path(path) for a Unix datagram socket): resolve names with
/// getaddrinfo() first. Python: create_datagram_endpoint's keyword arguments
struct DatagramOptions {
  /// Bind to this address (port 0: a free one). Python: local_addr=
  std::optional<SocketAddress> local_addr = std::nullopt;
  /// Connect to this address: sendto() needs no address then, only its datagrams are received,
  /// and ICMP errors come back (error_received). Python: remote_addr=
  std::optional<SocketAddress> remote_addr = std::nullopt;
  /// The family when neither address is given (AF_INET, AF_INET6, AF_UNIX). Python: family=
  int family = AF_UNSPEC;
  /// SO_REUSEPORT. Python: reuse_port=
  bool reuse_port = false;
  /// SO_BROADCAST (with remote_addr: the socket is not connected, sendto() goes there).
  /// Python: allow_broadcast=
  bool allow_broadcast = false;
  /// An existing datagram socket to take over instead (no other option may be set, else
  /// ValueError). Python: sock=
  int sock = -1;
};
static_assert(std::is_trivially_copyable_v<DatagramOptions>);  // see ConnectionOptions

/// A datagram transport and the protocol made for it.
template <class P>
struct DatagramEndpoint {
  std::shared_ptr<DatagramTransport> transport;
  std::shared_ptr<P> protocol;
};

namespace detail {
struct ServerState;
Coro<DatagramEndpoint<DatagramProtocol>> create_datagram_endpoint(
    std::function<std::shared_ptr<DatagramProtocol>()> factory, DatagramOptions options);
}  // namespace detail

/// Creates a datagram endpoint: a socket of the options' family (bound to local_addr,
/// connected to remote_addr), its transport, and `factory()`'s protocol, which gets
/// connection_made() before this returns. OSError (the bind's or connect's) on failure, no fd
/// left behind. Python: loop.create_datagram_endpoint(factory, local_addr, remote_addr, ...)
template <class F, class P = typename std::invoke_result_t<F&>::element_type>
Coro<DatagramEndpoint<P>> create_datagram_endpoint(F factory, DatagramOptions options = {}) {
  auto e = co_await detail::create_datagram_endpoint(
      std::function<std::shared_ptr<DatagramProtocol>()>(std::move(factory)), options);
  co_return DatagramEndpoint<P>{std::move(e.transport),
                                std::static_pointer_cast<P>(std::move(e.protocol))};
}

/// Listening sockets and the connections accepted through them. Move-only; a Server that goes
/// out of scope closes its listeners (not its connections: close_clients() does that).
/// Python: asyncio.Server
class Server {
 public:
  Server() = default;
  explicit Server(std::shared_ptr<detail::ServerState> state) noexcept : state_(std::move(state)) {}
  Server(Server&&) noexcept = default;
  Server& operator=(Server&& other) noexcept;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  /// Stops listening and closes the listening sockets; connections stay open. Python: close()
  void close();
  /// Closes every connection accepted (their buffered data is sent first). Python 3.13:
  /// close_clients()
  void close_clients();
  /// Aborts every connection accepted. Python 3.13: abort_clients()
  void abort_clients();
  /// Waits until the server is closed and every connection it accepted is gone.
  /// Python: wait_closed()
  Coro<void> wait_closed();
  /// Starts accepting (no effect when it does already). Python: start_serving()
  Coro<void> start_serving();
  /// Accepts until cancelled; then closes the server, waits for it to close, and rethrows
  /// CancelledError. RuntimeError if already serving forever or closed. Python: serve_forever()
  Coro<void> serve_forever();
  /// True while accepting. Python: is_serving()
  [[nodiscard]] bool is_serving() const noexcept;
  /// The port of the first listening socket (0 for a Unix server or a closed one).
  [[nodiscard]] std::uint16_t port() const noexcept;
  /// The listening sockets' fds (empty once closed; owned by the server). Python: sockets
  [[nodiscard]] std::vector<int> sockets() const;
  /// The listening sockets' addresses.
  [[nodiscard]] std::vector<SocketAddress> addresses() const;
  /// The loop the server belongs to. Python: get_loop()
  [[nodiscard]] EventLoop& get_loop() const;
  /// False for a default-constructed or moved-from Server.
  explicit operator bool() const noexcept { return state_ != nullptr; }

 private:
  [[nodiscard]] detail::ServerState& state() const;
  std::shared_ptr<detail::ServerState> state_;
};

namespace detail {
Coro<Connection<BaseProtocol>> create_connection(ProtocolFactory factory, std::string host,
                                                 std::uint16_t port, ConnectionOptions options);
Coro<Connection<BaseProtocol>> create_unix_connection(ProtocolFactory factory, std::string path,
                                                      ConnectionOptions options);
Connection<BaseProtocol> connect_accepted_socket(const ProtocolFactory& factory, int fd);
Coro<Connection<BaseProtocol>> connect_accepted_socket(ProtocolFactory factory, int fd,
                                                       AcceptedSocketOptions options);
Connection<BaseProtocol> connect_pipe(const ProtocolFactory& factory, int fd, bool write_end);
/// The protocol type a factory `F` makes.
template <class F>
using protocol_of = typename std::invoke_result_t<F&>::element_type;
template <class P>
Connection<P> downcast(Connection<BaseProtocol> c) {
  return {std::move(c.transport), std::static_pointer_cast<P>(std::move(c.protocol))};
}
}  // namespace detail

/// Resolves `host` (without blocking the loop), connects to its addresses in order (or with
/// happy eyeballs) and wraps the socket in a transport whose protocol `factory()` makes. Errors:
/// the connection's OSError (ConnectionRefusedError...), or with several addresses that all
/// failed, an OSError naming every failure. Python: loop.create_connection(factory, host, port)
template <class F, class P = detail::protocol_of<F>>
Coro<Connection<P>> create_connection(F factory, std::string host, std::uint16_t port,
                                      ConnectionOptions options = {}) {
  co_return detail::downcast<P>(co_await detail::create_connection(
      ProtocolFactory(std::move(factory)), std::move(host), port, options));
}

/// Connects to the Unix-domain socket at `path`. Python: loop.create_unix_connection(factory,
/// path)
template <class F, class P = detail::protocol_of<F>>
Coro<Connection<P>> create_unix_connection(F factory, std::string path,
                                           ConnectionOptions options = {}) {
  co_return detail::downcast<P>(co_await detail::create_unix_connection(
      ProtocolFactory(std::move(factory)), std::move(path), options));
}

/// Wraps a connected stream socket `fd` (taken over: the transport closes it) in a transport,
/// at once. ValueError for a socket that is not a stream socket (the fd stays the caller's).
/// Python: loop.connect_accepted_socket(factory, sock)
template <class F, class P = detail::protocol_of<F>>
Connection<P> connect_accepted_socket(F factory, int fd) {
  return detail::downcast<P>(
      detail::connect_accepted_socket(ProtocolFactory(std::move(factory)), fd));
}

/// The awaited form, with options: with `.ssl`, the socket is served as the TLS server side and
/// the call returns once the handshake is done; the protocol gets connection_made() then. A
/// failed handshake is the call's SSLError (or ConnectionAbortedError at the time-out), with
/// the socket closed. Without `.ssl`, as the form above. ValueError (the fd still the caller's)
/// for `.ssl = true` or a client context (a server needs its certificate), TLS time-outs
/// without `.ssl`, or a socket that is not a stream socket.
/// Python: await loop.connect_accepted_socket(factory, sock, ssl=ctx)
template <class F, class P = detail::protocol_of<F>>
Coro<Connection<P>> connect_accepted_socket(F factory, int fd, AcceptedSocketOptions options) {
  co_return detail::downcast<P>(
      co_await detail::connect_accepted_socket(ProtocolFactory(std::move(factory)), fd, options));
}

/// Wraps the read end of a pipe `fd` (taken over: the transport closes it; a FIFO, a socket or
/// a character device, else ValueError) in a read-only transport: `factory()`'s protocol gets
/// the data, then eof_received() and connection_lost() at the end of it (the transport closes
/// then, whatever eof_received() returns). write() throws RuntimeError.
/// Python: loop.connect_read_pipe(factory, pipe)
template <class F, class P = detail::protocol_of<F>>
Connection<P> connect_read_pipe(F factory, int fd) {
  return detail::downcast<P>(detail::connect_pipe(ProtocolFactory(std::move(factory)), fd, false));
}

/// Wraps the write end of a pipe `fd` (taken over) in a write-only transport; it closes, with
/// connection_lost(), once the reading end is gone (BrokenPipeError if data was still buffered);
/// write_eof() closes it. Python: loop.connect_write_pipe(factory, pipe)
template <class F, class P = detail::protocol_of<F>>
Connection<P> connect_write_pipe(F factory, int fd) {
  return detail::downcast<P>(detail::connect_pipe(ProtocolFactory(std::move(factory)), fd, true));
}

/// Options of start_tls() and StreamWriter::start_tls(). Python: loop.start_tls's keyword
/// arguments
struct StartTlsOptions {
  /// Act as the TLS server (the context must be a server's). Python: server_side=
  bool server_side = false;
  /// As ConnectionOptions' (a client that checks host names must give it). Python:
  /// server_hostname=
  std::optional<std::string_view> server_hostname = std::nullopt;
  /// Python: ssl_handshake_timeout=
  std::optional<double> ssl_handshake_timeout = std::nullopt;
  /// Python: ssl_shutdown_timeout=
  std::optional<double> ssl_shutdown_timeout = std::nullopt;
};
static_assert(std::is_trivially_copyable_v<StartTlsOptions>);  // see ConnectionOptions

/// Upgrades the open connection `transport` (its protocol `protocol`) to TLS with `ctx`: the
/// handshake runs on it and the new transport is returned once it is done; `protocol` then
/// receives the decrypted data (it gets no second connection_made()). Write nothing to the
/// old transport afterwards. On failure or cancellation the connection is closed.
/// RuntimeError for a transport that is TLS already. Python: loop.start_tls(transport,
/// protocol, sslcontext, server_side=..., server_hostname=...)
Coro<std::shared_ptr<Transport>> start_tls(std::shared_ptr<Transport> transport,
                                           std::shared_ptr<BaseProtocol> protocol,
                                           const ssl::SSLContext& ctx,
                                           StartTlsOptions options = {});

/// Listens on `host` and `port` (empty host: every interface, IPv4 and IPv6; port 0: a free
/// port, the same one on every socket) and makes a protocol with `factory()` for each
/// connection. Python: loop.create_server(factory, host, port)
Coro<Server> create_server(ProtocolFactory factory, std::string host, std::uint16_t port,
                           ServerOptions options = {});
/// Listens on the Unix-domain socket `path` (a stale socket file there is removed first; the
/// file is removed again when the server closes, as Python 3.13 does). Python:
/// loop.create_unix_server(factory, path)
Coro<Server> create_unix_server(ProtocolFactory factory, std::string path,
                                ServerOptions options = {});

}  // namespace asyncio
