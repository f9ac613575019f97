// asyncio/ssl.hpp - TLS contexts and what a TLS connection tells about itself (Python: the ssl
// module's SSLContext, create_default_context, Purpose, CERT_*, TLSVersion, SSLObject,
// getpeercert(), cipher()), over OpenSSL.
//
// Use: make a context, pass it as the `.ssl` option of open_connection(), start_server(),
// create_connection(), create_server() (and their Unix variants), or to StreamWriter::start_tls()
// / asyncio::start_tls() on an open connection. docs/design/tls.md tells how the TLS layer works.
//
//   auto ctx = asyncio::ssl::create_default_context();       // a client's: verifies the server
//   ctx.load_verify_locations("ca.pem");
//   auto [r, w] = co_await asyncio::open_connection("example.com", 443, {.ssl = ctx});
//
// An SSLContext is a handle: copies share one OpenSSL SSL_CTX (and its settings). Configure it
// before the connections that use it start: a connection takes the context's settings when its
// handshake begins. It may be used by several loops on several threads once configured (OpenSSL
// contexts are thread-safe for that); configuring it meanwhile is not.
//
// Built without OpenSSL (ASYNCIO_HAS_OPENSSL undefined), every function here throws
// RuntimeError.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "asyncio/exceptions.hpp"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX
struct ssl_st;      // OpenSSL's SSL

namespace asyncio::ssl {

/// What a default context is for. Python: ssl.Purpose
enum class Purpose {
  SERVER_AUTH,  ///< a client's context: authenticates servers (Python: Purpose.SERVER_AUTH)
  CLIENT_AUTH,  ///< a server's context: may authenticate clients (Python: Purpose.CLIENT_AUTH)
};

/// The side a context is for. Python: ssl.PROTOCOL_TLS_CLIENT, ssl.PROTOCOL_TLS_SERVER
enum class Method { PROTOCOL_TLS_CLIENT, PROTOCOL_TLS_SERVER };
inline constexpr Method PROTOCOL_TLS_CLIENT = Method::PROTOCOL_TLS_CLIENT;
inline constexpr Method PROTOCOL_TLS_SERVER = Method::PROTOCOL_TLS_SERVER;

/// Whether and how the peer's certificate is checked. Python: ssl.VerifyMode
enum class VerifyMode {
  CERT_NONE,      ///< not asked for (server) / not checked (client). Python: ssl.CERT_NONE
  CERT_OPTIONAL,  ///< checked when the peer sends one. Python: ssl.CERT_OPTIONAL
  CERT_REQUIRED,  ///< required and checked. Python: ssl.CERT_REQUIRED
};
inline constexpr VerifyMode CERT_NONE = VerifyMode::CERT_NONE;
inline constexpr VerifyMode CERT_OPTIONAL = VerifyMode::CERT_OPTIONAL;
inline constexpr VerifyMode CERT_REQUIRED = VerifyMode::CERT_REQUIRED;

/// Protocol versions for minimum_version / maximum_version. Python: ssl.TLSVersion
enum class TLSVersion { MINIMUM_SUPPORTED, TLSv1_2, TLSv1_3, MAXIMUM_SUPPORTED };

/// A decoded certificate, as Python's SSLSocket.getpeercert() gives it: each name is a list of
/// (attribute, value) pairs ("commonName", "organizationName"...), dates as OpenSSL prints them
/// ("Jun  1 00:00:00 2030 GMT").
struct Certificate {
  std::vector<std::pair<std::string, std::string>> subject;  ///< Python: cert['subject']
  std::vector<std::pair<std::string, std::string>> issuer;   ///< Python: cert['issuer']
  /// ("DNS", name) and ("IP Address", address) entries. Python: cert['subjectAltName']
  std::vector<std::pair<std::string, std::string>> subject_alt_name;
  std::string not_before;     ///< Python: cert['notBefore']
  std::string not_after;      ///< Python: cert['notAfter']
  std::string serial_number;  ///< upper-case hex. Python: cert['serialNumber']
  int version = 0;            ///< 3 for X.509v3. Python: cert['version']
};

/// The negotiated cipher. Python: the (name, protocol, secret_bits) tuple of SSLSocket.cipher()
struct Cipher {
  std::string name;      ///< e.g. "TLS_AES_256_GCM_SHA384"
  std::string protocol;  ///< e.g. "TLSv1.3"
  int secret_bits = 0;
};

class SSLContext;

/// A view of one connection's TLS state (get_extra_info("ssl_object")); valid while the
/// transport is open. Python: ssl.SSLObject
class SSLObject {
 public:
  SSLObject() = default;
  explicit SSLObject(ssl_st* ssl) noexcept : ssl_(ssl) {}

