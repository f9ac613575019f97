// The engines' contract (src/unix/io_engine.hpp), tested on the engines themselves, without a
// loop: an op completes exactly once, parks until the fd is ready, cancels as documented
// (docs/design/io.md), and the epoll engine registers an fd once, however many ops park on it.
#include "unix/io_engine.hpp"

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "asyncio_test.hpp"
#include "sys/sys.hpp"
#include "unix/loop_io.hpp"

namespace {

using asyncio::Backend;
using asyncio::detail::IoEngine;
using asyncio::detail::IoEvent;
using asyncio::detail::IoOp;
using asyncio::detail::OpKind;
using asyncio::detail::OpState;
using asyncio::sys::Call;

/// An op that counts its completions.
class TestOp final : public IoOp {
 public:
  TestOp(OpKind kind, int fd, void* buf = nullptr, std::size_t len = 0) : IoOp(kind, fd) {
    set_buffer(buf, len);
  }
  ~TestOp() = default;
  int completions = 0;

 private:
  void on_complete() noexcept override { ++completions; }
};

struct Engine {
  asyncio::sys::Fd wake{::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
  std::unique_ptr<IoEngine> engine;
  std::vector<IoEvent> events;

  explicit Engine(Backend b) {
    if (b == Backend::epoll) {
      engine = asyncio::detail::make_epoll_engine(wake.get());
    } else {
      std::string why;
      engine = asyncio::detail::make_uring_engine(wake.get(), why);
      if (!engine) throw std::runtime_error(why);
    }
  }
  /// Waits (bounded) until `op` is done.
  void wait_done(const IoOp& op, int rounds = 50) {
    for (int i = 0; i < rounds && op.state() != OpState::done; ++i) {
      events.clear();
      engine->wait(100, events);
    }
  }
};

class IoEngineTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::io_uring) {
      try {
        Engine probe(Backend::io_uring);
      } catch (const std::exception& e) {
        GTEST_SKIP() << "io_uring is not available here: " << e.what();
      }
    }
    asyncio::sys::clear_faults();
  }
  void TearDown() override { asyncio::sys::clear_faults(); }
};

std::string engine_name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::epoll ? "epoll" : "io_uring";
}

TEST_P(IoEngineTest, ReportsItsBackend) {
  Engine e(GetParam());
  EXPECT_EQ(e.engine->backend(), GetParam());
}

TEST_P(IoEngineTest, RecvWithDataThereCompletesOnceWithTheBytes) {
  Engine e(GetParam());
  asyncio_test::SocketPair sp;
  ASSERT_EQ(::write(sp.b.get(), "hello", 5), 5);
  std::array<char, 16> buf{};
  TestOp op(OpKind::recv, sp.a.get(), buf.data(), buf.size());
  e.engine->submit(op);
  if (GetParam() == Backend::epoll) {
    EXPECT_EQ(op.state(), OpState::done) << "epoll tries the syscall first";
  }
  e.wait_done(op);
  ASSERT_EQ(op.state(), OpState::done);
  EXPECT_EQ(op.result(), 5);
  EXPECT_EQ(std::string(buf.data(), 5), "hello");
  e.events.clear();
  e.engine->wait(0, e.events);
  EXPECT_EQ(op.completions, 1);
  EXPECT_EQ(e.engine->in_flight(), 0U);
}

TEST_P(IoEngineTest, RecvParksUntilDataArrives) {
  Engine e(GetParam());
  asyncio_test::SocketPair sp;
  std::array<char, 16> buf{};
  TestOp op(OpKind::recv, sp.a.get(), buf.data(), buf.size());
  e.engine->submit(op);
  EXPECT_EQ(op.state(), OpState::parked);
  EXPECT_EQ(e.engine->in_flight(), 1U);
  e.events.clear();
  e.engine->wait(0, e.events);
  EXPECT_EQ(op.state(), OpState::parked);
  ASSERT_EQ(::write(sp.b.get(), "abc", 3), 3);
  e.wait_done(op);
  ASSERT_EQ(op.state(), OpState::done);
  EXPECT_EQ(op.result(), 3);
  EXPECT_EQ(op.completions, 1);
  EXPECT_EQ(e.engine->in_flight(), 0U);
}

