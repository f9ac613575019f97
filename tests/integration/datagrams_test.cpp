// Integration tests of datagram endpoints (asyncio/transports.hpp: create_datagram_endpoint,
// DatagramTransport; asyncio/protocols.hpp: DatagramProtocol) and of the coroutine-style UDP
// socket (asyncio/sockets.hpp: sock_recvfrom, sock_sendto, DatagramSocket) over loopback
// (127.0.0.1, ::1, Unix datagram paths; port 0), on BOTH I/O engines.
//
// Several tests translate one of CPython 3.12's tests (the comment names it: test_events'
// test_create_datagram_endpoint*, test_base_events' create_datagram_endpoint argument checks,
// test_sock_lowlevel's sock_recvfrom/sock_sendto tests); the others pin down what the headers
// promise: ICMP errors reach error_received() or the awaiting call as ConnectionRefusedError, a
// cancelled receive loses no datagram, a datagram longer than the buffer asked for is
// truncated (and the next one is whole), sendto() on a closed transport is a clear error, no fd
// is left behind.
//
// Every test's coroutine runs under a time-out (kBound); waits for datagrams are bounded.
#include <cerrno>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"
#include "engine_test.hpp"
#include "net_test.hpp"
#include "sys/sys.hpp"

namespace {

using asyncio::Backend;
using asyncio::Coro;
using asyncio::DatagramOptions;
using asyncio::DatagramSocket;
using asyncio::DatagramTransport;
using asyncio::RunOptions;
using asyncio::SocketAddress;
using asyncio_test::error_of;
using asyncio_test::holds;
using asyncio_test::io_uring_refused;
using asyncio_test::param_name;
using asyncio_test::what_of;

constexpr double kBound = 60.0;

bool ipv6_loopback_available() {
  asyncio_test::FdGuard fd(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;  // NOLINT
}

/// Records everything (Python's MyDatagramProto), and echoes when asked to.
struct Recorder final : asyncio::DatagramProtocol {
  explicit Recorder(bool echo = false) : echo(echo) {}
  bool echo;
  DatagramTransport* transport = nullptr;
  std::vector<std::string> state{"INITIAL"};
  std::vector<std::string> data;
  std::vector<SocketAddress> from;
  std::vector<std::exception_ptr> errors;
  std::exception_ptr lost_with;
  asyncio::Event done;
  asyncio::Event got;

  void connection_made(DatagramTransport& t) override {
    transport = &t;
    state.emplace_back("INITIALIZED");
  }
  void datagram_received(std::string_view d, const SocketAddress& addr) override {
    data.emplace_back(d);
    from.push_back(addr);
    if (echo) transport->sendto("resp:" + std::string(d), addr);
    got.set();
  }
  void error_received(std::exception_ptr exc) override {
    errors.push_back(exc);
    got.set();
  }
  void connection_lost(std::exception_ptr exc) override {
    state.emplace_back("CLOSED");
    lost_with = exc;
    done.set();
  }
};

/// A factory handing out `p` (built outside coroutine bodies: g++ 12 and capturing lambdas).
template <class P>
std::function<std::shared_ptr<P>()> give(std::shared_ptr<P> p) {
  return [p] { return p; };
}

/// Waits (bounded) until `p` has received `n` datagrams or errors in all.
Coro<bool> received(Recorder& p, std::size_t n) {
  for (int i = 0; i < 4000 && p.data.size() + p.errors.size() < n; ++i) {
    co_await asyncio::sleep(0.005);
  }
  co_return p.data.size() + p.errors.size() >= n;
}

DatagramOptions local(const SocketAddress& a) {
  DatagramOptions o;
  o.local_addr = a;
  return o;
}
DatagramOptions remote(const SocketAddress& a) {
  DatagramOptions o;
  o.remote_addr = a;
  return o;
}

/// A port on which nothing listens (bound, then closed: its number is free for a while).
std::uint16_t closed_udp_port() {
  asyncio_test::FdGuard fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  (void)::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);  // NOLINT
  socklen_t len = sizeof sa;
  (void)::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len);  // NOLINT
  return ntohs(sa.sin_port);
}

class DatagramsTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::io_uring) {
      if (auto why = io_uring_refused()) GTEST_SKIP() << "io_uring is not available: " << *why;
    }
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

// ---- Endpoints ---------------------------------------------------------------------------------

// test_events::test_create_datagram_endpoint: a server that echoes, a connected client.
Coro<void> echo_body(std::string host) {
  auto server = std::make_shared<Recorder>(true);
  auto s =
      co_await asyncio::create_datagram_endpoint(give(server), local(SocketAddress::ip(host, 0)));
  EXPECT_EQ(server->state, (std::vector<std::string>{"INITIAL", "INITIALIZED"}));
  const SocketAddress where = s.transport->sockname();
  EXPECT_NE(where.port(), 0);

  auto client = std::make_shared<Recorder>();
  auto c = co_await asyncio::create_datagram_endpoint(give(client), remote(where));
  EXPECT_EQ(c.protocol, client);
  EXPECT_EQ(c.transport->peername(), where);
  c.transport->sendto("xxx");
  EXPECT_TRUE(co_await received(*client, 1));
  EXPECT_EQ(server->data, std::vector<std::string>{"xxx"});
  EXPECT_EQ(server->from.at(0), c.transport->sockname());
  EXPECT_EQ(client->data, std::vector<std::string>{"resp:xxx"});
  EXPECT_EQ(client->from.at(0), where);

  c.transport->close();
  s.transport->close();
  co_await client->done.wait();
  co_await server->done.wait();
  EXPECT_EQ(client->state.back(), "CLOSED");
  EXPECT_EQ(client->lost_with, nullptr);
  EXPECT_EQ(c.transport->get_protocol(), nullptr);
}
TEST_P(DatagramsTest, EchoOverIPv4) {
  run(echo_body("127.0.0.1"));
}
TEST_P(DatagramsTest, EchoOverIPv6) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "::1 is not available here";
  run(echo_body("::1"));
}

