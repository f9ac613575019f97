// Integration tests of stream transports, connections and servers (asyncio/transports.hpp,
// asyncio/protocols.hpp: Transport, Protocol, BufferedProtocol, create_connection,
// create_unix_connection, connect_accepted_socket, create_server, create_unix_server, Server)
// on real sockets - TCP on 127.0.0.1 and ::1, Unix paths, socketpairs - run on BOTH I/O engines:
// every TEST_P runs once with Backend::epoll and once with Backend::io_uring.
//
// The behaviours are those CPython 3.12 tests for _SelectorSocketTransport and
// base_events.create_connection/create_server/Server (test_selector_events.py, test_server.py,
// test_base_events.py, test_sock_lowlevel.py), checked from the outside: what the protocol is
// told and in which order, what the peer (a plain socket) receives, what the exception handler
// hears, and that no fd is left behind (every run counts /proc/self/fd before and after).
//
// Every test's coroutine runs under a time-out (kBound); waits for something to happen poll the
// condition with a bounded real-time limit. Ports are 0, addresses loopback.
#include <algorithm>
#include <any>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/io_uring.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"
#include "engine_test.hpp"
#include "net_test.hpp"
#include "sys/sys.hpp"
#include "transports_detail.hpp"
#include "unix/loop_io.hpp"

namespace {

using asyncio_test::error_of;

using asyncio_test::engine_name;
using asyncio_test::io_uring_refused;
using asyncio_test::param_name;
using asyncio_test::TempDir;

using namespace std::chrono_literals;
using asyncio::Backend;
using asyncio::BufferedProtocol;
using asyncio::Coro;
using asyncio::EventLoop;
using asyncio::Protocol;
using asyncio::RunOptions;
using asyncio::Server;
using asyncio::SocketAddress;
using asyncio::Task;
using asyncio::Transport;
using asyncio_test::FdGuard;
using asyncio_test::holds;
using asyncio_test::open_fds;
using asyncio_test::RecordingHandler;
using asyncio_test::what_of;

/// Seconds of loop time after which a test's coroutine is cancelled (TimeoutError).
constexpr double kBound = 30.0;
/// Seconds a single wait for a condition may take.
constexpr double kWait = 10.0;

// ---- Engines -----------------------------------------------------------------------------------

// ---- Sockets -----------------------------------------------------------------------------------

[[noreturn]] void fail_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

FdGuard new_socket(int family, int type = SOCK_STREAM) {
  FdGuard fd(::socket(family, type | SOCK_CLOEXEC, 0));
  if (!fd) fail_errno("socket");
  return fd;
}

bool ipv6_loopback_available() {
  FdGuard fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;  // NOLINT
}

SocketAddress sockname_of(int fd) {
  SocketAddress a;
  socklen_t len = SocketAddress::capacity();
  if (::getsockname(fd, a.data(), &len) != 0) fail_errno("getsockname");
  a.set_size(len);
  return a;
}

SocketAddress peername_of(int fd) {
  SocketAddress a;
  socklen_t len = SocketAddress::capacity();
  if (::getpeername(fd, a.data(), &len) != 0) fail_errno("getpeername");
  a.set_size(len);
  return a;
}

void set_buf(int fd, int opt, int bytes) {
  if (::setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes) != 0) fail_errno("setsockopt");
}

/// Closes `fd` so that the peer gets a RST (SO_LINGER with a zero time-out).
void close_with_reset(FdGuard& fd) {
  linger l{1, 0};
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  fd.reset();
}

/// A free TCP port on 127.0.0.1 (bound then released).
std::uint16_t free_port() {
  FdGuard s = new_socket(AF_INET);
  const SocketAddress a = SocketAddress::ip("127.0.0.1", 0);
  if (::bind(s.get(), a.data(), a.size()) != 0) fail_errno("bind");
  return sockname_of(s.get()).port();
}

/// A listener whose accept queue is full (backlog 0 and one connection waiting): further
/// connections to it stay pending (their SYNs are dropped) until the bound.
struct FullListener {
  FdGuard fd;
  FdGuard filler;
  std::uint16_t port = 0;
  FullListener() {
    fd = new_socket(AF_INET);
    const SocketAddress a = SocketAddress::ip("127.0.0.1", 0);
    if (::bind(fd.get(), a.data(), a.size()) != 0 || ::listen(fd.get(), 0) != 0) {
      fail_errno("listen");
    }
    port = sockname_of(fd.get()).port();
    filler = asyncio_test::connect_to(port);
  }
};

bool exists(const std::string& path) {
  struct stat sb {};
  return ::lstat(path.c_str(), &sb) == 0;
}

bool is_socket_file(const std::string& path) {
  struct stat sb {};
  return ::lstat(path.c_str(), &sb) == 0 && S_ISSOCK(sb.st_mode);
}

int errno_of(const std::exception_ptr& e) {
  if (!e) return -1;
  try {
    std::rethrow_exception(e);
  } catch (const std::system_error& ex) {
    return ex.code().value();
  } catch (...) {
    return -1;
  }
}

/// The byte at offset `i` of the test pattern (no period a buffer size would hide).
char pattern_at(std::size_t i) {
  return static_cast<char>((i * 131U + i / 251U) & 0xffU);
}

std::string pattern(std::size_t n, std::size_t from = 0) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = pattern_at(from + i);
  return s;
}

// ---- Waiting -----------------------------------------------------------------------------------

/// Polls `pred` once per millisecond (the loop runs meanwhile) until it holds or `limit`
/// seconds of loop time passed; its last value.
template <class Pred>
Coro<bool> until(Pred pred, double limit = kWait) {
  const double end = asyncio::get_running_loop().time() + limit;
  while (!pred()) {
    if (asyncio::get_running_loop().time() >= end) co_return pred();
    co_await asyncio::sleep(0.001);
  }
  co_return true;
}

/// Runs the loop for `seconds` (real I/O goes on meanwhile).
Coro<void> pause_for(double seconds) {
  co_await asyncio::sleep(seconds);
}

Coro<void> passes(int n) {
  for (int i = 0; i < n; ++i) co_await asyncio::sleep(0);
}

#define CO_WAIT(...)                                           \
  do {                                                         \
    const bool waited_ok_ = co_await until(__VA_ARGS__);       \
    if (!waited_ok_) {                                         \
      ADD_FAILURE() << "timed out waiting for: " #__VA_ARGS__; \
      co_return;                                               \
    }                                                          \
  } while (0)

// ---- Peer side (plain sockets driven by the loop) ----------------------------------------------

/// Receives from `fd` until `n` bytes came or EOF.
Coro<std::string> recv_exactly(int fd, std::size_t n) {
  std::string got;
  while (got.size() < n) {
    std::string part =
        co_await asyncio::sock_recv(fd, std::min<std::size_t>(n - got.size(), 1 << 20));
    if (part.empty()) break;
    got += part;
  }
  co_return got;
}

/// Receives from `fd` until EOF (a reset ends it too).
Coro<std::string> recv_all(int fd) {
  std::string got;
  for (;;) {
    std::string part;
    try {
      part = co_await asyncio::sock_recv(fd, 1 << 20);
    } catch (const asyncio::OSError&) {
      break;
    }
    if (part.empty()) break;
    got += part;
  }
  co_return got;
}

/// True when `fd` reads EOF (or a reset) next.
Coro<bool> reads_eof(int fd) {
  try {
    std::string part = co_await asyncio::sock_recv(fd, 1);
    co_return part.empty();
  } catch (const asyncio::ConnectionError&) {
    co_return true;
  }
}

Coro<void> send_all(int fd, std::string data) {
  co_await asyncio::sock_sendall(fd, data);
}

Coro<void> send_all_then_close(int fd, std::string data) {
  co_await asyncio::sock_sendall(fd, data);
  ::shutdown(fd, SHUT_WR);
}

// ---- Protocols ---------------------------------------------------------------------------------

/// Records everything a transport tells it.
struct Rec : Protocol {
  Transport* tr = nullptr;
  std::vector<std::string> events;  // "made", "data" (once per run of data), "eof", "lost"...
  std::string data;
  int made = 0;
  int data_calls = 0;
  int eofs = 0;
  int lost = 0;
  int pauses = 0;
  int resumes = 0;
  std::exception_ptr lost_exc;
  bool keep_open = false;  // eof_received()'s answer
  bool echo = false;       // writes back what it receives
  bool close_on_eof_reply = false;
  std::size_t buffer_at_resume = 0;
  bool lost_after_made = true;

  void connection_made(Transport& t) override {
    tr = &t;
    ++made;
    events.emplace_back("made");
  }
  void data_received(std::string_view d) override {
    ++data_calls;
    if (events.empty() || events.back() != "data") events.emplace_back("data");
    data.append(d);
    if (echo) tr->write(d);
  }
  bool eof_received() override {
    ++eofs;
    events.emplace_back("eof");
    return keep_open;
  }
  void connection_lost(std::exception_ptr e) override {
    ++lost;
    if (made == 0) lost_after_made = false;
    events.emplace_back("lost");
    lost_exc = std::move(e);
  }
  void pause_writing() override {
    ++pauses;
    events.emplace_back("pause");
  }
  void resume_writing() override {
    ++resumes;
    buffer_at_resume = tr->get_write_buffer_size();
    events.emplace_back("resume");
  }
  [[nodiscard]] std::string joined() const {
    std::string out;
    for (std::size_t i = 0; i < events.size(); ++i) out += (i ? " " : "") + events[i];
    return out;
  }
};

struct Echo : Rec {
  Echo() { echo = true; }
};

/// Throws from data_received.
struct ThrowsOnData : Rec {
  void data_received(std::string_view d) override {
    Rec::data_received(d);
    throw std::runtime_error("boom in data_received");
  }
};

struct ThrowsOnMade : Rec {
  void connection_made(Transport& t) override {
    Rec::connection_made(t);
    throw std::runtime_error("boom in connection_made");
  }
};

struct ThrowsOnEof : Rec {
  bool eof_received() override {
    Rec::eof_received();
    throw std::runtime_error("boom in eof_received");
  }
};

struct ThrowsOnLost : Rec {
  void connection_lost(std::exception_ptr e) override {
    Rec::connection_lost(std::move(e));
    throw std::runtime_error("boom in connection_lost");
  }
};

/// Writes a greeting from connection_made, then closes.
struct Greeter : Rec {
  void connection_made(Transport& t) override {
    Rec::connection_made(t);
    t.write("hello from connection_made");
    t.close();
  }
};

/// A BufferedProtocol that checks every byte against pattern_at().
struct Buf : BufferedProtocol {
  Transport* tr = nullptr;
  std::vector<std::byte> mem;
  std::size_t received = 0;
  std::size_t mismatches = 0;
  std::size_t max_update = 0;
  std::size_t min_hint = SIZE_MAX;
  int gets = 0;
  int updates = 0;
  int eofs = 0;
  int lost = 0;
  int made = 0;
  bool empty_buffer = false;
  bool outstanding = false;  // get_buffer() was called, buffer_updated() not yet
  int protocol_violations = 0;
  std::vector<std::string> events;
  std::exception_ptr lost_exc;
  std::string text;  // the bytes as text (for small transfers)
  bool keep_text = true;

  explicit Buf(std::size_t size = 65536) : mem(size) {}
  void connection_made(Transport& t) override {
    tr = &t;
    ++made;
    events.emplace_back("made");
  }
  std::span<std::byte> get_buffer(std::size_t hint) override {
    ++gets;
    min_hint = std::min(min_hint, hint);
    if (empty_buffer) return {};
    outstanding = true;
    return {mem.data(), mem.size()};
  }
  void buffer_updated(std::size_t n) override {
    if (!outstanding || n > mem.size() || n == 0) ++protocol_violations;
    outstanding = false;
    ++updates;
    if (events.empty() || events.back() != "data") events.emplace_back("data");
    max_update = std::max(max_update, n);
    for (std::size_t i = 0; i < n; ++i) {
      if (static_cast<char>(mem[i]) != pattern_at(received + i)) ++mismatches;
    }
    if (keep_text) text.append(reinterpret_cast<const char*>(mem.data()), n);  // NOLINT
    received += n;
  }
  bool eof_received() override {
    ++eofs;
    events.emplace_back("eof");
    return false;
  }
  void connection_lost(std::exception_ptr e) override {
    ++lost;
    events.emplace_back("lost");
    lost_exc = std::move(e);
  }
};

struct SmallBuf : Buf {
  SmallBuf() : Buf(3) {}
};

struct EmptyBuf : Buf {
  EmptyBuf() { empty_buffer = true; }
};

struct ThrowsOnGetBuffer : Buf {
  std::span<std::byte> get_buffer(std::size_t hint) override {
    (void)Buf::get_buffer(hint);
    outstanding = false;
    throw std::runtime_error("boom in get_buffer");
  }
};

/// Pauses reading in connection_made(), as Python's test_pause_reading_connection_made.
struct PausesAtOnce : Rec {
  void connection_made(Transport& t) override {
    Rec::connection_made(t);
    t.pause_reading();
  }
};

struct ThrowsOnUpdate : Buf {
  void buffer_updated(std::size_t n) override {
    Buf::buffer_updated(n);
    throw std::runtime_error("boom in buffer_updated");
  }
};

// ---- Factories (built in plain functions: no lambdas made inside coroutine bodies) -------------

/// A factory that makes a P per call and keeps it in `*out`.
template <class P>
auto collect(std::vector<std::shared_ptr<P>>* out) {
  return [out] {
    auto p = std::make_shared<P>();
    out->push_back(p);
    return p;
  };
}

/// A factory that makes a fresh P (not kept).
template <class P>
auto make() {
  return [] { return std::make_shared<P>(); };
}

template <class P>
asyncio::ProtocolFactory erased(std::vector<std::shared_ptr<P>>* out) {
  return asyncio::ProtocolFactory(collect<P>(out));
}

/// A factory that throws on its first call, then makes Echo protocols kept in `*out`.
asyncio::ProtocolFactory throws_first(std::vector<std::shared_ptr<Echo>>* out, int* calls) {
  return [out, calls]() -> std::shared_ptr<asyncio::BaseProtocol> {
    if ((*calls)++ == 0) throw std::runtime_error("factory failed");
    auto p = std::make_shared<Echo>();
    out->push_back(p);
    return p;
  };
}

asyncio::ProtocolFactory null_factory() {
  return []() -> std::shared_ptr<asyncio::BaseProtocol> { return nullptr; };
}

asyncio::ProtocolFactory base_factory() {
  return []() -> std::shared_ptr<asyncio::BaseProtocol> {
    return std::make_shared<asyncio::BaseProtocol>();
  };
}

/// A client transport and its protocol, with the peer's end as a plain socket.
template <class P>
struct Link {
  std::shared_ptr<Transport> t;
  std::shared_ptr<P> p;
  FdGuard peer;
};

/// create_connection() to a plain listener on 127.0.0.1; the accepted end is the peer.
template <class P>
Coro<Link<P>> tcp_link() {
  asyncio_test::Listener listener;
  auto conn = co_await asyncio::create_connection(make<P>(), "127.0.0.1", listener.port);
  asyncio::AcceptedSocket accepted = co_await asyncio::sock_accept(listener.fd.get());
  Link<P> link;
  link.t = std::move(conn.transport);
  link.p = std::move(conn.protocol);
  link.peer.reset(accepted.fd);
  co_return link;
}

/// Makes the transport's kernel send buffer small, so that big writes stay in the transport's
/// own buffer while the peer does not read. (The peer's receive buffer keeps its size: a tiny
/// receive window makes loopback TCP crawl.)
template <class P>
void shrink_buffers(Link<P>& link) {
  set_buf(std::any_cast<int>(link.t->get_extra_info("socket")), SO_SNDBUF, 4096);
}

// ---- The fixture -------------------------------------------------------------------------------

class Transports : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::io_uring) {
      if (auto why = io_uring_refused()) GTEST_SKIP() << "io_uring is not available: " << *why;
    }
  }

  [[nodiscard]] RunOptions options(bool debug = false) const {
    return RunOptions{.debug = debug, .backend = GetParam()};
  }

  /// asyncio::run(main) on the engine under test, bounded by kBound; checks that the loop runs
  /// that engine and that the run leaves no fd open.
  void run(Coro<void> main, bool debug = false, bool check_fds = true) {
    const std::size_t before = open_fds();
    asyncio::run(asyncio_test::bounded_on_engine(std::move(main), GetParam(), kBound),
                 options(debug));
    if (check_fds) {
      EXPECT_EQ(open_fds(), before) << "fds leaked";
    }
  }

  static bool no_ipv6() { return !ipv6_loopback_available(); }
};

#define SKIP_WITHOUT_IPV6() \
  if (no_ipv6()) GTEST_SKIP() << "IPv6 loopback (::1) is not available here"

// =================================================================================================
// Protocol callbacks: order, exactly-once connection_lost
// =================================================================================================

