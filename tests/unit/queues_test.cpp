// Tests for asyncio/queues.hpp: Queue, LifoQueue, PriorityQueue.
//
// Most tests translate a test of CPython 3.11's Lib/test/test_asyncio/test_queues.py; the
// comment names it. The shutdown tests follow Python 3.13's Queue.shutdown() (its documented
// semantics and the shape of 3.13's _QueueShutdownTestMixin). Where CPython looks at private
// state (`q._getters`) we look at repr() or at behaviour. Tests that go further than CPython
// (FIFO among getters, items never lost to a cancelled getter, move-only items) say so.
#include <cstdlib>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <asyncio/queues.hpp>

#include "asyncio.hpp"
#include "asyncio_test.hpp"

namespace {

using asyncio::CancelledError;
using asyncio::Coro;
using asyncio::create_task;
using asyncio::Event;
using asyncio::get_running_loop;
using asyncio::LifoQueue;
using asyncio::PriorityQueue;
using asyncio::Queue;
using asyncio::QueueEmpty;
using asyncio::QueueFull;
using asyncio::QueueShutDown;
using asyncio::RuntimeError;
using asyncio::sleep;
using asyncio::Task;
using asyncio::ValueError;
using testing::EndsWith;
using testing::HasSubstr;
using testing::Not;
using testing::StartsWith;

void run(Coro<void> main) {
  asyncio_test::run_virtual(std::move(main));
}

using asyncio_test::ends_cancelled;

/// True when awaiting `a` throws E.
template <class E, class A>
Coro<bool> throws(A a) {
  bool threw = false;
  try {
    (void)co_await std::move(a);
  } catch (const E&) {
    threw = true;
  }
  co_return threw;
}

template <class Q>
Coro<typename Q::value_type> get_from(Q* q) {
  co_return co_await q->get();
}

template <class Q>
Coro<void> put_to(Q* q, typename Q::value_type item) {
  co_await q->put(std::move(item));
}

template <class Q>
Coro<void> join_of(Q* q) {
  co_await q->join();
}

// ---- QueueBasicTests ----------------------------------------------------------------------------

// test_repr / test_str
TEST(Queue, ReprShowsItemsGettersPuttersAndTasks) {
  run([]() -> Coro<void> {
    Queue<int> q;
    EXPECT_THAT(q.repr(), StartsWith("<Queue at 0x"));
    EXPECT_THAT(q.repr(), EndsWith(" maxsize=0>"));

    auto getter = create_task(get_from(&q));
    co_await sleep(0);
    EXPECT_THAT(q.repr(), HasSubstr("_getters[1]"));
    q.put_nowait(0);
    EXPECT_EQ(co_await getter, 0);

    Queue<int> q2(1);
    q2.put_nowait(1);
    auto putter = create_task(put_to(&q2, 2));
    co_await sleep(0);
    EXPECT_THAT(q2.repr(), HasSubstr("_putters[1]"));
    (void)q2.get_nowait();
    co_await putter;
    EXPECT_TRUE(putter.done());

    Queue<int> q3;
    q3.put_nowait(1);
    EXPECT_THAT(q3.repr(), HasSubstr("_queue=[1]"));
  }());
}

// test_empty
TEST(Queue, EmptyFollowsTheItems) {
  run([]() -> Coro<void> {
    Queue<int> q;
    EXPECT_TRUE(q.empty());
    co_await q.put(1);
    EXPECT_FALSE(q.empty());
    EXPECT_EQ(co_await q.get(), 1);
    EXPECT_TRUE(q.empty());
  }());
}

// test_full
TEST(Queue, FullOnlyWhenBounded) {
  run([]() -> Coro<void> {
    Queue<int> unbounded;
    EXPECT_FALSE(unbounded.full());
    Queue<int> q(1);
    co_await q.put(1);
    EXPECT_TRUE(q.full());
  }());
}

// test_order
TEST(Queue, GetsInPutOrder) {
  run([]() -> Coro<void> {
    Queue<int> q;
    for (int i : {1, 3, 2}) co_await q.put(i);
    std::vector<int> items;
    for (int i = 0; i < 3; ++i) items.push_back(co_await q.get());
    EXPECT_EQ(items, (std::vector<int>{1, 3, 2}));
  }());
}

// test_maxsize
TEST(Queue, PutterBlocksAtMaxsize) {
  run([]() -> Coro<void> {
    Queue<int> q(2);
    EXPECT_EQ(q.maxsize(), 2U);
    std::vector<int> have_been_put;
    auto t = create_task([](Queue<int>* qq, std::vector<int>* put) -> Coro<bool> {
      for (int i = 0; i < 3; ++i) {
        co_await qq->put(i);
        put->push_back(i);
      }
      co_return true;
    }(&q, &have_been_put));
    co_await sleep(0);
    co_await sleep(0);
    EXPECT_EQ(have_been_put, (std::vector<int>{0, 1}));  // blocked after two items
    EXPECT_EQ(co_await q.get(), 0);
    co_await sleep(0);  // the putter resumes and puts the last item
    EXPECT_EQ(have_been_put, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(co_await q.get(), 1);
    EXPECT_EQ(co_await q.get(), 2);
    EXPECT_TRUE(t.done() && t.result());
  }());
}

// ---- QueueGetTests ------------------------------------------------------------------------------

// test_blocking_get
TEST(Queue, GetReturnsAnItemThatIsThere) {
  run([]() -> Coro<void> {
    Queue<int> q;
    q.put_nowait(1);
    EXPECT_EQ(co_await q.get(), 1);
  }());
}

// test_get_with_putters
TEST(Queue, GetWakesAWaitingPutter) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    co_await q.put(1);
    auto putter = create_task(put_to(&q, 2));
    co_await sleep(0);
    EXPECT_EQ(co_await q.get(), 1);
    co_await sleep(0);
    EXPECT_TRUE(putter.done());
    EXPECT_EQ(q.get_nowait(), 2);
  }());
}

