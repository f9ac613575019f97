// Shuffle mode (RunOptions::shuffle_seed, ASYNCIO_SHUFFLE): each loop iteration runs the
// entries that were ready when it began in an order drawn from the seed instead of FIFO. What
// it keeps: one seed gives one order; entries scheduled during a pass wait for the next; a
// task's steps stay in order; timers fire by deadline. Programs that do not depend on FIFO
// order among ready callbacks give the same results.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio::RunOptions;
using asyncio::Task;
using Order = std::vector<int>;

constexpr int kEntries = 40;

/// Sets (or, given null, unsets) an environment variable for the life of the guard, then puts
/// back what was there.
class EnvGuard {
 public:
  EnvGuard(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;
  ~EnvGuard() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

RunOptions with_seed(std::uint64_t seed) {
  return RunOptions{.virtual_time = true, .shuffle_seed = seed};
}

Order fifo(int n) {
  Order out;
  for (int i = 0; i < n; ++i) out.push_back(i);
  return out;
}

/// The order in which `n` callbacks queued with call_soon run in one iteration.
Order callback_order(const RunOptions& options, int n = kEntries) {
  auto loop = asyncio::new_event_loop(options);
  Order order;
  for (int i = 0; i < n; ++i) (void)loop->call_soon([&order, i] { order.push_back(i); });
  asyncio::detail::run_once(*loop);
  loop->close();
  return order;
}

Coro<void> record(Order* order, int i) {
  order->push_back(i);
  co_return;
}

/// The order in which `n` tasks take their first step.
Order task_order(const RunOptions& options, int n = kEntries) {
  auto loop = asyncio::new_event_loop(options);
  Order order;
  std::vector<Task<void>> tasks;
  for (int i = 0; i < n; ++i) tasks.push_back(loop->create_task(record(&order, i)));
  asyncio::detail::run_once(*loop);
  loop->close();
  return order;
}

TEST(Shuffle, OffMeansFifo) {
  EnvGuard env("ASYNCIO_SHUFFLE", nullptr);
  EXPECT_EQ(callback_order(RunOptions{.virtual_time = true}), fifo(kEntries));
  EXPECT_EQ(task_order(RunOptions{.virtual_time = true}), fifo(kEntries));
  // An empty option is off; 0 is a seed like any other (API.md: std::optional<std::uint64_t>).
  EXPECT_NE(callback_order(with_seed(0)), fifo(kEntries));
}

TEST(Shuffle, SameSeedGivesTheSameOrder) {
  EnvGuard env("ASYNCIO_SHUFFLE", nullptr);
  for (const std::uint64_t seed : {1ULL, 42ULL, 0xFFFFFFFFFFFFFFFFULL}) {
    const Order first = callback_order(with_seed(seed));
    EXPECT_EQ(callback_order(with_seed(seed)), first) << "seed " << seed;
    EXPECT_EQ(task_order(with_seed(seed)), task_order(with_seed(seed))) << "seed " << seed;
    // Every entry runs exactly once.
    Order sorted = first;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, fifo(kEntries));
  }
}

TEST(Shuffle, DifferentSeedsGiveDifferentOrders) {
  EnvGuard env("ASYNCIO_SHUFFLE", nullptr);
  std::vector<Order> orders;
  for (std::uint64_t seed = 1; seed <= 5; ++seed) orders.push_back(callback_order(with_seed(seed)));
  int not_fifo = 0;
  int distinct_pairs = 0;
  for (std::size_t a = 0; a < orders.size(); ++a) {
    if (orders[a] != fifo(kEntries)) ++not_fifo;
    for (std::size_t b = a + 1; b < orders.size(); ++b) distinct_pairs += orders[a] != orders[b];
  }
  // 40 entries have 40! orders: in fact every seed here gives its own, none of them FIFO.
  EXPECT_EQ(not_fifo, 5);
  EXPECT_EQ(distinct_pairs, 10);
  EXPECT_NE(task_order(with_seed(1)), fifo(kEntries));
}

TEST(Shuffle, EntriesScheduledDuringAPassWaitForTheNext) {
  auto loop = asyncio::new_event_loop(with_seed(7));
  Order order;
  for (int i = 0; i < kEntries; ++i) {
    (void)loop->call_soon([&order, &loop, i] {
      order.push_back(i);
      (void)loop->call_soon([&order, i] { order.push_back(100 + i); });
    });
  }
  asyncio::detail::run_once(*loop);
  ASSERT_EQ(order.size(), static_cast<std::size_t>(kEntries));  // only the first generation
  asyncio::detail::run_once(*loop);
  ASSERT_EQ(order.size(), static_cast<std::size_t>(2 * kEntries));
  for (int i = 0; i < kEntries; ++i) EXPECT_LT(order[static_cast<std::size_t>(i)], 100);
  loop->close();
}

Coro<void> steps(Order* order, int id, int n) {
  for (int step = 0; step < n; ++step) {
    order->push_back(id * 100 + step);
    co_await asyncio::sleep(0);
  }
}

TEST(Shuffle, ATasksOwnStepsStayInOrder) {
  Order order;
  auto loop = asyncio::new_event_loop(with_seed(3));
  std::vector<Task<void>> tasks;
  for (int id = 0; id < 10; ++id) tasks.push_back(loop->create_task(steps(&order, id, 20)));
  for (int pass = 0; pass < 100 && order.size() < 200; ++pass) asyncio::detail::run_once(*loop);
  ASSERT_EQ(order.size(), 200U);
  std::vector<int> next(10, 0);
  bool interleaving_shuffled = false;
  for (std::size_t k = 0; k < order.size(); ++k) {
    const int id = order[k] / 100;
    EXPECT_EQ(order[k] % 100, next[static_cast<std::size_t>(id)]++) << "task " << id;
    // FIFO would run task 0, 1, ..., 9 in every pass.
    if (static_cast<int>(k % 10) != id) interleaving_shuffled = true;
  }
  EXPECT_TRUE(interleaving_shuffled);
  loop->close();
}

TEST(Shuffle, TimersStillFireByDeadline) {
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    auto loop = asyncio::new_event_loop(with_seed(seed));
    Order fired;
    // Scheduled out of deadline order: 7, 3, 9, 1, ... (each in its own pass under virtual time).
    for (const int d : {7, 3, 9, 1, 5, 2, 8, 4, 6, 10}) {
      (void)loop->call_later(d, [&fired, d] { fired.push_back(d); });
    }
    for (int pass = 0; pass < 100 && fired.size() < 10; ++pass) asyncio::detail::run_once(*loop);
    EXPECT_EQ(fired, (Order{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})) << "seed " << seed;
    loop->close();
  }
}

