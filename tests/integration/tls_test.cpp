// Integration tests of TLS (asyncio/ssl.hpp; the `.ssl` options of open_connection,
// start_server, create_connection, create_server and their Unix variants; start_tls) over
// loopback, on BOTH I/O engines, with certificates made at test time (tls_test.hpp).
//
// Several tests follow one of CPython 3.12's (the comment names it: test_asyncio/test_ssl.py,
// test_sslproto.py, test_streams.py's TLS cases); the others pin down what the headers and
// docs/design/tls.md promise: verification failures are SSLCertVerificationError naming the
// reason, a peer that speaks plaintext or garbage fails only its own connection, the handshake
// and shutdown time-outs fire, a stream cut without close_notify reads as EOF (Python 3.12),
// cancelling mid-handshake or mid-drain leaves nothing behind (fds counted, ASan/LSan for
// OpenSSL objects), drain() back-pressure works through TLS.
//
// Every test's coroutine runs under a time-out (kBound); waits on real I/O are bounded.
#include "tls_test.hpp"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"
#include "engine_test.hpp"
#include "net_test.hpp"

namespace {

namespace ssl = asyncio::ssl;
using asyncio::Backend;
using asyncio::ConnectionOptions;
using asyncio::Coro;
using asyncio::RunOptions;
using asyncio::ServerOptions;
using asyncio::StreamReader;
using asyncio::StreamWriter;
using asyncio_test::certs;
using asyncio_test::client_context;
using asyncio_test::holds;
using asyncio_test::io_uring_refused;
using asyncio_test::param_name;
using asyncio_test::server_context;
using asyncio_test::what_of;

constexpr double kBound = 60.0;

class TlsTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::io_uring) {
      if (auto why = io_uring_refused()) GTEST_SKIP() << "io_uring is not available: " << *why;
    }
    if (!asyncio_test::have_openssl_cli())
      GTEST_SKIP() << "no openssl command to make certificates";
    (void)certs();  // made before the fds are counted
    fds_before_ = asyncio_test::open_fds();
  }
  void TearDown() override {
    if (!IsSkipped()) {
      EXPECT_EQ(asyncio_test::open_fds(), fds_before_) << "an fd leaked";
    }
  }
  void run(Coro<void> main) {
    asyncio::run(asyncio_test::bounded_on_engine(std::move(main), GetParam(), kBound),
                 RunOptions{.backend = GetParam()});
  }

  std::size_t fds_before_ = 0;
};

/// An echo handler: every byte back until EOF, then close.
Coro<void> echo_handler(StreamReader r, StreamWriter w) {
  for (;;) {
    std::string data = co_await r.read(65536);
    if (data.empty()) break;
    w.write(data);
    co_await w.drain();
  }
  w.close();
  co_await w.wait_closed();
}

/// The what() of the ValueError that awaiting `c` throws ("<no ValueError: ...>" otherwise).
template <class T>
Coro<std::string> value_error(Coro<T> c) {
  try {
    (void)co_await std::move(c);
  } catch (const asyncio::ValueError& e) {
    co_return e.what();
  } catch (const std::exception& e) {
    co_return std::string("<no ValueError: ") + e.what() + ">";
  }
  co_return "<no error>";
}

/// One line through the TLS echo server at `port`: it still serves new clients.
Coro<void> expect_serves(std::uint16_t port, const ssl::SSLContext& cctx, std::string line) {
  auto [r, w] =
      co_await asyncio::open_connection("127.0.0.1", port, ConnectionOptions{.ssl = cctx});
  w.write(line);
  EXPECT_EQ(co_await r.readline(), line);
  w.close();
  co_await w.wait_closed();
}

/// A pattern of `n` bytes that a shifted or lost byte would break.
std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 251) & 0xff);
  return s;
}

// ---- Streams over TLS ---------------------------------------------------------------------------

// test_streams::test_open_connection_ssl / test_ssl::test_create_server_ssl_1 with streams.
Coro<void> echo_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Server server =
      co_await asyncio::start_server(echo_handler, "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  auto [r, w] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx});
  w.write("hello over TLS\n");
  EXPECT_EQ(co_await r.readline(), "hello over TLS\n");
  w.write("and again\n");
  EXPECT_EQ(co_await r.readline(), "and again\n");
  w.close();
  co_await w.wait_closed();
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, EchoOverStreams) {
  run(echo_body());
}

// test_ssl::test_create_connection_ssl_1 with 1 MiB: every byte, both ways, with drain().
Coro<void> large_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Server server =
      co_await asyncio::start_server(echo_handler, "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  auto [r, w] =
      co_await asyncio::open_connection("localhost", server.port(), ConnectionOptions{.ssl = cctx});
  const std::string data = pattern(1 << 20);
  auto sender = asyncio::create_task([](StreamWriter w, std::string data) -> Coro<void> {
    for (std::size_t off = 0; off < data.size(); off += 100000) {
      w.write(std::string_view(data).substr(off, 100000));
      co_await w.drain();
    }
  }(w, data));
  std::string got = co_await r.readexactly(data.size());
  co_await sender;
  EXPECT_TRUE(got == data) << "the echoed bytes differ";
  w.close();
  co_await w.wait_closed();
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, OneMebibyteEchoedIntact) {
  run(large_body());
}

// What a TLS connection tells about itself (Python: get_extra_info('peercert'), 'cipher',
// 'ssl_object', 'sslcontext'), and the plain transport's names still.
Coro<void> extra_info_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  std::optional<ssl::Cipher> server_cipher;
  std::string server_version;
  asyncio::Server server = co_await asyncio::start_server(
      [&](StreamReader r, StreamWriter w) -> Coro<void> {
        std::any c = w.get_extra_info("cipher");
        if (c.has_value()) server_cipher = std::any_cast<ssl::Cipher>(c);
        auto obj = std::any_cast<ssl::SSLObject>(w.get_extra_info("ssl_object"));
        server_version = obj.version();
        EXPECT_TRUE(obj.server_side());
        EXPECT_FALSE(w.get_extra_info("peercert").has_value());  // no client certificate
        co_await echo_handler(r, w);
      },
      "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  auto [r, w] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx});
  std::any pc = w.get_extra_info("peercert");
  EXPECT_TRUE(pc.has_value());
  if (pc.has_value()) {
    auto cert = std::any_cast<ssl::Certificate>(pc);
    EXPECT_EQ(cert.version, 3);
    bool cn = false;
    for (auto& [k, v] : cert.subject) cn = cn || (k == "commonName" && v == "localhost");
    EXPECT_TRUE(cn);
    const std::vector<std::pair<std::string, std::string>> san{
        {"DNS", "localhost"}, {"IP Address", "127.0.0.1"}, {"IP Address", "0:0:0:0:0:0:0:1"}};
    EXPECT_EQ(cert.subject_alt_name, san);
    EXPECT_FALSE(cert.not_after.empty());
    EXPECT_FALSE(cert.serial_number.empty());
  }
  auto cipher = std::any_cast<ssl::Cipher>(w.get_extra_info("cipher"));
  EXPECT_EQ(cipher.protocol, "TLSv1.3");
  EXPECT_GE(cipher.secret_bits, 128);
  auto obj = std::any_cast<ssl::SSLObject>(w.get_extra_info("ssl_object"));
  EXPECT_EQ(obj.version(), "TLSv1.3");
  EXPECT_FALSE(obj.server_side());
  EXPECT_EQ(obj.server_hostname(), "127.0.0.1");
  EXPECT_FALSE(obj.getpeercert_der().empty());
  auto ctx = std::any_cast<ssl::SSLContext>(w.get_extra_info("sslcontext"));
  EXPECT_EQ(ctx.native_handle(), cctx.native_handle());  // a handle of the same context
  EXPECT_EQ(w.peername().port(), server.port());
  EXPECT_TRUE(w.get_extra_info("socket").has_value());
  w.write("x");
  EXPECT_EQ(co_await r.read(1), "x");
  EXPECT_TRUE(server_cipher.has_value());
  EXPECT_EQ(server_cipher ? server_cipher->name : "", cipher.name);
  EXPECT_EQ(server_version, "TLSv1.3");
  w.close();
  co_await w.wait_closed();
  EXPECT_FALSE(w.get_extra_info("ssl_object").has_value());  // gone with the connection
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, ExtraInfoDescribesTheConnection) {
  run(extra_info_body());
}

