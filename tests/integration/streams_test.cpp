// Integration tests of the stream API (asyncio/streams.hpp: open_connection, start_server, their
// Unix variants, StreamReader and StreamWriter over real transports) on loopback sockets -
// 127.0.0.1, ::1 and Unix paths, port 0 - run on BOTH I/O engines: every TEST_P runs once with
// Backend::epoll and once with Backend::io_uring.
//
// Several tests translate one of CPython 3.12's Lib/test/test_asyncio/test_streams.py (the
// comment names it); the others pin down what streams promise on top of their transports:
// every byte arrives, in order (large transfers are checked byte by byte); half-close works both
// ways; drain() really suspends a writer whose peer does not read, and the transport's buffer
// stays bounded meanwhile; a reader above twice its limit pauses its transport and resumes it;
// RAII closes a connection whose StreamWriter handles are all gone; a failing handler is
// reported and its connection closed; cancelling a read or a drain loses nothing.
//
// Every test's coroutine runs under a time-out (kBound), so a hang fails the test instead of
// the run. Real-time waits appear only where real I/O has to happen (a short nap to let the
// kernel move bytes before checking that something did NOT happen).
#include <algorithm>
#include <any>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"
#include "engine_test.hpp"
#include "net_test.hpp"
#include "unix/loop_io.hpp"

namespace {

using asyncio_test::error_of;

using asyncio_test::engine_name;
using asyncio_test::io_uring_refused;
using asyncio_test::param_name;
using asyncio_test::TempDir;

using namespace std::chrono_literals;
using asyncio::Backend;
using asyncio::ClientConnected;
using asyncio::ConnectionOptions;
using asyncio::Coro;
using asyncio::create_task;
using asyncio::Event;
using asyncio::RunOptions;
using asyncio::Server;
using asyncio::ServerOptions;
using asyncio::sleep;
using asyncio::SocketAddress;
using asyncio::StreamReader;
using asyncio::StreamWriter;
using asyncio::Task;
using asyncio_test::holds;
using asyncio_test::what_of;
using testing::HasSubstr;

using Streams = std::pair<StreamReader, StreamWriter>;

/// Seconds of (loop) time after which a test's coroutine is cancelled (TimeoutError).
constexpr double kBound = 60.0;

// ---- Engines -----------------------------------------------------------------------------------

/// True when a socket can be bound to ::1 (IPv6 loopback configured).
bool ipv6_loopback_available() {
  asyncio_test::FdGuard fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;  // NOLINT
}

// ---- Data --------------------------------------------------------------------------------------

/// `n` bytes of a pattern that never repeats at a short period, so a lost, duplicated or
/// reordered block shows up.
std::string pattern(std::size_t n, std::size_t start = 0) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k = start + i;
    s[i] = static_cast<char>((k * 131 + (k >> 8) * 7 + (k >> 16)) & 0xFF);
  }
  return s;
}

/// The index of the first byte where `got` differs from pattern(), or npos when it matches.
std::size_t first_mismatch(const std::string& got, std::size_t start = 0) {
  const std::string want = pattern(got.size(), start);
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) return i;
  }
  return std::string::npos;
}

template <class T>
Coro<T> result_of(Task<T> t) {
  co_return co_await t;
}

/// Reads until EOF, at most `max` bytes (a bound for tests, not a limit of read()).
Coro<std::string> read_to_eof(StreamReader r, std::size_t max = std::size_t{1} << 30) {
  std::string all;
  while (all.size() < max) {
    std::string part = co_await r.read(1 << 16);
    if (part.empty()) break;
    all += part;
  }
  co_return all;
}

// ---- Options -----------------------------------------------------------------------------------

ConnectionOptions client_limit(std::size_t limit) {
  ConnectionOptions o;
  o.limit = limit;
  return o;
}

ConnectionOptions ipv4_only() {
  ConnectionOptions o;
  o.family = AF_INET;
  return o;
}

ServerOptions server_limit(std::size_t limit) {
  ServerOptions o;
  o.limit = limit;
  return o;
}

ServerOptions backlog(int n) {
  ServerOptions o;
  o.backlog = n;
  return o;
}

// ---- Handlers (built in plain functions: no lambda is built inside a coroutine body) ----------

/// Echoes every byte until EOF, then closes.
constexpr auto& echo = asyncio_test::stream_echo;

/// Echoes line by line until EOF, then closes.
Coro<void> line_echo(StreamReader r, StreamWriter w) {
  for (;;) {
    std::string line = co_await r.readline();
    if (line.empty()) break;
    w.write(line);
    co_await w.drain();
  }
  w.close();
}

/// What handlers report to the test, shared between them and the test body.
/// Whatever holds a probe must let go of what it keeps (writers, tasks) before the end of the
/// test: the handlers' callbacks hold the probe.
struct Probe {
  Event connected;
  Event go;
  Event finished;
  int connections = 0;
  int finished_count = 0;
  std::string received;
  std::exception_ptr error;
  std::vector<StreamWriter> kept;
  std::vector<asyncio::TaskRef> tasks;
  std::vector<SocketAddress> peers;
};
using ProbePtr = std::shared_ptr<Probe>;

Coro<void> recv_all_impl(StreamReader r, StreamWriter w, ProbePtr p) {
  ++p->connections;
  p->connected.set();
  try {
    p->received = co_await read_to_eof(r);
  } catch (...) {
    p->error = std::current_exception();
  }
  (void)w;
  ++p->finished_count;
  p->finished.set();
}
/// Reads everything until EOF into probe->received (or the error into probe->error).
ClientConnected recv_all(ProbePtr p) {
  return
      [p](StreamReader r, StreamWriter w) { return recv_all_impl(std::move(r), std::move(w), p); };
}

Coro<void> wait_then_recv_impl(StreamReader r, StreamWriter w, ProbePtr p) {
  p->connected.set();
  co_await p->go.wait();
  co_await recv_all_impl(std::move(r), std::move(w), p);
}
/// Reads nothing until probe->go is set, then everything until EOF.
ClientConnected wait_then_recv(ProbePtr p) {
  return [p](StreamReader r, StreamWriter w) {
    return wait_then_recv_impl(std::move(r), std::move(w), p);
  };
}

Coro<void> keep_writer_impl(StreamReader r, StreamWriter w, ProbePtr p) {
  (void)r;
  p->kept.push_back(std::move(w));
  p->tasks.push_back(asyncio::current_task());
  ++p->connections;
  p->connected.set();
  co_return;
}
/// Keeps the writer in the probe and returns at once.
ClientConnected keep_writer(ProbePtr p) {
  return [p](StreamReader r, StreamWriter w) {
    return keep_writer_impl(std::move(r), std::move(w), p);
  };
}