Coro<void> callbacks_in_order() {
  Link<Rec> l = co_await tcp_link<Rec>();
  // connection_made has run by the time create_connection returns (Python awaits it).
  EXPECT_EQ(l.p->joined(), "made");
  EXPECT_EQ(l.p->tr, l.t.get());
  co_await asyncio::sock_sendall(l.peer.get(), "abc");
  CO_WAIT([&] { return l.p->data == "abc"; });
  co_await asyncio::sock_sendall(l.peer.get(), "def");
  CO_WAIT([&] { return l.p->data == "abcdef"; });
  ::shutdown(l.peer.get(), SHUT_WR);
  CO_WAIT([&] { return l.p->lost > 0; });
  co_await passes(5);
  EXPECT_EQ(l.p->joined(), "made data eof lost");
  EXPECT_EQ(l.p->lost, 1);
  EXPECT_EQ(l.p->lost_exc, nullptr);
  EXPECT_TRUE(l.t->is_closing());
  // eof_received returned false: the transport closed its side too.
  const bool eof = co_await reads_eof(l.peer.get());
  EXPECT_TRUE(eof);
}

TEST_P(Transports, CallbacksComeInPythonsOrder) {
  run(callbacks_in_order());
}

Coro<void> close_defers_lost() {
  Link<Rec> l = co_await tcp_link<Rec>();
  l.t->close();
  // connection_lost comes from the loop, never from inside close().
  EXPECT_EQ(l.p->lost, 0);
  EXPECT_TRUE(l.t->is_closing());
  EXPECT_FALSE(l.t->is_reading());
  l.t->close();
  l.t->abort();
  CO_WAIT([&] { return l.p->lost > 0; });
  co_await passes(5);
  EXPECT_EQ(l.p->lost, 1);
  EXPECT_EQ(l.p->lost_exc, nullptr);
  EXPECT_EQ(l.p->joined(), "made lost");
  const bool eof = co_await reads_eof(l.peer.get());
  EXPECT_TRUE(eof);
}

TEST_P(Transports, CloseCallsConnectionLostOnceFromTheLoop) {
  run(close_defers_lost());
}

Coro<void> abort_defers_lost() {
  Link<Rec> l = co_await tcp_link<Rec>();
  l.t->abort();
  EXPECT_EQ(l.p->lost, 0);
  EXPECT_TRUE(l.t->is_closing());
  l.t->abort();
  l.t->close();
  CO_WAIT([&] { return l.p->lost > 0; });
  co_await passes(5);
  EXPECT_EQ(l.p->lost, 1);
  EXPECT_EQ(l.p->lost_exc, nullptr);
}

TEST_P(Transports, AbortCallsConnectionLostOnceWithNull) {
  run(abort_defers_lost());
}

Coro<void> reset_gives_error(bool debug) {
  RecordingHandler handler;
  Link<Rec> l = co_await tcp_link<Rec>();
  co_await asyncio::sock_sendall(l.peer.get(), "x");
  CO_WAIT([&] { return l.p->data == "x"; });
  close_with_reset(l.peer);
  CO_WAIT([&] { return l.p->lost > 0; });
  co_await passes(5);
  EXPECT_EQ(l.p->lost, 1);
  EXPECT_EQ(l.p->eofs, 0);
  EXPECT_TRUE(holds<asyncio::ConnectionResetError>(l.p->lost_exc)) << what_of(l.p->lost_exc);
  EXPECT_EQ(errno_of(l.p->lost_exc), ECONNRESET);
  EXPECT_TRUE(l.t->is_closing());
  // An OSError is the connection's end: reported only in debug mode (Python: _fatal_error).
  if (debug) {
    EXPECT_GE(handler.size(), 1U);
  } else {
    EXPECT_TRUE(handler.empty()) << handler.size();
  }
}

TEST_P(Transports, PeerResetGivesConnectionResetError) {
  run(reset_gives_error(false));
}
TEST_P(Transports, PeerResetIsReportedInDebugMode) {
  run(reset_gives_error(true), true);
}

Coro<void> lost_releases_protocol() {
  std::weak_ptr<Rec> weak_p;
  std::weak_ptr<Transport> weak_t;
  FdGuard peer;
  {
    Link<Rec> l = co_await tcp_link<Rec>();
    weak_p = l.p;
    weak_t = l.t;
    peer = std::move(l.peer);
    EXPECT_EQ(l.t->get_protocol(), l.p);
    l.t->close();
    CO_WAIT([&] { return l.p->lost > 0; });
    co_await passes(3);
    EXPECT_EQ(l.t->get_protocol(), nullptr);
    EXPECT_EQ(std::any_cast<int>(l.t->get_extra_info("socket")), -1);
  }
  co_await passes(3);
  // Neither the loop nor the transport holds the protocol or the transport any more.
  EXPECT_TRUE(weak_p.expired());
  EXPECT_TRUE(weak_t.expired());
}

TEST_P(Transports, ConnectionLostReleasesProtocolAndTransport) {
  run(lost_releases_protocol());
}

/// A protocol that keeps its transport (a cycle while connected).
struct HoldsTransport : Rec {
  std::shared_ptr<asyncio::BaseTransport> keep;
  void connection_made(Transport& t) override {
    Rec::connection_made(t);
    keep = t.shared_from_this();
  }
};

Coro<void> no_cycle_after_lost() {
  std::weak_ptr<HoldsTransport> weak_p;
  std::weak_ptr<Transport> weak_t;
  asyncio_test::Listener listener;
  {
    auto conn =
        co_await asyncio::create_connection(make<HoldsTransport>(), "127.0.0.1", listener.port);
    weak_p = conn.protocol;
    weak_t = conn.transport;
    conn.transport->close();
  }
  CO_WAIT([&] { return weak_p.expired() || weak_p.lock()->lost > 0; });
  co_await passes(3);
  // The protocol holds the transport, but the transport let go of the protocol: both die.
  EXPECT_TRUE(weak_p.expired());
  EXPECT_TRUE(weak_t.expired());
}

TEST_P(Transports, ProtocolHoldingItsTransportMakesNoLeak) {
  run(no_cycle_after_lost());
}

Coro<void> made_throws() {
  RecordingHandler handler;
  asyncio_test::Listener listener;
  auto conn = co_await asyncio::create_connection(make<ThrowsOnMade>(), "127.0.0.1", listener.port);
  asyncio::AcceptedSocket acc = co_await asyncio::sock_accept(listener.fd.get());
  FdGuard peer(acc.fd);
  EXPECT_TRUE(conn.transport->is_closing());
  CO_WAIT([&] { return conn.protocol->lost > 0; });
  EXPECT_TRUE(handler.has_message("connection_made")) << handler.size();
  EXPECT_EQ(what_of(conn.protocol->lost_exc), "boom in connection_made");
  const bool eof = co_await reads_eof(peer.get());
  EXPECT_TRUE(eof);
}

TEST_P(Transports, ConnectionMadeThrowingIsReportedAndCloses) {
  run(made_throws());
}

Coro<void> lost_throws() {
  RecordingHandler handler;
  asyncio_test::Listener listener;
  auto conn = co_await asyncio::create_connection(make<ThrowsOnLost>(), "127.0.0.1", listener.port);
  conn.transport->close();
  CO_WAIT([&] { return conn.protocol->lost > 0; });
  co_await passes(3);
  EXPECT_EQ(conn.protocol->lost, 1);
  EXPECT_TRUE(handler.has_message("connection_lost")) << handler.size();
  EXPECT_EQ(conn.transport->get_protocol(), nullptr);
}

TEST_P(Transports, ConnectionLostThrowingIsReported) {
  run(lost_throws());
}

// =================================================================================================
// Exceptions from the protocol
// =================================================================================================

Coro<void> data_received_throws() {
  RecordingHandler handler;
  Link<ThrowsOnData> l = co_await tcp_link<ThrowsOnData>();
  co_await asyncio::sock_sendall(l.peer.get(), "payload");
  CO_WAIT([&] { return l.p->lost > 0; });
  co_await passes(3);
  EXPECT_EQ(l.p->lost, 1);
  EXPECT_EQ(l.p->data_calls, 1);
  EXPECT_TRUE(l.t->is_closing());
  EXPECT_EQ(handler.size(), 1U);
  if (!handler.empty()) {
    EXPECT_NE(handler.at(0).message.find("data_received"), std::string::npos)
        << handler.at(0).message;
    EXPECT_EQ(what_of(handler.at(0).exception), "boom in data_received");
  }
  // Python: _fatal_error passes the exception on to connection_lost.
  EXPECT_EQ(what_of(l.p->lost_exc), "boom in data_received");
  const bool eof = co_await reads_eof(l.peer.get());
  EXPECT_TRUE(eof);
}

TEST_P(Transports, DataReceivedThrowingIsReportedAndCloses) {
  run(data_received_throws());
}

Coro<void> eof_received_throws() {
  RecordingHandler handler;
  Link<ThrowsOnEof> l = co_await tcp_link<ThrowsOnEof>();
  ::shutdown(l.peer.get(), SHUT_WR);
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_EQ(l.p->eofs, 1);
  EXPECT_TRUE(handler.has_message("eof_received"));
  EXPECT_EQ(what_of(l.p->lost_exc), "boom in eof_received");
}

TEST_P(Transports, EofReceivedThrowingIsReportedAndCloses) {
  run(eof_received_throws());
}

// =================================================================================================
// BufferedProtocol
// =================================================================================================

Coro<void> buffered_large(std::size_t total) {
  Link<Buf> l = co_await tcp_link<Buf>();
  l.p->keep_text = false;
  Task<void> sender = asyncio::create_task(send_all_then_close(l.peer.get(), pattern(total)));
  CO_WAIT([&] { return l.p->lost > 0; });
  co_await sender;
  EXPECT_EQ(l.p->received, total);
  EXPECT_EQ(l.p->mismatches, 0U);
  EXPECT_EQ(l.p->protocol_violations, 0);
  EXPECT_GE(l.p->min_hint, 1U);
  EXPECT_EQ(l.p->eofs, 1);
  EXPECT_EQ(l.p->lost, 1);
  EXPECT_EQ(l.p->lost_exc, nullptr);
  CO_ASSERT(!l.p->events.empty());
  EXPECT_EQ(l.p->events.front(), "made");
  EXPECT_EQ(l.p->events.back(), "lost");
}

TEST_P(Transports, BufferedProtocolReceivesLargeTransferIntact) {
  run(buffered_large(16U << 20));
}

Coro<void> buffered_small() {
  Link<SmallBuf> l = co_await tcp_link<SmallBuf>();
  const std::size_t total = 100000;
  Task<void> sender = asyncio::create_task(send_all_then_close(l.peer.get(), pattern(total)));
  CO_WAIT([&] { return l.p->lost > 0; });
  co_await sender;
  EXPECT_EQ(l.p->received, total);
  EXPECT_EQ(l.p->mismatches, 0U);
  EXPECT_LE(l.p->max_update, 3U);
  EXPECT_EQ(l.p->protocol_violations, 0);
  EXPECT_GE(l.p->updates, static_cast<int>(total / 3));
}

TEST_P(Transports, BufferedProtocolWithTinyBufferGetsEveryByte) {
  run(buffered_small());
}

Coro<void> buffered_empty() {
  RecordingHandler handler;
  Link<EmptyBuf> l = co_await tcp_link<EmptyBuf>();
  co_await asyncio::sock_sendall(l.peer.get(), "data");
  CO_WAIT([&] { return l.p->lost > 0; });
  co_await passes(3);
  EXPECT_EQ(l.p->updates, 0);
  EXPECT_GE(l.p->gets, 1);
  EXPECT_EQ(l.p->lost, 1);
  EXPECT_TRUE(l.t->is_closing());
  EXPECT_TRUE(handler.has_message("get_buffer")) << handler.size();
  EXPECT_TRUE(holds<asyncio::RuntimeError>(l.p->lost_exc)) << what_of(l.p->lost_exc);
  const bool eof = co_await reads_eof(l.peer.get());
  EXPECT_TRUE(eof);
}

// test_get_buffer_error: a get_buffer() that throws is a fatal error (Python: "Fatal error:
// protocol.get_buffer() call failed."): reported, the connection closed, connection_lost() given
// the exception, no buffer_updated().
Coro<void> buffered_get_buffer_throws() {
  RecordingHandler handler;
  Link<ThrowsOnGetBuffer> l = co_await tcp_link<ThrowsOnGetBuffer>();
  co_await asyncio::sock_sendall(l.peer.get(), "data");
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_EQ(l.p->updates, 0);
  EXPECT_EQ(l.p->lost, 1);
  EXPECT_TRUE(l.t->is_closing());
  EXPECT_TRUE(handler.has_message("get_buffer")) << handler.size();
  EXPECT_EQ(what_of(l.p->lost_exc), "boom in get_buffer");
  const bool eof = co_await reads_eof(l.peer.get());
  EXPECT_TRUE(eof);
}

TEST_P(Transports, BufferedProtocolGetBufferThrowingIsFatal) {
  run(buffered_get_buffer_throws());
}

// test_pause_reading_connection_made: reading paused in connection_made() delivers nothing
// until resume_reading(); then everything that came meanwhile, in order.
Coro<void> paused_in_connection_made() {
  Link<PausesAtOnce> l = co_await tcp_link<PausesAtOnce>();
  EXPECT_FALSE(l.t->is_reading());
  co_await asyncio::sock_sendall(l.peer.get(), "waits");
  co_await pause_for(0.05);
  EXPECT_EQ(l.p->data_calls, 0);
  l.t->resume_reading();
  EXPECT_TRUE(l.t->is_reading());
  CO_WAIT([&] { return l.p->data == "waits"; });
  EXPECT_EQ(l.p->joined(), "made data");
  l.t->close();
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, PauseReadingInConnectionMadeHoldsTheDataUntilResume) {
  run(paused_in_connection_made());
}

TEST_P(Transports, BufferedProtocolEmptyBufferIsFatal) {
  run(buffered_empty());
}

Coro<void> buffered_update_throws() {
  RecordingHandler handler;
  Link<ThrowsOnUpdate> l = co_await tcp_link<ThrowsOnUpdate>();
  co_await asyncio::sock_sendall(l.peer.get(), pattern(10));
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_EQ(l.p->updates, 1);
  EXPECT_TRUE(handler.has_message("buffer_updated"));
  EXPECT_EQ(what_of(l.p->lost_exc), "boom in buffer_updated");
}

TEST_P(Transports, BufferedProtocolBufferUpdatedThrowingIsFatal) {
  run(buffered_update_throws());
}

Coro<void> buffered_pause() {
  Link<Buf> l = co_await tcp_link<Buf>();
  co_await asyncio::sock_sendall(l.peer.get(), pattern(100));
  CO_WAIT([&] { return l.p->received == 100; });
  l.t->pause_reading();
  EXPECT_FALSE(l.t->is_reading());
  const std::string more = pattern(5000, 100);
  co_await asyncio::sock_sendall(l.peer.get(), more);
  co_await pause_for(0.1);
  EXPECT_EQ(l.p->received, 100U);
  l.t->resume_reading();
  EXPECT_TRUE(l.t->is_reading());
  CO_WAIT([&] { return l.p->received == 5100; });
  EXPECT_EQ(l.p->mismatches, 0U);
  EXPECT_EQ(l.p->protocol_violations, 0);
  l.t->close();
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, BufferedProtocolPauseReadingHoldsData) {
  run(buffered_pause());
}

Coro<void> buffered_echo_both_ways() {
  // The transport writes a big pattern to the peer, the peer sends one back: full duplex.
  Link<Buf> l = co_await tcp_link<Buf>();
  l.p->keep_text = false;
  const std::size_t total = 4U << 20;
  Task<void> sender = asyncio::create_task(send_all(l.peer.get(), pattern(total)));
  l.t->write(pattern(total));
  const std::string got = co_await recv_exactly(l.peer.get(), total);
  co_await sender;
  EXPECT_TRUE(got == pattern(total));
  CO_WAIT([&] { return l.p->received == total; });
  EXPECT_EQ(l.p->mismatches, 0U);
  l.t->close();
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, BufferedProtocolFullDuplexLargeTransfer) {
  run(buffered_echo_both_ways());
}

// =================================================================================================
// Writing
// =================================================================================================

Coro<void> big_write_buffered() {
  Link<Rec> l = co_await tcp_link<Rec>();
  shrink_buffers(l);
  const std::size_t total = 8U << 20;
  l.t->write(pattern(total));
  EXPECT_GT(l.t->get_write_buffer_size(), 0U);
  EXPECT_LT(l.t->get_write_buffer_size(), total + 1);
  const std::string got = co_await recv_exactly(l.peer.get(), total);
  EXPECT_EQ(got.size(), total);
  EXPECT_TRUE(got == pattern(total));
  CO_WAIT([&] { return l.t->get_write_buffer_size() == 0; });
  l.t->close();
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, BigWriteIsBufferedAndArrivesIntact) {
  run(big_write_buffered());
}

Coro<void> many_small_writes() {
  Link<Rec> l = co_await tcp_link<Rec>();
  shrink_buffers(l);
  std::string expected;
  for (int i = 0; i < 20000; ++i) {
    const std::string piece = std::to_string(i) + ",";
    l.t->write(piece);
    expected += piece;
  }
  l.t->write("");  // nothing
  const std::string got = co_await recv_exactly(l.peer.get(), expected.size());
  EXPECT_TRUE(got == expected);
  l.t->close();
  const bool eof = co_await reads_eof(l.peer.get());
  EXPECT_TRUE(eof);
}