// A context limited to TLS 1.2 negotiates TLS 1.2 (Python: maximum_version).
Coro<void> tls12_body() {
  const ssl::SSLContext sctx = server_context();
  ssl::SSLContext cctx = client_context();
  cctx.set_maximum_version(ssl::TLSVersion::TLSv1_2);
  EXPECT_EQ(cctx.maximum_version(), ssl::TLSVersion::TLSv1_2);
  asyncio::Server server =
      co_await asyncio::start_server(echo_handler, "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  auto [r, w] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx});
  EXPECT_EQ(std::any_cast<ssl::Cipher>(w.get_extra_info("cipher")).protocol, "TLSv1.2");
  w.write("twelve\n");
  EXPECT_EQ(co_await r.readline(), "twelve\n");
  w.close();
  co_await w.wait_closed();
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, MaximumVersionTls12) {
  run(tls12_body());
}

// The server name: SNI and the name checked are server_hostname when given (here: connecting
// to an address, checking the name "localhost").
Coro<void> server_hostname_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  std::string sni;
  asyncio::Server server = co_await asyncio::start_server(
      [&](StreamReader r, StreamWriter w) -> Coro<void> {
        auto obj = std::any_cast<ssl::SSLObject>(w.get_extra_info("ssl_object"));
        const char* name = SSL_get_servername(obj.native_handle(), TLSEXT_NAMETYPE_host_name);
        sni = name != nullptr ? name : "";
        co_await echo_handler(r, w);
      },
      "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  auto [r, w] = co_await asyncio::open_connection(
      "127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx, .server_hostname = "localhost"});
  EXPECT_EQ(std::any_cast<ssl::SSLObject>(w.get_extra_info("ssl_object")).server_hostname(),
            "localhost");
  w.write("sni\n");
  EXPECT_EQ(co_await r.readline(), "sni\n");
  EXPECT_EQ(sni, "localhost");
  w.close();
  co_await w.wait_closed();
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, ServerHostnameIsSentAndChecked) {
  run(server_hostname_body());
}

// Over a Unix-domain socket (server_hostname is required there).
Coro<void> unix_body() {
  asyncio_test::TempDir dir;
  const std::string path = dir.file("tls.sock");
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Server server =
      co_await asyncio::start_unix_server(echo_handler, path, ServerOptions{.ssl = sctx});
  EXPECT_EQ(
      co_await value_error(asyncio::open_unix_connection(path, ConnectionOptions{.ssl = cctx})),
      "You must set server_hostname when using ssl without a host");
  auto [r, w] = co_await asyncio::open_unix_connection(
      path, ConnectionOptions{.ssl = cctx, .server_hostname = "localhost"});
  w.write("unix tls\n");
  EXPECT_EQ(co_await r.readline(), "unix tls\n");
  w.close();
  co_await w.wait_closed();
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, OverUnixSockets) {
  run(unix_body());
}

// Many clients at once, each its own handshake (test_ssl::test_create_connection_ssl_1's
// concurrency).
Coro<void> many_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Server server =
      co_await asyncio::start_server(echo_handler, "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  const std::uint16_t port = server.port();
  std::vector<asyncio::Task<std::string>> clients;
  for (int i = 0; i < 40; ++i) {
    clients.push_back(asyncio::create_task(
        [](std::uint16_t port, const ssl::SSLContext& ctx, int i) -> Coro<std::string> {
          auto [r, w] =
              co_await asyncio::open_connection("127.0.0.1", port, ConnectionOptions{.ssl = ctx});
          w.write("client " + std::to_string(i) + "\n");
          std::string line = co_await r.readline();
          w.close();
          co_await w.wait_closed();
          co_return line;
        }(port, cctx, i)));
  }
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(co_await clients[static_cast<std::size_t>(i)], "client " + std::to_string(i) + "\n");
  }
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, FortyClientsAtOnce) {
  run(many_body());
}

// Closing sends close_notify: the peer reads EOF (test_ssl::test_shutdown_cleanly).
Coro<void> close_notify_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Event eof_seen;
  asyncio::Server server = co_await asyncio::start_server(
      [&](StreamReader r, StreamWriter w) -> Coro<void> {
        EXPECT_EQ(co_await r.read(), "last words");  // read(-1): until EOF
        EXPECT_TRUE(r.at_eof());
        eof_seen.set();
        w.close();
        co_await w.wait_closed();
      },
      "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  auto [r, w] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx});
  w.write("last words");
  w.close();
  EXPECT_TRUE(w.is_closing());
  co_await w.wait_closed();
  co_await eof_seen.wait();
  EXPECT_EQ(co_await r.read(), "");
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, CloseSendsCloseNotify) {
  run(close_notify_body());
}

// A TLS stream cut without close_notify (the server's socket shut down under its TLS layer)
// reads as EOF, as in Python 3.12 (sslproto's eof_received in WRAPPED).
Coro<void> truncated_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Event done;
  asyncio::Event cut;
  asyncio::Server server = co_await asyncio::start_server(
      [&](StreamReader r, StreamWriter w) -> Coro<void> {
        w.write("before the cut\n");
        co_await w.drain();
        // drain() does not mean "sent" (io_uring's send op may still hold the bytes): cut once
        // the client has them.
        co_await cut.wait();
        const int fd = std::any_cast<int>(w.get_extra_info("socket"));
        ::shutdown(fd, SHUT_WR);  // EOF on the wire, no close_notify
        co_await done.wait();
        (void)r;
        w.close();
      },
      "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  auto [r, w] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx});
  EXPECT_EQ(co_await r.readline(), "before the cut\n");
  cut.set();
  EXPECT_EQ(co_await r.read(), "");
  EXPECT_TRUE(r.at_eof());
  done.set();
  co_await w.wait_closed();
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, TruncatedStreamReadsAsEof) {
  run(truncated_body());
}

// TLS has no half-close (Python: write_eof raises NotImplementedError, can_write_eof False);
// writes after close() are dropped.
Coro<void> no_write_eof_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Server server =
      co_await asyncio::start_server(echo_handler, "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  auto [r, w] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx});
  EXPECT_FALSE(w.can_write_eof());
  EXPECT_THROW(w.write_eof(), asyncio::RuntimeError);
  w.close();
  // close_notify may still be buffered (io_uring's send op holds it until the next pass).
  const std::size_t before = w.transport().get_write_buffer_size();
  w.write("dropped");  // no error, nothing sent
  EXPECT_EQ(w.transport().get_write_buffer_size(), before);
  co_await w.wait_closed();
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, NoHalfCloseAndWritesAfterCloseDropped) {
  run(no_write_eof_body());
}

// drain() back-pressure through TLS: a writer to a peer that does not read suspends at the
// high-water mark, and resumes once the peer reads.
Coro<void> drain_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Event start_reading;
  std::size_t total = 0;
  asyncio::Server server = co_await asyncio::start_server(
      [&](StreamReader r, StreamWriter w) -> Coro<void> {
        co_await start_reading.wait();
        for (;;) {
          std::string d = co_await r.read(65536);
          if (d.empty()) break;
          total += d.size();
        }
        w.close();
      },
      "127.0.0.1", 0, ServerOptions{.limit = 16384, .ssl = sctx});
  auto [r, w] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx});
  const std::string chunk(256 * 1024, 'x');
  std::size_t sent = 0;
  bool blocked = false;
  for (int i = 0; i < 400 && !blocked; ++i) {  // at most 100 MiB
    w.write(chunk);
    sent += chunk.size();
    auto d = asyncio::create_task(w.drain());
    co_await asyncio::sleep(0.01);
    if (!d.done()) {
      blocked = true;
      EXPECT_GT(w.transport().get_write_buffer_size(), 0U);
      start_reading.set();
      co_await d;
    } else {
      co_await d;
    }
  }
  EXPECT_TRUE(blocked) << "drain() never waited";
  start_reading.set();
  w.close();
  co_await w.wait_closed();
  server.close();
  co_await server.wait_closed();
  EXPECT_EQ(total, sent);
}
TEST_P(TlsTest, DrainWaitsForASlowReader) {
  run(drain_body());
}

// ---- Verification
// --------------------------------------------------------------------------------

Coro<std::exception_ptr> connect_error(std::uint16_t port, const ssl::SSLContext& ctx,
                                       std::optional<std::string_view> hostname = std::nullopt) {
  try {
    auto [r, w] = co_await asyncio::open_connection(
        "127.0.0.1", port, ConnectionOptions{.ssl = ctx, .server_hostname = hostname});
    w.close();
    co_await w.wait_closed();
  } catch (...) {
    co_return std::current_exception();
  }
  co_return nullptr;
}

