// Fault tests of the stream layer (asyncio/streams.hpp over asyncio/transports.hpp): what
// open_connection, start_server, StreamReader and StreamWriter do when the network or the peer
// misbehaves, and when they are fed bad input - run on BOTH I/O engines (every TEST_P runs once
// with Backend::epoll and once with Backend::io_uring).
//
// What they pin down, whichever engine runs (Python 3.12's asyncio is the reference):
//   - a refused connection is ConnectionRefusedError;
//   - a peer that resets (SO_LINGER {1, 0}, then close) surfaces at drain() while writing
//     (ConnectionResetError or BrokenPipeError) and at read() while reading
//     (ConnectionResetError), on both sides; the server keeps serving its other clients;
//   - half-close works both ways;
//   - drain() holds a fast writer at the high-water mark while a slow reader takes 100 MB (the
//     transport's buffer never exceeds high-water mark + one write; every byte checked);
//   - readuntil() past the limit is LimitOverrunError and the data stays readable; readexactly()
//     at an early EOF is IncompleteReadError with `partial` and `expected`; readline() past the
//     limit is ValueError and the stream goes on;
//   - a client that never sends keeps its handler waiting until close() + close_clients();
//   - accept() failing with EMFILE (the syscall fault seam) is reported to the loop's exception
//     handler, the listener stays, and the server accepts again after the retry delay (1 s);
//   - cancelling a read or a drain loses nothing and leaves the stream usable;
//   - Server::close() leaves running handlers alone; wait_closed() returns once they finish;
//   - 1,000 clients connecting at once each get their echo.
//
// Every test runs under a time-out (kBound seconds of loop time), and checks that it leaked no
// fd (open_fds() before and after). Addresses are loopback, ports 0. Real-time waits appear only
// around real I/O, always bounded.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"
#include "engine_test.hpp"
#include "net_test.hpp"
#include "sys/sys.hpp"
#include "unix/loop_io.hpp"

namespace {

using asyncio_test::error_of;

using asyncio_test::engine_name;
using asyncio_test::io_uring_refused;
using asyncio_test::param_name;

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
using asyncio::StreamReader;
using asyncio::StreamWriter;
using asyncio::Task;
using asyncio_test::ends_cancelled;
using asyncio_test::FdGuard;
using asyncio_test::holds;
using asyncio_test::open_fds;
using asyncio_test::what_of;

/// Seconds of (loop) time after which a test's coroutine is cancelled (TimeoutError).
constexpr double kBound = 90.0;

// ---- Engines -----------------------------------------------------------------------------------

// ---- Data --------------------------------------------------------------------------------------

/// A block of pseudo-random bytes whose length is a prime (kPeriod) plus one write's worth, so
/// that the byte at stream offset k is period()[k % kPeriod]: a lost, duplicated or reordered
/// block of any power-of-two size shows up.
constexpr std::size_t kPeriod = 1'000'003;
constexpr std::size_t kChunk = 1 << 16;

const std::string& period() {
  static const std::string block = [] {
    std::string s(kPeriod + kChunk, '\0');
    std::mt19937 gen(12345);
    for (std::size_t i = 0; i < kPeriod; ++i) s[i] = static_cast<char>(gen() & 0xFF);
    for (std::size_t i = 0; i < kChunk; ++i) s[kPeriod + i] = s[i];
    return s;
  }();
  return block;
}

/// The `n` (<= kChunk) bytes of the stream at `offset`.
std::string_view stream_bytes(std::size_t offset, std::size_t n) {
  return std::string_view(period()).substr(offset % kPeriod, n);
}

/// Whether `got` is what the stream holds at `offset`.
bool matches(std::string_view got, std::size_t offset) {
  while (!got.empty()) {
    const std::size_t n = std::min(got.size(), kChunk);
    if (got.substr(0, n) != stream_bytes(offset, n)) return false;
    got.remove_prefix(n);
    offset += n;
  }
  return true;
}

/// Awaits `t` under a time-out of `seconds` (a Coro, so that error_of() can take it).
template <class T>
Coro<T> within(Task<T> t, double seconds) {
  co_return co_await asyncio::wait_for(t, seconds);
}

/// Reads until EOF (at most `max` bytes: a bound for tests).
Coro<std::string> read_to_eof(StreamReader r, std::size_t max = std::size_t{1} << 30) {
  std::string all;
  while (all.size() < max) {
    std::string part = co_await r.read(1 << 16);
    if (part.empty()) break;
    all += part;
  }
  co_return all;
}

Coro<void> yield_times(int n) {
  for (int i = 0; i < n; ++i) co_await sleep(0);
}

/// True when `e` holds the OSError that a reset peer causes on a write (ECONNRESET or EPIPE).
bool is_reset_or_broken_pipe(const std::exception_ptr& e) {
  return holds<asyncio::ConnectionResetError>(e) || holds<asyncio::BrokenPipeError>(e);
}

// ---- Options (assigned, not designated: g++ warns about the members a designated list omits) ---

ConnectionOptions client_limit(std::size_t limit) {
  ConnectionOptions o;
  o.limit = limit;
  return o;
}

ServerOptions backlog(int n) {
  ServerOptions o;
  o.backlog = n;
  return o;
}

// ---- Raw sockets (the misbehaving peers) -------------------------------------------------------

/// Makes the next close() of `fd` send RST instead of FIN: SO_LINGER {on, 0 s}.
void arm_reset(int fd) {
  linger lg{1, 0};
  if (::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) != 0) {
    throw std::system_error(errno, std::generic_category(), "SO_LINGER");
  }
}

