// Integration tests of the low-level socket API (asyncio/sockets.hpp: sock_recv,
// sock_recv_into, sock_sendall, sock_connect, sock_accept) on real sockets - socketpair(AF_UNIX),
// TCP on 127.0.0.1 and ::1, Unix paths - run on BOTH I/O engines: every TEST_P runs once with
// Backend::epoll and once with Backend::io_uring (docs/design/io.md).
//
// What they pin down, whichever engine runs:
//   - the engine is the one asked for (RunOptions::backend, ASYNCIO_BACKEND);
//   - bytes arrive complete and in order (EOF, n == 0, 100 MB to a slow reader);
//   - failures are OSErrors that keep their errno (refused, reset, broken pipe, EBADF,
//     ENOTSOCK), and a peer that went away never raises SIGPIPE;
//   - a cancelled receive or accept consumes nothing (docs/design/io.md, "Cancellation");
//   - virtual time never jumps over pending I/O; readers, writers, signals and
//     call_soon_threadsafe work on both engines; closing a loop with I/O pending frees it all.
//
// Every test's coroutine runs under a time-out (kBound), so a hang fails the test instead of
// the run; real-time waits appear only around real I/O. Ports are 0, addresses loopback, and
// every fd is owned by an FdGuard.
//
// Regression tests for bugs found here: io_uring completed two receives parked on one fd in
// LIFO order (fixed: one op per fd and direction in the kernel, the others queued in order);
// sock_connect hung on epoll when a Unix listener's backlog was full (fixed: retried with
// back-off); virtual time jumped over pending I/O when the engine's wait returned with nothing
// ready (both engines; fixed: the clock jumps only after a wait that lasted its time-out).
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
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
using asyncio_test::running_backend;
using asyncio_test::TempDir;

using namespace std::chrono_literals;
using asyncio::AcceptedSocket;
using asyncio::Backend;
using asyncio::Coro;
using asyncio::EventLoop;
using asyncio::RunOptions;
using asyncio::SocketAddress;
using asyncio::Task;
using asyncio_test::FdGuard;
using asyncio_test::Pipe;
using asyncio_test::read_some;
using asyncio_test::SocketPair;
using asyncio_test::write_str;

/// Seconds of (loop) time after which a test's coroutine is cancelled (TimeoutError).
constexpr double kBound = 30.0;

// ---- Engines -----------------------------------------------------------------------------------

Coro<Backend> backend_of_running_loop() {
  co_return running_backend();
}

/// Sets an environment variable for the scope of a test, and restores it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value, 1);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// ---- Sockets -----------------------------------------------------------------------------------

[[noreturn]] void fail_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

/// A blocking, close-on-exec socket.
FdGuard new_socket(int family, int type = SOCK_STREAM) {
  FdGuard fd(::socket(family, type | SOCK_CLOEXEC, 0));
  if (!fd) fail_errno("socket");
  return fd;
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) fail_errno("fcntl");
}

bool is_nonblocking(int fd) {
  return (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

bool is_cloexec(int fd) {
  return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

SocketAddress sockname(int fd) {
  SocketAddress a;
  socklen_t len = SocketAddress::capacity();
  if (::getsockname(fd, a.data(), &len) != 0) fail_errno("getsockname");
  a.set_size(len);
  return a;
}

SocketAddress peername(int fd) {
  SocketAddress a;
  socklen_t len = SocketAddress::capacity();
  if (::getpeername(fd, a.data(), &len) != 0) fail_errno("getpeername");
  a.set_size(len);
  return a;
}

SocketAddress loopback(int family, std::uint16_t port = 0) {
  return SocketAddress::ip(family == AF_INET6 ? "::1" : "127.0.0.1", port);
}

/// A socket bound to the loopback address of `family`, port 0 (not listening).
FdGuard bound_socket(int family) {
  FdGuard fd = new_socket(family);
  const SocketAddress addr = loopback(family);
  if (::bind(fd.get(), addr.data(), addr.size()) != 0) fail_errno("bind");
  return fd;
}

/// A TCP listener on the loopback address of `family`, port 0.
FdGuard tcp_listener(int family) {
  FdGuard fd = bound_socket(family);
  if (::listen(fd.get(), SOMAXCONN) != 0) fail_errno("listen");
  return fd;
}

/// True when a socket can be bound to ::1 (IPv6 loopback configured).
bool ipv6_loopback_available() {
  FdGuard fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;  // NOLINT
}

/// Two connected, non-blocking stream sockets: `a` (a client) and `b` (the server's end).
struct Connection {
  FdGuard a, b;
};

enum class Link { unix_pair, tcp4, tcp6 };

Connection tcp_connection(int family) {
  FdGuard listener = tcp_listener(family);
  FdGuard client = new_socket(family);
  const SocketAddress addr = sockname(listener.get());
  // On loopback, a blocking connect to a listener completes at once (the backlog takes it).
  if (::connect(client.get(), addr.data(), addr.size()) != 0) fail_errno("connect");
  FdGuard server(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!server) fail_errno("accept4");
  set_nonblocking(client.get());
  return Connection{std::move(client), std::move(server)};
}

Connection connect_link(Link link) {
  switch (link) {
    case Link::unix_pair: {
      SocketPair p;
      return Connection{std::move(p.a), std::move(p.b)};
    }
    case Link::tcp4:
      return tcp_connection(AF_INET);
    case Link::tcp6:
      return tcp_connection(AF_INET6);
  }
  throw std::logic_error("unknown link");
}

/// An AF_UNIX stream socket bound to `path`; listening with `backlog` unless it is negative.
FdGuard unix_socket_at(const std::string& path, int backlog) {
  FdGuard fd = new_socket(AF_UNIX);
  const SocketAddress addr = SocketAddress::unix_path(path);
  if (::bind(fd.get(), addr.data(), addr.size()) != 0) fail_errno("bind");
  if (backlog >= 0 && ::listen(fd.get(), backlog) != 0) fail_errno("listen");
  return fd;
}

// ---- Errors ------------------------------------------------------------------------------------

/// The errno of the std::system_error `e` holds (-1 when it holds something else or nothing).
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

using asyncio_test::holds;
using asyncio_test::what_of;

/// Restores SIGPIPE's disposition and this thread's mask on destruction; while alive, SIGPIPE
/// is at its default (it would kill the process) and unblocked.
class DefaultSigpipe {
 public:
  DefaultSigpipe() {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;  // NOLINT(cppcoreguidelines-pro-type-union-access)
    ::sigaction(SIGPIPE, &dfl, &old_);
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    ::pthread_sigmask(SIG_UNBLOCK, &pipe_only, &old_mask_);
  }
  DefaultSigpipe(const DefaultSigpipe&) = delete;
  DefaultSigpipe& operator=(const DefaultSigpipe&) = delete;
  ~DefaultSigpipe() {
    ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
    ::sigaction(SIGPIPE, &old_, nullptr);
  }
  /// True while SIGPIPE would still kill the process: default disposition, not blocked.
  static bool still_deadly() {
    struct sigaction now {};
    ::sigaction(SIGPIPE, nullptr, &now);
    sigset_t mask;
    ::pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    return now.sa_handler == SIG_DFL &&  // NOLINT(cppcoreguidelines-pro-type-union-access)
           sigismember(&mask, SIGPIPE) == 0;
  }

 private:
  struct sigaction old_ {};
  sigset_t old_mask_{};
};

// ---- Small coroutines --------------------------------------------------------------------------

/// Receives from `fd` until `n` bytes came or EOF (at most `max_calls` receives).
Coro<std::string> recv_exactly(int fd, std::size_t n, int max_calls = 100000) {
  std::string got;
  for (int i = 0; i < max_calls && got.size() < n; ++i) {
    std::string part = co_await asyncio::sock_recv(fd, n - got.size());
    if (part.empty()) break;
    got += part;
  }
  co_return got;
}

Coro<void> yield_times(int n) {
  for (int i = 0; i < n; ++i) co_await asyncio::sleep(0);
}

// ---- The fixture -------------------------------------------------------------------------------

class Sockets : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::io_uring) {
      if (auto why = io_uring_refused()) GTEST_SKIP() << "io_uring is not available: " << *why;
    }
  }

  [[nodiscard]] RunOptions options(bool virtual_time = false) const {
    return RunOptions{.virtual_time = virtual_time, .backend = GetParam()};
  }

  /// asyncio::run(main) on the engine under test, bounded by `bound` seconds of loop time;
  /// checks that the loop really runs that engine.
  template <class T>
  T run(Coro<T> main, bool virtual_time = false, double bound = kBound) {
    return asyncio::run(asyncio_test::bounded_on_engine(std::move(main), GetParam(), bound),
                        options(virtual_time));
  }

  /// Whether a test over `link` must be skipped (IPv6 loopback missing).
  static bool unavailable(Link link) { return link == Link::tcp6 && !ipv6_loopback_available(); }
};

#define SKIP_IF_UNAVAILABLE(link) \
  if (unavailable(link)) GTEST_SKIP() << "IPv6 loopback (::1) is not available here"

// =================================================================================================
// The engine
// =================================================================================================