Coro<void> send_impl(StreamReader r, StreamWriter w, std::shared_ptr<const std::string> data) {
  (void)r;
  w.write(*data);
  co_await w.drain();
  w.close();
}
/// Sends `data`, then closes.
ClientConnected send_then_close(std::string data) {
  auto shared = std::make_shared<const std::string>(std::move(data));
  return [shared](StreamReader r, StreamWriter w) {
    return send_impl(std::move(r), std::move(w), shared);
  };
}

Coro<void> fail_impl(StreamReader r, StreamWriter w, ProbePtr p) {
  (void)r;
  (void)w;
  p->connected.set();
  co_await sleep(0);
  throw std::runtime_error("handler failed");
}
/// Throws std::runtime_error("handler failed") after one iteration.
ClientConnected failing(ProbePtr p) {
  return [p](StreamReader r, StreamWriter w) { return fail_impl(std::move(r), std::move(w), p); };
}

Coro<void> park_impl(StreamReader r, StreamWriter w, ProbePtr p) {
  p->tasks.push_back(asyncio::current_task());
  p->connected.set();
  try {
    (void)co_await r.read(1);  // nothing comes: waits until cancelled
  } catch (const asyncio::CancelledError&) {
    ++p->finished_count;
    p->finished.set();
    throw;
  }
  (void)w;
}
/// Waits in a read until cancelled (the task is in probe->tasks).
ClientConnected parked(ProbePtr p) {
  return [p](StreamReader r, StreamWriter w) { return park_impl(std::move(r), std::move(w), p); };
}

Coro<void> tell_peer_impl(StreamReader r, StreamWriter w) {
  w.write(w.peername().to_string() + "\n" + w.sockname().to_string() + "\n");
  co_await w.drain();
  (void)co_await r.read();
}
/// Sends "peername\nsockname\n" as the server sees them, then waits for EOF.
ClientConnected tell_peer() {
  return [](StreamReader r, StreamWriter w) { return tell_peer_impl(std::move(r), std::move(w)); };
}

Coro<void> reset_impl(StreamReader r, StreamWriter w, ProbePtr p) {
  p->connected.set();
  co_await p->go.wait();
  // SO_LINGER {on, 0}: closing sends RST instead of FIN.
  const int fd = std::any_cast<int>(w.get_extra_info("socket"));
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  w.transport().abort();
  (void)r;
}
/// Resets the connection (RST) once probe->go is set.
ClientConnected resetting(ProbePtr p) {
  return [p](StreamReader r, StreamWriter w) { return reset_impl(std::move(r), std::move(w), p); };
}

Coro<void> half_close_reply_impl(StreamReader r, StreamWriter w) {
  std::string got = co_await read_to_eof(r);
  // The client's side is shut; ours still writes.
  w.write("got " + std::to_string(got.size()) + " bytes, last: [" +
          got.substr(got.size() - std::min<std::size_t>(4, got.size())) + "]");
  co_await w.drain();
  w.close();
}
/// Reads until EOF, then answers over the half-open connection.
ClientConnected half_close_reply() {
  return [](StreamReader r, StreamWriter w) {
    return half_close_reply_impl(std::move(r), std::move(w));
  };
}

Coro<void> eof_first_impl(StreamReader r, StreamWriter w, ProbePtr p) {
  w.write("from server");
  w.write_eof();
  p->received = co_await read_to_eof(r);
  ++p->finished_count;
  p->finished.set();
}
/// Sends, shuts its write side, then reads everything the client sends until EOF.
ClientConnected eof_first(ProbePtr p) {
  return
      [p](StreamReader r, StreamWriter w) { return eof_first_impl(std::move(r), std::move(w), p); };
}

Coro<void> limit_impl(StreamReader r, StreamWriter w, ProbePtr p) {
  std::string answer = "limit " + std::to_string(r.limit()) + "\n";
  try {
    answer += co_await r.readline();
  } catch (const asyncio::ValueError& e) {
    answer += std::string("ValueError: ") + e.what() + "\n";
  }
  answer += co_await r.readline();
  w.write(answer);
  co_await w.drain();
  w.close();
  (void)p;
}
/// Reports its reader's limit, then two readline() results (or the first one's ValueError).
ClientConnected limit_reporter(ProbePtr p) {
  return [p](StreamReader r, StreamWriter w) { return limit_impl(std::move(r), std::move(w), p); };
}

// ---- The fixture -------------------------------------------------------------------------------

enum class Link { tcp4, tcp6, unix_path };

class StreamsTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::io_uring) {
      if (auto why = io_uring_refused()) GTEST_SKIP() << "io_uring is not available: " << *why;
    }
  }

  /// asyncio::run(main) on the engine under test, bounded by kBound seconds.
  template <class T>
  T run(Coro<T> main) {
    return asyncio::run(asyncio_test::bounded_on_engine(std::move(main), GetParam(), kBound),
                        RunOptions{.backend = GetParam()});
  }

  static bool unavailable(Link link) { return link == Link::tcp6 && !ipv6_loopback_available(); }

  TempDir dir_;
};

#define SKIP_IF_UNAVAILABLE(link) \
  if (unavailable(link)) GTEST_SKIP() << "IPv6 loopback (::1) is not available here"

/// Where a test server listens: a TCP port on a loopback address, or a Unix path.
struct Endpoint {
  Link link = Link::tcp4;
  std::uint16_t port = 0;
  std::string path;
};

const char* loopback_host(Link link) {
  return link == Link::tcp6 ? "::1" : "127.0.0.1";
}

/// Starts a stream server for `cb` on `link` (a fresh path in `dir` for Unix).
Coro<Server> serve(ClientConnected cb, Link link, std::string path, ServerOptions options = {}) {
  if (link == Link::unix_path) {
    co_return co_await asyncio::start_unix_server(std::move(cb), std::move(path),
                                                  std::move(options));
  }
  co_return co_await asyncio::start_server(std::move(cb), loopback_host(link), 0,
                                           std::move(options));
}

Endpoint endpoint_of(const Server& server, Link link, std::string path) {
  return Endpoint{link, server.port(), std::move(path)};
}

/// Opens a stream connection to `e`.
Coro<Streams> connect(Endpoint e, ConnectionOptions options = {}) {
  if (e.link == Link::unix_path) {
    co_return co_await asyncio::open_unix_connection(e.path, std::move(options));
  }
  co_return co_await asyncio::open_connection(loopback_host(e.link), e.port, std::move(options));
}

Coro<void> close_server(Server& server) {
  server.close();
  co_await server.wait_closed();
}

// =================================================================================================
// Round trips
// =================================================================================================