// test_blocking_get_wait
TEST(Queue, GetWaitsForAPut) {
  run([]() -> Coro<void> {
    Queue<int> q;
    Event started;
    bool finished = false;
    auto t = create_task([](Queue<int>* qq, Event* st, bool* fin) -> Coro<int> {
      st->set();
      int res = co_await qq->get();
      *fin = true;
      co_return res;
    }(&q, &started, &finished));
    co_await started.wait();
    EXPECT_FALSE(finished);
    get_running_loop().call_later(0.01, [&q] { q.put_nowait(1); });
    EXPECT_EQ(co_await t, 1);
    EXPECT_TRUE(finished);
  }());
}

// test_nonblocking_get
TEST(Queue, GetNowaitReturnsAnItem) {
  Queue<int> q;
  q.put_nowait(1);
  EXPECT_EQ(q.get_nowait(), 1);
}

// test_nonblocking_get_exception
TEST(Queue, GetNowaitOnEmptyThrowsQueueEmpty) {
  Queue<int> q;
  EXPECT_THROW((void)q.get_nowait(), QueueEmpty);
}

// test_get_cancelled_race
TEST(Queue, CancelledGetterDoesNotTakeTheNextItem) {
  run([]() -> Coro<void> {
    Queue<std::string> q;
    auto t1 = create_task(get_from(&q));
    auto t2 = create_task(get_from(&q));
    co_await sleep(0);
    t1.cancel();
    co_await sleep(0);
    EXPECT_TRUE(t1.done());
    co_await q.put("a");
    co_await sleep(0);
    EXPECT_EQ(co_await t2, "a");
  }());
}

// test_get_with_waiting_putters
TEST(Queue, GetterAndPuttersTakeTurns) {
  run([]() -> Coro<void> {
    Queue<std::string> q(1);
    create_task(put_to(&q, "a"));
    create_task(put_to(&q, "b"));
    EXPECT_EQ(co_await q.get(), "a");
    EXPECT_EQ(co_await q.get(), "b");
  }());
}

// test_why_are_getters_waiting
TEST(Queue, ProducerAndConsumerThroughASizeOneQueueFinish) {
  run([]() -> Coro<void> {
    constexpr int kItems = 5;
    Queue<int> q(1);
    auto consumer = create_task([](Queue<int>* qq) -> Coro<void> {
      for (int i = 0; i < kItems; ++i) (void)co_await qq->get();
    }(&q));
    auto producer = create_task([](Queue<int>* qq) -> Coro<void> {
      for (int i = 0; i < kItems; ++i) co_await qq->put(i);
    }(&q));
    co_await producer;
    co_await consumer;
    EXPECT_TRUE(q.empty());
  }());
}

// test_cancelled_getters_not_being_held_in_self_getters
TEST(Queue, TimedOutGetterLeavesNoTrace) {
  run([]() -> Coro<void> {
    Queue<int> q(5);
    EXPECT_TRUE(co_await throws<asyncio::TimeoutError>(asyncio::wait_for(q.get(), 0.1)));
    EXPECT_THAT(q.repr(), Not(HasSubstr("_getters")));
    q.put_nowait(1);
    EXPECT_EQ(q.get_nowait(), 1);
  }());
}