TEST_P(Transports, ManySmallWritesKeepTheirOrder) {
  run(many_small_writes());
}

// io_uring sends through the ring: write() hands the bytes to a send op that goes to the kernel
// with the loop's next wait, and what is written meanwhile queues behind it. These hold on both
// engines.

Coro<void> close_right_after_writes() {
  Link<Rec> l = co_await tcp_link<Rec>();
  l.t->write("one ");
  const std::string_view more[] = {"two ", "three"};
  l.t->writelines(std::span<const std::string_view>(more));
  l.t->close();  // before the loop ran: the bytes still go first
  EXPECT_TRUE(l.t->is_closing());
  const std::string got = co_await recv_all(l.peer.get());
  EXPECT_EQ(got, "one two three");
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_EQ(l.p->joined(), "made lost");
  EXPECT_EQ(l.p->lost_exc, nullptr);
}

TEST_P(Transports, CloseRightAfterWritesSendsThemFirst) {
  run(close_right_after_writes());
}

Coro<void> abort_with_send_in_flight() {
  Link<Rec> l = co_await tcp_link<Rec>();
  shrink_buffers(l);
  const std::size_t total = 8U << 20;
  l.t->write(pattern(total));  // more than the socket takes: the rest waits for room
  l.t->write("tail");          // behind it
  CO_ASSERT(l.t->get_write_buffer_size() > 0);
  co_await passes(3);  // io_uring: the send op is in the kernel, waiting for room
  CO_ASSERT(l.t->get_write_buffer_size() > 0);
  l.t->abort();
  EXPECT_EQ(l.t->get_write_buffer_size(), 0U);
  EXPECT_TRUE(l.t->is_closing());
  l.t->write("after");  // dropped, no error
  EXPECT_EQ(l.t->get_write_buffer_size(), 0U);
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_EQ(l.p->lost_exc, nullptr);
  const std::string got = co_await recv_all(l.peer.get());
  EXPECT_LT(got.size(), total);             // the rest was dropped
  EXPECT_TRUE(got == pattern(got.size()));  // what came is a prefix, in order
  co_await passes(3);
  EXPECT_EQ(l.p->lost, 1);
}

TEST_P(Transports, AbortWithASendWaitingDropsTheRest) {
  run(abort_with_send_in_flight());
}

/// Writes the next chunk of the pattern each time it is told to resume writing (from inside
/// the transport's handling of a completed send).
struct Refiller : Rec {
  static constexpr std::size_t kChunk = 256U << 10;
  static constexpr std::size_t kTotal = 2U << 20;
  std::size_t sent = 0;
  void next() {
    if (sent >= kTotal) return;
    tr->write(pattern(kChunk, sent));
    sent += kChunk;
  }
  void resume_writing() override {
    Rec::resume_writing();
    next();
  }
};

Coro<void> resume_writing_writes_more() {
  Link<Refiller> l = co_await tcp_link<Refiller>();
  shrink_buffers(l);
  l.p->next();  // above the high-water mark: paused at once
  EXPECT_EQ(l.p->pauses, 1);
  const std::string got = co_await recv_exactly(l.peer.get(), Refiller::kTotal);
  EXPECT_EQ(got.size(), Refiller::kTotal);
  EXPECT_TRUE(got == pattern(Refiller::kTotal));
  EXPECT_GE(l.p->resumes, 7);  // one per chunk after the first
  CO_WAIT([&] { return l.t->get_write_buffer_size() == 0; });
  l.t->close();
  const bool eof = co_await reads_eof(l.peer.get());
  EXPECT_TRUE(eof);
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, ResumeWritingMayWriteAgain) {
  run(resume_writing_writes_more());
}

std::vector<std::string> pieces_for_writelines() {
  std::vector<std::string> v;
  v.emplace_back("alpha ");
  v.emplace_back("");
  v.emplace_back("beta ");
  v.emplace_back(pattern(300000));
  v.emplace_back(" gamma");
  return v;
}

std::vector<std::string_view> views_of(const std::vector<std::string>& v) {
  return {v.begin(), v.end()};
}

Coro<void> writelines_order() {
  Link<Rec> l = co_await tcp_link<Rec>();
  const std::vector<std::string> pieces = pieces_for_writelines();
  std::string expected;
  for (const auto& p : pieces) expected += p;
  l.t->writelines(pieces);  // the range overload
  const std::vector<std::string_view> views = views_of(pieces);
  l.t->writelines(std::span<const std::string_view>(views));
  expected += expected;
  const std::string got = co_await recv_exactly(l.peer.get(), expected.size());
  EXPECT_TRUE(got == expected);
  l.t->close();
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, WritelinesSendsPiecesInOrder) {
  run(writelines_order());
}

Coro<void> writelines_many(int count) {
  // More pieces than one sendmsg takes (its iovec array): the rest is buffered and sent when
  // the socket is writable - and it is, since no send met EAGAIN.
  Link<Rec> l = co_await tcp_link<Rec>();
  std::vector<std::string> many;
  std::string joined;
  for (int i = 0; i < count; ++i) {
    many.push_back("<" + std::to_string(i) + ">");
    joined += many.back();
  }
  l.t->writelines(many);
  std::string got2;
  try {
    got2 = co_await asyncio::wait_for(recv_exactly(l.peer.get(), joined.size()), 5.0);
  } catch (const asyncio::TimeoutError&) {
    ADD_FAILURE() << "the peer did not get every piece in 5 s; still buffered: "
                  << l.t->get_write_buffer_size();
  }
  EXPECT_EQ(got2, joined);
  EXPECT_EQ(l.t->get_write_buffer_size(), 0U);
  l.t->abort();
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, WritelinesWith64PiecesSendsThemAll) {
  run(writelines_many(64));
}
TEST_P(Transports, WritelinesWithMoreThan64PiecesSendsThemAll) {
  run(writelines_many(300));
}

