// TLS contexts, the SSLObject view and OpenSSL's errors as SSLErrors (include/asyncio/ssl.hpp;
// the TLS layer itself is src/sslproto.cpp). docs/design/tls.md.
#include "asyncio/ssl.hpp"

#include <cerrno>
#include <cstdio>
#include <string>

#include "ssl_detail.hpp"

#if ASYNCIO_HAS_OPENSSL

#include <cctype>
#include <cstring>
#include <memory>

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace asyncio::ssl {

struct SSLContext::Impl {
  explicit Impl(SSL_CTX* c, bool server) noexcept : ctx(c), server_side(server) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { SSL_CTX_free(ctx); }

  SSL_CTX* ctx;
  bool server_side;
  bool check_hostname = false;
  std::vector<std::string> alpn;
  std::string alpn_wire;  // length-prefixed, as ALPN sends it
};

namespace {

/// The short library names Python prints in "[SSL: REASON]".
std::string library_name(unsigned long e) {
  switch (ERR_GET_LIB(e)) {
    case ERR_LIB_SSL:
      return "SSL";
    case ERR_LIB_PEM:
      return "PEM";
    case ERR_LIB_X509:
      return "X509";
    case ERR_LIB_X509V3:
      return "X509V3";
    case ERR_LIB_ASN1:
      return "ASN1";
    case ERR_LIB_EVP:
      return "EVP";
    case ERR_LIB_SYS:
      return "SYS";
    case ERR_LIB_PROV:
      return "PROV";
    default: {
      const char* s = ERR_lib_error_string(e);
      return s != nullptr ? s : "SSL";
    }
  }
}

/// "wrong version number" -> "WRONG_VERSION_NUMBER" (Python's mnemonic form).
std::string reason_name(unsigned long e) {
  const char* s = ERR_reason_error_string(e);
  std::string r = s != nullptr ? s : "UNKNOWN";
  for (char& c : r) {
    c = c == ' ' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return r;
}

[[noreturn]] void raise_error(const char* what) {
  std::rethrow_exception(detail::ssl_error_from_queue(SSL_ERROR_SSL, what));
}

/// Throws FileNotFoundError & co. when `path` cannot be opened (Python opens the file first).
void check_readable(const std::string& path) {
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    (void)std::fclose(f);
    return;
  }
  raise_os_error(errno, path);
}

int verify_flags(VerifyMode mode, bool server) {
  switch (mode) {
    case VerifyMode::CERT_NONE:
      return SSL_VERIFY_NONE;
    case VerifyMode::CERT_OPTIONAL:
      return SSL_VERIFY_PEER;
    case VerifyMode::CERT_REQUIRED:
      return server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER;
  }
  return SSL_VERIFY_NONE;
}

int version_number(TLSVersion v) {
  switch (v) {
    case TLSVersion::TLSv1_2:
      return TLS1_2_VERSION;
    case TLSVersion::TLSv1_3:
      return TLS1_3_VERSION;
    case TLSVersion::MINIMUM_SUPPORTED:
    case TLSVersion::MAXIMUM_SUPPORTED:
      return 0;
  }
  return 0;
}

TLSVersion version_enum(long n, bool maximum) {
  switch (n) {
    case TLS1_2_VERSION:
      return TLSVersion::TLSv1_2;
    case TLS1_3_VERSION:
      return TLSVersion::TLSv1_3;
    default:
      return maximum ? TLSVersion::MAXIMUM_SUPPORTED : TLSVersion::MINIMUM_SUPPORTED;
  }
}

/// The server side of ALPN: the first of our protocols that the client offers.
int select_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
                const unsigned char* in, unsigned int inlen, void* arg) {
  const auto* impl = static_cast<const SSLContext::Impl*>(arg);
  if (impl->alpn_wire.empty()) return SSL_TLSEXT_ERR_NOACK;
  unsigned char* chosen = nullptr;
  const int r = SSL_select_next_proto(
      &chosen, outlen, reinterpret_cast<const unsigned char*>(impl->alpn_wire.data()),
      static_cast<unsigned int>(impl->alpn_wire.size()), in, inlen);
  if (r != OPENSSL_NPN_NEGOTIATED) return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

std::vector<std::pair<std::string, std::string>> decode_name(const X509_NAME* name) {
  std::vector<std::pair<std::string, std::string>> out;
  const int n = X509_NAME_entry_count(name);
  for (int i = 0; i < n; ++i) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
    const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
    std::string key;
    if (nid != NID_undef) {
      key = OBJ_nid2ln(nid);
    } else {
      char buf[128];
      (void)OBJ_obj2txt(buf, sizeof buf, X509_NAME_ENTRY_get_object(e), 1);
      key = buf;
    }
    unsigned char* utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
    std::string value;
    if (len >= 0) value.assign(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
    OPENSSL_free(utf8);
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

std::string time_text(const ASN1_TIME* t) {
  BIO* b = BIO_new(BIO_s_mem());
  if (b == nullptr) return {};
  (void)ASN1_TIME_print(b, t);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string s(data, static_cast<std::size_t>(n > 0 ? n : 0));
  BIO_free(b);
  return s;
}

/// An IP address in a certificate as Python prints it (IPv6: eight upper-case groups).
std::string ip_text(const ASN1_OCTET_STRING* ip) {
  const unsigned char* p = ASN1_STRING_get0_data(ip);
  const int n = ASN1_STRING_length(ip);
  char buf[64];
  if (n == 4) {
    (void)std::snprintf(buf, sizeof buf, "%d.%d.%d.%d", p[0], p[1], p[2], p[3]);
    return buf;
  }
  if (n == 16) {
    std::string s;
    for (int i = 0; i < 16; i += 2) {
      (void)std::snprintf(buf, sizeof buf, "%X", (p[i] << 8) | p[i + 1]);
      if (i > 0) s += ':';
      s += buf;
    }
    return s;
  }
  return "<invalid>";
}

Certificate decode_certificate(X509* cert) {
  Certificate c;
  c.subject = decode_name(X509_get_subject_name(cert));
  c.issuer = decode_name(X509_get_issuer_name(cert));
  c.version = static_cast<int>(X509_get_version(cert)) + 1;
  c.not_before = time_text(X509_get0_notBefore(cert));
  c.not_after = time_text(X509_get0_notAfter(cert));
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    if (char* hex = BN_bn2hex(bn)) {
      c.serial_number = hex;
      OPENSSL_free(hex);
    }
    BN_free(bn);
  }
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
      if (g->type == GEN_DNS) {
        const ASN1_IA5STRING* s = g->d.dNSName;
        c.subject_alt_name.emplace_back(
            "DNS", std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                               static_cast<std::size_t>(ASN1_STRING_length(s))));
      } else if (g->type == GEN_IPADD) {
        c.subject_alt_name.emplace_back("IP Address", ip_text(g->d.iPAddress));
      }
    }
    GENERAL_NAMES_free(names);
  }
  return c;
}

