// Tests for asyncio::as_completed (asyncio/composition.hpp): results in completion order,
// time-outs, elements awaited in any order or concurrently, duplicates, errors, a cancelled
// consumer that passes its result on, and empty input.
//
// Translated from CPython's Lib/test/test_asyncio/test_tasks.py (test_as_completed*); each test
// names the Python test it follows. Python's sets become vectors in the order given. Virtual time
// throughout.
#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::CancelledError;
using asyncio::Coro;
using asyncio::Future;
using asyncio::Task;
using asyncio_test::run_virtual;
using namespace std::chrono_literals;

using asyncio_test::fail_after;
using asyncio_test::nap;
using asyncio_test::now;
using asyncio_test::value_after;
using asyncio_test::vec;

// test_as_completed
TEST(AsCompleted, YieldsResultsInCompletionOrder) {
  run_virtual([]() -> Coro<void> {
    std::vector<Coro<std::string>> fs;
    fs.push_back(value_after(0.01, "b"));
    fs.push_back(value_after(0.15, "c"));
    fs.push_back(value_after(0.01, "a"));
    std::vector<std::string> values;
    for (auto next : asyncio::as_completed(std::move(fs)))
      values.push_back(co_await std::move(next));
    EXPECT_DOUBLE_EQ(now(), 0.15);
    EXPECT_EQ(values, (std::vector<std::string>{"b", "a", "c"}));
  }());
}

// test_as_completed_with_timeout
TEST(AsCompleted, AfterTheTimeoutElementsThrowTimeoutError) {
  run_virtual([]() -> Coro<void> {
    Task<std::string> a = asyncio::create_task(value_after(0.1, "a"));
    Task<std::string> b = asyncio::create_task(value_after(0.15, "b"));
    std::vector<std::string> values;
    int timeouts = 0;
    for (auto next : asyncio::as_completed(vec(a, b), 0.12s)) {
      try {
        values.push_back(co_await std::move(next));
      } catch (const asyncio::TimeoutError&) {
        ++timeouts;
      }
    }
    EXPECT_EQ(values, std::vector<std::string>{"a"});
    EXPECT_EQ(timeouts, 1);
    EXPECT_DOUBLE_EQ(now(), 0.12);
    EXPECT_EQ(co_await b, "b");  // not cancelled
  }());
}

// test_as_completed_with_unused_timeout
TEST(AsCompleted, AnUnusedTimeoutDoesNothing) {
  run_virtual([]() -> Coro<void> {
    std::vector<Coro<std::string>> fs;
    fs.push_back(value_after(0.01, "a"));
    for (auto next : asyncio::as_completed(std::move(fs), 1s)) {
      EXPECT_EQ(co_await std::move(next), "a");
    }
    co_await asyncio::sleep(2);
  }());
}

// test_as_completed_reverse_wait: elements are not bound to futures.
TEST(AsCompleted, ElementsMayBeAwaitedInAnyOrder) {
  run_virtual([]() -> Coro<void> {
    std::vector<Coro<std::string>> fs;
    fs.push_back(value_after(0.05, "a"));
    fs.push_back(value_after(0.10, "b"));
    auto range = asyncio::as_completed(std::move(fs));
    std::vector<Coro<std::string>> futs(range.begin(), range.end());
    EXPECT_EQ(futs.size(), 2U);
    EXPECT_EQ(co_await std::move(futs[1]), "a");
    EXPECT_DOUBLE_EQ(now(), 0.05);
    EXPECT_EQ(co_await std::move(futs[0]), "b");
    EXPECT_DOUBLE_EQ(now(), 0.10);
  }());
}

// test_as_completed_concurrent: elements awaited concurrently by tasks.
TEST(AsCompleted, ElementsMayBeAwaitedConcurrently) {
  run_virtual([]() -> Coro<void> {
    std::vector<Coro<std::string>> fs;
    fs.push_back(value_after(0.05, "a"));
    fs.push_back(value_after(0.05, "b"));
    auto range = asyncio::as_completed(std::move(fs));
    std::vector<Task<std::string>> tasks;
    for (auto next : range) tasks.push_back(asyncio::create_task(std::move(next)));
    auto [done, pending] = co_await asyncio::wait(tasks);
    std::set<std::string> results;
    for (auto& t : done) results.insert(t.result());
    EXPECT_EQ(results, (std::set<std::string>{"a", "b"}));
  }());
}

// test_as_completed_duplicate_coroutines (with tasks: duplicates count once)
TEST(AsCompleted, DuplicatesCountOnce) {
  run_virtual([]() -> Coro<void> {
    Task<std::string> c = asyncio::create_task(value_after(0, "ham"));
    Task<std::string> s = asyncio::create_task(value_after(0, "spam"));
    std::vector<std::string> result;
    auto range = asyncio::as_completed(vec(c, c, s));
    EXPECT_EQ(range.size(), 2U);
    for (auto next : range) result.push_back(co_await std::move(next));
    EXPECT_EQ(std::set<std::string>(result.begin(), result.end()),
              (std::set<std::string>{"ham", "spam"}));
  }());
}

TEST(AsCompleted, AnElementRethrowsThatChildsError) {
  run_virtual([]() -> Coro<void> {
    std::vector<Coro<void>> fs;
    fs.push_back(fail_after(0.1));
    fs.push_back(nap(0.2));
    int errors = 0;
    int ok = 0;
    for (auto next : asyncio::as_completed(std::move(fs))) {
      try {
        co_await std::move(next);
        ++ok;
      } catch (const std::runtime_error&) {
        ++errors;
        EXPECT_EQ(ok, 0);  // the failure came first
      }
    }
    EXPECT_EQ(errors, 1);
    EXPECT_EQ(ok, 1);
  }());
}

// Queue.get semantics: a consumer woken for a result but cancelled before taking it passes
// the wake-up on.
TEST(AsCompleted, ACancelledConsumerPassesTheResultOn) {
  run_virtual([]() -> Coro<void> {
    Future<std::string> f1, f2;
    auto range = asyncio::as_completed(vec(f1, f2));
    std::vector<Coro<std::string>> elems(range.begin(), range.end());
    Task<std::string> t0 = asyncio::create_task(std::move(elems[0]));
    Task<std::string> t1 = asyncio::create_task(std::move(elems[1]));
    co_await asyncio::sleep(0);  // both consumers wait, t0 first
    f1.set_result("one");        // wakes t0...
    t0.cancel();                 // ...which is cancelled before it takes the result
    EXPECT_THROW(co_await t0, CancelledError);
    EXPECT_EQ(co_await t1, "one");
    f2.set_result("two");
  }());
}

TEST(AsCompleted, EmptyInputIsAnEmptyRange) {
  run_virtual([]() -> Coro<void> {
    auto range = asyncio::as_completed(std::vector<Task<int>>{});
    EXPECT_EQ(range.size(), 0U);
    EXPECT_TRUE(range.begin() == range.end());
    co_return;
  }());
}

}  // namespace