Coro<void> write_buffer_limits() {
  Link<Rec> l = co_await tcp_link<Rec>();
  using Limits = std::pair<std::size_t, std::size_t>;
  EXPECT_EQ(l.t->get_write_buffer_limits(), Limits(16384, 65536));
  l.t->set_write_buffer_limits(1000);
  EXPECT_EQ(l.t->get_write_buffer_limits(), Limits(250, 1000));
  l.t->set_write_buffer_limits(std::nullopt, 100);
  EXPECT_EQ(l.t->get_write_buffer_limits(), Limits(100, 400));
  l.t->set_write_buffer_limits(500, 500);
  EXPECT_EQ(l.t->get_write_buffer_limits(), Limits(500, 500));
  l.t->set_write_buffer_limits(0, 0);
  EXPECT_EQ(l.t->get_write_buffer_limits(), Limits(0, 0));
  l.t->set_write_buffer_limits();
  EXPECT_EQ(l.t->get_write_buffer_limits(), Limits(16384, 65536));
  bool threw = false;
  try {
    l.t->set_write_buffer_limits(1, 2);
  } catch (const asyncio::ValueError&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
  threw = false;
  try {
    l.t->set_write_buffer_limits(10, 1000);
  } catch (const asyncio::ValueError&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
  // A refused setting changes nothing.
  EXPECT_EQ(l.t->get_write_buffer_limits(), Limits(16384, 65536));
  l.t->close();
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, WriteBufferLimitsDefaultsAndValidation) {
  run(write_buffer_limits());
}

Coro<void> pause_resume_writing() {
  Link<Rec> l = co_await tcp_link<Rec>();
  shrink_buffers(l);
  l.t->set_write_buffer_limits(64 * 1024, 16 * 1024);
  const std::size_t total = 4U << 20;
  l.t->write(pattern(total / 2));
  EXPECT_GT(l.t->get_write_buffer_size(), 64U * 1024);
  EXPECT_EQ(l.p->pauses, 1);
  l.t->write(pattern(total / 2, total / 2));  // already paused: not told again
  EXPECT_EQ(l.p->pauses, 1);
  EXPECT_EQ(l.p->resumes, 0);
  co_await pause_for(0.05);  // the peer does not read: still paused
  EXPECT_EQ(l.p->resumes, 0);
  const std::string got = co_await recv_exactly(l.peer.get(), total);
  EXPECT_TRUE(got == pattern(total));
  CO_WAIT([&] { return l.p->resumes > 0; });
  EXPECT_EQ(l.p->pauses, 1);
  EXPECT_EQ(l.p->resumes, 1);
  EXPECT_LE(l.p->buffer_at_resume, 16U * 1024);
  EXPECT_EQ(l.p->joined(), "made pause resume");
  l.t->close();
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, PauseAndResumeWritingAroundTheMarks) {
  run(pause_resume_writing());
}

Coro<void> lowering_high_pauses() {
  Link<Rec> l = co_await tcp_link<Rec>();
  shrink_buffers(l);
  l.t->write(pattern(1U << 20));
  const std::size_t buffered = l.t->get_write_buffer_size();
  EXPECT_GT(buffered, 0U);
  if (buffered <= 64U * 1024) {
    EXPECT_EQ(l.p->pauses, 0);
    l.t->set_write_buffer_limits(buffered / 2);
  }
  // Above the high mark once set_write_buffer_limits() returns (Python: _maybe_pause_protocol).
  EXPECT_EQ(l.p->pauses, 1);
  const std::string got = co_await recv_exactly(l.peer.get(), 1U << 20);
  EXPECT_EQ(got.size(), 1U << 20);
  CO_WAIT([&] { return l.p->resumes == 1; });
  l.t->abort();
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, SetWriteBufferLimitsBelowBufferPauses) {
  run(lowering_high_pauses());
}

Coro<void> close_flushes() {
  Link<Rec> l = co_await tcp_link<Rec>();
  shrink_buffers(l);
  const std::size_t total = 4U << 20;
  l.t->write(pattern(total));
  EXPECT_GT(l.t->get_write_buffer_size(), 0U);
  l.t->close();
  EXPECT_TRUE(l.t->is_closing());
  co_await pause_for(0.05);
  EXPECT_EQ(l.p->lost, 0);  // still sending
  l.t->write("dropped?");   // Python appends it (the connection is not lost yet)
  const std::string got = co_await recv_all(l.peer.get());
  EXPECT_GE(got.size(), total);
  EXPECT_TRUE(got.substr(0, total) == pattern(total));
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_EQ(l.p->lost_exc, nullptr);
  EXPECT_EQ(l.t->get_write_buffer_size(), 0U);
}

TEST_P(Transports, CloseSendsBufferedDataFirst) {
  run(close_flushes());
}

Coro<void> abort_drops() {
  Link<Rec> l = co_await tcp_link<Rec>();
  shrink_buffers(l);
  const std::size_t total = 4U << 20;
  l.t->write(pattern(total));
  EXPECT_GT(l.t->get_write_buffer_size(), 0U);
  l.t->abort();
  EXPECT_EQ(l.t->get_write_buffer_size(), 0U);
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_EQ(l.p->lost_exc, nullptr);
  const std::string got = co_await recv_all(l.peer.get());
  EXPECT_LT(got.size(), total);
  EXPECT_TRUE(got == pattern(got.size()));
}

TEST_P(Transports, AbortDropsBufferedData) {
  run(abort_drops());
}

Coro<void> write_after_close_dropped() {
  RecordingHandler handler;
  Link<Rec> l = co_await tcp_link<Rec>();
  l.t->close();
  for (int i = 0; i < 10; ++i) l.t->write("late");  // silently dropped (no exception)
  CO_WAIT([&] { return l.p->lost > 0; });
  for (int i = 0; i < 10; ++i) l.t->write("later");
  const std::string got = co_await recv_all(l.peer.get());
  EXPECT_EQ(got, "");
  EXPECT_TRUE(handler.empty());
  EXPECT_EQ(l.p->lost, 1);
}

TEST_P(Transports, WriteAfterCloseIsDropped) {
  run(write_after_close_dropped());
}

Coro<void> write_to_reset_peer() {
  RecordingHandler handler;
  Link<Rec> l = co_await tcp_link<Rec>();
  l.t->pause_reading();  // so that the write, not a read, meets the reset
  close_with_reset(l.peer);
  co_await pause_for(0.05);
  for (int i = 0; i < 5 && l.p->lost == 0 && !l.t->is_closing(); ++i) {
    l.t->write("into the void");
    co_await pause_for(0.01);
  }
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_EQ(l.p->lost, 1);
  EXPECT_TRUE(holds<asyncio::ConnectionError>(l.p->lost_exc)) << what_of(l.p->lost_exc);
  EXPECT_TRUE(handler.empty());
  l.t->write("more");  // harmless
}

TEST_P(Transports, WriteToResetPeerLosesConnectionWithOSError) {
  run(write_to_reset_peer());
}

// =================================================================================================
// Half-close: write_eof / eof_received
// =================================================================================================

Coro<void> write_eof_half_close() {
  Link<Rec> l = co_await tcp_link<Rec>();
  EXPECT_TRUE(l.t->can_write_eof());
  l.t->write("last words");
  l.t->write_eof();
  l.t->write_eof();  // twice: no effect
  const std::string got = co_await recv_all(l.peer.get());
  EXPECT_EQ(got, "last words");
  EXPECT_FALSE(l.t->is_closing());
  bool threw = false;
  try {
    l.t->write("after eof");
  } catch (const asyncio::RuntimeError&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
  // Reading goes on.
  co_await asyncio::sock_sendall(l.peer.get(), "still talking");
  CO_WAIT([&] { return l.p->data == "still talking"; });
  ::shutdown(l.peer.get(), SHUT_WR);
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_EQ(l.p->joined(), "made data eof lost");
  EXPECT_EQ(l.p->lost_exc, nullptr);
}

TEST_P(Transports, WriteEofHalfClosesAndReadingGoesOn) {
  run(write_eof_half_close());
}

Coro<void> write_eof_after_buffer() {
  Link<Rec> l = co_await tcp_link<Rec>();
  shrink_buffers(l);
  const std::size_t total = 2U << 20;
  l.t->write(pattern(total));
  EXPECT_GT(l.t->get_write_buffer_size(), 0U);
  l.t->write_eof();  // waits for the buffer to drain
  const std::string got = co_await recv_all(l.peer.get());
  EXPECT_EQ(got.size(), total);
  EXPECT_TRUE(got == pattern(total));
  l.t->close();
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, WriteEofSendsBufferedDataFirst) {
  run(write_eof_after_buffer());
}

struct KeepOpen : Rec {
  KeepOpen() { keep_open = true; }
  bool eof_received() override {
    Rec::eof_received();
    tr->write("reply after eof:" + data);
    return true;
  }
};

Coro<void> eof_keep_open() {
  Link<KeepOpen> l = co_await tcp_link<KeepOpen>();
  co_await asyncio::sock_sendall(l.peer.get(), "question");
  ::shutdown(l.peer.get(), SHUT_WR);
  CO_WAIT([&] { return l.p->eofs > 0; });
  co_await passes(5);
  EXPECT_FALSE(l.t->is_closing());
  EXPECT_EQ(l.p->lost, 0);
  l.t->write(" and more");
  const std::string got = co_await recv_exactly(l.peer.get(), 33);
  EXPECT_EQ(got, "reply after eof:question and more");
  l.t->close();
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_EQ(l.p->joined(), "made data eof lost");
  const bool eof = co_await reads_eof(l.peer.get());
  EXPECT_TRUE(eof);
}

TEST_P(Transports, EofReceivedReturningTrueKeepsWriting) {
  run(eof_keep_open());
}

Coro<void> eof_closes() {
  Link<Rec> l = co_await tcp_link<Rec>();
  ::shutdown(l.peer.get(), SHUT_WR);
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_TRUE(l.t->is_closing());
  EXPECT_EQ(l.p->lost_exc, nullptr);
  const bool eof = co_await reads_eof(l.peer.get());
  EXPECT_TRUE(eof);
}

TEST_P(Transports, EofReceivedReturningFalseCloses) {
  run(eof_closes());
}

// =================================================================================================
// Reading: pause_reading / resume_reading / is_reading
// =================================================================================================

Coro<void> pause_resume_reading() {
  Link<Rec> l = co_await tcp_link<Rec>();
  EXPECT_TRUE(l.t->is_reading());
  co_await asyncio::sock_sendall(l.peer.get(), "one;");
  CO_WAIT([&] { return l.p->data == "one;"; });
  l.t->pause_reading();
  l.t->pause_reading();  // no effect
  EXPECT_FALSE(l.t->is_reading());
  const std::string more = pattern(200000);
  Task<void> sender = asyncio::create_task(send_all(l.peer.get(), more));
  co_await pause_for(0.1);
  EXPECT_EQ(l.p->data, "one;");
  l.t->resume_reading();
  l.t->resume_reading();  // no effect
  EXPECT_TRUE(l.t->is_reading());
  CO_WAIT([&] { return l.p->data.size() == 4 + more.size(); });
  co_await sender;
  EXPECT_TRUE(l.p->data == "one;" + more);
  // Pause and resume again without anything arriving in between.
  l.t->pause_reading();
  l.t->resume_reading();
  co_await asyncio::sock_sendall(l.peer.get(), "tail");
  CO_WAIT([&] { return l.p->data.size() == 8 + more.size(); });
  l.t->close();
  EXPECT_FALSE(l.t->is_reading());
  l.t->resume_reading();  // closing: no effect
  EXPECT_FALSE(l.t->is_reading());
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, PauseReadingStopsDataAndResumeDeliversAll) {
  run(pause_resume_reading());
}

// Bytes that reach the socket just before pause_reading(): on io_uring the transport's receive
// is already in the kernel and takes them (its completion comes after the pause); they are held
// and delivered, in order, by resume_reading(). On epoll nothing was read yet. Either way none
// arrives while paused, and none is lost.
Coro<void> pause_after_arrival() {
  Link<Rec> l = co_await tcp_link<Rec>();
  co_await asyncio::sock_sendall(l.peer.get(), "one;");
  CO_WAIT([&] { return l.p->data == "one;"; });
  co_await pause_for(0.05);  // the next receive now waits in the kernel (io_uring)
  EXPECT_EQ(::send(l.peer.get(), "two;", 4, MSG_NOSIGNAL), 4);  // loopback: queued at once
  l.t->pause_reading();
  co_await pause_for(0.1);
  EXPECT_EQ(l.p->data, "one;");
  l.t->resume_reading();
  co_await asyncio::sock_sendall(l.peer.get(), "three;");
  CO_WAIT([&] { return l.p->data.size() >= 14; });
  EXPECT_EQ(l.p->data, "one;two;three;");
  l.t->close();
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, PauseJustAfterBytesArrivedHoldsThemUntilResume) {
  run(pause_after_arrival());
}

// The same with the end of file behind the bytes: on io_uring the multishot receive of a
// Protocol takes both while paused; the bytes come first at resume, then eof_received.
Coro<void> pause_holds_bytes_and_eof() {
  Link<Rec> l = co_await tcp_link<Rec>();
  co_await asyncio::sock_sendall(l.peer.get(), "one;");
  CO_WAIT([&] { return l.p->data == "one;"; });
  co_await pause_for(0.05);  // the next receive now waits in the kernel (io_uring)
  EXPECT_EQ(::send(l.peer.get(), "two;", 4, MSG_NOSIGNAL), 4);
  ::shutdown(l.peer.get(), SHUT_WR);
  l.t->pause_reading();
  co_await pause_for(0.1);
  EXPECT_EQ(l.p->data, "one;");
  EXPECT_EQ(l.p->eofs, 0);
  l.t->resume_reading();
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_EQ(l.p->data, "one;two;");
  EXPECT_EQ(l.p->joined(), "made data eof lost");
}

TEST_P(Transports, PauseHoldsBytesAndEofUntilResume) {
  run(pause_holds_bytes_and_eof());
}

// A Protocol receiving a large stream after a first short message (on io_uring: the multishot
// receive, whose messages come in 4 KiB pool buffers; a burst larger than the pool stops it and
// the transport arms it again): every byte, in order.
Coro<void> large_stream_after_short_message() {
  Link<Rec> l = co_await tcp_link<Rec>();
  co_await asyncio::sock_sendall(l.peer.get(), "hi");
  CO_WAIT([&] { return l.p->data == "hi"; });
  const std::size_t total = 8U << 20;
  co_await asyncio::sock_sendall(l.peer.get(), pattern(total));
  CO_WAIT([&] { return l.p->data.size() >= total + 2; });
  EXPECT_EQ(l.p->data.size(), total + 2);
  EXPECT_TRUE(l.p->data.substr(2) == pattern(total));
  l.t->close();
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, LargeStreamAfterAShortMessageArrivesIntact) {
  run(large_stream_after_short_message());
}

Coro<void> pause_reading_holds_eof() {
  Link<Rec> l = co_await tcp_link<Rec>();
  l.t->pause_reading();
  co_await asyncio::sock_sendall(l.peer.get(), "bye");
  ::shutdown(l.peer.get(), SHUT_WR);
  co_await pause_for(0.1);
  EXPECT_EQ(l.p->joined(), "made");
  l.t->resume_reading();
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_EQ(l.p->joined(), "made data eof lost");
  EXPECT_EQ(l.p->data, "bye");
}

TEST_P(Transports, PausedTransportSeesNeitherDataNorEof) {
  run(pause_reading_holds_eof());
}

/// pause_reading() from data_received: no further call until resume.
struct PauseOnData : Rec {
  void data_received(std::string_view d) override {
    Rec::data_received(d);
    tr->pause_reading();
  }
};

Coro<void> pause_in_callback() {
  Link<PauseOnData> l = co_await tcp_link<PauseOnData>();
  co_await asyncio::sock_sendall(l.peer.get(), "first");
  CO_WAIT([&] { return l.p->data_calls == 1; });
  co_await asyncio::sock_sendall(l.peer.get(), "second");
  co_await pause_for(0.1);
  EXPECT_EQ(l.p->data_calls, 1);
  l.t->resume_reading();
  CO_WAIT([&] { return l.p->data == "firstsecond"; });
  l.t->close();
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, PauseReadingFromDataReceived) {
  run(pause_in_callback());
}

// =================================================================================================
// Extra info, set_protocol
// =================================================================================================

Coro<void> extra_info_tcp() {
  asyncio_test::Listener listener;
  auto conn = co_await asyncio::create_connection(make<Rec>(), "127.0.0.1", listener.port);
  asyncio::AcceptedSocket acc = co_await asyncio::sock_accept(listener.fd.get());
  FdGuard peer(acc.fd);
  const auto& t = conn.transport;
  EXPECT_EQ(t->peername(), SocketAddress::ip("127.0.0.1", listener.port));
  EXPECT_EQ(t->peername(), sockname_of(peer.get()));
  EXPECT_EQ(t->sockname(), peername_of(peer.get()));
  EXPECT_EQ(std::any_cast<SocketAddress>(t->get_extra_info("peername")), t->peername());
  EXPECT_EQ(std::any_cast<SocketAddress>(t->get_extra_info("sockname")), t->sockname());
  const int fd = std::any_cast<int>(t->get_extra_info("socket"));
  EXPECT_GE(fd, 0);
  EXPECT_EQ(sockname_of(fd), t->sockname());
  EXPECT_FALSE(t->get_extra_info("no such thing").has_value());
  t->close();
  CO_WAIT([&] { return conn.protocol->lost > 0; });
  co_await passes(3);
  EXPECT_EQ(std::any_cast<int>(t->get_extra_info("socket")), -1);
  // The addresses are still known after the close (Python keeps _extra).
  EXPECT_EQ(t->peername(), SocketAddress::ip("127.0.0.1", listener.port));
}

TEST_P(Transports, ExtraInfoPeernameSocknameSocket) {
  run(extra_info_tcp());
}

Coro<void> set_protocol_switch() {
  Link<Rec> l = co_await tcp_link<Rec>();
  co_await asyncio::sock_sendall(l.peer.get(), "to first");
  CO_WAIT([&] { return l.p->data == "to first"; });
  auto second = std::make_shared<Rec>();
  second->tr = l.t.get();
  l.t->set_protocol(second);
  EXPECT_EQ(l.t->get_protocol(), second);
  co_await asyncio::sock_sendall(l.peer.get(), "to second");
  CO_WAIT([&] { return second->data == "to second"; });
  EXPECT_EQ(l.p->data, "to first");
  bool threw = false;
  try {
    l.t->set_protocol(std::make_shared<asyncio::BaseProtocol>());
  } catch (const asyncio::ValueError&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
  EXPECT_EQ(l.t->get_protocol(), second);
  l.t->close();
  CO_WAIT([&] { return second->lost > 0; });
  EXPECT_EQ(l.p->lost, 0);
  EXPECT_EQ(second->lost, 1);
}

TEST_P(Transports, SetProtocolRedirectsCallbacks) {
  run(set_protocol_switch());
}

Coro<void> switch_to_buffered() {
  Link<Rec> l = co_await tcp_link<Rec>();
  auto buf = std::make_shared<Buf>(1000);
  l.t->set_protocol(buf);
  const std::size_t total = 50000;
  Task<void> sender = asyncio::create_task(send_all_then_close(l.peer.get(), pattern(total)));
  CO_WAIT([&] { return buf->lost > 0; });
  co_await sender;
  EXPECT_EQ(buf->received, total);
  EXPECT_EQ(buf->mismatches, 0U);
  EXPECT_EQ(l.p->data, "");
}

TEST_P(Transports, SetProtocolToBufferedProtocol) {
  run(switch_to_buffered());
}

// =================================================================================================
// create_connection
// =================================================================================================

Coro<void> refused() {
  const std::uint16_t port = free_port();
  std::exception_ptr e =
      co_await error_of(asyncio::create_connection(make<Rec>(), "127.0.0.1", port));
  EXPECT_TRUE(holds<asyncio::ConnectionRefusedError>(e)) << what_of(e);
  EXPECT_EQ(errno_of(e), ECONNREFUSED);
  asyncio::ConnectionOptions o;
  o.happy_eyeballs_delay = 0.25;
  std::exception_ptr e2 =
      co_await error_of(asyncio::create_connection(make<Rec>(), "127.0.0.1", port, o));
  EXPECT_TRUE(holds<asyncio::ConnectionRefusedError>(e2)) << what_of(e2);
}

TEST_P(Transports, CreateConnectionRefused) {
  run(refused());
}

// test_create_connection_ipv6_scope: a scoped link-local host ("fe80::1%lo") reaches connect()
// with its scope id. Linux refuses a link-local destination without one (EINVAL) before any
// routing; with the loopback interface's id it gets as far as routing, where lo has no
// link-local route (ENETUNREACH here). So any error but EINVAL shows that the scope got through,
// and nothing leaves the machine.
Coro<void> connect_with_ipv6_scope() {
  for (const std::optional<double> delay : {std::optional<double>{}, std::optional<double>{0.25}}) {
    asyncio::ConnectionOptions o;
    o.happy_eyeballs_delay = delay;
    const std::exception_ptr scoped =
        co_await error_of(asyncio::create_connection(make<Rec>(), "fe80::1%lo", 80, o));
    EXPECT_TRUE(holds<asyncio::OSError>(scoped)) << what_of(scoped);
    EXPECT_NE(errno_of(scoped), EINVAL) << what_of(scoped);
    EXPECT_GT(errno_of(scoped), 0) << what_of(scoped);
    // The control: the same address without its scope is refused for the want of one.
    const std::exception_ptr unscoped =
        co_await error_of(asyncio::create_connection(make<Rec>(), "fe80::1", 80, o));
    EXPECT_EQ(errno_of(unscoped), EINVAL) << what_of(unscoped);
  }
}

TEST_P(Transports, CreateConnectionPassesTheIpv6ScopeToConnect) {
  if (::if_nametoindex("lo") == 0) GTEST_SKIP() << "no loopback interface named lo";
  const std::size_t before = open_fds();
  run(connect_with_ipv6_scope());
  EXPECT_EQ(open_fds(), before);
}

Coro<void> connect_by_name() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  auto conn = co_await asyncio::create_connection(make<Rec>(), "localhost", server.port());
  EXPECT_EQ(conn.transport->peername(), SocketAddress::ip("127.0.0.1", server.port()));
  conn.transport->write("ping");
  CO_WAIT([&] { return conn.protocol->data == "ping"; });
  conn.transport->close();
  CO_WAIT([&] { return conn.protocol->lost > 0; });
  server.close();
  co_await server.wait_closed();
}

TEST_P(Transports, CreateConnectionToAName) {
  run(connect_by_name());
}

Coro<void> connect_family() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  asyncio::ConnectionOptions v4;
  v4.family = AF_INET;
  auto conn = co_await asyncio::create_connection(make<Rec>(), "localhost", server.port(), v4);
  EXPECT_EQ(conn.transport->sockname().family(), AF_INET);
  conn.transport->close();
  CO_WAIT([&] { return conn.protocol->lost > 0; });
  // A numeric IPv4 address with family AF_INET6: nothing to connect to.
  asyncio::ConnectionOptions v6;
  v6.family = AF_INET6;
  std::exception_ptr e =
      co_await error_of(asyncio::create_connection(make<Rec>(), "127.0.0.1", server.port(), v6));
  EXPECT_TRUE(holds<asyncio::OSError>(e)) << what_of(e);
  EXPECT_TRUE(accepted.size() == 1);
  server.close();
  co_await server.wait_closed();
}

TEST_P(Transports, CreateConnectionFamilyOption) {
  run(connect_family());
}

Coro<void> connect_local_addr() {
  asyncio_test::Listener listener;
  const std::uint16_t local_port = free_port();
  asyncio::ConnectionOptions o;
  o.local_addr = SocketAddress::ip("127.0.0.1", local_port);
  auto conn = co_await asyncio::create_connection(make<Rec>(), "127.0.0.1", listener.port, o);
  asyncio::AcceptedSocket acc = co_await asyncio::sock_accept(listener.fd.get());
  FdGuard peer(acc.fd);
  EXPECT_EQ(conn.transport->sockname(), SocketAddress::ip("127.0.0.1", local_port));
  EXPECT_EQ(acc.address, SocketAddress::ip("127.0.0.1", local_port));
  conn.transport->close();
  CO_WAIT([&] { return conn.protocol->lost > 0; });
  // A local address of the other family: no address to try.
  asyncio::ConnectionOptions bad;
  bad.local_addr = SocketAddress::ip("::1", 0);
  std::exception_ptr e =
      co_await error_of(asyncio::create_connection(make<Rec>(), "127.0.0.1", listener.port, bad));
  EXPECT_TRUE(holds<asyncio::OSError>(e)) << what_of(e);
  EXPECT_FALSE(asyncio_test::has_pending_connection(listener.fd.get()));
}

TEST_P(Transports, CreateConnectionLocalAddr) {
  run(connect_local_addr());
}

Coro<void> connect_local_addr_in_use() {
  // Binding to a local address that a listener holds fails with that OSError.
  asyncio_test::Listener target;
  asyncio_test::Listener holder;
  asyncio::ConnectionOptions o;
  o.local_addr = SocketAddress::ip("127.0.0.1", holder.port);
  std::exception_ptr e =
      co_await error_of(asyncio::create_connection(make<Rec>(), "127.0.0.1", target.port, o));
  EXPECT_TRUE(holds<asyncio::OSError>(e)) << what_of(e);
  EXPECT_EQ(errno_of(e), EADDRINUSE);
}

TEST_P(Transports, CreateConnectionLocalAddrInUse) {
  run(connect_local_addr_in_use());
}

Coro<void> connect_bad_args() {
  std::exception_ptr e = co_await error_of(asyncio::create_connection(make<Rec>(), "", 80));
  EXPECT_TRUE(holds<asyncio::ValueError>(e)) << what_of(e);
  asyncio_test::Listener listener;
  std::exception_ptr e2 =
      co_await error_of(asyncio::create_connection(null_factory(), "127.0.0.1", listener.port));
  EXPECT_TRUE(holds<asyncio::ValueError>(e2)) << what_of(e2);
  std::exception_ptr e3 =
      co_await error_of(asyncio::create_connection(base_factory(), "127.0.0.1", listener.port));
  EXPECT_TRUE(holds<asyncio::ValueError>(e3)) << what_of(e3);
  std::exception_ptr e4 = co_await error_of(
      asyncio::create_connection(make<Rec>(), "no-such-host.invalid", listener.port));
  EXPECT_TRUE(holds<asyncio::OSError>(e4)) << what_of(e4);
}

TEST_P(Transports, CreateConnectionBadArguments) {
  run(connect_bad_args());
}

Coro<void> cancel_connect(bool happy) {
  FullListener full;
  const std::size_t before = open_fds();
  asyncio::ConnectionOptions o;
  if (happy) o.happy_eyeballs_delay = 0.05;
  Task<asyncio::Connection<Rec>> t =
      asyncio::create_task(asyncio::create_connection(make<Rec>(), "127.0.0.1", full.port, o));
  co_await pause_for(0.3);
  EXPECT_FALSE(t.done());  // the SYN is dropped: still connecting
  t.cancel();
  const bool cancelled = co_await asyncio_test::ends_cancelled(t);
  EXPECT_TRUE(cancelled);
  co_await passes(3);
  EXPECT_EQ(open_fds(), before);
}

TEST_P(Transports, CancelledCreateConnectionLeavesNoFd) {
  run(cancel_connect(false));
}
TEST_P(Transports, CancelledHappyEyeballsConnectionLeavesNoFd) {
  run(cancel_connect(true));
}

Coro<void> connect_within(std::uint16_t port, double seconds) {
  co_await asyncio::wait_for(asyncio::create_connection(make<Rec>(), "127.0.0.1", port), seconds);
}

Coro<void> connect_timeout() {
  FullListener full;
  const std::size_t before = open_fds();
  std::exception_ptr e = co_await error_of(connect_within(full.port, 0.2));
  EXPECT_TRUE(holds<asyncio::TimeoutError>(e)) << what_of(e);
  co_await passes(3);
  EXPECT_EQ(open_fds(), before);
}

TEST_P(Transports, CreateConnectionUnderWaitForTimesOutCleanly) {
  run(connect_timeout());
}

/// A host name that resolves to both ::1 and 127.0.0.1 here, if there is one.
std::optional<std::string> dual_stack_name() {
  if (!ipv6_loopback_available()) return std::nullopt;
  for (const char* name : {"localhost", "ip6-localhost", "localhost6", "localhost.localdomain"}) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* list = nullptr;
    if (::getaddrinfo(name, "80", &hints, &list) != 0) continue;
    bool v4 = false;
    bool v6 = false;
    for (addrinfo* a = list; a != nullptr; a = a->ai_next) {
      v4 = v4 || a->ai_family == AF_INET;
      v6 = v6 || a->ai_family == AF_INET6;
    }
    ::freeaddrinfo(list);
    if (v4 && v6) return std::string(name);
  }
  return std::nullopt;
}

/// The family getaddrinfo lists first for `name`.
int first_family(const std::string& name) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (::getaddrinfo(name.c_str(), "80", &hints, &list) != 0) return AF_UNSPEC;
  const int f = list->ai_family;
  ::freeaddrinfo(list);
  return f;
}