TEST_P(IoEngineTest, TwoParkedReceivesCompleteInOrder) {
  Engine e(GetParam());
  asyncio_test::SocketPair sp;
  std::array<char, 1> b1{};
  std::array<char, 1> b2{};
  TestOp first(OpKind::recv, sp.a.get(), b1.data(), 1);
  TestOp second(OpKind::recv, sp.a.get(), b2.data(), 1);
  e.engine->submit(first);
  e.engine->submit(second);
  ASSERT_EQ(::write(sp.b.get(), "12", 2), 2);
  e.wait_done(first);
  e.wait_done(second);
  ASSERT_EQ(first.result(), 1);
  ASSERT_EQ(second.result(), 1);
  EXPECT_EQ(b1[0], '1');
  EXPECT_EQ(b2[0], '2');
}

TEST_P(IoEngineTest, SendCompletesWithTheCount) {
  Engine e(GetParam());
  asyncio_test::SocketPair sp;
  std::string msg = "payload";
  TestOp op(OpKind::send, sp.a.get(), msg.data(), msg.size());
  e.engine->submit(op);
  e.wait_done(op);
  ASSERT_EQ(op.result(), static_cast<long>(msg.size()));
  std::array<char, 16> buf{};
  EXPECT_EQ(::read(sp.b.get(), buf.data(), buf.size()), static_cast<long>(msg.size()));
}

TEST_P(IoEngineTest, SendToAClosedPeerGivesEpipeNotSigpipe) {
  Engine e(GetParam());
  asyncio_test::SocketPair sp;
  sp.b.reset();
  std::string msg = "x";
  TestOp op(OpKind::send, sp.a.get(), msg.data(), msg.size());
  e.engine->submit(op);
  e.wait_done(op);
  EXPECT_EQ(op.result(), -EPIPE);  // we are still alive: no SIGPIPE
}

TEST_P(IoEngineTest, SendmsgSendsSeveralBuffers) {
  Engine e(GetParam());
  asyncio_test::SocketPair sp;
  std::string a = "abc";
  std::string b = "defg";
  std::array<iovec, 2> iov{{{a.data(), a.size()}, {b.data(), b.size()}}};
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = iov.size();
  TestOp op(OpKind::sendmsg, sp.a.get());
  op.set_message(&msg);
  e.engine->submit(op);
  e.wait_done(op);
  ASSERT_EQ(op.result(), 7);
  std::array<char, 16> buf{};
  ASSERT_EQ(::read(sp.b.get(), buf.data(), buf.size()), 7);
  EXPECT_EQ(std::string(buf.data(), 7), "abcdefg");
}

TEST_P(IoEngineTest, ReadAndWriteOnAPipe) {
  Engine e(GetParam());
  asyncio_test::Pipe p;
  std::string msg = "through the pipe";
  TestOp w(OpKind::write, p.w.get(), msg.data(), msg.size());
  e.engine->submit(w);
  e.wait_done(w);
  ASSERT_EQ(w.result(), static_cast<long>(msg.size()));
  std::array<char, 32> buf{};
  TestOp r(OpKind::read, p.r.get(), buf.data(), buf.size());
  e.engine->submit(r);
  e.wait_done(r);
  ASSERT_EQ(r.result(), static_cast<long>(msg.size()));
  EXPECT_EQ(std::string(buf.data(), msg.size()), msg);
}

