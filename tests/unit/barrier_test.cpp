// Tests for asyncio/locks.hpp: Barrier. Parties fill, drain and pass in rounds with distinct
// indices, cancelled parties, reset() and abort() in every state (filling, draining, half
// drained), a failing party that aborts the round, repr(), and waiting from another loop.
//
// Most tests translate a test of CPython 3.11's Lib/test/test_asyncio/test_locks.py
// (BarrierTests); the comment names it ("test_cancel_race"). Where CPython looks at private state
// (`lock._waiters`) we look at repr() or at behaviour instead. The loop runs one iteration per
// `sleep(0)`, with the same FIFO order as CPython's, so the step-by-step expectations carry over
// unchanged. Tests that go further than CPython (a wake-up passed on, a count that stays exact,
// misuse) say so.
#include <algorithm>
#include <cstddef>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <asyncio/locks.hpp>

#include "asyncio.hpp"
#include "asyncio_test.hpp"

namespace {

using asyncio::Barrier;
using asyncio::BrokenBarrierError;
using asyncio::Coro;
using asyncio::create_task;
using asyncio::RuntimeError;
using asyncio::sleep;
using asyncio::Task;
using asyncio::ValueError;
using asyncio_test::ends_cancelled;
using asyncio_test::gather_all;
using asyncio_test::run_on_two_loops;
using asyncio_test::settle;
using asyncio_test::tasks_of;
using testing::EndsWith;
using testing::HasSubstr;
using testing::Not;

using Log = std::vector<int>;

void run(Coro<void> main) {
  asyncio_test::run_virtual(std::move(main));
}

constexpr int kParties = 5;

template <class F>
std::vector<Task<void>> make_tasks(int n, F coro) {
  std::vector<Task<void>> tasks;
  for (int i = 0; i < n; ++i) tasks.push_back(create_task(coro()));
  return tasks;
}

Coro<void> barrier_wait(Barrier* b) {
  (void)co_await b->wait();
}

// test_barrier, test_repr
TEST(Barrier, ReprFollowsTheStates) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    EXPECT_THAT(barrier.repr(), EndsWith("[filling, waiters:0/5]>"));
    std::vector<Task<void>> waiters;
    auto add = [&](int n) {
      for (int i = 0; i < n; ++i) waiters.push_back(create_task(barrier_wait(&barrier)));
    };
    add(2);
    co_await sleep(0);
    EXPECT_THAT(barrier.repr(), EndsWith("[filling, waiters:2/5]>"));
    add(static_cast<int>(barrier.parties() - barrier.n_waiting()));
    co_await sleep(0);
    EXPECT_THAT(barrier.repr(), HasSubstr("[draining"));
    add(2);
    co_await sleep(0);
    barrier.reset();
    EXPECT_THAT(barrier.repr(), HasSubstr("[resetting"));
    add(2);
    co_await sleep(0);
    barrier.abort();
    EXPECT_THAT(barrier.repr(), EndsWith("[broken]>"));
    EXPECT_TRUE(barrier.broken());
    co_await settle(waiters);
  }());
}

// test_barrier_parties
TEST(Barrier, PartiesMustBePositive) {
  EXPECT_THROW(Barrier(0), ValueError);
  EXPECT_THROW(Barrier(-4), ValueError);
  Barrier barrier(kParties);
  EXPECT_EQ(barrier.parties(), 5U);
}

