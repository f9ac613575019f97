// The cancellation contract of the socket operations (include/asyncio/sockets.hpp,
// src/unix/io_await.hpp), on both I/O engines:
//   * a cancelled operation stays parked until the engine confirms that the kernel let go of it
//     (epoll: at once; io_uring: when the CQE of the cancelled op comes back);
//   * a cancelled receive consumes no data: bytes the kernel handed over anyway are returned by
//     the next receive on that fd, in order (LoopIo's stash);
//   * a cancelled accept loses no connection;
//   * no byte is dropped and no fd leaked, whichever engine runs.
//
// The windows a cancellation can hit, for one receive R on an fd:
//
//     create_task(R)        R runs: submit     loop polls: op completes      R resumes
//   --------|-----------------------|---------------------------|------------------|----->
//      (1) before its first step  (2) submitted, not polled  (3) in flight   (4) completed,
//                                                                                not resumed
// (1) the body never runs; (2) on epoll the op is unlinked at once, on io_uring the SQE and its
// ASYNC_CANCEL go in the same batch, and the recv may still get data; (3) parked; (4) the
// result is there but the task sees CancelledError: its bytes go to the stash.
//
// The window tests queue a callback before the poll that completes the op, so they rely on the
// ready queue's documented FIFO order (they skip themselves in shuffle mode, ASYNCIO_SHUFFLE).
// A receive expected to find bytes is bounded in real time (recv_bounded): a lost byte fails
// the test with TimeoutError instead of hanging it.
//
// Every loop is bounded, real-time waits only surround real I/O, sockets are on 127.0.0.1 port 0
// or socketpairs, and every fd is owned by an RAII guard.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "asyncio_test.hpp"
#include "net_test.hpp"
#include "sys/sys.hpp"
#include "unix/io_await.hpp"
#include "unix/loop_io.hpp"

namespace {

using asyncio::Backend;
using asyncio::Coro;
using asyncio::RunOptions;
using asyncio::Task;
using asyncio_test::connect_to;
using asyncio_test::ends_cancelled;
using asyncio_test::FdGuard;
using asyncio_test::has_pending_connection;
using asyncio_test::Listener;
using asyncio_test::open_fds;
using asyncio_test::SocketPair;
using asyncio_test::tcp_socket;

// ---- helpers -----------------------------------------------------------------------------------

asyncio::detail::LoopIo& loop_io() {
  return asyncio::detail::io_of(asyncio::get_running_loop());
}

/// Writes all of `s` to a socket with room for it (test set-up, not the code under test).
void put(int fd, const std::string& s) {
  ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()))
      << std::strerror(errno);
}

/// True when neither the kernel nor the loop's stash holds a byte of `fd`.
bool nothing_left(int fd) {
  char c = 0;
  const ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
  return n < 0 && errno == EAGAIN && !loop_io().has_stash();
}

/// Reads what the kernel holds for `fd` now (non-blocking), up to `max` bytes.
std::string drain(int fd, std::size_t max = std::size_t{64} << 20) {
  std::string out;
  std::string buf(std::size_t{1} << 16, '\0');
  while (out.size() < max) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n <= 0) break;
    out.append(buf.data(), static_cast<std::size_t>(n));
  }
  return out;
}

/// sock_recv_into with the buffer in the task's own frame: the frame (so the buffer) lives until
/// the engine has let go of the op, which is what the contract promises.
Coro<std::string> recv_into_string(int fd, std::size_t n) {
  std::string buf(n, '\0');
  const std::size_t k =
      co_await asyncio::sock_recv_into(fd, std::as_writable_bytes(std::span(buf)));
  buf.resize(k);
  co_return buf;
}

/// sock_recv, bounded in real time: a lost byte fails the test (TimeoutError) instead of hanging.
Coro<std::string> recv_bounded(int fd, std::size_t n) {
  co_return co_await asyncio::wait_for(asyncio::sock_recv(fd, n), 5.0);
}

class IoCancelTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::io_uring) {
      try {
        auto probe = asyncio::new_event_loop(RunOptions{.backend = Backend::io_uring});
        probe->close();
      } catch (const asyncio::RuntimeError& e) {
        GTEST_SKIP() << "io_uring is not available here: " << e.what();
      }
    }
    asyncio::sys::clear_faults();
  }
  void TearDown() override { asyncio::sys::clear_faults(); }

  /// The window tests rely on asyncio's documented FIFO order of the ready queue (a callback
  /// queued before the poll runs before the task the poll woke); shuffle mode changes it.
  static bool shuffled() {
    const char* v = std::getenv("ASYNCIO_SHUFFLE");
    return v != nullptr && *v != '\0';
  }

  template <class T>
  T run(Coro<T> main) {
    return asyncio::run(std::move(main), RunOptions{.backend = GetParam()});
  }
  template <class T>
  T run_virtual(Coro<T> main) {
    return asyncio::run(std::move(main), RunOptions{.virtual_time = true, .backend = GetParam()});
  }
};

