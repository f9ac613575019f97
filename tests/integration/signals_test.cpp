// Signal handlers of several loops at once, on both engines: each loop that watches a signal
// sees it, whichever thread runs the loop; a loop that does not watch it sees nothing; removing
// one loop's handler leaves the others' in place, and the last one restores the default.
// Python allows add_signal_handler only in the main thread; here every loop may watch signals
// (issue 15: "several loops in several threads each watching their own signals").
#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Backend;
using namespace std::chrono_literals;

/// True while `sig` has its default disposition.
bool signal_is_default(int sig) {
  struct sigaction old {};
  ::sigaction(sig, nullptr, &old);
  return old.sa_handler == SIG_DFL;  // NOLINT(cppcoreguidelines-pro-type-union-access)
}

/// A loop on its own thread that watches `sig` (if non-zero) and counts what it sees until
/// told to stop (or for 10 s at most).
class LoopThread {
 public:
  LoopThread(Backend backend, int sig) : backend_(backend), sig_(sig) {
    thread_ = std::thread([this] { run(); });
  }
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;
  ~LoopThread() {
    stop();
    thread_.join();
  }
  [[nodiscard]] bool ready() const { return ready_.load(); }
  [[nodiscard]] int seen() const { return seen_.load(); }
  void stop() { stop_.store(true); }
  /// Removes the handler (from the loop's thread); true once done.
  void remove() { remove_.store(true); }
  [[nodiscard]] bool removed() const { return removed_.load(); }

 private:
  asyncio::Coro<void> body() {
    auto& loop = asyncio::get_running_loop();
    if (sig_ != 0) loop.add_signal_handler(sig_, [this] { ++seen_; });
    ready_.store(true);
    for (int i = 0; i < 10000 && !stop_.load(); ++i) {  // 10 s at most
      if (remove_.load() && !removed_.load()) {
        EXPECT_TRUE(loop.remove_signal_handler(sig_));
        removed_.store(true);
      }
      co_await asyncio::sleep(0.001);
    }
    if (sig_ != 0 && !removed_.load()) loop.remove_signal_handler(sig_);
  }
  void run() { asyncio::run(body(), asyncio::RunOptions{.backend = backend_}); }

  Backend backend_;
  int sig_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stop_{false};
  std::atomic<bool> remove_{false};
  std::atomic<bool> removed_{false};
  std::atomic<int> seen_{0};
  std::thread thread_;
};

class LoopSignals : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::io_uring) {
      try {
        (void)asyncio::new_event_loop(asyncio::RunOptions{.backend = Backend::io_uring});
      } catch (const std::exception& e) {
        GTEST_SKIP() << e.what();
      }
    }
    // Nothing watches the signals between tests (a leftover handler would hide a bug).
    ASSERT_TRUE(signal_is_default(SIGUSR1));
    ASSERT_TRUE(signal_is_default(SIGUSR2));
  }
};

std::string engine_name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::epoll ? "epoll" : "io_uring";
}

bool all_ready(const std::vector<std::unique_ptr<LoopThread>>& loops) {
  for (const auto& l : loops) {
    if (!l->ready()) return false;
  }
  return true;
}

TEST_P(LoopSignals, TwoLoopsInTwoThreadsBothSeeASignalTheyWatch) {
  std::vector<std::unique_ptr<LoopThread>> loops;
  loops.push_back(std::make_unique<LoopThread>(GetParam(), SIGUSR1));
  loops.push_back(std::make_unique<LoopThread>(GetParam(), SIGUSR1));
  ASSERT_TRUE(asyncio_test::wait_until([&] { return all_ready(loops); }, 10s));
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
  EXPECT_TRUE(
      asyncio_test::wait_until([&] { return loops[0]->seen() == 1 && loops[1]->seen() == 1; }, 10s))
      << loops[0]->seen() << " " << loops[1]->seen();
}

TEST_P(LoopSignals, EachLoopSeesOnlyTheSignalsItWatches) {
  std::vector<std::unique_ptr<LoopThread>> loops;
  loops.push_back(std::make_unique<LoopThread>(GetParam(), SIGUSR1));
  loops.push_back(std::make_unique<LoopThread>(GetParam(), SIGUSR2));
  ASSERT_TRUE(asyncio_test::wait_until([&] { return all_ready(loops); }, 10s));
  ASSERT_EQ(::kill(::getpid(), SIGUSR2), 0);
  EXPECT_TRUE(asyncio_test::wait_until([&] { return loops[1]->seen() == 1; }, 10s));
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
  EXPECT_TRUE(asyncio_test::wait_until([&] { return loops[0]->seen() == 1; }, 10s));
  std::this_thread::sleep_for(20ms);  // a wrong delivery would have arrived by now
  EXPECT_EQ(loops[0]->seen(), 1);
  EXPECT_EQ(loops[1]->seen(), 1);
}

TEST_P(LoopSignals, RemovingOneLoopsHandlerLeavesTheOthers) {
  std::vector<std::unique_ptr<LoopThread>> loops;
  loops.push_back(std::make_unique<LoopThread>(GetParam(), SIGUSR1));
  loops.push_back(std::make_unique<LoopThread>(GetParam(), SIGUSR1));
  ASSERT_TRUE(asyncio_test::wait_until([&] { return all_ready(loops); }, 10s));
  loops[0]->remove();
  ASSERT_TRUE(asyncio_test::wait_until([&] { return loops[0]->removed(); }, 10s));
  EXPECT_FALSE(signal_is_default(SIGUSR1)) << "loop 1 still watches it";
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
  EXPECT_TRUE(asyncio_test::wait_until([&] { return loops[1]->seen() == 1; }, 10s));
  EXPECT_EQ(loops[0]->seen(), 0);
}

TEST_P(LoopSignals, TheLastHandlerRemovedRestoresTheDefault) {
  {
    std::vector<std::unique_ptr<LoopThread>> loops;
    loops.push_back(std::make_unique<LoopThread>(GetParam(), SIGUSR1));
    loops.push_back(std::make_unique<LoopThread>(GetParam(), SIGUSR1));
    ASSERT_TRUE(asyncio_test::wait_until([&] { return all_ready(loops); }, 10s));
    EXPECT_FALSE(signal_is_default(SIGUSR1));
  }  // both loops end, removing their handlers
  EXPECT_TRUE(signal_is_default(SIGUSR1));
}

TEST_P(LoopSignals, ManyLoopsOnOneSignal) {
  std::vector<std::unique_ptr<LoopThread>> loops;
  for (int i = 0; i < 6; ++i) loops.push_back(std::make_unique<LoopThread>(GetParam(), SIGUSR1));
  ASSERT_TRUE(asyncio_test::wait_until([&] { return all_ready(loops); }, 10s));
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
  EXPECT_TRUE(asyncio_test::wait_until(
      [&] {
        for (const auto& l : loops) {
          if (l->seen() != 1) return false;
        }
        return true;
      },
      10s));
}

INSTANTIATE_TEST_SUITE_P(Engines, LoopSignals, ::testing::Values(Backend::epoll, Backend::io_uring),
                         engine_name);

}  // namespace