// test_context_manager
TEST(Barrier, EachPartyGetsADistinctIndex) {
  run([]() -> Coro<void> {
    Barrier barrier(3);
    std::vector<Task<std::size_t>> tasks;
    for (int i = 0; i < 3; ++i) tasks.push_back(create_task(barrier.wait()));
    auto results = co_await gather_all(tasks);
    std::sort(results.begin(), results.end());
    EXPECT_EQ(results, (std::vector<std::size_t>{0, 1, 2}));
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_filling_one_task
TEST(Barrier, OnePartyPassesAtOnce) {
  run([]() -> Coro<void> {
    Barrier barrier(1);
    EXPECT_EQ(co_await barrier.wait(), 0U);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_filling_one_task_twice
TEST(Barrier, OnePartyPassesTwice) {
  run([]() -> Coro<void> {
    Barrier barrier(1);
    auto t1 = create_task(barrier.wait());
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    auto t2 = create_task(barrier.wait());
    co_await sleep(0);
    EXPECT_EQ(t1.result(), t2.result());
    EXPECT_EQ(t1.done(), t2.done());
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_filling_task_by_task
TEST(Barrier, FillsTaskByTask) {
  run([]() -> Coro<void> {
    Barrier barrier(3);
    auto t1 = create_task(barrier.wait());
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 1U);
    EXPECT_THAT(barrier.repr(), HasSubstr("filling"));
    auto t2 = create_task(barrier.wait());
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 2U);
    auto t3 = create_task(barrier.wait());
    co_await sleep(0);
    (void)co_await gather_all(tasks_of(t1, t2, t3));
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_filling_tasks_wait_twice
TEST(Barrier, PartiesPassTwice) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    std::vector<bool> results;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, std::vector<bool>* r) -> Coro<void> {
        (void)co_await b->wait();
        r->push_back(true);
        (void)co_await b->wait();
        r->push_back(false);
      }(&barrier, &results);
    }));
    EXPECT_EQ(results.size(), 2U * kParties);
    EXPECT_EQ(std::count(results.begin(), results.end(), true), kParties);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_filling_tasks_check_return_value
TEST(Barrier, SecondRoundIndicesAreDistinct) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    std::vector<Task<std::size_t>> tasks;
    for (int i = 0; i < kParties; ++i) {
      tasks.push_back(create_task([](Barrier* b) -> Coro<std::size_t> {
        (void)co_await b->wait();
        co_return co_await b->wait();
      }(&barrier)));
    }
    auto res = co_await gather_all(tasks);
    std::sort(res.begin(), res.end());
    std::vector<std::size_t> expected(kParties);
    std::iota(expected.begin(), expected.end(), std::size_t{0});
    EXPECT_EQ(res, expected);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_draining_state
TEST(Barrier, DrainsUntilTheLastPartyHasLeft) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    std::vector<bool> results;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, std::vector<bool>* r) -> Coro<void> {
        (void)co_await b->wait();
        r->push_back(b->repr().find("draining") != std::string::npos);
      }(&barrier, &results);
    }));
    EXPECT_EQ(results.size(), static_cast<std::size_t>(kParties));
    if (results.size() != static_cast<std::size_t>(kParties)) co_return;
    EXPECT_FALSE(results.back());
    EXPECT_TRUE(std::all_of(results.begin(), results.end() - 1, [](bool b) { return b; }));
    EXPECT_EQ(barrier.n_waiting(), 0U);
  }());
}

// test_blocking_tasks_while_draining
TEST(Barrier, ArrivalsWhileDrainingWaitForTheNextRound) {
  run([]() -> Coro<void> {
    constexpr int kRewait = 2;
    Barrier barrier(kParties);
    Barrier barrier_nowaiting(kParties - kRewait);
    int rewait_n = kRewait;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, Barrier* nowaiting, int* rewait) -> Coro<void> {
        (void)co_await b->wait();
        if (*rewait > 0) {
          --*rewait;
          (void)co_await b->wait();  // wait again, for the others
        } else {
          (void)co_await nowaiting->wait();  // the end of the draining
          (void)co_await b->wait();
        }
      }(&barrier, &barrier_nowaiting, &rewait_n);
    }));
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_filling_tasks_cancel_one
TEST(Barrier, CancelledPartyLeavesTheRound) {
  run([]() -> Coro<void> {
    Barrier barrier(3);
    std::vector<bool> results;
    auto coro = [](Barrier* b, std::vector<bool>* r) -> Coro<void> {
      (void)co_await b->wait();
      r->push_back(true);
    };
    auto t1 = create_task(coro(&barrier, &results));
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 1U);
    auto t2 = create_task(coro(&barrier, &results));
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 2U);
    t1.cancel();
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 1U);
    EXPECT_TRUE(co_await ends_cancelled(t1));
    EXPECT_TRUE(t1.cancelled());
    auto t3 = create_task(coro(&barrier, &results));
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 2U);
    auto t4 = create_task(coro(&barrier, &results));
    co_await gather_all(tasks_of(t2, t3, t4));
    EXPECT_EQ(results.size(), 3U);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_reset_barrier
TEST(Barrier, ResetWithNobodyWaiting) {
  run([]() -> Coro<void> {
    Barrier barrier(1);
    barrier.reset();
    co_await sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_FALSE(barrier.broken());
  }());
}

/// Counts BrokenBarrierErrors out of one wait().
Coro<void> wait_count_broken(Barrier* b, int* broken) {
  try {
    (void)co_await b->wait();
  } catch (const BrokenBarrierError&) {
    ++*broken;
  }
}