std::string engine_name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::epoll ? "epoll" : "io_uring";
}

// ---- (1) before the first step -----------------------------------------------------------------

Coro<std::string> cancel_before_first_step(int a, int b) {
  put(b, "hello");
  const auto recv_before = asyncio::sys::call_count(asyncio::sys::Call::recv);
  Task<std::string> t = asyncio::create_task(asyncio::sock_recv(a, 100));
  EXPECT_TRUE(t.cancel());
  EXPECT_TRUE(co_await ends_cancelled(t));
  EXPECT_EQ(asyncio::sys::call_count(asyncio::sys::Call::recv), recv_before) << "the body ran";
  EXPECT_EQ(loop_io().engine->in_flight(), 0U);
  std::string got = co_await recv_bounded(a, 100);
  EXPECT_TRUE(nothing_left(a));
  co_return got;
}

TEST_P(IoCancelTest, CancelBeforeTheFirstStepConsumesNothing) {
  SocketPair sp;
  EXPECT_EQ(run(cancel_before_first_step(sp.a.get(), sp.b.get())), "hello");
}

Coro<int> accept_cancelled_before_first_step(int lfd, std::uint16_t port) {
  FdGuard client = connect_to(port);
  Task<asyncio::AcceptedSocket> t = asyncio::create_task(asyncio::sock_accept(lfd));
  t.cancel();
  EXPECT_TRUE(co_await ends_cancelled(t));
  EXPECT_TRUE(has_pending_connection(lfd)) << "the cancelled accept took the connection";
  asyncio::AcceptedSocket acc = co_await asyncio::sock_accept(lfd);
  FdGuard conn(acc.fd);
  put(client.get(), "ping");
  co_return static_cast<int>(co_await recv_bounded(conn.get(), 16) == "ping");
}

TEST_P(IoCancelTest, AcceptCancelledBeforeItsFirstStepLeavesTheConnection) {
  const std::size_t before = open_fds();
  {
    Listener l;
    EXPECT_EQ(run(accept_cancelled_before_first_step(l.fd.get(), l.port)), 1);
  }
  EXPECT_EQ(open_fds(), before);
}

// ---- (2) submitted, cancelled before the loop polled -------------------------------------------

Coro<std::string> cancel_right_after_submit(int a, int b, bool data_in_between) {
  Task<std::string> t = asyncio::create_task(asyncio::sock_recv(a, 100));
  co_await asyncio::sleep(0);  // t ran one step: its recv is submitted (queued, on io_uring)
  EXPECT_FALSE(t.done());
  EXPECT_EQ(loop_io().engine->in_flight(), 1U);
  // With data there now, io_uring sends the recv and its ASYNC_CANCEL in one batch: the recv
  // may complete with the bytes, which must then come back from the next receive.
  if (data_in_between) put(b, "data");
  EXPECT_TRUE(t.cancel());
  EXPECT_TRUE(co_await ends_cancelled(t));
  EXPECT_EQ(loop_io().engine->in_flight(), 0U);
  if (!data_in_between) put(b, "data");
  std::string got = co_await recv_bounded(a, 100);
  EXPECT_TRUE(nothing_left(a));
  co_return got;
}

TEST_P(IoCancelTest, CancelInTheIterationItSubmittedBeforeThePoll) {
  SocketPair sp;
  EXPECT_EQ(run(cancel_right_after_submit(sp.a.get(), sp.b.get(), false)), "data");
}

TEST_P(IoCancelTest, CancelRightAfterSubmitWithDataArrivingKeepsTheBytes) {
  SocketPair sp;
  EXPECT_EQ(run(cancel_right_after_submit(sp.a.get(), sp.b.get(), true)), "data");
}

// ---- (3) in flight ---------------------------------------------------------------------------