// test_ssl::test_create_connection_ssl_failed_certificate: a self-signed server certificate.
Coro<void> self_signed_body() {
  ssl::SSLContext sctx(ssl::PROTOCOL_TLS_SERVER);
  sctx.load_cert_chain(certs().self_signed_pem, certs().self_signed_key);
  const ssl::SSLContext cctx = client_context();
  int served = 0;
  asyncio::Server server = co_await asyncio::start_server(
      [&](StreamReader r, StreamWriter w) -> Coro<void> {
        ++served;
        co_await echo_handler(r, w);
      },
      "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  std::exception_ptr e = co_await connect_error(server.port(), cctx, "localhost");
  EXPECT_TRUE(holds<ssl::SSLCertVerificationError>(e)) << what_of(e);
  EXPECT_TRUE(holds<ssl::SSLError>(e));
  EXPECT_TRUE(holds<asyncio::OSError>(e));
  EXPECT_NE(what_of(e).find("CERTIFICATE_VERIFY_FAILED"), std::string::npos) << what_of(e);
  EXPECT_NE(what_of(e).find("self-signed certificate"), std::string::npos) << what_of(e);
  try {
    std::rethrow_exception(e);
  } catch (const ssl::SSLCertVerificationError& v) {
    EXPECT_EQ(v.verify_code(), 18);  // X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
    EXPECT_EQ(v.verify_message(), "self-signed certificate");
    EXPECT_EQ(v.reason(), "CERTIFICATE_VERIFY_FAILED");
    EXPECT_EQ(v.code().value(), 1);
  } catch (...) {
  }
  // Without verification it connects.
  ssl::SSLContext lax(ssl::PROTOCOL_TLS_CLIENT);
  lax.set_check_hostname(false);
  lax.set_verify_mode(ssl::CERT_NONE);
  auto [r, w] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), ConnectionOptions{.ssl = lax});
  w.write("lax\n");
  EXPECT_EQ(co_await r.readline(), "lax\n");
  // Not verified: the peer certificate is not decoded (Python gives {}).
  auto unverified = std::any_cast<ssl::Certificate>(w.get_extra_info("peercert"));
  EXPECT_TRUE(unverified.subject.empty());
  w.close();
  co_await w.wait_closed();
  EXPECT_EQ(served, 1);  // the failed one never reached the handler
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, SelfSignedCertificateFailsVerification) {
  run(self_signed_body());
}

// test_ssl::test_create_connection_ssl_match_failed: a certificate for another host.
Coro<void> wrong_host_body() {
  ssl::SSLContext sctx(ssl::PROTOCOL_TLS_SERVER);
  sctx.load_cert_chain(certs().wrong_pem, certs().wrong_key);
  const ssl::SSLContext cctx = client_context();
  asyncio::Server server =
      co_await asyncio::start_server(echo_handler, "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  std::exception_ptr e = co_await connect_error(server.port(), cctx, "localhost");
  EXPECT_TRUE(holds<ssl::SSLCertVerificationError>(e)) << what_of(e);
  EXPECT_NE(what_of(e).find("Hostname mismatch, certificate is not valid for 'localhost'."),
            std::string::npos)
      << what_of(e);
  // By address: the IP is checked against the IP entries.
  e = co_await connect_error(server.port(), cctx);
  EXPECT_NE(what_of(e).find("IP address mismatch"), std::string::npos) << what_of(e);
  // With host-name checking off the (trusted) certificate is accepted.
  ssl::SSLContext nocheck = client_context();
  nocheck.set_check_hostname(false);
  EXPECT_EQ(co_await connect_error(server.port(), nocheck, "localhost"), nullptr);
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, WrongHostCertificateFailsVerification) {
  run(wrong_host_body());
}

// A client that trusts nothing (no CA loaded) refuses a CA-signed certificate.
Coro<void> untrusted_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext bare(ssl::PROTOCOL_TLS_CLIENT);
  asyncio::Server server =
      co_await asyncio::start_server(echo_handler, "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  std::exception_ptr e = co_await connect_error(server.port(), bare);
  EXPECT_TRUE(holds<ssl::SSLCertVerificationError>(e)) << what_of(e);
  EXPECT_NE(what_of(e).find("unable to get local issuer certificate"), std::string::npos)
      << what_of(e);
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, UnknownIssuerFailsVerification) {
  run(untrusted_body());
}

// Mutual TLS: the server requires and verifies a client certificate (test_ssl's
// test_create_server_ssl_verified).
Coro<void> mutual_body() {
  ssl::SSLContext sctx = server_context();
  sctx.load_verify_locations(certs().ca_pem);
  sctx.set_verify_mode(ssl::CERT_REQUIRED);
  EXPECT_EQ(sctx.verify_mode(), ssl::CERT_REQUIRED);
  std::string client_cn;
  asyncio::Server server = co_await asyncio::start_server(
      [&](StreamReader r, StreamWriter w) -> Coro<void> {
        auto cert = std::any_cast<ssl::Certificate>(w.get_extra_info("peercert"));
        for (auto& [k, v] : cert.subject) {
          if (k == "commonName") client_cn = v;
        }
        co_await echo_handler(r, w);
      },
      "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  ssl::SSLContext cctx = client_context();
  cctx.load_cert_chain(certs().client_pem, certs().client_key);
  auto [r, w] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx});
  w.write("mutual\n");
  EXPECT_EQ(co_await r.readline(), "mutual\n");
  EXPECT_EQ(client_cn, "asyncio-cpp test client");
  w.close();
  co_await w.wait_closed();
  // Without a certificate the server refuses: the client's first read fails or ends.
  const ssl::SSLContext anonymous = client_context();
  try {
    auto [r2, w2] = co_await asyncio::open_connection("127.0.0.1", server.port(),
                                                      ConnectionOptions{.ssl = anonymous});
    w2.write("let me in\n");
    std::string got;
    try {
      got = co_await r2.readline();
    } catch (const ssl::SSLError&) {
    } catch (const asyncio::ConnectionError&) {
    }
    EXPECT_EQ(got, "");
    w2.close();
    co_await w2.wait_closed();
  } catch (const ssl::SSLError&) {  // TLS 1.2 would fail in the handshake
  }
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, MutualTlsVerifiesTheClient) {
  run(mutual_body());
}

// ALPN: the server picks the first of its protocols the client offers (Python:
// selected_alpn_protocol()).
Coro<void> alpn_body() {
  ssl::SSLContext sctx = server_context();
  sctx.set_alpn_protocols({"h2", "http/1.1"});
  ssl::SSLContext cctx = client_context();
  cctx.set_alpn_protocols({"http/1.1", "spdy/3"});
  EXPECT_EQ(cctx.alpn_protocols(), (std::vector<std::string>{"http/1.1", "spdy/3"}));
  std::string server_chose;
  asyncio::Server server = co_await asyncio::start_server(
      [&](StreamReader r, StreamWriter w) -> Coro<void> {
        server_chose =
            std::any_cast<ssl::SSLObject>(w.get_extra_info("ssl_object")).selected_alpn_protocol();
        co_await echo_handler(r, w);
      },
      "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  auto [r, w] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx});
  EXPECT_EQ(std::any_cast<ssl::SSLObject>(w.get_extra_info("ssl_object")).selected_alpn_protocol(),
            "http/1.1");
  w.write("alpn\n");
  EXPECT_EQ(co_await r.readline(), "alpn\n");
  EXPECT_EQ(server_chose, "http/1.1");
  w.close();
  co_await w.wait_closed();
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, AlpnSelectsAProtocol) {
  run(alpn_body());
}

// ---- Faults -------------------------------------------------------------------------------------

// A peer that speaks plaintext to a TLS server fails only its own connection: the server goes
// on serving TLS clients (test_ssl::test_handshake_failure... with garbage).
Coro<void> plaintext_peer_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Server server =
      co_await asyncio::start_server(echo_handler, "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  for (std::string_view junk : {std::string_view("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                                std::string_view("\x16\x03\x01\x00\x05garbagegarbage", 19)}) {
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    w.write(junk);
    std::string got;
    try {
      got = co_await r.read();  // the server closes (it may send a TLS alert first)
    } catch (const asyncio::ConnectionError&) {
    }
    EXPECT_EQ(got.find("GET"), std::string::npos);
    w.close();
    co_await w.wait_closed();
  }
  co_await expect_serves(server.port(), cctx, "still serving\n");
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, PlaintextPeerFailsOnlyItsConnection) {
  run(plaintext_peer_body());
}

// A TLS client that meets a server speaking something else gets an SSLError.
Coro<void> garbage_server_body() {
  asyncio::Server server = co_await asyncio::start_server(
      [](StreamReader r, StreamWriter w) -> Coro<void> {
        (void)co_await r.read(10);
        w.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        co_await w.drain();
        w.close();
        co_await w.wait_closed();
      },
      "127.0.0.1", 0);
  const ssl::SSLContext cctx = client_context();
  std::exception_ptr e = co_await connect_error(server.port(), cctx);
  EXPECT_TRUE(holds<ssl::SSLError>(e)) << what_of(e);
  EXPECT_FALSE(holds<ssl::SSLCertVerificationError>(e));
  EXPECT_NE(what_of(e).find("[SSL: "), std::string::npos) << what_of(e);
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, GarbageFromTheServerIsAnSslError) {
  run(garbage_server_body());
}