/// Resets the connection on `fd`: SO_LINGER {1, 0}, then close.
void reset(FdGuard& fd) {
  arm_reset(fd.get());
  fd.reset();
}

/// A non-blocking TCP connection to 127.0.0.1:`port` with a small receive buffer (so a peer
/// that does not read fills up quickly).
FdGuard raw_connect(std::uint16_t port) {
  FdGuard s = asyncio_test::tcp_socket();
  const int small = 4096;
  ::setsockopt(s.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {  // NOLINT
    if (errno != EINPROGRESS) throw std::system_error(errno, std::generic_category(), "connect");
    pollfd p{s.get(), POLLOUT, 0};
    if (::poll(&p, 1, 5000) != 1) throw std::runtime_error("connect did not complete in 5 s");
  }
  return s;
}

/// Accepts one connection from a non-blocking listener, waiting (real time, bounded) for it.
Coro<FdGuard> raw_accept(int lfd) {
  for (int i = 0; i < 5000; ++i) {
    const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) co_return FdGuard(fd);
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      throw std::system_error(errno, std::generic_category(), "accept4");
    }
    co_await sleep(0.001);
  }
  throw std::runtime_error("no connection to accept within 5 s");
}

/// Receives from a non-blocking socket until `n` bytes came (real time, bounded).
Coro<std::string> raw_recv(int fd, std::size_t n) {
  std::string got;
  for (int i = 0; i < 5000 && got.size() < n; ++i) {
    char buf[4096];
    const ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - got.size()), MSG_DONTWAIT);
    if (r > 0) {
      got.append(buf, static_cast<std::size_t>(r));
      continue;
    }
    if (r == 0) break;
    co_await sleep(0.001);
  }
  co_return got;
}

// ---- Handlers (built in plain functions: no lambda is built inside a coroutine body) ----------

/// What handlers report to the test, shared between them and the test body.
struct Probe {
  Event connected;
  Event go;
  Event blocked;  // a handler's write buffer went above the high-water mark
  Event finished;
  int connections = 0;
  int finished_count = 0;
  std::string where;  // what the handler was doing when it failed: "read" or "drain"
  std::string received;
  std::vector<std::exception_ptr> errors;
  std::vector<StreamReader> readers;
  std::vector<StreamWriter> writers;
};
using ProbePtr = std::shared_ptr<Probe>;

/// Echoes every byte until EOF, then closes.
constexpr auto& echo = asyncio_test::stream_echo;

Coro<void> watched_echo_impl(StreamReader r, StreamWriter w, ProbePtr p) {
  ++p->connections;
  p->connected.set();
  try {
    for (;;) {
      p->where = "read";
      std::string data = co_await r.read(1 << 16);
      if (data.empty()) break;
      w.write(data);
      if (w.transport().get_write_buffer_size() > w.transport().get_write_buffer_limits().second) {
        p->blocked.set();
      }
      p->where = "drain";
      co_await w.drain();
    }
    p->where.clear();
  } catch (const std::exception&) {
    p->errors.push_back(std::current_exception());
  }
  ++p->finished_count;
  p->finished.set();
  w.close();
}
/// Echoes until EOF; records where it failed and with what, and when drain() has to wait.
ClientConnected watched_echo(ProbePtr p) {
  return [p](StreamReader r, StreamWriter w) {
    return watched_echo_impl(std::move(r), std::move(w), p);
  };
}

Coro<void> keep_streams_impl(StreamReader r, StreamWriter w, ProbePtr p) {
  p->readers.push_back(std::move(r));
  p->writers.push_back(std::move(w));
  ++p->connections;
  p->connected.set();
  co_return;
}
/// Hands both streams to the test (which then plays the server by hand) and returns.
ClientConnected keep_streams(ProbePtr p) {
  return [p](StreamReader r, StreamWriter w) {
    return keep_streams_impl(std::move(r), std::move(w), p);
  };
}

Coro<void> answer_after_eof_impl(StreamReader r, StreamWriter w, ProbePtr p) {
  p->received = co_await read_to_eof(r);
  p->where = r.at_eof() ? "eof" : "no eof";
  // The client's side is shut; ours still writes.
  w.write("got " + std::to_string(p->received.size()) + " bytes");
  co_await w.drain();
  w.close();
  ++p->finished_count;
  p->finished.set();
}
/// Reads until EOF, then answers "got N bytes" over the half-open connection and closes.
ClientConnected answer_after_eof(ProbePtr p) {
  return [p](StreamReader r, StreamWriter w) {
    return answer_after_eof_impl(std::move(r), std::move(w), p);
  };
}

Coro<void> eof_first_impl(StreamReader r, StreamWriter w, ProbePtr p) {
  w.write("from server");
  if (w.can_write_eof()) w.write_eof();
  p->received = co_await read_to_eof(r);
  w.close();
  ++p->finished_count;
  p->finished.set();
}
/// Sends, shuts its write side, then reads everything the client sends until EOF.
ClientConnected eof_first(ProbePtr p) {
  return
      [p](StreamReader r, StreamWriter w) { return eof_first_impl(std::move(r), std::move(w), p); };
}

Coro<void> slow_reader_impl(StreamReader r, StreamWriter w, ProbePtr p, std::size_t total) {
  std::size_t offset = 0;
  bool ok = true;
  int reads = 0;
  for (;;) {
    std::string part = co_await r.read(kChunk);
    if (part.empty()) break;
    if (ok && !matches(part, offset)) {
      ok = false;
      p->where = "mismatch in the block at offset " + std::to_string(offset);
    }
    offset += part.size();
    // Slow: a real-time nap every few reads lets the writer run far ahead.
    if (++reads % 4 == 0) co_await sleep(0.0005);
  }
  p->received = std::to_string(offset);
  if (ok && offset != total) p->where = "got " + std::to_string(offset) + " bytes";
  w.close();
  ++p->finished_count;
  p->finished.set();
}
/// Reads slowly until EOF, checking every byte against the stream pattern; the byte count in
/// probe->received, what went wrong (if anything) in probe->where.
ClientConnected slow_reader(ProbePtr p, std::size_t total) {
  return [p, total](StreamReader r, StreamWriter w) {
    return slow_reader_impl(std::move(r), std::move(w), p, total);
  };
}