Coro<std::string> cancel_while_parked(int a, int b) {
  Task<std::string> t = asyncio::create_task(asyncio::sock_recv(a, 100));
  co_await asyncio::sleep(0.05);  // real time: the op is in the kernel (io_uring) or parked
  EXPECT_FALSE(t.done());
  EXPECT_EQ(loop_io().engine->in_flight(), 1U);
  t.cancel();
  EXPECT_TRUE(co_await ends_cancelled(t));
  EXPECT_EQ(loop_io().engine->in_flight(), 0U);
  put(b, "later");
  std::string got = co_await recv_bounded(a, 100);
  EXPECT_TRUE(nothing_left(a));
  co_return got;
}

TEST_P(IoCancelTest, CancelWhileParkedForAWhile) {
  SocketPair sp;
  EXPECT_EQ(run(cancel_while_parked(sp.a.get(), sp.b.get())), "later");
}

struct ParkedAfterCancel {
  std::size_t in_flight_right_after_cancel = 99;
  bool done_right_after_cancel = true;
  bool cancelled = false;
};

Coro<ParkedAfterCancel> parked_until_confirmed(int a) {
  ParkedAfterCancel out;
  Task<std::string> r = asyncio::create_task(recv_into_string(a, 64));
  co_await asyncio::sleep(0.02);
  r.cancel();
  out.in_flight_right_after_cancel = loop_io().engine->in_flight();
  out.done_right_after_cancel = r.done();
  out.cancelled = co_await ends_cancelled(r);
  EXPECT_EQ(loop_io().engine->in_flight(), 0U);
  co_return out;
}

// epoll takes a parked op back at once; io_uring keeps it parked (the kernel may still write its
// buffer) until the cancelled op's own CQE arrives. Either way the task ends only after that.
TEST_P(IoCancelTest, CancelledReceiveStaysParkedUntilTheEngineConfirms) {
  SocketPair sp;
  const ParkedAfterCancel r = run(parked_until_confirmed(sp.a.get()));
  EXPECT_FALSE(r.done_right_after_cancel);
  EXPECT_TRUE(r.cancelled);
  EXPECT_EQ(r.in_flight_right_after_cancel, GetParam() == Backend::epoll ? 0U : 1U);
}

// ---- (4) completed, not yet resumed ----------------------------------------------------------

struct WindowResult {
  bool op_done_at_cancel = false;   // the engine had completed the op when cancel() came
  bool task_done_at_cancel = true;  // ... and the task had not resumed yet
  bool cancelled = false;
  bool stash_after = false;  // the bytes went to the stash
  std::string buffer;        // recv_into: what the kernel wrote to the caller's buffer
  std::string next;          // what the next receive returned
};

/// Iteration k:   the receiver runs and parks; then this task writes the data and queues `cb`.
/// Iteration k+1: the poll completes the receive (the receiver is woken, queued behind `cb`);
///                `cb` cancels the receiver: the op is done, the task has not resumed.
Coro<WindowResult> cancel_after_completion(int a, int b, bool into) {
  WindowResult out;
  std::string buf(16, '\0');
  Task<std::string> r;
  Task<std::size_t> ri;
  if (into) {
    ri = asyncio::create_task(asyncio::sock_recv_into(a, std::as_writable_bytes(std::span(buf))));
  } else {
    r = asyncio::create_task(asyncio::sock_recv(a, 16));
  }
  co_await asyncio::sleep(0);  // the receiver has parked
  EXPECT_EQ(loop_io().engine->in_flight(), 1U);
  put(b, "hello");
  auto& loop = asyncio::get_running_loop();
  (void)loop.call_soon([&] {
    out.op_done_at_cancel = loop_io().engine->in_flight() == 0;
    out.task_done_at_cancel = into ? ri.done() : r.done();
    if (into) {
      ri.cancel();
    } else {
      r.cancel();
    }
  });
  if (into) {
    out.cancelled = co_await ends_cancelled(ri);
  } else {
    out.cancelled = co_await ends_cancelled(r);
  }
  out.stash_after = loop_io().has_stash();
  out.buffer = buf.substr(0, 5);
  out.next = co_await recv_bounded(a, 100);
  EXPECT_TRUE(nothing_left(a));
  co_return out;
}

TEST_P(IoCancelTest, CancelAfterTheCompletionBeforeTheTaskResumedKeepsTheBytes) {
  if (shuffled()) GTEST_SKIP() << "relies on the FIFO order of the ready queue";
  SocketPair sp;
  const WindowResult r = run(cancel_after_completion(sp.a.get(), sp.b.get(), false));
  EXPECT_TRUE(r.op_done_at_cancel) << "the test missed the window";
  EXPECT_FALSE(r.task_done_at_cancel);
  EXPECT_TRUE(r.cancelled);
  EXPECT_TRUE(r.stash_after);
  EXPECT_EQ(r.next, "hello");
}

