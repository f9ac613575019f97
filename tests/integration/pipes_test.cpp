// Integration tests of the pipe transports (asyncio/transports.hpp: connect_read_pipe,
// connect_write_pipe; the transports under a child process's pipes) on real pipes, socket pairs
// and a real child, on BOTH I/O engines.
//
// Translated from CPython 3.12's test_events.py (EventLoopTestsMixin: test_read_pipe,
// test_write_pipe, test_write_pipe_disconnect_on_close, test_unclosed_pipe_transport) and
// test_streams.py (test_read_all_from_pipe_reader); the others pin down the rest of what the
// header promises: a read pipe cannot write, a write pipe's write_eof closes it, a reader that
// goes away with data still buffered is a BrokenPipeError, a regular file is refused.
//
// Every test's coroutine runs under a time-out (kBound); waits for the kernel are bounded polls.
#include <cerrno>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
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
using asyncio::RunOptions;
using asyncio_test::io_uring_refused;
using asyncio_test::param_name;

constexpr double kBound = 60.0;

/// Python's MyReadPipeProto: records its states and the bytes it got.
struct ReadPipeProto final : asyncio::Protocol {
  std::vector<std::string> state{"INITIAL"};
  std::size_t nbytes = 0;
  std::string data;
  asyncio::Transport* transport = nullptr;
  asyncio::Event done;
  std::exception_ptr lost_with;

  void connection_made(asyncio::Transport& t) override {
    transport = &t;
    state.emplace_back("CONNECTED");
  }
  void data_received(std::string_view d) override {
    nbytes += d.size();
    data += d;
  }
  bool eof_received() override {
    state.emplace_back("EOF");
    return true;  // a pipe closes at its end all the same
  }
  void connection_lost(std::exception_ptr exc) override {
    state.emplace_back("CLOSED");
    lost_with = exc;
    done.set();
  }
};

/// Python's MyWritePipeProto.
struct WritePipeProto final : asyncio::Protocol {
  std::string state = "INITIAL";
  asyncio::Transport* transport = nullptr;
  asyncio::Event done;
  std::exception_ptr lost_with;

  void connection_made(asyncio::Transport& t) override {
    transport = &t;
    state = "CONNECTED";
  }
  void data_received(std::string_view /*data*/) override {}
  void connection_lost(std::exception_ptr exc) override {
    state = "CLOSED";
    lost_with = exc;
    done.set();
  }
};

/// A protocol that feeds a StreamReader made by hand (Python: StreamReaderProtocol(reader)).
struct FeedReader final : asyncio::Protocol {
  explicit FeedReader(asyncio::StreamReader r) : reader(std::move(r)) {}
  asyncio::StreamReader reader;
  void data_received(std::string_view d) override { reader.feed_data(d); }
  bool eof_received() override {
    reader.feed_eof();
    return false;
  }
  void connection_lost(std::exception_ptr exc) override {
    if (exc) {
      reader.set_exception(exc);
    } else if (!reader.at_eof()) {
      reader.feed_eof();
    }
  }
};

template <class P>
std::function<std::shared_ptr<P>()> give(std::shared_ptr<P> p) {
  return [p] { return p; };
}

// (No lambda is built inside a coroutine body: g++ 12 miscompiles some.)

/// Waits (bounded, real time) until `proto` got at least `n` bytes; false when it never did.
Coro<bool> got_bytes(const ReadPipeProto& proto, std::size_t n) {
  for (int i = 0; i < 2000 && proto.nbytes < n; ++i) co_await asyncio::sleep(0.005);
  co_return proto.nbytes >= n;
}

/// Whatever `fd` (non-blocking) has to read now, appended to `out`; the size of `out`.
std::size_t drain_fd(int fd, std::string& out) {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out.size();
}

/// Reads `fd` (non-blocking) into `out` until it holds `n` bytes (bounded, real time).
Coro<bool> read_until(int fd, std::string& out, std::size_t n) {
  for (int i = 0; i < 2000 && drain_fd(fd, out) < n; ++i) co_await asyncio::sleep(0.005);
  co_return out.size() >= n;
}