// The queue's awaitables compose: wait_for(put/get) and gather of both.
TEST(Queue, GetAndPutComposeWithWaitForAndGather) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    co_await asyncio::wait_for(q.put(1), 1.0);
    EXPECT_TRUE(co_await throws<asyncio::TimeoutError>(asyncio::wait_for(q.put(2), 0.5)));
    EXPECT_THAT(q.repr(), Not(HasSubstr("_putters")));
    auto [got, done] = co_await asyncio::gather(q.get(), asyncio::wait_for(q.put(3), 1.0));
    (void)done;
    EXPECT_EQ(got, 1);
    EXPECT_EQ(co_await asyncio::wait_for(q.get(), 1.0), 3);
  }());
}

// ---- QueuePutTests ------------------------------------------------------------------------------

// test_blocking_put
TEST(Queue, UnboundedPutDoesNotBlock) {
  run([]() -> Coro<void> {
    Queue<int> q;
    co_await q.put(1);
    EXPECT_EQ(co_await q.get(), 1);
  }());
}

// test_blocking_put_wait
TEST(Queue, PutWaitsForAGet) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    Event started;
    bool finished = false;
    get_running_loop().call_later(0.01, [&q] { (void)q.get_nowait(); });
    auto t = create_task([](Queue<int>* qq, Event* st, bool* fin) -> Coro<void> {
      st->set();
      co_await qq->put(1);
      co_await qq->put(2);
      *fin = true;
    }(&q, &started, &finished));
    co_await started.wait();
    EXPECT_FALSE(finished);
    co_await t;
    EXPECT_TRUE(finished);
  }());
}

// test_nonblocking_put
TEST(Queue, PutNowaitThenGetNowait) {
  Queue<int> q;
  q.put_nowait(1);
  EXPECT_EQ(q.get_nowait(), 1);
}

// test_get_cancel_drop_one_pending_reader: nothing is lost when the reader that was handed an
// item is cancelled.
TEST(Queue, CancelledReaderDropsNoItem) {
  run([]() -> Coro<void> {
    Queue<int> q;
    auto reader = create_task(get_from(&q));
    co_await sleep(0);
    q.put_nowait(1);
    q.put_nowait(2);
    reader.cancel();
    if (co_await ends_cancelled(reader)) {
      reader = create_task(get_from(&q));  // try again
      (void)co_await reader;
    }
    EXPECT_EQ(reader.result(), 1);  // 2 would mean 1 got dropped
  }());
}

// test_get_cancel_drop_many_pending_readers
TEST(Queue, CancelledReaderPassesItsItemToAnotherReader) {
  run([]() -> Coro<void> {
    Queue<int> q;
    auto reader1 = create_task(get_from(&q));
    auto reader2 = create_task(get_from(&q));
    auto reader3 = create_task(get_from(&q));
    co_await sleep(0);
    q.put_nowait(1);
    q.put_nowait(2);
    reader1.cancel();
    EXPECT_TRUE(co_await ends_cancelled(reader1));
    (void)co_await reader3;
    (void)co_await reader2;
    EXPECT_EQ((std::set<int>{reader2.result(), reader3.result()}), (std::set<int>{1, 2}));
  }());
}

// test_put_cancel_drop
TEST(Queue, CancelledWriterDropsNoSlot) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    q.put_nowait(1);
    auto writer = create_task(put_to(&q, 2));  // has to wait (qsize=1)
    co_await sleep(0);
    EXPECT_EQ(q.get_nowait(), 1);
    writer.cancel();
    if (co_await ends_cancelled(writer)) {
      writer = create_task(put_to(&q, 2));  // try again
      co_await writer;
    }
    EXPECT_EQ(q.get_nowait(), 2);
    EXPECT_EQ(q.qsize(), 0U);
  }());
}

// test_nonblocking_put_exception
TEST(Queue, PutNowaitOnFullThrowsQueueFull) {
  Queue<int> q(1);
  q.put_nowait(1);
  EXPECT_THROW(q.put_nowait(2), QueueFull);
}

// test_float_maxsize has no C++ equivalent (maxsize is a size_t); maxsize 0 is unbounded.
TEST(Queue, MaxsizeZeroIsUnbounded) {
  Queue<int> q(0);
  for (int i = 0; i < 10000; ++i) q.put_nowait(i);
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.qsize(), 10000U);
}

// test_put_cancelled (despite its name: a put completes once a getter took the item)
TEST(Queue, PutterFinishesWhenTheGetterTakesItsItem) {
  run([]() -> Coro<void> {
    Queue<int> q;
    auto t = create_task([](Queue<int>* qq) -> Coro<bool> {
      co_await qq->put(1);
      co_return true;
    }(&q));
    EXPECT_EQ(co_await q.get(), 1);
    EXPECT_TRUE(t.done() && t.result());
  }());
}