Coro<void> idle_impl(StreamReader r, StreamWriter w, ProbePtr p) {
  ++p->connections;
  p->connected.set();
  try {
    p->received = co_await r.read(100);
    p->where = "returned";
  } catch (const std::exception&) {
    p->errors.push_back(std::current_exception());
  }
  (void)w;
  ++p->finished_count;
  p->finished.set();
}
/// Waits in one read(100); records what it returned (or the error).
ClientConnected idle(ProbePtr p) {
  return [p](StreamReader r, StreamWriter w) { return idle_impl(std::move(r), std::move(w), p); };
}

Coro<void> line_echo_counted_impl(StreamReader r, StreamWriter w, ProbePtr p) {
  ++p->connections;
  p->connected.set();
  for (;;) {
    std::string line = co_await r.readline();
    if (line.empty()) break;
    w.write(line);
    co_await w.drain();
  }
  w.close();
  co_await w.wait_closed();
  ++p->finished_count;
  p->finished.set();
}
/// Echoes line by line until EOF, closes, then counts itself finished.
ClientConnected line_echo_counted(ProbePtr p) {
  return [p](StreamReader r, StreamWriter w) {
    return line_echo_counted_impl(std::move(r), std::move(w), p);
  };
}

// ---- Clients -----------------------------------------------------------------------------------

/// One line echoed through the server at `port` (a fresh connection each time).
Coro<std::string> echo_once(std::uint16_t port, std::string line) {
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);
  writer.write(line);
  co_await writer.drain();
  std::string back = co_await reader.readexactly(line.size());
  writer.write_eof();
  std::string rest = co_await read_to_eof(reader);
  writer.close();
  co_await writer.wait_closed();
  co_return back + rest;
}

/// Writes the stream pattern in kChunk blocks, drain() after each one, until `total` bytes or a
/// failure or a cancellation; records what happened.
struct PumpState {
  std::size_t sent = 0;
  std::size_t max_buffered = 0;  // the transport's buffer right after a write, at most
  int suspended = 0;             // drains called above the high-water mark (they wait)
  bool in_drain = false;
  std::exception_ptr error;
};

Coro<void> pump(StreamWriter w, std::shared_ptr<PumpState> st, std::size_t total) {
  try {
    while (st->sent < total) {
      const std::size_t n = std::min(kChunk, total - st->sent);
      w.write(stream_bytes(st->sent, n));
      st->sent += n;
      const std::size_t buffered = w.transport().get_write_buffer_size();
      st->max_buffered = std::max(st->max_buffered, buffered);
      if (buffered > w.transport().get_write_buffer_limits().second) ++st->suspended;
      st->in_drain = true;
      co_await w.drain();
      st->in_drain = false;
    }
  } catch (const std::exception&) {
    st->error = std::current_exception();
  }
  st->in_drain = false;
}

/// Waits (loop time, bounded) until `pred` holds.
template <class Pred>
Coro<bool> eventually(Pred pred, double limit = 10.0) {
  const double deadline = asyncio::get_running_loop().time() + limit;
  while (!pred()) {
    if (asyncio::get_running_loop().time() > deadline) co_return pred();
    co_await sleep(0.001);
  }
  co_return true;
}

// ---- The fixture -------------------------------------------------------------------------------

class StreamFaults : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::io_uring) {
      if (auto why = io_uring_refused()) GTEST_SKIP() << "io_uring is not available: " << *why;
    }
  }
  void TearDown() override { asyncio::sys::clear_faults(); }

  /// asyncio::run(main) on the engine under test, bounded by kBound seconds; checks that no fd
  /// was leaked.
  void run(Coro<void> main) {
    const std::size_t before = open_fds();
    asyncio::run(asyncio_test::bounded_on_engine(std::move(main), GetParam(), kBound),
                 RunOptions{.backend = GetParam()});
    EXPECT_EQ(open_fds(), before) << "fds leaked";
  }
};

Coro<void> close_server(Server& server) {
  server.close();
  co_await server.wait_closed();
}

// =================================================================================================
// Connecting
// =================================================================================================