/// Where an SSL object keeps the server_hostname it was made with (Python's
/// SSLObject.server_hostname), freed with it.
int hostname_index() {
  static const int index = SSL_get_ex_new_index(
      0, nullptr, nullptr, nullptr,
      [](void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/,
         void* /*argp*/) { delete static_cast<std::string*>(ptr); });
  return index;
}

SSL* need(SSL* ssl) {
  if (ssl == nullptr) throw InvalidStateError("SSLObject: no TLS connection (empty handle)");
  return ssl;
}

}  // namespace

// ---- SSLObject -----------------------------------------------------------------------------

std::string SSLObject::version() const {
  return SSL_get_version(need(ssl_));
}

std::optional<Cipher> SSLObject::cipher() const {
  const SSL_CIPHER* c = SSL_get_current_cipher(need(ssl_));
  if (c == nullptr) return std::nullopt;
  return Cipher{SSL_CIPHER_get_name(c), SSL_CIPHER_get_version(c), SSL_CIPHER_get_bits(c, nullptr)};
}

std::optional<Certificate> SSLObject::getpeercert() const {
  X509* cert = SSL_get1_peer_certificate(need(ssl_));
  if (cert == nullptr) return std::nullopt;
  std::optional<Certificate> out;
  if ((SSL_get_verify_mode(ssl_) & SSL_VERIFY_PEER) == 0) {
    out.emplace();  // not validated: Python gives {}
  } else {
    out = decode_certificate(cert);
  }
  X509_free(cert);
  return out;
}

std::string SSLObject::getpeercert_der() const {
  X509* cert = SSL_get1_peer_certificate(need(ssl_));
  if (cert == nullptr) return {};
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert, &der);
  std::string out;
  if (n > 0) out.assign(reinterpret_cast<const char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  X509_free(cert);
  return out;
}