// test_put_cancelled_race
TEST(Queue, CancelledPutterIsSkipped) {
  run([]() -> Coro<void> {
    Queue<std::string> q(1);
    auto put_a = create_task(put_to(&q, "a"));
    auto put_b = create_task(put_to(&q, "b"));
    auto put_c = create_task(put_to(&q, "X"));
    co_await sleep(0);
    EXPECT_TRUE(put_a.done());
    EXPECT_FALSE(put_b.done());
    put_c.cancel();
    co_await sleep(0);
    EXPECT_TRUE(put_c.done());
    EXPECT_EQ(q.get_nowait(), "a");
    co_await sleep(0);
    EXPECT_EQ(q.get_nowait(), "b");
    co_await put_b;
  }());
}

// test_put_with_waiting_getters
TEST(Queue, PutHandsTheItemToAWaitingGetter) {
  run([]() -> Coro<void> {
    Queue<std::string> q;
    auto t = create_task(get_from(&q));
    co_await sleep(0);
    co_await q.put("a");
    EXPECT_EQ(co_await t, "a");
  }());
}

// test_why_are_putters_waiting
TEST(Queue, GetNowaitWakesBlockedPutters) {
  run([]() -> Coro<void> {
    Queue<int> q(2);
    std::vector<Task<void>> tasks;
    tasks.push_back(create_task([](Queue<int>* qq) -> Coro<void> {
      co_await sleep(0);
      const auto n = qq->qsize();
      for (std::size_t i = 0; i < n; ++i) (void)qq->get_nowait();
    }(&q)));
    for (int i = 0; i < 4; ++i) tasks.push_back(create_task(put_to(&q, i)));
    for (auto& t : tasks) co_await t;
    EXPECT_EQ(q.qsize(), 2U);
  }());
}

// test_cancelled_puts_not_being_held_in_self_putters
TEST(Queue, CancelledPutterLeavesNoTrace) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    q.put_nowait(1);
    auto put_task = create_task(put_to(&q, 1));
    co_await sleep(0);
    EXPECT_THAT(q.repr(), HasSubstr("_putters[1]"));
    put_task.cancel();
    EXPECT_TRUE(co_await ends_cancelled(put_task));
    EXPECT_THAT(q.repr(), Not(HasSubstr("_putters")));
  }());
}

// test_cancelled_put_silence_value_error_exception: the putter was woken (a slot freed) and is
// cancelled before it runs: it just raises CancelledError, and the slot stays free.
TEST(Queue, PutterCancelledAfterItsWakeUpRaisesCancelledError) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    q.put_nowait(1);
    auto put_task = create_task(put_to(&q, 1));
    co_await sleep(0);
    (void)q.get_nowait();  // wakes put_task
    put_task.cancel();
    EXPECT_TRUE(co_await ends_cancelled(put_task));
    EXPECT_TRUE(q.empty());
    q.put_nowait(2);  // the slot is free
    EXPECT_EQ(q.get_nowait(), 2);
  }());
}

// ---- LifoQueue, PriorityQueue -------------------------------------------------------------------

// LifoQueueTests.test_order
TEST(LifoQueue, GetsLastInFirstOut) {
  run([]() -> Coro<void> {
    LifoQueue<int> q;
    for (int i : {1, 3, 2}) co_await q.put(i);
    std::vector<int> items;
    for (int i = 0; i < 3; ++i) items.push_back(co_await q.get());
    EXPECT_EQ(items, (std::vector<int>{2, 3, 1}));
    EXPECT_THAT(q.repr(), StartsWith("<LifoQueue at 0x"));
  }());
}

// PriorityQueueTests.test_order
TEST(PriorityQueue, GetsSmallestFirst) {
  run([]() -> Coro<void> {
    PriorityQueue<int> q;
    for (int i : {1, 3, 2}) co_await q.put(i);
    std::vector<int> items;
    for (int i = 0; i < 3; ++i) items.push_back(co_await q.get());
    EXPECT_EQ(items, (std::vector<int>{1, 2, 3}));
    EXPECT_THAT(q.repr(), StartsWith("<PriorityQueue at 0x"));
  }());
}

TEST(PriorityQueue, CompareChoosesTheOrder) {
  PriorityQueue<int, std::greater<>> largest_first;
  for (int i : {1, 3, 2}) largest_first.put_nowait(i);
  EXPECT_EQ(largest_first.get_nowait(), 3);
  EXPECT_EQ(largest_first.get_nowait(), 2);
  EXPECT_EQ(largest_first.get_nowait(), 1);

  // The usual (priority, data) entries.
  PriorityQueue<std::pair<int, std::string>> jobs;
  jobs.put_nowait({5, "low"});
  jobs.put_nowait({1, "urgent"});
  jobs.put_nowait({3, "normal"});
  EXPECT_EQ(jobs.get_nowait().second, "urgent");
  EXPECT_EQ(jobs.get_nowait().second, "normal");
  EXPECT_EQ(jobs.get_nowait().second, "low");
}

