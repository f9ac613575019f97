// CPython 3.12 conformance: the event loop.
//
// These translate tests of Lib/test/test_asyncio/test_base_events.py and test_events.py that no
// other test of ours covered (docs/conformance.md lists every one and where it went); each names
// the Python test it follows. Where a translation shows that we differ from CPython, the test
// stays, skipped with "differs from CPython: ...", and docs/conformance.md lists the difference.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio::EventLoop;
using asyncio_test::RecordingHandler;

// test_check_thread: in debug mode, call_soon, call_later and call_at called from a thread other
// than the one running the loop raise RuntimeError ("Non-thread-safe operation invoked on an
// event loop other than the current one"). The other thread calls them while the loop's thread
// waits for it inside a task step, so the loop is running but never touched concurrently.
TEST(BaseEventsConformance, DebugLoopRefusesCallSoonFromAnotherThread) {
  auto loop = asyncio::new_event_loop({.debug = true});
  int refused = 0;
  loop->run_until_complete([](EventLoop* lp, int* count) -> Coro<void> {
    std::thread other([lp, count] {
      try {
        lp->call_soon([] {});
      } catch (const asyncio::RuntimeError&) {
        ++*count;
      }
      try {
        lp->call_later(60, [] {});
      } catch (const asyncio::RuntimeError&) {
        ++*count;
      }
      try {
        lp->call_at(lp->time() + 60, [] {});
      } catch (const asyncio::RuntimeError&) {
        ++*count;
      }
    });
    other.join();
    co_return;
  }(loop.get(), &refused));
  EXPECT_EQ(refused, 3);
}

// test_run_forever_keyboard_interrupt: a KeyboardInterrupt that leaves run_until_complete is
// not also reported as an error of the task it came from (debug mode, where our "exception was
// never retrieved" report is made).
TEST(BaseEventsConformance, KeyboardInterruptFromATaskIsNotReported) {
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options(/*debug=*/true));
  RecordingHandler handler(*loop);
  EXPECT_THROW(loop->run_until_complete([]() -> Coro<void> {
    throw asyncio::KeyboardInterrupt();
    co_return;
  }()),
               asyncio::KeyboardInterrupt);
  loop->close();
  EXPECT_TRUE(handler.empty()) << handler.at(0).message;
}

// test_call_soon_threadsafe: a callback posted from another thread before a call_soon() on the
// loop's thread runs first (Python appends both to the same ready queue, in call order).
TEST(EventsConformance, ThreadsafePostMadeFirstRunsFirst) {
  auto loop = asyncio::new_event_loop();
  std::vector<std::string> results;
  auto callback = [&results, lp = loop.get()](const char* arg) {
    results.emplace_back(arg);
    if (results.size() >= 2) lp->stop();
  };
  std::thread other([&] { loop->call_soon_threadsafe([&] { callback("hello"); }); });
  other.join();
  loop->call_soon([&] { callback("world"); });
  loop->run_forever();
  EXPECT_EQ(results, (std::vector<std::string>{"hello", "world"}));
}

// test_call_soon_threadsafe_same_thread: the same from the loop's own thread.
TEST(EventsConformance, ThreadsafePostFromTheLoopThreadKeepsTheOrder) {
  auto loop = asyncio::new_event_loop();
  std::vector<std::string> results;
  auto callback = [&results, lp = loop.get()](const char* arg) {
    results.emplace_back(arg);
    if (results.size() >= 2) lp->stop();
  };
  loop->call_soon_threadsafe([&] { callback("hello"); });
  loop->call_soon([&] { callback("world"); });
  loop->run_forever();
  EXPECT_EQ(results, (std::vector<std::string>{"hello", "world"}));
}

}  // namespace