std::string SSLObject::selected_alpn_protocol() const {
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  SSL_get0_alpn_selected(need(ssl_), &p, &n);
  return p != nullptr ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
}

std::string SSLObject::server_hostname() const {
  const auto* name = static_cast<const std::string*>(SSL_get_ex_data(need(ssl_), hostname_index()));
  return name != nullptr ? *name : std::string();
}

bool SSLObject::server_side() const {
  return SSL_is_server(need(ssl_)) != 0;
}

// ---- SSLContext ----------------------------------------------------------------------------

SSLContext::SSLContext(Method method) {
  const bool server = method == PROTOCOL_TLS_SERVER;
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == nullptr) raise_error("SSL_CTX_new");
  impl_ = std::make_shared<Impl>(ctx, server);
  (void)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Python's defaults; renegotiation refused (TLS 1.3 has none).
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_RENEGOTIATION | SSL_OP_SINGLE_DH_USE |
                               SSL_OP_SINGLE_ECDH_USE);
  SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
  if (server) {
    static const unsigned char id[] = "asyncio-cpp";
    (void)SSL_CTX_set_session_id_context(ctx, id, sizeof id - 1);
    SSL_CTX_set_alpn_select_cb(ctx, &select_alpn, impl_.get());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  } else {
    impl_->check_hostname = true;  // Python: PROTOCOL_TLS_CLIENT
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
}

void SSLContext::load_cert_chain(const std::string& certfile, const std::string& keyfile) {
  const std::string& key = keyfile.empty() ? certfile : keyfile;
  check_readable(certfile);
  check_readable(key);
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(impl_->ctx, certfile.c_str()) != 1) {
    raise_error(certfile.c_str());
  }
  if (SSL_CTX_use_PrivateKey_file(impl_->ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    raise_error(key.c_str());
  }
  if (SSL_CTX_check_private_key(impl_->ctx) != 1) raise_error("load_cert_chain");
}

void SSLContext::load_cert_chain_pem(std::string_view cert_chain_pem, std::string_view key_pem) {
  ERR_clear_error();
  const std::unique_ptr<BIO, decltype(&BIO_free)> certs(
      BIO_new_mem_buf(cert_chain_pem.data(), static_cast<int>(cert_chain_pem.size())), &BIO_free);
  const std::unique_ptr<BIO, decltype(&BIO_free)> key(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())), &BIO_free);
  if (!certs || !key) raise_error("load_cert_chain_pem");
  X509* leaf = PEM_read_bio_X509_AUX(certs.get(), nullptr, nullptr, nullptr);
  if (leaf == nullptr) raise_error("load_cert_chain_pem: certificate");
  const int used = SSL_CTX_use_certificate(impl_->ctx, leaf);
  X509_free(leaf);
  if (used != 1) raise_error("load_cert_chain_pem: certificate");
  (void)SSL_CTX_clear_chain_certs(impl_->ctx);
  while (X509* ca = PEM_read_bio_X509(certs.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(impl_->ctx, ca) != 1) {
      X509_free(ca);
      raise_error("load_cert_chain_pem: chain");
    }
  }
  ERR_clear_error();  // the end of the PEM text
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(key.get(), nullptr, nullptr, nullptr);
  if (pkey == nullptr) raise_error("load_cert_chain_pem: key");
  const int ok = SSL_CTX_use_PrivateKey(impl_->ctx, pkey);
  EVP_PKEY_free(pkey);
  if (ok != 1 || SSL_CTX_check_private_key(impl_->ctx) != 1) raise_error("load_cert_chain_pem");
}

void SSLContext::load_verify_locations(const std::string& cafile, const std::string& capath,
                                       std::string_view cadata) {
  if (cafile.empty() && capath.empty() && cadata.empty()) {
    throw ValueError("cafile, capath and cadata cannot be all omitted");
  }
  ERR_clear_error();
  if (!cafile.empty()) check_readable(cafile);
  if (!cafile.empty() || !capath.empty()) {
    if (SSL_CTX_load_verify_locations(impl_->ctx, cafile.empty() ? nullptr : cafile.c_str(),
                                      capath.empty() ? nullptr : capath.c_str()) != 1) {
      raise_error("load_verify_locations");
    }
  }
  if (!cadata.empty()) {
    const std::unique_ptr<BIO, decltype(&BIO_free)> b(
        BIO_new_mem_buf(cadata.data(), static_cast<int>(cadata.size())), &BIO_free);
    if (!b) raise_error("load_verify_locations");
    X509_STORE* store = SSL_CTX_get_cert_store(impl_->ctx);
    int loaded = 0;
    while (X509* ca = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)) {
      const int ok = X509_STORE_add_cert(store, ca);
      X509_free(ca);
      if (ok != 1) raise_error("load_verify_locations: cadata");
      ++loaded;
    }
    ERR_clear_error();
    if (loaded == 0) {
      throw SSLError(SSL_ERROR_SSL, "load_verify_locations: no certificate in cadata", "PEM",
                     "NO_START_LINE");
    }
  }
}