TEST(PriorityQueue, StatefulCompareIsUsed) {
  struct ByDistance {
    int target;
    bool operator()(int a, int b) const { return std::abs(a - target) < std::abs(b - target); }
  };
  PriorityQueue<int, ByDistance> q(0, ByDistance{10});
  for (int i : {1, 30, 12, 9}) q.put_nowait(i);
  EXPECT_EQ(q.get_nowait(), 9);
  EXPECT_EQ(q.get_nowait(), 12);
  EXPECT_EQ(q.get_nowait(), 1);
  EXPECT_EQ(q.get_nowait(), 30);
}

// ---- _QueueJoinTestMixin, for the three queues --------------------------------------------------

template <class Q>
class QueueJoin : public testing::Test {};
using IntQueues = testing::Types<Queue<int>, LifoQueue<int>, PriorityQueue<int>>;
TYPED_TEST_SUITE(QueueJoin, IntQueues);

// test_task_done_underflow
TYPED_TEST(QueueJoin, TaskDoneWithoutItemsThrowsValueError) {
  TypeParam q;
  EXPECT_THROW(q.task_done(), ValueError);
}

// test_task_done
TYPED_TEST(QueueJoin, JoinReturnsWhenEveryItemIsDone) {
  run([]() -> Coro<void> {
    TypeParam q;
    for (int i = 0; i < 100; ++i) q.put_nowait(i);
    int accumulator = 0;
    bool running = true;
    auto worker = [](TypeParam* qq, int* acc, const bool* on) -> Coro<void> {
      while (*on) {
        *acc += co_await qq->get();
        qq->task_done();
      }
    };
    auto w1 = create_task(worker(&q, &accumulator, &running));
    auto w2 = create_task(worker(&q, &accumulator, &running));
    co_await q.join();
    EXPECT_EQ(accumulator, 4950);
    running = false;  // stop the workers
    q.put_nowait(0);
    q.put_nowait(0);
    co_await w1;
    co_await w2;
  }());
}

// test_join_empty_queue
TYPED_TEST(QueueJoin, JoinOnAnEmptyQueueReturnsAtOnce) {
  run([]() -> Coro<void> {
    TypeParam q;
    co_await q.join();
    co_await q.join();
  }());
}

// test_format
TYPED_TEST(QueueJoin, ReprShowsUnfinishedTasks) {
  TypeParam q;
  EXPECT_THAT(q.repr(), EndsWith(" maxsize=0>"));
  q.put_nowait(1);
  q.put_nowait(2);
  (void)q.get_nowait();
  (void)q.get_nowait();
  EXPECT_THAT(q.repr(), EndsWith(" maxsize=0 tasks=2>"));
}

TYPED_TEST(QueueJoin, JoinWaitsUntilTheLastTaskDone) {
  run([]() -> Coro<void> {
    TypeParam q;
    q.put_nowait(1);
    q.put_nowait(2);
    auto joiner = create_task(join_of(&q));
    (void)co_await q.get();
    q.task_done();
    co_await sleep(0);
    EXPECT_FALSE(joiner.done());
    (void)co_await q.get();
    q.task_done();
    co_await sleep(0);
    EXPECT_TRUE(joiner.done());
    EXPECT_THROW(q.task_done(), ValueError);
  }());
}

TYPED_TEST(QueueJoin, CancelledJoinLeavesNoTrace) {
  run([]() -> Coro<void> {
    TypeParam q;
    q.put_nowait(1);
    auto joiner = create_task(join_of(&q));
    co_await sleep(0);
    joiner.cancel();
    EXPECT_TRUE(co_await ends_cancelled(joiner));
    (void)q.get_nowait();
    q.task_done();
    co_await q.join();
  }());
}

// ---- Python 3.13's shutdown (_QueueShutdownTestMixin), for the three queues ---------------------

template <class Q>
class QueueShutdown : public testing::Test {};
using StringQueues =
    testing::Types<Queue<std::string>, LifoQueue<std::string>, PriorityQueue<std::string>>;
TYPED_TEST_SUITE(QueueShutdown, StringQueues);

/// put(), put_nowait(), get() and get_nowait() all throw QueueShutDown.
template <class Q>
Coro<void> expect_all_shut(Q* q) {
  EXPECT_TRUE(co_await throws<QueueShutDown>(q->put("data")));
  EXPECT_THROW(q->put_nowait("data"), QueueShutDown);
  EXPECT_TRUE(co_await throws<QueueShutDown>(q->get()));
  EXPECT_THROW((void)q->get_nowait(), QueueShutDown);
}