TEST_P(IoEngineTest, PollInCompletesWhenReadableAndConsumesNothing) {
  Engine e(GetParam());
  asyncio_test::SocketPair sp;
  TestOp op(OpKind::poll_in, sp.a.get());
  e.engine->submit(op);
  EXPECT_EQ(op.state(), OpState::parked);
  ASSERT_EQ(::write(sp.b.get(), "z", 1), 1);
  e.wait_done(op);
  ASSERT_EQ(op.state(), OpState::done);
  EXPECT_GT(op.result(), 0);
  char c = 0;
  EXPECT_EQ(::recv(sp.a.get(), &c, 1, MSG_DONTWAIT), 1) << "the byte is still there";
  EXPECT_EQ(c, 'z');
}

TEST_P(IoEngineTest, CancelOfAParkedReceiveConsumesNothing) {
  Engine e(GetParam());
  asyncio_test::SocketPair sp;
  std::array<char, 16> buf{};
  TestOp op(OpKind::recv, sp.a.get(), buf.data(), buf.size());
  e.engine->submit(op);
  e.events.clear();
  e.engine->wait(0, e.events);  // submitted to the kernel (io_uring)
  e.engine->cancel(op);
  EXPECT_TRUE(op.cancel_requested());
  if (GetParam() == Backend::epoll) {
    EXPECT_EQ(op.state(), OpState::done) << "epoll cancels at once";
  }
  e.wait_done(op);
  ASSERT_EQ(op.state(), OpState::done);
  EXPECT_EQ(op.result(), -ECANCELED);
  EXPECT_EQ(op.completions, 1);
  ASSERT_EQ(::write(sp.b.get(), "later", 5), 5);
  EXPECT_EQ(::recv(sp.a.get(), buf.data(), buf.size(), MSG_DONTWAIT), 5);
  EXPECT_EQ(e.engine->in_flight(), 0U);
}

TEST_P(IoEngineTest, CancelOfADoneOpChangesNothing) {
  Engine e(GetParam());
  asyncio_test::SocketPair sp;
  ASSERT_EQ(::write(sp.b.get(), "x", 1), 1);
  std::array<char, 4> buf{};
  TestOp op(OpKind::recv, sp.a.get(), buf.data(), buf.size());
  e.engine->submit(op);
  e.wait_done(op);
  e.engine->cancel(op);
  EXPECT_EQ(op.result(), 1);
  EXPECT_EQ(op.completions, 1);
}

TEST_P(IoEngineTest, CancelBeforeSubmissionWasSentLosesNoByte) {
  Engine e(GetParam());
  asyncio_test::SocketPair sp;
  ASSERT_EQ(::write(sp.b.get(), "data", 4), 4);
  std::array<char, 16> buf{};
  TestOp op(OpKind::recv, sp.a.get(), buf.data(), buf.size());
  // On epoll the data is there, so the op is done at once and the cancel changes nothing.
  e.engine->submit(op);
  e.engine->cancel(op);
  e.wait_done(op);
  ASSERT_EQ(op.state(), OpState::done);
  EXPECT_EQ(op.completions, 1);
  if (op.result() > 0) {
    EXPECT_EQ(std::string(buf.data(), static_cast<std::size_t>(op.result())), "data");
  } else {
    EXPECT_EQ(op.result(), -ECANCELED);
    EXPECT_EQ(::recv(sp.a.get(), buf.data(), buf.size(), MSG_DONTWAIT), 4) << "still there";
  }
}

TEST_P(IoEngineTest, AbandonTakesTheOpBackWithoutCompletion) {
  Engine e(GetParam());
  asyncio_test::SocketPair sp;
  std::array<char, 16> buf{};
  TestOp op(OpKind::recv, sp.a.get(), buf.data(), buf.size());
  e.engine->submit(op);
  e.events.clear();
  e.engine->wait(0, e.events);
  e.engine->abandon(op);
  EXPECT_EQ(op.state(), OpState::done);
  EXPECT_EQ(op.completions, 0);
  EXPECT_EQ(e.engine->in_flight(), 0U);
}