void SSLContext::load_default_certs() {
  ERR_clear_error();
  if (SSL_CTX_set_default_verify_paths(impl_->ctx) != 1) raise_error("load_default_certs");
}

void SSLContext::set_alpn_protocols(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const std::string& p : protocols) {
    if (p.empty() || p.size() > 255) {
      throw ValueError("ALPN protocols must be 1 to 255 bytes long, got '" + p + "'");
    }
    wire += static_cast<char>(p.size());
    wire += p;
  }
  if (!impl_->server_side &&
      SSL_CTX_set_alpn_protos(impl_->ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                              static_cast<unsigned int>(wire.size())) != 0) {
    raise_error("set_alpn_protocols");
  }
  impl_->alpn = protocols;
  impl_->alpn_wire = std::move(wire);
}

void SSLContext::set_ciphers(const std::string& ciphers) {
  ERR_clear_error();
  if (SSL_CTX_set_cipher_list(impl_->ctx, ciphers.c_str()) != 1) raise_error("set_ciphers");
}

bool SSLContext::check_hostname() const {
  return impl_->check_hostname;
}

void SSLContext::set_check_hostname(bool on) {
  if (on && verify_mode() == CERT_NONE) set_verify_mode(CERT_REQUIRED);
  impl_->check_hostname = on;
}

VerifyMode SSLContext::verify_mode() const {
  const int m = SSL_CTX_get_verify_mode(impl_->ctx);
  if ((m & SSL_VERIFY_PEER) == 0) return CERT_NONE;
  if (impl_->server_side && (m & SSL_VERIFY_FAIL_IF_NO_PEER_CERT) == 0) return CERT_OPTIONAL;
  return CERT_REQUIRED;
}

void SSLContext::set_verify_mode(VerifyMode mode) {
  if (mode == CERT_NONE && impl_->check_hostname) {
    throw ValueError("Cannot set verify_mode to CERT_NONE when check_hostname is enabled.");
  }
  SSL_CTX_set_verify(impl_->ctx, verify_flags(mode, impl_->server_side), nullptr);
}

TLSVersion SSLContext::minimum_version() const {
  return version_enum(SSL_CTX_get_min_proto_version(impl_->ctx), false);
}

void SSLContext::set_minimum_version(TLSVersion v) {
  if (SSL_CTX_set_min_proto_version(impl_->ctx, version_number(v)) != 1) {
    throw ValueError("unsupported minimum TLS version");
  }
}

TLSVersion SSLContext::maximum_version() const {
  return version_enum(SSL_CTX_get_max_proto_version(impl_->ctx), true);
}

void SSLContext::set_maximum_version(TLSVersion v) {
  if (SSL_CTX_set_max_proto_version(impl_->ctx, version_number(v)) != 1) {
    throw ValueError("unsupported maximum TLS version");
  }
}

std::vector<std::string> SSLContext::alpn_protocols() const {
  return impl_->alpn;
}

bool SSLContext::server_side() const noexcept {
  return impl_->server_side;
}

ssl_ctx_st* SSLContext::native_handle() const noexcept {
  return impl_->ctx;
}

SSLContext create_default_context(Purpose purpose, const std::string& cafile) {
  if (purpose == Purpose::SERVER_AUTH) {
    SSLContext ctx(PROTOCOL_TLS_CLIENT);  // CERT_REQUIRED, check_hostname
    if (!cafile.empty()) {
      ctx.load_verify_locations(cafile);
    } else {
      ctx.load_default_certs();
    }
    return ctx;
  }
  SSLContext ctx(PROTOCOL_TLS_SERVER);
  if (!cafile.empty()) ctx.load_verify_locations(cafile);
  return ctx;
}

}  // namespace asyncio::ssl