// test_format
TYPED_TEST(QueueShutdown, ReprSaysShutdown) {
  TypeParam q;
  q.shutdown();
  EXPECT_THAT(q.repr(), EndsWith(" maxsize=0 shutdown>"));
}

// test_shutdown_empty
TYPED_TEST(QueueShutdown, EmptyQueueWakesGettersWithQueueShutDown) {
  run([]() -> Coro<void> {
    TypeParam q;
    auto get_task = create_task(get_from(&q));
    co_await sleep(0);  // the get task waits before the shutdown
    q.shutdown(false);  // unfinished tasks: 0 -> 0
    EXPECT_EQ(q.qsize(), 0U);
    co_await q.join();
    co_await sleep(0);
    EXPECT_TRUE(get_task.done());
    EXPECT_TRUE(co_await throws<QueueShutDown>(get_task));
    co_await expect_all_shut(&q);
  }());
}

// test_shutdown_nonempty
TYPED_TEST(QueueShutdown, ItemsLeftCanStillBeTaken) {
  run([]() -> Coro<void> {
    TypeParam q(1);
    q.put_nowait("data");
    auto join_task = create_task(join_of(&q));
    auto put_task = create_task(put_to(&q, "data2"));
    co_await sleep(0);
    EXPECT_FALSE(put_task.done());
    q.shutdown(false);  // unfinished tasks: 1 -> 1
    EXPECT_EQ(q.qsize(), 1U);
    co_await sleep(0);
    EXPECT_TRUE(put_task.done());
    EXPECT_TRUE(co_await throws<QueueShutDown>(put_task));
    EXPECT_EQ(co_await q.get(), "data");
    co_await sleep(0);
    EXPECT_FALSE(join_task.done());
    co_await expect_all_shut(&q);
    q.task_done();
    co_await sleep(0);
    EXPECT_TRUE(join_task.done());
    co_await join_task;
    EXPECT_THROW(q.task_done(), ValueError);
  }());
}

// test_shutdown_immediate
TYPED_TEST(QueueShutdown, ImmediateDropsItemsAndReleasesJoin) {
  run([]() -> Coro<void> {
    TypeParam q;
    q.put_nowait("data");
    auto join_task = create_task(join_of(&q));
    q.shutdown(true);  // unfinished tasks: 1 -> 0
    EXPECT_EQ(q.qsize(), 0U);
    co_await sleep(0);
    EXPECT_TRUE(join_task.done());
    co_await join_task;
    co_await expect_all_shut(&q);
    EXPECT_THROW(q.task_done(), ValueError);
  }());
}

// test_shutdown_immediate_with_unfinished
TYPED_TEST(QueueShutdown, ImmediateKeepsTasksAlreadyTaken) {
  run([]() -> Coro<void> {
    TypeParam q;
    q.put_nowait("data");
    q.put_nowait("data");
    auto join_task = create_task(join_of(&q));
    EXPECT_EQ(co_await q.get(), "data");
    q.shutdown(true);  // unfinished tasks: 2 -> 1
    EXPECT_EQ(q.qsize(), 0U);
    co_await sleep(0);
    EXPECT_FALSE(join_task.done());
    co_await expect_all_shut(&q);
    q.task_done();
    EXPECT_THROW(q.task_done(), ValueError);
    co_await sleep(0);
    EXPECT_TRUE(join_task.done());
    co_await join_task;
  }());
}

TYPED_TEST(QueueShutdown, ImmediateWakesBlockedGettersAndPutters) {
  run([]() -> Coro<void> {
    TypeParam empty;
    std::vector<Task<std::string>> getters;
    for (int i = 0; i < 3; ++i) getters.push_back(create_task(get_from(&empty)));
    TypeParam full(1);
    full.put_nowait("x");
    auto putter = create_task(put_to(&full, "y"));
    co_await sleep(0);
    empty.shutdown(true);
    full.shutdown(true);
    for (auto& g : getters) EXPECT_TRUE(co_await throws<QueueShutDown>(g));
    EXPECT_TRUE(co_await throws<QueueShutDown>(putter));
    EXPECT_TRUE(full.empty());
  }());
}

// ---- Beyond CPython: fairness, nothing lost, move-only items, misuse ----------------------------

