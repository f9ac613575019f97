// tls_test.hpp - certificates for the TLS tests, made at test time with the `openssl` command
// (header-only; no key is committed).
//
//   certs()           the process's certificates (made once, in a temporary directory removed
//                     at exit): a CA, a server certificate it signed for "localhost",
//                     127.0.0.1 and ::1, one for "wrong.example", a self-signed one for
//                     "localhost", a client certificate for mutual TLS
//   server_context()  a PROTOCOL_TLS_SERVER context with the localhost certificate
//   client_context()  a client context that trusts the test CA (verifies, checks host names)
//   have_openssl_cli() whether the `openssl` command exists (tests that need it skip without)
#pragma once

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include <asyncio/ssl.hpp>

namespace asyncio_test {

struct TestCerts {
  std::string dir;
  std::string ca_pem, ca_key;
  std::string server_pem, server_key;            // localhost, 127.0.0.1, ::1; signed by the CA
  std::string wrong_pem, wrong_key;              // wrong.example; signed by the CA
  std::string self_signed_pem, self_signed_key;  // localhost, signed by itself
  std::string client_pem, client_key;            // a client certificate signed by the CA

  TestCerts() = default;
  TestCerts(const TestCerts&) = delete;
  TestCerts& operator=(const TestCerts&) = delete;
  ~TestCerts() {
    if (!dir.empty()) (void)std::system(("rm -rf '" + dir + "'").c_str());
  }
};

inline bool have_openssl_cli() {
  return std::system("openssl version >/dev/null 2>&1") == 0;
}

inline void run_or_throw(const std::string& cmd) {
  if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0) {
    throw std::runtime_error("test certificates: failed: " + cmd);
  }
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The certificates, made on first use (a few hundred ms: EC P-256 keys).
inline const TestCerts& certs() {
  static const std::unique_ptr<TestCerts> made = [] {
    auto c = std::make_unique<TestCerts>();
    char tmpl[] = "/tmp/asyncio-tls-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp");
    c->dir = tmpl;
    const std::string d = c->dir + "/";
    const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    auto path = [&](const char* n) { return d + n; };
    c->ca_pem = path("ca.pem");
    c->ca_key = path("ca.key");
    run_or_throw("openssl req -x509" + key + " -keyout " + c->ca_key + " -out " + c->ca_pem +
                 " -days 3650 -subj '/O=asyncio-cpp tests/CN=asyncio-cpp test CA'");
    auto signed_cert = [&](const std::string& name, const std::string& cn, const std::string& ext,
                           std::string& pem, std::string& k) {
      pem = path((name + ".pem").c_str());
      k = path((name + ".key").c_str());
      const std::string csr = path((name + ".csr").c_str());
      const std::string extfile = path((name + ".ext").c_str());
      std::ofstream(extfile) << ext << "\n";
      run_or_throw("openssl req -new" + key + " -keyout " + k + " -out " + csr +
                   " -subj '/O=asyncio-cpp tests/CN=" + cn + "'");
      run_or_throw("openssl x509 -req -in " + csr + " -CA " + c->ca_pem + " -CAkey " + c->ca_key +
                   " -CAcreateserial -days 3650 -out " + pem + " -extfile " + extfile);
    };
    signed_cert("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
                c->server_pem, c->server_key);
    signed_cert("wrong", "wrong.example", "subjectAltName=DNS:wrong.example", c->wrong_pem,
                c->wrong_key);
    signed_cert("client", "asyncio-cpp test client", "extendedKeyUsage=clientAuth", c->client_pem,
                c->client_key);
    c->self_signed_pem = path("self.pem");
    c->self_signed_key = path("self.key");
    run_or_throw("openssl req -x509" + key + " -keyout " + c->self_signed_key + " -out " +
                 c->self_signed_pem +
                 " -days 3650 -subj '/CN=localhost' -addext subjectAltName=DNS:localhost");
    return c;
  }();
  return *made;
}

inline asyncio::ssl::SSLContext server_context() {
  asyncio::ssl::SSLContext ctx(asyncio::ssl::PROTOCOL_TLS_SERVER);
  ctx.load_cert_chain(certs().server_pem, certs().server_key);
  return ctx;
}

inline asyncio::ssl::SSLContext client_context() {
  asyncio::ssl::SSLContext ctx(asyncio::ssl::PROTOCOL_TLS_CLIENT);
  ctx.load_verify_locations(certs().ca_pem);
  return ctx;
}

}  // namespace asyncio_test
