// Internal: the TLS layer's entry points for transports and streams (src/sslproto.cpp) and
// OpenSSL's errors as exceptions (src/ssl.cpp). docs/design/tls.md.
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "asyncio/futures.hpp"
#include "asyncio/ssl.hpp"
#include "asyncio/transports.hpp"

struct ssl_st;

namespace asyncio::detail {

/// What one TLS connection is made with (from the `.ssl` options, checked).
struct TlsSettings {
  ssl::SSLContext context;
  bool server_side = false;
  std::string server_hostname;  // SNI and the name checked; empty: none
  double handshake_timeout = 60.0;
  double shutdown_timeout = 30.0;
};

/// The TLS settings of a client connection to `host` (nullopt without `.ssl`). ValueError for
/// options that make no sense (Python's checks): server_hostname or TLS time-outs without ssl,
/// a time-out <= 0, no name to check (a Unix path, or server_hostname "") while the context
/// checks host names, a server context.
std::optional<TlsSettings> client_tls(const ConnectionOptions& options, std::string_view host);
/// A server's (nullopt without `.ssl`). ValueError for `.ssl = true` (a server needs a context
/// with its certificate), a client context, or time-outs without ssl.
std::optional<TlsSettings> server_tls(const ServerOptions& options);
/// The same checks for a server side given by its parts (connect_accepted_socket's options).
std::optional<TlsSettings> server_tls(const ssl::ContextRef& ssl,
                                      std::optional<double> handshake_timeout,
                                      std::optional<double> shutdown_timeout);

/// The settings of start_tls() (ValueError as Python's checks).
TlsSettings start_tls_settings(const ssl::SSLContext& ctx, const StartTlsOptions& options);
/// start_tls() once its settings are checked: the TLS layer becomes `transport`'s protocol, and
/// the transport above it is returned once the handshake is done (closing `transport` when it
/// fails or is cancelled). Python: loop.start_tls
Coro<std::shared_ptr<Transport>> start_tls_on(std::shared_ptr<Transport> transport,
                                              std::shared_ptr<BaseProtocol> protocol,
                                              TlsSettings settings);

/// The TLS layer over a plain transport, for the application protocol `app`: make it the plain
/// transport's protocol. Its handshake starts at connection_made; `waiter` (if any) completes
/// when the handshake does (with its error if it fails). With `call_connection_made`, `app`
/// gets connection_made(tls_transport) once the handshake is done (start_tls: it has had it).
std::shared_ptr<BufferedProtocol> make_tls_protocol(EventLoop& loop,
                                                    std::shared_ptr<BaseProtocol> app,
                                                    TlsSettings settings,
                                                    std::optional<Future<void>> waiter,
                                                    bool call_connection_made);
/// The transport the application sees over `tls` (made by make_tls_protocol).
std::shared_ptr<Transport> tls_app_transport(BufferedProtocol& tls);
/// True for a transport of the TLS layer (start_tls refuses to nest).
bool is_tls_transport(const Transport& t) noexcept;

/// OpenSSL's first queued error (cleared) as an SSLError with errno `code` (an SSL_ERROR_*),
/// what() in Python's form "[SSL: WRONG_VERSION_NUMBER] wrong version number (what)".
std::exception_ptr ssl_error_from_queue(int code, const std::string& what);
/// The error of a failed SSL_* call on `ssl`: SSLCertVerificationError when the peer's
/// certificate did not verify (naming the reason; `hostname` for a mismatch), else as above.
std::exception_ptr ssl_connection_error(ssl_st* ssl, int code, const std::string& hostname);
/// Records the name a client connection checks (ssl::SSLObject::server_hostname()).
void set_server_hostname(ssl_st* ssl, const std::string& name);
/// A new SSL object of `ctx` (SSLError when OpenSSL cannot make one).
ssl_st* new_ssl(const ssl::SSLContext& ctx);

}  // namespace asyncio::detail