TEST_P(Sockets, RunsOnTheEngineAskedFor) {
  EXPECT_EQ(asyncio::run(backend_of_running_loop(), options()), GetParam());
  auto loop = asyncio::new_event_loop(options());
  EXPECT_EQ(asyncio::detail::io_of(*loop).backend(), GetParam());
  loop->close();
}

TEST_P(Sockets, AutomaticTakesTheEngineFromAsyncioBackend) {
  ScopedEnv env("ASYNCIO_BACKEND", engine_name(GetParam()));
  EXPECT_EQ(asyncio::run(backend_of_running_loop(), RunOptions{.backend = Backend::automatic}),
            GetParam());
  auto loop = asyncio::new_event_loop();  // automatic by default
  EXPECT_EQ(asyncio::detail::io_of(*loop).backend(), GetParam());
  loop->close();
}

TEST_P(Sockets, ExplicitBackendWinsOverAsyncioBackend) {
  const Backend other = GetParam() == Backend::epoll ? Backend::io_uring : Backend::epoll;
  ScopedEnv env("ASYNCIO_BACKEND", engine_name(other));
  EXPECT_EQ(asyncio::run(backend_of_running_loop(), options()), GetParam());
}

TEST_P(Sockets, InvalidAsyncioBackendIsValueErrorAtLoopCreation) {
  ScopedEnv env("ASYNCIO_BACKEND", "kqueue");
  EXPECT_THROW((void)asyncio::new_event_loop(), asyncio::ValueError);
  EXPECT_THROW((void)asyncio::run(backend_of_running_loop()), asyncio::ValueError);
  // An explicit choice does not read the variable at all.
  auto loop = asyncio::new_event_loop(options());
  EXPECT_EQ(asyncio::detail::io_of(*loop).backend(), GetParam());
  loop->close();
}

TEST_P(Sockets, EmptyOrAutomaticAsyncioBackendPicksAWorkingEngine) {
  for (const char* value : {"", "automatic"}) {
    ScopedEnv env("ASYNCIO_BACKEND", value);
    const Backend b = asyncio::run(backend_of_running_loop());
    EXPECT_TRUE(b == Backend::epoll || b == Backend::io_uring) << "ASYNCIO_BACKEND=" << value;
  }
}

Coro<std::string> ping(int a, int b) {
  co_await asyncio::sock_sendall(b, "ping");
  co_return co_await recv_exactly(a, 4);
}

// io_uring cannot easily be made unavailable to check the RuntimeError; instead, where the
// kernel allows io_uring_setup (the probe in SetUp), the engine asked for must work, with no
// silent fallback.
TEST_P(Sockets, TheRequestedEngineWorksOnThisMachine) {
  if (GetParam() == Backend::io_uring) {
    if (auto why = io_uring_refused()) GTEST_SKIP() << *why;
  }
  SocketPair p;
  auto loop = asyncio::new_event_loop(options());
  ASSERT_EQ(asyncio::detail::io_of(*loop).backend(), GetParam());
  EXPECT_EQ(loop->run_until_complete(ping(p.a.get(), p.b.get())), "ping");
  loop->close();
}

// =================================================================================================
// sock_recv, sock_recv_into, sock_sendall over socketpair, TCP/IPv4 and TCP/IPv6
// =================================================================================================

/// b -> a with sock_sendall and sock_recv, then a -> b.
Coro<std::string> both_ways(int a, int b) {
  const std::string there = "hello from b";
  const std::string back = "and back from a";
  co_await asyncio::sock_sendall(b, there);
  std::string got = co_await recv_exactly(a, there.size());
  co_await asyncio::sock_sendall(a, back);
  got += "|" + co_await recv_exactly(b, back.size());
  co_return got;
}

/// b -> a, received with sock_recv_into in small pieces.
Coro<std::string> into_buffer(int a, int b) {
  const std::string msg = "0123456789abcdefghij";
  co_await asyncio::sock_sendall(b, msg);
  std::vector<std::byte> buf(msg.size());
  std::size_t got = 0;
  for (int i = 0; i < 100 && got < buf.size(); ++i) {
    const std::size_t room = std::min<std::size_t>(7, buf.size() - got);
    const std::size_t n =
        co_await asyncio::sock_recv_into(a, std::span<std::byte>(buf).subspan(got, room));
    if (n == 0) break;
    EXPECT_LE(n, room);
    got += n;
  }
  co_return std::string(reinterpret_cast<const char*>(buf.data()), got);  // NOLINT
}

struct EofSeen {
  std::string data;
  std::string first_after_eof;
  std::string second_after_eof;
};

/// b sends "bye" and shuts its side down: a gets "bye", then "" (and "" again).
Coro<EofSeen> data_then_eof(int a, int b) {
  co_await asyncio::sock_sendall(b, "bye");
  ::shutdown(b, SHUT_WR);
  EofSeen out;
  out.data = co_await recv_exactly(a, 3);
  out.first_after_eof = co_await asyncio::sock_recv(a, 100);
  out.second_after_eof = co_await asyncio::sock_recv(a, 100);
  co_return out;
}

/// A receive parked before the EOF comes returns 0 from sock_recv_into.
Coro<std::size_t> recv_into_parked_then_eof(int a, FdGuard* b) {
  std::vector<std::byte> buf(16);
  Task<std::size_t> t = asyncio::create_task(asyncio::sock_recv_into(a, std::span<std::byte>(buf)));
  co_await yield_times(3);  // parked
  EXPECT_FALSE(t.done());
  b->reset();  // EOF
  const std::size_t n = co_await t;
  co_return n;
}

TEST_P(Sockets, SendallAndRecvOverSocketpair) {
  Connection c = connect_link(Link::unix_pair);
  EXPECT_EQ(run(both_ways(c.a.get(), c.b.get())), "hello from b|and back from a");
}

TEST_P(Sockets, SendallAndRecvOverTcp4) {
  Connection c = connect_link(Link::tcp4);
  EXPECT_EQ(run(both_ways(c.a.get(), c.b.get())), "hello from b|and back from a");
}

TEST_P(Sockets, SendallAndRecvOverTcp6) {
  SKIP_IF_UNAVAILABLE(Link::tcp6);
  Connection c = connect_link(Link::tcp6);
  EXPECT_EQ(run(both_ways(c.a.get(), c.b.get())), "hello from b|and back from a");
}

TEST_P(Sockets, RecvIntoFillsTheBufferOverSocketpair) {
  Connection c = connect_link(Link::unix_pair);
  EXPECT_EQ(run(into_buffer(c.a.get(), c.b.get())), "0123456789abcdefghij");
}

TEST_P(Sockets, RecvIntoFillsTheBufferOverTcp4) {
  Connection c = connect_link(Link::tcp4);
  EXPECT_EQ(run(into_buffer(c.a.get(), c.b.get())), "0123456789abcdefghij");
}

TEST_P(Sockets, RecvIntoFillsTheBufferOverTcp6) {
  SKIP_IF_UNAVAILABLE(Link::tcp6);
  Connection c = connect_link(Link::tcp6);
  EXPECT_EQ(run(into_buffer(c.a.get(), c.b.get())), "0123456789abcdefghij");
}

TEST_P(Sockets, RecvReturnsEmptyAtEofOverSocketpair) {
  Connection c = connect_link(Link::unix_pair);
  const EofSeen seen = run(data_then_eof(c.a.get(), c.b.get()));
  EXPECT_EQ(seen.data, "bye");
  EXPECT_EQ(seen.first_after_eof, "");
  EXPECT_EQ(seen.second_after_eof, "");
}

TEST_P(Sockets, RecvReturnsEmptyAtEofOverTcp4) {
  Connection c = connect_link(Link::tcp4);
  const EofSeen seen = run(data_then_eof(c.a.get(), c.b.get()));
  EXPECT_EQ(seen.data, "bye");
  EXPECT_EQ(seen.first_after_eof, "");
  EXPECT_EQ(seen.second_after_eof, "");
}

TEST_P(Sockets, RecvReturnsEmptyAtEofOverTcp6) {
  SKIP_IF_UNAVAILABLE(Link::tcp6);
  Connection c = connect_link(Link::tcp6);
  const EofSeen seen = run(data_then_eof(c.a.get(), c.b.get()));
  EXPECT_EQ(seen.data, "bye");
  EXPECT_EQ(seen.first_after_eof, "");
  EXPECT_EQ(seen.second_after_eof, "");
}

TEST_P(Sockets, ParkedRecvIntoReturnsZeroWhenThePeerClosesSocketpair) {
  Connection c = connect_link(Link::unix_pair);
  EXPECT_EQ(run(recv_into_parked_then_eof(c.a.get(), &c.b)), 0U);
}

TEST_P(Sockets, ParkedRecvIntoReturnsZeroWhenThePeerClosesTcp4) {
  Connection c = connect_link(Link::tcp4);
  EXPECT_EQ(run(recv_into_parked_then_eof(c.a.get(), &c.b)), 0U);
}

TEST_P(Sockets, ParkedRecvIntoReturnsZeroWhenThePeerClosesTcp6) {
  SKIP_IF_UNAVAILABLE(Link::tcp6);
  Connection c = connect_link(Link::tcp6);
  EXPECT_EQ(run(recv_into_parked_then_eof(c.a.get(), &c.b)), 0U);
}