// sock_recv_into: the kernel wrote the caller's buffer, yet the bytes are not consumed.
TEST_P(IoCancelTest, RecvIntoCancelledAfterCompletionWritesTheBufferAndKeepsTheBytes) {
  if (shuffled()) GTEST_SKIP() << "relies on the FIFO order of the ready queue";
  SocketPair sp;
  const WindowResult r = run(cancel_after_completion(sp.a.get(), sp.b.get(), true));
  EXPECT_TRUE(r.op_done_at_cancel) << "the test missed the window";
  EXPECT_FALSE(r.task_done_at_cancel);
  EXPECT_TRUE(r.cancelled);
  EXPECT_EQ(r.buffer, "hello");
  EXPECT_EQ(r.next, "hello");
}

Coro<std::string> recv_into_cancelled_in_flight(int a, int b) {
  std::string buf(16, '\0');
  Task<std::size_t> t =
      asyncio::create_task(asyncio::sock_recv_into(a, std::as_writable_bytes(std::span(buf))));
  co_await asyncio::sleep(0.02);
  put(b, "abc");  // may land in `buf` (io_uring) before the cancel reaches the kernel
  t.cancel();
  EXPECT_TRUE(co_await ends_cancelled(t));
  put(b, "def");
  std::string got;
  for (int i = 0; i < 10 && got.size() < 6; ++i) got += co_await recv_bounded(a, 100);
  EXPECT_TRUE(nothing_left(a));
  co_return got;
}

TEST_P(IoCancelTest, RecvIntoCancelledInFlightLosesNothing) {
  SocketPair sp;
  EXPECT_EQ(run(recv_into_cancelled_in_flight(sp.a.get(), sp.b.get())), "abcdef");
}

// ---- many cancellations, random windows ---------------------------------------------------------

struct StreamResult {
  std::string written;
  std::string received;
  int cancelled = 0;
  int completed = 0;
  int stashed = 0;  // cancellations after which the loop held bytes back for the next receive
};

/// 4000 receives (sock_recv and sock_recv_into, one at a time), each cancelled with probability
/// 0.8 after 0-3 loop iterations (over 1000 of them end cancelled), while numbered chunks are
/// written at random points.
Coro<StreamResult> random_cancels(int a, int b, std::uint32_t seed) {
  StreamResult out;
  std::mt19937 rng(seed);
  int chunk = 0;
  // A chunk the socket has no room for is not written (and not expected): the unread backlog of
  // a socketpair is limited in buffers, not bytes.
  auto write_chunk = [&] {
    const std::string c = "<" + std::to_string(chunk++) + ">";
    if (::send(b, c.data(), c.size(), MSG_NOSIGNAL | MSG_DONTWAIT) ==
        static_cast<ssize_t>(c.size())) {
      out.written += c;
    }
  };
  for (int i = 0; i < 4000; ++i) {
    if (rng() % 2 == 0) write_chunk();
    const std::size_t n = 1 + rng() % 24;
    const bool into = rng() % 2 == 0;
    Task<std::string> t =
        asyncio::create_task(into ? recv_into_string(a, n) : asyncio::sock_recv(a, n));
    const unsigned steps = rng() % 4;
    for (unsigned s = 0; s < steps; ++s) {
      co_await asyncio::sleep(0);
      if (rng() % 3 == 0) write_chunk();
    }
    const bool cancel = rng() % 10 < 8;
    if (cancel) {
      t.cancel();
    } else if (out.written.size() == out.received.size()) {
      write_chunk();  // something to receive: the wait below is bounded
    }
    try {
      out.received += co_await t;
      ++out.completed;
    } catch (const asyncio::CancelledError&) {
      ++out.cancelled;
      if (loop_io().has_stash()) ++out.stashed;
    }
  }
  for (int i = 0; i < 1000 && out.received.size() < out.written.size(); ++i) {
    out.received += co_await recv_bounded(a, 4096);
  }
  EXPECT_TRUE(nothing_left(a));
  co_return out;
}