// test_reset_barrier_while_tasks_waiting
TEST(Barrier, ResetBreaksTheWaitingParties) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    int broken = 0;
    auto tasks = make_tasks(kParties - 1, [&] { return wait_count_broken(&barrier, &broken); });
    co_await sleep(0);
    barrier.reset();
    co_await gather_all(tasks);
    EXPECT_EQ(broken, kParties - 1);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_THAT(barrier.repr(), Not(HasSubstr("resetting")));
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_reset_barrier_when_tasks_half_draining: a drained task resets the barrier while half of
// the round has not left yet; those get BrokenBarrierError.
TEST(Barrier, ResetWhileHalfDrained) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    int broken = 0;
    int left = 0;
    constexpr int kRest = kParties / 2;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, int* brk, int* out) -> Coro<void> {
        bool broken = false;
        try {
          (void)co_await b->wait();
        } catch (const BrokenBarrierError&) {
          broken = true;  // still inside when reset
        }
        if (broken) {
          ++*brk;
        } else if (++*out == kParties - kRest) {
          // Python: `if rest_of_tasks == barrier._count` - kRest tasks are still inside.
          b->reset();
        }
      }(&barrier, &broken, &left);
    }));
    EXPECT_EQ(broken, kRest);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_THAT(barrier.repr(), Not(HasSubstr("resetting")));
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_reset_barrier_when_tasks_half_draining_half_blocking
TEST(Barrier, ResetWhileHalfDrainedHalfBlocked) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    int results1 = 0;
    int results2 = 0;
    int count = 0;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, int* r1, int* r2, int* n) -> Coro<void> {
        bool broken = false;
        try {
          (void)co_await b->wait();
        } catch (const BrokenBarrierError&) {
          broken = true;
        }
        if (broken) {
          ++*r1;                     // still waiting when reset...
          (void)co_await b->wait();  // ...so wait again to reach the parties
        } else if (++*n > kParties / 2) {
          b->reset();  // BrokenBarrierError for the tasks still waiting
          (void)co_await b->wait();
        } else {
          try {
            (void)co_await b->wait();
          } catch (const BrokenBarrierError&) {
            ++*r2;  // never: blocked tasks go on waiting
          }
        }
      }(&barrier, &results1, &results2, &count);
    }));
    EXPECT_EQ(results1, kParties / 2);
    EXPECT_EQ(results2, 0);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_THAT(barrier.repr(), Not(HasSubstr("resetting")));
    EXPECT_FALSE(barrier.broken());
  }());
}

// test_reset_barrier_while_tasks_waiting_and_waiting_again
TEST(Barrier, ResetPartiesWaitAgainForTheNextRound) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    int results1 = 0;
    int results2 = 0;
    auto tasks = make_tasks(kParties - 1, [&] {
      return [](Barrier* b, int* r1, int* r2) -> Coro<void> {
        co_await wait_count_broken(b, r1);
        (void)co_await b->wait();  // Python's `finally`
        ++*r2;
      }(&barrier, &results1, &results2);
    });
    co_await sleep(0);
    barrier.reset();  // the N-1 waiting tasks get BrokenBarrierError
    tasks.push_back(create_task([](Barrier* b, int* r2) -> Coro<void> {
      (void)co_await b->wait();
      ++*r2;
    }(&barrier, &results2)));
    co_await gather_all(tasks);
    EXPECT_FALSE(barrier.broken());
    EXPECT_EQ(results1, kParties - 1);
    EXPECT_EQ(results2, kParties);
    EXPECT_EQ(barrier.n_waiting(), 0U);
  }());
}

// test_reset_barrier_while_tasks_draining
TEST(Barrier, ResetAfterTheLastPartyLeftIsHarmless) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    int results1 = 0;
    int results2 = 0;
    int results3 = 0;
    int count = 0;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, int* r1, int* r2, int* r3, int* n) -> Coro<void> {
        (void)co_await b->wait();
        if (++*n == kParties) {
          b->reset();  // the last task out of the barrier
          (void)co_await b->wait();
        } else {
          try {
            (void)co_await b->wait();
            ++*r1;
          } catch (const BrokenBarrierError&) {
            ++*r2;  // never
          }
        }
        (void)co_await b->wait();  // pass the barrier once more
        ++*r3;
      }(&barrier, &results1, &results2, &results3, &count);
    }));
    EXPECT_FALSE(barrier.broken());
    EXPECT_EQ(results1, kParties - 1);
    EXPECT_EQ(results2, 0);
    EXPECT_EQ(results3, kParties);
    EXPECT_EQ(barrier.n_waiting(), 0U);
  }());
}

