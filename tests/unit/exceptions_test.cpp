// Tests for asyncio/exceptions.hpp (the error types, API.md §8) and for the loop's exception
// handler (ExceptionContext, set/get/call/default_exception_handler).
//
// Translated from CPython 3.11 Lib/test/test_asyncio/test_base_events.py
// (test_set_exc_handler_*, test_default_exc_handler_*, test_set_exc_handler_broken,
// test_run_once_logging / slow callbacks in debug mode) and test_futures.py (a done callback
// that raises is reported, the loop goes on), where it applies to C++.
#include <cerrno>
#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"

namespace {

using namespace std::chrono_literals;
using asyncio::Coro;
using asyncio::EventLoop;
using asyncio::ExceptionContext;
using asyncio_test::contains;
using asyncio_test::holds;
using asyncio_test::LogLines;
using asyncio_test::RecordingHandler;
using asyncio_test::what_of;

// ---- the exception handler ---------------------------------------------------------------------

// Issue 2 / test_run_once_logging: a callback that throws is reported through the handler,
// and the loop goes on with the next callback.
TEST(ExceptionHandler, CallbackExceptionIsReportedAndTheLoopKeepsRunning) {
  auto loop = asyncio::new_event_loop();
  RecordingHandler rec(*loop);
  LogLines log;
  loop->call_soon([] { throw asyncio::ValueError("bad callback"); });
  loop->call_soon([&] { log.add("after"); });
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  EXPECT_EQ(log.joined(), "after");
  ASSERT_EQ(rec.size(), 1U);
  const ExceptionContext ctx = rec.at(0);
  EXPECT_TRUE(contains(ctx.message, "Exception in callback")) << ctx.message;
  EXPECT_TRUE(holds<asyncio::ValueError>(ctx.exception));
  EXPECT_EQ(what_of(ctx.exception), "bad callback");
  EXPECT_FALSE(ctx.task);
}

// test_default_exc_handler_callback: with no handler set, the default one prints to stderr.
TEST(ExceptionHandler, WithoutAHandlerErrorsArePrintedToStderr) {
  auto loop = asyncio::new_event_loop();
  EXPECT_FALSE(loop->get_exception_handler());
  testing::internal::CaptureStderr();
  loop->call_soon([] { throw std::logic_error("printed error"); });
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(err, "Exception in callback")) << err;
  EXPECT_TRUE(contains(err, "printed error")) << err;
}

// test_default_exc_handler_coro: the default handler names the message, exception and task.
TEST(ExceptionHandler, DefaultHandlerPrintsMessageExceptionAndTask) {
  const std::string err = asyncio::run([]() -> Coro<std::string> {
    EventLoop& loop = asyncio::get_running_loop();
    ExceptionContext ctx;
    ctx.message = "something happened";
    ctx.exception = std::make_exception_ptr(asyncio::ValueError("the details"));
    ctx.task = asyncio::current_task();
    testing::internal::CaptureStderr();
    loop.default_exception_handler(ctx);
    co_return testing::internal::GetCapturedStderr();
  }());
  EXPECT_TRUE(contains(err, "something happened")) << err;
  EXPECT_TRUE(contains(err, "the details")) << err;
  EXPECT_TRUE(contains(err, "Task-")) << err;  // the main task's default name
}

// test_set_exc_handler_custom / test_set_exc_handler_invalid: set, get, and reset to default.
TEST(ExceptionHandler, SetGetAndResetTheHandler) {
  auto loop = asyncio::new_event_loop();
  int calls = 0;
  loop->set_exception_handler([&](EventLoop&, const ExceptionContext&) { ++calls; });
  ASSERT_TRUE(loop->get_exception_handler());
  loop->call_exception_handler({"one", {}, {}, {}});
  EXPECT_EQ(calls, 1);
  loop->set_exception_handler({});
  EXPECT_FALSE(loop->get_exception_handler());
  testing::internal::CaptureStderr();
  loop->call_exception_handler({"two", {}, {}, {}});
  EXPECT_TRUE(contains(testing::internal::GetCapturedStderr(), "two"));
  EXPECT_EQ(calls, 1);
}

