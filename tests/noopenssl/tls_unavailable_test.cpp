// tls_unavailable_test.cpp - a build without OpenSSL (-DASYNCIO_WITH_OPENSSL=OFF): TLS is refused
// with a clear RuntimeError, and everything else works. tests/CMakeLists.txt builds this suite
// only in that configuration; scripts/test's release stage configures one (build/noopenssl).
//
// Python: test_selector_events' test_make_ssl_transport_without_ssl_error (with the ssl module
// missing, asking for TLS raises RuntimeError). Here nothing can ask for TLS without a context,
// and a context cannot be made: its constructor is where the RuntimeError comes from.
#include <exception>
#include <string>

#include <gtest/gtest.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"
#include "engine_test.hpp"

#if defined(ASYNCIO_HAS_OPENSSL) && ASYNCIO_HAS_OPENSSL
#error "tls_unavailable_test is for a build without OpenSSL"
#endif

namespace {

using asyncio::Coro;

using asyncio_test::contains;
using asyncio_test::thrown_what;

TEST(NoOpenSsl, EveryWayToMakeAContextRaisesRuntimeError) {
  const std::string unavailable = "built without OpenSSL";
  EXPECT_TRUE(contains(thrown_what<asyncio::RuntimeError>([] { asyncio::ssl::SSLContext ctx; }),
                       unavailable));
  EXPECT_TRUE(contains(thrown_what<asyncio::RuntimeError>(
                           [] { asyncio::ssl::SSLContext ctx(asyncio::ssl::PROTOCOL_TLS_SERVER); }),
                       unavailable));
  EXPECT_TRUE(contains(
      thrown_what<asyncio::RuntimeError>([] { (void)asyncio::ssl::create_default_context(); }),
      unavailable));
  EXPECT_TRUE(contains(thrown_what<asyncio::RuntimeError>([] {
                         (void)asyncio::ssl::create_default_context(
                             asyncio::ssl::Purpose::CLIENT_AUTH);
                       }),
                       unavailable));
}

constexpr auto& echo = asyncio_test::stream_echo;

// The TLS-only options without a context are the same ValueErrors as in a build with OpenSSL,
// and a plain connection works.
Coro<void> plain_streams_work() {
  asyncio::Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);

  asyncio::ConnectionOptions named;
  named.server_hostname = "localhost";
  std::exception_ptr e =
      co_await asyncio_test::error_of(asyncio::open_connection("127.0.0.1", server.port(), named));
  EXPECT_TRUE(asyncio_test::holds<asyncio::ValueError>(e)) << asyncio_test::what_of(e);
  EXPECT_TRUE(contains(asyncio_test::what_of(e), "server_hostname is only meaningful with ssl"));

  asyncio::ServerOptions timed;
  timed.ssl_handshake_timeout = 1.0;
  e = co_await asyncio_test::error_of(asyncio::start_server(echo, "127.0.0.1", 0, timed));
  EXPECT_TRUE(asyncio_test::holds<asyncio::ValueError>(e)) << asyncio_test::what_of(e);
  EXPECT_TRUE(contains(asyncio_test::what_of(e), "ssl_handshake_timeout is only meaningful"));

  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
  writer.write("no TLS here\n");
  EXPECT_EQ(co_await reader.readline(), "no TLS here\n");
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

// On each engine, bounded (a hang fails the test, not the run).
class NoOpenSslStreams : public ::testing::TestWithParam<asyncio::Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == asyncio::Backend::io_uring) {
      if (auto why = asyncio_test::io_uring_refused()) GTEST_SKIP() << "no io_uring: " << *why;
    }
  }
};

TEST_P(NoOpenSslStreams, PlainConnectionsWorkAndTlsOnlyOptionsAreValueErrors) {
  asyncio::run(asyncio_test::bounded_on_engine(plain_streams_work(), GetParam(), 30.0),
               asyncio::RunOptions{.backend = GetParam()});
}

INSTANTIATE_TEST_SUITE_P(Engines, NoOpenSslStreams,
                         ::testing::Values(asyncio::Backend::epoll, asyncio::Backend::io_uring),
                         asyncio_test::param_name);

}  // namespace