struct ZeroSized {
  std::string recv_zero;
  std::size_t recv_into_empty = 99;
  std::string afterwards;
};

/// n == 0 and an empty buffer return at once and take nothing from the socket.
Coro<ZeroSized> zero_sized_receives(int a, int b) {
  write_str(b, "kept");
  ZeroSized out;
  out.recv_zero = co_await asyncio::sock_recv(a, 0);
  out.recv_into_empty = co_await asyncio::sock_recv_into(a, std::span<std::byte>());
  out.afterwards = co_await recv_exactly(a, 4);
  co_return out;
}

TEST_P(Sockets, ZeroSizedReceivesReturnAtOnceAndConsumeNothing) {
  SocketPair p;
  const ZeroSized z = run(zero_sized_receives(p.a.get(), p.b.get()));
  EXPECT_EQ(z.recv_zero, "");
  EXPECT_EQ(z.recv_into_empty, 0U);
  EXPECT_EQ(z.afterwards, "kept");
}

TEST_P(Sockets, ZeroSizedReceiveOnAnIdleSocketDoesNotWait) {
  SocketPair p;  // nothing is ever sent: a receive that waited would hit the bound
  EXPECT_EQ(run(asyncio::sock_recv(p.a.get(), 0), false, 5.0), "");
}

Coro<std::string> recv_in_pieces(int a, int b) {
  write_str(b, "0123456789");
  std::string first = co_await asyncio::sock_recv(a, 4);
  std::string rest = co_await asyncio::sock_recv(a, 100);
  co_return first + "|" + rest;
}

TEST_P(Sockets, RecvReturnsAtMostNBytesAndLeavesTheRest) {
  SocketPair p;
  EXPECT_EQ(run(recv_in_pieces(p.a.get(), p.b.get())), "0123|456789");
}

struct NoSuspend {
  std::string got;
  bool callback_ran_before = true;
};

/// Data is already there: does sock_recv return before a callback scheduled just before it?
Coro<NoSuspend> recv_ready_data(int a, int b) {
  write_str(b, "ready");
  auto ran = std::make_shared<bool>(false);
  asyncio::get_running_loop().call_soon([ran] { *ran = true; });
  NoSuspend out;
  out.got = co_await asyncio::sock_recv(a, 100);
  out.callback_ran_before = *ran;
  co_await asyncio::sleep(0);  // let the callback run before its loop goes
  co_return out;
}

// Python's sock_recv returns without yielding when the data is there. The epoll engine tries
// the syscall first, so the task does not suspend; io_uring submits every receive and learns
// the result at the next wait (docs/design/io.md), so there the task does suspend once.
TEST_P(Sockets, RecvWithDataAlreadyThereDoesNotSuspendOnEpoll) {
  SocketPair p;
  const NoSuspend r = run(recv_ready_data(p.a.get(), p.b.get()));
  EXPECT_EQ(r.got, "ready");
  if (GetParam() == Backend::epoll) {
    EXPECT_FALSE(r.callback_ran_before) << "sock_recv suspended although data was there";
  }
}

/// A receive parked before the data comes gets it.
Coro<std::string> recv_then_send(int a, int b) {
  Task<std::string> t = asyncio::create_task(asyncio::sock_recv(a, 100));
  co_await yield_times(3);
  EXPECT_FALSE(t.done());
  co_await asyncio::sock_sendall(b, "later");
  co_return co_await t;
}

TEST_P(Sockets, ParkedRecvGetsDataSentLater) {
  SocketPair p;
  EXPECT_EQ(run(recv_then_send(p.a.get(), p.b.get())), "later");
}

TEST_P(Sockets, ParkedRecvGetsDataSentLaterOverTcp4) {
  Connection c = connect_link(Link::tcp4);
  EXPECT_EQ(run(recv_then_send(c.a.get(), c.b.get())), "later");
}

struct TwoReceivers {
  std::string first;
  std::string second;
  bool first_done_alone = false;
};

/// Two receives parked on one fd, started in this order; "one" is written, and once one of
/// them has it, "two". Never waits for a particular one, so a wrong order fails fast.
Coro<TwoReceivers> two_receivers(int a, int b) {
  Task<std::string> first = asyncio::create_task(asyncio::sock_recv(a, 100));
  Task<std::string> second = asyncio::create_task(asyncio::sock_recv(a, 100));
  co_await yield_times(3);
  write_str(b, "one");
  for (int i = 0; i < 2000 && !first.done() && !second.done(); ++i) {
    co_await asyncio::sleep(0.001);  // real I/O: bounded real-time wait
  }
  TwoReceivers out;
  out.first_done_alone = first.done() && !second.done();
  write_str(b, "two");
  out.first = co_await first;
  out.second = co_await second;
  co_return out;
}

// Both engines: each of two concurrent receives gets one of the two messages, nothing is lost
// or duplicated. epoll keeps a FIFO of parked ops per fd, so there the first receive started
// gets the first bytes (as docs/design/io.md says).
TEST_P(Sockets, TwoConcurrentRecvsOnOneFdEachGetOneMessage) {
  SocketPair p;
  const TwoReceivers r = run(two_receivers(p.a.get(), p.b.get()));
  EXPECT_TRUE(r.first + r.second == "onetwo" || r.first + r.second == "twoone")
      << r.first << " / " << r.second;
  if (GetParam() == Backend::epoll) {
    EXPECT_TRUE(r.first_done_alone);
    EXPECT_EQ(r.first, "one");
    EXPECT_EQ(r.second, "two");
  }
}

// Was a bug (io_uring): two receives parked on one fd completed in LIFO order (the kernel arms a
// poll for each IORING_OP_RECV, and the socket's wait queue wakes the most recently added
// waiter first). The engine now keeps one op per fd and direction in the kernel, the others
// queued in order, as epoll does.
TEST_P(Sockets, TwoConcurrentRecvsOnOneFdCompleteInFifoOrder) {
  SocketPair p;
  const TwoReceivers r = run(two_receivers(p.a.get(), p.b.get()));
  EXPECT_TRUE(r.first_done_alone);
  EXPECT_EQ(r.first, "one");
  EXPECT_EQ(r.second, "two");
}

struct EmptySend {
  bool peer_got_nothing = false;
  std::string then;
};

Coro<EmptySend> send_empty(int a, int b) {
  co_await asyncio::sock_sendall(b, std::string_view());
  co_await asyncio::sock_sendall(b, "");
  EmptySend out;
  out.peer_got_nothing = read_some(a).empty();  // non-blocking: "" when nothing is there
  co_await asyncio::sock_sendall(b, "x");
  out.then = co_await recv_exactly(a, 1);
  co_return out;
}

TEST_P(Sockets, SendallOfAnEmptyViewSendsNothingAndReturns) {
  SocketPair p;
  const EmptySend r = run(send_empty(p.a.get(), p.b.get()));
  EXPECT_TRUE(r.peer_got_nothing);
  EXPECT_EQ(r.then, "x");
}

/// A blocking socket (never made non-blocking by the caller) must not block the loop: a timer
/// fires while a receive waits on it.
Coro<std::string> recv_on_blocking_socket(int a, int b) {
  Task<std::string> t = asyncio::create_task(asyncio::sock_recv(a, 100));
  co_await asyncio::sleep(0.02);  // the loop runs on while the receive waits
  EXPECT_FALSE(t.done());
  write_str(b, "unblocked");
  co_return co_await t;
}

TEST_P(Sockets, RecvOnABlockingSocketDoesNotBlockTheLoop) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  FdGuard a(fds[0]);
  FdGuard b(fds[1]);
  EXPECT_EQ(run(recv_on_blocking_socket(a.get(), b.get())), "unblocked");
}

// =================================================================================================
// Big transfers
// =================================================================================================

/// `n` bytes of a pseudo-random pattern (xorshift), so that a lost, repeated or reordered
/// chunk cannot go unnoticed.
std::string pattern(std::size_t n) {
  std::string out(n, '\0');
  std::uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (std::size_t i = 0; i < n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out.data() + i, &x, std::min<std::size_t>(8, n - i));
  }
  return out;
}

struct Received {
  std::size_t bytes = 0;
  std::size_t mismatched_chunks = 0;
  std::size_t receives = 0;
  bool eof = false;
};

/// Starts after `delay` seconds, then reads `chunk` bytes at a time, napping 1 ms every
/// `nap_every` receives, comparing everything with `expected`, until EOF.
Coro<Received> slow_reader(int fd, const std::string* expected, double delay, std::size_t chunk,
                           std::size_t nap_every) {
  co_await asyncio::sleep(delay);
  Received r;
  std::vector<std::byte> buf(chunk);
  const std::size_t max_receives = expected->size() + 2;  // each gets >= 1 byte, or EOF
  while (r.receives < max_receives) {
    const std::size_t n = co_await asyncio::sock_recv_into(fd, std::span<std::byte>(buf));
    ++r.receives;
    if (n == 0) {
      r.eof = true;
      break;
    }
    if (r.bytes + n > expected->size() ||
        std::memcmp(buf.data(), expected->data() + r.bytes, n) != 0) {
      ++r.mismatched_chunks;
    }
    r.bytes += n;
    if (r.receives % nap_every == 0) co_await asyncio::sleep(0.001);
  }
  co_return r;
}