// test_abort_barrier
TEST(Barrier, AbortBreaksIt) {
  Barrier barrier(1);
  barrier.abort();
  EXPECT_EQ(barrier.n_waiting(), 0U);
  EXPECT_TRUE(barrier.broken());
  run([](Barrier* b) -> Coro<void> {
    bool threw = false;
    try {
      (void)co_await b->wait();
    } catch (const BrokenBarrierError&) {
      threw = true;
    }
    EXPECT_TRUE(threw);
  }(&barrier));
}

// test_abort_barrier_when_tasks_half_draining_half_blocking
TEST(Barrier, AbortWhileHalfDrainedHalfBlocked) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    int results1 = 0;
    int results2 = 0;
    int count = 0;
    constexpr int kBlocking = kParties / 2;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, int* r1, int* r2, int* n) -> Coro<void> {
        bool broken = false;
        try {
          (void)co_await b->wait();
        } catch (const BrokenBarrierError&) {
          broken = true;  // tasks waiting to drain
        }
        if (broken) {
          ++*r1;
        } else if (++*n > kBlocking) {
          b->abort();  // BrokenBarrierError for everybody
        } else {
          co_await wait_count_broken(b, r2);  // blocked tasks (already drained)
        }
      }(&barrier, &results1, &results2, &count);
    }));
    EXPECT_TRUE(barrier.broken());
    EXPECT_EQ(results1, kBlocking);
    EXPECT_EQ(results2, kParties - kBlocking - 1);
    EXPECT_EQ(barrier.n_waiting(), 0U);
    EXPECT_THAT(barrier.repr(), Not(HasSubstr("resetting")));
  }());
}

struct PartyFailed {};

// test_abort_barrier_when_exception (threading's lock_tests.test_reset)
TEST(Barrier, PartyThatFailsAbortsForEverybody) {
  run([]() -> Coro<void> {
    Barrier barrier(kParties);
    int results1 = 0;
    int results2 = 0;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b, int* r1, int* r2) -> Coro<void> {
        bool failed = false;
        try {
          if (co_await b->wait() == kParties / 2) throw PartyFailed{};
          (void)co_await b->wait();
          ++*r1;
        } catch (const BrokenBarrierError&) {
          ++*r2;
        } catch (const PartyFailed&) {
          failed = true;
        }
        if (failed) b->abort();
      }(&barrier, &results1, &results2);
    }));
    EXPECT_TRUE(barrier.broken());
    EXPECT_EQ(results1, 0);
    EXPECT_EQ(results2, kParties - 1);
    EXPECT_EQ(barrier.n_waiting(), 0U);
  }());
}

// test_abort_barrier_when_exception_then_resetting (threading's test_abort_and_reset)
TEST(Barrier, AbortedThenResetWorksAgain) {
  run([]() -> Coro<void> {
    Barrier barrier1(kParties);
    Barrier barrier2(kParties);
    int results1 = 0;
    int results2 = 0;
    int results3 = 0;
    co_await gather_all(make_tasks(kParties, [&] {
      return [](Barrier* b1, Barrier* b2, int* r1, int* r2, int* r3) -> Coro<void> {
        bool failed = false;
        try {
          if (co_await b1->wait() == kParties / 2) throw PartyFailed{};
          (void)co_await b1->wait();
          ++*r1;
        } catch (const BrokenBarrierError&) {
          ++*r2;
        } catch (const PartyFailed&) {
          failed = true;
        }
        if (failed) b1->abort();
        // Synchronise and reset: everybody has left b1 before the reset, nobody enters it
        // before the reset is done.
        if (co_await b2->wait() == kParties / 2) b1->reset();
        (void)co_await b2->wait();
        (void)co_await b1->wait();
        ++*r3;
      }(&barrier1, &barrier2, &results1, &results2, &results3);
    }));
    EXPECT_FALSE(barrier1.broken());
    EXPECT_EQ(results1, 0);
    EXPECT_EQ(results2, kParties - 1);
    EXPECT_EQ(results3, kParties);
    EXPECT_EQ(barrier1.n_waiting(), 0U);
  }());
}

TEST(Barrier, WaitingFromAnotherLoopThrowsRuntimeError) {
  Barrier barrier(2);
  run_on_two_loops(
      [](Barrier* b) -> Coro<void> {
        auto t = create_task(barrier_wait(b));
        co_await sleep(0);
        (void)co_await b->wait();
        co_await t;
      }(&barrier),
      [](Barrier* b) -> Coro<void> {
        bool threw = false;
        try {
          (void)co_await b->wait();
        } catch (const RuntimeError&) {
          threw = true;
        }
        EXPECT_TRUE(threw);
        EXPECT_EQ(b->n_waiting(), 0U);  // the failed wait left the round
      }(&barrier));
}

}  // namespace