// The client's handshake time-out: a server that accepts and never answers (test_ssl's
// test_ssl_handshake_timeout): ConnectionAbortedError, nothing left open.
Coro<void> client_timeout_body() {
  asyncio::Event release;
  asyncio::Server server = co_await asyncio::start_server(
      [&](StreamReader r, StreamWriter w) -> Coro<void> {
        (void)r;
        co_await release.wait();
        w.close();
      },
      "127.0.0.1", 0);
  const ssl::SSLContext cctx = client_context();
  const double t0 = asyncio::get_running_loop().time();
  std::exception_ptr e;
  try {
    auto [r, w] = co_await asyncio::open_connection(
        "127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx, .ssl_handshake_timeout = 0.3});
  } catch (...) {
    e = std::current_exception();
  }
  EXPECT_TRUE(holds<asyncio::ConnectionAbortedError>(e)) << what_of(e);
  EXPECT_NE(what_of(e).find("SSL handshake is taking longer than"), std::string::npos);
  EXPECT_GE(asyncio::get_running_loop().time() - t0, 0.25);
  release.set();
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, ClientHandshakeTimeout) {
  run(client_timeout_body());
}

// The server's: a peer that connects and vanishes into silence mid-handshake is dropped after
// ssl_handshake_timeout; the server keeps serving.
Coro<void> server_timeout_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Server server = co_await asyncio::start_server(
      echo_handler, "127.0.0.1", 0, ServerOptions{.ssl = sctx, .ssl_handshake_timeout = 0.3});
  auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
  w.write(std::string_view("\x16\x03\x01\x02\x00\x01", 6));  // the start of a ClientHello
  std::string got = "?";
  try {
    got = co_await asyncio::wait_for(r.read(), 10.0);  // closed by the server's time-out
  } catch (const asyncio::ConnectionError&) {
    got = "";
  }
  EXPECT_EQ(got, "");
  w.close();
  co_await w.wait_closed();
  auto [r2, w2] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx});
  w2.write("after\n");
  EXPECT_EQ(co_await r2.readline(), "after\n");
  w2.close();
  co_await w2.wait_closed();
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, ServerHandshakeTimeoutDropsASilentPeer) {
  run(server_timeout_body());
}

// A peer that vanishes mid-handshake (connects, sends half a ClientHello, closes): its
// connection ends, the server serves on.
Coro<void> vanish_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Server server =
      co_await asyncio::start_server(echo_handler, "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  for (int i = 0; i < 3; ++i) {
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    w.write(std::string_view("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11));
    co_await w.drain();
    w.transport().abort();
    co_await w.wait_closed();
  }
  auto [r, w] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx});
  w.write("ok\n");
  EXPECT_EQ(co_await r.readline(), "ok\n");
  w.close();
  co_await w.wait_closed();
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, PeerVanishingMidHandshake) {
  run(vanish_body());
}

// Cancelling open_connection in the middle of its handshake leaves no connection, fd or TLS
// object behind (fds counted by the fixture, OpenSSL objects by LSan).
Coro<void> cancel_handshake_body() {
  asyncio::Event release;
  asyncio::Server server = co_await asyncio::start_server(
      [&](StreamReader r, StreamWriter w) -> Coro<void> {
        (void)r;
        co_await release.wait();
        w.close();
      },
      "127.0.0.1", 0);
  const ssl::SSLContext cctx = client_context();
  auto t = asyncio::create_task(
      asyncio::open_connection("127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx}));
  co_await asyncio::sleep(0.1);
  EXPECT_FALSE(t.done());
  t.cancel();
  EXPECT_THROW(co_await t, asyncio::CancelledError);
  release.set();
  server.close();
  co_await server.wait_closed();
  co_await asyncio::sleep(0.05);  // the aborted transport's connection_lost
}
TEST_P(TlsTest, CancelledHandshakeLeavesNothing) {
  run(cancel_handshake_body());
}

// Cancelling a task blocked in a TLS drain(): the connection stays usable and closes cleanly.
Coro<void> cancel_drain_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Event start_reading;
  std::size_t total = 0;
  asyncio::Server server = co_await asyncio::start_server(
      [&](StreamReader r, StreamWriter w) -> Coro<void> {
        co_await start_reading.wait();
        for (;;) {
          std::string d = co_await r.read(65536);
          if (d.empty()) break;
          total += d.size();
        }
        w.close();
      },
      "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  auto [r, w] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx});
  const std::string chunk(1 << 20, 'y');
  std::size_t sent = 0;
  std::optional<asyncio::Task<void>> blocked;
  for (int i = 0; i < 100 && !blocked; ++i) {
    w.write(chunk);
    sent += chunk.size();
    auto d = asyncio::create_task(w.drain());
    co_await asyncio::sleep(0.01);
    if (!d.done()) {
      blocked = std::move(d);
    } else {
      co_await d;
    }
  }
  EXPECT_TRUE(blocked.has_value());
  if (blocked) {
    blocked->cancel();
    EXPECT_THROW(co_await *blocked, asyncio::CancelledError);
  }
  EXPECT_FALSE(w.is_closing());
  start_reading.set();
  co_await w.drain();  // usable: drains once the reader reads
  w.write("tail");
  sent += 4;
  w.close();
  co_await w.wait_closed();
  server.close();
  co_await server.wait_closed();
  EXPECT_EQ(total, sent);
}
TEST_P(TlsTest, CancelledDrainLeavesTheStreamUsable) {
  run(cancel_drain_body());
}

// ---- start_tls --------------------------------------------------------------------------------

// test_streams / test_ssl's test_start_tls_server_1 & client: a plaintext exchange, then both
// ends upgrade the same connection (STARTTLS).
Coro<void> starttls_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  std::string server_got;
  asyncio::Server server = co_await asyncio::start_server(
      [&](StreamReader r, StreamWriter w) -> Coro<void> {
        EXPECT_EQ(co_await r.readline(), "STARTTLS\n");
        w.write("GO\n");
        co_await w.drain();
        co_await w.start_tls(sctx);
        EXPECT_TRUE(w.get_extra_info("cipher").has_value());
        server_got = co_await r.readline();
        w.write("secret reply\n");
        co_await w.drain();
        w.close();
        co_await w.wait_closed();
      },
      "127.0.0.1", 0);
  auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
  EXPECT_FALSE(w.get_extra_info("cipher").has_value());
  w.write("STARTTLS\n");
  EXPECT_EQ(co_await r.readline(), "GO\n");
  co_await w.start_tls(cctx, {.server_hostname = "localhost"});
  EXPECT_TRUE(w.get_extra_info("cipher").has_value());
  EXPECT_TRUE(w.get_extra_info("peercert").has_value());
  w.write("secret\n");
  EXPECT_EQ(co_await r.readline(), "secret reply\n");
  EXPECT_EQ(server_got, "secret\n");
  w.close();
  co_await w.wait_closed();
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, StartTlsUpgradesAStream) {
  run(starttls_body());
}

// start_tls' checks (Python's): the side's context, check_hostname needs a name, positive
// time-outs; and a failed upgrade closes the connection.
Coro<void> starttls_errors_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Server server = co_await asyncio::start_server(
      [](StreamReader r, StreamWriter w) -> Coro<void> {
        (void)co_await r.read();
        w.close();
      },
      "127.0.0.1", 0);
  auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
  EXPECT_THROW((void)w.start_tls(sctx, {.server_hostname = "localhost"}), asyncio::ValueError);
  EXPECT_THROW((void)w.start_tls(cctx), asyncio::ValueError);  // check_hostname, no name
  EXPECT_THROW((void)w.start_tls(cctx, {.server_side = true}), asyncio::ValueError);
  EXPECT_THROW(
      (void)w.start_tls(cctx, {.server_hostname = "localhost", .ssl_handshake_timeout = 0}),
      asyncio::ValueError);
  // The peer never answers the handshake: the time-out aborts it and closes the connection.
  std::exception_ptr e;
  try {
    co_await w.start_tls(cctx, {.server_hostname = "localhost", .ssl_handshake_timeout = 0.2});
  } catch (...) {
    e = std::current_exception();
  }
  EXPECT_TRUE(holds<asyncio::ConnectionAbortedError>(e)) << what_of(e);
  // The stream's protocol had its connection_made(): it gets connection_lost with the error,
  // which wait_closed() reports as Python's does.
  EXPECT_THROW(co_await w.wait_closed(), asyncio::ConnectionAbortedError);
  EXPECT_TRUE(w.is_closing());
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, StartTlsChecksAndFailures) {
  run(starttls_errors_body());
}

// ---- Transports and protocols over TLS
// ------------------------------------------------------------