// The brief's "nothing is ever lost": the getter that was handed an item is cancelled at the
// same moment; the item stays in the queue.
TEST(Queue, GetterCancelledAfterItsWakeUpLeavesTheItemInTheQueue) {
  run([]() -> Coro<void> {
    Queue<int> q;
    auto getter = create_task(get_from(&q));
    co_await sleep(0);
    q.put_nowait(7);  // wakes the getter...
    getter.cancel();  // ...which is cancelled before it runs
    EXPECT_TRUE(co_await ends_cancelled(getter));
    EXPECT_EQ(q.qsize(), 1U);
    EXPECT_EQ(q.get_nowait(), 7);
  }());
}

TEST(Queue, ItemGoesToTheNextGetterWhenTheWokenOneIsCancelled) {
  run([]() -> Coro<void> {
    Queue<int> q;
    auto g1 = create_task(get_from(&q));
    auto g2 = create_task(get_from(&q));
    co_await sleep(0);
    q.put_nowait(7);
    g1.cancel();
    EXPECT_TRUE(co_await ends_cancelled(g1));
    EXPECT_EQ(co_await g2, 7);
  }());
}

TEST(Queue, PutterCancelledAfterItsWakeUpPassesTheSlotOn) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    q.put_nowait(0);
    auto p1 = create_task(put_to(&q, 1));
    auto p2 = create_task(put_to(&q, 2));
    co_await sleep(0);
    EXPECT_EQ(q.get_nowait(), 0);  // wakes p1...
    p1.cancel();                   // ...which is cancelled before it runs
    EXPECT_TRUE(co_await ends_cancelled(p1));
    co_await p2;
    EXPECT_EQ(q.get_nowait(), 2);
  }());
}

// FIFO among getters: a get() arriving while a getter was woken waits behind it, even with
// items there (CPython would let the newcomer take the first item).
TEST(Queue, NewGetterQueuesBehindAWokenGetter) {
  run([]() -> Coro<void> {
    Queue<int> q;
    auto g1 = create_task(get_from(&q));
    co_await sleep(0);
    q.put_nowait(1);  // g1 is woken for 1
    q.put_nowait(2);
    const int mine = co_await q.get();  // g1 came first
    EXPECT_EQ(mine, 2);
    EXPECT_EQ(co_await g1, 1);
  }());
}

// get_nowait() never waits, so it takes an item a woken getter was about to take; that getter
// then waits again at the front of the line, ahead of later getters.
TEST(Queue, WokenGetterRobbedByGetNowaitKeepsItsPlace) {
  run([]() -> Coro<void> {
    Queue<int> q;
    auto g1 = create_task(get_from(&q));
    auto g2 = create_task(get_from(&q));
    co_await sleep(0);
    q.put_nowait(1);               // wakes g1
    EXPECT_EQ(q.get_nowait(), 1);  // and takes the item first
    co_await sleep(0);             // g1 finds nothing: waits again, first in line
    EXPECT_THAT(q.repr(), HasSubstr("_getters[2]"));
    q.put_nowait(2);
    EXPECT_EQ(co_await g1, 2);
    q.put_nowait(3);
    EXPECT_EQ(co_await g2, 3);
  }());
}

TEST(Queue, GetOfAnItemThatIsThereDoesNotSuspend) {
  run([]() -> Coro<void> {
    Queue<int> q;
    std::vector<int> log;
    q.put_nowait(5);
    auto other = create_task([](std::vector<int>* l) -> Coro<void> {
      l->push_back(1);
      co_return;
    }(&log));
    log.push_back(co_await q.get());
    co_await q.put(6);
    log.push_back(co_await q.get());
    co_await other;
    EXPECT_EQ(log, (std::vector<int>{5, 6, 1}));
  }());
}

TEST(Queue, MoveOnlyItemsGoThroughEveryPath) {
  run([]() -> Coro<void> {
    using Item = std::unique_ptr<int>;
    Queue<Item> q(1);
    co_await q.put(std::make_unique<int>(1));                         // fast put
    auto putter = create_task(put_to(&q, std::make_unique<int>(2)));  // waits: full
    co_await sleep(0);
    Item a = co_await q.get();                // fast get
    Item b = co_await q.get();                // the putter's item
    auto getter = create_task(get_from(&q));  // waits: empty
    co_await sleep(0);
    q.put_nowait(std::make_unique<int>(3));
    Item c = co_await std::move(getter);
    co_await putter;
    EXPECT_EQ(*a + *b + *c, 6);

    PriorityQueue<Item, std::function<bool(const Item&, const Item&)>> pq(
        0, [](const Item& x, const Item& y) { return *x < *y; });
    pq.put_nowait(std::make_unique<int>(9));
    pq.put_nowait(std::make_unique<int>(4));
    LifoQueue<Item> lq;
    lq.put_nowait(pq.get_nowait());
    EXPECT_EQ(*lq.get_nowait(), 4);
  }());
}