/// Sends all of `data` from `w` with one sock_sendall, then EOF, while a slow reader reads `r`.
Coro<Received> send_to_slow_reader(int w, int r, const std::string* data, double delay,
                                   std::size_t chunk) {
  Task<Received> reader = asyncio::create_task(slow_reader(r, data, delay, chunk, 64));
  co_await asyncio::sock_sendall(w, *data);
  ::shutdown(w, SHUT_WR);
  co_return co_await reader;
}

TEST_P(Sockets, SendallOf100MBToASlowReaderDeliversEveryByte) {
  const std::string data = pattern(100U * 1024 * 1024);
  Connection c = connect_link(Link::tcp4);
  const Received got =
      run(send_to_slow_reader(c.a.get(), c.b.get(), &data, 0.02, 16 * 1024), false, 120.0);
  EXPECT_EQ(got.bytes, data.size());
  EXPECT_EQ(got.mismatched_chunks, 0U);
  EXPECT_TRUE(got.eof);
  EXPECT_GT(got.receives, data.size() / (16 * 1024));  // it really read in small chunks
}

TEST_P(Sockets, SendallToAReaderThatStartsLateDeliversEveryByteOverSocketpair) {
  const std::string data = pattern(16U * 1024 * 1024 + 13);
  Connection c = connect_link(Link::unix_pair);
  const Received got =
      run(send_to_slow_reader(c.a.get(), c.b.get(), &data, 0.1, 64 * 1024), false, 60.0);
  EXPECT_EQ(got.bytes, data.size());
  EXPECT_EQ(got.mismatched_chunks, 0U);
  EXPECT_TRUE(got.eof);
}

// =================================================================================================
// sock_connect
// =================================================================================================

Coro<void> connect_to(int fd, SocketAddress addr) {
  co_await asyncio::sock_connect(fd, addr);
}

TEST_P(Sockets, ConnectToAClosedPortIsConnectionRefused) {
  // A port that is bound but not listening: nothing else can take it while the test runs.
  FdGuard closed = bound_socket(AF_INET);
  const SocketAddress addr = sockname(closed.get());
  FdGuard client = new_socket(AF_INET);
  const std::exception_ptr err = run(error_of(connect_to(client.get(), addr)));
  EXPECT_TRUE(holds<asyncio::ConnectionRefusedError>(err)) << what_of(err);
  EXPECT_TRUE(holds<asyncio::ConnectionError>(err));
  EXPECT_TRUE(holds<asyncio::OSError>(err));
  EXPECT_TRUE(holds<std::system_error>(err));
  EXPECT_EQ(errno_of(err), ECONNREFUSED);
  EXPECT_NE(what_of(err).find(std::to_string(addr.port())), std::string::npos) << what_of(err);
}

struct Connected {
  SocketAddress client_peer;   // getpeername of the client after sock_connect
  SocketAddress accepted;      // what sock_accept reported
  SocketAddress client_local;  // getsockname of the client
  std::string echoed;
  bool client_nonblocking = false;
};

/// sock_connect to `addr` while a task accepts; then one exchange over the new connection.
Coro<Connected> connect_and_accept(int listener, SocketAddress addr, int family) {
  Task<AcceptedSocket> acceptor = asyncio::create_task(asyncio::sock_accept(listener));
  FdGuard client = new_socket(family);
  co_await asyncio::sock_connect(client.get(), addr);
  AcceptedSocket acc = co_await acceptor;
  FdGuard server(acc.fd);
  Connected out;
  out.client_nonblocking = is_nonblocking(client.get());
  out.client_peer = peername(client.get());
  out.client_local = sockname(client.get());
  out.accepted = acc.address;
  co_await asyncio::sock_sendall(client.get(), "hi");
  out.echoed = co_await recv_exactly(server.get(), 2);
  co_return out;
}

TEST_P(Sockets, ConnectToAListeningTcp4SocketSucceeds) {
  FdGuard listener = tcp_listener(AF_INET);
  const SocketAddress addr = sockname(listener.get());
  const Connected c = run(connect_and_accept(listener.get(), addr, AF_INET));
  EXPECT_EQ(c.client_peer, addr);
  EXPECT_EQ(c.echoed, "hi");
  EXPECT_TRUE(c.client_nonblocking);  // sock_connect made it non-blocking
}

TEST_P(Sockets, ConnectToAListeningTcp6SocketSucceeds) {
  SKIP_IF_UNAVAILABLE(Link::tcp6);
  FdGuard listener = tcp_listener(AF_INET6);
  const SocketAddress addr = sockname(listener.get());
  const Connected c = run(connect_and_accept(listener.get(), addr, AF_INET6));
  EXPECT_EQ(c.client_peer, addr);
  EXPECT_EQ(c.client_peer.host(), "::1");
  EXPECT_EQ(c.echoed, "hi");
}

TEST_P(Sockets, ConnectToAUnixPathWithoutASocketIsFileNotFound) {
  TempDir dir;
  const SocketAddress addr = SocketAddress::unix_path(dir.file("nobody-here"));
  FdGuard client = new_socket(AF_UNIX);
  const std::exception_ptr err = run(error_of(connect_to(client.get(), addr)));
  // The kernel says ENOENT for a path with no file.
  EXPECT_EQ(errno_of(err), ENOENT) << what_of(err);
  EXPECT_TRUE(holds<asyncio::FileNotFoundError>(err)) << what_of(err);
}

TEST_P(Sockets, ConnectToAUnixSocketNobodyListensOnIsRefused) {
  TempDir dir;
  const std::string path = dir.file("not-listening");
  FdGuard bound = unix_socket_at(path, -1);
  FdGuard client = new_socket(AF_UNIX);
  const std::exception_ptr err =
      run(error_of(connect_to(client.get(), SocketAddress::unix_path(path))));
  EXPECT_EQ(errno_of(err), ECONNREFUSED) << what_of(err);
  EXPECT_TRUE(holds<asyncio::ConnectionRefusedError>(err)) << what_of(err);
}

TEST_P(Sockets, ConnectToAUnixListenerSucceedsAndAcceptReportsAnUnnamedPeer) {
  TempDir dir;
  const std::string path = dir.file("listening");
  FdGuard listener = unix_socket_at(path, 16);
  const SocketAddress addr = SocketAddress::unix_path(path);
  const Connected c = run(connect_and_accept(listener.get(), addr, AF_UNIX));
  EXPECT_EQ(c.echoed, "hi");
  EXPECT_EQ(c.client_peer.path(), path);
  EXPECT_EQ(c.accepted.family(), AF_UNIX);
  EXPECT_EQ(c.accepted.path(), "");  // the client never bound a name
}

/// The listener's backlog is full: a connect gets EAGAIN and sock_connect must wait until the
/// listener makes room (an accept), then connect.
Coro<std::string> connect_to_full_unix_backlog(int listener, SocketAddress addr) {
  FdGuard first = new_socket(AF_UNIX);
  co_await asyncio::sock_connect(first.get(), addr);  // fills the backlog (0: one fits)
  FdGuard second = new_socket(AF_UNIX);
  Task<void> connecting = asyncio::create_task(connect_to(second.get(), addr));
  co_await asyncio::sleep(0.05);
  const bool waited = !connecting.done();
  AcceptedSocket one = co_await asyncio::sock_accept(listener);  // room for the second
  FdGuard one_guard(one.fd);
  co_await connecting;
  AcceptedSocket two = co_await asyncio::sock_accept(listener);
  FdGuard two_guard(two.fd);
  co_await asyncio::sock_sendall(second.get(), "second");
  std::string got = co_await recv_exactly(two.fd, 6);
  co_return (waited ? "waited " : "did not wait ") + got;
}

// A Unix listener with a full backlog makes connect() say EAGAIN (where TCP would queue a SYN).
// Nothing wakes a poll on the connecting socket when the listener makes room (the kernel wakes
// only blocking connecters, on the listener's peer_wait), so sock_connect's wait for POLLOUT
// can only be woken by chance: on epoll (edge-triggered) it never was and sock_connect hung
// until the bound; on io_uring a fresh POLL_ADD completes at once (an unconnected AF_UNIX
// socket is always writable) and the task spun through the loop until the accept. Now
// sock_connect retries the connect after a pause that doubles from 1 ms.
TEST_P(Sockets, ConnectToAUnixListenerWithAFullBacklogWaitsForRoom) {
  TempDir dir;
  const std::string path = dir.file("full");
  FdGuard listener = unix_socket_at(path, 0);
  EXPECT_EQ(
      run(connect_to_full_unix_backlog(listener.get(), SocketAddress::unix_path(path)), false, 5.0),
      "waited second");
}

// =================================================================================================
// sock_accept
// =================================================================================================

struct AcceptedInfo {
  bool nonblocking = false;
  bool cloexec = false;
  bool listener_nonblocking = false;
  SocketAddress peer;
  SocketAddress client_local;
  std::string got;
};