struct Pipe {
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    r = fds[0];
    w = fds[1];
  }
  int r = -1;
  int w = -1;
};

class PipesTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::io_uring) {
      if (auto why = io_uring_refused()) GTEST_SKIP() << "io_uring is not available: " << *why;
    }
  }
  void run(Coro<void> main) {
    asyncio::run(asyncio_test::bounded_on_engine(std::move(main), GetParam(), kBound),
                 RunOptions{.backend = GetParam()});
  }
};

// test_events::test_read_pipe
Coro<void> read_pipe_body() {
  Pipe p;
  auto proto = std::make_shared<ReadPipeProto>();
  auto [t, got] = asyncio::connect_read_pipe(give(proto), p.r);
  EXPECT_EQ(got, proto);
  EXPECT_EQ(proto->transport, t.get());
  EXPECT_EQ(proto->state, (std::vector<std::string>{"INITIAL", "CONNECTED"}));
  EXPECT_EQ(proto->nbytes, 0U);

  EXPECT_EQ(::write(p.w, "1", 1), 1);
  EXPECT_TRUE(co_await got_bytes(*proto, 1));
  EXPECT_EQ(proto->nbytes, 1U);
  EXPECT_EQ(::write(p.w, "2345", 4), 4);
  EXPECT_TRUE(co_await got_bytes(*proto, 5));
  EXPECT_EQ(proto->state, (std::vector<std::string>{"INITIAL", "CONNECTED"}));
  EXPECT_EQ(proto->data, "12345");

  ::close(p.w);
  co_await proto->done.wait();
  EXPECT_EQ(proto->state, (std::vector<std::string>{"INITIAL", "CONNECTED", "EOF", "CLOSED"}));
  EXPECT_EQ(proto->lost_with, nullptr);
  EXPECT_TRUE(t->get_extra_info("pipe").has_value());
  EXPECT_FALSE(t->get_extra_info("socket").has_value());
}
TEST_P(PipesTest, ReadPipeDeliversDataThenEofThenClosed) {
  run(read_pipe_body());
}

// test_events::test_write_pipe
Coro<void> write_pipe_body() {
  Pipe p;
  EXPECT_EQ(::fcntl(p.r, F_SETFL, O_NONBLOCK), 0);
  auto proto = std::make_shared<WritePipeProto>();
  auto [t, got] = asyncio::connect_write_pipe(give(proto), p.w);
  EXPECT_EQ(got, proto);
  EXPECT_EQ(proto->transport, t.get());
  EXPECT_EQ(proto->state, "CONNECTED");

  std::string data;
  t->write("1");
  EXPECT_TRUE(co_await read_until(p.r, data, 1));
  EXPECT_EQ(data, "1");
  t->write("2345");
  EXPECT_TRUE(co_await read_until(p.r, data, 5));
  EXPECT_EQ(data, "12345");
  EXPECT_EQ(proto->state, "CONNECTED");

  ::close(p.r);
  EXPECT_TRUE(t->get_extra_info("pipe").has_value());
  t->close();
  co_await proto->done.wait();
  EXPECT_EQ(proto->state, "CLOSED");
}
TEST_P(PipesTest, WritePipeWritesUntilClosed) {
  run(write_pipe_body());
}

// test_events::test_write_pipe_disconnect_on_close: the reading end goes away.
Coro<void> write_pipe_disconnect_body() {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  asyncio_test::FdGuard rsock(sv[0]);
  auto proto = std::make_shared<WritePipeProto>();
  auto [t, got] = asyncio::connect_write_pipe(give(proto), sv[1]);
  EXPECT_EQ(proto->state, "CONNECTED");
  t->write("1");
  EXPECT_EQ(co_await asyncio::sock_recv(rsock.get(), 16), "1");
  rsock.reset();  // the reader goes
  co_await proto->done.wait();
  EXPECT_EQ(proto->state, "CLOSED");
  EXPECT_EQ(proto->lost_with, nullptr);  // nothing was left to write
}
TEST_P(PipesTest, WritePipeClosesWhenTheReaderGoes) {
  run(write_pipe_disconnect_body());
}