Coro<void> happy_eyeballs_two_families(std::string name, bool hanging_first) {
  // The first family resolved has a listener whose accept queue is full (hangs) or nothing at
  // all (refused) on port P; the other family has the server on P.
  const int first = first_family(name);
  const int second = first == AF_INET ? AF_INET6 : AF_INET;
  const char* second_host = second == AF_INET ? "127.0.0.1" : "::1";
  const char* first_host = first == AF_INET ? "127.0.0.1" : "::1";
  std::vector<std::shared_ptr<Echo>> accepted;
  asyncio::ServerOptions so;
  so.family = second;
  Server server = co_await asyncio::create_server(erased(&accepted), second_host, 0, so);
  const std::uint16_t port = server.port();
  FdGuard blocker;
  FdGuard filler;
  if (hanging_first) {
    blocker = new_socket(first);
    const int one = 1;
    (void)::setsockopt(blocker.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    const SocketAddress a = SocketAddress::ip(first_host, port);
    if (::bind(blocker.get(), a.data(), a.size()) != 0 || ::listen(blocker.get(), 0) != 0) {
      ADD_FAILURE() << "cannot listen on " << a.to_string();
      co_return;
    }
    filler = new_socket(first);
    (void)::connect(filler.get(), a.data(), a.size());
  }
  asyncio::ConnectionOptions o;
  o.happy_eyeballs_delay = 0.2;
  const double t0 = asyncio::get_running_loop().time();
  auto conn = co_await asyncio::create_connection(make<Rec>(), name, port, o);
  const double took = asyncio::get_running_loop().time() - t0;
  EXPECT_EQ(conn.transport->peername().family(), second);
  if (hanging_first) {
    EXPECT_GE(took, 0.15);
  }
  EXPECT_LT(took, 5.0);
  conn.transport->write("x");
  CO_WAIT([&] { return conn.protocol->data == "x"; });
  conn.transport->close();
  CO_WAIT([&] { return conn.protocol->lost > 0; });
  server.close();
  co_await server.wait_closed();
}

TEST_P(Transports, HappyEyeballsSkipsHangingFirstAddress) {
  const auto name = dual_stack_name();
  if (!name) GTEST_SKIP() << "no host name resolves to both ::1 and 127.0.0.1 here";
  run(happy_eyeballs_two_families(*name, true));
}

TEST_P(Transports, HappyEyeballsFallsBackAfterRefusedFirstAddress) {
  const auto name = dual_stack_name();
  if (!name) GTEST_SKIP() << "no host name resolves to both ::1 and 127.0.0.1 here";
  run(happy_eyeballs_two_families(*name, false));
}

Coro<void> happy_eyeballs_single() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  asyncio::ConnectionOptions o;
  o.happy_eyeballs_delay = 0.1;
  o.interleave = 2;
  auto conn = co_await asyncio::create_connection(make<Rec>(), "localhost", server.port(), o);
  conn.transport->write("hi");
  CO_WAIT([&] { return conn.protocol->data == "hi"; });
  conn.transport->close();
  CO_WAIT([&] { return conn.protocol->lost > 0; });
  // A single address that hangs: no other attempt, still connecting after several delays.
  FullListener full;
  Task<asyncio::Connection<Rec>> t =
      asyncio::create_task(asyncio::create_connection(make<Rec>(), "127.0.0.1", full.port, o));
  co_await pause_for(0.5);
  EXPECT_FALSE(t.done());
  t.cancel();
  const bool cancelled = co_await asyncio_test::ends_cancelled(t);
  EXPECT_TRUE(cancelled);
  server.close();
  co_await server.wait_closed();
}

TEST_P(Transports, HappyEyeballsWithOneAddress) {
  run(happy_eyeballs_single());
}

// Happy eyeballs over explicit address lists (detail::connect_addresses, the part of
// create_connection after name resolution), so that several addresses are tested on machines
// where no name resolves to several.

asyncio::AddrInfo info_of(const SocketAddress& a) {
  return asyncio::AddrInfo{a.family(), SOCK_STREAM, IPPROTO_TCP, {}, a};
}

/// A TCP port on 127.0.0.1 where nothing listens (bound, never listening: refused).
struct DeadPort {
  FdGuard fd;
  std::uint16_t port = 0;
  DeadPort() {
    fd = new_socket(AF_INET);
    const SocketAddress a = SocketAddress::ip("127.0.0.1", 0);
    if (::bind(fd.get(), a.data(), a.size()) != 0) fail_errno("bind");
    port = sockname_of(fd.get()).port();
  }
};

Coro<void> eyeballs_after_refused() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  DeadPort dead;
  asyncio::ConnectionOptions o;
  o.happy_eyeballs_delay = 30.0;  // far beyond the bound: only the failure can start attempt 2
  std::vector<asyncio::AddrInfo> infos{info_of(SocketAddress::ip("127.0.0.1", dead.port)),
                                       info_of(SocketAddress::ip("127.0.0.1", server.port()))};
  const int fd =
      co_await asyncio::wait_for(asyncio::detail::connect_addresses(std::move(infos), o), 5.0);
  FdGuard conn(fd);
  EXPECT_EQ(peername_of(fd).port(), server.port());
  server.close();
  server.close_clients();
  conn.reset();
  co_await server.wait_closed();
}

// test_create_connection_multiple_errors_local_addr: with local_addr, each address fails in
// its own way (the local address is taken; no local address of the family) and the call
// fails with "Multiple exceptions" naming both, every socket closed; one after the other and
// with happy eyeballs alike.
Coro<void> local_addr_fails_for_every_address(std::optional<double> delay) {
  asyncio_test::Listener target;
  asyncio_test::Listener holder;  // holds the local address asked for
  asyncio::ConnectionOptions o;
  o.local_addr = SocketAddress::ip("127.0.0.1", holder.port);
  o.happy_eyeballs_delay = delay;
  o.interleave = 0;  // in the order given
  std::vector<asyncio::AddrInfo> infos{info_of(SocketAddress::ip("127.0.0.1", target.port)),
                                       info_of(SocketAddress::ip("::1", target.port))};
  // (Both attempts fail before connecting: nothing to bound.)
  std::exception_ptr e = co_await error_of(asyncio::detail::connect_addresses(std::move(infos), o));
  EXPECT_TRUE(holds<asyncio::OSError>(e)) << what_of(e);
  const std::string what = what_of(e);
  EXPECT_EQ(what.rfind("Multiple exceptions: ", 0), 0U) << what;
  EXPECT_NE(what.find("error while attempting to bind on address 127.0.0.1:" +
                      std::to_string(holder.port)),
            std::string::npos)
      << what;
  EXPECT_NE(what.find("no matching local address with family=AF_INET6 found"), std::string::npos)
      << what;
  EXPECT_FALSE(asyncio_test::has_pending_connection(target.fd.get()));
}

TEST_P(Transports, LocalAddrFailingForEveryAddressJoinsTheErrors) {
  const std::size_t before = open_fds();
  run(local_addr_fails_for_every_address(std::nullopt));
  run(local_addr_fails_for_every_address(0.05));
  EXPECT_EQ(open_fds(), before);
}

TEST_P(Transports, HappyEyeballsStartsTheNextAttemptWhenOneFails) {
  const std::size_t before = open_fds();
  run(eyeballs_after_refused());
  EXPECT_EQ(open_fds(), before);
}

Coro<void> eyeballs_after_hanging() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  FullListener full;
  asyncio::ConnectionOptions o;
  o.happy_eyeballs_delay = 0.2;
  std::vector<asyncio::AddrInfo> infos{info_of(SocketAddress::ip("127.0.0.1", full.port)),
                                       info_of(SocketAddress::ip("127.0.0.1", server.port()))};
  const double t0 = asyncio::get_running_loop().time();
  const int fd =
      co_await asyncio::wait_for(asyncio::detail::connect_addresses(std::move(infos), o), 5.0);
  const double took = asyncio::get_running_loop().time() - t0;
  FdGuard conn(fd);
  EXPECT_EQ(peername_of(fd).port(), server.port());
  EXPECT_GE(took, 0.15);  // the second attempt waited for the delay
  server.close();
  server.close_clients();
  conn.reset();
  co_await server.wait_closed();
}

TEST_P(Transports, HappyEyeballsStartsTheNextAttemptAfterTheDelayAndCancelsTheHangingOne) {
  const std::size_t before = open_fds();
  run(eyeballs_after_hanging());
  EXPECT_EQ(open_fds(), before);  // the hanging attempt's socket was closed
}

Coro<void> eyeballs_all_fail() {
  DeadPort a;
  DeadPort b;
  asyncio::ConnectionOptions o;
  o.happy_eyeballs_delay = 0.05;
  std::vector<asyncio::AddrInfo> infos{info_of(SocketAddress::ip("127.0.0.1", a.port)),
                                       info_of(SocketAddress::ip("127.0.0.1", b.port))};
  std::exception_ptr e = co_await error_of(asyncio::detail::connect_addresses(std::move(infos), o));
  // Two refusals that read differently (the addresses differ): one OSError listing both.
  EXPECT_TRUE(holds<asyncio::OSError>(e)) << what_of(e);
  EXPECT_NE(what_of(e).find("Multiple exceptions"), std::string::npos) << what_of(e);
  EXPECT_NE(what_of(e).find(std::to_string(a.port)), std::string::npos) << what_of(e);
  EXPECT_NE(what_of(e).find(std::to_string(b.port)), std::string::npos) << what_of(e);
}

TEST_P(Transports, HappyEyeballsAllFailingRaisesOneErrorListingThem) {
  const std::size_t before = open_fds();
  run(eyeballs_all_fail());
  EXPECT_EQ(open_fds(), before);
}

Coro<void> in_order_all_fail_alike() {
  DeadPort a;
  asyncio::ConnectionOptions o;  // no happy eyeballs: one after the other
  std::vector<asyncio::AddrInfo> infos{info_of(SocketAddress::ip("127.0.0.1", a.port)),
                                       info_of(SocketAddress::ip("127.0.0.1", a.port))};
  std::exception_ptr e = co_await error_of(asyncio::detail::connect_addresses(std::move(infos), o));
  // Errors that all read alike: the first is raised as it is.
  EXPECT_TRUE(holds<asyncio::ConnectionRefusedError>(e)) << what_of(e);
  EXPECT_EQ(what_of(e).find("Multiple exceptions"), std::string::npos) << what_of(e);
}

TEST_P(Transports, AddressesTriedInOrderFailingAlikeRaiseTheFirstError) {
  run(in_order_all_fail_alike());
}

Coro<void> eyeballs_cancelled() {
  FullListener a;
  FullListener b;
  asyncio::ConnectionOptions o;
  o.happy_eyeballs_delay = 0.05;
  std::vector<asyncio::AddrInfo> infos{info_of(SocketAddress::ip("127.0.0.1", a.port)),
                                       info_of(SocketAddress::ip("127.0.0.1", b.port))};
  Task<int> t = asyncio::create_task(asyncio::detail::connect_addresses(std::move(infos), o));
  co_await pause_for(0.3);  // both attempts are hanging now
  EXPECT_FALSE(t.done());
  t.cancel();
  const bool cancelled = co_await asyncio_test::ends_cancelled(t);
  EXPECT_TRUE(cancelled);
}

TEST_P(Transports, HappyEyeballsCancelledClosesEveryAttempt) {
  const std::size_t before = open_fds();
  run(eyeballs_cancelled());
  EXPECT_EQ(open_fds(), before);
}

Coro<void> ipv6_connection() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "::1", 0);
  EXPECT_EQ(server.addresses().size(), 1U);
  auto conn = co_await asyncio::create_connection(make<Rec>(), "::1", server.port());
  EXPECT_EQ(conn.transport->peername(), SocketAddress::ip("::1", server.port()));
  EXPECT_EQ(conn.transport->sockname().family(), AF_INET6);
  conn.transport->write("six");
  CO_WAIT([&] { return conn.protocol->data == "six"; });
  conn.transport->close();
  CO_WAIT([&] { return conn.protocol->lost > 0; });
  server.close();
  co_await server.wait_closed();
}

TEST_P(Transports, Ipv6Connection) {
  SKIP_WITHOUT_IPV6();
  run(ipv6_connection());
}

// =================================================================================================
// create_server / Server
// =================================================================================================

Coro<void> echo_server_basic() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  EXPECT_TRUE(server);
  EXPECT_NE(server.port(), 0);
  EXPECT_TRUE(server.is_serving());
  EXPECT_EQ(server.sockets().size(), 1U);
  EXPECT_EQ(server.addresses().size(), 1U);
  if (!server.addresses().empty()) {
    EXPECT_EQ(server.addresses()[0], SocketAddress::ip("127.0.0.1", server.port()));
    EXPECT_EQ(sockname_of(server.sockets()[0]), server.addresses()[0]);
  }
  EXPECT_EQ(&server.get_loop(), &asyncio::get_running_loop());
  FdGuard client = asyncio_test::connect_to(server.port());
  co_await asyncio::sock_sendall(client.get(), "echo me");
  const std::string got = co_await recv_exactly(client.get(), 7);
  EXPECT_EQ(got, "echo me");
  CO_ASSERT(accepted.size() == 1);
  EXPECT_EQ(accepted[0]->tr->peername(), sockname_of(client.get()));
  EXPECT_EQ(accepted[0]->tr->sockname(), SocketAddress::ip("127.0.0.1", server.port()));
  client.reset();
  CO_WAIT([&] { return accepted[0]->lost > 0; });
  EXPECT_EQ(accepted[0]->joined(), "made data eof lost");
  server.close();
  EXPECT_FALSE(server.is_serving());
  EXPECT_TRUE(server.sockets().empty());
  EXPECT_TRUE(server.addresses().empty());
  EXPECT_EQ(server.port(), 0);
  co_await server.wait_closed();
}

TEST_P(Transports, ServerEchoesAndReportsItsAddresses) {
  run(echo_server_basic());
}

Coro<void> server_empty_host() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "", 0);
  const std::vector<SocketAddress> addrs = server.addresses();
  CO_ASSERT(addrs.size() == 2);
  EXPECT_NE(addrs[0].family(), addrs[1].family());
  EXPECT_EQ(addrs[0].port(), addrs[1].port());
  EXPECT_EQ(addrs[0].port(), server.port());
  EXPECT_EQ(server.sockets().size(), 2U);
  auto c4 = co_await asyncio::create_connection(make<Rec>(), "127.0.0.1", server.port());
  auto c6 = co_await asyncio::create_connection(make<Rec>(), "::1", server.port());
  c4.transport->write("v4");
  c6.transport->write("v6");
  CO_WAIT([&] { return c4.protocol->data == "v4" && c6.protocol->data == "v6"; });
  EXPECT_EQ(accepted.size(), 2U);
  c4.transport->close();
  c6.transport->close();
  server.close();
  co_await server.wait_closed();
  EXPECT_EQ(c4.protocol->lost + c6.protocol->lost, 2);
}

TEST_P(Transports, ServerOnEmptyHostListensOnBothFamiliesOnOnePort) {
  SKIP_WITHOUT_IPV6();
  run(server_empty_host());
}

Coro<void> server_family_option() {
  std::vector<std::shared_ptr<Echo>> accepted;
  asyncio::ServerOptions so;
  so.family = AF_INET;
  Server server = co_await asyncio::create_server(erased(&accepted), "", 0, so);
  CO_ASSERT(server.addresses().size() == 1);
  EXPECT_EQ(server.addresses()[0].family(), AF_INET);
  EXPECT_EQ(server.addresses()[0].host(), "0.0.0.0");
  server.close();
  co_await server.wait_closed();
}

TEST_P(Transports, ServerFamilyOptionRestrictsListeners) {
  run(server_family_option());
}

Coro<void> server_port_in_use() {
  asyncio_test::Listener taken;
  std::vector<std::shared_ptr<Echo>> accepted;
  std::exception_ptr e =
      co_await error_of(asyncio::create_server(erased(&accepted), "127.0.0.1", taken.port));
  EXPECT_TRUE(holds<asyncio::OSError>(e)) << what_of(e);
  EXPECT_EQ(errno_of(e), EADDRINUSE);
}

TEST_P(Transports, ServerOnPortInUseIsOSError) {
  run(server_port_in_use());
}