// The handler gets the loop and the context exactly as given to call_exception_handler.
TEST(ExceptionHandler, HandlerReceivesTheLoopAndTheContextUnchanged) {
  asyncio::run([]() -> Coro<void> {
    EventLoop& loop = asyncio::get_running_loop();
    EventLoop* seen_loop = nullptr;
    ExceptionContext seen;
    loop.set_exception_handler([&](EventLoop& l, const ExceptionContext& c) {
      seen_loop = &l;
      seen = c;
    });
    auto err = std::make_exception_ptr(asyncio::TimeoutError("late"));
    loop.call_exception_handler({"custom message", err, asyncio::current_task(), "my callback"});
    EXPECT_EQ(seen_loop, &loop);
    EXPECT_EQ(seen.message, "custom message");
    EXPECT_EQ(seen.exception, err);
    EXPECT_TRUE(seen.task == asyncio::current_task());
    EXPECT_EQ(seen.callback, "my callback");
    loop.set_exception_handler({});  // `seen` dies with this frame
    co_return;
  }());
}

// test_set_exc_handler_broken: a handler that throws never breaks the loop; the default
// handler reports both the handler's failure and the original context.
TEST(ExceptionHandler, FailingHandlerFallsBackToTheDefaultHandler) {
  auto loop = asyncio::new_event_loop();
  loop->set_exception_handler(
      [](EventLoop&, const ExceptionContext&) { throw std::runtime_error("handler is broken"); });
  LogLines log;
  testing::internal::CaptureStderr();
  loop->call_soon([] { throw asyncio::ValueError("original error"); });
  loop->call_soon([&] { log.add("still running"); });
  loop->call_soon([&] { loop->stop(); });
  EXPECT_NO_THROW(loop->run_forever());
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(log.joined(), "still running");
  EXPECT_TRUE(contains(err, "Unhandled error in exception handler")) << err;
  EXPECT_TRUE(contains(err, "handler is broken")) << err;
  EXPECT_TRUE(contains(err, "original error")) << err;
}

TEST(ExceptionHandler, HandlerThrowingANonStdExceptionIsContained) {
  auto loop = asyncio::new_event_loop();
  loop->set_exception_handler([](EventLoop&, const ExceptionContext&) { throw 42; });
  testing::internal::CaptureStderr();
  EXPECT_NO_THROW(loop->call_exception_handler({"context message", {}, {}, {}}));
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(err, "Unhandled error in exception handler")) << err;
  EXPECT_TRUE(contains(err, "context message")) << err;
}

// Issue 2 / test_futures.py: a done callback that throws is reported through the handler;
// the other done callbacks and the loop keep going.
TEST(ExceptionHandler, ThrowingDoneCallbackIsReportedAndTheLoopKeepsRunning) {
  auto loop = asyncio::new_event_loop();
  RecordingHandler rec(*loop);
  LogLines log;
  asyncio::Future<int> fut = loop->create_future<int>();
  fut.add_done_callback([](asyncio::Future<int>&) { throw asyncio::ValueError("in callback"); });
  fut.add_done_callback([&](asyncio::Future<int>& f) { log.add(std::to_string(f.result())); });
  loop->call_soon([fut]() mutable { fut.set_result(9); });
  EXPECT_EQ(loop->run_until_complete(fut), 9);
  EXPECT_EQ(loop->run_until_complete([]() -> Coro<int> { co_return 1; }()), 1);
  EXPECT_EQ(log.joined(), "9");
  ASSERT_EQ(rec.size(), 1U);
  EXPECT_EQ(what_of(rec.at(0).exception), "in callback");
}

// Debug mode names the callback that failed.
TEST(ExceptionHandler, DebugModeNamesTheFailingCallback) {
  auto loop = asyncio::new_event_loop({.debug = true});
  RecordingHandler rec(*loop);
  loop->call_soon([] { throw asyncio::ValueError("x"); });
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  ASSERT_EQ(rec.size(), 1U);
  EXPECT_TRUE(contains(rec.at(0).message, "Exception in callback")) << rec.at(0).message;
  EXPECT_FALSE(rec.at(0).callback.empty());
}