/// A blocking client connects; sock_accept must hand back a non-blocking, close-on-exec fd and
/// the client's address.
Coro<AcceptedInfo> accept_one(int listener, int family) {
  const SocketAddress addr = sockname(listener);
  FdGuard client = new_socket(family);
  if (::connect(client.get(), addr.data(), addr.size()) != 0) fail_errno("connect");
  AcceptedSocket acc = co_await asyncio::sock_accept(listener);
  FdGuard server(acc.fd);
  AcceptedInfo out;
  out.nonblocking = is_nonblocking(acc.fd);
  out.cloexec = is_cloexec(acc.fd);
  out.listener_nonblocking = is_nonblocking(listener);
  out.peer = acc.address;
  out.client_local = sockname(client.get());
  write_str(client.get(), "from client");
  out.got = co_await recv_exactly(acc.fd, 11);
  co_return out;
}

TEST_P(Sockets, AcceptReturnsANonBlockingCloseOnExecFd) {
  FdGuard listener = tcp_listener(AF_INET);
  const AcceptedInfo a = run(accept_one(listener.get(), AF_INET));
  EXPECT_TRUE(a.nonblocking);
  EXPECT_TRUE(a.cloexec);
  EXPECT_TRUE(a.listener_nonblocking);  // sock_accept made the listener non-blocking
  EXPECT_EQ(a.got, "from client");
}

TEST_P(Sockets, AcceptReportsTheClientsAddressOverTcp4) {
  FdGuard listener = tcp_listener(AF_INET);
  const AcceptedInfo a = run(accept_one(listener.get(), AF_INET));
  EXPECT_EQ(a.peer, a.client_local) << a.peer.to_string() << " vs " << a.client_local.to_string();
  EXPECT_EQ(a.peer.port(), a.client_local.port());
  EXPECT_NE(a.peer.port(), 0);
  EXPECT_EQ(a.peer.host(), "127.0.0.1");
}

TEST_P(Sockets, AcceptReportsTheClientsAddressOverTcp6) {
  SKIP_IF_UNAVAILABLE(Link::tcp6);
  FdGuard listener = tcp_listener(AF_INET6);
  const AcceptedInfo a = run(accept_one(listener.get(), AF_INET6));
  EXPECT_EQ(a.peer, a.client_local) << a.peer.to_string() << " vs " << a.client_local.to_string();
  EXPECT_EQ(a.peer.port(), a.client_local.port());
  EXPECT_EQ(a.peer.family(), AF_INET6);
  EXPECT_TRUE(a.nonblocking);
  EXPECT_TRUE(a.cloexec);
}

/// An accept parked before any client comes gets the connection made later.
Coro<bool> accept_waits(int listener) {
  Task<AcceptedSocket> t = asyncio::create_task(asyncio::sock_accept(listener));
  co_await yield_times(3);
  const bool waited = !t.done();
  const SocketAddress addr = sockname(listener);
  FdGuard client = new_socket(AF_INET);
  co_await asyncio::sock_connect(client.get(), addr);
  AcceptedSocket acc = co_await t;
  FdGuard server(acc.fd);
  co_return waited&& acc.fd >= 0 && acc.address == sockname(client.get());
}

TEST_P(Sockets, ParkedAcceptGetsALaterConnection) {
  FdGuard listener = tcp_listener(AF_INET);
  EXPECT_TRUE(run(accept_waits(listener.get())));
}

// =================================================================================================
// Peers that went away, bad fds
// =================================================================================================

Coro<void> sendall_of(int fd, const std::string* data) {
  co_await asyncio::sock_sendall(fd, *data);
}

TEST_P(Sockets, SendallToAClosedPeerIsBrokenPipeNotSigpipe) {
  DefaultSigpipe deadly;  // SIGPIPE would kill this process
  ASSERT_TRUE(DefaultSigpipe::still_deadly());
  SocketPair p;
  p.b.reset();
  const std::string data(1000, 'x');
  const std::exception_ptr err = run(error_of(sendall_of(p.a.get(), &data)));
  EXPECT_EQ(errno_of(err), EPIPE) << what_of(err);
  EXPECT_TRUE(holds<asyncio::BrokenPipeError>(err)) << what_of(err);
  EXPECT_TRUE(holds<asyncio::ConnectionError>(err));
  // We are alive, and not because the library changed SIGPIPE's disposition or mask.
  EXPECT_TRUE(DefaultSigpipe::still_deadly());
}

TEST_P(Sockets, SendallToAClosedTcpPeerIsAConnectionErrorNotSigpipe) {
  DefaultSigpipe deadly;
  Connection c = connect_link(Link::tcp4);
  c.b.reset();  // FIN now; the RST comes when our data reaches the closed socket
  const std::string data = pattern(8U * 1024 * 1024);
  const std::exception_ptr err = run(error_of(sendall_of(c.a.get(), &data)));
  const int e = errno_of(err);
  EXPECT_TRUE(e == EPIPE || e == ECONNRESET) << what_of(err);
  EXPECT_TRUE(holds<asyncio::BrokenPipeError>(err) || holds<asyncio::ConnectionResetError>(err))
      << what_of(err);
  EXPECT_TRUE(DefaultSigpipe::still_deadly());
}