// test_open_connection / test_start_server (echo over each kind of link)
Coro<void> echo_round_trip(Link link, std::string path) {
  Server server = co_await serve(echo, link, path);
  auto [reader, writer] = co_await connect(endpoint_of(server, link, path));
  writer.write("hello\n");
  co_await writer.drain();
  EXPECT_EQ(co_await reader.readline(), "hello\n");
  writer.write("world");
  writer.write_eof();
  EXPECT_EQ(co_await read_to_eof(reader), "world");
  EXPECT_TRUE(reader.at_eof());
  writer.close();
  co_await writer.wait_closed();
  co_await close_server(server);
}

TEST_P(StreamsTest, EchoRoundTripOverTcp4) {
  run(echo_round_trip(Link::tcp4, ""));
}

TEST_P(StreamsTest, EchoRoundTripOverTcp6) {
  SKIP_IF_UNAVAILABLE(Link::tcp6);
  run(echo_round_trip(Link::tcp6, ""));
}

// test_open_unix_connection / test_start_unix_server
TEST_P(StreamsTest, EchoRoundTripOverUnixSocket) {
  run(echo_round_trip(Link::unix_path, dir_.file("echo.sock")));
}

Coro<void> connect_by_name() {
  Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
  auto [reader, writer] =
      co_await asyncio::open_connection("localhost", server.port(), ipv4_only());
  writer.write("by name\n");
  EXPECT_EQ(co_await reader.readline(), "by name\n");
  writer.close();
  co_await close_server(server);
}

TEST_P(StreamsTest, OpenConnectionResolvesAHostName) {
  run(connect_by_name());
}

Coro<void> server_port() {
  Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
  EXPECT_NE(server.port(), 0);
  EXPECT_TRUE(server.is_serving());
  EXPECT_FALSE(server.sockets().empty());
  const std::vector<SocketAddress> addrs = server.addresses();
  EXPECT_FALSE(addrs.empty());
  if (!addrs.empty()) {
    EXPECT_EQ(addrs.front().port(), server.port());
  }
  co_await close_server(server);
  EXPECT_FALSE(server.is_serving());
}

TEST_P(StreamsTest, ServerPortIsTheOnePickedForPortZero) {
  run(server_port());
}

TEST_P(StreamsTest, ReadlineOverASocketJoinsSegments) {
  // The partial last line is echoed as is; readline() at EOF returns it without a newline.
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(line_echo, "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    writer.write("first li");
    co_await writer.drain();
    co_await sleep(0.01);
    writer.write("ne\nsecond line\nthi");
    co_await writer.drain();
    co_await sleep(0.01);
    writer.write("rd\n");
    EXPECT_EQ(co_await reader.readline(), "first line\n");
    EXPECT_EQ(co_await reader.readline(), "second line\n");
    EXPECT_EQ(co_await reader.readline(), "third\n");
    writer.write("no newline at the end");
    writer.write_eof();
    EXPECT_EQ(co_await reader.readline(), "no newline at the end");
    EXPECT_EQ(co_await reader.readline(), "");
    EXPECT_TRUE(reader.at_eof());
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, ReaduntilAndReadexactlyOverASocket) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(
        send_then_close("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    EXPECT_EQ(co_await reader.readuntil("\r\n\r\n"),
              "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    EXPECT_EQ(co_await reader.readexactly(5), "hello");
    EXPECT_EQ(co_await reader.read(), "");
    EXPECT_TRUE(reader.at_eof());
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, ReadexactlyPastEofIsIncompleteReadError) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(send_then_close("short"), "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    try {
      (void)co_await reader.readexactly(100);
      ADD_FAILURE() << "readexactly returned";
    } catch (const asyncio::IncompleteReadError& e) {
      EXPECT_EQ(e.partial, "short");
      EXPECT_EQ(e.expected, 100U);
    }
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, WritelinesSendsEveryPieceInOrder) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    std::vector<std::string> pieces;
    std::string want;
    for (int i = 0; i < 100; ++i) {
      pieces.push_back("piece " + std::to_string(i) + ";");
      want += pieces.back();
    }
    writer.writelines(pieces);
    co_await writer.drain();
    writer.write_eof();
    EXPECT_EQ(co_await read_to_eof(reader), want);
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, PingPongOfManyLinesOnOneConnection) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(line_echo, "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    int ok = 0;
    for (int i = 0; i < 500; ++i) {
      const std::string line = "ping " + std::to_string(i) + "\n";
      writer.write(line);
      co_await writer.drain();
      if (co_await reader.readline() == line) ++ok;
    }
    EXPECT_EQ(ok, 500);
    writer.close();
    co_await writer.wait_closed();
    co_await close_server(server);
  }());
}

// =================================================================================================
// Large transfers
// =================================================================================================

Coro<void> write_pattern(StreamWriter w, std::size_t total, std::size_t chunk) {
  for (std::size_t off = 0; off < total; off += chunk) {
    w.write(pattern(std::min(chunk, total - off), off));
    co_await w.drain();
  }
  w.write_eof();
}

Coro<void> large_echo(Link link, std::string path, std::size_t total) {
  Server server = co_await serve(echo, link, path);
  auto [reader, writer] = co_await connect(endpoint_of(server, link, path));
  // Write and read at once: the echo goes through the server while we still send.
  Task<void> sender = create_task(write_pattern(writer, total, 100003));
  std::string got = co_await read_to_eof(reader);
  co_await sender;
  EXPECT_EQ(got.size(), total);
  EXPECT_EQ(first_mismatch(got), std::string::npos);
  co_await close_server(server);
}

TEST_P(StreamsTest, LargeEchoOverTcpKeepsEveryByte) {
  run(large_echo(Link::tcp4, "", 8U << 20));
}

TEST_P(StreamsTest, LargeEchoOverUnixSocketKeepsEveryByte) {
  run(large_echo(Link::unix_path, dir_.file("large.sock"), 8U << 20));
}