// An unconnected endpoint sends to any address and learns each sender's.
Coro<void> unconnected_body() {
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  auto ea =
      co_await asyncio::create_datagram_endpoint(give(a), local(SocketAddress::ip("127.0.0.1", 0)));
  auto eb =
      co_await asyncio::create_datagram_endpoint(give(b), local(SocketAddress::ip("127.0.0.1", 0)));
  EXPECT_FALSE(ea.transport->get_extra_info("peername").has_value());
  ea.transport->sendto("to b", eb.transport->sockname());
  eb.transport->sendto("to a", ea.transport->sockname());
  EXPECT_TRUE(co_await received(*a, 1));
  EXPECT_TRUE(co_await received(*b, 1));
  EXPECT_EQ(a->data.at(0), "to a");
  EXPECT_EQ(a->from.at(0), eb.transport->sockname());
  EXPECT_EQ(b->data.at(0), "to b");
  // Without an address there is nowhere to send.
  EXPECT_THROW(ea.transport->sendto("x"), asyncio::ValueError);
  ea.transport->close();
  eb.transport->close();
  co_await a->done.wait();
  co_await b->done.wait();
}
TEST_P(DatagramsTest, UnconnectedEndpointSendsAnywhere) {
  run(unconnected_body());
}

// A connected endpoint refuses another address (Python: "Invalid address").
Coro<void> wrong_address_body() {
  auto p = std::make_shared<Recorder>();
  auto e = co_await asyncio::create_datagram_endpoint(
      give(p), remote(SocketAddress::ip("127.0.0.1", closed_udp_port())));
  EXPECT_THROW(e.transport->sendto("x", SocketAddress::ip("127.0.0.1", 9)), asyncio::ValueError);
  e.transport->sendto("x", e.transport->peername());  // its own peer is fine
  e.transport->close();
  co_await p->done.wait();
}
TEST_P(DatagramsTest, ConnectedEndpointRefusesAnotherAddress) {
  run(wrong_address_body());
}

// ICMP "port unreachable" for a connected endpoint reaches error_received as
// ConnectionRefusedError; the transport stays open.
Coro<void> icmp_body() {
  auto p = std::make_shared<Recorder>();
  auto e = co_await asyncio::create_datagram_endpoint(
      give(p), remote(SocketAddress::ip("127.0.0.1", closed_udp_port())));
  e.transport->sendto("anyone?");
  EXPECT_TRUE(co_await received(*p, 1));
  EXPECT_EQ(p->errors.size(), 1U);
  EXPECT_TRUE(!p->errors.empty() && holds<asyncio::ConnectionRefusedError>(p->errors[0]));
  EXPECT_FALSE(e.transport->is_closing());
  e.transport->close();
  co_await p->done.wait();
  EXPECT_EQ(p->lost_with, nullptr);
}
TEST_P(DatagramsTest, IcmpErrorReachesErrorReceived) {
  run(icmp_body());
}

// sendto() once closing is a clear error, not a silent drop.
Coro<void> sendto_closed_body() {
  auto p = std::make_shared<Recorder>();
  auto e =
      co_await asyncio::create_datagram_endpoint(give(p), local(SocketAddress::ip("127.0.0.1", 0)));
  e.transport->close();
  EXPECT_TRUE(e.transport->is_closing());
  EXPECT_THROW(e.transport->sendto("x", SocketAddress::ip("127.0.0.1", 9)), asyncio::RuntimeError);
  co_await p->done.wait();
  EXPECT_THROW(e.transport->sendto("x", SocketAddress::ip("127.0.0.1", 9)), asyncio::RuntimeError);
  EXPECT_EQ(p->state, (std::vector<std::string>{"INITIAL", "INITIALIZED", "CLOSED"}));
}
TEST_P(DatagramsTest, SendtoOnAClosedTransportThrows) {
  run(sendto_closed_body());
}

// close() and abort() call connection_lost exactly once.
Coro<void> close_twice_body(bool abort) {
  auto p = std::make_shared<Recorder>();
  auto e =
      co_await asyncio::create_datagram_endpoint(give(p), local(SocketAddress::ip("127.0.0.1", 0)));
  if (abort) {
    e.transport->abort();
    e.transport->abort();
  } else {
    e.transport->close();
    e.transport->close();
  }
  co_await p->done.wait();
  for (int i = 0; i < 3; ++i) co_await asyncio::sleep(0);
  EXPECT_EQ(p->state, (std::vector<std::string>{"INITIAL", "INITIALIZED", "CLOSED"}));
}
TEST_P(DatagramsTest, CloseCallsConnectionLostOnce) {
  run(close_twice_body(false));
}
TEST_P(DatagramsTest, AbortCallsConnectionLostOnce) {
  run(close_twice_body(true));
}

// Bursts of datagrams: every one arrives, whole and in order (loopback keeps order).
Coro<void> burst_body() {
  auto server = std::make_shared<Recorder>();
  auto s = co_await asyncio::create_datagram_endpoint(give(server),
                                                      local(SocketAddress::ip("127.0.0.1", 0)));
  DatagramSocket sock = DatagramSocket::connect(s.transport->sockname());
  // Bursts of 100 (well within the kernel's receive buffer: UDP drops what overflows it), each
  // read in several passes of the transport's batch.
  constexpr int kCount = 500;
  for (int i = 0; i < kCount; ++i) {
    (void)co_await sock.send("datagram " + std::to_string(i));
    if (i % 100 == 99) {
      EXPECT_TRUE(co_await received(*server, static_cast<std::size_t>(i) + 1));
    }
  }
  EXPECT_EQ(server->data.size(), static_cast<std::size_t>(kCount));
  bool in_order = true;
  for (int i = 0; i < kCount && i < static_cast<int>(server->data.size()); ++i) {
    in_order =
        in_order && server->data[static_cast<std::size_t>(i)] == "datagram " + std::to_string(i);
  }
  EXPECT_TRUE(in_order);
  s.transport->close();
  co_await server->done.wait();
}
TEST_P(DatagramsTest, BurstOfDatagramsAllArriveWhole) {
  run(burst_body());
}