TEST_P(IoCancelTest, ThousandRandomlyCancelledReceivesKeepTheStreamIntactAndInOrder) {
  for (std::uint32_t seed : {1U, 2U, 3U}) {
    SocketPair sp;
    const StreamResult r = run(random_cancels(sp.a.get(), sp.b.get(), seed));
    EXPECT_EQ(r.received, r.written) << "seed " << seed;
    EXPECT_GE(r.cancelled, 1000) << "seed " << seed;
    EXPECT_GT(r.completed, 100) << "seed " << seed;
    EXPECT_GT(r.stashed, 0) << "seed " << seed << ": window (4) never hit";
  }
}

// Two receivers parked on one fd; the first is cancelled after its completion arrived. The
// bytes it got must go to "the next receive on that fd": the second receiver, already parked.
Coro<std::string> two_parked_receivers(int a, int b) {
  Task<std::string> r1 = asyncio::create_task(asyncio::sock_recv(a, 16));
  Task<std::string> r2 = asyncio::create_task(asyncio::sock_recv(a, 16));
  co_await asyncio::sleep(0);  // both parked, r1 first
  put(b, "first");
  (void)asyncio::get_running_loop().call_soon([&] { r1.cancel(); });
  EXPECT_TRUE(co_await ends_cancelled(r1));
  co_await asyncio::sleep(0.05);  // real time: r2 has every chance to take "first"
  EXPECT_TRUE(r2.done()) << "r2 stays parked while \"first\" waits in the stash";
  put(b, "second");
  std::string got = co_await asyncio::wait_for(r2, 5.0);
  for (int i = 0; i < 10 && got.size() < 11; ++i) got += co_await recv_bounded(a, 100);
  co_return got;
}

// Was a bug: the stash was only looked at when a receive starts; a receive already parked in
// the engine waited for new data (forever if none came) and then returned it before the stashed
// bytes. Now stashing kicks the receives parked on the fd (IoEngine::kick): they receive again
// and get the stash first.
TEST_P(IoCancelTest, StashedBytesGoToAReceiveAlreadyParkedOnTheFd) {
  SocketPair sp;
  EXPECT_EQ(run(two_parked_receivers(sp.a.get(), sp.b.get())), "firstsecond");
}

// ---- accept --------------------------------------------------------------------------------

struct AcceptRace {
  bool op_done_at_cancel = false;
  bool cancelled = false;
  bool still_queued = false;
  bool same_connection = false;
};

/// The accept's readiness wait completes in the poll; a callback queued before it cancels the
/// accepting task before it resumed. The connection must stay for the next accept.
Coro<AcceptRace> accept_race(int lfd, std::uint16_t port, bool accept_again) {
  AcceptRace out;
  Task<asyncio::AcceptedSocket> t = asyncio::create_task(asyncio::sock_accept(lfd));
  co_await asyncio::sleep(0);  // parked on the listener
  FdGuard client = connect_to(port);
  (void)asyncio::get_running_loop().call_soon([&] {
    out.op_done_at_cancel = loop_io().engine->in_flight() == 0;
    t.cancel();
  });
  out.cancelled = co_await ends_cancelled(t);
  out.still_queued = has_pending_connection(lfd);
  if (accept_again) {
    asyncio::AcceptedSocket acc = co_await asyncio::sock_accept(lfd);
    FdGuard conn(acc.fd);
    put(client.get(), "ping");
    out.same_connection = co_await recv_bounded(conn.get(), 16) == "ping";
  }
  co_return out;
}

TEST_P(IoCancelTest, AcceptCancelledAfterAConnectionArrivedLeavesItToTheNextAccept) {
  if (shuffled()) GTEST_SKIP() << "relies on the FIFO order of the ready queue";
  const std::size_t before = open_fds();
  {
    Listener l;
    const AcceptRace r = run(accept_race(l.fd.get(), l.port, true));
    EXPECT_TRUE(r.op_done_at_cancel) << "the test missed the window";
    EXPECT_TRUE(r.cancelled);
    EXPECT_TRUE(r.still_queued);
    EXPECT_TRUE(r.same_connection);
  }
  EXPECT_EQ(open_fds(), before);
}

TEST_P(IoCancelTest, AcceptCancelledThenListenerClosedLeaksNoFd) {
  const std::size_t before = open_fds();
  {
    Listener l;
    const AcceptRace r = run(accept_race(l.fd.get(), l.port, false));
    EXPECT_TRUE(r.cancelled);
    EXPECT_TRUE(r.still_queued);
  }
  EXPECT_EQ(open_fds(), before);
}