// What shuffle mode gives up: timers due in the same pass run in the pass's shuffled order,
// not by (when, seq). Ten timers with one deadline fire in one pass.
TEST(Shuffle, TimersDueInTheSamePassAreShuffledLikeEverythingElse) {
  auto loop = asyncio::new_event_loop(with_seed(1));
  Order fired;
  for (int i = 0; i < 10; ++i) (void)loop->call_at(5, [&fired, i] { fired.push_back(i); });
  for (int pass = 0; pass < 10 && fired.empty(); ++pass) asyncio::detail::run_once(*loop);
  ASSERT_EQ(fired.size(), 10U);
  EXPECT_NE(fired, fifo(10));
  loop->close();
}

Coro<void> sleep_then_record(Order* order, int d) {
  co_await asyncio::sleep(d);
  order->push_back(d);
}

Coro<Order> sleepers() {
  Order order;
  std::vector<Task<void>> tasks;
  for (const int d : {5, 1, 4, 2, 3})
    tasks.push_back(asyncio::create_task(sleep_then_record(&order, d)));
  co_await asyncio_test::gather_all(std::move(tasks));
  co_return order;
}

TEST(Shuffle, SleepingTasksWakeByDeadline) {
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    EXPECT_EQ(asyncio::run(sleepers(), with_seed(seed)), (Order{1, 2, 3, 4, 5})) << seed;
  }
}