/// A BufferedProtocol (get_buffer/buffer_updated) that collects what arrives.
struct Collector final : asyncio::BufferedProtocol {
  std::vector<std::byte> buf = std::vector<std::byte>(1000);
  std::string data;
  asyncio::Transport* transport = nullptr;
  asyncio::Event got_eof;
  asyncio::Event lost;
  std::exception_ptr lost_with;
  int made = 0;
  void connection_made(asyncio::Transport& t) override {
    transport = &t;
    ++made;
  }
  std::span<std::byte> get_buffer(std::size_t) override { return buf; }
  void buffer_updated(std::size_t n) override {
    data.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  bool eof_received() override {
    got_eof.set();
    return false;
  }
  void connection_lost(std::exception_ptr exc) override {
    lost_with = exc;
    lost.set();
  }
};

// create_connection/create_server with `.ssl`: a Protocol server, a BufferedProtocol client
// (its small buffer filled many times); connection_made comes after the handshake.
Coro<void> protocols_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  struct Echo final : asyncio::Protocol {
    asyncio::Transport* t = nullptr;
    void connection_made(asyncio::Transport& tr) override {
      t = &tr;
      EXPECT_TRUE(tr.get_extra_info("cipher").has_value());  // the handshake is done
    }
    void data_received(std::string_view d) override { t->write(d); }
  };
  asyncio::Server server = co_await asyncio::create_server(
      [] { return std::make_shared<Echo>(); }, "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  auto [t, p] =
      co_await asyncio::create_connection([] { return std::make_shared<Collector>(); }, "127.0.0.1",
                                          server.port(), ConnectionOptions{.ssl = cctx});
  EXPECT_EQ(p->made, 1);
  EXPECT_EQ(p->transport, t.get());
  EXPECT_EQ(t->get_protocol(), p);
  const std::string msg = pattern(50000);
  t->write(msg);
  for (int i = 0; i < 2000 && p->data.size() < msg.size(); ++i) co_await asyncio::sleep(0.005);
  EXPECT_TRUE(p->data == msg);
  t->close();
  co_await p->lost.wait();
  EXPECT_EQ(p->lost_with, nullptr);
  EXPECT_TRUE(t->is_closing());
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, ProtocolAndBufferedProtocolOverTls) {
  run(protocols_body());
}

// asyncio::start_tls on a plain transport with a protocol (Python: loop.start_tls).
Coro<void> loop_start_tls_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Server server = co_await asyncio::start_server(
      [&](StreamReader r, StreamWriter w) -> Coro<void> {
        co_await w.start_tls(sctx);
        co_await echo_handler(r, w);
      },
      "127.0.0.1", 0);
  auto [plain, p] = co_await asyncio::create_connection(
      [] { return std::make_shared<Collector>(); }, "127.0.0.1", server.port());
  std::shared_ptr<asyncio::Transport> tls =
      co_await asyncio::start_tls(plain, p, cctx, {.server_hostname = "localhost"});
  EXPECT_NE(tls, plain);
  EXPECT_EQ(p->made, 1);  // no second connection_made
  EXPECT_THROW((void)co_await asyncio::start_tls(tls, p, cctx, {.server_hostname = "localhost"}),
               asyncio::RuntimeError);
  tls->write("through the upgraded transport");
  for (int i = 0; i < 2000 && p->data.size() < 30; ++i) co_await asyncio::sleep(0.005);
  EXPECT_EQ(p->data, "through the upgraded transport");
  tls->close();
  co_await p->lost.wait();
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, LoopStartTlsReturnsANewTransport) {
  run(loop_start_tls_body());
}

// start_tls on a transport that is not a socket's (Python: TypeError "... is not supported by
// start_tls()", for a transport that is not _start_tls_compatible): RuntimeError, the pipe's
// transport untouched.
Coro<void> start_tls_on_a_pipe_body() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2";
    co_return;
  }
  asyncio_test::FdGuard w(fds[1]);
  auto [t, p] = asyncio::connect_read_pipe([] { return std::make_shared<Collector>(); }, fds[0]);
  const ssl::SSLContext cctx = client_context();
  std::exception_ptr e = co_await asyncio_test::error_of(
      asyncio::start_tls(t, p, cctx, {.server_hostname = "localhost"}));
  EXPECT_TRUE(holds<asyncio::RuntimeError>(e)) << what_of(e);
  EXPECT_NE(what_of(e).find("not supported by start_tls()"), std::string::npos) << what_of(e);
  EXPECT_EQ(p->made, 1);
  EXPECT_EQ(::write(w.get(), "still a pipe", 12), 12);
  for (int i = 0; i < 2000 && p->data.size() < 12; ++i) co_await asyncio::sleep(0.005);
  EXPECT_EQ(p->data, "still a pipe");
  t->close();
  co_await p->lost.wait();
}
TEST_P(TlsTest, StartTlsRefusesATransportThatIsNotASocketsOne) {
  run(start_tls_on_a_pipe_body());
}

// The shutdown time-out (Python's _check_shutdown_timeout): a peer that never answers our
// close_notify (it reads nothing) gets the connection force-closed after ssl_shutdown_timeout:
// wait_closed() raises TimeoutError, and nothing reaches the exception handler.
Coro<void> shutdown_timeout_body() {
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  std::vector<std::string> reported;
  loop.set_exception_handler([&reported](asyncio::EventLoop&, const asyncio::ExceptionContext& c) {
    reported.push_back(c.message);
  });
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Event paused;
  asyncio::Event release;
  asyncio::Server server = co_await asyncio::start_server(
      [&paused, &release](StreamReader r, StreamWriter w) -> Coro<void> {
        w.transport().pause_reading();  // our close_notify stays unread: no answer
        paused.set();
        co_await release.wait();
        (void)r;
      },
      "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  auto [r, w] = co_await asyncio::open_connection(
      "127.0.0.1", server.port(),
      ConnectionOptions{.ssl = cctx, .server_hostname = "localhost", .ssl_shutdown_timeout = 0.3});
  co_await paused.wait();
  const double t0 = loop.time();
  w.close();
  std::exception_ptr e = co_await asyncio_test::error_of(w.wait_closed());
  EXPECT_TRUE(holds<asyncio::TimeoutError>(e)) << what_of(e);
  EXPECT_NE(what_of(e).find("SSL shutdown timed out"), std::string::npos) << what_of(e);
  EXPECT_GE(loop.time() - t0, 0.25);
  EXPECT_TRUE(reported.empty()) << (reported.empty() ? "" : reported.front());
  release.set();
  server.close();
  server.close_clients();
  co_await server.wait_closed();
  loop.set_exception_handler({});
}
TEST_P(TlsTest, ShutdownTimeoutForceClosesWithoutReporting) {
  run(shutdown_timeout_body());
}

/// A plain Protocol that records what it is told (for set_protocol and the handshake tests).
struct Recorded final : asyncio::Protocol {
  std::string data;
  int made = 0;
  int lost = 0;
  asyncio::Event got;
  void connection_made(asyncio::Transport&) override { ++made; }
  void data_received(std::string_view d) override {
    data.append(d);
    got.set();
  }
  void connection_lost(std::exception_ptr) override { ++lost; }
};

// set_protocol() on a TLS transport (test_set_new_app_protocol, and test_start_tls_client_buf_
// proto_1's switch): get_protocol() names the new protocol and the next decrypted bytes go to
// it; the old one, a BufferedProtocol with a one-byte buffer, got every byte before.
Coro<void> tls_set_protocol_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Server server =
      co_await asyncio::start_server(echo_handler, "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  auto first = std::make_shared<Collector>();
  first->buf.resize(1);
  auto make_first = [first] { return first; };  // (outside the co_await: g++ 12)
  auto [t, p] = co_await asyncio::create_connection(
      std::move(make_first), "127.0.0.1", server.port(),
      ConnectionOptions{.ssl = cctx, .server_hostname = "localhost"});
  t->write("byte by byte");
  for (int i = 0; i < 2000 && first->data.size() < 12; ++i) co_await asyncio::sleep(0.005);
  EXPECT_EQ(first->data, "byte by byte");
  auto second = std::make_shared<Recorded>();
  t->set_protocol(second);
  EXPECT_EQ(t->get_protocol(), second);
  t->write("to the new one");
  for (int i = 0; i < 2000 && second->data.size() < 14; ++i) co_await asyncio::sleep(0.005);
  EXPECT_EQ(second->data, "to the new one");
  EXPECT_EQ(first->data, "byte by byte");  // nothing more for the old one
  t->close();
  for (int i = 0; i < 2000 && second->lost == 0; ++i) co_await asyncio::sleep(0.005);
  EXPECT_EQ(second->lost, 1);
  EXPECT_FALSE(first->lost.is_set());
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, SetProtocolOnATlsTransportSendsTheNextDataToTheNewProtocol) {
  run(tls_set_protocol_body());
}