  /// "TLSv1.3", "TLSv1.2"... Python: version()
  [[nodiscard]] std::string version() const;
  /// Python: cipher()
  [[nodiscard]] std::optional<Cipher> cipher() const;
  /// The peer's certificate (empty when it sent none). With verification off (CERT_NONE) it is
  /// not decoded and an empty Certificate is given, as Python gives {}. Python: getpeercert()
  [[nodiscard]] std::optional<Certificate> getpeercert() const;
  /// The peer's certificate in DER form (empty when none). Python: getpeercert(binary_form=True)
  [[nodiscard]] std::string getpeercert_der() const;
  /// The protocol ALPN chose ("" when none). Python: selected_alpn_protocol()
  [[nodiscard]] std::string selected_alpn_protocol() const;
  /// The name sent with SNI / checked against the certificate ("" for none). Python:
  /// server_hostname
  [[nodiscard]] std::string server_hostname() const;
  /// Python: server_side
  [[nodiscard]] bool server_side() const;
  /// OpenSSL's SSL object, to call OpenSSL directly.
  [[nodiscard]] ssl_st* native_handle() const noexcept { return ssl_; }
  explicit operator bool() const noexcept { return ssl_ != nullptr; }

 private:
  ssl_st* ssl_ = nullptr;
};

/// A TLS configuration shared by connections: certificates, trust, verification, ALPN.
/// Python: ssl.SSLContext
class SSLContext {
 public:
  /// A context for one side with OpenSSL's secure defaults, minimum TLS 1.2. A client context
  /// (PROTOCOL_TLS_CLIENT) verifies the server and checks its host name, with no trusted CA yet
  /// (load_verify_locations() or load_default_certs()); a server context asks for no client
  /// certificate. Python: ssl.SSLContext(protocol)
  explicit SSLContext(Method method = PROTOCOL_TLS_CLIENT);

  /// Uses the certificate chain (PEM: the certificate, then intermediates) in `certfile` and the
  /// private key in `keyfile` (or in certfile when empty). SSLError when they cannot be read,
  /// do not parse or do not match. Python: load_cert_chain(certfile, keyfile)
  void load_cert_chain(const std::string& certfile, const std::string& keyfile = {});
  /// The same from PEM text in memory.
  void load_cert_chain_pem(std::string_view cert_chain_pem, std::string_view key_pem);
  /// Trusts the CA certificates in `cafile` (PEM) and/or the hashed directory `capath`, and/or
  /// the PEM text `cadata`. SSLError when nothing can be loaded. Python:
  /// load_verify_locations(cafile, capath, cadata)
  void load_verify_locations(const std::string& cafile = {}, const std::string& capath = {},
                             std::string_view cadata = {});
  /// Trusts the system's CA store. Python: load_default_certs() / set_default_verify_paths()
  void load_default_certs();
  /// The protocols to offer (client) or accept (server) with ALPN, in order of preference.
  /// ValueError for an empty or over-long name. Python: set_alpn_protocols(protocols)
  void set_alpn_protocols(const std::vector<std::string>& protocols);
  /// OpenSSL cipher list for TLS 1.2 and below. SSLError if none matches. Python:
  /// set_ciphers(ciphers)
  void set_ciphers(const std::string& ciphers);

  /// Python: check_hostname (the property's getter)
  [[nodiscard]] bool check_hostname() const;
  /// Turning it on also sets verify_mode to CERT_REQUIRED when it was CERT_NONE, as Python does.
  /// Python: ctx.check_hostname = on
  void set_check_hostname(bool on);
  /// Python: verify_mode (getter)
  [[nodiscard]] VerifyMode verify_mode() const;
  /// ValueError for CERT_NONE while check_hostname is on (Python's rule). Python:
  /// ctx.verify_mode = mode
  void set_verify_mode(VerifyMode mode);
  /// Python: minimum_version (getter)
  [[nodiscard]] TLSVersion minimum_version() const;
  /// Python: ctx.minimum_version = v
  void set_minimum_version(TLSVersion v);
  /// Python: maximum_version (getter)
  [[nodiscard]] TLSVersion maximum_version() const;
  /// Python: ctx.maximum_version = v
  void set_maximum_version(TLSVersion v);
  /// The ALPN protocols set (empty when none).
  [[nodiscard]] std::vector<std::string> alpn_protocols() const;
  /// True for a PROTOCOL_TLS_SERVER context.
  [[nodiscard]] bool server_side() const noexcept;

  /// OpenSSL's SSL_CTX, to call OpenSSL directly (shared by every copy of this handle).
  [[nodiscard]] ssl_ctx_st* native_handle() const noexcept;

  struct Impl;
  /// The shared state (for the TLS layer).
  [[nodiscard]] const std::shared_ptr<Impl>& impl() const noexcept { return impl_; }

 private:
  std::shared_ptr<Impl> impl_;
};

/// A context with Python's defaults for `purpose`: SERVER_AUTH (a client's) verifies the
/// server's certificate and host name against the system's CAs, or only `cafile` when given;
/// CLIENT_AUTH (a server's) asks for no client certificate. Minimum TLS 1.2.
/// Python: ssl.create_default_context(purpose, cafile=...)
SSLContext create_default_context(Purpose purpose = Purpose::SERVER_AUTH,
                                  const std::string& cafile = {});

}  // namespace asyncio::ssl