Coro<void> server_start_serving_later() {
  std::vector<std::shared_ptr<Echo>> accepted;
  asyncio::ServerOptions so;
  so.start_serving = false;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0, so);
  EXPECT_FALSE(server.is_serving());
  EXPECT_NE(server.port(), 0);
  // Not listening yet (Python listens in _start_serving): refused.
  std::exception_ptr e =
      co_await error_of(asyncio::create_connection(make<Rec>(), "127.0.0.1", server.port()));
  EXPECT_TRUE(holds<asyncio::ConnectionRefusedError>(e)) << what_of(e);
  co_await server.start_serving();
  EXPECT_TRUE(server.is_serving());
  co_await server.start_serving();  // again: no effect
  EXPECT_TRUE(server.is_serving());
  auto conn = co_await asyncio::create_connection(make<Rec>(), "127.0.0.1", server.port());
  conn.transport->write("late start");
  CO_WAIT([&] { return conn.protocol->data == "late start"; });
  conn.transport->close();
  server.close();
  co_await server.start_serving();  // closed: no effect
  EXPECT_FALSE(server.is_serving());
  co_await server.wait_closed();
}

TEST_P(Transports, StartServingFalseThenStartServing) {
  run(server_start_serving_later());
}

Coro<void> wait_closed_waits_for_clients() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  FdGuard client = asyncio_test::connect_to(server.port());
  CO_WAIT([&] { return accepted.size() == 1; });
  Task<void> waiter = asyncio::create_task(server.wait_closed());
  co_await pause_for(0.05);
  EXPECT_FALSE(waiter.done());  // not closed yet (Python 3.12.1: waits for close too)
  server.close();
  co_await pause_for(0.05);
  EXPECT_FALSE(waiter.done());  // a client is still connected
  // The connection still works after the server closed.
  co_await asyncio::sock_sendall(client.get(), "still here");
  const std::string got = co_await recv_exactly(client.get(), 10);
  EXPECT_EQ(got, "still here");
  client.reset();
  co_await asyncio::wait_for(waiter, 5.0);
  EXPECT_TRUE(waiter.done());
  EXPECT_EQ(accepted[0]->lost, 1);
  // Already closed with no client: returns at once.
  co_await asyncio::wait_for(server.wait_closed(), 1.0);
}

TEST_P(Transports, WaitClosedWaitsForTheClientsToGo) {
  run(wait_closed_waits_for_clients());
}

// test_wait_closed_race (a 3.12.0 regression): close() and the end of the last connection run in
// one loop iteration, close() first, while wait_closed() waits. Both the waiting call and a
// later one return.
Coro<void> wait_closed_close_and_last_client_together() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  FdGuard client = asyncio_test::connect_to(server.port());
  CO_WAIT([&] { return accepted.size() == 1; });
  Task<void> waiter = asyncio::create_task(server.wait_closed());
  co_await asyncio::sleep(0);
  EXPECT_FALSE(waiter.done());
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  std::vector<std::string> order;
  Transport* tr = accepted[0]->tr;
  loop.call_soon([&] {
    // Queued now, so it runs first in the next iteration; abort() queues connection_lost
    // behind it (Python: call_soon(_call_connection_lost)).
    loop.call_soon([&] {
      order.emplace_back(accepted[0]->lost == 0 ? "close, connection still open" : "close late");
      server.close();
    });
    tr->abort();
  });
  co_await asyncio::wait_for(waiter, 5.0);
  EXPECT_EQ(order, (std::vector<std::string>{"close, connection still open"}));
  EXPECT_EQ(accepted[0]->lost, 1);
  co_await asyncio::wait_for(server.wait_closed(), 1.0);
  EXPECT_FALSE(server.is_serving());
}

TEST_P(Transports, WaitClosedWhenCloseAndTheLastConnectionEndInOneIteration) {
  run(wait_closed_close_and_last_client_together());
}

Coro<void> wait_closed_at_once() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  server.close();
  server.close();  // twice: harmless
  const double t0 = asyncio::get_running_loop().time();
  co_await asyncio::wait_for(server.wait_closed(), 1.0);
  co_await asyncio::wait_for(server.wait_closed(), 1.0);
  EXPECT_LT(asyncio::get_running_loop().time() - t0, 0.5);
}

TEST_P(Transports, WaitClosedReturnsAtOnceWhenClosedWithoutClients) {
  run(wait_closed_at_once());
}

Coro<void> close_clients() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  std::vector<FdGuard> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(asyncio_test::connect_to(server.port()));
  CO_WAIT([&] { return accepted.size() == 3; });
  // Buffered data is sent first.
  set_buf(std::any_cast<int>(accepted[0]->tr->get_extra_info("socket")), SO_SNDBUF, 4096);
  accepted[0]->tr->write(pattern(1U << 20));
  server.close();
  server.close_clients();
  for (auto& a : accepted) EXPECT_TRUE(a->tr->is_closing());
  const std::string got = co_await recv_all(clients[0].get());
  EXPECT_EQ(got.size(), 1U << 20);
  for (std::size_t i = 1; i < clients.size(); ++i) {
    const bool eof = co_await reads_eof(clients[i].get());
    EXPECT_TRUE(eof);
  }
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
  for (auto& a : accepted) {
    EXPECT_EQ(a->lost, 1);
    EXPECT_EQ(a->lost_exc, nullptr);
  }
}

TEST_P(Transports, CloseClientsClosesEveryConnection) {
  run(close_clients());
}

Coro<void> abort_clients() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  std::vector<FdGuard> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(asyncio_test::connect_to(server.port()));
  CO_WAIT([&] { return accepted.size() == 3; });
  set_buf(std::any_cast<int>(accepted[0]->tr->get_extra_info("socket")), SO_SNDBUF, 4096);
  accepted[0]->tr->write(pattern(4U << 20));
  server.abort_clients();
  for (auto& a : accepted) EXPECT_EQ(a->tr->get_write_buffer_size(), 0U);
  const std::string got = co_await recv_all(clients[0].get());
  EXPECT_LT(got.size(), 4U << 20);
  CO_WAIT([&] {
    return std::all_of(accepted.begin(), accepted.end(), [](auto& a) { return a->lost == 1; });
  });
  // The server itself is still serving.
  EXPECT_TRUE(server.is_serving());
  FdGuard another = asyncio_test::connect_to(server.port());
  CO_WAIT([&] { return accepted.size() == 4; });
  server.close();
  server.close_clients();
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
}

TEST_P(Transports, AbortClientsAbortsEveryConnection) {
  run(abort_clients());
}

Coro<void> serve_forever_cancelled() {
  std::vector<std::shared_ptr<Echo>> accepted;
  asyncio::ServerOptions so;
  so.start_serving = false;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0, so);
  Task<void> forever = asyncio::create_task(server.serve_forever());
  co_await passes(3);
  EXPECT_TRUE(server.is_serving());  // serve_forever starts serving
  // A second serve_forever: RuntimeError.
  std::exception_ptr e = co_await error_of(server.serve_forever());
  EXPECT_TRUE(holds<asyncio::RuntimeError>(e)) << what_of(e);
  auto conn = co_await asyncio::create_connection(make<Rec>(), "127.0.0.1", server.port());
  conn.transport->write("x");
  CO_WAIT([&] { return conn.protocol->data == "x"; });
  forever.cancel();
  co_await pause_for(0.05);
  // Closed, but waiting for the client in wait_closed().
  EXPECT_FALSE(server.is_serving());
  EXPECT_TRUE(server.sockets().empty());
  EXPECT_FALSE(forever.done());
  conn.transport->close();
  const bool cancelled = co_await asyncio_test::ends_cancelled(forever);
  EXPECT_TRUE(cancelled);
  // serve_forever on a closed server: RuntimeError.
  std::exception_ptr e2 = co_await error_of(server.serve_forever());
  EXPECT_TRUE(holds<asyncio::RuntimeError>(e2)) << what_of(e2);
}

TEST_P(Transports, ServeForeverCancelledClosesAndRethrows) {
  run(serve_forever_cancelled());
}

Coro<void> serve_forever_closed_by_close() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  Task<void> forever = asyncio::create_task(server.serve_forever());
  co_await passes(3);
  server.close();  // Python: cancels _serving_forever_fut
  const bool cancelled = co_await asyncio_test::ends_cancelled(forever);
  EXPECT_TRUE(cancelled);
  EXPECT_FALSE(server.is_serving());
}

TEST_P(Transports, ServerCloseEndsServeForever) {
  run(serve_forever_closed_by_close());
}

Coro<void> server_out_of_scope() {
  std::vector<std::shared_ptr<Echo>> accepted;
  std::uint16_t port = 0;
  FdGuard client;
  {
    Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
    port = server.port();
    client = asyncio_test::connect_to(port);
    CO_WAIT([&] { return accepted.size() == 1; });
  }
  co_await passes(5);
  std::exception_ptr e =
      co_await error_of(asyncio::create_connection(make<Rec>(), "127.0.0.1", port));
  EXPECT_TRUE(holds<asyncio::ConnectionRefusedError>(e)) << what_of(e);
  // Its connections stay open.
  co_await asyncio::sock_sendall(client.get(), "alive");
  const std::string got = co_await recv_exactly(client.get(), 5);
  EXPECT_EQ(got, "alive");
  EXPECT_FALSE(accepted[0]->tr->is_closing());
  client.reset();
  CO_WAIT([&] { return accepted[0]->lost > 0; });
}

TEST_P(Transports, ServerOutOfScopeClosesItsListener) {
  run(server_out_of_scope());
}

Coro<void> server_move() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server a = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  Server b = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  const std::uint16_t port_a = a.port();
  const std::uint16_t port_b = b.port();
  a = std::move(b);  // a's old listener closes
  EXPECT_FALSE(b);   // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_FALSE(b.is_serving());
  EXPECT_EQ(b.port(), 0);
  EXPECT_TRUE(b.sockets().empty());
  bool threw = false;
  try {
    b.close();
  } catch (const asyncio::RuntimeError&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
  EXPECT_EQ(a.port(), port_b);
  co_await passes(5);
  std::exception_ptr e =
      co_await error_of(asyncio::create_connection(make<Rec>(), "127.0.0.1", port_a));
  EXPECT_TRUE(holds<asyncio::ConnectionRefusedError>(e)) << what_of(e);
  auto conn = co_await asyncio::create_connection(make<Rec>(), "127.0.0.1", port_b);
  conn.transport->write("moved");
  CO_WAIT([&] { return conn.protocol->data == "moved"; });
  conn.transport->close();
  a.close();
  co_await a.wait_closed();
  Server empty;
  EXPECT_FALSE(empty);
  EXPECT_FALSE(empty.is_serving());
}

TEST_P(Transports, ServerMoveAssignmentClosesTheOldServer) {
  run(server_move());
}

Coro<void> empty_server_coroutines() {
  Server empty;
  std::exception_ptr e1 = co_await error_of(empty.wait_closed());
  EXPECT_TRUE(holds<asyncio::RuntimeError>(e1)) << what_of(e1);
  std::exception_ptr e2 = co_await error_of(empty.start_serving());
  EXPECT_TRUE(holds<asyncio::RuntimeError>(e2)) << what_of(e2);
  std::exception_ptr e3 = co_await error_of(empty.serve_forever());
  EXPECT_TRUE(holds<asyncio::RuntimeError>(e3)) << what_of(e3);
}

TEST_P(Transports, EmptyServerCoroutinesRaiseRuntimeError) {
  run(empty_server_coroutines());
}

Coro<void> reuse_port() {
  std::vector<std::shared_ptr<Echo>> accepted;
  asyncio::ServerOptions so;
  so.reuse_port = true;
  Server s1 = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0, so);
  Server s2 = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", s1.port(), so);
  EXPECT_EQ(s1.port(), s2.port());
  std::vector<FdGuard> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(asyncio_test::connect_to(s1.port()));
  CO_WAIT([&] { return accepted.size() == 20; });
  // Without reuse_port on the newcomer: the port is taken.
  std::exception_ptr e =
      co_await error_of(asyncio::create_server(erased(&accepted), "127.0.0.1", s1.port()));
  EXPECT_EQ(errno_of(e), EADDRINUSE) << what_of(e);
  clients.clear();
  s1.close();
  s2.close();
  co_await s1.wait_closed();
  co_await s2.wait_closed();
}

TEST_P(Transports, ReusePortLetsTwoServersShareAPort) {
  run(reuse_port());
}

Coro<void> backlog_small() {
  std::vector<std::shared_ptr<Echo>> accepted;
  asyncio::ServerOptions so;
  so.backlog = 1;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0, so);
  std::vector<FdGuard> clients;
  // Two connections queued at once (the kernel queues backlog + 1); the server accepts
  // `backlog` per readiness (Python), then must come back for the other.
  for (int i = 0; i < 2; ++i) clients.push_back(asyncio_test::connect_to(server.port()));
  CO_WAIT([&] { return accepted.size() == 2; });
  for (int i = 0; i < 3; ++i) {
    auto conn = co_await asyncio::create_connection(make<Rec>(), "127.0.0.1", server.port());
    conn.transport->close();
  }
  CO_WAIT([&] { return accepted.size() == 5; });
  clients.clear();
  server.close();
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
  asyncio::ServerOptions neg;
  neg.backlog = -5;  // treated as 0
  Server s2 = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0, neg);
  auto c2 = co_await asyncio::create_connection(make<Rec>(), "127.0.0.1", s2.port());
  c2.transport->write("b");
  CO_WAIT([&] { return c2.protocol->data == "b"; });
  c2.transport->close();
  s2.close();
  co_await asyncio::wait_for(s2.wait_closed(), 5.0);
}

TEST_P(Transports, SmallBacklogStillServesEveryone) {
  run(backlog_small());
}

Coro<void> backlog_is_kernel_backlog() {
  // While the server is not accepting (out of fds, backing off), the kernel queues at most
  // backlog + 1 connections; the next one's SYN is dropped.
  RecordingHandler handler;
  std::vector<std::shared_ptr<Echo>> accepted;
  asyncio::ServerOptions so;
  so.backlog = 1;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0, so);
  asyncio::sys::inject_fault({.call = asyncio::sys::Call::accept, .nth = 1, .error = EMFILE});
  FdGuard first = asyncio_test::connect_to(server.port());
  CO_WAIT([&] { return handler.has_message("out of system resource"); });
  asyncio::sys::clear_faults();
  FdGuard second = asyncio_test::connect_to(server.port());
  FdGuard third = asyncio_test::tcp_socket();
  const SocketAddress a = SocketAddress::ip("127.0.0.1", server.port());
  (void)::connect(third.get(), a.data(), a.size());
  pollfd p{third.get(), POLLOUT, 0};
  EXPECT_EQ(::poll(&p, 1, 300), 0) << "the third connection got in: backlog not applied";
  // After the retry delay, everyone is served.
  CO_WAIT([&] { return accepted.size() == 3; });
  server.close();
  first.reset();
  second.reset();
  third.reset();
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
}

TEST_P(Transports, BacklogIsTheListenBacklog) {
  run(backlog_is_kernel_backlog());
}

Coro<void> accept_emfile() {
  RecordingHandler handler;
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  asyncio::sys::inject_fault({.call = asyncio::sys::Call::accept, .nth = 1, .error = EMFILE});
  const auto t0 = std::chrono::steady_clock::now();
  FdGuard c1 = asyncio_test::connect_to(server.port());
  CO_WAIT([&] { return handler.has_message("out of system resource"); });
  asyncio::sys::clear_faults();
  EXPECT_TRUE(accepted.empty());
  EXPECT_TRUE(server.is_serving());
  EXPECT_EQ(server.sockets().size(), 1U);
  if (!handler.empty()) {
    EXPECT_EQ(errno_of(handler.at(0).exception), EMFILE) << what_of(handler.at(0).exception);
  }
  co_await pause_for(0.3);
  EXPECT_TRUE(accepted.empty());  // backing off
  CO_WAIT([&] { return accepted.size() == 1; });
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(took, 0.9);
  EXPECT_LT(took, 5.0);
  EXPECT_EQ(handler.size(), 1U);
  // Accepting normally again.
  FdGuard c2 = asyncio_test::connect_to(server.port());
  CO_WAIT([&] { return accepted.size() == 2; }, 0.5);
  co_await asyncio::sock_sendall(c2.get(), "ok");
  const std::string got = co_await recv_exactly(c2.get(), 2);
  EXPECT_EQ(got, "ok");
  c1.reset();
  c2.reset();
  server.close();
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
}

TEST_P(Transports, AcceptOutOfFdsBacksOffAndRetries) {
  run(accept_emfile());
  asyncio::sys::clear_faults();
}

Coro<void> accept_other_error() {
  // ECONNABORTED (the client left before accept): nothing reported, the server goes on.
  RecordingHandler handler;
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  asyncio::sys::inject_fault({.call = asyncio::sys::Call::accept, .nth = 1, .error = ECONNABORTED});
  FdGuard c1 = asyncio_test::connect_to(server.port());
  co_await pause_for(0.1);
  asyncio::sys::clear_faults();
  FdGuard c2 = asyncio_test::connect_to(server.port());
  CO_WAIT([&] { return accepted.size() == 2; });
  EXPECT_TRUE(handler.empty());
  c1.reset();
  c2.reset();
  server.close();
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
}

TEST_P(Transports, AcceptConnAbortedIsIgnored) {
  run(accept_other_error());
  asyncio::sys::clear_faults();
}