// test_run_once_logging / API §9: in debug mode a callback that holds the loop longer than
// slow_callback_duration is reported with its duration.
TEST(ExceptionHandler, DebugModeReportsSlowCallbacks) {
  auto loop = asyncio::new_event_loop({.debug = true});
  RecordingHandler rec(*loop);
  loop->slow_callback_duration = 0.01;
  loop->call_soon([] { std::this_thread::sleep_for(30ms); });
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  ASSERT_EQ(rec.size(), 1U);
  EXPECT_TRUE(contains(rec.at(0).message, "took")) << rec.at(0).message;
  EXPECT_TRUE(contains(rec.at(0).message, "seconds")) << rec.at(0).message;
  EXPECT_FALSE(rec.at(0).exception);
}

TEST(ExceptionHandler, SlowCallbacksAreNotReportedOutsideDebugMode) {
  if (std::getenv("ASYNCIO_DEBUG") != nullptr) GTEST_SKIP() << "ASYNCIO_DEBUG is set";
  auto loop = asyncio::new_event_loop();
  RecordingHandler rec(*loop);
  loop->slow_callback_duration = 0.001;
  loop->call_soon([] { std::this_thread::sleep_for(10ms); });
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  EXPECT_TRUE(rec.empty());
}

// test_run_until_complete_baseexception: KeyboardInterrupt is not an error to report: it
// leaves the loop, which stays usable.
TEST(ExceptionHandler, KeyboardInterruptFromACallbackLeavesTheLoop) {
  auto loop = asyncio::new_event_loop();
  RecordingHandler rec(*loop);
  loop->call_soon([] { throw asyncio::KeyboardInterrupt(); });
  EXPECT_THROW(loop->run_forever(), asyncio::KeyboardInterrupt);
  EXPECT_FALSE(loop->is_running());
  EXPECT_TRUE(rec.empty());
  EXPECT_EQ(loop->run_until_complete([]() -> Coro<int> { co_return 5; }()), 5);
}

// A task whose body lets KeyboardInterrupt escape makes run_until_complete throw it.
TEST(ExceptionHandler, KeyboardInterruptFromATaskLeavesRunUntilComplete) {
  auto loop = asyncio::new_event_loop();
  EXPECT_THROW(loop->run_until_complete([]() -> Coro<void> {
    co_await asyncio::sleep(0);
    throw asyncio::KeyboardInterrupt();
  }()),
               asyncio::KeyboardInterrupt);
  EXPECT_FALSE(loop->is_running());
}

// As in CPython, the callbacks left in the ready queue when KeyboardInterrupt escaped run on
// the next run, none is lost.
TEST(ExceptionHandler, CallbacksLeftAfterAKeyboardInterruptRunOnTheNextRun) {
  auto loop = asyncio::new_event_loop();
  LogLines log;
  loop->call_soon([&] {
    log.add("a");
    throw asyncio::KeyboardInterrupt();
  });
  loop->call_soon([&] { log.add("b"); });
  EXPECT_THROW(loop->run_forever(), asyncio::KeyboardInterrupt);
  EXPECT_EQ(log.joined(), "a");
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  EXPECT_EQ(log.joined(), "a b");
}

TEST(ExceptionHandler, ExceptionContextIsADefaultConstructibleAggregate) {
  static_assert(std::is_aggregate_v<ExceptionContext>);
  static_assert(std::is_default_constructible_v<ExceptionContext>);
  const ExceptionContext ctx{};
  EXPECT_TRUE(ctx.message.empty());
  EXPECT_FALSE(ctx.exception);
  EXPECT_FALSE(ctx.task);
  EXPECT_TRUE(ctx.callback.empty());
  const ExceptionContext designated{.message = "m", .exception = {}, .task = {}, .callback = {}};
  EXPECT_EQ(designated.message, "m");
}

// ---- the error types (API.md §8) ---------------------------------------------------------------

// CancelledError and KeyboardInterrupt are Python BaseExceptions: not std::exceptions.
TEST(Exceptions, CancellationAndInterruptAreNotStdExceptions) {
  static_assert(!std::is_base_of_v<std::exception, asyncio::CancelledError>);
  static_assert(!std::is_base_of_v<std::exception, asyncio::KeyboardInterrupt>);
  bool swallowed = false;
  try {
    try {
      throw asyncio::CancelledError("stop");
    } catch (const std::exception&) {
      swallowed = true;
    }
  } catch (const asyncio::CancelledError& e) {
    EXPECT_EQ(e.message(), "stop");
  }
  EXPECT_FALSE(swallowed);
  EXPECT_STREQ(asyncio::KeyboardInterrupt().what(), "KeyboardInterrupt");
}