TEST_P(StreamsTest, LargeServerToClientTransferReadUntilEof) {
  run([]() -> Coro<void> {
    const std::size_t total = 12U << 20;
    Server server = co_await asyncio::start_server(send_then_close(pattern(total)), "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    const std::string got = co_await reader.read();  // read(-1): until EOF
    EXPECT_EQ(got.size(), total);
    EXPECT_EQ(first_mismatch(got), std::string::npos);
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, LargeClientToServerTransferWithDrain) {
  run([]() -> Coro<void> {
    auto probe = std::make_shared<Probe>();
    Server server = co_await asyncio::start_server(recv_all(probe), "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    const std::size_t total = 10U << 20;
    co_await write_pattern(writer, total, 65536);
    co_await probe->finished.wait();
    EXPECT_EQ(probe->received.size(), total);
    EXPECT_EQ(first_mismatch(probe->received), std::string::npos);
    EXPECT_FALSE(probe->error);
    co_await close_server(server);
  }());
}

// =================================================================================================
// Half-close
// =================================================================================================

TEST_P(StreamsTest, WriteEofLetsTheServerAnswerOverTheHalfOpenConnection) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(half_close_reply(), "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    EXPECT_TRUE(writer.can_write_eof());
    writer.write("request body, end");
    writer.write_eof();
    EXPECT_FALSE(writer.is_closing());  // the read side is still open
    EXPECT_EQ(co_await read_to_eof(reader), "got 17 bytes, last: [ end]");
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, ServerWriteEofLetsTheClientKeepSending) {
  run([]() -> Coro<void> {
    auto probe = std::make_shared<Probe>();
    Server server = co_await asyncio::start_server(eof_first(probe), "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    EXPECT_EQ(co_await read_to_eof(reader), "from server");
    EXPECT_TRUE(reader.at_eof());
    // EOF from the peer keeps our side open (eof_received() returns true): we still write.
    EXPECT_FALSE(writer.is_closing());
    writer.write("after your eof");
    co_await writer.drain();
    writer.close();
    co_await writer.wait_closed();
    co_await probe->finished.wait();
    EXPECT_EQ(probe->received, "after your eof");
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, HalfCloseOverUnixSocket) {
  const std::string path = dir_.file("half.sock");
  run([](std::string p) -> Coro<void> {
    Server server = co_await asyncio::start_unix_server(half_close_reply(), p);
    auto [reader, writer] = co_await asyncio::open_unix_connection(p);
    EXPECT_TRUE(writer.can_write_eof());
    writer.write("unix data");
    writer.write_eof();
    EXPECT_EQ(co_await read_to_eof(reader), "got 9 bytes, last: [data]");
    co_await close_server(server);
  }(path));
}

// =================================================================================================
// Flow control
// =================================================================================================

/// Writes `chunk`-sized blocks with write(); drain() until `total`; records the largest
/// transport buffer seen and how much was written so far.
struct WriterStats {
  std::size_t sent = 0;
  std::size_t max_buffer = 0;
  bool done = false;
};

Coro<void> write_with_drain(StreamWriter w, std::size_t total, std::size_t chunk,
                            std::shared_ptr<WriterStats> st) {
  while (st->sent < total) {
    const std::size_t n = std::min(chunk, total - st->sent);
    w.write(pattern(n, st->sent));
    st->sent += n;
    st->max_buffer = std::max(st->max_buffer, w.transport().get_write_buffer_size());
    co_await w.drain();
  }
  st->done = true;
  w.write_eof();
}

TEST_P(StreamsTest, DrainSuspendsWhileThePeerDoesNotReadAndTheBufferStaysBounded) {
  run([]() -> Coro<void> {
    auto probe = std::make_shared<Probe>();
    Server server = co_await asyncio::start_server(wait_then_recv(probe), "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    constexpr std::size_t kHigh = 64 * 1024;
    constexpr std::size_t kChunk = 32 * 1024;
    writer.transport().set_write_buffer_limits(kHigh);
    const std::size_t total = 48U << 20;  // far more than the kernel's socket buffers
    auto st = std::make_shared<WriterStats>();
    Task<void> sender = create_task(write_with_drain(writer, total, kChunk, st));
    co_await probe->connected.wait();
    // Let the kernel buffers fill up; then the writer must be stuck in drain().
    std::size_t before = 0;
    for (int i = 0; i < 200; ++i) {
      before = st->sent;
      co_await sleep(0.05);
      if (st->sent == before) break;
    }
    EXPECT_FALSE(sender.done());
    EXPECT_EQ(st->sent, before) << "the writer did not stop";
    EXPECT_LT(st->sent, total);
    EXPECT_LE(st->max_buffer, kHigh + kChunk);
    EXPECT_LE(writer.transport().get_write_buffer_size(), kHigh + kChunk);
    // The peer starts reading: drain() resumes and everything arrives.
    probe->go.set();
    co_await sender;
    EXPECT_TRUE(st->done);
    co_await probe->finished.wait();
    EXPECT_EQ(probe->received.size(), total);
    EXPECT_EQ(first_mismatch(probe->received), std::string::npos);
    EXPECT_LE(st->max_buffer, kHigh + kChunk);
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, DrainReturnsAtOnceBelowTheHighWaterMark) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    writer.write("small");
    Task<void> d = create_task(writer.drain());
    co_await sleep(0);
    EXPECT_TRUE(d.done());
    co_await d;
    EXPECT_EQ(co_await reader.readexactly(5), "small");
    writer.close();  // Server::wait_closed() waits for every connection (Python 3.12)
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, ADrainWithNothingToWaitForIsStillAnOrdinaryCoroutine) {
  // With nothing to wait for, drain() returns a Coro that has already finished (it has no
  // frame). It must behave as any other: awaitable once, then refused; schedulable as a task;
  // accepted by gather() and wait_for(); reported by name in debug mode when never awaited.
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    writer.write("abc");
    Coro<void> d = writer.drain();
    EXPECT_TRUE(d.valid());
    co_await d;
    EXPECT_FALSE(d.valid());
    EXPECT_THAT(what_of(co_await error_of(std::move(d))), HasSubstr("already awaited"));
    Task<void> t = create_task(writer.drain());
    EXPECT_FALSE(t.done());  // a task runs from the next pass, as always
    co_await t;
    EXPECT_TRUE(t.done() && !t.cancelled());
    co_await asyncio::gather(writer.drain(), writer.drain());
    co_await asyncio::wait_for(writer.drain(), 1.0);
    asyncio::EventLoop& loop = asyncio::get_running_loop();
    std::vector<std::string> reports;
    loop.set_exception_handler(
        [&reports](asyncio::EventLoop&, const asyncio::ExceptionContext& ctx) {
          reports.push_back(ctx.message);
        });
    loop.set_debug(true);
    { Coro<void> unused = writer.drain(); }
    loop.set_debug(false);
    loop.set_exception_handler({});
    EXPECT_THAT(reports, testing::ElementsAre("coroutine 'drain' was never awaited"));
    EXPECT_EQ(co_await reader.readexactly(3), "abc");
    writer.close();
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, CancelledDrainLeavesTheWriterUsable) {
  run([]() -> Coro<void> {
    auto probe = std::make_shared<Probe>();
    Server server = co_await asyncio::start_server(wait_then_recv(probe), "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    writer.transport().set_write_buffer_limits(16 * 1024);
    co_await probe->connected.wait();
    // Fill everything until a drain blocks (bounded: at most 256 MB).
    std::size_t sent = 0;
    bool blocked = false;
    for (int i = 0; i < 4096 && !blocked; ++i) {
      writer.write(pattern(65536, sent));
      sent += 65536;
      try {
        co_await asyncio::wait_for(writer.drain(), 0.05);
      } catch (const asyncio::TimeoutError&) {
        blocked = true;  // the drain was cancelled while it waited
      }
    }
    EXPECT_TRUE(blocked);
    probe->go.set();
    co_await writer.drain();  // the writer still works after the cancelled drain
    writer.write_eof();
    co_await probe->finished.wait();
    EXPECT_EQ(probe->received.size(), sent);
    EXPECT_EQ(first_mismatch(probe->received), std::string::npos);
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, SeveralTasksMayDrainAtOnce) {
  // test_multiple_drain, over a real connection.
  run([]() -> Coro<void> {
    auto probe = std::make_shared<Probe>();
    Server server = co_await asyncio::start_server(wait_then_recv(probe), "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    writer.transport().set_write_buffer_limits(16 * 1024);
    co_await probe->connected.wait();
    std::size_t sent = 0;
    for (int i = 0; i < 4096 && writer.transport().get_write_buffer_size() <= 16 * 1024; ++i) {
      writer.write(pattern(65536, sent));
      sent += 65536;
      co_await sleep(0.001);
    }
    std::vector<Task<void>> drains;
    for (int i = 0; i < 10; ++i) drains.push_back(create_task(writer.drain()));
    co_await sleep(0.05);
    int waiting = 0;
    for (auto& d : drains) waiting += d.done() ? 0 : 1;
    EXPECT_EQ(waiting, 10);
    probe->go.set();
    for (auto& d : drains) co_await d;
    writer.write_eof();
    co_await probe->finished.wait();
    EXPECT_EQ(probe->received.size(), sent);
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, AReaderAboveTwiceItsLimitPausesItsTransportAndResumes) {
  run([]() -> Coro<void> {
    const std::size_t total = 4U << 20;
    Server server = co_await asyncio::start_server(send_then_close(pattern(total)), "127.0.0.1", 0);
    constexpr std::size_t kLimit = 1024;
    auto [reader, writer] =
        co_await asyncio::open_connection("127.0.0.1", server.port(), client_limit(kLimit));
    EXPECT_EQ(reader.limit(), kLimit);
    // Read nothing for a while: the transport must stop reading instead of buffering it all.
    for (int i = 0; i < 100 && reader.buffered() <= 2 * kLimit; ++i) co_await sleep(0.01);
    co_await sleep(0.1);
    EXPECT_GT(reader.buffered(), 2 * kLimit);
    EXPECT_FALSE(writer.transport().is_reading());
    EXPECT_LT(reader.buffered(), total);
    // Reading resumes it (below the limit), and every byte comes.
    const std::string got = co_await read_to_eof(reader);
    EXPECT_EQ(got.size(), total);
    EXPECT_EQ(first_mismatch(got), std::string::npos);
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, ReadexactlyOfMoreThanTwiceTheLimitDoesNotDeadlock) {
  run([]() -> Coro<void> {
    const std::size_t total = 1U << 20;
    Server server = co_await asyncio::start_server(send_then_close(pattern(total)), "127.0.0.1", 0);
    auto [reader, writer] =
        co_await asyncio::open_connection("127.0.0.1", server.port(), client_limit(100));
    const std::string got = co_await reader.readexactly(total);
    EXPECT_EQ(first_mismatch(got), std::string::npos);
    co_await close_server(server);
  }());
}

// =================================================================================================
// Closing
// =================================================================================================

// test_wait_closed_on_close
TEST_P(StreamsTest, WaitClosedReturnsAfterClose) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    writer.write("x\n");
    EXPECT_EQ(co_await reader.readline(), "x\n");
    EXPECT_FALSE(writer.is_closing());
    writer.close();
    EXPECT_TRUE(writer.is_closing());
    co_await writer.wait_closed();
    co_await writer.wait_closed();  // and again, at once
    co_await close_server(server);
  }());
}

// test_wait_closed_on_close_with_unread_data
TEST_P(StreamsTest, WaitClosedWithUnreadData) {
  run([]() -> Coro<void> {
    Server server =
        co_await asyncio::start_server(send_then_close("line one\nline two\n"), "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    EXPECT_EQ(co_await reader.readline(), "line one\n");
    writer.close();
    co_await writer.wait_closed();
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, SeveralTasksMayWaitClosed) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    Task<void> a = create_task(writer.wait_closed());
    Task<void> b = create_task(writer.wait_closed());
    co_await sleep(0.01);
    EXPECT_FALSE(a.done());
    EXPECT_FALSE(b.done());
    writer.close();
    co_await a;
    co_await b;
    co_await close_server(server);
  }());
}

// test_eof_feed_when_closing_writer
TEST_P(StreamsTest, ClosingTheWriterFeedsEofToTheReader) {
  run([]() -> Coro<void> {
    asyncio_test::RecordingHandler handler;
    Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    writer.close();
    co_await writer.wait_closed();
    EXPECT_TRUE(reader.at_eof());
    EXPECT_EQ(co_await reader.read(), "");
    co_await close_server(server);
    EXPECT_TRUE(handler.empty()) << handler.messages().front();
  }());
}

// test_async_writer_api_exception_after_close
TEST_P(StreamsTest, WriteAndDrainAfterCloseIsConnectionResetError) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    writer.close();
    writer.write("data");  // dropped: the transport is closing
    auto err = co_await error_of(writer.drain());
    EXPECT_TRUE(holds<asyncio::ConnectionResetError>(err)) << what_of(err);
    EXPECT_THAT(what_of(err), HasSubstr("Connection lost"));
    co_await close_server(server);
  }());
}

// test_drain_raises: the peer goes away; a write/drain loop must end with an error, not spin.
TEST_P(StreamsTest, DrainRaisesOnceThePeerIsGone) {
  run([]() -> Coro<void> {
    auto probe = std::make_shared<Probe>();
    Server server = co_await asyncio::start_server(resetting(probe), "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    co_await probe->connected.wait();
    probe->go.set();
    std::exception_ptr err;
    // Big writes, so that the buffers fill and drain() has to wait for the loop (which then
    // sees the reset) even before the peer's RST arrives; bounded at 640 MB.
    const std::string block(65536, 'x');
    for (int i = 0; i < 10000 && !err; ++i) {
      writer.write(block);
      err = co_await error_of(writer.drain());
    }
    EXPECT_TRUE(holds<asyncio::ConnectionError>(err)) << what_of(err);
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, AResetConnectionFailsReadsAndWaitClosed) {
  run([]() -> Coro<void> {
    auto probe = std::make_shared<Probe>();
    Server server = co_await asyncio::start_server(resetting(probe), "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    co_await probe->connected.wait();
    Task<std::string> pending = create_task(reader.read(100));
    co_await sleep(0.01);
    probe->go.set();
    auto err = co_await error_of(result_of(pending));
    EXPECT_TRUE(holds<asyncio::ConnectionResetError>(err)) << what_of(err);
    EXPECT_TRUE(holds<asyncio::ConnectionResetError>(reader.exception()));
    EXPECT_TRUE(holds<asyncio::ConnectionResetError>(co_await error_of(reader.readline())));
    EXPECT_TRUE(holds<asyncio::ConnectionResetError>(co_await error_of(writer.drain())));
    EXPECT_TRUE(holds<asyncio::ConnectionResetError>(co_await error_of(writer.wait_closed())));
    co_await close_server(server);
  }());
}

Coro<void> reset_unix_impl(StreamReader r, StreamWriter w, ProbePtr p) {
  // Reading paused: what the client sends stays unread in the socket, so closing it resets the
  // client's end (a Unix socket closed with unread data gives its peer ECONNRESET).
  w.transport().pause_reading();
  p->connected.set();
  co_await p->go.wait();
  w.transport().abort();
  (void)r;
}

// test_open_unix_connection_error: a Unix-socket connection lost with an error fails the read
// that waits and every read, drain and wait_closed after it.
TEST_P(StreamsTest, AnErrorOnAUnixConnectionFailsReadsAndWaitClosed) {
  const std::string path = dir_.file("reset.sock");
  run([](std::string p) -> Coro<void> {
    auto probe = std::make_shared<Probe>();
    // (The callback is made outside the co_await: g++ 12 would destroy a temporary there twice.)
    ClientConnected cb = [probe](StreamReader r, StreamWriter w) {
      return reset_unix_impl(std::move(r), std::move(w), probe);
    };
    Server server = co_await asyncio::start_unix_server(std::move(cb), p);
    auto [reader, writer] = co_await asyncio::open_unix_connection(p);
    co_await probe->connected.wait();
    writer.write("left unread");
    co_await writer.drain();
    Task<std::string> pending = create_task(reader.read(100));
    co_await sleep(0.01);
    EXPECT_FALSE(pending.done());
    probe->go.set();
    auto err = co_await error_of(result_of(pending));
    EXPECT_TRUE(holds<asyncio::ConnectionResetError>(err)) << what_of(err);
    EXPECT_TRUE(holds<asyncio::ConnectionResetError>(reader.exception()));
    EXPECT_TRUE(holds<asyncio::ConnectionResetError>(co_await error_of(reader.read())));
    EXPECT_TRUE(holds<asyncio::ConnectionResetError>(co_await error_of(writer.drain())));
    EXPECT_TRUE(holds<asyncio::ConnectionResetError>(co_await error_of(writer.wait_closed())));
    co_await close_server(server);
  }(path));
}

TEST_P(StreamsTest, DroppingEveryClientWriterHandleClosesTheConnection) {
  run([]() -> Coro<void> {
    auto probe = std::make_shared<Probe>();
    Server server = co_await asyncio::start_server(recv_all(probe), "127.0.0.1", 0);
    StreamReader reader;
    {
      auto streams = co_await asyncio::open_connection("127.0.0.1", server.port());
      reader = streams.first;
      StreamWriter copy = streams.second;  // a second handle: the last one decides
      copy.write("bye");
    }  // every writer handle is gone: the connection closes (after sending what is buffered)
    co_await probe->finished.wait();
    EXPECT_EQ(probe->received, "bye");
    EXPECT_FALSE(probe->error);
    // Our reader sees the end too.
    EXPECT_EQ(co_await reader.read(), "");
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, AHandlerKeepingItsWriterKeepsItsConnectionOpen) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(send_then_close(""), "127.0.0.1", 0);
    auto probe = std::make_shared<Probe>();
    Server quiet = co_await asyncio::start_server(keep_writer(probe), "127.0.0.1", 0);
    // send_then_close closes explicitly; keep_writer keeps the writer: the connection stays.
    auto [r1, w1] = co_await asyncio::open_connection("127.0.0.1", server.port());
    EXPECT_EQ(co_await r1.read(), "");
    auto [r2, w2] = co_await asyncio::open_connection("127.0.0.1", quiet.port());
    co_await probe->connected.wait();
    EXPECT_THROW((void)co_await asyncio::wait_for(r2.read(), 0.1), asyncio::TimeoutError);
    EXPECT_FALSE(r2.at_eof());
    probe->kept.clear();  // the handler's last writer handle goes: RAII closes it
    EXPECT_EQ(co_await r2.read(), "");
    co_await close_server(server);
    co_await close_server(quiet);
    probe->kept.clear();
    probe->tasks.clear();
  }());
}

Coro<void> returns_at_once(StreamReader r, StreamWriter w) {
  (void)r;
  (void)w;
  co_return;
}

TEST_P(StreamsTest, AHandlerReturningAtOnceClosesItsConnection) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(returns_at_once, "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    EXPECT_EQ(co_await reader.read(), "");
    EXPECT_TRUE(reader.at_eof());
    co_await close_server(server);
  }());
}

// test_unhandled_exceptions
TEST_P(StreamsTest, AFailingHandlerIsReportedAndItsConnectionClosed) {
  run([]() -> Coro<void> {
    asyncio_test::RecordingHandler handler;
    auto probe = std::make_shared<Probe>();
    Server server = co_await asyncio::start_server(failing(probe), "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    // (Nothing is sent: a server socket closed with unread bytes would send RST, not FIN.)
    EXPECT_EQ(co_await reader.read(), "");  // the server side was closed
    for (int i = 0; i < 100 && handler.empty(); ++i) co_await sleep(0.01);
    EXPECT_EQ(handler.size(), 1U);
    if (!handler.empty()) {
      EXPECT_EQ(handler.at(0).message, "Unhandled exception in client_connected_cb");
      EXPECT_EQ(what_of(handler.at(0).exception), "handler failed");
      EXPECT_TRUE(static_cast<bool>(handler.at(0).task));
    }
    writer.close();
    co_await writer.wait_closed();
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, ACancelledHandlerClosesItsConnectionWithoutAReport) {
  run([]() -> Coro<void> {
    asyncio_test::RecordingHandler handler;
    auto probe = std::make_shared<Probe>();
    Server server = co_await asyncio::start_server(parked(probe), "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    co_await probe->connected.wait();
    EXPECT_EQ(probe->tasks.size(), 1U);
    if (!probe->tasks.empty()) probe->tasks.front().cancel();
    co_await probe->finished.wait();
    EXPECT_EQ(co_await reader.read(), "");
    EXPECT_TRUE(handler.empty());
    if (!probe->tasks.empty()) {
      for (int i = 0; i < 100 && !probe->tasks.front().done(); ++i) co_await sleep(0.001);
      EXPECT_TRUE(probe->tasks.front().cancelled());
    }
    co_await close_server(server);
    probe->kept.clear();
    probe->tasks.clear();
  }());
}

// =================================================================================================
// Addresses and the transport
// =================================================================================================

Coro<void> peer_names(Link link) {
  Server server = co_await asyncio::start_server(tell_peer(), loopback_host(link), 0);
  auto [reader, writer] = co_await asyncio::open_connection(loopback_host(link), server.port());
  const std::string server_peer = co_await reader.readline();
  const std::string server_sock = co_await reader.readline();
  EXPECT_EQ(writer.peername().port(), server.port());
  EXPECT_EQ(writer.peername().host(), loopback_host(link));
  EXPECT_EQ(server_sock, writer.peername().to_string() + "\n");
  EXPECT_EQ(server_peer, writer.sockname().to_string() + "\n");
  EXPECT_NE(writer.sockname().port(), 0);
  EXPECT_EQ(std::any_cast<SocketAddress>(writer.get_extra_info("peername")), writer.peername());
  EXPECT_EQ(std::any_cast<SocketAddress>(writer.get_extra_info("sockname")), writer.sockname());
  EXPECT_GE(std::any_cast<int>(writer.get_extra_info("socket")), 0);
  EXPECT_FALSE(writer.get_extra_info("no such thing").has_value());
  writer.close();
  co_await close_server(server);
}

TEST_P(StreamsTest, PeernameAndSocknameOverTcp4) {
  run(peer_names(Link::tcp4));
}

TEST_P(StreamsTest, PeernameAndSocknameOverTcp6) {
  SKIP_IF_UNAVAILABLE(Link::tcp6);
  run(peer_names(Link::tcp6));
}

TEST_P(StreamsTest, TransportIsTheOneUnderTheWriter) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    asyncio::Transport& t = writer.transport();
    EXPECT_TRUE(t.is_reading());
    EXPECT_FALSE(t.is_closing());
    EXPECT_EQ(t.get_write_buffer_size(), 0U);
    StreamWriter copy = writer;
    EXPECT_EQ(&copy.transport(), &t);
    t.write("via transport\n");
    EXPECT_EQ(co_await reader.readline(), "via transport\n");
    writer.close();
    EXPECT_TRUE(t.is_closing());
    co_await close_server(server);
  }());
}

// =================================================================================================
// Servers
// =================================================================================================

TEST_P(StreamsTest, ServerCloseStopsAcceptingButLeavesConnectionsRunning) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
    const std::uint16_t port = server.port();
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);
    writer.write("before\n");
    EXPECT_EQ(co_await reader.readline(), "before\n");
    server.close();
    EXPECT_FALSE(server.is_serving());
    // The connection accepted before still echoes.
    writer.write("after\n");
    EXPECT_EQ(co_await reader.readline(), "after\n");
    // New connections are refused.
    auto err = co_await error_of(asyncio::open_connection("127.0.0.1", port));
    EXPECT_TRUE(holds<asyncio::ConnectionRefusedError>(err)) << what_of(err);
    // wait_closed() waits for the connection: it ends once the client closes.
    Task<void> closed = create_task(server.wait_closed());
    co_await sleep(0.02);
    EXPECT_FALSE(closed.done());
    writer.close();
    co_await closed;
  }());
}

TEST_P(StreamsTest, ServerCloseClientsClosesHandlersConnections) {
  run([]() -> Coro<void> {
    auto probe = std::make_shared<Probe>();
    Server server = co_await asyncio::start_server(keep_writer(probe), "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    co_await probe->connected.wait();
    server.close();
    server.close_clients();
    EXPECT_EQ(co_await reader.read(), "");
    co_await server.wait_closed();
    EXPECT_EQ(probe->kept.size(), 1U);
    if (!probe->kept.empty()) {
      EXPECT_TRUE(probe->kept.front().is_closing());
    }
    probe->kept.clear();
    probe->tasks.clear();
  }());
}

Coro<std::string> one_client(std::uint16_t port, int id, int lines) {
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);
  std::string bad;
  for (int i = 0; i < lines; ++i) {
    const std::string line = "client " + std::to_string(id) + " line " + std::to_string(i) + "\n";
    writer.write(line);
    co_await writer.drain();
    const std::string back = co_await reader.readline();
    if (back != line) bad += back;
  }
  writer.close();
  co_await writer.wait_closed();
  co_return bad;
}

TEST_P(StreamsTest, ManyClientsAtOnce) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(line_echo, "127.0.0.1", 0, backlog(128));
    std::vector<Task<std::string>> clients;
    for (int i = 0; i < 64; ++i) clients.push_back(create_task(one_client(server.port(), i, 50)));
    int ok = 0;
    for (auto& c : clients) ok += (co_await c).empty() ? 1 : 0;
    EXPECT_EQ(ok, 64);
    co_await close_server(server);
  }());
}

Coro<std::string> one_unix_client(std::string path, int id) {
  auto [reader, writer] = co_await asyncio::open_unix_connection(path);
  const std::string line = "unix client " + std::to_string(id) + "\n";
  writer.write(line);
  std::string back = co_await reader.readline();
  writer.close();
  co_return back == line ? std::string() : back;
}

TEST_P(StreamsTest, ManyUnixClientsAtOnce) {
  const std::string path = dir_.file("many.sock");
  run([](std::string p) -> Coro<void> {
    Server server = co_await asyncio::start_unix_server(line_echo, p);
    std::vector<Task<std::string>> clients;
    for (int i = 0; i < 32; ++i) {
      clients.push_back(create_task(one_unix_client(p, i)));
    }
    int ok = 0;
    for (auto& c : clients) ok += (co_await c).empty() ? 1 : 0;
    EXPECT_EQ(ok, 32);
    co_await close_server(server);
  }(path));
}

TEST_P(StreamsTest, ServerLimitOptionAppliesToEveryReader) {
  run([]() -> Coro<void> {
    auto probe = std::make_shared<Probe>();
    Server server =
        co_await asyncio::start_server(limit_reporter(probe), "127.0.0.1", 0, server_limit(8));
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    writer.write("this line is too long\nok\n");
    EXPECT_EQ(co_await reader.readline(), "limit 8\n");
    EXPECT_THAT(co_await reader.readline(), HasSubstr("ValueError: Separator is"));
    EXPECT_EQ(co_await reader.readline(), "ok\n");
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, ZeroLimitIsValueError) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
    auto err =
        co_await error_of(asyncio::open_connection("127.0.0.1", server.port(), client_limit(0)));
    EXPECT_TRUE(holds<asyncio::ValueError>(err)) << what_of(err);
    err = co_await error_of(asyncio::start_server(echo, "127.0.0.1", 0, server_limit(0)));
    EXPECT_TRUE(holds<asyncio::ValueError>(err)) << what_of(err);
    co_await close_server(server);
  }());
}

// test_open_connection_error
TEST_P(StreamsTest, OpenConnectionToNobodyIsConnectionRefusedError) {
  run([]() -> Coro<void> {
    std::uint16_t port = 0;
    {
      asyncio_test::Listener l;  // take a free port, then give it back
      port = l.port;
    }
    auto err = co_await error_of(asyncio::open_connection("127.0.0.1", port));
    EXPECT_TRUE(holds<asyncio::ConnectionRefusedError>(err)) << what_of(err);
  }());
}

// test_start_unix_server_1: a Unix-socket stream server made with start_serving = false
// accepts nothing until start_serving(), then serves through serve_forever(); a handler that
// cancels the task serving forever ends it with CancelledError, the server closed.
struct ServeForeverProbe {
  std::optional<Task<void>> main;
  Event started;
  std::string line;
};
using ServeForeverProbePtr = std::shared_ptr<ServeForeverProbe>;

Coro<void> cancel_main_impl(StreamReader r, StreamWriter w, ServeForeverProbePtr p) {
  p->line = co_await r.readline();
  p->main->cancel();
  w.write("1");
  w.close();
  co_await w.wait_closed();
}

Coro<void> serve_until_cancelled(Server& server, ServeForeverProbePtr p) {
  EXPECT_FALSE(server.is_serving());
  co_await server.start_serving();
  EXPECT_TRUE(server.is_serving());
  p->started.set();
  co_await server.serve_forever();
}

TEST_P(StreamsTest, UnixServerStartServingThenServeForeverUntilCancelled) {
  const std::string path = dir_.file("forever.sock");
  run([](std::string p) -> Coro<void> {
    auto probe = std::make_shared<ServeForeverProbe>();
    ClientConnected cb = [probe](StreamReader r, StreamWriter w) {
      return cancel_main_impl(std::move(r), std::move(w), probe);
    };
    asyncio::ServerOptions later;
    later.start_serving = false;
    Server server = co_await asyncio::start_unix_server(std::move(cb), p, later);
    EXPECT_FALSE(server.is_serving());
    probe->main = create_task(serve_until_cancelled(server, probe));
    co_await probe->started.wait();
    auto [reader, writer] = co_await asyncio::open_unix_connection(p);
    const std::string hello = std::string(5 * 1024, '1') + "\n";
    writer.write(hello);
    EXPECT_EQ(co_await reader.readexactly(1), "1");
    EXPECT_TRUE(co_await asyncio_test::ends_cancelled(*probe->main));
    EXPECT_EQ(probe->line, hello);
    EXPECT_FALSE(server.is_serving());
    EXPECT_TRUE(server.sockets().empty());
    EXPECT_EQ(co_await reader.read(), "");  // the handler closed its end
    co_await asyncio::wait_for(server.wait_closed(), 5.0);
    probe->main.reset();  // its frame holds the probe
  }(path));
}

// test_open_unix_connection_error
TEST_P(StreamsTest, OpenUnixConnectionToAMissingPathIsOSError) {
  const std::string path = dir_.file("nobody.sock");
  run([](std::string p) -> Coro<void> {
    auto err = co_await error_of(asyncio::open_unix_connection(p));
    EXPECT_TRUE(holds<asyncio::OSError>(err)) << what_of(err);
  }(path));
}

// =================================================================================================
// Cancellation and handles over real sockets
// =================================================================================================

TEST_P(StreamsTest, CancelledReadOnASocketLosesNothing) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    Task<std::string> t = create_task(reader.readexactly(10));
    co_await sleep(0.01);
    writer.write("01234");
    co_await sleep(0.02);  // the first half is buffered under the waiting read
    t.cancel();
    EXPECT_TRUE(co_await asyncio_test::ends_cancelled(t));
    writer.write("56789");
    EXPECT_EQ(co_await reader.readexactly(10), "0123456789");
    writer.close();  // Server::wait_closed() waits for every connection (Python 3.12)
    co_await close_server(server);
  }());
}

TEST_P(StreamsTest, TwoTasksWaitingOnOneSocketReaderIsRuntimeError) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
    Task<std::string> first = create_task(reader.readline());
    co_await sleep(0.01);
    auto err = co_await error_of(reader.read(5));
    EXPECT_TRUE(holds<asyncio::RuntimeError>(err)) << what_of(err);
    writer.write("line\n");
    EXPECT_EQ(co_await first, "line\n");
    writer.close();  // Server::wait_closed() waits for every connection (Python 3.12)
    co_await close_server(server);
  }());
}