// test_start_tls_slow_client_cancel: start_tls cancelled while the peer never answers the
// handshake: CancelledError, and the connection is closed (the peer reads its end; TearDown
// counts the fds).
Coro<void> start_tls_cancelled_body() {
  asyncio::Event peer_saw_eof;
  asyncio::Server server = co_await asyncio::start_server(
      [&peer_saw_eof](StreamReader r, StreamWriter w) -> Coro<void> {
        for (int i = 0; i < 100; ++i) {  // reads the ClientHello, answers nothing
          if ((co_await r.read(65536)).empty()) break;
        }
        peer_saw_eof.set();
        w.close();
      },
      "127.0.0.1", 0);
  auto [plain, p] = co_await asyncio::create_connection(
      [] { return std::make_shared<Collector>(); }, "127.0.0.1", server.port());
  const ssl::SSLContext cctx = client_context();
  asyncio::Task<std::shared_ptr<asyncio::Transport>> t =
      asyncio::create_task(asyncio::start_tls(plain, p, cctx, {.server_hostname = "localhost"}));
  co_await asyncio::sleep(0.1);
  EXPECT_FALSE(t.done());
  t.cancel();
  EXPECT_TRUE(co_await asyncio_test::ends_cancelled(t));
  EXPECT_TRUE(plain->is_closing());
  co_await asyncio::wait_for(peer_saw_eof.wait(), 5.0);
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, StartTlsCancelledMidHandshakeClosesTheConnection) {
  run(start_tls_cancelled_body());
}

// test_ssl_handshake_connection_lost: the server closes during the client's handshake:
// create_connection raises ConnectionResetError, and the application's protocol hears
// nothing (neither connection_made nor connection_lost).
Coro<void> handshake_connection_lost_body() {
  asyncio::Server server = co_await asyncio::start_server(
      [](StreamReader r, StreamWriter w) -> Coro<void> {
        (void)co_await r.read(65536);  // the ClientHello
        w.transport().abort();
      },
      "127.0.0.1", 0);
  const ssl::SSLContext cctx = client_context();
  auto app = std::make_shared<Recorded>();
  auto make_app = [app] { return app; };  // (outside the co_await: g++ 12)
  std::exception_ptr e = co_await asyncio_test::error_of(
      asyncio::create_connection(std::move(make_app), "127.0.0.1", server.port(),
                                 ConnectionOptions{.ssl = cctx, .server_hostname = "localhost"}));
  EXPECT_TRUE(holds<asyncio::ConnectionResetError>(e)) << what_of(e);
  co_await asyncio::sleep(0.05);
  EXPECT_EQ(app->made, 0);
  EXPECT_EQ(app->lost, 0);
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, ConnectionLostDuringTheHandshakeIsAConnectionResetError) {
  run(handshake_connection_lost_body());
}

// test_flush_before_shutdown: close() right after writing megabytes, while most of them still
// wait in the transports' buffers: the peer, reading only later, gets every byte, then the end.
Coro<void> flush_before_shutdown_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  std::string got;
  asyncio::Event done;
  asyncio::Server server = co_await asyncio::start_server(
      [&got, &done](StreamReader r, StreamWriter w) -> Coro<void> {
        co_await asyncio::sleep(0.2);  // reads nothing at first: the client's buffers fill
        for (int i = 0; i < 100000; ++i) {
          std::string part = co_await r.read(1 << 20);
          if (part.empty()) break;
          got += part;
        }
        done.set();
        w.close();
      },
      "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  auto [r, w] = co_await asyncio::open_connection(
      "127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx, .server_hostname = "localhost"});
  std::string sent(std::size_t{6} << 20, '\0');
  for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<char>('a' + (i * 7) % 26);
  w.write(sent);
  EXPECT_GT(w.transport().get_write_buffer_size(), 0U);  // not all of it left at once
  w.close();
  co_await asyncio::wait_for(done.wait(), 30.0);
  EXPECT_EQ(got.size(), sent.size());
  EXPECT_TRUE(got == sent);
  co_await asyncio::wait_for(w.wait_closed(), 10.0);
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, CloseSendsEverythingWrittenBeforeTheEnd) {
  run(flush_before_shutdown_body());
}

// ---- connect_accepted_socket with `.ssl` ------------------------------------------------------

/// A server-side protocol that echoes, and notes whether the handshake was done when
/// connection_made() came.
struct AcceptedEcho final : asyncio::Protocol {
  asyncio::Transport* t = nullptr;
  int made = 0;
  bool handshake_done_at_made = false;
  asyncio::Event lost;
  void connection_made(asyncio::Transport& tr) override {
    t = &tr;
    ++made;
    handshake_done_at_made = tr.get_extra_info("cipher").has_value();
  }
  void data_received(std::string_view d) override { t->write(d); }
  void connection_lost(std::exception_ptr) override { lost.set(); }
};

std::shared_ptr<AcceptedEcho> make_accepted_echo() {
  return std::make_shared<AcceptedEcho>();
}

/// A TLS client of 127.0.0.1:`port`: sends `line`, returns the line that comes back.
Coro<std::string> tls_line_client(std::uint16_t port, const ssl::SSLContext& cctx,
                                  std::string line) {
  auto [r, w] =
      co_await asyncio::open_connection("127.0.0.1", port, ConnectionOptions{.ssl = cctx});
  w.write(line);
  std::string back = co_await r.readline();
  w.close();
  co_await w.wait_closed();
  co_return back;
}

// test_events::test_ssl_connect_accepted_socket: a socket accepted by hand is served as the TLS
// server side; the call returns after the handshake, and the protocol hears of the connection
// then.
Coro<void> accepted_tls_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  const asyncio_test::Listener listener;
  asyncio::Task<std::string> client =
      asyncio::create_task(tls_line_client(listener.port, cctx, "accepted by hand\n"));
  auto [fd, peer] = co_await asyncio::sock_accept(listener.fd.get());
  EXPECT_EQ(peer.family(), AF_INET);
  auto [t, p] = co_await asyncio::connect_accepted_socket(
      make_accepted_echo, fd, asyncio::AcceptedSocketOptions{.ssl = sctx});
  EXPECT_EQ(p->made, 1);
  EXPECT_TRUE(p->handshake_done_at_made);
  EXPECT_EQ(p->t, t.get());
  EXPECT_TRUE(t->get_extra_info("cipher").has_value());
  EXPECT_EQ(co_await client, "accepted by hand\n");
  co_await p->lost.wait();  // the client closed: so does the server side
  EXPECT_TRUE(t->is_closing());
}
TEST_P(TlsTest, ConnectAcceptedSocketServesTls) {
  run(accepted_tls_body());
}

/// Reads `fd` until the peer's close: end of file, or a reset (whatever the peer may have sent
/// first, a TLS alert, is skipped).
Coro<void> read_until_closed(int fd) {
  try {
    while (!(co_await asyncio::sock_recv(fd, 4096)).empty()) {
    }
  } catch (const asyncio::ConnectionResetError&) {
  }
}

/// Whether the peer of `fd` closes it within 10 s.
Coro<bool> closed_by_peer(int fd) {
  try {
    co_await asyncio::wait_for(read_until_closed(fd), 10.0);
  } catch (const asyncio::TimeoutError&) {
    co_return false;
  }
  co_return true;
}

// test_events::test_connect_accepted_socket_ssl_timeout_for_plain_socket and the other checks:
// each ValueError leaves the fd the caller's. A peer that does not speak TLS fails the call
// with an SSLError and the socket is closed; a silent one, at the handshake time-out.
Coro<void> accepted_tls_errors_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  using asyncio::AcceptedSocketOptions;
  asyncio_test::SocketPair pair;
  const int fd = pair.a.get();
  EXPECT_EQ(co_await value_error(asyncio::connect_accepted_socket(
                make_accepted_echo, fd, AcceptedSocketOptions{.ssl_handshake_timeout = 1.0})),
            "ssl_handshake_timeout is only meaningful with ssl");
  EXPECT_EQ(co_await value_error(asyncio::connect_accepted_socket(
                make_accepted_echo, fd, AcceptedSocketOptions{.ssl_shutdown_timeout = 1.0})),
            "ssl_shutdown_timeout is only meaningful with ssl");
  EXPECT_EQ(co_await value_error(asyncio::connect_accepted_socket(
                make_accepted_echo, fd, AcceptedSocketOptions{.ssl = true})),
            "Server side SSL needs a valid SSLContext");
  EXPECT_EQ(co_await value_error(asyncio::connect_accepted_socket(
                make_accepted_echo, fd, AcceptedSocketOptions{.ssl = cctx})),
            "a server needs a server context (PROTOCOL_TLS_SERVER)");
  EXPECT_EQ(co_await value_error(asyncio::connect_accepted_socket(
                make_accepted_echo, fd,
                AcceptedSocketOptions{.ssl = sctx, .ssl_handshake_timeout = 0.0})),
            "ssl_handshake_timeout should be a positive number, got 0.000000");
  {
    const asyncio_test::FdGuard udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    EXPECT_EQ(co_await value_error(asyncio::connect_accepted_socket(
                  make_accepted_echo, udp.get(), AcceptedSocketOptions{.ssl = sctx})),
              "A Stream Socket was expected, got 2");
    // The socket's type is checked first, as in Python.
    EXPECT_EQ(
        co_await value_error(asyncio::connect_accepted_socket(
            make_accepted_echo, udp.get(), AcceptedSocketOptions{.ssl_shutdown_timeout = 1.0})),
        "A Stream Socket was expected, got 2");
    EXPECT_GE(::fcntl(udp.get(), F_GETFD), 0);
  }
  EXPECT_GE(::fcntl(fd, F_GETFD), 0);  // still open: every refusal came before taking it over

  // Plaintext where a ClientHello should be.
  co_await asyncio::sock_sendall(pair.b.get(), "GET / HTTP/1.0\r\n\r\n");
  std::exception_ptr e = co_await asyncio_test::error_of(asyncio::connect_accepted_socket(
      make_accepted_echo, pair.a.release(), AcceptedSocketOptions{.ssl = sctx}));
  EXPECT_TRUE(holds<ssl::SSLError>(e)) << what_of(e);
  EXPECT_TRUE(co_await closed_by_peer(pair.b.get()));

  // A peer that says nothing: the handshake time-out.
  asyncio_test::SocketPair silent;
  const double t0 = asyncio::get_running_loop().time();
  e = co_await asyncio_test::error_of(asyncio::connect_accepted_socket(
      make_accepted_echo, silent.a.release(),
      AcceptedSocketOptions{.ssl = sctx, .ssl_handshake_timeout = 0.3}));
  EXPECT_TRUE(holds<asyncio::ConnectionAbortedError>(e)) << what_of(e);
  EXPECT_GE(asyncio::get_running_loop().time() - t0, 0.25);
  EXPECT_TRUE(co_await closed_by_peer(silent.b.get()));
}
TEST_P(TlsTest, ConnectAcceptedSocketTlsChecksAndFailures) {
  run(accepted_tls_errors_body());
}

