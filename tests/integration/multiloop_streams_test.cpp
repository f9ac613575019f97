// Several loops, several threads, one port: each thread runs its own loop with its own
// start_server(..., {.reuse_port = true}) on one port, and clients on yet another thread are
// served by whichever loop the kernel picks (issue 13, "Several loops, several cores"). Run in
// the ThreadSanitizer stage (scripts/test), on both engines: nothing here may be shared between
// the loops except through call_soon_threadsafe and the kernel.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <asyncio.hpp>

#include "engine_test.hpp"

namespace {

using asyncio::Backend;
using asyncio::Coro;
using asyncio::StreamReader;
using asyncio::StreamWriter;

/// One server loop on its own thread: listens with reuse_port, counts the connections it served,
/// stops when told (from another thread, through call_soon_threadsafe).
class ServerThread {
 public:
  ServerThread(Backend backend, std::uint16_t port) : backend_(backend), port_(port) {
    thread_ = std::thread([this] { run(); });
  }
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;
  ~ServerThread() {
    stop();
    if (thread_.joinable()) thread_.join();
  }

  /// The port it listens on, once listening (0 if it failed; then error() says why).
  std::uint16_t port() { return ready_.get_future().get(); }
  void stop() {
    std::lock_guard lock(mu_);
    if (loop_ != nullptr && stop_ != nullptr && !stopped_) {
      stopped_ = true;
      loop_->call_soon_threadsafe([stop = stop_] { stop->set(); });
    }
  }
  [[nodiscard]] int served() const { return served_.load(); }
  [[nodiscard]] std::string error() const {
    std::lock_guard lock(mu_);
    return error_;
  }

 private:
  static Coro<void> echo(std::atomic<int>* served, StreamReader reader, StreamWriter writer) {
    served->fetch_add(1);
    for (;;) {
      const std::string line = co_await reader.readline();
      if (line.empty()) break;
      writer.write(line);
      co_await writer.drain();
    }
    writer.close();
  }

  Coro<void> main() {
    auto stop = std::make_shared<asyncio::Event>();
    {
      std::lock_guard lock(mu_);
      loop_ = &asyncio::get_running_loop();
      stop_ = stop;
    }
    std::atomic<int>* served = &served_;
    asyncio::ServerOptions options{.reuse_port = true};
    asyncio::Server server = co_await asyncio::start_server(
        [served](StreamReader r, StreamWriter w) {
          return echo(served, std::move(r), std::move(w));
        },
        "127.0.0.1", port_, options);
    ready_.set_value(server.port());
    co_await stop->wait();
    server.close();
    server.close_clients();
    co_await server.wait_closed();
  }

  void run() {
    try {
      asyncio::run(main(), asyncio::RunOptions{.backend = backend_});
    } catch (const std::exception& e) {
      std::lock_guard lock(mu_);
      error_ = e.what();
      try {
        ready_.set_value(0);
      } catch (const std::future_error&) {  // NOLINT(bugprone-empty-catch): already set
      }
    }
    std::lock_guard lock(mu_);
    loop_ = nullptr;
  }

  Backend backend_;
  std::uint16_t port_;
  std::promise<std::uint16_t> ready_;
  mutable std::mutex mu_;
  asyncio::EventLoop* loop_ = nullptr;    // guarded by mu_
  std::shared_ptr<asyncio::Event> stop_;  // guarded by mu_; touched on the loop's thread only
  bool stopped_ = false;                  // guarded by mu_
  std::string error_;                     // guarded by mu_
  std::atomic<int> served_{0};
  std::thread thread_;
};

/// `clients` connections to 127.0.0.1:`port`, each sending `lines` lines and checking their
/// echoes; returns how many failed.
Coro<int> clients(std::uint16_t port, int clients, int lines) {
  int failures = 0;
  for (int c = 0; c < clients; ++c) {
    try {
      auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);
      for (int i = 0; i < lines; ++i) {
        const std::string line =
            "client " + std::to_string(c) + " line " + std::to_string(i) + "\n";
        writer.write(line);
        co_await writer.drain();
        if (co_await reader.readline() != line) ++failures;
      }
      writer.close();
      co_await writer.wait_closed();
    } catch (const std::exception&) {
      ++failures;
    }
  }
  co_return failures;
}

/// `c` under a 60-second bound (a hang fails the test rather than the run).
Coro<int> bounded(Coro<int> c) {
  co_return co_await asyncio::wait_for(std::move(c), 60.0);
}

class MultiLoop : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::io_uring) {
      if (auto why = asyncio_test::io_uring_refused()) GTEST_SKIP() << *why;
    }
  }
};

TEST_P(MultiLoop, TwoLoopsOnTwoThreadsShareOnePortWithReusePort) {
  ServerThread first(GetParam(), 0);
  const std::uint16_t port = first.port();
  ASSERT_NE(port, 0) << first.error();
  ServerThread second(GetParam(), port);
  ASSERT_EQ(second.port(), port) << second.error();
  const int failures =
      asyncio::run(bounded(clients(port, 40, 3)), asyncio::RunOptions{.backend = GetParam()});
  EXPECT_EQ(failures, 0);
  first.stop();
  second.stop();
  EXPECT_EQ(first.served() + second.served(), 40);
}

TEST_P(MultiLoop, ClientsOnSeveralThreadsAgainstSeveralLoops) {
  ServerThread first(GetParam(), 0);
  const std::uint16_t port = first.port();
  ASSERT_NE(port, 0) << first.error();
  ServerThread second(GetParam(), port);
  ASSERT_EQ(second.port(), port) << second.error();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&failures, port, backend = GetParam()] {
      failures +=
          asyncio::run(bounded(clients(port, 10, 5)), asyncio::RunOptions{.backend = backend});
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  first.stop();
  second.stop();
  EXPECT_EQ(first.served() + second.served(), 30);
}

TEST_P(MultiLoop, ASecondServerWithoutReusePortIsRefused) {
  ServerThread first(GetParam(), 0);
  const std::uint16_t port = first.port();
  ASSERT_NE(port, 0) << first.error();
  auto attempt = [port]() -> Coro<int> {
    try {
      asyncio::Server s = co_await asyncio::start_server(
          [](StreamReader, StreamWriter) -> Coro<void> { co_return; }, "127.0.0.1", port);
      co_return 0;
    } catch (const asyncio::OSError& e) {
      co_return e.errno_value();
    }
  };
  EXPECT_EQ(asyncio::run(attempt(), asyncio::RunOptions{.backend = GetParam()}), EADDRINUSE);
}

INSTANTIATE_TEST_SUITE_P(Engines, MultiLoop, ::testing::Values(Backend::epoll, Backend::io_uring),
                         asyncio_test::param_name);

}  // namespace