// A port with a bound socket that does not listen: nothing can race us for it.
Coro<void> refused() {
  FdGuard holder = asyncio_test::tcp_socket();
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(holder.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);     // NOLINT
  EXPECT_EQ(::getsockname(holder.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);  // NOLINT
  const std::uint16_t port = ntohs(a.sin_port);
  const std::exception_ptr e = co_await error_of(asyncio::open_connection("127.0.0.1", port));
  EXPECT_TRUE(holds<asyncio::ConnectionRefusedError>(e)) << what_of(e);
  try {
    if (e) std::rethrow_exception(e);
  } catch (const std::system_error& ex) {
    EXPECT_EQ(ex.code().value(), ECONNREFUSED);
  }
}

TEST_P(StreamFaults, ConnectionRefusedIsConnectionRefusedError) {
  run(refused());
}

// =================================================================================================
// A peer that resets the connection
// =================================================================================================

// The server's handler is stuck in drain() (its client sends without reading); the client
// resets; drain() raises; other clients are still served.
Coro<void> reset_while_server_drains() {
  auto p = std::make_shared<Probe>();
  Server server = co_await asyncio::start_server(watched_echo(p), "127.0.0.1", 0);
  FdGuard raw = raw_connect(server.port());
  const std::string_view block = stream_bytes(0, kChunk);
  for (int i = 0; i < 10000 && !p->blocked.is_set(); ++i) {
    (void)::send(raw.get(), block.data(), block.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    co_await sleep(0.001);
  }
  EXPECT_TRUE(p->blocked.is_set()) << "the echo handler's drain() never had to wait";
  EXPECT_TRUE(co_await eventually([&] { return p->where == "drain"; }));
  reset(raw);
  co_await asyncio::wait_for(p->finished.wait(), 10.0);
  EXPECT_EQ(p->where, "drain") << "the error did not surface at drain()";
  EXPECT_EQ(p->errors.size(), 1U);
  if (!p->errors.empty()) {
    EXPECT_TRUE(is_reset_or_broken_pipe(p->errors[0])) << what_of(p->errors[0]);
    EXPECT_TRUE(holds<asyncio::OSError>(p->errors[0]));
  }
  // The server goes on serving.
  EXPECT_TRUE(server.is_serving());
  EXPECT_EQ(co_await echo_once(server.port(), "still serving\n"), "still serving\n");
  co_await close_server(server);
}

TEST_P(StreamFaults, PeerResetWhileTheServerDrainsSurfacesAtDrain) {
  run(reset_while_server_drains());
}

// The server's handler waits in read(); the client resets; read() raises ConnectionResetError.
Coro<void> reset_while_server_reads() {
  auto p = std::make_shared<Probe>();
  Server server = co_await asyncio::start_server(watched_echo(p), "127.0.0.1", 0);
  FdGuard raw = raw_connect(server.port());
  EXPECT_EQ(::send(raw.get(), "abc", 3, MSG_NOSIGNAL), 3);
  EXPECT_EQ(co_await raw_recv(raw.get(), 3), "abc");  // echoed: the handler reads again
  EXPECT_TRUE(co_await eventually([&] { return p->where == "read"; }));
  co_await yield_times(3);
  reset(raw);
  co_await asyncio::wait_for(p->finished.wait(), 10.0);
  EXPECT_EQ(p->where, "read");
  EXPECT_EQ(p->errors.size(), 1U);
  if (!p->errors.empty()) {
    EXPECT_TRUE(holds<asyncio::ConnectionResetError>(p->errors[0])) << what_of(p->errors[0]);
  }
  // Two more clients, one after the other, are still served.
  EXPECT_EQ(co_await echo_once(server.port(), "first\n"), "first\n");
  EXPECT_EQ(co_await echo_once(server.port(), "second\n"), "second\n");
  EXPECT_EQ(p->connections, 3);
  co_await close_server(server);
}

TEST_P(StreamFaults, PeerResetWhileTheServerReadsIsConnectionResetError) {
  run(reset_while_server_reads());
}

// Several clients, one resets in the middle: the others keep their echoes.
Coro<void> reset_one_of_many() {
  auto p = std::make_shared<Probe>();
  Server server = co_await asyncio::start_server(watched_echo(p), "127.0.0.1", 0);
  auto [r1, w1] = co_await asyncio::open_connection("127.0.0.1", server.port());
  FdGuard raw = raw_connect(server.port());
  auto [r2, w2] = co_await asyncio::open_connection("127.0.0.1", server.port());
  w1.write("one ");
  w2.write("two ");
  EXPECT_EQ(::send(raw.get(), "raw ", 4, MSG_NOSIGNAL), 4);
  EXPECT_EQ(co_await r1.readexactly(4), "one ");
  EXPECT_EQ(co_await r2.readexactly(4), "two ");
  EXPECT_EQ(co_await raw_recv(raw.get(), 4), "raw ");
  reset(raw);
  co_await asyncio::wait_for(p->finished.wait(), 10.0);
  EXPECT_EQ(p->finished_count, 1);
  w1.write("again");
  w2.write("again");
  EXPECT_EQ(co_await r1.readexactly(5), "again");
  EXPECT_EQ(co_await r2.readexactly(5), "again");
  w1.close();
  w2.close();
  co_await w1.wait_closed();
  co_await w2.wait_closed();
  co_await close_server(server);
  EXPECT_EQ(p->finished_count, 3);
  EXPECT_EQ(p->errors.size(), 1U);
}

TEST_P(StreamFaults, PeerResetOfOneClientLeavesTheOthersServed) {
  run(reset_one_of_many());
}

// Our client drains against a peer that does not read; the peer resets: drain() raises.
Coro<void> reset_while_client_drains() {
  asyncio_test::Listener listener;
  const int small = 4096;
  ::setsockopt(listener.fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", listener.port);
  FdGuard peer = co_await raw_accept(listener.fd.get());
  auto st = std::make_shared<PumpState>();
  Task<void> pumping = create_task(pump(writer, st, std::size_t{1} << 30));
  EXPECT_TRUE(co_await eventually([&] { return st->suspended > 0 && st->in_drain; }));
  EXPECT_FALSE(pumping.done());
  reset(peer);
  co_await asyncio::wait_for(pumping, 10.0);
  EXPECT_TRUE(st->error != nullptr) << "drain() returned normally after a reset";
  EXPECT_TRUE(is_reset_or_broken_pipe(st->error)) << what_of(st->error);
  EXPECT_LT(st->sent, std::size_t{1} << 30);
  // The reader sees the failure too.
  const std::exception_ptr e = co_await error_of(reader.read(10));
  EXPECT_TRUE(e == nullptr || holds<asyncio::OSError>(e)) << what_of(e);
  writer.close();
  (void)co_await error_of(writer.wait_closed());
}

TEST_P(StreamFaults, PeerResetWhileTheClientDrainsSurfacesAtDrain) {
  run(reset_while_client_drains());
}

// Our client waits in read(); the peer resets: read() raises ConnectionResetError.
Coro<void> reset_while_client_reads() {
  asyncio_test::Listener listener;
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", listener.port);
  FdGuard peer = co_await raw_accept(listener.fd.get());
  Task<std::string> reading = create_task(reader.read(100));
  co_await yield_times(5);
  EXPECT_FALSE(reading.done());
  reset(peer);
  const std::exception_ptr e = co_await error_of(within(reading, 10.0));
  EXPECT_TRUE(holds<asyncio::ConnectionResetError>(e)) << what_of(e);
  // Later reads fail the same way; wait_closed() reports the error (Python re-raises it too).
  EXPECT_TRUE(holds<asyncio::ConnectionResetError>(co_await error_of(reader.read(100))));
  writer.close();
  const std::exception_ptr closed = co_await error_of(writer.wait_closed());
  EXPECT_TRUE(closed == nullptr || holds<asyncio::ConnectionResetError>(closed)) << what_of(closed);
}

TEST_P(StreamFaults, PeerResetWhileTheClientReadsIsConnectionResetError) {
  run(reset_while_client_reads());
}

// =================================================================================================
// Half-close
// =================================================================================================

Coro<void> client_half_close() {
  auto p = std::make_shared<Probe>();
  Server server = co_await asyncio::start_server(answer_after_eof(p), "127.0.0.1", 0);
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
  EXPECT_TRUE(writer.can_write_eof());
  writer.write("0123456789");
  writer.write_eof();
  EXPECT_EQ(co_await read_to_eof(reader), "got 10 bytes");
  EXPECT_TRUE(reader.at_eof());
  co_await asyncio::wait_for(p->finished.wait(), 10.0);
  EXPECT_EQ(p->received, "0123456789");
  EXPECT_EQ(p->where, "eof");
  writer.close();
  co_await writer.wait_closed();
  co_await close_server(server);
}

TEST_P(StreamFaults, ClientWriteEofServerStillAnswers) {
  run(client_half_close());
}

Coro<void> server_half_close() {
  auto p = std::make_shared<Probe>();
  Server server = co_await asyncio::start_server(eof_first(p), "127.0.0.1", 0);
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
  EXPECT_EQ(co_await read_to_eof(reader), "from server");
  EXPECT_TRUE(reader.at_eof());
  EXPECT_FALSE(writer.is_closing());
  // Our side still writes, in several pieces, and the server reads them all.
  for (int i = 0; i < 100; ++i) {
    writer.write("line " + std::to_string(i) + "\n");
    co_await writer.drain();
  }
  writer.write_eof();
  co_await asyncio::wait_for(p->finished.wait(), 10.0);
  std::string want;
  for (int i = 0; i < 100; ++i) want += "line " + std::to_string(i) + "\n";
  EXPECT_EQ(p->received, want);
  writer.close();
  co_await writer.wait_closed();
  co_await close_server(server);
}

TEST_P(StreamFaults, ServerWriteEofClientStillSends) {
  run(server_half_close());
}

// =================================================================================================
// Back-pressure: a slow reader
// =================================================================================================

Coro<void> slow_reader_bounded(std::size_t total) {
  auto p = std::make_shared<Probe>();
  Server server = co_await asyncio::start_server(slow_reader(p, total), "127.0.0.1", 0);
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
  const std::size_t high = writer.transport().get_write_buffer_limits().second;
  auto st = std::make_shared<PumpState>();
  co_await pump(writer, st, total);
  EXPECT_EQ(st->error, nullptr) << what_of(st->error);
  EXPECT_EQ(st->sent, total);
  EXPECT_LE(st->max_buffered, high + kChunk) << "the transport's buffer was not bounded";
  EXPECT_GT(st->suspended, 0) << "drain() never had to wait: the reader was not slow";
  writer.write_eof();
  co_await asyncio::wait_for(p->finished.wait(), 60.0);
  EXPECT_EQ(p->where, "");
  EXPECT_EQ(p->received, std::to_string(total));
  EXPECT_EQ(co_await read_to_eof(reader), "");
  writer.close();
  co_await writer.wait_closed();
  co_await close_server(server);
}

TEST_P(StreamFaults, DrainBoundsTheBufferWhileASlowReaderTakes100MB) {
  run(slow_reader_bounded(std::size_t{100} << 20));
}

// =================================================================================================
// Bad input: limits and early EOF
// =================================================================================================

Coro<void> readuntil_past_limit() {
  auto p = std::make_shared<Probe>();
  Server server = co_await asyncio::start_server(keep_streams(p), "127.0.0.1", 0);
  // Options as a named variable, never a temporary inside a co_await expression (g++ 12).
  const ConnectionOptions small_limit = client_limit(1024);
  auto [reader, writer] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), small_limit);
  co_await p->connected.wait();
  const std::string xs(3000, 'x');
  p->writers[0].write(xs);
  bool overrun = false;
  try {
    (void)co_await reader.readuntil("!");
  } catch (const asyncio::LimitOverrunError& e) {
    overrun = true;
    EXPECT_GT(e.consumed, 1024U - 1);
  }
  EXPECT_TRUE(overrun);
  EXPECT_GT(reader.buffered(), 1024U) << "the data did not stay in the buffer";
  // Every byte is still there.
  EXPECT_EQ(co_await reader.readexactly(3000), xs);
  p->writers[0].write("tail!");
  EXPECT_EQ(co_await reader.readuntil("!"), "tail!");
  // A separator beyond the limit, all in the buffer: LimitOverrunError again, data kept.
  const std::string long_chunk = std::string(2000, 'y') + "!";
  p->writers[0].write(long_chunk);
  EXPECT_EQ(co_await reader.readexactly(1), "y");
  const std::exception_ptr e = co_await error_of(reader.readuntil("!"));
  EXPECT_TRUE(holds<asyncio::LimitOverrunError>(e)) << what_of(e);
  EXPECT_EQ(co_await reader.readexactly(2000), long_chunk.substr(1));
  writer.close();
  co_await writer.wait_closed();
  p->writers.clear();
  co_await close_server(server);
}

TEST_P(StreamFaults, ReaduntilPastTheLimitIsLimitOverrunErrorAndTheDataStays) {
  run(readuntil_past_limit());
}

Coro<void> readexactly_early_eof() {
  auto p = std::make_shared<Probe>();
  Server server = co_await asyncio::start_server(keep_streams(p), "127.0.0.1", 0);
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
  co_await p->connected.wait();
  p->writers[0].write("0123456789");
  p->writers[0].close();
  p->writers.clear();
  std::optional<asyncio::IncompleteReadError> got;
  try {
    (void)co_await reader.readexactly(100);
  } catch (const asyncio::IncompleteReadError& e) {
    got = e;
  }
  EXPECT_TRUE(got.has_value()) << "readexactly() did not raise IncompleteReadError";
  if (got) {
    EXPECT_EQ(got->partial, "0123456789");
    EXPECT_EQ(got->expected, std::optional<std::size_t>(100));
  }
  EXPECT_TRUE(reader.at_eof());
  EXPECT_EQ(co_await reader.read(), "");
  writer.close();
  co_await writer.wait_closed();
  co_await close_server(server);
}

TEST_P(StreamFaults, ReadexactlyAtAnEarlyEofIsIncompleteReadError) {
  run(readexactly_early_eof());
}

Coro<void> readline_past_limit() {
  auto p = std::make_shared<Probe>();
  Server server = co_await asyncio::start_server(keep_streams(p), "127.0.0.1", 0);
  // Options as a named variable, never a temporary inside a co_await expression (g++ 12).
  const ConnectionOptions small_limit = client_limit(1024);
  auto [reader, writer] =
      co_await asyncio::open_connection("127.0.0.1", server.port(), small_limit);
  co_await p->connected.wait();
  p->writers[0].write(std::string(2000, 'y') + "\nnext\n");
  const std::exception_ptr e = co_await error_of(reader.readline());
  EXPECT_TRUE(holds<asyncio::ValueError>(e)) << what_of(e);
  // The stream goes on: the rest of the long line (if it came after the error) is only 'y's,
  // then "next\n".
  std::string line;
  for (int i = 0; i < 3 && line != "next\n"; ++i) {
    line = co_await reader.readline();
    if (line != "next\n") {
      EXPECT_TRUE(line.ends_with("\n") && line.find_first_not_of('y') == line.size() - 1) << line;
    }
  }
  EXPECT_EQ(line, "next\n");
  p->writers[0].write("after\n");
  EXPECT_EQ(co_await reader.readline(), "after\n");
  writer.close();
  co_await writer.wait_closed();
  p->writers.clear();
  co_await close_server(server);
}

TEST_P(StreamFaults, ReadlinePastTheLimitIsValueErrorAndTheStreamGoesOn) {
  run(readline_past_limit());
}

// =================================================================================================
// A client that never sends
// =================================================================================================

Coro<void> silent_client() {
  auto p = std::make_shared<Probe>();
  Server server = co_await asyncio::start_server(idle(p), "127.0.0.1", 0);
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
  co_await p->connected.wait();
  co_await sleep(0.1);  // real time: the handler stays in read()
  EXPECT_EQ(p->finished_count, 0);
  server.close();
  EXPECT_FALSE(server.is_serving());
  co_await yield_times(5);
  EXPECT_EQ(p->finished_count, 0) << "close() alone must leave the connection alone";
  server.close_clients();
  co_await asyncio::wait_for(server.wait_closed(), 10.0);
  co_await asyncio::wait_for(p->finished.wait(), 10.0);
  // The handler's read ended with EOF (the connection was closed under it), as in Python.
  EXPECT_EQ(p->where, "returned");
  EXPECT_EQ(p->received, "");
  EXPECT_TRUE(p->errors.empty()) << what_of(p->errors.empty() ? nullptr : p->errors[0]);
  // The client sees the server's end go.
  EXPECT_EQ(co_await asyncio::wait_for(reader.read(), 10.0), "");
  writer.close();
  co_await writer.wait_closed();
}

TEST_P(StreamFaults, ASilentClientWaitsUntilCloseClients) {
  run(silent_client());
}

// =================================================================================================
// accept() out of file descriptors
// =================================================================================================

// Known failure on epoll when this was written: after the back-off the listener parks an
// edge-triggered poll_in without having seen EAGAIN, so the connection already queued during the
// failure gets no new edge and waits until another client arrives (Python re-adds a
// level-triggered reader and accepts it at once). io_uring passes.
Coro<void> accept_emfile() {
  asyncio_test::RecordingHandler handler;
  Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
  const std::vector<int> listeners = server.sockets();
  EXPECT_FALSE(listeners.empty());
  asyncio::sys::Fault fault{};
  fault.call = asyncio::sys::Call::accept;
  fault.error = EMFILE;
  asyncio::sys::inject_fault(fault);
  const double start = asyncio::get_running_loop().time();
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
  writer.write("ping");
  co_await writer.drain();
  // The first accept() fails: reported, then a pause of 1 s; then the connection is served.
  EXPECT_TRUE(co_await eventually([&] { return !handler.empty(); }));
  EXPECT_EQ(handler.size(), 1U);
  if (handler.empty()) co_return;
  const asyncio::ExceptionContext ctx = handler.at(0);
  EXPECT_NE(ctx.message.find("out of system resource"), std::string::npos) << ctx.message;
  EXPECT_TRUE(holds<asyncio::OSError>(ctx.exception)) << what_of(ctx.exception);
  try {
    if (ctx.exception) std::rethrow_exception(ctx.exception);
  } catch (const std::system_error& ex) {
    EXPECT_EQ(ex.code().value(), EMFILE);
  }
  EXPECT_TRUE(server.is_serving());
  EXPECT_EQ(server.sockets(), listeners) << "the listener was not kept";
  // The connection that was pending during the failure is accepted after the delay (Python
  // re-adds the listener's reader after ACCEPT_RETRY_DELAY, and the pending connection makes it
  // ready at once).
  std::string echoed;
  bool stuck = false;
  try {
    echoed = co_await asyncio::wait_for(reader.readexactly(4), 6.0);
  } catch (const asyncio::TimeoutError&) {
    stuck = true;
  }
  EXPECT_FALSE(stuck) << "the connection pending in the backlog during the EMFILE was not "
                         "accepted within 6 s: the listener did not accept again after the "
                         "retry delay";
  if (!stuck) {
    EXPECT_EQ(echoed, "ping");
    const double waited = asyncio::get_running_loop().time() - start;
    EXPECT_GE(waited, 0.9) << "accepted again before the retry delay";
  }
  // A new client is served (and, when the first connection was stuck, unsticks it).
  EXPECT_EQ(co_await echo_once(server.port(), "pong\n"), "pong\n");
  if (stuck) {
    EXPECT_EQ(co_await asyncio::wait_for(reader.readexactly(4), 6.0), "ping");
  }
  EXPECT_EQ(handler.size(), 1U);
  writer.close();
  co_await writer.wait_closed();
  co_await close_server(server);
}

TEST_P(StreamFaults, AcceptOutOfFdsIsReportedAndRetriedAfterTheDelay) {
  run(accept_emfile());
}

// =================================================================================================
// Cancellation
// =================================================================================================

Coro<void> cancelled_read() {
  auto p = std::make_shared<Probe>();
  Server server = co_await asyncio::start_server(keep_streams(p), "127.0.0.1", 0);
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
  co_await p->connected.wait();
  const StreamWriter& server_side = p->writers[0];
  // Cancelled while parked, nothing buffered: the bytes sent afterwards all arrive.
  Task<std::string> t = create_task(reader.read(100));
  co_await yield_times(5);
  EXPECT_FALSE(t.done());
  t.cancel();
  EXPECT_TRUE(co_await ends_cancelled(t));
  server_side.write("0123456789");
  EXPECT_EQ(co_await reader.readexactly(10), "0123456789");
  // Cancelled as data comes (the read may have won the race or not): nothing is lost.
  std::string all_sent;
  std::string all_got;
  for (int round = 0; round < 50; ++round) {
    const std::string msg = "round " + std::to_string(round) + ";";
    all_sent += msg;
    Task<std::string> r = create_task(reader.readexactly(msg.size()));
    co_await yield_times(round % 3);
    server_side.write(msg);
    for (int i = 0; i < 5000 && !r.done() && reader.buffered() == 0; ++i) {
      co_await sleep(i < 10 ? 0.0 : 0.0002);
    }
    r.cancel();
    std::string got;
    try {
      got = co_await r;
    } catch (const asyncio::CancelledError&) {  // NOLINT(bugprone-empty-catch): read again
    }
    if (got.size() < msg.size()) got += co_await reader.readexactly(msg.size() - got.size());
    all_got += got;
  }
  EXPECT_EQ(all_got, all_sent);
  EXPECT_EQ(reader.buffered(), 0U);
  writer.close();
  co_await writer.wait_closed();
  p->writers.clear();
  co_await close_server(server);
}

TEST_P(StreamFaults, CancellingABlockedReadLosesNothing) {
  run(cancelled_read());
}

Coro<void> cancelled_drain() {
  auto p = std::make_shared<Probe>();
  Server server = co_await asyncio::start_server(keep_streams(p), "127.0.0.1", 0);
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", server.port());
  co_await p->connected.wait();
  // The server does not read yet: the client's drain() waits; cancel it there.
  auto st = std::make_shared<PumpState>();
  Task<void> pumping = create_task(pump(writer, st, std::size_t{1} << 30));
  EXPECT_TRUE(co_await eventually([&] { return st->suspended > 0 && st->in_drain; }));
  pumping.cancel();
  EXPECT_TRUE(co_await ends_cancelled(pumping));
  EXPECT_EQ(st->error, nullptr) << what_of(st->error);
  const std::size_t first = st->sent;
  // The writer is usable, and not corrupt: everything written comes out once, in order.
  EXPECT_FALSE(writer.is_closing());
  Task<std::string> server_reads = create_task(read_to_eof(p->readers[0]));
  auto more = std::make_shared<PumpState>();
  more->sent = first;  // carries on with the pattern where the cancelled pump stopped
  co_await pump(writer, more, first + (std::size_t{4} << 20));
  EXPECT_EQ(more->error, nullptr) << what_of(more->error);
  writer.write_eof();
  const std::string got = co_await asyncio::wait_for(server_reads, 30.0);
  EXPECT_EQ(got.size(), more->sent);
  EXPECT_TRUE(matches(got, 0)) << "the bytes were corrupted by the cancelled drain()";
  writer.close();
  co_await writer.wait_closed();
  p->writers.clear();
  co_await close_server(server);
}

TEST_P(StreamFaults, CancellingABlockedDrainLeavesTheWriterUsable) {
  run(cancelled_drain());
}

// =================================================================================================
// Closing a server while its handlers run
// =================================================================================================

Coro<void> close_with_running_handlers() {
  auto p = std::make_shared<Probe>();
  Server server = co_await asyncio::start_server(line_echo_counted(p), "127.0.0.1", 0);
  const std::uint16_t port = server.port();
  std::vector<StreamReader> readers;
  std::vector<StreamWriter> writers;
  for (int i = 0; i < 3; ++i) {
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", port);
    readers.push_back(r);
    writers.push_back(w);
    w.write("hello " + std::to_string(i) + "\n");
    EXPECT_EQ(co_await r.readline(), "hello " + std::to_string(i) + "\n");
  }
  server.close();
  EXPECT_FALSE(server.is_serving());
  Task<void> closed = create_task(server.wait_closed());
  co_await yield_times(5);
  // No new connection is accepted.
  const std::exception_ptr refused = co_await error_of(asyncio::open_connection("127.0.0.1", port));
  EXPECT_TRUE(holds<asyncio::ConnectionRefusedError>(refused)) << what_of(refused);
  // The handlers go on serving their connections.
  for (std::size_t i = 0; i < 3; ++i) {
    writers[i].write("still here\n");
    EXPECT_EQ(co_await readers[i].readline(), "still here\n");
  }
  EXPECT_FALSE(closed.done());
  // They finish one by one; wait_closed() returns after the last.
  for (std::size_t i = 0; i < 3; ++i) {
    writers[i].write_eof();
    EXPECT_EQ(co_await readers[i].read(), "");
    writers[i].close();
    co_await writers[i].wait_closed();
    const int want = static_cast<int>(i) + 1;
    EXPECT_TRUE(co_await eventually([&] { return p->finished_count == want; }));
    if (i < 2) {
      co_await yield_times(5);
      EXPECT_FALSE(closed.done()) << "wait_closed() returned with " << 2 - i << " handlers left";
    }
  }
  co_await asyncio::wait_for(closed, 10.0);
  EXPECT_EQ(p->finished_count, 3);
  EXPECT_EQ(p->connections, 3);
}

TEST_P(StreamFaults, ServerCloseLetsRunningHandlersFinish) {
  run(close_with_running_handlers());
}

// =================================================================================================
// Many clients at once
// =================================================================================================

/// Raises RLIMIT_NOFILE's soft limit for the scope of a test; restores it afterwards.
class NofileLimit {
 public:
  NofileLimit() { ::getrlimit(RLIMIT_NOFILE, &old_); }
  NofileLimit(const NofileLimit&) = delete;
  NofileLimit& operator=(const NofileLimit&) = delete;
  ~NofileLimit() { ::setrlimit(RLIMIT_NOFILE, &old_); }
  [[nodiscard]] rlim_t hard() const { return old_.rlim_max; }
  /// Raises the soft limit to at least `want` (never above the hard limit); true when it is.
  bool raise_to(rlim_t want) {
    if (old_.rlim_cur != RLIM_INFINITY && old_.rlim_cur >= want) return true;
    if (old_.rlim_cur == RLIM_INFINITY) return true;
    rlimit r = old_;
    r.rlim_cur = old_.rlim_max == RLIM_INFINITY ? want : std::min<rlim_t>(old_.rlim_max, 65536);
    return ::setrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur >= want;
  }

 private:
  rlimit old_{};
};

Coro<std::string> one_client(std::uint16_t port, int id) {
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);
  const std::string line = "client " + std::to_string(id) + "\n";
  writer.write(line);
  co_await writer.drain();
  std::string back = co_await reader.readline();
  writer.write_eof();
  back += co_await read_to_eof(reader);
  writer.close();
  co_await writer.wait_closed();
  co_return back;
}

