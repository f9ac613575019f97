// CPython 3.12 conformance: timeout() and wait_for().
//
// These translate tests of Lib/test/test_asyncio/test_timeouts.py and test_waitfor.py that no
// other test of ours covered (docs/conformance.md lists every one and where it went); each names
// the Python test it follows. Where a translation shows that we differ from CPython, the test
// stays, skipped with "differs from CPython: ...", and docs/conformance.md lists the difference.
//
// Python keeps the `async with asyncio.timeout() as cm` object after the block; our
// timeout(d, body) owns its Timeout, so the tests that look at a Timeout after its block drive
// one by hand with enter()/exit(), which is what the block does.
#include <exception>
#include <string>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::CancelledError;
using asyncio::Coro;
using asyncio::Task;
using asyncio::Timeout;
using asyncio::TimeoutError;
using asyncio_test::run_virtual;

double now() {
  return asyncio::get_running_loop().time();
}

// test_repr_expired
TEST(TimeoutsConformance, ReprAfterExpiryIsExpired) {
  run_virtual([]() -> Coro<void> {
    Timeout cm(now() + 0.01);
    cm.enter();
    std::exception_ptr error;
    try {
      co_await asyncio::sleep(10);
    } catch (...) {
      error = std::current_exception();
    }
    EXPECT_THROW(cm.exit(error), TimeoutError);
    EXPECT_EQ(cm.repr(), "<Timeout [expired]>");
  }());
}

// test_repr_finished
TEST(TimeoutsConformance, ReprAfterTheBlockIsFinished) {
  run_virtual([]() -> Coro<void> {
    Timeout cm(now() + 10);
    cm.enter();
    co_await asyncio::sleep(0);
    cm.exit(nullptr);
    EXPECT_EQ(cm.repr(), "<Timeout [finished]>");
  }());
}

// test_timeout_double_enter: a Timeout whose block has finished cannot be entered again.
TEST(TimeoutsConformance, EnteringAFinishedTimeoutAgainThrowsRuntimeError) {
  run_virtual([]() -> Coro<void> {
    Timeout cm(now() + 0.01);
    cm.enter();
    cm.exit(nullptr);
    try {
      cm.enter();
      ADD_FAILURE() << "no RuntimeError";
    } catch (const asyncio::RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find("has already been entered"), std::string::npos)
          << e.what();
    }
    co_return;
  }());
}

// test_timeout_exception_cause: the TimeoutError's cause is the CancelledError it replaced.
TEST(TimeoutsConformance, TimeoutErrorCarriesTheCancelledErrorAsItsCause) {
  run_virtual([]() -> Coro<void> {
    std::exception_ptr cause;
    try {
      co_await asyncio::timeout(0, asyncio::sleep(1));
      ADD_FAILURE() << "no TimeoutError";
    } catch (const TimeoutError& e) {
      cause = e.cause();
    }
    EXPECT_TRUE(asyncio_test::holds<CancelledError>(cause));
  }());
}

Coro<std::string> done_after(double delay) {
  co_await asyncio::sleep(delay);
  co_return "done";
}

// test_shielded_timeout (WaitForShieldTests): wait_for() gives up on the shield, but the
// shielded task is not cancelled and finishes later.
TEST(WaitForConformance, ShieldedTaskOutlivesTheTimeOut) {
  run_virtual([]() -> Coro<void> {
    Task<std::string> task = asyncio::create_task(done_after(0.1));
    EXPECT_THROW(co_await asyncio::wait_for(asyncio::shield(task), 0.01), TimeoutError);
    EXPECT_FALSE(task.done());
    EXPECT_FALSE(task.cancelled());
    EXPECT_EQ(co_await task, "done");
    EXPECT_DOUBLE_EQ(now(), 0.1);
  }());
}

// test_zero_timeout (WaitForShieldTests): the same with a time-out of zero.
TEST(WaitForConformance, ShieldedTaskOutlivesAZeroTimeOut) {
  run_virtual([]() -> Coro<void> {
    Task<std::string> task = asyncio::create_task(done_after(0.01));
    EXPECT_THROW(co_await asyncio::wait_for(asyncio::shield(task), 0), TimeoutError);
    EXPECT_FALSE(task.done());
    EXPECT_FALSE(task.cancelled());
    co_await asyncio::sleep(0.1);
    EXPECT_TRUE(task.done());
    EXPECT_EQ(task.result(), "done");
  }());
}

// test_none_timeout (WaitForShieldTests): wait_for() has no `None` form; a time-out that is never
// reached behaves the same: the shielded task runs to completion and its result comes through.
TEST(WaitForConformance, ShieldedTaskWithATimeOutNeverReachedCompletes) {
  run_virtual([]() -> Coro<void> {
    Task<std::string> task = asyncio::create_task(done_after(0.1));
    EXPECT_EQ(co_await asyncio::wait_for(asyncio::shield(task), 3600), "done");
    EXPECT_TRUE(task.done());
    EXPECT_EQ(co_await task, "done");
  }());
}

}  // namespace