TEST(Shuffle, EnvironmentVariableTurnsItOnAndTheOptionWins) {
  const Order seeded = callback_order(with_seed(12345));
  const Order other = callback_order(with_seed(777));
  ASSERT_NE(seeded, other);
  {
    EnvGuard env("ASYNCIO_SHUFFLE", "12345");
    EXPECT_EQ(callback_order(RunOptions{.virtual_time = true}), seeded);
    EXPECT_EQ(callback_order(with_seed(777)), other);  // the option wins
  }
  {
    EnvGuard env("ASYNCIO_SHUFFLE", "0");  // seed 0: on
    EXPECT_EQ(callback_order(RunOptions{.virtual_time = true}), callback_order(with_seed(0)));
  }
  {
    EnvGuard env("ASYNCIO_SHUFFLE", "not a number");
    EXPECT_EQ(callback_order(RunOptions{.virtual_time = true}), fifo(kEntries));
  }
  EnvGuard env("ASYNCIO_SHUFFLE", nullptr);
  EXPECT_EQ(callback_order(RunOptions{.virtual_time = true}), fifo(kEntries));
}

// ---- whole programs give the same results under any seed -------------------------------------

Coro<int> square_later(int i) {
  co_await asyncio::sleep(0);
  co_await asyncio::sleep(0);
  co_return i* i;
}

Coro<std::vector<int>> gather_squares() {
  std::vector<Coro<int>> work;
  for (int i = 0; i < 30; ++i) work.push_back(square_later(i));
  co_return co_await asyncio::gather(std::move(work));
}

Coro<void> add_under_lock(asyncio::Lock* lock, int* counter, int times) {
  for (int k = 0; k < times; ++k) {
    auto held = co_await lock->scoped();
    const int seen = *counter;
    co_await asyncio::sleep(0);  // another task would lose this update without the lock
    *counter = seen + 1;
  }
}

Coro<int> locked_counter() {
  asyncio::Lock lock;
  int counter = 0;
  std::vector<Task<void>> tasks;
  for (int i = 0; i < 12; ++i)
    tasks.push_back(asyncio::create_task(add_under_lock(&lock, &counter, 10)));
  co_await asyncio_test::gather_all(std::move(tasks));
  co_return counter;
}

Coro<void> produce(asyncio::Queue<int>* q, int from, int to) {
  for (int v = from; v < to; ++v) co_await q->put(v);
}

Coro<void> consume(asyncio::Queue<int>* q, long* sum, int* items) {
  for (;;) {
    const int v = co_await q->get();
    *sum += v;
    ++*items;
    q->task_done();
  }
}

Coro<long> queue_pipeline() {
  asyncio::Queue<int> q(4);
  long sum = 0;
  int items = 0;
  std::vector<Task<void>> consumers;
  for (int i = 0; i < 3; ++i) consumers.push_back(asyncio::create_task(consume(&q, &sum, &items)));
  std::vector<Task<void>> producers;
  for (int p = 0; p < 4; ++p)
    producers.push_back(asyncio::create_task(produce(&q, p * 50, p * 50 + 50)));
  co_await asyncio_test::gather_all(std::move(producers));
  co_await q.join();
  for (auto& c : consumers) c.cancel();
  co_await asyncio_test::settle(std::move(consumers));
  co_return items == 200 ? sum : -1;
}

TEST(Shuffle, ProgramsWithGatherLocksAndQueuesGiveTheSameResults) {
  std::vector<int> squares;
  for (int i = 0; i < 30; ++i) squares.push_back(i * i);
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    EXPECT_EQ(asyncio::run(gather_squares(), with_seed(seed)), squares) << "seed " << seed;
    EXPECT_EQ(asyncio::run(locked_counter(), with_seed(seed)), 120) << "seed " << seed;
    EXPECT_EQ(asyncio::run(queue_pipeline(), with_seed(seed)), 19900L) << "seed " << seed;
  }
}

}  // namespace
