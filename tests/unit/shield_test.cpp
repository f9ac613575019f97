// Tests for asyncio::shield (asyncio/composition.hpp): the result or error passes through, a
// cancelled inner cancels the awaiter, a cancelled awaiter leaves the inner running, shielded
// gathers, coroutines scheduled at once, and no false "never retrieved" report.
//
// Translated from CPython's Lib/test/test_asyncio/test_tasks.py (test_shield*); each test names
// the Python test it follows. Virtual time throughout.
#include <exception>
#include <stdexcept>
#include <tuple>
#include <utility>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::CancelledError;
using asyncio::Coro;
using asyncio::Future;
using asyncio::Task;
using asyncio_test::RecordingHandler;
using asyncio_test::run_virtual;

Coro<void> fail_after(double delay) {
  co_await asyncio::sleep(delay);
  throw std::runtime_error("err");
}

// test_shield_result
TEST(Shield, ReturnsTheResult) {
  run_virtual([]() -> Coro<void> {
    Future<int> inner;
    auto outer = asyncio::shield(inner);
    inner.set_result(42);
    EXPECT_EQ(co_await std::move(outer), 42);
  }());
}

// test_shield_exception
TEST(Shield, RethrowsTheError) {
  run_virtual([]() -> Coro<void> {
    Future<int> inner;
    asyncio::get_running_loop().call_soon([inner]() mutable {
      inner.set_exception(std::make_exception_ptr(std::runtime_error("expected")));
    });
    EXPECT_THROW(co_await asyncio::shield(inner), std::runtime_error);
  }());
}

// test_shield_cancel_inner: cancelled by other means, the shield's awaiter is cancelled too.
TEST(Shield, CancellingTheInnerCancelsTheAwaiter) {
  run_virtual([]() -> Coro<void> {
    Future<int> inner;
    asyncio::get_running_loop().call_soon([inner]() mutable { inner.cancel(); });
    EXPECT_THROW(co_await asyncio::shield(inner), CancelledError);
  }());
}

// test_shield_cancel_outer, test_shield_effect: cancelling the awaiter leaves the inner alone.
TEST(Shield, CancellingTheAwaiterLeavesTheInnerRunning) {
  run_virtual([]() -> Coro<void> {
    Future<void> waiter;
    int proof = 0;
    auto inner = [](Future<void> w, int* p) -> Coro<void> {
      co_await w;
      *p += 1;
    };
    auto outer = [](Coro<void> in, int* p) -> Coro<void> {
      co_await asyncio::shield(std::move(in));
      *p += 100;
    };
    Task<void> f = asyncio::create_task(outer(inner(waiter, &proof), &proof));
    co_await asyncio::sleep(0);
    co_await asyncio::sleep(0);
    f.cancel();
    EXPECT_THROW(co_await f, CancelledError);
    EXPECT_FALSE(waiter.cancelled());
    waiter.set_result();
    co_await asyncio::sleep(0);
    co_await asyncio::sleep(0);
    EXPECT_EQ(proof, 1);
  }());
}

// test_shield_shortcut
TEST(Shield, ADoneFutureReturnsAtOnce) {
  run_virtual([]() -> Coro<void> {
    Future<int> fut;
    fut.set_result(42);
    EXPECT_EQ(co_await asyncio::shield(fut), 42);
  }());
}

// test_shield_gather: a shielded gather completes with its children after the awaiter left.
TEST(Shield, AShieldedGatherCompletesAfterTheAwaiterIsCancelled) {
  run_virtual([]() -> Coro<void> {
    Future<int> child1, child2;
    auto parent = asyncio::ensure_future(asyncio::gather(child1, child2));
    auto awaiter = [](Task<std::tuple<int, int>> p) -> Coro<void> { co_await asyncio::shield(p); };
    Task<void> outer = asyncio::create_task(awaiter(parent));
    co_await asyncio::sleep(0);
    outer.cancel();
    EXPECT_THROW(co_await outer, CancelledError);
    child1.set_result(1);
    child2.set_result(2);
    EXPECT_EQ(co_await parent, std::make_tuple(1, 2));
  }());
}

// test_shield_coroutine_use_running_loop: shield() schedules a coroutine at once.
TEST(Shield, ACoroutineBecomesATaskRightAway) {
  run_virtual([]() -> Coro<void> {
    bool ran = false;
    auto body = [](bool* r) -> Coro<int> {
      *r = true;
      co_return 42;
    };
    auto s = asyncio::shield(body(&ran));
    co_await asyncio::sleep(0);
    EXPECT_TRUE(ran);
    EXPECT_EQ(co_await std::move(s), 42);
  }());
}

TEST(Shield, AnErrorAfterTheAwaiterLeftIsMarkedRetrieved) {
  auto loop = asyncio::new_event_loop({.debug = true, .virtual_time = true});
  RecordingHandler handler(*loop);
  loop->run_until_complete([]() -> Coro<void> {
    auto awaiter = []() -> Coro<void> { co_await asyncio::shield(fail_after(1)); };
    Task<void> t = asyncio::create_task(awaiter());
    co_await asyncio::sleep(0.5);
    t.cancel();
    EXPECT_THROW(co_await t, CancelledError);
    co_await asyncio::sleep(1);
  }());
  EXPECT_FALSE(handler.has_message("never retrieved"));
}

}  // namespace