TEST_P(IoEngineTest, QuiesceGetsEveryOpBack) {
  Engine e(GetParam());
  asyncio_test::SocketPair sp;
  std::array<std::array<char, 8>, 4> bufs{};
  std::vector<std::unique_ptr<TestOp>> ops;
  for (auto& b : bufs) {
    ops.push_back(std::make_unique<TestOp>(OpKind::recv, sp.a.get(), b.data(), b.size()));
    e.engine->submit(*ops.back());
  }
  e.engine->quiesce();
  if (GetParam() == Backend::io_uring) {
    EXPECT_EQ(e.engine->in_flight(), 0U);
    for (auto& op : ops) EXPECT_EQ(op->state(), OpState::done);
  } else {
    // Parked ops on epoll belong to nobody in the kernel: quiesce leaves them parked.
    EXPECT_EQ(e.engine->in_flight(), 4U);
    for (auto& op : ops) e.engine->abandon(*op);
  }
}

TEST_P(IoEngineTest, BadFdCompletesWithEbadf) {
  Engine e(GetParam());
  std::array<char, 4> buf{};
  TestOp op(OpKind::recv, -1, buf.data(), buf.size());
  e.engine->submit(op);
  e.wait_done(op);
  ASSERT_EQ(op.state(), OpState::done);
  EXPECT_EQ(op.result(), -EBADF);
}

TEST_P(IoEngineTest, WatchIsLevelTriggered) {
  Engine e(GetParam());
  asyncio_test::SocketPair sp;
  ASSERT_EQ(::write(sp.b.get(), "x", 1), 1);
  e.engine->update(sp.a.get(), true, false);
  for (int round = 0; round < 3; ++round) {
    e.events.clear();
    for (int i = 0; i < 20 && e.events.empty(); ++i) e.engine->wait(100, e.events);
    ASSERT_EQ(e.events.size(), 1U) << "round " << round;
    EXPECT_EQ(e.events[0].fd, sp.a.get());
    EXPECT_TRUE(e.events[0].readable);
  }
  e.engine->update(sp.a.get(), false, false);
  e.events.clear();
  e.engine->wait(20, e.events);
  e.engine->wait(20, e.events);
  EXPECT_TRUE(e.events.empty());
}

TEST_P(IoEngineTest, WakeFdWakesTheWait) {
  Engine e(GetParam());
  asyncio::sys::eventfd_signal(e.wake.get());
  bool woken = false;
  for (int i = 0; i < 20 && !woken; ++i) woken = e.engine->wait(1000, e.events);
  EXPECT_TRUE(woken);
}

TEST_P(IoEngineTest, PlannedFaultFailsTheOp) {
  Engine e(GetParam());
  asyncio_test::SocketPair sp;
  ASSERT_EQ(::write(sp.b.get(), "x", 1), 1);
  asyncio::sys::inject_fault({.call = Call::recv, .nth = 1, .error = ECONNRESET});
  std::array<char, 4> buf{};
  TestOp op(OpKind::recv, sp.a.get(), buf.data(), buf.size());
  e.engine->submit(op);
  e.wait_done(op);
  EXPECT_EQ(op.result(), -ECONNRESET);
}

TEST_P(IoEngineTest, PlannedShortReceive) {
  Engine e(GetParam());
  asyncio_test::SocketPair sp;
  ASSERT_EQ(::write(sp.b.get(), "abcdef", 6), 6);
  asyncio::sys::inject_fault({.call = Call::recv, .nth = 1, .error = 0, .short_to = 2});
  std::array<char, 8> buf{};
  TestOp op(OpKind::recv, sp.a.get(), buf.data(), buf.size());
  e.engine->submit(op);
  e.wait_done(op);
  ASSERT_EQ(op.result(), 2);
  EXPECT_EQ(std::string(buf.data(), 2), "ab");
}