// The reader goes while data is still buffered: connection_lost(BrokenPipeError), as Python's
// _UnixWritePipeTransport._read_ready does.
Coro<void> broken_pipe_body() {
  Pipe p;
  auto proto = std::make_shared<WritePipeProto>();
  auto [t, got] = asyncio::connect_write_pipe(give(proto), p.w);
  t->write(std::string(1 << 20, 'x'));  // more than the pipe holds
  EXPECT_GT(t->get_write_buffer_size(), 0U);
  ::close(p.r);
  co_await proto->done.wait();
  EXPECT_EQ(proto->state, "CLOSED");
  EXPECT_TRUE(asyncio_test::holds<asyncio::BrokenPipeError>(proto->lost_with));
  EXPECT_EQ(t->get_write_buffer_size(), 0U);
  t->write("more");  // dropped, no error, no SIGPIPE
}
TEST_P(PipesTest, ReaderGoneWithDataBufferedIsABrokenPipe) {
  run(broken_pipe_body());
}

// write_eof() on a write pipe closes it: the reader sees the end of the data.
Coro<void> write_eof_body() {
  Pipe p;
  auto rproto = std::make_shared<ReadPipeProto>();
  auto wproto = std::make_shared<WritePipeProto>();
  auto r = asyncio::connect_read_pipe(give(rproto), p.r);
  auto w = asyncio::connect_write_pipe(give(wproto), p.w);
  EXPECT_TRUE(w.transport->can_write_eof());
  w.transport->write("last words");
  w.transport->write_eof();
  EXPECT_TRUE(w.transport->is_closing());
  co_await rproto->done.wait();
  co_await wproto->done.wait();
  EXPECT_EQ(rproto->data, "last words");
  EXPECT_EQ(rproto->state.back(), "CLOSED");
  EXPECT_EQ(wproto->state, "CLOSED");
}
TEST_P(PipesTest, WriteEofClosesTheWritePipeAfterItsData) {
  run(write_eof_body());
}

// A read pipe has no write side.
Coro<void> read_only_body() {
  Pipe p;
  asyncio_test::FdGuard w(p.w);
  auto proto = std::make_shared<ReadPipeProto>();
  auto [t, got] = asyncio::connect_read_pipe(give(proto), p.r);
  EXPECT_FALSE(t->can_write_eof());
  EXPECT_THROW(t->write("x"), asyncio::RuntimeError);
  t->close();
  co_await proto->done.wait();
  EXPECT_EQ(proto->state.back(), "CLOSED");
}
TEST_P(PipesTest, ReadPipeCannotWrite) {
  run(read_only_body());
}

// pause_reading() stops the deliveries until resume_reading().
Coro<void> pause_body() {
  Pipe p;
  auto proto = std::make_shared<ReadPipeProto>();
  auto [t, got] = asyncio::connect_read_pipe(give(proto), p.r);
  EXPECT_EQ(::write(p.w, "ab", 2), 2);
  EXPECT_TRUE(co_await got_bytes(*proto, 2));
  t->pause_reading();
  EXPECT_FALSE(t->is_reading());
  EXPECT_EQ(::write(p.w, "cd", 2), 2);
  for (int i = 0; i < 5; ++i) co_await asyncio::sleep(0.01);
  EXPECT_EQ(proto->nbytes, 2U);
  t->resume_reading();
  EXPECT_TRUE(co_await got_bytes(*proto, 4));
  EXPECT_EQ(proto->data, "abcd");
  ::close(p.w);
  co_await proto->done.wait();
}
TEST_P(PipesTest, PauseReadingHoldsTheDataUntilResume) {
  run(pause_body());
}

// A regular file is not a pipe: ValueError, and the fd stays the caller's.
Coro<void> regular_file_body(std::string path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  EXPECT_GE(fd, 0);
  auto proto = std::make_shared<ReadPipeProto>();
  EXPECT_THROW((void)asyncio::connect_read_pipe(give(proto), fd), asyncio::ValueError);
  EXPECT_THROW((void)asyncio::connect_write_pipe(give(proto), fd), asyncio::ValueError);
  EXPECT_EQ(::fcntl(fd, F_GETFD), FD_CLOEXEC);  // still open
  ::close(fd);
  co_return;
}
TEST_P(PipesTest, RegularFileIsRefused) {
  asyncio_test::TempDir dir;
  run(regular_file_body(dir.file("file")));
}