Coro<void> accept_eagain() {
  // A spurious EAGAIN from accept (Python: BlockingIOError) leaves the listener waiting; the
  // connection that is queued is still accepted, and nothing is reported.
  RecordingHandler handler;
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  asyncio::sys::inject_fault({.call = asyncio::sys::Call::accept, .nth = 1, .error = EAGAIN});
  FdGuard c1 = asyncio_test::connect_to(server.port());
  CO_WAIT([&] { return accepted.size() == 1; });
  EXPECT_TRUE(handler.empty());
  EXPECT_TRUE(server.is_serving());
  c1.reset();
  server.close();
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
}

TEST_P(Transports, AcceptEagainKeepsListening) {
  run(accept_eagain());
  asyncio::sys::clear_faults();
}

int nodelay_of(int fd) {
  int on = -1;
  socklen_t len = sizeof on;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) != 0) return -1;
  return on;
}

Coro<void> tcp_nodelay() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  auto conn = co_await asyncio::create_connection(make<Rec>(), "127.0.0.1", server.port());
  const int client_fd = std::any_cast<int>(conn.transport->get_extra_info("socket"));
  EXPECT_EQ(nodelay_of(client_fd), 1);  // Python: _set_nodelay on every TCP transport
  CO_WAIT([&] { return accepted.size() == 1 && accepted[0]->tr != nullptr; });
  const int server_fd = std::any_cast<int>(accepted[0]->tr->get_extra_info("socket"));
  EXPECT_EQ(nodelay_of(server_fd), 1);
  conn.transport->close();
  CO_WAIT([&] { return conn.protocol->lost > 0; });
  server.close();
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
}

TEST_P(Transports, TcpTransportsTurnNagleOff) {
  run(tcp_nodelay());
}

Coro<void> server_on_unresolvable_host() {
  std::vector<std::shared_ptr<Echo>> accepted;
  std::exception_ptr e =
      co_await error_of(asyncio::create_server(erased(&accepted), "no-such-host.invalid", 0));
  EXPECT_TRUE(holds<asyncio::OSError>(e)) << what_of(e);
}

TEST_P(Transports, CreateServerOnAHostThatDoesNotResolveIsOSError) {
  run(server_on_unresolvable_host());
}

/// A protocol factory that throws: the connection is closed and the server keeps serving; the
/// error is reported in debug mode only (Python's _accept_connection2).
Coro<void> factory_throws(bool debug) {
  asyncio::get_running_loop().set_debug(debug);
  RecordingHandler handler;
  std::vector<std::shared_ptr<Echo>> accepted;
  int calls = 0;
  Server server = co_await asyncio::create_server(throws_first(&accepted, &calls), "127.0.0.1", 0);
  FdGuard c1 = asyncio_test::connect_to(server.port());
  if (debug) {
    CO_WAIT([&] { return !handler.empty(); });
    EXPECT_TRUE(handler.has_message("transport creation")) << handler.at(0).message;
    EXPECT_EQ(what_of(handler.at(0).exception), "factory failed");
  }
  const bool eof = co_await reads_eof(c1.get());
  EXPECT_TRUE(eof);  // the connection was closed
  if (!debug) {
    EXPECT_TRUE(handler.empty());
  }
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(server.is_serving());
  FdGuard c2 = asyncio_test::connect_to(server.port());
  co_await asyncio::sock_sendall(c2.get(), "fine");
  const std::string got = co_await recv_exactly(c2.get(), 4);
  EXPECT_EQ(got, "fine");
  EXPECT_EQ(accepted.size(), 1U);
  c2.reset();
  server.close();
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
}

TEST_P(Transports, ProtocolFactoryThrowingClosesTheConnectionServerKeepsServing) {
  run(factory_throws(false));
}

TEST_P(Transports, ProtocolFactoryThrowingIsReportedInDebugMode) {
  run(factory_throws(true));
}

Coro<void> server_made_throws() {
  RecordingHandler handler;
  std::vector<std::shared_ptr<ThrowsOnMade>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  FdGuard c1 = asyncio_test::connect_to(server.port());
  const bool eof = co_await reads_eof(c1.get());
  EXPECT_TRUE(eof);
  EXPECT_TRUE(handler.has_message("connection_made"));
  CO_WAIT([&] { return accepted.size() == 1 && accepted[0]->lost == 1; });
  FdGuard c2 = asyncio_test::connect_to(server.port());
  CO_WAIT([&] { return accepted.size() == 2; });
  EXPECT_TRUE(server.is_serving());
  server.close();
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
}

TEST_P(Transports, ServerProtocolConnectionMadeThrowing) {
  run(server_made_throws());
}

Coro<void> greeter_server() {
  std::vector<std::shared_ptr<Greeter>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  FdGuard c = asyncio_test::connect_to(server.port());
  const std::string got = co_await recv_all(c.get());
  EXPECT_EQ(got, "hello from connection_made");
  CO_WAIT([&] { return accepted.size() == 1 && accepted[0]->lost == 1; });
  server.close();
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
}

TEST_P(Transports, WriteAndCloseFromConnectionMade) {
  run(greeter_server());
}

Coro<std::string> one_client(std::uint16_t port, int i) {
  auto conn = co_await asyncio::create_connection(make<Rec>(), "127.0.0.1", port);
  const std::string msg = "client " + std::to_string(i) + " says " + pattern(100 + i, i);
  conn.transport->write(msg);
  const bool ok = co_await until([&] { return conn.protocol->data.size() >= msg.size(); });
  conn.transport->close();
  co_await until([&] { return conn.protocol->lost > 0; });
  co_return ok&& conn.protocol->data == msg ? "ok" : "bad " + std::to_string(i);
}

Coro<void> many_clients() {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  std::vector<Task<std::string>> clients;
  for (int i = 0; i < 200; ++i)
    clients.push_back(asyncio::create_task(one_client(server.port(), i)));
  std::vector<std::string> results = co_await asyncio_test::gather_all(std::move(clients));
  EXPECT_EQ(std::count(results.begin(), results.end(), "ok"), 200);
  CO_WAIT([&] {
    return std::all_of(accepted.begin(), accepted.end(), [](auto& a) { return a->lost == 1; });
  });
  EXPECT_EQ(accepted.size(), 200U);
  server.close();
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
}

TEST_P(Transports, TwoHundredClientsAtOnce) {
  run(many_clients());
}

Coro<void> server_buffered_protocol() {
  std::vector<std::shared_ptr<Buf>> accepted;
  Server server = co_await asyncio::create_server(erased(&accepted), "127.0.0.1", 0);
  FdGuard c = asyncio_test::connect_to(server.port());
  const std::size_t total = 3U << 20;
  co_await send_all_then_close(c.get(), pattern(total));
  CO_WAIT([&] { return accepted.size() == 1 && accepted[0]->lost == 1; });
  EXPECT_EQ(accepted[0]->received, total);
  EXPECT_EQ(accepted[0]->mismatches, 0U);
  server.close();
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
}

TEST_P(Transports, ServerWithBufferedProtocol) {
  run(server_buffered_protocol());
}

// =================================================================================================
// Unix-domain servers and connections, connect_accepted_socket
// =================================================================================================

Coro<void> unix_echo(std::string path) {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_unix_server(erased(&accepted), path);
  EXPECT_TRUE(server.is_serving());
  EXPECT_EQ(server.port(), 0);
  CO_ASSERT(server.addresses().size() == 1);
  EXPECT_EQ(server.addresses()[0].path(), path);
  EXPECT_TRUE(is_socket_file(path));
  auto conn = co_await asyncio::create_unix_connection(make<Rec>(), path);
  EXPECT_EQ(conn.transport->peername().family(), AF_UNIX);
  EXPECT_EQ(conn.transport->peername().path(), path);
  const std::string big = pattern(1U << 20);
  conn.transport->write(big);
  CO_WAIT([&] { return conn.protocol->data.size() == big.size(); });
  EXPECT_TRUE(conn.protocol->data == big);
  CO_ASSERT(accepted.size() == 1);
  EXPECT_EQ(accepted[0]->tr->sockname().path(), path);
  conn.transport->write_eof();
  CO_WAIT([&] { return accepted[0]->lost == 1 && conn.protocol->lost == 1; });
  // (pause/resume may come in between: the echo is big)
  CO_ASSERT(conn.protocol->events.size() >= 4);
  EXPECT_EQ(conn.protocol->events.front(), "made");
  EXPECT_EQ(conn.protocol->events[conn.protocol->events.size() - 2], "eof");
  EXPECT_EQ(conn.protocol->events.back(), "lost");
  EXPECT_EQ(conn.protocol->lost_exc, nullptr);
  server.close();
  EXPECT_FALSE(exists(path));  // removed on close (Python 3.13)
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
}

TEST_P(Transports, UnixServerAndConnectionEcho) {
  TempDir dir;
  run(unix_echo(dir.file("echo.sock")));
}

Coro<void> unix_stale(std::string path) {
  {
    FdGuard old = new_socket(AF_UNIX);
    const SocketAddress a = SocketAddress::unix_path(path);
    if (::bind(old.get(), a.data(), a.size()) != 0) fail_errno("bind");
  }
  EXPECT_TRUE(is_socket_file(path));  // a stale socket file
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_unix_server(erased(&accepted), path);
  auto conn = co_await asyncio::create_unix_connection(make<Rec>(), path);
  conn.transport->write("fresh");
  CO_WAIT([&] { return conn.protocol->data == "fresh"; });
  conn.transport->close();
  server.close();
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
  EXPECT_FALSE(exists(path));
}

TEST_P(Transports, UnixServerRemovesStaleSocketFile) {
  TempDir dir;
  run(unix_stale(dir.file("stale.sock")));
}