INSTANTIATE_TEST_SUITE_P(Engines, IoEngineTest,
                         ::testing::Values(Backend::epoll, Backend::io_uring), engine_name);

// ---- epoll only: registration ---------------------------------------------------------------

TEST(EpollEngine, AnFdIsRegisteredOnceHoweverManyOpsParkOnIt) {
  Engine e(Backend::epoll);
  asyncio_test::SocketPair sp;
  const auto ctl0 = asyncio::sys::call_count(Call::epoll_ctl);
  std::array<char, 4> buf{};
  for (int i = 0; i < 100; ++i) {
    TestOp op(OpKind::recv, sp.a.get(), buf.data(), buf.size());
    e.engine->submit(op);
    ASSERT_EQ(op.state(), OpState::parked);
    ASSERT_EQ(::write(sp.b.get(), "x", 1), 1);
    e.wait_done(op);
    ASSERT_EQ(op.result(), 1);
  }
  EXPECT_EQ(asyncio::sys::call_count(Call::epoll_ctl) - ctl0, 1U);
}

TEST(EpollEngine, AnOpOnAReadyFdMakesOneSyscall) {
  Engine e(Backend::epoll);
  asyncio_test::SocketPair sp;
  std::array<char, 4> buf{};
  ASSERT_EQ(::write(sp.b.get(), "ab", 2), 2);
  const auto recv0 = asyncio::sys::call_count(Call::recv);
  const auto wait0 = asyncio::sys::call_count(Call::epoll_wait);
  TestOp op(OpKind::recv, sp.a.get(), buf.data(), 1);
  e.engine->submit(op);
  ASSERT_EQ(op.result(), 1);
  EXPECT_EQ(asyncio::sys::call_count(Call::recv) - recv0, 1U);
  EXPECT_EQ(asyncio::sys::call_count(Call::epoll_wait) - wait0, 0U);
}

TEST(EpollEngine, AClosedAndReusedFdNumberIsRegisteredAfresh) {
  Engine e(Backend::epoll);
  std::array<char, 4> buf{};
  int number = -1;
  {
    asyncio_test::SocketPair first;
    number = first.a.get();
    TestOp op(OpKind::recv, number, buf.data(), buf.size());
    e.engine->submit(op);
    ASSERT_EQ(::write(first.b.get(), "1", 1), 1);
    e.wait_done(op);
    ASSERT_EQ(op.result(), 1);
  }  // closed: the kernel dropped the registration
  asyncio_test::SocketPair second;
  ASSERT_EQ(second.a.get(), number) << "the lowest free number comes back";
  TestOp op(OpKind::recv, second.a.get(), buf.data(), buf.size());
  e.engine->submit(op);
  ASSERT_EQ(op.state(), OpState::parked);
  ASSERT_EQ(::write(second.b.get(), "2", 1), 1);
  e.wait_done(op);
  ASSERT_EQ(op.state(), OpState::done) << "a stale registration would wait forever";
  EXPECT_EQ(op.result(), 1);
  EXPECT_EQ(buf[0], '2');
}

// ---- io_uring only: batching ----------------------------------------------------------------

TEST(UringEngine, OneEnterPerWaitForABatchOfSubmissions) {
  std::unique_ptr<Engine> e;
  try {
    e = std::make_unique<Engine>(Backend::io_uring);
  } catch (const std::exception& ex) {
    GTEST_SKIP() << ex.what();
  }
  std::array<asyncio_test::SocketPair, 8> pairs;
  std::array<std::array<char, 4>, 8> bufs{};
  std::vector<std::unique_ptr<TestOp>> ops;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    ASSERT_EQ(::write(pairs[i].b.get(), "x", 1), 1);
    ops.push_back(std::make_unique<TestOp>(OpKind::recv, pairs[i].a.get(), bufs[i].data(), 4));
    e->engine->submit(*ops.back());
  }
  const auto enters0 = asyncio::sys::call_count(Call::io_uring_enter);
  e->events.clear();
  e->engine->wait(1000, e->events);
  EXPECT_EQ(asyncio::sys::call_count(Call::io_uring_enter) - enters0, 1U);
  for (int i = 0; i < 20 && e->engine->in_flight() > 0; ++i) e->engine->wait(100, e->events);
  for (auto& op : ops) EXPECT_EQ(op->result(), 1);
}

}  // namespace