Coro<void> thousand_clients(int n) {
  auto p = std::make_shared<Probe>();
  const ServerOptions options = backlog(n + 24);  // every client fits in the accept queue
  Server server = co_await asyncio::start_server(line_echo_counted(p), "127.0.0.1", 0, options);
  std::vector<Task<std::string>> clients;
  clients.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) clients.push_back(create_task(one_client(server.port(), i)));
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    const std::string got = co_await clients[static_cast<std::size_t>(i)];
    if (got == "client " + std::to_string(i) + "\n") {
      ++ok;
    } else {
      ADD_FAILURE() << "client " << i << " got [" << got << "]";
    }
  }
  EXPECT_EQ(ok, n);
  EXPECT_TRUE(co_await eventually([&] { return p->finished_count == n; }, 30.0));
  EXPECT_EQ(p->connections, n);
  co_await close_server(server);
}

TEST_P(StreamFaults, AThousandClientsAtOnceEachGetTheirEcho) {
  constexpr int kClients = 1000;
  NofileLimit limit;
  if (limit.hard() != RLIM_INFINITY && limit.hard() < 2300) {
    GTEST_SKIP() << "RLIMIT_NOFILE's hard limit is " << limit.hard()
                 << ": 1,000 clients and their server connections need about 2,300 fds";
  }
  ASSERT_TRUE(limit.raise_to(2300)) << "cannot raise RLIMIT_NOFILE's soft limit";
  run(thousand_clients(kClients));
}

INSTANTIATE_TEST_SUITE_P(Engines, StreamFaults,
                         ::testing::Values(Backend::epoll, Backend::io_uring), param_name);

}  // namespace
