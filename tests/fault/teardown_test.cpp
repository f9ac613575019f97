// Teardown faults of the core (issue 11): things ordinary code does while other work is still
// in flight — closing a loop over a very deep await chain, destroying an async generator that
// another task is running. Each test here crashed or read freed memory under ASan (or leaked
// under LSan) before its fix; they run in every build, and the sanitizer builds check that
// nothing is touched after it is freed.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::AsyncGenerator;
using asyncio::Coro;
using asyncio::Future;
using asyncio::Task;
using asyncio_test::run_virtual;
using asyncio_test::Tracker;
using Log = std::vector<std::string>;

// ---- closing a loop over a deep pending await chain (bug 4) ----------------------------------

Coro<void> sleep_one() {
  co_await asyncio::sleep(1);
}

/// Records its depth when destroyed.
struct Depth {
  std::vector<int>* out;
  int n;
  Depth(std::vector<int>* o, int d) : out(o), n(d) {}
  Depth(const Depth&) = delete;
  Depth& operator=(const Depth&) = delete;
  ~Depth() { out->push_back(n); }
};

Coro<int> descend(int n, Future<void> never, std::vector<int>* died) {
  Depth d(died, n);
  if (n == 0) {
    co_await never;
    co_return 0;
  }
  co_return 1 + co_await descend(n - 1, never, died);
}

/// A pending chain `depth` frames deep, abandoned by close(): every frame is destroyed, once,
/// innermost first (the order a recursive destruction has, and the one that lets an inner
/// frame's destructors use what outer frames own).
void close_over_chain(int depth) {
  std::vector<int> died;
  died.reserve(static_cast<std::size_t>(depth) + 1);
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  Future<void> never = loop->create_future<void>();
  Task<int> task = loop->create_task(descend(depth, never, &died));
  loop->run_until_complete(sleep_one());  // the whole chain is parked on `never`
  ASSERT_TRUE(died.empty());
  ASSERT_FALSE(task.done());
  loop->close();
  ASSERT_EQ(died.size(), static_cast<std::size_t>(depth) + 1);
  for (std::size_t i = 0; i < died.size(); ++i) ASSERT_EQ(died[i], static_cast<int>(i));
  EXPECT_TRUE(task.cancelled());
}