Coro<void> unix_regular_file(std::string path) {
  FdGuard f(::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  CO_ASSERT(f.get() >= 0);
  f.reset();
  std::vector<std::shared_ptr<Echo>> accepted;
  std::exception_ptr e = co_await error_of(asyncio::create_unix_server(erased(&accepted), path));
  EXPECT_TRUE(holds<asyncio::OSError>(e)) << what_of(e);
  EXPECT_EQ(errno_of(e), EADDRINUSE);
  EXPECT_TRUE(exists(path));  // not a socket: left alone
  EXPECT_FALSE(is_socket_file(path));
}

TEST_P(Transports, UnixServerLeavesARegularFileAlone) {
  TempDir dir;
  run(unix_regular_file(dir.file("regular")));
}

Coro<void> unix_replaced_file(std::string path) {
  std::vector<std::shared_ptr<Echo>> accepted;
  Server server = co_await asyncio::create_unix_server(erased(&accepted), path);
  // Someone else takes the path: closing must not remove their socket.
  ::unlink(path.c_str());
  FdGuard other = new_socket(AF_UNIX);
  const SocketAddress a = SocketAddress::unix_path(path);
  if (::bind(other.get(), a.data(), a.size()) != 0) fail_errno("bind");
  server.close();
  EXPECT_TRUE(is_socket_file(path));
  co_await asyncio::wait_for(server.wait_closed(), 5.0);
}

TEST_P(Transports, UnixServerCloseKeepsAFileThatIsNotItsOwn) {
  TempDir dir;
  run(unix_replaced_file(dir.file("replaced.sock")));
}

Coro<void> unix_refused(std::string path) {
  std::exception_ptr e = co_await error_of(asyncio::create_unix_connection(make<Rec>(), path));
  EXPECT_TRUE(holds<asyncio::OSError>(e)) << what_of(e);
  EXPECT_EQ(errno_of(e), ENOENT);
}

TEST_P(Transports, UnixConnectionToMissingPathFails) {
  TempDir dir;
  run(unix_refused(dir.file("missing.sock")));
}

Coro<void> unix_server_out_of_scope(std::string path) {
  std::vector<std::shared_ptr<Echo>> accepted;
  {
    Server server = co_await asyncio::create_unix_server(erased(&accepted), path);
    EXPECT_TRUE(exists(path));
  }
  co_await passes(5);
  EXPECT_FALSE(exists(path));
  std::exception_ptr e = co_await error_of(asyncio::create_unix_connection(make<Rec>(), path));
  EXPECT_TRUE(holds<asyncio::OSError>(e)) << what_of(e);
}

TEST_P(Transports, UnixServerOutOfScopeRemovesItsFile) {
  TempDir dir;
  run(unix_server_out_of_scope(dir.file("scoped.sock")));
}

Coro<void> accepted_socketpair() {
  asyncio_test::SocketPair pair;
  auto conn = asyncio::connect_accepted_socket(make<Rec>(), pair.a.release());
  EXPECT_EQ(conn.protocol->made, 1);
  EXPECT_EQ(conn.transport->peername().family(), AF_UNIX);
  co_await asyncio::sock_sendall(pair.b.get(), "from b");
  CO_WAIT([&] { return conn.protocol->data == "from b"; });
  conn.transport->write("from a");
  const std::string got = co_await recv_exactly(pair.b.get(), 6);
  EXPECT_EQ(got, "from a");
  conn.transport->close();
  const bool eof = co_await reads_eof(pair.b.get());
  EXPECT_TRUE(eof);
  CO_WAIT([&] { return conn.protocol->lost == 1; });
  EXPECT_EQ(conn.protocol->joined(), "made data lost");
}

TEST_P(Transports, ConnectAcceptedSocketWrapsASocketpair) {
  run(accepted_socketpair());
}

Coro<void> accepted_blocking_socket() {
  int fds[2];
  CO_ASSERT(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  FdGuard b(fds[1]);
  auto conn = asyncio::connect_accepted_socket(make<Buf>(), fds[0]);
  EXPECT_TRUE((::fcntl(fds[0], F_GETFL) & O_NONBLOCK) != 0);  // made non-blocking
  set_buf(b.get(), SO_SNDBUF, 4096);
  const std::size_t total = 2U << 20;
  Task<void> sender = asyncio::create_task(send_all_then_close(b.get(), pattern(total)));
  CO_WAIT([&] { return conn.protocol->lost == 1; });
  co_await sender;
  EXPECT_EQ(conn.protocol->received, total);
  EXPECT_EQ(conn.protocol->mismatches, 0U);
}

TEST_P(Transports, ConnectAcceptedSocketBlockingSocketBufferedProtocol) {
  run(accepted_blocking_socket());
}

Coro<void> accepted_not_stream() {
  FdGuard udp = new_socket(AF_INET, SOCK_DGRAM);
  bool threw = false;
  try {
    (void)asyncio::connect_accepted_socket(make<Rec>(), udp.get());
  } catch (const asyncio::ValueError&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
  EXPECT_GE(::fcntl(udp.get(), F_GETFD), 0);  // refused before taking it over
  co_return;
}

TEST_P(Transports, ConnectAcceptedSocketRefusesADatagramSocket) {
  run(accepted_not_stream());
}

// The awaited form without `.ssl` is the same plain transport (Python's coroutine
// loop.connect_accepted_socket); its refusals leave the fd the caller's, as the other form's.
Coro<void> accepted_awaited_plain() {
  asyncio_test::SocketPair pair;
  auto conn = co_await asyncio::connect_accepted_socket(make<Rec>(), pair.a.release(),
                                                        asyncio::AcceptedSocketOptions{});
  EXPECT_EQ(conn.protocol->made, 1);
  co_await asyncio::sock_sendall(pair.b.get(), "plain");
  CO_WAIT([&] { return conn.protocol->data == "plain"; });
  FdGuard udp = new_socket(AF_INET, SOCK_DGRAM);
  std::exception_ptr e = co_await error_of(
      asyncio::connect_accepted_socket(make<Rec>(), udp.get(), asyncio::AcceptedSocketOptions{}));
  EXPECT_TRUE(holds<asyncio::ValueError>(e)) << what_of(e);
  EXPECT_GE(::fcntl(udp.get(), F_GETFD), 0);
  conn.transport->close();
  const bool eof = co_await reads_eof(pair.b.get());
  EXPECT_TRUE(eof);
}

TEST_P(Transports, ConnectAcceptedSocketAwaitedWithoutTls) {
  run(accepted_awaited_plain());
}

// test_add_reader_or_writer_transport_fd: an fd that a transport uses is the transport's alone.
// Watching it, the sock_* functions on it and a second transport over it are RuntimeErrors
// (Python: _ensure_fd_no_transport), which leave the transport working; once it is closing,
// they are allowed again.
Coro<void> fd_used_by_a_transport() {
  asyncio_test::SocketPair pair;
  const int fd = pair.a.release();
  auto conn = asyncio::connect_accepted_socket(make<Rec>(), fd);
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  int refused = 0;
  const auto expect_refused = [&refused, fd](auto&& call) {
    try {
      call();
      ADD_FAILURE() << "not refused";
    } catch (const asyncio::RuntimeError& e) {
      ++refused;
      EXPECT_NE(std::string(e.what()).find("File descriptor " + std::to_string(fd) +
                                           " is used by transport"),
                std::string::npos)
          << e.what();
    }
  };
  expect_refused([&] { loop.add_reader(fd, [] {}); });
  expect_refused([&] { (void)loop.remove_reader(fd); });
  expect_refused([&] { loop.add_writer(fd, [] {}); });
  expect_refused([&] { (void)loop.remove_writer(fd); });
  expect_refused([&] { (void)asyncio::connect_accepted_socket(make<Rec>(), fd); });
  EXPECT_EQ(refused, 5);
  for (auto* what : {"sock_recv", "sock_sendall", "sock_recv_into", "sock_accept",
                     "connect_accepted_socket (awaited)"}) {
    const std::string name = what;
    std::exception_ptr e;
    std::array<std::byte, 4> buf{};
    if (name == "sock_recv") e = co_await error_of(asyncio::sock_recv(fd, 10));
    if (name == "sock_sendall") e = co_await error_of(asyncio::sock_sendall(fd, "x"));
    if (name == "sock_recv_into") e = co_await error_of(asyncio::sock_recv_into(fd, buf));
    if (name == "sock_accept") e = co_await error_of(asyncio::sock_accept(fd));
    if (name == "connect_accepted_socket (awaited)") {
      e = co_await error_of(
          asyncio::connect_accepted_socket(make<Rec>(), fd, asyncio::AcceptedSocketOptions{}));
    }
    EXPECT_TRUE(holds<asyncio::RuntimeError>(e)) << name << ": " << what_of(e);
    EXPECT_NE(what_of(e).find("is used by transport"), std::string::npos) << name;
  }
  // Nothing was taken from the transport: both directions still work.
  co_await asyncio::sock_sendall(pair.b.get(), "still mine");
  CO_WAIT([&] { return conn.protocol->data == "still mine"; });
  conn.transport->write("and back");
  const std::string got = co_await recv_exactly(pair.b.get(), 8);
  EXPECT_EQ(got, "and back");
  EXPECT_EQ(conn.protocol->made, 1);
  // Closing: no longer checked (Python skips a closing transport), then the fd is gone.
  conn.transport->close();
  EXPECT_FALSE(loop.remove_reader(fd));
  CO_WAIT([&] { return conn.protocol->lost == 1; });
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
}

TEST_P(Transports, AnFdUsedByATransportRefusesWatchesSocketCallsAndASecondTransport) {
  run(fd_used_by_a_transport());
}

// =================================================================================================
// Faults through the syscall seam (src/sys/sys.hpp)
// =================================================================================================

using asyncio::sys::Call;

/// Forgets planned faults when the test ends, however it ends.
struct FaultScope {
  FaultScope() = default;
  FaultScope(const FaultScope&) = delete;
  FaultScope& operator=(const FaultScope&) = delete;
  ~FaultScope() { asyncio::sys::clear_faults(); }
};

void plan(Call call, int error, int nth = 1) {
  asyncio::sys::Fault f{call};
  f.nth = nth;
  f.error = error;
  asyncio::sys::inject_fault(f);
}

template <class P>
Coro<void> recv_reset_fault() {
  FaultScope faults;
  RecordingHandler handler;
  Link<P> l = co_await tcp_link<P>();
  co_await passes(3);
  plan(Call::recv, ECONNRESET);
  co_await asyncio::sock_sendall(l.peer.get(), pattern(10));
  // On io_uring a BufferedProtocol's receive was submitted before the fault was planned: the
  // fault hits the next one, after more data.
  co_await until([&] { return l.p->lost > 0; }, 0.2);
  if (l.p->lost == 0) co_await asyncio::sock_sendall(l.peer.get(), pattern(10));
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_TRUE(holds<asyncio::ConnectionResetError>(l.p->lost_exc)) << what_of(l.p->lost_exc);
  EXPECT_EQ(l.p->eofs, 0);
  EXPECT_TRUE(handler.empty());
  const bool eof = co_await reads_eof(l.peer.get());
  EXPECT_TRUE(eof);
}

TEST_P(Transports, InjectedRecvResetLosesTheConnection) {
  run(recv_reset_fault<Rec>());
}
TEST_P(Transports, InjectedRecvResetLosesTheBufferedProtocolConnection) {
  run(recv_reset_fault<Buf>());
}

template <class P>
Coro<void> recv_eagain_fault() {
  FaultScope faults;
  Link<P> l = co_await tcp_link<P>();
  co_await passes(3);
  plan(Call::recv, EAGAIN);
  co_await asyncio::sock_sendall(l.peer.get(), pattern(1000));
  // A spurious EAGAIN loses nothing: the data comes anyway.
  if constexpr (std::is_same_v<P, Rec>) {
    CO_WAIT([&] { return l.p->data.size() == 1000; });
    EXPECT_TRUE(l.p->data == pattern(1000));
  } else {
    CO_WAIT([&] { return l.p->received == 1000; });
    EXPECT_EQ(l.p->mismatches, 0U);
  }
  l.t->close();
  CO_WAIT([&] { return l.p->lost > 0; });
}

TEST_P(Transports, InjectedRecvEagainLosesNoData) {
  run(recv_eagain_fault<Rec>());
}
TEST_P(Transports, InjectedRecvEagainLosesNoDataBufferedProtocol) {
  run(recv_eagain_fault<Buf>());
}

// io_uring sends through the ring: the send fails in the loop, after write() returned (as in
// Python's proactor transport); epoll's write() sends at once and closes there.
Coro<void> send_pipe_fault(bool through_ring) {
  FaultScope faults;
  RecordingHandler handler;
  Link<Rec> l = co_await tcp_link<Rec>();
  plan(Call::send, EPIPE);
  l.t->write("doomed");  // no exception: the connection is lost
  EXPECT_EQ(l.t->is_closing(), !through_ring);
  EXPECT_EQ(l.p->lost, 0);  // from the loop, later
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_TRUE(holds<asyncio::BrokenPipeError>(l.p->lost_exc)) << what_of(l.p->lost_exc);
  EXPECT_TRUE(handler.empty());
  l.t->write("dropped");
  EXPECT_EQ(l.p->lost, 1);
}

TEST_P(Transports, InjectedSendErrorLosesTheConnection) {
  run(send_pipe_fault(GetParam() == Backend::io_uring));
}

// io_uring: send ops that take only part of what they held (a full socket buffer): the rest
// follows, in order. (On epoll a short send is followed by the writability edge of a socket that
// really ran out of room, which a planned short send cannot make: BigWriteIsBuffered... cover it.)
Coro<void> short_sends() {
  FaultScope faults;
  Link<Rec> l = co_await tcp_link<Rec>();
  for (int nth = 1; nth <= 2; ++nth) {
    asyncio::sys::Fault f{Call::send};
    f.nth = nth;
    f.short_to = 3;
    asyncio::sys::inject_fault(f);
  }
  l.t->write("hello, ");
  l.t->write("world");
  const std::string got = co_await recv_exactly(l.peer.get(), 12);
  EXPECT_EQ(got, "hello, world");
  CO_WAIT([&] { return l.t->get_write_buffer_size() == 0; });
  EXPECT_FALSE(l.t->is_closing());
  l.t->close();
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_EQ(l.p->lost_exc, nullptr);
}

TEST_P(Transports, ShortSendsAreFollowedByTheRest) {
  if (GetParam() == Backend::epoll) GTEST_SKIP() << "a planned short send makes no epoll edge";
  run(short_sends());
}

Coro<void> send_fault_while_buffered() {
  FaultScope faults;
  Link<Rec> l = co_await tcp_link<Rec>();
  shrink_buffers(l);
  l.t->write(pattern(4U << 20));
  CO_ASSERT(l.t->get_write_buffer_size() > 0);
  plan(Call::send, ECONNRESET);  // the next send, from the loop, fails
  Task<std::string> reader = asyncio::create_task(recv_all(l.peer.get()));
  CO_WAIT([&] { return l.p->lost > 0; });
  EXPECT_TRUE(holds<asyncio::ConnectionResetError>(l.p->lost_exc)) << what_of(l.p->lost_exc);
  EXPECT_EQ(l.t->get_write_buffer_size(), 0U);
  const std::string got = co_await reader;
  EXPECT_LT(got.size(), 4U << 20);
}

TEST_P(Transports, InjectedSendErrorWhileFlushingLosesTheConnection) {
  run(send_fault_while_buffered());
}

Coro<void> socket_fault() {
  FaultScope faults;
  asyncio_test::Listener listener;
  plan(Call::socket, EMFILE);
  std::exception_ptr e =
      co_await error_of(asyncio::create_connection(make<Rec>(), "127.0.0.1", listener.port));
  EXPECT_EQ(errno_of(e), EMFILE) << what_of(e);
  plan(Call::connect, ECONNREFUSED);
  std::exception_ptr e2 =
      co_await error_of(asyncio::create_connection(make<Rec>(), "127.0.0.1", listener.port));
  EXPECT_TRUE(holds<asyncio::ConnectionRefusedError>(e2)) << what_of(e2);
  std::vector<std::shared_ptr<Echo>> accepted;
  plan(Call::socket, ENFILE);
  std::exception_ptr e3 =
      co_await error_of(asyncio::create_server(erased(&accepted), "127.0.0.1", 0));
  EXPECT_EQ(errno_of(e3), ENFILE) << what_of(e3);
}

TEST_P(Transports, InjectedSocketAndConnectFailuresAreOSErrors) {
  run(socket_fault());
}

// =================================================================================================
// The loop closing under transports and servers; transports outliving the loop
// =================================================================================================

struct Open {
  Server server;
  std::vector<std::shared_ptr<Echo>> accepted;
  std::vector<asyncio::Connection<Rec>> clients;
  std::shared_ptr<Transport> busy;  // a client with data buffered
  std::shared_ptr<Rec> busy_protocol;
  FdGuard busy_peer;
};

Coro<void> open_things(Open* o) {
  o->server = co_await asyncio::create_server(erased(&o->accepted), "127.0.0.1", 0);
  for (int i = 0; i < 3; ++i) {
    o->clients.push_back(
        co_await asyncio::create_connection(make<Rec>(), "127.0.0.1", o->server.port()));
  }
  o->clients[0].transport->write("ping");
  CO_WAIT([&] { return o->accepted.size() == 3 && o->clients[0].protocol->data == "ping"; });
  o->clients[1].transport->pause_reading();
  Link<Rec> l = co_await tcp_link<Rec>();
  shrink_buffers(l);
  l.t->write(pattern(2U << 20));
  EXPECT_GT(l.t->get_write_buffer_size(), 0U);
  o->busy = l.t;
  o->busy_protocol = l.p;
  o->busy_peer = std::move(l.peer);
}

/// Every method of a transport whose loop is gone: nothing happens, nothing throws.
void poke(Transport& t) {
  EXPECT_TRUE(t.is_closing());
  EXPECT_FALSE(t.is_reading());
  t.write("after the loop");
  const std::string_view parts[] = {"a", "b"};
  t.writelines(std::span<const std::string_view>(parts));
  t.pause_reading();
  t.resume_reading();
  t.set_write_buffer_limits(100, 10);
  (void)t.get_write_buffer_limits();
  (void)t.get_write_buffer_size();
  (void)t.get_extra_info("peername");
  EXPECT_EQ(std::any_cast<int>(t.get_extra_info("socket")), -1);
  (void)t.can_write_eof();
  t.write_eof();
  t.close();
  t.abort();
}

/// Connects to `port`.
Coro<void> connect_to(std::uint16_t port, std::shared_ptr<Transport>* out) {
  auto conn = co_await asyncio::create_connection(make<Rec>(), "127.0.0.1", port);
  *out = std::move(conn.transport);
}

// Python's write() sends at once. io_uring's send op goes to the kernel with the loop's next
// wait, so a loop that stops in the pass that wrote (a callback writes, then stop()) hands it
// over as it stops: a peer waiting for the bytes gets them while the loop is not running.
TEST_P(Transports, WriteJustBeforeTheLoopStopsIsSentWhileItIsStopped) {
  const std::size_t before = open_fds();
  {
    asyncio_test::Listener listener;
    auto loop = asyncio::new_event_loop(options());
    std::shared_ptr<Transport> t;
    loop->run_until_complete(connect_to(listener.port, &t));
    ASSERT_TRUE(t);
    const std::string text = "sent while the loop is stopped";
    EventLoop* l = loop.get();
    loop->call_soon([&t, &text, l] {
      t->write(text);
      l->stop();  // the loop ends with this pass
    });
    loop->run_forever();
    FdGuard peer(::accept(listener.fd.get(), nullptr, nullptr));
    ASSERT_GE(peer.get(), 0);
    ASSERT_EQ(::fcntl(peer.get(), F_SETFL, 0), 0);  // blocking (the listener's flags may pass on)
    const timeval limit{5, 0};
    ASSERT_EQ(::setsockopt(peer.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit), 0);
    std::string got;
    char buf[64];
    while (got.size() < text.size()) {  // blocking, at most 5 s per recv
      const ssize_t n = ::recv(peer.get(), buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
    EXPECT_EQ(got, text);
    t->close();
    loop->run_until_complete(passes(3));
    loop->close();
  }
  EXPECT_EQ(open_fds(), before);
}

TEST_P(Transports, LoopClosingWithOpenTransportsAndServers) {
  const std::size_t before = open_fds();
  {
    auto loop = asyncio::new_event_loop(options());
    Open o;
    loop->run_until_complete(open_things(&o));
    ASSERT_EQ(o.clients.size(), 3U);
    loop->close();
    // The protocols are not called (Python leaves them to the garbage collector).
    for (auto& c : o.clients) EXPECT_EQ(c.protocol->lost, 0);
    for (auto& a : o.accepted) EXPECT_EQ(a->lost, 0);
    EXPECT_EQ(o.busy_protocol->lost, 0);
    // Every method is harmless once the loop is closed.
    for (auto& c : o.clients) poke(*c.transport);
    o.server.close();
    EXPECT_FALSE(o.server.is_serving());
    EXPECT_TRUE(o.server.sockets().empty());
    o.server.close_clients();
    o.server.abort_clients();
  }
  EXPECT_EQ(open_fds(), before);
}

TEST_P(Transports, TransportsOutliveTheirClosedLoop) {
  const std::size_t before = open_fds();
  {
    Open o;
    {
      auto loop = asyncio::new_event_loop(options());
      loop->run_until_complete(open_things(&o));
      loop->close();
    }  // the loop is destroyed; the transports, protocols and server are not
    for (auto& c : o.clients) poke(*c.transport);
    EXPECT_EQ(o.clients[0].protocol->lost, 0);
  }
  EXPECT_EQ(open_fds(), before);
}

TEST_P(Transports, TransportWithBufferedDataOutlivesItsLoop) {
  const std::size_t before = open_fds();
  {
    Open o;
    {
      auto loop = asyncio::new_event_loop(options());
      loop->run_until_complete(open_things(&o));
      loop->close();
    }
    ASSERT_TRUE(o.busy);
    poke(*o.busy);
    o.server.close();
    o.server.close_clients();
  }
  EXPECT_EQ(open_fds(), before);
}

TEST_P(Transports, TransportWithBufferedDataAfterLoopClose) {
  // The loop is closed but still exists.
  const std::size_t before = open_fds();
  {
    Open o;
    auto loop = asyncio::new_event_loop(options());
    loop->run_until_complete(open_things(&o));
    loop->close();
    ASSERT_TRUE(o.busy);
    EXPECT_EQ(o.busy->get_write_buffer_size(), 0U);  // dropped when the loop closed
    poke(*o.busy);
    EXPECT_EQ(o.busy_protocol->lost, 0);
  }
  EXPECT_EQ(open_fds(), before);
}

TEST_P(Transports, ServerOutlivesItsDestroyedLoop) {
  const std::size_t before = open_fds();
  {
    Server server;
    std::vector<std::shared_ptr<Echo>> accepted;
    {
      auto loop = asyncio::new_event_loop(options());
      Open o;
      loop->run_until_complete(open_things(&o));
      server = std::move(o.server);
      loop->close();
    }
    server.close_clients();
    server.abort_clients();
    server.close();
    EXPECT_FALSE(server.is_serving());
    EXPECT_TRUE(server.sockets().empty());
    EXPECT_EQ(server.port(), 0);
  }
  EXPECT_EQ(open_fds(), before);
}

Coro<void> loop_close_with_pending(std::vector<std::shared_ptr<Buf>>* out, Open* o) {
  // A BufferedProtocol with a receive in flight (io_uring: the kernel holds its buffer).
  o->server = co_await asyncio::create_server(erased(out), "127.0.0.1", 0);
  o->busy_peer = asyncio_test::connect_to(o->server.port());
  CO_WAIT([&] { return out->size() == 1; });
  co_await passes(3);
}

TEST_P(Transports, LoopClosingWithAReceiveInFlight) {
  const std::size_t before = open_fds();
  {
    std::vector<std::shared_ptr<Buf>> accepted;
    Open o;
    auto loop = asyncio::new_event_loop(options());
    loop->run_until_complete(loop_close_with_pending(&accepted, &o));
    loop->close();
    loop.reset();
    ASSERT_EQ(accepted.size(), 1U);
    EXPECT_EQ(accepted[0]->lost, 0);
    // The peer sees the connection closed.
    char c = 0;
    EXPECT_EQ(::recv(o.busy_peer.get(), &c, 1, 0), 0);
  }
  EXPECT_EQ(open_fds(), before);
}

INSTANTIATE_TEST_SUITE_P(Engines, Transports, ::testing::Values(Backend::epoll, Backend::io_uring),
                         param_name);

}  // namespace