// test_events::test_unclosed_pipe_transport: the loop closes with both transports open; their
// fds are closed with it and nothing is called.
Coro<void> unclosed_body(std::shared_ptr<ReadPipeProto> r, std::shared_ptr<WritePipeProto> w,
                         std::vector<std::shared_ptr<asyncio::Transport>>* keep) {
  Pipe p;
  keep->push_back(asyncio::connect_read_pipe(give(r), p.r).transport);
  keep->push_back(asyncio::connect_write_pipe(give(w), p.w).transport);
  co_await asyncio::sleep(0);
}
TEST_P(PipesTest, LoopClosedWithPipeTransportsOpenClosesTheirFds) {
  const std::size_t before = asyncio_test::open_fds();
  auto r = std::make_shared<ReadPipeProto>();
  auto w = std::make_shared<WritePipeProto>();
  std::vector<std::shared_ptr<asyncio::Transport>> keep;
  run(unclosed_body(r, w, &keep));
  EXPECT_EQ(asyncio_test::open_fds(), before);
  ASSERT_EQ(keep.size(), 2U);
  EXPECT_TRUE(keep[0]->is_closing());
  EXPECT_TRUE(keep[1]->is_closing());
  keep[1]->write("dropped");  // harmless once the loop is gone
  EXPECT_EQ(r->state, (std::vector<std::string>{"INITIAL", "CONNECTED"}));
  EXPECT_EQ(w->state, "CONNECTED");
}

// test_streams::test_read_all_from_pipe_reader: a child writes to a pipe we read with a
// StreamReader whose limit (1) is far below the data.
Coro<void> read_all_body() {
  Pipe p;
  asyncio::StreamReader reader(1);
  auto proto = std::make_shared<FeedReader>(reader);
  auto conn = asyncio::connect_read_pipe(give(proto), p.r);
  const std::vector<int> pass{p.w};
  std::vector<std::string> args{"-c", "echo -n data >&" + std::to_string(p.w)};
  asyncio::SubprocessOptions o;
  o.pass_fds = pass;
  asyncio::Process child = co_await asyncio::create_subprocess_exec("/bin/sh", args, o);
  ::close(p.w);  // the child has its copy
  EXPECT_EQ(co_await child.wait(), 0);
  EXPECT_EQ(co_await reader.read(), "data");
  EXPECT_TRUE(reader.at_eof());
}
TEST_P(PipesTest, ReadAllFromPipeReader) {
  run(read_all_body());
}

// test_unix_events::UnixReadPipeTransportTests::test__read_ready_error: a read that fails closes
// the transport and hands the error to connection_lost().
Coro<void> read_error_body() {
  Pipe p;
  asyncio_test::FdGuard w(p.w);
  auto proto = std::make_shared<ReadPipeProto>();
  asyncio::sys::inject_fault({.call = asyncio::sys::Call::read, .error = EIO});
  auto [t, got] = asyncio::connect_read_pipe(give(proto), p.r);
  co_await proto->done.wait();
  asyncio::sys::clear_faults();
  EXPECT_EQ(proto->state, (std::vector<std::string>{"INITIAL", "CONNECTED", "CLOSED"}));
  EXPECT_TRUE(asyncio_test::holds<asyncio::OSError>(proto->lost_with));
  EXPECT_THAT(asyncio_test::what_of(proto->lost_with), ::testing::HasSubstr("read"));
  EXPECT_TRUE(t->is_closing());
}
TEST_P(PipesTest, ReadErrorClosesWithTheError) {
  run(read_error_body());
}

INSTANTIATE_TEST_SUITE_P(Engines, PipesTest, ::testing::Values(Backend::epoll, Backend::io_uring),
                         param_name);

}  // namespace