namespace asyncio::detail {

std::exception_ptr ssl_error_from_queue(int code, const std::string& what) {
  const unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) {
    if (code == SSL_ERROR_SYSCALL || code == SSL_ERROR_ZERO_RETURN) {
      return std::make_exception_ptr(
          ssl::SSLError(8,
                        "[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of "
                        "protocol (" +
                            what + ")",
                        "SSL", "UNEXPECTED_EOF_WHILE_READING"));
    }
    return std::make_exception_ptr(ssl::SSLError(code, what));
  }
  const std::string lib = ssl::library_name(e);
  const std::string reason = ssl::reason_name(e);
  const char* text = ERR_reason_error_string(e);
  std::string message = "[" + lib + ": " + reason + "] " + (text != nullptr ? text : "error");
  if (!what.empty()) message += " (" + what + ")";
  return std::make_exception_ptr(ssl::SSLError(code, message, lib, reason));
}

std::exception_ptr ssl_connection_error(SSL* ssl, int code, const std::string& hostname) {
  const unsigned long e = ERR_peek_last_error();
  if (e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL &&
      ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    ERR_clear_error();
    const long v = SSL_get_verify_result(ssl);
    std::string why;
    if (v == X509_V_ERR_HOSTNAME_MISMATCH) {
      why = "Hostname mismatch, certificate is not valid for '" + hostname + "'.";
    } else if (v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      why = "IP address mismatch, certificate is not valid for '" + hostname + "'.";
    } else {
      why = X509_verify_cert_error_string(v);
    }
    return std::make_exception_ptr(ssl::SSLCertVerificationError(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: " + why, v, why));
  }
  return ssl_error_from_queue(code, {});
}

void set_server_hostname(SSL* ssl, const std::string& name) {
  auto owned = std::make_unique<std::string>(name);
  if (SSL_set_ex_data(ssl, ssl::hostname_index(), owned.get()) == 1) (void)owned.release();
}

SSL* new_ssl(const ssl::SSLContext& ctx) {
  ERR_clear_error();
  SSL* s = SSL_new(ctx.native_handle());
  if (s == nullptr) std::rethrow_exception(ssl_error_from_queue(SSL_ERROR_SSL, "SSL_new"));
  return s;
}

}  // namespace asyncio::detail

#else  // built without OpenSSL

namespace asyncio::ssl {

namespace {
[[noreturn]] void unavailable() {
  throw RuntimeError("asyncio-cpp was built without OpenSSL: TLS is not available");
}
}  // namespace

struct SSLContext::Impl {};

std::string SSLObject::version() const {
  unavailable();
}
std::optional<Cipher> SSLObject::cipher() const {
  unavailable();
}
std::optional<Certificate> SSLObject::getpeercert() const {
  unavailable();
}
std::string SSLObject::getpeercert_der() const {
  unavailable();
}
std::string SSLObject::selected_alpn_protocol() const {
  unavailable();
}
std::string SSLObject::server_hostname() const {
  unavailable();
}
bool SSLObject::server_side() const {
  unavailable();
}
SSLContext::SSLContext(Method /*method*/) {
  unavailable();
}
void SSLContext::load_cert_chain(const std::string&, const std::string&) {
  unavailable();
}
void SSLContext::load_cert_chain_pem(std::string_view, std::string_view) {
  unavailable();
}
void SSLContext::load_verify_locations(const std::string&, const std::string&, std::string_view) {
  unavailable();
}
void SSLContext::load_default_certs() {
  unavailable();
}
void SSLContext::set_alpn_protocols(const std::vector<std::string>&) {
  unavailable();
}
void SSLContext::set_ciphers(const std::string&) {
  unavailable();
}
bool SSLContext::check_hostname() const {
  unavailable();
}
void SSLContext::set_check_hostname(bool) {
  unavailable();
}
VerifyMode SSLContext::verify_mode() const {
  unavailable();
}
void SSLContext::set_verify_mode(VerifyMode) {
  unavailable();
}
TLSVersion SSLContext::minimum_version() const {
  unavailable();
}
void SSLContext::set_minimum_version(TLSVersion) {
  unavailable();
}
TLSVersion SSLContext::maximum_version() const {
  unavailable();
}
void SSLContext::set_maximum_version(TLSVersion) {
  unavailable();
}
std::vector<std::string> SSLContext::alpn_protocols() const {
  unavailable();
}
bool SSLContext::server_side() const noexcept {
  return false;
}
ssl_ctx_st* SSLContext::native_handle() const noexcept {
  return nullptr;
}
SSLContext create_default_context(Purpose, const std::string&) {
  unavailable();
}

}  // namespace asyncio::ssl

#endif