/// Connects and starts a task reading until EOF through a temporary copy of the reader; every
/// reader handle is gone when this returns (the writer is handed back to keep the connection).
Coro<std::pair<Task<std::string>, StreamWriter>> start_reading(std::uint16_t port) {
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);
  Task<std::string> t = create_task(StreamReader(reader).read());
  co_return std::pair<Task<std::string>, StreamWriter>(std::move(t), writer);
}

TEST_P(StreamsTest, ATaskReadingOnATemporaryHandleOutlivesEveryHandle) {
  run([]() -> Coro<void> {
    Server server = co_await asyncio::start_server(send_then_close("payload"), "127.0.0.1", 0);
    auto [task, writer] = co_await start_reading(server.port());
    EXPECT_FALSE(task.done());
    EXPECT_EQ(co_await task, "payload");
    EXPECT_FALSE(writer.is_closing());
    co_await close_server(server);
  }());
}

Coro<Streams> open_and_keep(ProbePtr p) {
  Server server = co_await asyncio::start_server(keep_writer(p), "127.0.0.1", 0);
  Streams streams = co_await asyncio::open_connection("127.0.0.1", server.port());
  co_await p->connected.wait();
  streams.second.write("unsent, maybe");
  co_return streams;
}

TEST_P(StreamsTest, StreamsOutlivingTheirLoopAreHarmless) {
  auto probe = std::make_shared<Probe>();
  {
    Streams streams = run(open_and_keep(probe));
    // The loop is closed: its transports were closed under the handles.
    EXPECT_TRUE(streams.second.is_closing());
    EXPECT_EQ(probe->kept.size(), 1U);
    probe->kept.clear();  // the server side's last writer handle goes after the loop
    probe->tasks.clear();
  }  // and the client's: nothing to close any more, nothing touches the dead loop
  EXPECT_TRUE(probe->kept.empty());
}

INSTANTIATE_TEST_SUITE_P(Engines, StreamsTest, ::testing::Values(Backend::epoll, Backend::io_uring),
                         param_name);

}  // namespace