TEST(Exceptions, CancelledErrorCarriesTheCancelMessage) {
  EXPECT_EQ(asyncio::CancelledError().message(), "");
  EXPECT_STREQ(asyncio::CancelledError().what(), "CancelledError");
  EXPECT_STREQ(asyncio::CancelledError("because").what(), "because");
}

template <class E>
constexpr bool is_asyncio_error =
    std::is_base_of_v<asyncio::Error, E> && std::is_base_of_v<std::runtime_error, E>;

TEST(Exceptions, EveryOtherErrorIsAnAsyncioErrorAndAStdRuntimeError) {
  static_assert(std::is_base_of_v<std::runtime_error, asyncio::Error>);
  static_assert(is_asyncio_error<asyncio::TimeoutError>);
  static_assert(is_asyncio_error<asyncio::InvalidStateError>);
  static_assert(is_asyncio_error<asyncio::RuntimeError>);
  static_assert(is_asyncio_error<asyncio::ValueError>);
  static_assert(is_asyncio_error<asyncio::IncompleteReadError>);
  static_assert(is_asyncio_error<asyncio::LimitOverrunError>);
  static_assert(is_asyncio_error<asyncio::QueueEmpty>);
  static_assert(is_asyncio_error<asyncio::QueueFull>);
  static_assert(is_asyncio_error<asyncio::QueueShutDown>);
  static_assert(is_asyncio_error<asyncio::BrokenBarrierError>);
  static_assert(is_asyncio_error<asyncio::ExceptionGroup>);
  try {
    throw asyncio::InvalidStateError("not done");
  } catch (const asyncio::Error& e) {
    EXPECT_STREQ(e.what(), "not done");
  }
}

TEST(Exceptions, DefaultMessagesAreThePythonNames) {
  EXPECT_STREQ(asyncio::TimeoutError().what(), "TimeoutError");
  EXPECT_STREQ(asyncio::QueueFull().what(), "QueueFull");
  EXPECT_STREQ(asyncio::QueueEmpty().what(), "QueueEmpty");
  EXPECT_STREQ(asyncio::QueueShutDown().what(), "QueueShutDown");
  EXPECT_STREQ(asyncio::BrokenBarrierError().what(), "BrokenBarrierError");
}

// test_streams / exceptions.py: IncompleteReadError's message and fields.
TEST(Exceptions, IncompleteReadErrorKeepsThePartialDataAndExpectedSize) {
  const asyncio::IncompleteReadError e("abc", 10);
  EXPECT_EQ(e.partial, "abc");
  EXPECT_EQ(e.expected, std::optional<std::size_t>(10));
  EXPECT_STREQ(e.what(), "3 bytes read on a total of 10 expected bytes");
  const asyncio::IncompleteReadError open_ended("", std::nullopt);
  EXPECT_STREQ(open_ended.what(), "0 bytes read on a total of undefined expected bytes");
}

TEST(Exceptions, LimitOverrunErrorKeepsTheConsumedCount) {
  const asyncio::LimitOverrunError e("Separator is not found", 17);
  EXPECT_EQ(e.consumed, 17U);
  EXPECT_STREQ(e.what(), "Separator is not found");
}

TEST(Exceptions, ExceptionGroupKeepsItsExceptionsInOrder) {
  std::vector<std::exception_ptr> errs{std::make_exception_ptr(asyncio::ValueError("1")),
                                       std::make_exception_ptr(asyncio::TimeoutError("2"))};
  const asyncio::ExceptionGroup g("two errors", errs);
  EXPECT_STREQ(g.what(), "two errors");
  ASSERT_EQ(g.exceptions().size(), 2U);
  EXPECT_TRUE(holds<asyncio::ValueError>(g.exceptions()[0]));
  EXPECT_TRUE(holds<asyncio::TimeoutError>(g.exceptions()[1]));
}

