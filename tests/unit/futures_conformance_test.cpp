// CPython 3.12 conformance: futures.
//
// These translate tests of Lib/test/test_asyncio/test_futures.py that no other test of ours
// covered (docs/conformance.md lists every one and where it went); each names the Python test
// it follows. Where a translation shows that we differ from CPython, the test stays, skipped with
// "differs from CPython: ...", and docs/conformance.md lists the difference.
//
// The test_tb_logger_* tests check when Python logs "Future exception was never retrieved".
// Here that report is made in debug mode only (docs/python-mapping.md), through the loop's
// exception handler, when the last handle of a failed future goes while its loop runs: so each
// test drops its future inside a coroutine on a debug loop and then looks at the handler.
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio::Future;
using asyncio_test::RecordingHandler;

std::unique_ptr<asyncio::EventLoop> debug_loop() {
  return asyncio::new_event_loop(asyncio_test::virtual_options(/*debug=*/true));
}

std::exception_ptr boom() {
  return std::make_exception_ptr(std::runtime_error("boom"));
}

/// Runs `body` (which creates and drops futures) on a fresh debug loop; the handler's messages.
template <class F>
std::vector<std::string> reports_of(F body) {
  auto loop = debug_loop();
  RecordingHandler handler(*loop);
  loop->run_until_complete(body());
  return handler.messages();
}

// test_tb_logger_abandoned: a future dropped while pending is no error.
TEST(FuturesConformance, APendingFutureDroppedIsNotReported) {
  auto reports = reports_of([]() -> Coro<void> {
    {
      Future<int> f;
      EXPECT_FALSE(f.done());
    }
    co_return;
  });
  EXPECT_TRUE(reports.empty()) << reports.front();
}

// test_tb_logger_result_unretrieved and test_tb_logger_result_retrieved: a result, read or not,
// is no error.
TEST(FuturesConformance, ASucceededFutureIsNeverReported) {
  auto reports = reports_of([]() -> Coro<void> {
    {
      Future<int> unread;
      unread.set_result(42);
    }
    {
      Future<int> read;
      read.set_result(42);
      EXPECT_EQ(read.result(), 42);
    }
    co_return;
  });
  EXPECT_TRUE(reports.empty()) << reports.front();
}

// test_tb_logger_exception_retrieved: exception() counts as looking at the error.
TEST(FuturesConformance, AFailedFutureWhoseExceptionWasAskedIsNotReported) {
  auto reports = reports_of([]() -> Coro<void> {
    {
      Future<int> f;
      f.set_exception(boom());
      EXPECT_NE(f.exception(), nullptr);
    }
    co_return;
  });
  EXPECT_TRUE(reports.empty()) << reports.front();
}

// test_tb_logger_exception_result_retrieved: so does result() that rethrows it.
TEST(FuturesConformance, AFailedFutureWhoseResultWasAskedIsNotReported) {
  auto reports = reports_of([]() -> Coro<void> {
    {
      Future<int> f;
      f.set_exception(boom());
      EXPECT_THROW((void)f.result(), std::runtime_error);
    }
    co_return;
  });
  EXPECT_TRUE(reports.empty()) << reports.front();
}

// test_tb_logger_not_called_after_cancel: cancel() on a failed future returns false, but
// Python's Future.cancel() clears the "never retrieved" flag before it looks at the state, so
// the failure is not reported. The second future, not cancelled, shows the report works.
TEST(FuturesConformance, CancellingAFailedFutureSilencesTheNeverRetrievedReport) {
  auto reports = reports_of([]() -> Coro<void> {
    {
      Future<int> f;
      f.set_exception(boom());
      EXPECT_FALSE(f.cancel());
      EXPECT_FALSE(f.cancelled());
    }
    co_return;
  });
  EXPECT_TRUE(reports.empty()) << reports.front();
  auto control = reports_of([]() -> Coro<void> {
    {
      Future<int> f;
      f.set_exception(boom());
    }
    co_return;
  });
  ASSERT_EQ(control.size(), 1U);
  EXPECT_NE(control[0].find("Future exception was never retrieved"), std::string::npos);
}

}  // namespace