// Server::close_clients()/abort_clients() reach TLS connections; wait_closed() returns.
Coro<void> close_clients_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Event forever;
  asyncio::Server server = co_await asyncio::start_server(
      [&](StreamReader r, StreamWriter w) -> Coro<void> {
        (void)r;
        (void)w;
        co_await forever.wait();
      },
      "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  auto [r, w] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), ConnectionOptions{.ssl = cctx});
  co_await asyncio::sleep(0.05);
  server.close();
  server.abort_clients();
  std::string got = "?";
  try {
    got = co_await r.read();
  } catch (const asyncio::ConnectionError&) {
    got = "";
  }
  EXPECT_EQ(got, "");
  forever.set();
  co_await server.wait_closed();
  w.close();
  co_await w.wait_closed();
}
TEST_P(TlsTest, ServerAbortClientsReachesTlsConnections) {
  run(close_clients_body());
}

// ---- Option checks (Python's ValueErrors)
// ----------------------------------------------------------

Coro<void> options_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  asyncio::Server plain = co_await asyncio::start_server(echo_handler, "127.0.0.1", 0);
  const std::uint16_t port = plain.port();
  EXPECT_EQ(co_await value_error(asyncio::open_connection(
                "127.0.0.1", port, ConnectionOptions{.server_hostname = "x"})),
            "server_hostname is only meaningful with ssl");
  EXPECT_EQ(co_await value_error(asyncio::open_connection(
                "127.0.0.1", port, ConnectionOptions{.ssl_handshake_timeout = 1.0})),
            "ssl_handshake_timeout is only meaningful with ssl");
  EXPECT_EQ(co_await value_error(asyncio::open_connection(
                "127.0.0.1", port, ConnectionOptions{.ssl = cctx, .ssl_handshake_timeout = -1.0})),
            "ssl_handshake_timeout should be a positive number, got -1.000000");
  EXPECT_EQ(co_await value_error(asyncio::open_connection(
                "127.0.0.1", port, ConnectionOptions{.ssl = cctx, .ssl_shutdown_timeout = 0.0})),
            "ssl_shutdown_timeout should be a positive number, got 0.000000");
  EXPECT_EQ(co_await value_error(asyncio::open_connection(
                "127.0.0.1", port, ConnectionOptions{.ssl = cctx, .server_hostname = ""})),
            "check_hostname requires server_hostname");
  EXPECT_EQ(co_await value_error(
                asyncio::open_connection("127.0.0.1", port, ConnectionOptions{.ssl = sctx})),
            "a client connection needs a client context (PROTOCOL_TLS_CLIENT)");
  EXPECT_EQ(co_await value_error(
                asyncio::start_server(echo_handler, "127.0.0.1", 0, ServerOptions{.ssl = true})),
            "Server side SSL needs a valid SSLContext");
  EXPECT_EQ(co_await value_error(
                asyncio::start_server(echo_handler, "127.0.0.1", 0, ServerOptions{.ssl = cctx})),
            "a server needs a server context (PROTOCOL_TLS_SERVER)");
  EXPECT_EQ(co_await value_error(asyncio::start_server(echo_handler, "127.0.0.1", 0,
                                                       ServerOptions{.ssl_shutdown_timeout = 1.0})),
            "ssl_shutdown_timeout is only meaningful with ssl");
  // `.ssl = true`: the default context (the system's CAs), which does not trust the test CA.
  asyncio::Server tls =
      co_await asyncio::start_server(echo_handler, "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  std::exception_ptr e;
  try {
    auto [r, w] =
        co_await asyncio::open_connection("127.0.0.1", tls.port(), ConnectionOptions{.ssl = true});
  } catch (...) {
    e = std::current_exception();
  }
  EXPECT_TRUE(holds<ssl::SSLCertVerificationError>(e)) << what_of(e);
  tls.close();
  plain.close();
  co_await tls.wait_closed();
  co_await plain.wait_closed();
}
TEST_P(TlsTest, OptionsAreChecked) {
  run(options_body());
}

// ---- Renegotiation ---------------------------------------------------------------------------

/// A blocking TLS 1.2 client on its own thread, plain OpenSSL (not ours: ours cannot ask for a
/// renegotiation): it echoes "one\n" through the server, then asks to renegotiate. Returns the
/// echo, then "|renegotiated" or "|refused". Its socket waits at most 20 s per call.
std::string renegotiating_client(std::uint16_t port) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  (void)SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const timeval limit{.tv_sec = 20, .tv_usec = 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out = "no connection";
  SSL* s = SSL_new(ctx);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0 &&  // NOLINT
      SSL_set_fd(s, fd) == 1 && SSL_connect(s) == 1 && SSL_write(s, "one\n", 4) == 4) {
    char buf[64];
    const int n = SSL_read(s, buf, sizeof buf);
    out.assign(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    if (SSL_renegotiate(s) != 1) {
      out += "|cannot ask";
    } else {
      out += SSL_do_handshake(s) == 1 ? "|renegotiated" : "|refused";
    }
  }
  SSL_free(s);
  ::close(fd);
  SSL_CTX_free(ctx);
  return out;
}

/// What a handler's connection ended with.
struct HandlerEnd {
  std::exception_ptr error;
  asyncio::Event done;
};

/// An echo handler that records how its connection ended instead of raising.
Coro<void> recording_echo(std::shared_ptr<HandlerEnd> end, StreamReader r, StreamWriter w) {
  try {
    for (;;) {
      std::string data = co_await r.read(65536);
      if (data.empty()) break;
      w.write(data);
      co_await w.drain();
    }
  } catch (...) {
    end->error = std::current_exception();
  }
  w.close();
  end->done.set();
}

std::function<Coro<void>(StreamReader, StreamWriter)> recording(std::shared_ptr<HandlerEnd> e) {
  return
      [e](StreamReader r, StreamWriter w) { return recording_echo(e, std::move(r), std::move(w)); };
}