// put_nowait() that throws leaves a move-only item with the caller.
TEST(Queue, PutNowaitThatThrowsDoesNotTakeTheItem) {
  Queue<std::unique_ptr<int>> q(1);
  q.put_nowait(std::make_unique<int>(1));
  auto item = std::make_unique<int>(2);
  EXPECT_THROW(q.put_nowait(std::move(item)), QueueFull);
  ASSERT_NE(item, nullptr);  // NOLINT(bugprone-use-after-move): not moved from on failure
  q.shutdown();
  EXPECT_THROW(q.put_nowait(std::move(item)), QueueShutDown);
  EXPECT_NE(item, nullptr);  // NOLINT(bugprone-use-after-move)
}

TEST(Queue, ShutdownWakesEveryBlockedGetter) {
  run([]() -> Coro<void> {
    Queue<int> q;
    std::vector<Task<int>> getters;
    for (int i = 0; i < 3; ++i) getters.push_back(create_task(get_from(&q)));
    co_await sleep(0);
    q.shutdown();
    for (auto& g : getters) EXPECT_TRUE(co_await throws<QueueShutDown>(g));
  }());
}

// After a non-immediate shutdown, woken getters still take what is left; the others fail.
TEST(Queue, ShutdownLetsWaitingGettersDrainTheRest) {
  run([]() -> Coro<void> {
    Queue<int> q(2);
    q.put_nowait(1);
    q.put_nowait(2);
    auto putter = create_task(put_to(&q, 3));
    co_await sleep(0);
    q.shutdown();
    EXPECT_TRUE(co_await throws<QueueShutDown>(putter));
    EXPECT_EQ(co_await q.get(), 1);
    EXPECT_EQ(q.get_nowait(), 2);
    EXPECT_THROW((void)q.get_nowait(), QueueShutDown);
  }());
}

TEST(Queue, ShutdownTwiceIsHarmless) {
  Queue<int> q;
  q.put_nowait(1);
  q.shutdown();
  q.shutdown(true);
  EXPECT_TRUE(q.empty());
  EXPECT_THROW((void)q.get_nowait(), QueueShutDown);
}

TEST(Queue, WaitingFromAnotherLoopThrowsRuntimeError) {
  Queue<int> q;
  asyncio_test::run_on_two_loops(
      [](Queue<int>* qq) -> Coro<void> {
        auto getter = create_task(get_from(qq));
        co_await sleep(0);  // binds the queue to this loop
        qq->put_nowait(1);
        (void)co_await getter;
      }(&q),
      [](Queue<int>* qq) -> Coro<void> {
        qq->put_nowait(2);
        EXPECT_EQ(co_await qq->get(), 2);  // no waiting: fine
        EXPECT_TRUE(co_await throws<RuntimeError>(qq->get()));
        EXPECT_THAT(qq->repr(), Not(HasSubstr("_getters")));
      }(&q));
}

TEST(Queue, DestroyedWhileAGetterWaitsThrowsRuntimeErrorInIt) {
  run([]() -> Coro<void> {
    auto q = std::make_unique<Queue<int>>();
    auto getter = create_task(get_from(q.get()));
    co_await sleep(0);
    q.reset();
    EXPECT_TRUE(co_await throws<RuntimeError>(getter));
  }());
}

// A bounded pipeline with several producers and consumers: every item arrives exactly once.
TEST(Queue, ManyProducersAndConsumersLoseNothing) {
  run([]() -> Coro<void> {
    Queue<int> q(3);
    std::vector<int> seen;
    std::vector<Task<void>> producers;
    std::vector<Task<void>> consumers;
    for (int p = 0; p < 4; ++p) {
      producers.push_back(create_task([](Queue<int>* qq, int base) -> Coro<void> {
        for (int i = 0; i < 50; ++i) {
          co_await qq->put(base * 1000 + i);
          if (i % 7 == 0) co_await sleep(0.001);
        }
      }(&q, p)));
    }
    for (int c = 0; c < 3; ++c) {
      consumers.push_back(create_task([](Queue<int>* qq, std::vector<int>* out) -> Coro<void> {
        for (;;) {
          out->push_back(co_await qq->get());
          qq->task_done();
          if (out->size() % 5 == 0) co_await sleep(0.002);
        }
      }(&q, &seen)));
    }
    for (auto& p : producers) co_await p;
    co_await q.join();
    for (auto& c : consumers) c.cancel();
    for (auto& c : consumers) EXPECT_TRUE(co_await ends_cancelled(c));
    std::set<int> unique(seen.begin(), seen.end());
    EXPECT_EQ(seen.size(), 200U);
    EXPECT_EQ(unique.size(), 200U);
  }());
}

}  // namespace
