// CPython 3.12 conformance: locks used as `async with` blocks.
//
// These translate tests of Lib/test/test_asyncio/test_pep492.py (and test_locks.py) that no
// other test of ours covered (docs/conformance.md lists every one and where it went); each names
// the Python test it follows. Where a translation shows that we differ from CPython, the test
// stays, skipped with "differs from CPython: ...", and docs/conformance.md lists the difference.
#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio_test::run_virtual;

/// Python's `async with lock:` around two sleeps: locked inside, unlocked before and after.
template <class L>
Coro<void> hold_for_a_while(L* lock) {
  co_await asyncio::sleep(0.01);
  EXPECT_FALSE(lock->locked());
  {
    auto held = co_await lock->scoped();
    EXPECT_TRUE(lock->locked());
    co_await asyncio::sleep(0.01);
    EXPECT_TRUE(lock->locked());
  }
  EXPECT_FALSE(lock->locked());
}

// test_context_manager_async_with (test_pep492 LockTests): Lock, Condition, Semaphore and
// BoundedSemaphore all work as an `async with` block, here scoped().
TEST(Pep492Conformance, ScopedHoldsEveryLockKindForTheBlock) {
  asyncio::Lock lock;
  asyncio::Condition condition;
  asyncio::Semaphore semaphore;
  asyncio::BoundedSemaphore bounded;
  run_virtual([](asyncio::Lock* l, asyncio::Condition* c, asyncio::Semaphore* s,
                 asyncio::BoundedSemaphore* b) -> Coro<void> {
    co_await hold_for_a_while(l);
    co_await hold_for_a_while(c);
    co_await hold_for_a_while(s);
    co_await hold_for_a_while(b);
  }(&lock, &condition, &semaphore, &bounded));
  EXPECT_FALSE(lock.locked());
  EXPECT_FALSE(condition.locked());
  EXPECT_FALSE(semaphore.locked());
  EXPECT_FALSE(bounded.locked());
}

}  // namespace