// A datagram near the largest UDP payload arrives whole.
Coro<void> large_body() {
  auto server = std::make_shared<Recorder>();
  auto s = co_await asyncio::create_datagram_endpoint(give(server),
                                                      local(SocketAddress::ip("127.0.0.1", 0)));
  DatagramSocket sock = DatagramSocket::connect(s.transport->sockname());
  std::string big(60000, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  EXPECT_EQ(co_await sock.send(big), big.size());
  EXPECT_TRUE(co_await received(*server, 1));
  EXPECT_EQ(server->data.at(0), big);
  s.transport->close();
  co_await server->done.wait();
}
TEST_P(DatagramsTest, LargeDatagramArrivesWhole) {
  run(large_body());
}

// Unix datagram sockets: paths, a stale socket file removed first.
Coro<void> unix_body(std::string server_path, std::string client_path) {
  {
    DatagramSocket stale = DatagramSocket::bind(SocketAddress::unix_path(server_path));
  }  // closed, its file left behind
  auto server = std::make_shared<Recorder>(true);
  auto s = co_await asyncio::create_datagram_endpoint(give(server),
                                                      local(SocketAddress::unix_path(server_path)));
  auto client = std::make_shared<Recorder>();
  DatagramOptions o;
  o.local_addr = SocketAddress::unix_path(client_path);  // so the server can answer
  o.remote_addr = SocketAddress::unix_path(server_path);
  auto c = co_await asyncio::create_datagram_endpoint(give(client), o);
  c.transport->sendto("hello");
  EXPECT_TRUE(co_await received(*client, 1));
  EXPECT_EQ(server->data.at(0), "hello");
  EXPECT_EQ(server->from.at(0).path(), client_path);
  EXPECT_EQ(client->data.at(0), "resp:hello");
  c.transport->close();
  s.transport->close();
  co_await client->done.wait();
  co_await server->done.wait();
}
TEST_P(DatagramsTest, UnixDatagramEndpoints) {
  asyncio_test::TempDir dir;
  run(unix_body(dir.file("server.sock"), dir.file("client.sock")));
}

// SO_REUSEPORT lets two endpoints bind one port.
Coro<void> reuse_port_body() {
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  DatagramOptions o = local(SocketAddress::ip("127.0.0.1", 0));
  o.reuse_port = true;
  auto ea = co_await asyncio::create_datagram_endpoint(give(a), o);
  o.local_addr = ea.transport->sockname();
  auto eb = co_await asyncio::create_datagram_endpoint(give(b), o);
  EXPECT_EQ(eb.transport->sockname().port(), ea.transport->sockname().port());
  ea.transport->close();
  eb.transport->close();
  co_await a->done.wait();
  co_await b->done.wait();
}
TEST_P(DatagramsTest, ReusePortLetsTwoEndpointsShareAPort) {
  run(reuse_port_body());
}

// Without reuse_port the second bind fails with an OSError and leaves no fd (TearDown checks).
Coro<void> port_taken_body() {
  auto a = std::make_shared<Recorder>();
  auto ea =
      co_await asyncio::create_datagram_endpoint(give(a), local(SocketAddress::ip("127.0.0.1", 0)));
  auto b = std::make_shared<Recorder>();
  bool failed = false;
  try {
    (void)co_await asyncio::create_datagram_endpoint(give(b), local(ea.transport->sockname()));
  } catch (const asyncio::OSError& e) {
    failed = e.code().value() == EADDRINUSE;
  }
  EXPECT_TRUE(failed);
  EXPECT_EQ(b->state, std::vector<std::string>{"INITIAL"});  // never made
  ea.transport->close();
  co_await a->done.wait();
}
TEST_P(DatagramsTest, BindToATakenPortIsAnOSErrorAndLeaksNothing) {
  run(port_taken_body());
}

// allow_broadcast with remote_addr: not connected, but sendto() without an address goes there.
Coro<void> broadcast_body() {
  auto server = std::make_shared<Recorder>();
  auto s = co_await asyncio::create_datagram_endpoint(give(server),
                                                      local(SocketAddress::ip("127.0.0.1", 0)));
  auto client = std::make_shared<Recorder>();
  DatagramOptions o = remote(s.transport->sockname());
  o.allow_broadcast = true;
  auto c = co_await asyncio::create_datagram_endpoint(give(client), o);
  EXPECT_FALSE(c.transport->get_extra_info("peername").has_value());
  c.transport->sendto("ping");
  EXPECT_TRUE(co_await received(*server, 1));
  EXPECT_EQ(server->data.at(0), "ping");
  EXPECT_THROW(c.transport->sendto("x", SocketAddress::ip("127.0.0.1", 9)), asyncio::ValueError);
  c.transport->close();
  s.transport->close();
  co_await client->done.wait();
  co_await server->done.wait();
}
TEST_P(DatagramsTest, AllowBroadcastSendsToRemoteAddrUnconnected) {
  run(broadcast_body());
}

// test_base_events: create_datagram_endpoint's argument checks.
Coro<void> bad_options_body() {
  auto p = std::make_shared<Recorder>();
  bool no_family = false;
  try {
    (void)co_await asyncio::create_datagram_endpoint(give(p), DatagramOptions{});
  } catch (const asyncio::ValueError&) {
    no_family = true;
  }
  EXPECT_TRUE(no_family);

  asyncio_test::FdGuard udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  DatagramOptions with_sock;
  with_sock.sock = udp.get();
  with_sock.reuse_port = true;
  bool sock_and_options = false;
  try {
    (void)co_await asyncio::create_datagram_endpoint(give(p), with_sock);
  } catch (const asyncio::ValueError&) {
    sock_and_options = true;
  }
  EXPECT_TRUE(sock_and_options);

  asyncio_test::FdGuard tcp(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  DatagramOptions stream_sock;
  stream_sock.sock = tcp.get();
  bool not_udp = false;
  try {
    (void)co_await asyncio::create_datagram_endpoint(give(p), stream_sock);
  } catch (const asyncio::ValueError&) {
    not_udp = true;
  }
  EXPECT_TRUE(not_udp);

  DatagramOptions mixed;
  mixed.local_addr = SocketAddress::ip("127.0.0.1", 0);
  mixed.remote_addr = SocketAddress::ip("::1", 9);
  bool families = false;
  try {
    (void)co_await asyncio::create_datagram_endpoint(give(p), mixed);
  } catch (const asyncio::ValueError&) {
    families = true;
  }
  EXPECT_TRUE(families);
  EXPECT_EQ(p->state, std::vector<std::string>{"INITIAL"});
}
TEST_P(DatagramsTest, BadOptionsAreValueErrors) {
  run(bad_options_body());
}

// test_base_events: test_create_datagram_endpoint_socket_err and _connect_err: the OSError of
// the failing call, and no fd left behind (TearDown counts them).
Coro<void> failing_call_body(asyncio::sys::Call call, int err) {
  auto p = std::make_shared<Recorder>();
  asyncio::sys::inject_fault({.call = call, .error = err});
  int got = 0;
  try {
    (void)co_await asyncio::create_datagram_endpoint(give(p),
                                                     remote(SocketAddress::ip("127.0.0.1", 9)));
  } catch (const asyncio::OSError& e) {
    got = e.code().value();
  }
  asyncio::sys::clear_faults();
  EXPECT_EQ(got, err);
  EXPECT_EQ(p->state, std::vector<std::string>{"INITIAL"});
}
TEST_P(DatagramsTest, SocketFailureIsAnOSErrorAndLeaksNothing) {
  run(failing_call_body(asyncio::sys::Call::socket, EMFILE));
}
TEST_P(DatagramsTest, ConnectFailureIsAnOSErrorAndLeaksNothing) {
  run(failing_call_body(asyncio::sys::Call::connect, ENETUNREACH));
}

// test_base_events: test_create_datagram_endpoint_sock_unix: family AF_UNIX and no address
// makes an unbound Unix datagram endpoint that can send to a bound one.
Coro<void> unix_unbound_body(std::string path) {
  DatagramSocket server = DatagramSocket::bind(SocketAddress::unix_path(path));
  auto p = std::make_shared<Recorder>();
  DatagramOptions o;
  o.family = AF_UNIX;
  auto e = co_await asyncio::create_datagram_endpoint(give(p), o);
  EXPECT_EQ(e.transport->sockname().family(), AF_UNIX);
  e.transport->sendto("from nowhere", SocketAddress::unix_path(path));
  EXPECT_EQ((co_await server.recvfrom()).data, "from nowhere");
  e.transport->close();
  co_await p->done.wait();
}
TEST_P(DatagramsTest, UnixFamilyWithoutAnAddress) {
  asyncio_test::TempDir dir;
  run(unix_unbound_body(dir.file("bound.sock")));
}

// test_events::test_create_datagram_endpoint_sock: an existing socket is taken over.
Coro<void> existing_sock_body() {
  DatagramSocket mine = DatagramSocket::bind(SocketAddress::ip("127.0.0.1", 0));
  const SocketAddress where = mine.local_address();
  DatagramOptions o;
  o.sock = mine.fd();
  auto p = std::make_shared<Recorder>();
  auto e = co_await asyncio::create_datagram_endpoint(give(p), o);
  (void)mine.release();  // the transport owns it now
  EXPECT_EQ(e.transport->sockname(), where);
  DatagramSocket other = DatagramSocket::connect(where);
  (void)co_await other.send("hi");
  EXPECT_TRUE(co_await received(*p, 1));
  EXPECT_EQ(p->data.at(0), "hi");
  e.transport->close();  // closes the socket it took over
  co_await p->done.wait();
}
TEST_P(DatagramsTest, ExistingSocketIsTakenOver) {
  run(existing_sock_body());
}

// test_add_reader_or_writer_transport_fd, for a datagram transport: the socket it took over is
// its alone (sock_sendto, sock_recvfrom, a second endpoint: RuntimeError, the socket left
// open) until it closes; a socket that gets the number afterwards is not mistaken for it.
Coro<void> fd_used_by_transport_body() {
  DatagramSocket mine = DatagramSocket::bind(SocketAddress::ip("127.0.0.1", 0));
  const SocketAddress where = mine.local_address();
  const int fd = mine.release();
  DatagramOptions o;
  o.sock = fd;
  auto p = std::make_shared<Recorder>();
  auto e = co_await asyncio::create_datagram_endpoint(give(p), o);
  std::exception_ptr err = co_await error_of(asyncio::sock_sendto(fd, "x", where));
  EXPECT_TRUE(holds<asyncio::RuntimeError>(err)) << what_of(err);
  err = co_await error_of(asyncio::sock_recvfrom(fd, 10));
  EXPECT_TRUE(holds<asyncio::RuntimeError>(err)) << what_of(err);
  err = co_await error_of(asyncio::create_datagram_endpoint(give(std::make_shared<Recorder>()), o));
  EXPECT_TRUE(holds<asyncio::RuntimeError>(err)) << what_of(err);
  EXPECT_NE(what_of(err).find("File descriptor " + std::to_string(fd) +
                              " is used by transport <datagram transport"),
            std::string::npos)
      << what_of(err);
  EXPECT_GE(::fcntl(fd, F_GETFD), 0);  // still open, still the transport's
  DatagramSocket other = DatagramSocket::connect(where);
  (void)co_await other.send("still");
  EXPECT_TRUE(co_await received(*p, 1));
  EXPECT_EQ(p->data.at(0), "still");
  e.transport->close();
  co_await p->done.wait();
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
  // The number is free: a plain socket that gets it again may be watched.
  DatagramSocket again = DatagramSocket::bind(SocketAddress::ip("127.0.0.1", 0));
  bool writable = false;
  asyncio::get_running_loop().add_writer(again.fd(), [&writable] { writable = true; });
  for (int i = 0; i < 100 && !writable; ++i) co_await asyncio::sleep(0);
  EXPECT_TRUE(writable);
  EXPECT_TRUE(asyncio::get_running_loop().remove_writer(again.fd()));
}
TEST_P(DatagramsTest, ASocketUsedByATransportIsRefusedUntilItCloses) {
  run(fd_used_by_transport_body());
}

// A transport open when the loop closes has its socket closed (TearDown: no fd left).
Coro<void> loop_close_body(std::shared_ptr<Recorder> p) {
  auto e =
      co_await asyncio::create_datagram_endpoint(give(p), local(SocketAddress::ip("127.0.0.1", 0)));
  (void)e;
}
TEST_P(DatagramsTest, LoopClosedWithAnOpenEndpointClosesItsSocket) {
  auto p = std::make_shared<Recorder>();
  run(loop_close_body(p));
  EXPECT_EQ(p->state, (std::vector<std::string>{"INITIAL", "INITIALIZED"}));  // not called
}

// set_protocol takes only a DatagramProtocol; extra info names the socket.
Coro<void> extra_info_body() {
  auto p = std::make_shared<Recorder>();
  auto e =
      co_await asyncio::create_datagram_endpoint(give(p), local(SocketAddress::ip("127.0.0.1", 0)));
  EXPECT_THROW(e.transport->set_protocol(std::make_shared<asyncio::Protocol>()),
               asyncio::ValueError);
  auto q = std::make_shared<Recorder>();
  e.transport->set_protocol(q);
  EXPECT_EQ(e.transport->get_protocol(), q);
  EXPECT_TRUE(e.transport->get_extra_info("socket").has_value());
  EXPECT_TRUE(e.transport->get_extra_info("sockname").has_value());
  EXPECT_EQ(e.transport->get_write_buffer_size(), 0U);
  e.transport->close();
  co_await q->done.wait();
  EXPECT_EQ(p->state, (std::vector<std::string>{"INITIAL", "INITIALIZED"}));
}
TEST_P(DatagramsTest, SetProtocolAndExtraInfo) {
  run(extra_info_body());
}

// ---- The coroutine-style socket --------------------------------------------------------------

// test_sock_lowlevel: sock_recvfrom / sock_sendto between two sockets.
Coro<void> sock_pair_body(std::string host) {
  DatagramSocket a = DatagramSocket::bind(SocketAddress::ip(host, 0));
  DatagramSocket b = DatagramSocket::bind(SocketAddress::ip(host, 0));
  EXPECT_EQ(co_await b.sendto("hello", a.local_address()), 5U);
  auto [data, addr] = co_await a.recvfrom();
  EXPECT_EQ(data, "hello");
  EXPECT_EQ(addr, b.local_address());
  EXPECT_EQ(co_await asyncio::sock_sendto(a.fd(), "back", addr), 4U);
  asyncio::Datagram d = co_await asyncio::sock_recvfrom(b.fd(), 100);
  EXPECT_EQ(d.data, "back");
  EXPECT_EQ(d.address, a.local_address());
}
TEST_P(DatagramsTest, SockRecvfromAndSendtoIPv4) {
  run(sock_pair_body("127.0.0.1"));
}
TEST_P(DatagramsTest, SockRecvfromAndSendtoIPv6) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "::1 is not available here";
  run(sock_pair_body("::1"));
}

// A receive waits for the datagram (it is not there yet when it starts).
Coro<void> delayed_sender(DatagramSocket* s, SocketAddress to) {
  co_await asyncio::sleep(0.05);
  (void)co_await s->sendto("late", to);
}
Coro<void> waits_body() {
  DatagramSocket a = DatagramSocket::bind(SocketAddress::ip("127.0.0.1", 0));
  DatagramSocket b = DatagramSocket::bind(SocketAddress::ip("127.0.0.1", 0));
  auto sender = asyncio::create_task(delayed_sender(&b, a.local_address()));
  auto [data, addr] = co_await a.recvfrom();
  EXPECT_EQ(data, "late");
  co_await sender;
}
TEST_P(DatagramsTest, RecvfromWaitsForADatagram) {
  run(waits_body());
}

// A datagram longer than the size asked for is truncated; the next one is whole.
Coro<void> truncate_body() {
  DatagramSocket a = DatagramSocket::bind(SocketAddress::ip("127.0.0.1", 0));
  DatagramSocket b = DatagramSocket::connect(a.local_address());
  (void)co_await b.send(std::string(100, 'a'));
  (void)co_await b.send("second");
  EXPECT_EQ((co_await a.recvfrom(10)).data, std::string(10, 'a'));
  EXPECT_EQ((co_await a.recvfrom(10)).data, "second");
}
TEST_P(DatagramsTest, LongDatagramIsTruncatedToTheSizeAskedFor) {
  run(truncate_body());
}

// Cancelling a receive loses no datagram: the next receive gets it.
Coro<void> cancel_body() {
  DatagramSocket a = DatagramSocket::bind(SocketAddress::ip("127.0.0.1", 0));
  DatagramSocket b = DatagramSocket::connect(a.local_address());
  auto waiting = asyncio::create_task(a.recvfrom());
  co_await asyncio::sleep(0.01);
  waiting.cancel();
  bool cancelled = false;
  try {
    (void)co_await waiting;
  } catch (const asyncio::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  (void)co_await b.send("kept");
  EXPECT_EQ((co_await a.recvfrom()).data, "kept");
}
TEST_P(DatagramsTest, CancelledReceiveLosesNothing) {
  run(cancel_body());
}

// A connected socket: ICMP "port unreachable" comes back as ConnectionRefusedError.
Coro<void> refused_body() {
  DatagramSocket s = DatagramSocket::connect(SocketAddress::ip("127.0.0.1", closed_udp_port()));
  (void)co_await s.send("anyone?");
  bool refused = false;
  try {
    (void)co_await s.recv();
  } catch (const asyncio::ConnectionRefusedError&) {
    refused = true;
  }
  EXPECT_TRUE(refused);
}
TEST_P(DatagramsTest, ConnectedSocketSeesConnectionRefused) {
  run(refused_body());
}

// A closed DatagramSocket refuses to be used; misuse is an exception.
Coro<void> closed_socket_body() {
  DatagramSocket a = DatagramSocket::bind(SocketAddress::ip("127.0.0.1", 0));
  const SocketAddress where = a.local_address();
  a.close();
  a.close();
  EXPECT_EQ(a.fd(), -1);
  EXPECT_THROW((void)a.recvfrom(), asyncio::RuntimeError);
  EXPECT_THROW((void)a.sendto("x", where), asyncio::RuntimeError);
  DatagramSocket b = DatagramSocket::bind(SocketAddress::ip("127.0.0.1", 0));
  EXPECT_THROW((void)b.sendto("x", SocketAddress()), asyncio::ValueError);
  co_return;
}
TEST_P(DatagramsTest, ClosedOrMisusedSocketThrows) {
  run(closed_socket_body());
}

// ---- Batches ---------------------------------------------------------------------------------

// Datagrams that are waiting together are received with one recvmmsg() and an echo's replies,
// sent from datagram_received(), leave together with one sendmmsg(); nothing is lost, the order
// is kept.
Coro<void> batch_body() {
  using asyncio::sys::Call;
  auto server = std::make_shared<Recorder>(true);
  auto s = co_await asyncio::create_datagram_endpoint(give(server),
                                                      local(SocketAddress::ip("127.0.0.1", 0)));
  auto client = std::make_shared<Recorder>();
  auto c =
      co_await asyncio::create_datagram_endpoint(give(client), remote(s.transport->sockname()));
  const std::uint64_t recvs = asyncio::sys::call_count(Call::recvmmsg);
  const std::uint64_t sends = asyncio::sys::call_count(Call::sendmmsg);
  for (int i = 0; i < 32; ++i) c.transport->sendto("d" + std::to_string(i));  // all queued now
  EXPECT_TRUE(co_await received(*client, 32));
  EXPECT_EQ(server->data.size(), 32U);
  if (server->data.size() != 32U || client->data.size() != 32U) co_return;
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(server->data[static_cast<std::size_t>(i)], "d" + std::to_string(i));
    EXPECT_EQ(client->data[static_cast<std::size_t>(i)], "resp:d" + std::to_string(i));
  }
  // The server's replies left in one sendmmsg(); the receives took a few recvmmsg() (the
  // client's own included), far fewer than the 64 datagrams.
  EXPECT_EQ(asyncio::sys::call_count(Call::sendmmsg) - sends, 1U);
  EXPECT_LE(asyncio::sys::call_count(Call::recvmmsg) - recvs, 8U);
  c.transport->close();
  s.transport->close();
  co_await client->done.wait();
  co_await server->done.wait();
}
TEST_P(DatagramsTest, BatchesReceiveAndSendTogether) {
  run(batch_body());
}

/// Echoes, and also sends each datagram to an address that refuses it (port 0: EINVAL).
struct EchoAndBadSend final : asyncio::DatagramProtocol {
  DatagramTransport* transport = nullptr;
  std::vector<std::exception_ptr> errors;
  asyncio::Event done;
  void connection_made(DatagramTransport& t) override { transport = &t; }
  void datagram_received(std::string_view d, const SocketAddress& addr) override {
    transport->sendto(d, SocketAddress::ip("127.0.0.1", 0));
    transport->sendto(d, addr);
  }
  void error_received(std::exception_ptr exc) override { errors.push_back(exc); }
  void connection_lost(std::exception_ptr) override { done.set(); }
};

// The write buffer of a datagram transport (Python's test_sendto_tryagain, _buffer, _ready,
// _ready_tryagain, _ready_error_received, _ready_closing, _no_data), driven by the fault seam:
// a sendto() that meets EAGAIN keeps the datagram, later ones queue behind it without a system
// call, and they leave in order once the socket is writable; an EAGAIN while flushing keeps
// them; an error while flushing goes to error_received() and drops that datagram only; close()
// sends what is queued before connection_lost(); an empty datagram sends nothing.
Coro<void> write_buffer_body() {
  using asyncio::sys::Call;
  using asyncio::sys::call_count;
  auto peer = std::make_shared<Recorder>();
  auto pe = co_await asyncio::create_datagram_endpoint(give(peer),
                                                       local(SocketAddress::ip("127.0.0.1", 0)));
  const SocketAddress to = pe.transport->sockname();
  auto p = std::make_shared<Recorder>();
  auto e =
      co_await asyncio::create_datagram_endpoint(give(p), local(SocketAddress::ip("127.0.0.1", 0)));
  DatagramTransport& t = *e.transport;

  const std::uint64_t before = call_count(Call::sendto);
  t.sendto("", to);  // nothing at all
  EXPECT_EQ(call_count(Call::sendto), before);

  // EAGAIN: kept; the next ones queue behind it (no system call). Then the first flush meets
  // EAGAIN again, the second an error for "one"; "two" and "three" leave, in order.
  asyncio::sys::inject_fault({.call = Call::sendto, .nth = 1, .error = EAGAIN});
  asyncio::sys::inject_fault({.call = Call::sendto, .nth = 2, .error = EAGAIN});
  asyncio::sys::inject_fault({.call = Call::sendto, .nth = 3, .error = ECONNREFUSED});
  t.sendto("one", to);
  EXPECT_EQ(t.get_write_buffer_size(), 3U);
  EXPECT_EQ(call_count(Call::sendto), before + 1);
  t.sendto("two", to);
  t.sendto("three", to);
  EXPECT_EQ(t.get_write_buffer_size(), 11U);
  EXPECT_EQ(call_count(Call::sendto), before + 1);
  EXPECT_TRUE(co_await received(*peer, 2));
  asyncio::sys::clear_faults();
  EXPECT_EQ(peer->data, (std::vector<std::string>{"two", "three"}));
  EXPECT_EQ(t.get_write_buffer_size(), 0U);
  EXPECT_EQ(call_count(Call::sendto), before + 5);  // one, one (EAGAIN), one (error), two, three
  EXPECT_EQ(p->errors.size(), 1U);
  if (!p->errors.empty()) {
    EXPECT_TRUE(holds<asyncio::ConnectionRefusedError>(p->errors.front()))
        << what_of(p->errors.front());
  }
  EXPECT_FALSE(t.is_closing());  // an error while flushing leaves the endpoint open

  // close() with a datagram queued: it leaves first, then connection_lost(null).
  asyncio::sys::inject_fault({.call = Call::sendto, .nth = 1, .error = EAGAIN});
  t.sendto("last", to);
  EXPECT_EQ(t.get_write_buffer_size(), 4U);
  t.close();
  co_await p->done.wait();
  asyncio::sys::clear_faults();
  EXPECT_FALSE(p->lost_with);
  EXPECT_TRUE(co_await received(*peer, 3));
  EXPECT_EQ(peer->data.back(), "last");
  pe.transport->close();
  co_await peer->done.wait();
}
TEST_P(DatagramsTest, WriteBufferKeepsOrderThroughEagainAndErrors) {
  run(write_buffer_body());
}

// A datagram_received() that throws: the loop's exception handler gets the exception and the
// endpoint reads on (Python: the exception leaves the reader callback and is reported; the
// transport stays open), so one bad datagram does not end a server.
struct ThrowsOnBad final : asyncio::DatagramProtocol {
  std::vector<std::string> data;
  asyncio::Event done;
  void datagram_received(std::string_view d, const SocketAddress&) override {
    if (d == "bad") throw std::runtime_error("cannot parse it");
    data.emplace_back(d);
  }
  void connection_lost(std::exception_ptr) override { done.set(); }
};

Coro<void> throwing_datagram_received_body() {
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  std::vector<std::string> reported;
  loop.set_exception_handler([&reported](asyncio::EventLoop&, const asyncio::ExceptionContext& c) {
    reported.push_back(c.message + ": " + what_of(c.exception));
  });
  auto p = std::make_shared<ThrowsOnBad>();
  auto e =
      co_await asyncio::create_datagram_endpoint(give(p), local(SocketAddress::ip("127.0.0.1", 0)));
  DatagramSocket client = DatagramSocket::connect(e.transport->sockname());
  (void)co_await client.send("bad");
  (void)co_await client.send("good");
  for (int i = 0; i < 2000 && p->data.empty(); ++i) co_await asyncio::sleep(0.005);
  EXPECT_EQ(p->data, std::vector<std::string>{"good"});
  EXPECT_EQ(reported.size(), 1U);
  if (!reported.empty()) {
    EXPECT_NE(reported.front().find("datagram_received"), std::string::npos) << reported.front();
    EXPECT_NE(reported.front().find("cannot parse it"), std::string::npos) << reported.front();
  }
  EXPECT_FALSE(e.transport->is_closing());
  e.transport->close();
  co_await p->done.wait();
  loop.set_exception_handler({});
}
TEST_P(DatagramsTest, AThrowingDatagramReceivedIsReportedAndTheEndpointReadsOn) {
  run(throwing_datagram_received_body());
}

// test_sendto_ready_error_received_connection: on a connected endpoint, an error while
// flushing also goes to error_received(), and the endpoint goes on.
Coro<void> connected_write_buffer_body() {
  using asyncio::sys::Call;
  auto peer = std::make_shared<Recorder>();
  auto pe = co_await asyncio::create_datagram_endpoint(give(peer),
                                                       local(SocketAddress::ip("127.0.0.1", 0)));
  auto p = std::make_shared<Recorder>();
  auto e = co_await asyncio::create_datagram_endpoint(give(p), remote(pe.transport->sockname()));
  asyncio::sys::inject_fault({.call = Call::send, .nth = 1, .error = EAGAIN});
  asyncio::sys::inject_fault({.call = Call::send, .nth = 2, .error = ECONNREFUSED});
  e.transport->sendto("refused");
  e.transport->sendto("delivered");
  EXPECT_EQ(e.transport->get_write_buffer_size(), 16U);
  EXPECT_TRUE(co_await received(*peer, 1));
  EXPECT_TRUE(co_await received(*p, 1));
  asyncio::sys::clear_faults();
  EXPECT_EQ(peer->data, std::vector<std::string>{"delivered"});
  EXPECT_EQ(p->errors.size(), 1U);
  if (!p->errors.empty()) {
    EXPECT_TRUE(holds<asyncio::ConnectionRefusedError>(p->errors.front()))
        << what_of(p->errors.front());
  }
  EXPECT_FALSE(e.transport->is_closing());
  e.transport->close();
  pe.transport->close();
  co_await p->done.wait();
  co_await peer->done.wait();
}
TEST_P(DatagramsTest, ConnectedWriteBufferReportsAnErrorAndGoesOn) {
  run(connected_write_buffer_body());
}

// test_sendto_blocking: sock_sendto() that meets EAGAIN waits until the socket is writable and
// sends; the peer gets the datagram once.
Coro<void> sock_sendto_blocking_body() {
  using asyncio::sys::Call;
  DatagramSocket peer = DatagramSocket::bind(SocketAddress::ip("127.0.0.1", 0));
  DatagramSocket mine = DatagramSocket::bind(SocketAddress::ip("127.0.0.1", 0));
  const std::uint64_t before = asyncio::sys::call_count(Call::sendto);
  asyncio::sys::inject_fault({.call = Call::sendto, .nth = 1, .error = EAGAIN});
  const std::size_t n =
      co_await asyncio::sock_sendto(mine.fd(), "blocked once", peer.local_address());
  asyncio::sys::clear_faults();
  EXPECT_EQ(n, 12U);
  EXPECT_EQ(asyncio::sys::call_count(Call::sendto) - before, 2U);
  auto [data, from] = co_await asyncio::wait_for(peer.recvfrom(), 5.0);
  EXPECT_EQ(data, "blocked once");
  EXPECT_EQ(from, mine.local_address());
}
TEST_P(DatagramsTest, SockSendtoWaitsWhenTheSocketIsNotWritable) {
  run(sock_sendto_blocking_body());
}

// A datagram to an unroutable address: the kernel's ENETUNREACH from sendto() (made here with
// the fault seam: whether 192.0.2.1 has a route depends on the machine) reaches error_received()
// as an OSError naming it, as Python's _SelectorDatagramTransport.sendto reports it; the endpoint
// stays open and the next datagram leaves. The coroutine socket raises it from sendto().
Coro<void> unroutable_body() {
  using asyncio::sys::Call;
  auto peer = std::make_shared<Recorder>();
  auto pe = co_await asyncio::create_datagram_endpoint(give(peer),
                                                       local(SocketAddress::ip("127.0.0.1", 0)));
  auto p = std::make_shared<Recorder>();
  auto e =
      co_await asyncio::create_datagram_endpoint(give(p), local(SocketAddress::ip("127.0.0.1", 0)));
  asyncio::sys::inject_fault({.call = Call::sendto, .error = ENETUNREACH});
  e.transport->sendto("lost", SocketAddress::ip("192.0.2.1", 9));
  asyncio::sys::clear_faults();
  EXPECT_TRUE(co_await received(*p, 1));
  EXPECT_EQ(p->errors.size(), 1U);
  int code = 0;
  if (!p->errors.empty()) {
    try {
      std::rethrow_exception(p->errors.front());
    } catch (const asyncio::OSError& err) {
      code = err.code().value();
    } catch (...) {
    }
  }
  EXPECT_EQ(code, ENETUNREACH);
  EXPECT_FALSE(e.transport->is_closing());
  e.transport->sendto("after", pe.transport->sockname());
  EXPECT_TRUE(co_await received(*peer, 1));
  EXPECT_EQ(peer->data, std::vector<std::string>{"after"});

  DatagramSocket sock = DatagramSocket::bind(SocketAddress::ip("127.0.0.1", 0));
  asyncio::sys::inject_fault({.call = Call::sendto, .error = ENETUNREACH});
  code = 0;
  try {
    (void)co_await sock.sendto("lost", SocketAddress::ip("192.0.2.1", 9));
  } catch (const asyncio::OSError& err) {
    code = err.code().value();
  }
  asyncio::sys::clear_faults();
  EXPECT_EQ(code, ENETUNREACH);
  EXPECT_EQ(co_await sock.sendto("after", pe.transport->sockname()), 5U);
  EXPECT_TRUE(co_await received(*peer, 2));
  e.transport->close();
  pe.transport->close();
  co_await p->done.wait();
  co_await peer->done.wait();
}
TEST_P(DatagramsTest, UnroutableAddressIsReportedAndTheEndpointStaysOpen) {
  run(unroutable_body());
}

// A gathered send that fails goes to error_received() and the others of the batch still leave
// (as sendto()'s own failure would).
Coro<void> batch_error_body() {
  auto server = std::make_shared<EchoAndBadSend>();
  auto s = co_await asyncio::create_datagram_endpoint(give(server),
                                                      local(SocketAddress::ip("127.0.0.1", 0)));
  auto client = std::make_shared<Recorder>();
  auto c =
      co_await asyncio::create_datagram_endpoint(give(client), remote(s.transport->sockname()));
  for (int i = 0; i < 5; ++i) c.transport->sendto("e" + std::to_string(i));
  EXPECT_TRUE(co_await received(*client, 5));
  EXPECT_EQ(client->data.size(), 5U);
  EXPECT_EQ(server->errors.size(), 5U);
  for (const auto& e : server->errors) {
    EXPECT_TRUE(holds<asyncio::OSError>(e)) << asyncio_test::what_of(e);
  }
  EXPECT_FALSE(s.transport->is_closing());
  c.transport->close();
  s.transport->close();
  co_await client->done.wait();
  co_await server->done.wait();
}
TEST_P(DatagramsTest, FailedSendInABatchIsReportedAndTheRestLeave) {
  run(batch_error_body());
}

/// Answers the first datagram and closes at once, from datagram_received().
struct AnswerAndClose final : asyncio::DatagramProtocol {
  DatagramTransport* transport = nullptr;
  asyncio::Event done;
  void connection_made(DatagramTransport& t) override { transport = &t; }
  void datagram_received(std::string_view d, const SocketAddress& addr) override {
    if (transport->is_closing()) return;
    transport->sendto("last:" + std::string(d), addr);
    transport->close();
  }
  void connection_lost(std::exception_ptr) override { done.set(); }
};

// A reply sent during a batch's delivery, just before close(), still leaves: close() sends what
// was gathered rather than dropping it.
Coro<void> close_in_batch_body() {
  auto server = std::make_shared<AnswerAndClose>();
  auto s = co_await asyncio::create_datagram_endpoint(give(server),
                                                      local(SocketAddress::ip("127.0.0.1", 0)));
  auto client = std::make_shared<Recorder>();
  auto c =
      co_await asyncio::create_datagram_endpoint(give(client), remote(s.transport->sockname()));
  for (int i = 0; i < 3; ++i) c.transport->sendto("c" + std::to_string(i));
  EXPECT_TRUE(co_await received(*client, 1));
  EXPECT_EQ(client->data, std::vector<std::string>{"last:c0"});
  co_await server->done.wait();
  EXPECT_TRUE(s.transport->is_closing());
  c.transport->close();
  co_await client->done.wait();
}
TEST_P(DatagramsTest, CloseDuringABatchStillSendsWhatWasSent) {
  run(close_in_batch_body());
}

INSTANTIATE_TEST_SUITE_P(Engines, DatagramsTest,
                         ::testing::Values(Backend::epoll, Backend::io_uring), param_name);

}  // namespace