// test_cancel_sock_accept: an accept timed out by wait_for lets go of the listener: once it is
// closed, a connect to its address is refused (an io_uring request still holding the file
// would keep it listening).
Coro<bool> accept_timed_out_then_closed() {
  Listener l;
  const std::uint16_t port = l.port;
  bool timed_out = false;
  try {
    (void)co_await asyncio::wait_for(asyncio::sock_accept(l.fd.get()), 0.1);
  } catch (const asyncio::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(loop_io().engine->in_flight(), 0U);
  l.fd.reset();
  FdGuard s = tcp_socket();
  bool refused = false;
  try {
    co_await asyncio::sock_connect(s.get(), asyncio::SocketAddress::ip("127.0.0.1", port));
  } catch (const asyncio::ConnectionRefusedError&) {
    refused = true;
  }
  co_return refused;
}

TEST_P(IoCancelTest, AcceptTimedOutThenListenerClosedRefusesConnections) {
  const std::size_t before = open_fds();
  EXPECT_TRUE(run(accept_timed_out_then_closed()));
  EXPECT_EQ(open_fds(), before);
}

// ---- connect --------------------------------------------------------------------------------

Coro<int> cancel_connect(std::uint16_t stuck_port, std::uint16_t good_port) {
  FdGuard s = tcp_socket();
  Task<void> t = asyncio::create_task(
      asyncio::sock_connect(s.get(), asyncio::SocketAddress::ip("127.0.0.1", stuck_port)));
  co_await asyncio::sleep(0.05);  // real time: the SYN was dropped, the connect waits
  EXPECT_FALSE(t.done()) << "the connect was expected to hang (full accept queue)";
  EXPECT_EQ(loop_io().engine->in_flight(), 1U);
  t.cancel();
  EXPECT_TRUE(co_await ends_cancelled(t));
  EXPECT_EQ(loop_io().engine->in_flight(), 0U);
  // The loop is still usable: a connect elsewhere works.
  FdGuard other = tcp_socket();
  co_await asyncio::sock_connect(other.get(), asyncio::SocketAddress::ip("127.0.0.1", good_port));
  co_return 1;
}

TEST_P(IoCancelTest, ConnectCancelledWhileInProgress) {
  const std::size_t before = open_fds();
  {
    Listener stuck(0);  // accept queue of one: full after the first connection
    FdGuard filler = connect_to(stuck.port);
    Listener good;
    EXPECT_EQ(run(cancel_connect(stuck.port, good.port)), 1);
  }
  EXPECT_EQ(open_fds(), before);
}

// test_sock_client_connect_racing: a connect cancelled while the SYN is unanswered leaves the
// socket usable; sock_connect() on the same socket then waits for that connection (Linux says
// EALREADY, which Python reads as "in progress" too) and returns once it is established.
Coro<std::uint16_t> connect_again_after_cancel(int stuck_fd, std::uint16_t stuck_port) {
  FdGuard s = tcp_socket();
  const auto to = asyncio::SocketAddress::ip("127.0.0.1", stuck_port);
  Task<void> t = asyncio::create_task(asyncio::sock_connect(s.get(), to));
  co_await asyncio::sleep(0.05);  // real time: the SYN was dropped, the connect waits
  EXPECT_FALSE(t.done()) << "the connect was expected to hang (full accept queue)";
  t.cancel();
  EXPECT_TRUE(co_await ends_cancelled(t));
  // Room in the accept queue: the SYN's retransmission (about 1 s later) is answered.
  const int taken = ::accept4(stuck_fd, nullptr, nullptr, SOCK_CLOEXEC);
  EXPECT_GE(taken, 0);
  FdGuard filler_peer(taken);
  co_await asyncio::wait_for(asyncio::sock_connect(s.get(), to), 15.0);
  sockaddr_in peer{};
  socklen_t len = sizeof peer;
  EXPECT_EQ(::getpeername(s.get(), reinterpret_cast<sockaddr*>(&peer), &len), 0);  // NOLINT
  co_return ntohs(peer.sin_port);
}

TEST_P(IoCancelTest, ConnectCancelledWhileInProgressCanBeAwaitedAgainOnTheSameSocket) {
  const std::size_t before = open_fds();
  {
    Listener stuck(0);  // accept queue of one: full after the first connection
    FdGuard filler = connect_to(stuck.port);
    EXPECT_EQ(run(connect_again_after_cancel(stuck.fd.get(), stuck.port)), stuck.port);
  }
  EXPECT_EQ(open_fds(), before);
}

// ---- sendall --------------------------------------------------------------------------------

struct SendallCancel {
  bool cancelled = false;
  bool prefix = false;
  std::size_t delivered = 0;
  std::string tail;
};

Coro<SendallCancel> cancel_sendall(int a, int b) {
  SendallCancel out;
  std::string data(std::size_t{100} << 20, '\0');
  for (std::size_t i = 0; i < data.size(); i += 4096) data[i] = static_cast<char>('a' + i % 26);
  Task<void> t = asyncio::create_task(asyncio::sock_sendall(a, data));
  co_await asyncio::sleep(0.05);  // real time: the peer reads nothing, the send waits
  EXPECT_FALSE(t.done());
  t.cancel();
  out.cancelled = co_await ends_cancelled(t);
  EXPECT_EQ(loop_io().engine->in_flight(), 0U);
  const std::string got = drain(b);
  out.delivered = got.size();
  out.prefix = got.size() < data.size() && data.compare(0, got.size(), got) == 0;
  co_await asyncio::sock_sendall(a, "tail");
  out.tail = co_await recv_bounded(b, 16);
  co_return out;
}

TEST_P(IoCancelTest, SendallOf100MBCancelledMidwayEndsCancelledAndTheLoopGoesOn) {
  SocketPair sp;
  const SendallCancel r = run(cancel_sendall(sp.a.get(), sp.b.get()));
  EXPECT_TRUE(r.cancelled);
  EXPECT_TRUE(r.prefix) << r.delivered << " bytes delivered";
  EXPECT_GT(r.delivered, 0U);
  EXPECT_EQ(r.tail, "tail");  // nothing of the cancelled sendall came after the cancel
}

// ---- cancel twice ---------------------------------------------------------------------------

Coro<std::string> cancel_twice(int a, int b, bool after_completion) {
  Task<std::string> t = asyncio::create_task(asyncio::sock_recv(a, 16));
  co_await asyncio::sleep(0);
  if (after_completion) {
    put(b, "xy");
    (void)asyncio::get_running_loop().call_soon([&] {
      EXPECT_TRUE(t.cancel());
      EXPECT_TRUE(t.cancel());
      EXPECT_EQ(t.cancelling(), 2);
    });
  } else {
    EXPECT_TRUE(t.cancel());
    EXPECT_TRUE(t.cancel());
    EXPECT_EQ(t.cancelling(), 2);
  }
  EXPECT_TRUE(co_await ends_cancelled(t));
  EXPECT_EQ(loop_io().engine->in_flight(), 0U);
  if (!after_completion) put(b, "xy");
  std::string got = co_await recv_bounded(a, 16);
  EXPECT_TRUE(nothing_left(a));
  co_return got;
}

TEST_P(IoCancelTest, CancelCalledTwiceWhileParkedIsOneCancellation) {
  SocketPair sp;
  EXPECT_EQ(run(cancel_twice(sp.a.get(), sp.b.get(), false)), "xy");
}

TEST_P(IoCancelTest, CancelCalledTwiceAfterTheCompletionKeepsTheBytes) {
  SocketPair sp;
  EXPECT_EQ(run(cancel_twice(sp.a.get(), sp.b.get(), true)), "xy");
}

// ---- wait_for (virtual time) ------------------------------------------------------------------

Coro<void> timed_writer(int b, std::string* written, int chunks) {
  for (int i = 0; i < chunks; ++i) {
    co_await asyncio::sleep(0.0007 * (1 + i % 3));
    const std::string c = "[" + std::to_string(i) + "]";
    put(b, c);
    *written += c;
  }
}

struct TimedStream {
  std::string written;
  std::string received;
  int timeouts = 0;
};

/// Receives under wait_for(0.001) while a task writes at virtual times that fall before, at and
/// after the deadlines. `as_task`: wait_for on a task (cancelled, then awaited) instead of on the
/// coroutine (run inline under a timeout()).
Coro<TimedStream> receive_with_timeouts(int a, int b, bool as_task) {
  TimedStream out;
  Task<void> w = asyncio::create_task(timed_writer(b, &out.written, 200));
  for (int i = 0; i < 2000 && !(w.done() && out.received.size() == out.written.size()); ++i) {
    try {
      if (as_task) {
        out.received +=
            co_await asyncio::wait_for(asyncio::create_task(asyncio::sock_recv(a, 5)), 0.001);
      } else {
        out.received += co_await asyncio::wait_for(asyncio::sock_recv(a, 5), 0.001);
      }
    } catch (const asyncio::TimeoutError&) {
      ++out.timeouts;
    }
  }
  co_await w;
  EXPECT_TRUE(nothing_left(a));
  co_return out;
}

TEST_P(IoCancelTest, WaitForTimeoutsAroundSockRecvLoseNothing) {
  SocketPair sp;
  const TimedStream r = run_virtual(receive_with_timeouts(sp.a.get(), sp.b.get(), false));
  EXPECT_EQ(r.received, r.written);
  EXPECT_GT(r.timeouts, 0);
}

TEST_P(IoCancelTest, WaitForTimeoutsAroundASockRecvTaskLoseNothing) {
  SocketPair sp;
  const TimedStream r = run_virtual(receive_with_timeouts(sp.a.get(), sp.b.get(), true));
  EXPECT_EQ(r.received, r.written);
  EXPECT_GT(r.timeouts, 0);
}

Coro<void> timed_connector(std::uint16_t port, std::vector<FdGuard>* clients, int n) {
  for (int i = 0; i < n; ++i) {
    co_await asyncio::sleep(0.0007 * (1 + i % 3));
    clients->push_back(connect_to(port));
  }
}

Coro<int> accept_with_timeouts(int lfd, std::uint16_t port) {
  std::vector<FdGuard> clients;
  std::vector<FdGuard> accepted;
  int timeouts = 0;
  Task<void> c = asyncio::create_task(timed_connector(port, &clients, 50));
  for (int i = 0; i < 2000 && !(c.done() && accepted.size() == clients.size()); ++i) {
    try {
      asyncio::AcceptedSocket acc = co_await asyncio::wait_for(asyncio::sock_accept(lfd), 0.001);
      accepted.emplace_back(acc.fd);
    } catch (const asyncio::TimeoutError&) {
      ++timeouts;
    }
  }
  co_await c;
  EXPECT_EQ(accepted.size(), clients.size());
  EXPECT_FALSE(has_pending_connection(lfd));
  EXPECT_GT(timeouts, 0);
  co_return static_cast<int>(accepted.size());
}

TEST_P(IoCancelTest, WaitForTimeoutsAroundSockAcceptLoseNoConnection) {
  const std::size_t before = open_fds();
  {
    Listener l;
    EXPECT_EQ(run_virtual(accept_with_timeouts(l.fd.get(), l.port)), 50);
  }
  EXPECT_EQ(open_fds(), before);
}

// ---- closing the loop with operations in flight ----------------------------------------------

Coro<void> send_big(int fd) {
  std::string data(std::size_t{8} << 20, 'z');
  co_await asyncio::sock_sendall(fd, data);
}

/// Leaves behind: a parked recv, a parked recv_into (buffer in its frame), a recv whose
/// cancellation was asked for but not confirmed, a parked accept and a parked sendall.
Coro<void> start_and_leave(int a, int a2, int lfd, int s) {
  (void)asyncio::create_task(asyncio::sock_recv(a, 100));
  (void)asyncio::create_task(recv_into_string(a, 64));
  Task<std::string> c = asyncio::create_task(asyncio::sock_recv(a2, 10));
  (void)asyncio::create_task(asyncio::sock_accept(lfd));
  (void)asyncio::create_task(send_big(s));
  co_await asyncio::sleep(0);
  co_await asyncio::sleep(0.02);
  EXPECT_EQ(loop_io().engine->in_flight(), 5U);
  c.cancel();  // io_uring: its ASYNC_CANCEL is only queued when the loop closes
}

TEST_P(IoCancelTest, ClosingTheLoopWithOperationsInFlightIsClean) {
  const std::size_t before = open_fds();
  {
    SocketPair sp;
    SocketPair sp2;
    SocketPair big;
    Listener l;
    auto loop = asyncio::new_event_loop(RunOptions{.backend = GetParam()});
    loop->run_until_complete(start_and_leave(sp.a.get(), sp2.a.get(), l.fd.get(), big.a.get()));
    loop->close();
    EXPECT_TRUE(loop->is_closed());
    loop.reset();
    // Nothing was consumed from the sockets by the abandoned receives.
    put(sp.b.get(), "still");
    EXPECT_EQ(asyncio_test::read_some(sp.a.get()), "still");
  }
  EXPECT_EQ(open_fds(), before);
}

INSTANTIATE_TEST_SUITE_P(Engines, IoCancelTest,
                         ::testing::Values(asyncio::Backend::epoll, asyncio::Backend::io_uring),
                         engine_name);

}  // namespace