// docs/design/tls.md: renegotiation is refused. A TLS 1.2 client that asks our server for it
// fails its handshake (OpenSSL 3 servers refuse a client's request unless told otherwise, and
// SSL_OP_NO_RENEGOTIATION says so again), its connection ends with an SSLError on our side, and
// the server goes on serving the next client.
Coro<void> renegotiation_body() {
  const ssl::SSLContext sctx = server_context();
  const ssl::SSLContext cctx = client_context();
  auto end = std::make_shared<HandlerEnd>();
  asyncio::Server server =
      co_await asyncio::start_server(recording(end), "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  const std::string got = co_await asyncio::to_thread(renegotiating_client, server.port());
  EXPECT_EQ(got, "one\n|refused");
  co_await end->done.wait();
  EXPECT_TRUE(holds<ssl::SSLError>(end->error)) << what_of(end->error);
  co_await expect_serves(server.port(), cctx, "two\n");  // the next client is served
  server.close();
  co_await server.wait_closed();
}
TEST_P(TlsTest, RenegotiationIsRefused) {
  run(renegotiation_body());
}

/// A blocking TLS 1.2 server on its own thread, plain OpenSSL: it accepts one client on
/// `listener`, echoes one read back, then asks that client to renegotiate (a HelloRequest) and
/// reads on. Returns the echo, then "|renegotiated" or "|refused" (the read failed). Its socket
/// waits at most 20 s per call.
std::string renegotiating_server(int listener) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  (void)SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  (void)SSL_CTX_use_certificate_chain_file(ctx, certs().server_pem.c_str());
  (void)SSL_CTX_use_PrivateKey_file(ctx, certs().server_key.c_str(), SSL_FILETYPE_PEM);
  const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  const timeval limit{.tv_sec = 20, .tv_usec = 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  std::string out = "no connection";
  SSL* s = SSL_new(ctx);
  char buf[64];
  int n = 0;
  if (fd >= 0 && SSL_set_fd(s, fd) == 1 && SSL_accept(s) == 1 &&
      (n = SSL_read(s, buf, sizeof buf)) > 0 && SSL_write(s, buf, n) == n) {
    out.assign(buf, static_cast<std::size_t>(n));
    if (SSL_renegotiate(s) != 1 || SSL_do_handshake(s) != 1) {
      out += "|cannot ask";
    } else {
      out += SSL_read(s, buf, sizeof buf) > 0 ? "|renegotiated" : "|refused";
    }
  }
  SSL_free(s);
  if (fd >= 0) ::close(fd);
  SSL_CTX_free(ctx);
  return out;
}

// Our client refuses a server's renegotiation (SSL_OP_NO_RENEGOTIATION in every context we
// make): it answers the HelloRequest with a no_renegotiation alert, which ends the connection;
// the client's read then fails with an SSLError and nothing is left open.
Coro<void> server_renegotiation_body() {
  const ssl::SSLContext cctx = client_context();
  asyncio_test::FdGuard listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  EXPECT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);  // NOLINT
  EXPECT_EQ(::listen(listener.get(), 1), 0);
  (void)::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&sa), &len);  // NOLINT
  const timeval limit{.tv_sec = 20, .tv_usec = 0};  // accept() waits no longer either
  (void)::setsockopt(listener.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  asyncio::Future<std::string> server = asyncio::to_thread(renegotiating_server, listener.get());
  auto [r, w] = co_await asyncio::open_connection("127.0.0.1", ntohs(sa.sin_port),
                                                  ConnectionOptions{.ssl = cctx});
  w.write("one\n");
  EXPECT_EQ(co_await r.readline(), "one\n");
  std::exception_ptr e;
  try {
    (void)co_await r.read(100);
  } catch (...) {
    e = std::current_exception();
  }
  EXPECT_TRUE(holds<ssl::SSLError>(e)) << what_of(e);
  EXPECT_EQ(co_await server, "one\n|refused");
  w.close();
  std::exception_ptr closed;  // wait_closed() raises what ended the connection, as in Python
  try {
    co_await w.wait_closed();
  } catch (...) {
    closed = std::current_exception();
  }
  EXPECT_TRUE(holds<ssl::SSLError>(closed)) << what_of(closed);
}
TEST_P(TlsTest, ServerRenegotiationIsRefused) {
  run(server_renegotiation_body());
}

INSTANTIATE_TEST_SUITE_P(Engines, TlsTest, ::testing::Values(Backend::epoll, Backend::io_uring),
                         param_name);

// ---- SSLContext (no loop)
// ------------------------------------------------------------------------

TEST(SslContext, ClientDefaults) {
  ssl::SSLContext ctx;  // Python: SSLContext(PROTOCOL_TLS_CLIENT)
  EXPECT_FALSE(ctx.server_side());
  EXPECT_TRUE(ctx.check_hostname());
  EXPECT_EQ(ctx.verify_mode(), ssl::CERT_REQUIRED);
  EXPECT_EQ(ctx.minimum_version(), ssl::TLSVersion::TLSv1_2);
  EXPECT_NE(ctx.native_handle(), nullptr);
  ssl::SSLContext copy = ctx;  // a handle: copies share the settings
  copy.set_check_hostname(false);
  EXPECT_FALSE(ctx.check_hostname());
}

TEST(SslContext, ServerDefaultsAndDefaultContexts) {
  ssl::SSLContext server(ssl::PROTOCOL_TLS_SERVER);
  EXPECT_TRUE(server.server_side());
  EXPECT_FALSE(server.check_hostname());
  EXPECT_EQ(server.verify_mode(), ssl::CERT_NONE);
  server.set_verify_mode(ssl::CERT_OPTIONAL);
  EXPECT_EQ(server.verify_mode(), ssl::CERT_OPTIONAL);
  auto client = ssl::create_default_context();
  EXPECT_FALSE(client.server_side());
  EXPECT_TRUE(client.check_hostname());
  EXPECT_EQ(client.verify_mode(), ssl::CERT_REQUIRED);
  auto srv = ssl::create_default_context(ssl::Purpose::CLIENT_AUTH);
  EXPECT_TRUE(srv.server_side());
  EXPECT_EQ(srv.verify_mode(), ssl::CERT_NONE);
}

TEST(SslContext, VerifyModeAndCheckHostnameRules) {
  ssl::SSLContext ctx;
  // Python: "Cannot set verify_mode to CERT_NONE when check_hostname is enabled."
  EXPECT_THROW(ctx.set_verify_mode(ssl::CERT_NONE), asyncio::ValueError);
  ctx.set_check_hostname(false);
  ctx.set_verify_mode(ssl::CERT_NONE);
  EXPECT_EQ(ctx.verify_mode(), ssl::CERT_NONE);
  ctx.set_check_hostname(true);  // turns verification back on
  EXPECT_EQ(ctx.verify_mode(), ssl::CERT_REQUIRED);
}

TEST(SslContext, LoadingErrors) {
  if (!asyncio_test::have_openssl_cli()) GTEST_SKIP() << "no openssl command";
  ssl::SSLContext ctx(ssl::PROTOCOL_TLS_SERVER);
  EXPECT_THROW(ctx.load_cert_chain("/nonexistent/cert.pem"), asyncio::FileNotFoundError);
  EXPECT_THROW(ctx.load_verify_locations("/nonexistent/ca.pem"), asyncio::FileNotFoundError);
  EXPECT_THROW(ctx.load_verify_locations(), asyncio::ValueError);
  // Not a certificate.
  asyncio_test::TempDir dir;
  const std::string junk = dir.file("junk.pem");
  { std::ofstream(junk) << "not a certificate\n"; }
  EXPECT_THROW(ctx.load_cert_chain(junk), ssl::SSLError);
  EXPECT_THROW(ctx.load_verify_locations(junk), ssl::SSLError);
  // A certificate with the wrong key.
  try {
    ctx.load_cert_chain(certs().server_pem, certs().wrong_key);
    ADD_FAILURE() << "a key that does not match was accepted";
  } catch (const ssl::SSLError& e) {
    EXPECT_NE(std::string(e.what()).find("[X509: KEY_VALUES_MISMATCH]"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(ctx.load_verify_locations({}, {}, "no PEM here"), ssl::SSLError);
  EXPECT_THROW(ctx.set_alpn_protocols({""}), asyncio::ValueError);
  EXPECT_THROW(ctx.set_alpn_protocols({std::string(256, 'a')}), asyncio::ValueError);
  EXPECT_THROW(ctx.set_ciphers("NO-SUCH-CIPHER"), ssl::SSLError);
}

TEST(SslContext, CertificatesFromMemory) {
  if (!asyncio_test::have_openssl_cli()) GTEST_SKIP() << "no openssl command";
  ssl::SSLContext server(ssl::PROTOCOL_TLS_SERVER);
  server.load_cert_chain_pem(asyncio_test::read_file(certs().server_pem),
                             asyncio_test::read_file(certs().server_key));
  ssl::SSLContext client;
  client.load_verify_locations({}, {}, asyncio_test::read_file(certs().ca_pem));
  std::string got;
  asyncio::run([](const ssl::SSLContext& s, const ssl::SSLContext& c,
                  std::string& got) -> Coro<void> {
    asyncio::Server server =
        co_await asyncio::start_server(echo_handler, "127.0.0.1", 0, ServerOptions{.ssl = s});
    auto [r, w] =
        co_await asyncio::open_connection("localhost", server.port(), ConnectionOptions{.ssl = c});
    w.write("from memory\n");
    got = co_await r.readline();
    w.close();
    co_await w.wait_closed();
    server.close();
    co_await server.wait_closed();
  }(server, client, got));
  EXPECT_EQ(got, "from memory\n");
}

TEST(SslErrors, Hierarchy) {
  const ssl::SSLCertVerificationError e("[SSL: CERTIFICATE_VERIFY_FAILED] x", 18, "x");
  const ssl::SSLError& base = e;
  const asyncio::OSError& os = e;
  const std::system_error& sys = e;
  EXPECT_EQ(base.reason(), "CERTIFICATE_VERIFY_FAILED");
  EXPECT_EQ(base.library(), "SSL");
  EXPECT_EQ(os.code().category().name(), std::string("ssl"));
  EXPECT_EQ(sys.code().value(), 1);
  EXPECT_NE(std::string(e.what()).find("CERTIFICATE_VERIFY_FAILED"), std::string::npos);
}

}  // namespace