/// Closes `fd` with SO_LINGER 0: the peer gets a reset instead of an EOF.
void reset_close(FdGuard& fd) {
  linger lg{};
  lg.l_onoff = 1;
  lg.l_linger = 0;
  ASSERT_EQ(::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
  fd.reset();
}

Coro<std::string> recv_of(int fd) {
  co_return co_await asyncio::sock_recv(fd, 100);
}

TEST_P(Sockets, RecvAfterThePeerResetIsConnectionReset) {
  Connection c = connect_link(Link::tcp4);
  reset_close(c.a);
  const std::exception_ptr err = run(error_of(recv_of(c.b.get())));
  EXPECT_EQ(errno_of(err), ECONNRESET) << what_of(err);
  EXPECT_TRUE(holds<asyncio::ConnectionResetError>(err)) << what_of(err);
}

/// A receive parked when the reset comes.
Coro<std::exception_ptr> parked_recv_then_reset(int fd, FdGuard* peer) {
  Task<std::exception_ptr> t = asyncio::create_task(error_of(recv_of(fd)));
  co_await yield_times(3);
  EXPECT_FALSE(t.done());
  reset_close(*peer);
  co_return co_await t;
}

TEST_P(Sockets, ParkedRecvSeesTheResetAsConnectionReset) {
  Connection c = connect_link(Link::tcp4);
  const std::exception_ptr err = run(parked_recv_then_reset(c.b.get(), &c.a));
  EXPECT_EQ(errno_of(err), ECONNRESET) << what_of(err);
  EXPECT_TRUE(holds<asyncio::ConnectionResetError>(err)) << what_of(err);
}

struct BadFdErrors {
  std::exception_ptr recv, recv_into, sendall, accept, connect;
};

/// Every call on `fd` (a closed or invalid one).
Coro<BadFdErrors> calls_on(int fd) {
  std::vector<std::byte> buf(8);
  BadFdErrors out;
  out.recv = co_await error_of(asyncio::sock_recv(fd, 10));
  out.recv_into = co_await error_of(asyncio::sock_recv_into(fd, std::span<std::byte>(buf)));
  out.sendall = co_await error_of(asyncio::sock_sendall(fd, "x"));
  out.accept = co_await error_of(asyncio::sock_accept(fd));
  out.connect = co_await error_of(asyncio::sock_connect(fd, loopback(AF_INET, 9)));
  co_return out;
}

void expect_ebadf(const BadFdErrors& e) {
  for (const std::exception_ptr* p : {&e.recv, &e.recv_into, &e.sendall, &e.accept, &e.connect}) {
    EXPECT_EQ(errno_of(*p), EBADF) << what_of(*p);
    EXPECT_TRUE(holds<asyncio::OSError>(*p)) << what_of(*p);
  }
}

TEST_P(Sockets, FdMinusOneIsOSErrorEbadf) {
  expect_ebadf(run(calls_on(-1)));
}

/// Opens a socket and closes it inside the loop (so that the loop's own fds cannot take its
/// number afterwards), then calls everything on the closed number.
Coro<BadFdErrors> calls_on_a_closed_fd() {
  int number = -1;
  {
    FdGuard s = new_socket(AF_INET);
    number = s.get();
  }
  co_return co_await calls_on(number);
}

TEST_P(Sockets, AClosedFdIsOSErrorEbadf) {
  expect_ebadf(run(calls_on_a_closed_fd()));
}

/// A closed fd that the engine has seen before (a receive completed on it).
Coro<std::exception_ptr> recv_on_a_reclosed_fd() {
  int number = -1;
  {
    SocketPair p;
    number = p.a.get();
    write_str(p.b.get(), "x");
    Task<std::string> t = asyncio::create_task(asyncio::sock_recv(number, 10));
    co_await yield_times(2);
    EXPECT_EQ(co_await t, "x");
  }
  co_return co_await error_of(asyncio::sock_recv(number, 10));
}

TEST_P(Sockets, RecvOnAnFdClosedAfterUseIsOSErrorEbadf) {
  const std::exception_ptr err = run(recv_on_a_reclosed_fd());
  EXPECT_EQ(errno_of(err), EBADF) << what_of(err);
}

struct PipeErrors {
  std::exception_ptr recv, sendall;
  std::string still_there;
};

Coro<PipeErrors> socket_calls_on_a_pipe(int r, int w) {
  write_str(w, "data");
  PipeErrors out;
  out.recv = co_await error_of(asyncio::sock_recv(r, 10));
  out.sendall = co_await error_of(asyncio::sock_sendall(w, "more"));
  out.still_there = read_some(r);
  co_return out;
}

// A pipe is not a socket: recv(2) and send(2) fail with ENOTSOCK, which both engines report as
// a plain OSError (no more specific class), and the pipe's data is left alone.
TEST_P(Sockets, SocketCallsOnAPipeAreOSErrorEnotsock) {
  Pipe p;
  const PipeErrors e = run(socket_calls_on_a_pipe(p.r.get(), p.w.get()));
  EXPECT_EQ(errno_of(e.recv), ENOTSOCK) << what_of(e.recv);
  EXPECT_EQ(errno_of(e.sendall), ENOTSOCK) << what_of(e.sendall);
  EXPECT_TRUE(holds<asyncio::OSError>(e.recv));
  EXPECT_EQ(e.still_there, "data");
}

TEST_P(Sockets, RecvOnAnUnconnectedTcpSocketIsOSErrorEnotconn) {
  FdGuard s = new_socket(AF_INET);
  set_nonblocking(s.get());
  const std::exception_ptr err = run(error_of(recv_of(s.get())));
  EXPECT_EQ(errno_of(err), ENOTCONN) << what_of(err);
}

// =================================================================================================
// Cancellation
// =================================================================================================

struct AfterCancel {
  bool cancelled = false;
  std::string next;
};

/// A receive cancelled while parked raises CancelledError; the bytes sent afterwards go to the
/// next receive, in order.
Coro<AfterCancel> cancel_parked_recv(int a, int b) {
  Task<std::string> t = asyncio::create_task(asyncio::sock_recv(a, 100));
  co_await yield_times(3);  // parked (io_uring: its submission sent)
  t.cancel();
  AfterCancel out;
  out.cancelled = co_await asyncio_test::ends_cancelled(t);
  write_str(b, "abc");
  write_str(b, "def");
  out.next = co_await recv_exactly(a, 6);
  co_return out;
}

TEST_P(Sockets, CancelledRecvRaisesCancelledErrorAndTheNextRecvGetsLaterBytes) {
  SocketPair p;
  const AfterCancel r = run(cancel_parked_recv(p.a.get(), p.b.get()));
  EXPECT_TRUE(r.cancelled);
  EXPECT_EQ(r.next, "abcdef");
}

TEST_P(Sockets, CancelledRecvOverTcpLosesNothing) {
  Connection c = connect_link(Link::tcp4);
  const AfterCancel r = run(cancel_parked_recv(c.a.get(), c.b.get()));
  EXPECT_TRUE(r.cancelled);
  EXPECT_EQ(r.next, "abcdef");
}

/// The data arrives and the receive is cancelled in the same iteration, before the loop polls.
Coro<AfterCancel> cancel_as_data_arrives(int a, int b) {
  Task<std::string> t = asyncio::create_task(asyncio::sock_recv(a, 100));
  co_await yield_times(3);
  write_str(b, "first");
  t.cancel();
  AfterCancel out;
  out.cancelled = co_await asyncio_test::ends_cancelled(t);
  write_str(b, "second");
  out.next = co_await recv_exactly(a, 11);
  co_return out;
}

TEST_P(Sockets, RecvCancelledAsItsDataArrivesLosesNothing) {
  SocketPair p;
  const AfterCancel r = run(cancel_as_data_arrives(p.a.get(), p.b.get()));
  EXPECT_TRUE(r.cancelled);
  EXPECT_EQ(r.next, "firstsecond");
}

/// Same with sock_recv_into, whose buffer the kernel may have written into.
Coro<AfterCancel> cancel_recv_into_as_data_arrives(int a, int b) {
  auto buf = std::make_shared<std::vector<std::byte>>(100);
  Task<std::size_t> t =
      asyncio::create_task(asyncio::sock_recv_into(a, std::span<std::byte>(*buf)));
  co_await yield_times(3);
  write_str(b, "first");
  t.cancel();
  AfterCancel out;
  out.cancelled = co_await asyncio_test::ends_cancelled(t);
  write_str(b, "second");
  out.next = co_await recv_exactly(a, 11);
  co_return out;
}

TEST_P(Sockets, RecvIntoCancelledAsItsDataArrivesLosesNothing) {
  SocketPair p;
  const AfterCancel r = run(cancel_recv_into_as_data_arrives(p.a.get(), p.b.get()));
  EXPECT_TRUE(r.cancelled);
  EXPECT_EQ(r.next, "firstsecond");
}

struct Stream {
  std::string sent;
  std::string received;
  int cancelled = 0;
};

/// Rounds of: start a small receive, write a piece, cancel the receive, at varying distances
/// (in loop iterations) between the three. Whatever each receive got, plus what is left at the
/// end, must be the byte stream that was written, in order.
Coro<Stream> cancel_races(int a, int b, int rounds) {
  Stream s;
  for (int i = 0; i < rounds; ++i) {
    Task<std::string> t = asyncio::create_task(asyncio::sock_recv(a, 5));
    co_await yield_times(i % 3);
    const std::string piece = "<" + std::to_string(i) + ">";
    write_str(b, piece);
    s.sent += piece;
    co_await yield_times((i / 3) % 3);
    t.cancel();
    try {
      s.received += co_await t;
    } catch (const asyncio::CancelledError&) {
      ++s.cancelled;
    }
  }
  s.received += co_await recv_exactly(a, s.sent.size() - s.received.size());
  co_return s;
}

TEST_P(Sockets, RepeatedCancelRacesKeepTheByteStreamIntact) {
  SocketPair p;
  const Stream s = run(cancel_races(p.a.get(), p.b.get(), 90));
  EXPECT_EQ(s.received, s.sent);
  EXPECT_GT(s.cancelled, 0);
}

struct AcceptAfterCancel {
  bool cancelled = false;
  bool same_client = false;
};

/// An accept cancelled while it waits for a connection; a client connects afterwards.
Coro<AcceptAfterCancel> cancel_parked_accept(int listener) {
  Task<AcceptedSocket> t = asyncio::create_task(asyncio::sock_accept(listener));
  co_await yield_times(3);
  t.cancel();
  AcceptAfterCancel out;
  out.cancelled = co_await asyncio_test::ends_cancelled(t);
  const SocketAddress addr = sockname(listener);
  FdGuard client = new_socket(AF_INET);
  if (::connect(client.get(), addr.data(), addr.size()) != 0) fail_errno("connect");
  AcceptedSocket acc = co_await asyncio::sock_accept(listener);
  FdGuard server(acc.fd);
  out.same_client = acc.address == sockname(client.get());
  co_return out;
}

TEST_P(Sockets, CancelledAcceptThenTheNextAcceptGetsTheConnection) {
  FdGuard listener = tcp_listener(AF_INET);
  const AcceptAfterCancel r = run(cancel_parked_accept(listener.get()));
  EXPECT_TRUE(r.cancelled);
  EXPECT_TRUE(r.same_client);
}

/// The connection is queued, and the accept is cancelled, before the loop polls again.
Coro<AcceptAfterCancel> cancel_accept_as_client_connects(int listener) {
  Task<AcceptedSocket> t = asyncio::create_task(asyncio::sock_accept(listener));
  co_await yield_times(3);
  const SocketAddress addr = sockname(listener);
  FdGuard client = new_socket(AF_INET);
  if (::connect(client.get(), addr.data(), addr.size()) != 0) fail_errno("connect");
  t.cancel();
  AcceptAfterCancel out;
  out.cancelled = co_await asyncio_test::ends_cancelled(t);
  AcceptedSocket acc = co_await asyncio::sock_accept(listener);
  FdGuard server(acc.fd);
  out.same_client = acc.address == sockname(client.get());
  co_return out;
}

TEST_P(Sockets, AcceptCancelledAsAClientConnectsLosesNoConnection) {
  FdGuard listener = tcp_listener(AF_INET);
  const AcceptAfterCancel r = run(cancel_accept_as_client_connects(listener.get()));
  EXPECT_TRUE(r.cancelled);
  EXPECT_TRUE(r.same_client);
}

struct TimedOut {
  bool timeout_error = false;
  double elapsed = -1;
  std::string next;
};

/// wait_for(sock_recv) times out (virtual time: the deadline is loop time); what is sent after
/// goes to the next receive.
Coro<TimedOut> recv_with_timeout(int a, int b) {
  TimedOut out;
  const double t0 = asyncio_test::now();
  try {
    (void)co_await asyncio::wait_for(asyncio::sock_recv(a, 100), 0.05);
  } catch (const asyncio::TimeoutError&) {
    out.timeout_error = true;
  }
  out.elapsed = asyncio_test::now() - t0;
  write_str(b, "after the time-out");
  out.next = co_await recv_exactly(a, 18);
  co_return out;
}

TEST_P(Sockets, WaitForRecvTimesOutAndLaterDataGoesToTheNextRecv) {
  SocketPair p;
  const TimedOut r = run(recv_with_timeout(p.a.get(), p.b.get()), true);
  EXPECT_TRUE(r.timeout_error);
  EXPECT_GE(r.elapsed, 0.05);
  EXPECT_LT(r.elapsed, 5.0);
  EXPECT_EQ(r.next, "after the time-out");
}

// =================================================================================================
// Many connections
// =================================================================================================

/// Echoes what `fd` receives until EOF.
Coro<void> echo(FdGuard fd) {
  for (int i = 0; i < 100000; ++i) {
    std::string data = co_await asyncio::sock_recv(fd.get(), 4096);
    if (data.empty()) co_return;
    co_await asyncio::sock_sendall(fd.get(), data);
  }
}

/// Accepts `n` connections, echoing on each in a task of its own; waits for all of them.
Coro<int> accept_and_echo(int listener, int n) {
  std::vector<Task<void>> handlers;
  for (int i = 0; i < n; ++i) {
    AcceptedSocket acc = co_await asyncio::sock_accept(listener);
    handlers.push_back(asyncio::create_task(echo(FdGuard(acc.fd))));
  }
  co_await asyncio_test::gather_all(std::move(handlers));
  co_return n;
}

Coro<bool> echo_client(SocketAddress addr, int i) {
  FdGuard fd = new_socket(addr.family());
  co_await asyncio::sock_connect(fd.get(), addr);
  const std::string msg = "client " + std::to_string(i) + " says " + std::string(i % 50, '!');
  co_await asyncio::sock_sendall(fd.get(), msg);
  const std::string got = co_await recv_exactly(fd.get(), msg.size());
  co_return got == msg;
}

Coro<int> many_clients(int listener, int n) {
  const SocketAddress addr = sockname(listener);
  Task<int> server = asyncio::create_task(accept_and_echo(listener, n));
  std::vector<Task<bool>> clients;
  for (int i = 0; i < n; ++i) clients.push_back(asyncio::create_task(echo_client(addr, i)));
  int ok = 0;
  for (Task<bool>& c : clients) ok += (co_await c) ? 1 : 0;
  EXPECT_EQ(co_await server, n);
  co_return ok;
}

TEST_P(Sockets, TwoHundredClientsAgainstOneAcceptLoopAllGetTheirEcho) {
  FdGuard listener = tcp_listener(AF_INET);
  EXPECT_EQ(run(many_clients(listener.get(), 200), false, 60.0), 200);
}

// =================================================================================================
// Virtual time and pending I/O
// =================================================================================================

struct Arrival {
  std::string data;
  double at = -1;
  bool timer_fired = true;
};

/// A receive waits on real I/O that a thread provides after 50 ms of real time, while a timer
/// is due in 10 virtual seconds: the loop must not jump over the pending I/O to the timer.
Coro<Arrival> recv_while_a_timer_waits(int a, int b, std::jthread* writer) {
  const double t0 = asyncio_test::now();
  auto fired = std::make_shared<bool>(false);
  asyncio::TimerHandle timer =
      asyncio::get_running_loop().call_later(10.0, [fired] { *fired = true; });
  Task<std::string> t = asyncio::create_task(asyncio::sock_recv(a, 100));
  co_await asyncio::sleep(0);
  *writer = std::jthread([b] {
    std::this_thread::sleep_for(50ms);
    write_str(b, "real data");
  });
  Arrival out;
  out.data = co_await t;
  out.at = asyncio_test::now() - t0;
  out.timer_fired = *fired;
  timer.cancel();
  co_return out;
}

// Was a bug: virtual time jumped over pending I/O whenever the engine's wait returned without
// making anything ready: LoopCore::poll_io (src/base_event_loop.cpp) took "nothing ready after
// the wait" for "the wait timed out" and set the clock to the next timer. Here (epoll) the fd
// was new to the engine: registering it reported an EPOLLOUT edge at once, the wait returned
// with it, and the clock jumped to the 10 s timer. Now the clock jumps only when the wait has
// lasted its whole time-out.
TEST_P(Sockets, VirtualTimeDoesNotJumpOverAPendingRecv) {
  SocketPair p;
  std::jthread writer;
  const Arrival r = run(recv_while_a_timer_waits(p.a.get(), p.b.get(), &writer), true);
  EXPECT_EQ(r.data, "real data");
  EXPECT_FALSE(r.timer_fired);
  EXPECT_LT(r.at, 10.0);
}

extern "C" void ignore_signal(int /*sig*/) {}

/// The same wait, with a signal (handled by a no-op handler, as a profiler's or a child
/// watcher's would be) interrupting the loop's wait after 20 ms; the data comes at 50 ms.
Coro<Arrival> recv_while_a_signal_interrupts(int a, int b, std::jthread* writer) {
  Task<std::string> first = asyncio::create_task(asyncio::sock_recv(a, 100));
  co_await yield_times(2);
  write_str(b, "warm");
  EXPECT_EQ(co_await first, "warm");
  const double t0 = asyncio_test::now();
  auto fired = std::make_shared<bool>(false);
  asyncio::TimerHandle timer =
      asyncio::get_running_loop().call_later(10.0, [fired] { *fired = true; });
  Task<std::string> t = asyncio::create_task(asyncio::sock_recv(a, 100));
  co_await asyncio::sleep(0);
  const pthread_t loop_thread = ::pthread_self();
  *writer = std::jthread([b, loop_thread] {
    std::this_thread::sleep_for(20ms);
    ::pthread_kill(loop_thread, SIGURG);
    std::this_thread::sleep_for(30ms);
    write_str(b, "real data");
  });
  Arrival out;
  out.data = co_await t;
  out.at = asyncio_test::now() - t0;
  out.timer_fired = *fired;
  timer.cancel();
  co_return out;
}

/// Installs a no-op handler (no SA_RESTART) for `sig`; restores the old one on destruction.
class NoopHandler {
 public:
  explicit NoopHandler(int sig) : sig_(sig) {
    struct sigaction sa {};
    sa.sa_handler = ignore_signal;  // NOLINT(cppcoreguidelines-pro-type-union-access)
    ::sigaction(sig, &sa, &old_);
  }
  NoopHandler(const NoopHandler&) = delete;
  NoopHandler& operator=(const NoopHandler&) = delete;
  ~NoopHandler() { ::sigaction(sig_, &old_, nullptr); }

 private:
  int sig_;
  struct sigaction old_ {};
};

// Was a bug (both engines): the same when a signal interrupts the engine's wait (epoll_wait or
// io_uring_enter: EINTR, which the seam turns into "no events"), as any handled signal does - a
// profiler's, a child watcher's, or io_uring's task-work notification (TIF_NOTIFY_SIGNAL) left
// by a ring closed earlier in the process, which made a first version of the test above flaky
// on epoll. The receive is warmed up first, so the epoll engine has no stale edge to report.
TEST_P(Sockets, VirtualTimeDoesNotJumpOverAPendingRecvWhenASignalInterruptsTheWait) {
  NoopHandler handler(SIGURG);
  SocketPair p;
  std::jthread writer;
  const Arrival r = run(recv_while_a_signal_interrupts(p.a.get(), p.b.get(), &writer), true);
  EXPECT_EQ(r.data, "real data");
  EXPECT_FALSE(r.timer_fired);
  EXPECT_LT(r.at, 10.0);
}

Coro<double> sleep_an_hour() {
  co_await asyncio::sleep(3600);
  co_return asyncio_test::now();
}

// The counterpart: with no I/O pending, virtual time jumps (so the test above is meaningful).
TEST_P(Sockets, VirtualTimeJumpsWhenNoIoIsPending) {
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_GE(run(sleep_an_hour(), true, 7200.0), 3600.0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

// =================================================================================================
// Readers, writers, signals, call_soon_threadsafe
// =================================================================================================

struct WatchCounts {
  int calls_while_watched = 0;
  int iterations = 0;
  bool removed = false;
  bool removed_again = true;
  int calls_after_removal = -1;
  std::string left;
};

/// A reader that never consumes is called at every iteration until removed; then never again.
Coro<WatchCounts> level_triggered_reader(int a, int b) {
  EventLoop& loop = asyncio::get_running_loop();
  auto calls = std::make_shared<int>(0);
  write_str(b, "x");
  loop.add_reader(a, [calls] { ++*calls; });
  WatchCounts out;
  while (*calls < 5 && out.iterations < 100) {
    co_await asyncio::sleep(0);
    ++out.iterations;
  }
  out.calls_while_watched = *calls;
  out.removed = loop.remove_reader(a);
  out.removed_again = loop.remove_reader(a);
  const int at_removal = *calls;
  co_await yield_times(10);
  out.calls_after_removal = *calls - at_removal;
  out.left = read_some(a);
  co_return out;
}

TEST_P(Sockets, AddReaderIsLevelTriggeredAndRemoveReaderStopsIt) {
  SocketPair p;
  const WatchCounts w = run(level_triggered_reader(p.a.get(), p.b.get()));
  EXPECT_GE(w.calls_while_watched, 5);
  EXPECT_LE(w.iterations, 12) << "the reader was not called again at (about) every iteration";
  EXPECT_TRUE(w.removed);
  EXPECT_FALSE(w.removed_again);
  EXPECT_EQ(w.calls_after_removal, 0);
  EXPECT_EQ(w.left, "x");  // the reader consumed nothing
}

/// A reader on a pipe that consumes: called once per write.
Coro<std::string> reader_on_a_pipe(int r, int w) {
  EventLoop& loop = asyncio::get_running_loop();
  auto got = std::make_shared<std::string>();
  loop.add_reader(r, [got, r] { *got += read_some(r); });
  write_str(w, "one ");
  for (int i = 0; i < 100 && got->size() < 4; ++i) co_await asyncio::sleep(0);
  write_str(w, "two");
  for (int i = 0; i < 100 && got->size() < 7; ++i) co_await asyncio::sleep(0);
  loop.remove_reader(r);
  co_return *got;
}

TEST_P(Sockets, AddReaderOnAPipeSeesEachWrite) {
  Pipe p;
  EXPECT_EQ(run(reader_on_a_pipe(p.r.get(), p.w.get())), "one two");
}

/// A writer on a writable socket is called at every iteration until removed.
Coro<WatchCounts> level_triggered_writer(int a) {
  EventLoop& loop = asyncio::get_running_loop();
  auto calls = std::make_shared<int>(0);
  loop.add_writer(a, [calls] { ++*calls; });
  WatchCounts out;
  while (*calls < 5 && out.iterations < 100) {
    co_await asyncio::sleep(0);
    ++out.iterations;
  }
  out.calls_while_watched = *calls;
  out.removed = loop.remove_writer(a);
  out.removed_again = loop.remove_writer(a);
  const int at_removal = *calls;
  co_await yield_times(10);
  out.calls_after_removal = *calls - at_removal;
  co_return out;
}

TEST_P(Sockets, AddWriterIsCalledWhileWritableAndRemoveWriterStopsIt) {
  SocketPair p;
  const WatchCounts w = run(level_triggered_writer(p.a.get()));
  EXPECT_GE(w.calls_while_watched, 5);
  EXPECT_LE(w.iterations, 12);
  EXPECT_TRUE(w.removed);
  EXPECT_FALSE(w.removed_again);
  EXPECT_EQ(w.calls_after_removal, 0);
}

/// A reader and a parked sock_recv on the same fd's peer: both work side by side.
Coro<std::string> reader_next_to_a_recv(int a, int b, int c, int d) {
  EventLoop& loop = asyncio::get_running_loop();
  auto got = std::make_shared<std::string>();
  loop.add_reader(c, [got, c] { *got += read_some(c); });
  Task<std::string> t = asyncio::create_task(asyncio::sock_recv(a, 100));
  co_await yield_times(2);
  write_str(d, "watched");
  write_str(b, "received");
  std::string r = co_await t;
  for (int i = 0; i < 100 && got->size() < 7; ++i) co_await asyncio::sleep(0);
  loop.remove_reader(c);
  co_return r + "+" + *got;
}

TEST_P(Sockets, ReadersAndSocketOperationsWorkSideBySide) {
  SocketPair p;
  SocketPair q;
  EXPECT_EQ(run(reader_next_to_a_recv(p.a.get(), p.b.get(), q.a.get(), q.b.get())),
            "received+watched");
}

void (*disposition(int sig))(int) {
  struct sigaction sa {};
  ::sigaction(sig, nullptr, &sa);
  return sa.sa_handler;  // NOLINT(cppcoreguidelines-pro-type-union-access)
}

Coro<int> raise_and_count(int sig) {
  EventLoop& loop = asyncio::get_running_loop();
  auto calls = std::make_shared<int>(0);
  loop.add_signal_handler(sig, [calls] { ++*calls; });
  ::raise(sig);
  for (int i = 0; i < 500 && *calls == 0; ++i) co_await asyncio::sleep(0.01);
  EXPECT_TRUE(loop.remove_signal_handler(sig));
  co_return *calls;
}

TEST_P(Sockets, SignalHandlerRunsWhenTheSignalIsRaised) {
  EXPECT_EQ(run(raise_and_count(SIGUSR1)), 1);
  EXPECT_EQ(disposition(SIGUSR1), SIG_DFL);
}

/// The loop is blocked in the engine's wait (a receive pending, nothing else to do) when a
/// thread sends the signal.
Coro<std::string> signal_while_blocked(int a, int b, std::jthread* sender) {
  EventLoop& loop = asyncio::get_running_loop();
  loop.add_signal_handler(SIGUSR2, [b] { write_str(b, "signalled"); });
  Task<std::string> t = asyncio::create_task(asyncio::sock_recv(a, 100));
  co_await asyncio::sleep(0);
  const pid_t pid = ::getpid();
  *sender = std::jthread([pid] {
    std::this_thread::sleep_for(50ms);
    ::kill(pid, SIGUSR2);
  });
  std::string got = co_await t;
  loop.remove_signal_handler(SIGUSR2);
  co_return got;
}

TEST_P(Sockets, SignalWakesALoopBlockedInIo) {
  SocketPair p;
  std::jthread sender;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(run(signal_while_blocked(p.a.get(), p.b.get(), &sender)), "signalled");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

/// The loop is blocked in the engine's wait (a receive pending) when another thread calls
/// call_soon_threadsafe; the callback completes a future the coroutine awaits.
Coro<int> woken_by_another_thread(int a, std::thread* poster) {
  EventLoop& loop = asyncio::get_running_loop();
  asyncio::Future<int> fut = loop.create_future<int>();
  Task<std::string> pending = asyncio::create_task(asyncio::sock_recv(a, 100));
  co_await asyncio::sleep(0);
  asyncio::Future<int>* target = &fut;
  *poster = std::thread([&loop, target] {
    std::this_thread::sleep_for(50ms);
    loop.call_soon_threadsafe([target] { target->set_result(42); });
  });
  const int v = co_await fut;
  poster->join();  // it has returned from call_soon_threadsafe: the loop may go
  pending.cancel();
  (void)co_await asyncio_test::ends_cancelled(pending);
  co_return v;
}

TEST_P(Sockets, CallSoonThreadsafeWakesALoopBlockedInIo) {
  SocketPair p;
  std::thread poster;
  const auto t0 = std::chrono::steady_clock::now();
  int v = 0;
  try {
    v = run(woken_by_another_thread(p.a.get(), &poster));
  } catch (...) {
    if (poster.joinable()) poster.join();
    throw;
  }
  if (poster.joinable()) poster.join();
  EXPECT_EQ(v, 42);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);  // woken, not timed out
}

// =================================================================================================
// Closing a loop with I/O pending
// =================================================================================================

// close() destroys the parked task: the op is taken back from the engine (io_uring: after the
// kernel let go of the buffer) and every frame is freed; LeakSanitizer and AddressSanitizer
// check the rest. Nothing was consumed from the socket.
TEST_P(Sockets, ClosingTheLoopWithARecvPendingFreesEverything) {
  SocketPair p;
  auto loop = asyncio::new_event_loop(options());
  ASSERT_EQ(asyncio::detail::io_of(*loop).backend(), GetParam());
  Task<std::string> t = loop->create_task(asyncio::sock_recv(p.a.get(), 100));
  loop->run_until_complete(yield_times(3));
  EXPECT_FALSE(t.done());
  EXPECT_GT(asyncio::detail::io_of(*loop).engine->in_flight(), 0U);
  loop->close();
  EXPECT_TRUE(loop->is_closed());
  EXPECT_TRUE(t.cancelled());
  write_str(p.b.get(), "after close");
  EXPECT_EQ(read_some(p.a.get()), "after close");
}

Coro<void> fill_and_sendall(int fd, const std::string* data) {
  co_await asyncio::sock_sendall(fd, *data);
}

TEST_P(Sockets, ClosingTheLoopWithSendallAndAcceptPendingFreesEverything) {
  SocketPair p;
  FdGuard listener = tcp_listener(AF_INET);
  const std::string data = pattern(8U * 1024 * 1024);  // more than the socket buffers hold
  auto loop = asyncio::new_event_loop(options());
  Task<void> sender = loop->create_task(fill_and_sendall(p.a.get(), &data));
  Task<AcceptedSocket> acceptor = loop->create_task(asyncio::sock_accept(listener.get()));
  loop->run_until_complete(yield_times(5));
  EXPECT_FALSE(sender.done());
  EXPECT_FALSE(acceptor.done());
  loop->close();
  EXPECT_TRUE(sender.cancelled());
  EXPECT_TRUE(acceptor.cancelled());
  // What was sent is a prefix of the data.
  std::string got;
  for (int i = 0; i < 100000; ++i) {
    std::string part = read_some(p.b.get(), 65536);
    if (part.empty()) break;
    got += part;
  }
  EXPECT_GT(got.size(), 0U);
  EXPECT_LT(got.size(), data.size());
  EXPECT_EQ(got, data.substr(0, got.size()));
}

INSTANTIATE_TEST_SUITE_P(Engines, Sockets, ::testing::Values(Backend::epoll, Backend::io_uring),
                         param_name);

}  // namespace