// The BaseException rule at work: `catch (const std::exception&)` in a task never swallows
// the task's cancellation.
TEST(Exceptions, CatchingStdExceptionInATaskDoesNotSwallowCancellation) {
  bool swallowed = false;
  const bool cancelled = asyncio_test::run_virtual([](bool* swallowed) -> Coro<bool> {
    asyncio::Task<void> t = asyncio::create_task([](bool* swallowed) -> Coro<void> {
      try {
        co_await asyncio::sleep(10);
      } catch (const std::exception&) {
        *swallowed = true;
      }
    }(swallowed));
    co_await asyncio::sleep(1);
    t.cancel();
    std::exception_ptr err;
    try {
      co_await t;
    } catch (const asyncio::CancelledError&) {
      err = std::current_exception();
    }
    co_return err != nullptr&& t.cancelled();
  }(&swallowed));
  EXPECT_TRUE(cancelled);
  EXPECT_FALSE(swallowed);
}

}  // namespace

// ---- OSError and its subclasses (API.md section 8; Python's errno -> class mapping) ----------

namespace {

/// The exception make_os_error(err) holds, rethrown and caught as E.
template <class E>
bool os_error_is(int err) {
  try {
    std::rethrow_exception(asyncio::make_os_error(err, "op"));
  } catch (const E& e) {
    if constexpr (std::is_base_of_v<std::system_error, E>) {
      return e.code().value() == err;
    } else {
      return true;
    }
  } catch (...) {
    return false;
  }
}

}  // namespace

TEST(OSError, ErrnoPicksPythonsSubclass) {
  EXPECT_TRUE(os_error_is<asyncio::BrokenPipeError>(EPIPE));
  EXPECT_TRUE(os_error_is<asyncio::BrokenPipeError>(ESHUTDOWN));
  EXPECT_TRUE(os_error_is<asyncio::ConnectionAbortedError>(ECONNABORTED));
  EXPECT_TRUE(os_error_is<asyncio::ConnectionRefusedError>(ECONNREFUSED));
  EXPECT_TRUE(os_error_is<asyncio::ConnectionResetError>(ECONNRESET));
  EXPECT_TRUE(os_error_is<asyncio::FileNotFoundError>(ENOENT));
  EXPECT_TRUE(os_error_is<asyncio::PermissionError>(EACCES));
  EXPECT_TRUE(os_error_is<asyncio::PermissionError>(EPERM));
  EXPECT_FALSE(os_error_is<asyncio::ConnectionError>(ENOENT));
  EXPECT_FALSE(os_error_is<asyncio::PermissionError>(ENOENT));
}

TEST(OSError, TheHierarchyIsPythons) {
  for (const int err : {EPIPE, ECONNABORTED, ECONNREFUSED, ECONNRESET}) {
    EXPECT_TRUE(os_error_is<asyncio::ConnectionError>(err)) << err;
  }
  for (const int err : {EPIPE, ENOENT, EACCES, EBADF, EMFILE, ENOBUFS}) {
    EXPECT_TRUE(os_error_is<asyncio::OSError>(err)) << err;
    EXPECT_TRUE(os_error_is<std::system_error>(err)) << err;  // still a std::system_error
  }
  EXPECT_FALSE(os_error_is<asyncio::Error>(EBADF));  // a std::system_error, not an asyncio::Error
}

TEST(OSError, RaiseThrowsWithTheErrnoAndAMessage) {
  try {
    asyncio::raise_os_error(ECONNREFUSED, "connect");
    FAIL() << "raise_os_error returned";
  } catch (const asyncio::ConnectionRefusedError& e) {
    EXPECT_EQ(e.errno_value(), ECONNREFUSED);
    EXPECT_EQ(e.code(), std::error_code(ECONNREFUSED, std::generic_category()));
    EXPECT_NE(std::string(e.what()).find("connect"), std::string::npos) << e.what();
  }
}

TEST(OSError, LoopSystemCallFailuresAreOSErrors) {
  auto loop = asyncio::new_event_loop();
  int fds[2] = {-1, -1};
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);
  ::close(fds[1]);
  // A closed fd: epoll_ctl fails with EBADF, raised as a plain OSError.
  try {
    loop->add_reader(fds[0], [] {});
    FAIL() << "add_reader accepted a closed fd";
  } catch (const asyncio::OSError& e) {
    EXPECT_EQ(e.errno_value(), EBADF);
  }
}
