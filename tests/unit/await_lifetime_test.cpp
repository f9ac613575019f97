// Awaiting a Future or Task keeps its state alive (issue 11, bug 1): the awaiting task holds a
// reference to what it waits on, as Python's Task._fut_waiter does, so the handle it awaited
// may be dropped while it waits. Each test here read freed memory under ASan before the fix.
#include <map>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio::Future;
using asyncio::Task;
using asyncio_test::run_virtual;

/// A table of outstanding requests, as a client library keeps one.
struct Pending {
  std::map<int, Future<int>> table;
};

Coro<int> request(Pending& p, int id) {
  p.table.emplace(id, Future<int>());
  co_return co_await p.table.at(id);  // awaits the map's own handle
}

Coro<int> request_moved(Pending& p, int id) {
  p.table.emplace(id, Future<int>());
  co_return co_await std::move(p.table.at(id));  // the moving form of the await
}

TEST(AwaitLifetime, FutureErasedRightAfterSetResult) {
  const int got = run_virtual([]() -> Coro<int> {
    Pending p;
    Task<int> t = asyncio::create_task(request(p, 7));
    co_await asyncio::sleep(0);  // the request is parked on the map's future
    p.table.at(7).set_result(42);
    p.table.erase(7);  // the last handle goes before the awaiting task resumes
    co_return co_await t;
  }());
  EXPECT_EQ(got, 42);
}

TEST(AwaitLifetime, MovingAwaitOfErasedFuture) {
  const int got = run_virtual([]() -> Coro<int> {
    Pending p;
    Task<int> t = asyncio::create_task(request_moved(p, 1));
    co_await asyncio::sleep(0);
    p.table.at(1).set_result(5);
    p.table.clear();
    co_return co_await t;
  }());
  EXPECT_EQ(got, 5);
}

TEST(AwaitLifetime, FutureErasedPendingThenAwaiterCancelled) {
  const bool cancelled = run_virtual([]() -> Coro<bool> {
    Pending p;
    Task<int> t = asyncio::create_task(request(p, 3));
    co_await asyncio::sleep(0);
    p.table.erase(3);  // dropped without completing: only the awaiting task holds it now
    co_await asyncio::sleep(1);
    EXPECT_FALSE(t.done());
    t.cancel("gone");  // cancels the future it awaits, which must still exist
    co_return co_await asyncio_test::ends_cancelled(t);
  }());
  EXPECT_TRUE(cancelled);
}

TEST(AwaitLifetime, FutureErasedPendingThenSetThroughAnotherHandle) {
  const int got = run_virtual([]() -> Coro<int> {
    Pending p;
    Task<int> t = asyncio::create_task(request(p, 4));
    co_await asyncio::sleep(0);
    Future<int> keep = p.table.at(4);
    p.table.erase(4);
    keep.set_result(9);
    keep = Future<int>();  // and this handle goes too, before the awaiter resumes
    co_return co_await t;
  }());
  EXPECT_EQ(got, 9);
}

struct Worker {
  Task<int> job;
};

Coro<int> value_after(double delay, int v) {
  co_await asyncio::sleep(delay);
  co_return v;
}

Coro<int> await_member(Worker& w) {
  co_return co_await w.job;  // awaits the member, which is then reassigned
}

TEST(AwaitLifetime, TaskMemberReassignedWhileAwaited) {
  const std::pair<int, int> got = run_virtual([]() -> Coro<std::pair<int, int>> {
    Worker w{asyncio::create_task(value_after(1, 10))};
    Task<int> waiter = asyncio::create_task(await_member(w));
    co_await asyncio::sleep(0);
    w.job = asyncio::create_task(value_after(2, 20));  // the first task's last user handle
    const int first = co_await waiter;                 // still gets the first task's result
    const int second = co_await w.job;
    co_return std::pair{first, second};
  }());
  EXPECT_EQ(got.first, 10);
  EXPECT_EQ(got.second, 20);
}

TEST(AwaitLifetime, TaskMemberReassignedThenAwaiterCancelled) {
  const bool cancelled = run_virtual([]() -> Coro<bool> {
    Worker w{asyncio::create_task(value_after(5, 1))};
    Task<int> waiter = asyncio::create_task(await_member(w));
    co_await asyncio::sleep(0);
    w.job = Task<int>();  // the first task lives on in the loop and in the awaiter
    waiter.cancel();      // cancels that task through the awaiter's reference
    co_return co_await asyncio_test::ends_cancelled(waiter);
  }());
  EXPECT_TRUE(cancelled);
}

TEST(AwaitLifetime, ManyAwaitersOfOneErasedFuture) {
  const int sum = run_virtual([]() -> Coro<int> {
    Pending p;
    p.table.emplace(0, Future<int>());
    auto await_entry = [](Pending& pp) -> Coro<int> { co_return co_await pp.table.at(0); };
    Task<int> a = asyncio::create_task(await_entry(p));
    Task<int> b = asyncio::create_task(await_entry(p));
    Task<int> c = asyncio::create_task(await_entry(p));
    co_await asyncio::sleep(0);
    p.table.at(0).set_result(3);
    p.table.clear();
    co_return co_await a + co_await b + co_await c;
  }());
  EXPECT_EQ(sum, 9);
}

}  // namespace
