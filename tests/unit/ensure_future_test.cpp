// Tests for asyncio::ensure_future (asyncio/composition.hpp): a future is returned as it is, a
// coroutine or an awaitable is scheduled as a task.
//
// Translated from CPython's Lib/test/test_asyncio/test_tasks.py (test_ensure_future_future,
// test_ensure_future_coroutine, test_ensure_future_awaitable). Virtual time throughout.
#include <string>
#include <tuple>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio::Future;
using asyncio::Task;
using asyncio_test::run_virtual;

Coro<std::string> value_after(double delay, std::string value) {
  co_await asyncio::sleep(delay);
  co_return value;
}

// test_ensure_future_future, test_ensure_future_coroutine, test_ensure_future_awaitable
TEST(EnsureFuture, KeepsFuturesAndSchedulesCoroutines) {
  run_virtual([]() -> Coro<void> {
    Future<int> f;
    Future<int> same = asyncio::ensure_future(f);
    EXPECT_TRUE(same == f);
    Task<std::string> t = asyncio::ensure_future(value_after(0.1, "ok"));
    EXPECT_EQ(co_await t, "ok");
    auto g = asyncio::ensure_future(asyncio::gather(value_after(0, "x"), f));
    f.set_result(3);
    EXPECT_EQ(std::get<1>(co_await g), 3);
  }());
}

}  // namespace
