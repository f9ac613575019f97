// Tests for asyncio::sleep (asyncio/tasks.hpp): the value it returns, sleep(0) as exactly one
// loop iteration, chrono durations, negative and NaN delays, awaiting one sleep twice.
//
// Mirrors CPython's Lib/test/test_asyncio/test_tasks.py (BaseTaskTests: test_sleep,
// test_sleep_zero); a translated test's comment names the Python test. Virtual time throughout:
// loop.time() is checked exactly. Tests marked "FIFO" rely on asyncio's documented order (the
// ready queue runs in order).
#include <chrono>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio::Task;
using asyncio_test::new_virtual_loop;
using asyncio_test::run_virtual;

Coro<std::string> sleeper(double dt, std::string arg) {
  co_await asyncio::sleep(dt / 2);
  std::string res = co_await asyncio::sleep(dt / 2, arg);
  co_return res;
}

// test_sleep
TEST(Sleep, ReturnsItsValueAfterTheDelay) {
  auto loop = new_virtual_loop();
  Task<std::string> t = loop->create_task(sleeper(0.1, "yeah"));
  loop->run_until_complete(t);
  EXPECT_EQ(t.result(), "yeah");
  EXPECT_NEAR(loop->time(), 0.1, 1e-9);
}

Coro<int> sleep_zero_lets_callbacks_run() {
  int result = 0;
  asyncio::get_running_loop().call_soon([&result] { result += 1; });
  EXPECT_EQ(result, 0);
  int num = co_await asyncio::sleep(0, 10);
  EXPECT_EQ(result, 1);  // the call_soon callback ran during the yield
  co_return result + num;
}

// test_sleep_zero (FIFO)
TEST(Sleep, SleepZeroYieldsOneIterationAndReturnsValue) {
  EXPECT_EQ(run_virtual(sleep_zero_lets_callbacks_run()), 11);
}

Coro<double> sleep_an_hour() {
  using namespace std::chrono_literals;
  co_await asyncio::sleep(1h);
  co_await asyncio::sleep(250ms);
  co_await asyncio::sleep(2);
  co_return asyncio::get_running_loop().time();
}

TEST(Sleep, AcceptsChronoDurationsAndWholeSeconds) {
  EXPECT_DOUBLE_EQ(run_virtual(sleep_an_hour()), 3602.25);
}

Coro<double> sleep_negative() {
  co_await asyncio::sleep(-5.0);
  co_return asyncio::get_running_loop().time();
}

TEST(Sleep, NegativeDelayYieldsWithoutMovingTime) {
  EXPECT_DOUBLE_EQ(run_virtual(sleep_negative()), 0.0);
}

// Python: awaiting the same asyncio.sleep() coroutine twice raises RuntimeError.
TEST(Sleep, AwaitingTheSameSleepTwiceThrowsRuntimeError) {
  auto body = []() -> Coro<double> {
    auto nap = asyncio::sleep(1.5);
    co_await nap;
    EXPECT_DOUBLE_EQ(asyncio::get_running_loop().time(), 1.5);
    EXPECT_THROW(co_await nap, asyncio::RuntimeError);
    co_return asyncio::get_running_loop().time();
  };
  EXPECT_DOUBLE_EQ(run_virtual(body()), 1.5);  // the refused await did not sleep
}

TEST(Sleep, NanDelayThrowsValueError) {
  EXPECT_THROW(run_virtual([]() -> Coro<void> {
                 co_await asyncio::sleep(std::numeric_limits<double>::quiet_NaN());
               }()),
               asyncio::ValueError);
}

}  // namespace