// ---- choosing the engine where io_uring_setup fails -------------------------------------------

namespace engine_choice {

class UnsetBackendEnv {
 public:
  UnsetBackendEnv() {
    if (const char* v = std::getenv("ASYNCIO_BACKEND")) saved_ = v;
    ::unsetenv("ASYNCIO_BACKEND");
  }
  UnsetBackendEnv(const UnsetBackendEnv&) = delete;
  UnsetBackendEnv& operator=(const UnsetBackendEnv&) = delete;
  ~UnsetBackendEnv() {
    if (saved_) ::setenv("ASYNCIO_BACKEND", saved_->c_str(), 1);
    asyncio::sys::clear_faults();
  }

 private:
  std::optional<std::string> saved_;
};

Backend backend_of(asyncio::EventLoop& loop) {
  return asyncio::detail::io_of(loop).backend();
}

TEST(EngineChoice, AutomaticPicksIoUringWhereTheKernelAllowsIt) {
  UnsetBackendEnv env;
  try {
    Engine probe(Backend::io_uring);
  } catch (const std::exception& e) {
    GTEST_SKIP() << e.what();
  }
  auto loop = asyncio::new_event_loop();
  EXPECT_EQ(backend_of(*loop), Backend::io_uring);
}

TEST(EngineChoice, AutomaticFallsBackToEpollWhenIoUringSetupFails) {
  UnsetBackendEnv env;
  asyncio::sys::inject_fault({.call = Call::io_uring_setup, .nth = 1, .error = ENOSYS});
  auto loop = asyncio::new_event_loop();
  EXPECT_EQ(backend_of(*loop), Backend::epoll);
}

TEST(EngineChoice, DebugModeNotesTheFallback) {
  UnsetBackendEnv env;
  asyncio::sys::inject_fault({.call = Call::io_uring_setup, .nth = 1, .error = EPERM});
  ::testing::internal::CaptureStderr();
  auto loop = asyncio::new_event_loop(asyncio::RunOptions{.debug = true});
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(backend_of(*loop), Backend::epoll);
  EXPECT_NE(err.find("io_uring is not available"), std::string::npos) << err;
  EXPECT_NE(err.find("using epoll"), std::string::npos) << err;
}

TEST(EngineChoice, ExplicitIoUringThrowsAClearErrorWhenSetupFails) {
  UnsetBackendEnv env;
  asyncio::sys::inject_fault({.call = Call::io_uring_setup, .nth = 1, .error = EPERM});
  try {
    (void)asyncio::new_event_loop(asyncio::RunOptions{.backend = Backend::io_uring});
    FAIL() << "no exception";
  } catch (const asyncio::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("io_uring backend is not available"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find(std::strerror(EPERM)), std::string::npos) << e.what();
  }
}

TEST(EngineChoice, EnvironmentIoUringIsAnExplicitChoice) {
  UnsetBackendEnv env;
  ::setenv("ASYNCIO_BACKEND", "io_uring", 1);
  asyncio::sys::inject_fault({.call = Call::io_uring_setup, .nth = 1, .error = ENOSYS});
  EXPECT_THROW((void)asyncio::new_event_loop(), asyncio::RuntimeError);
}

TEST(EngineChoice, EnvironmentEpollWins) {
  UnsetBackendEnv env;
  ::setenv("ASYNCIO_BACKEND", "epoll", 1);
  auto loop = asyncio::new_event_loop();
  EXPECT_EQ(backend_of(*loop), Backend::epoll);
}

}  // namespace engine_choice