TEST(CloseDeepChain, HundredThousandLevels) {
  close_over_chain(100'000);  // 10,000 levels overflowed the stack under ASan
}

TEST(CloseDeepChain, ShallowChainsToo) {
  for (const int depth : {0, 1, 2, 63, 64, 65, 200}) close_over_chain(depth);
}

TEST(CloseDeepChain, TaskNotStartedYet) {
  std::vector<int> died;
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  Future<void> never = loop->create_future<void>();
  Task<int> task = loop->create_task(descend(5, never, &died));
  loop->close();  // the root frame never ran: nothing of the body was constructed
  EXPECT_TRUE(died.empty());
  EXPECT_TRUE(task.cancelled());
}

/// The child holds the parent's lock: its guard releases the lock (which lives in the parent's
/// frame) when the child's frame dies, so the child must die first.
Coro<void> hold_lock(asyncio::Lock& lock, Future<void> never, Log* log) {
  auto guard = co_await lock.scoped();
  Tracker t(log, "child");
  co_await never;
}

Coro<void> owns_lock(Future<void> never, Log* log) {
  asyncio::Lock lock;
  Tracker t(log, "parent");
  co_await hold_lock(lock, never, log);
}

TEST(CloseDeepChain, InnerFrameUsesOuterFramesLockWhileDying) {
  Log log;
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  Future<void> never = loop->create_future<void>();
  Task<void> task = loop->create_task(owns_lock(never, &log));
  loop->run_until_complete(sleep_one());
  loop->close();
  EXPECT_EQ(log, (Log{"~child", "~parent"}));
}

/// A chain that passes through an async generator's frame (owned by the generator, not by the
/// frame that awaits it) is destroyed from its root, in the same innermost-first order.
AsyncGenerator<int> wrapping_gen(Future<void> never, Log* log) {
  Tracker t(log, "gen");
  co_yield 1;
  co_await never;
  co_yield 2;
}

Coro<void> inside_gen(Future<void> never, Log* log) {
  Tracker t(log, "consumer");
  AsyncGenerator<int> g = wrapping_gen(never, log);
  (void)co_await g.next();
  (void)co_await g.next();  // parks inside the generator's body
}

TEST(CloseDeepChain, ChainThroughAsyncGenerator) {
  Log log;
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  Future<void> never = loop->create_future<void>();
  Task<void> task = loop->create_task(inside_gen(never, &log));
  loop->run_until_complete(sleep_one());
  loop->close();
  EXPECT_EQ(log, (Log{"~gen", "~consumer"}));
}

// ---- an async generator destroyed while another task is inside its next() (bug 3) -----------

AsyncGenerator<int> slow_gen(Log* log) {
  Tracker t(log, "body");
  log->push_back("start");
  co_await asyncio::sleep(10);
  co_yield 7;
  log->push_back("resumed");  // never: the generator is gone after the first value
}

Coro<std::optional<int>> next_of(AsyncGenerator<int>* g, Log* log) {
  std::optional<int> v = co_await g->next();
  log->push_back(v ? "got " + std::to_string(*v) : std::string("got nothing"));
  co_return v;
}

TEST(AsyncGeneratorDestroyedInFlight, StepEndsThenFrameIsDestroyed) {
  Log log;
  const std::optional<int> got = run_virtual([](Log* l) -> Coro<std::optional<int>> {
    auto gen = std::make_unique<AsyncGenerator<int>>(slow_gen(l));
    Task<std::optional<int>> consumer = asyncio::create_task(next_of(gen.get(), l));
    co_await asyncio::sleep(1);  // the consumer is parked at the body's sleep(10)
    gen.reset();                 // the owner lets go meanwhile
    l->push_back("reset");
    co_return co_await consumer;
  }(&log));
  EXPECT_EQ(got, std::optional<int>(7));
  // The step finished as it would have; the frame died once the consumer had the value.
  EXPECT_EQ(log, (Log{"start", "reset", "~body", "got 7"}));
}

TEST(AsyncGeneratorDestroyedInFlight, ConsumerCancelledAfterwards) {
  Log log;
  const bool cancelled = run_virtual([](Log* l) -> Coro<bool> {
    auto gen = std::make_unique<AsyncGenerator<int>>(slow_gen(l));
    Task<std::optional<int>> consumer = asyncio::create_task(next_of(gen.get(), l));
    co_await asyncio::sleep(1);
    gen.reset();
    consumer.cancel();  // reaches the body's sleep, which must still exist
    co_return co_await asyncio_test::ends_cancelled(consumer);
  }(&log));
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(log, (Log{"start", "~body"}));
}

TEST(AsyncGeneratorDestroyedInFlight, BodyFinishesWithAnError) {
  const bool raised = run_virtual([]() -> Coro<bool> {
    auto failing = []() -> AsyncGenerator<int> {
      co_await asyncio::sleep(5);
      throw asyncio::ValueError("boom");
      co_yield 0;  // NOLINT: unreachable, makes this an async generator
    };
    auto gen = std::make_unique<AsyncGenerator<int>>(failing());
    auto consume = [](AsyncGenerator<int>* g) -> Coro<bool> {
      try {
        (void)co_await g->next();
      } catch (const asyncio::ValueError&) {
        co_return true;
      }
      co_return false;
    };
    Task<bool> consumer = asyncio::create_task(consume(gen.get()));
    co_await asyncio::sleep(1);
    gen.reset();
    co_return co_await consumer;
  }());
  EXPECT_TRUE(raised);
}

TEST(AsyncGeneratorDestroyedInFlight, ACloseInFlight) {
  Log log;
  run_virtual([](Log* l) -> Coro<void> {
    auto cleanup_awaits = [](Log* lg) -> AsyncGenerator<int> {
      bool closing = false;
      try {
        co_yield 1;
      } catch (const asyncio::GeneratorExit&) {
        closing = true;
      }
      if (closing) {
        lg->push_back("closing");
        co_await asyncio::sleep(5);  // the clean-up awaits
        lg->push_back("closed");
      }
    };
    auto gen = std::make_unique<AsyncGenerator<int>>(cleanup_awaits(l));
    EXPECT_EQ(co_await gen->next(), std::optional<int>(1));
    auto close = [](AsyncGenerator<int>* g) -> Coro<void> { co_await g->aclose(); };
    Task<void> closer = asyncio::create_task(close(gen.get()));
    co_await asyncio::sleep(1);
    gen.reset();
    co_await closer;
  }(&log));
  EXPECT_EQ(log, (Log{"closing", "closed"}));
}

TEST(AsyncGeneratorDestroyedInFlight, ConsumerAbandonedByClose) {
  Log log;
  {
    auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
    auto gen = std::make_unique<AsyncGenerator<int>>(slow_gen(&log));
    Task<std::optional<int>> consumer = loop->create_task(next_of(gen.get(), &log));
    loop->run_until_complete(sleep_one());
    gen.reset();    // orphaned: the consumer's step owns the frame now
    loop->close();  // the consumer dies mid-step and takes the frame with it (no leak)
    EXPECT_TRUE(consumer.cancelled());
  }
  EXPECT_EQ(log, (Log{"start", "~body"}));
}

TEST(AsyncGeneratorDestroyedInFlight, OwnerDiesWithTheConsumersFrame) {
  // The generator lives in the consumer's own frame, which close() destroys mid-step: the
  // frame's awaiter goes first, then the generator, which must not be left orphaned.
  Log log;
  auto own_and_consume = [](Log* l) -> Coro<void> {
    AsyncGenerator<int> gen = slow_gen(l);
    (void)co_await gen.next();
  };
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  Task<void> consumer = loop->create_task(own_and_consume(&log));
  loop->run_until_complete(sleep_one());
  loop->close();
  EXPECT_EQ(log, (Log{"start", "~body"}));
}

TEST(AsyncGeneratorDestroyedInFlight, SecondNextStillRefusedWhileRunning) {
  const bool refused = run_virtual([]() -> Coro<bool> {
    Log l;
    auto gen = std::make_unique<AsyncGenerator<int>>(slow_gen(&l));
    Task<std::optional<int>> consumer = asyncio::create_task(next_of(gen.get(), &l));
    co_await asyncio::sleep(1);
    bool threw = false;
    try {
      (void)co_await gen->next();
    } catch (const asyncio::RuntimeError&) {
      threw = true;
    }
    gen.reset();
    EXPECT_EQ(co_await consumer, std::optional<int>(7));
    co_return threw;
  }());
  EXPECT_TRUE(refused);
}

}  // namespace
