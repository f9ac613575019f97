// The loop's timer structure (detail::TimerHeap): a sorted run for timers scheduled in deadline
// order plus a 4-ary heap for the rest, with 32-bit positions in the nodes and the deadlines
// in the structure. The order is (when, seq): equal deadlines fire in scheduling order,
// whichever structure holds them. Cancelled timers do not pile up (issue 11, bug 7): the run
// drops its tombstones once they outnumber its live entries, and both parts give memory back
// after a burst.
//
// This program counts the global operator new and the bytes live through it, to show that a
// warm schedule/cancel loop allocates nothing and that the loop's memory stays bounded.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <set>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <malloc.h>

#include <asyncio.hpp>
#include <asyncio/detail/timer_heap.hpp>

namespace {
std::atomic<long> g_allocs{0};           // calls of the global operator new
std::atomic<long long> g_live_bytes{0};  // bytes allocated through it and not yet freed
}  // namespace

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  g_live_bytes.fetch_add(static_cast<long long>(malloc_usable_size(p)), std::memory_order_relaxed);
  return p;
}
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  g_live_bytes.fetch_sub(static_cast<long long>(malloc_usable_size(p)), std::memory_order_relaxed);
  std::free(p);
}
void operator delete(void* p, std::size_t /*n*/) noexcept {
  operator delete(p);
}

namespace {

using asyncio::detail::TimerHeap;
using asyncio::detail::TimerNode;

struct Node final : TimerNode {
  explicit Node(double w, int tag) : when(w), id(tag) {}
  void on_timer() noexcept override {}
  double when;
  int id;
};

void push(TimerHeap& heap, Node* n) {
  heap.push(n, n->when);
}

/// Pops everything, returning the ids in firing order.
std::vector<int> drain(TimerHeap& heap) {
  std::vector<int> out;
  for (std::size_t guard = 0; guard < 1'000'000 && !heap.empty(); ++guard) {
    auto* n = static_cast<Node*>(heap.pop());
    EXPECT_FALSE(n->in_heap());
    out.push_back(n->id);
  }
  return out;
}

TEST(TimerHeap, InOrderTimersFireInDeadlineOrder) {
  TimerHeap heap;
  std::vector<std::unique_ptr<Node>> nodes;
  for (int i = 0; i < 10; ++i) nodes.push_back(std::make_unique<Node>(i, i));
  for (auto& n : nodes) push(heap, n.get());
  EXPECT_EQ(heap.size(), 10U);
  EXPECT_EQ(drain(heap), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(TimerHeap, EqualDeadlinesFireInSchedulingOrderAcrossRunAndHeap) {
  TimerHeap heap;
  // 0 and 1 go to the run (deadline 5), 2 (deadline 1) to the heap, 3 (deadline 5) to the run
  // again, 4 (deadline 1) to the heap: equal deadlines must keep their scheduling order.
  Node a(5, 0), b(5, 1), c(1, 2), d(5, 3), e(1, 4);
  for (Node* n : {&a, &b, &c, &d, &e}) push(heap, n);
  EXPECT_EQ(drain(heap), (std::vector<int>{2, 4, 0, 1, 3}));
}

TEST(TimerHeap, TiesBetweenRunAndHeapKeepSchedulingOrderAcrossARestartedRun) {
  // Run entries carry no sequence number: ties with the heap are decided from when the run
  // last (re)started.
  TimerHeap heap;
  Node p(9, 0), b(1, 1), c(1, 2), x(2, 3), y(1, 4);
  push(heap, &p);   // the run: p (9)
  push(heap, &b);   // the heap: b (1 < 9)
  heap.remove(&p);  // the run empties; b stays in the heap
  push(heap, &c);   // restarts the run: c (1), tied with b and scheduled after it
  push(heap, &x);   // the run: x (2)
  push(heap, &y);   // the heap: y (1 < 2), tied with c and scheduled after it
  EXPECT_EQ(drain(heap), (std::vector<int>{1, 2, 4, 3}));
}

TEST(TimerHeap, RemovedTimersNeverFireWhereverTheySit) {
  TimerHeap heap;
  std::vector<std::unique_ptr<Node>> nodes;
  for (int i = 0; i < 3000; ++i) nodes.push_back(std::make_unique<Node>(i, i));  // the run
  for (int i = 0; i < 3000; ++i) push(heap, nodes[static_cast<std::size_t>(i)].get());
  Node early(-1, -1), middle(2500.5, -2);  // both in the heap (earlier than the run's end)
  push(heap, &early);
  push(heap, &middle);
  // Pop 2,001 (the run compacts its consumed prefix: later positions are relative to a new
  // base), then remove timers on both sides of that boundary and one in the heap.
  for (int i = 0; i < 2001; ++i) (void)heap.pop();
  heap.remove(nodes[2500].get());
  heap.remove(nodes[2999].get());
  heap.remove(&middle);
  heap.remove(nodes[10].get());  // already fired: a no-op
  EXPECT_FALSE(nodes[2500]->in_heap());
  EXPECT_FALSE(middle.in_heap());
  const std::vector<int> rest = drain(heap);
  ASSERT_EQ(rest.size(), 3000U + 2U - 2001U - 3U);
  EXPECT_EQ(rest.front(), 2000);  // early (-1) and 0..1999 went first
  for (std::size_t i = 1; i < rest.size(); ++i) EXPECT_LT(rest[i - 1], rest[i]);
  for (int id : rest) {
    EXPECT_NE(id, 2500);
    EXPECT_NE(id, 2999);
    EXPECT_NE(id, -2);
  }
}

TEST(TimerHeap, PopDueStopsAtTheFirstTimerAfterTheDeadline) {
  TimerHeap heap;
  Node a(1, 0), b(2, 1), c(3, 2);
  for (Node* n : {&c, &a, &b}) push(heap, n);
  EXPECT_EQ(heap.pop_due(2.0), &a);
  EXPECT_EQ(heap.pop_due(2.0), &b);
  EXPECT_EQ(heap.pop_due(2.0), nullptr);
  EXPECT_TRUE(c.in_heap());
  EXPECT_EQ(heap.top_when(), 3.0);
}

TEST(TimerHeap, TakeAllEmptiesBothPartsAndUnmarksTheNodes) {
  TimerHeap heap;
  Node a(1, 0), b(2, 1), c(0.5, 2);
  for (Node* n : {&a, &b, &c}) push(heap, n);
  const std::vector<TimerNode*> all = heap.take_all();
  EXPECT_EQ(all.size(), 3U);
  EXPECT_TRUE(heap.empty());
  for (Node* n : {&a, &b, &c}) EXPECT_FALSE(n->in_heap());
}

// ---- cancelled timers do not pile up (bug 7) --------------------------------------------------

constexpr std::size_t kChunk = 256;  // run entries per 4 KiB chunk

// The bug's case: a live timer 30 s away, and timers scheduled later (so into the run, behind
// it) and cancelled at once, a million times. Each left a 16-byte tombstone until the live timer
// fired: 15 MiB. Now the run stays within two chunks and allocates nothing once warm.
TEST(TimerHeap, MillionScheduleCancelCyclesBehindALiveTimerKeepTheRunSmall) {
  TimerHeap heap;
  Node live(30, -1);
  push(heap, &live);
  Node n(0, 0);
  std::size_t most = 0;
  long allocs_when_warm = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    if (i == 10'000) allocs_when_warm = g_allocs.load();
    n.when = 30 + 1e-6 * i;
    push(heap, &n);
    heap.remove(&n);
    if (heap.run_capacity_entries() > most) most = heap.run_capacity_entries();
  }
  EXPECT_LE(most, 2 * kChunk);  // was 1,000,192 (every tombstone kept)
  EXPECT_EQ(g_allocs.load() - allocs_when_warm, 0);
  EXPECT_EQ(heap.size(), 1U);
  EXPECT_EQ(heap.pop(), &live);
  EXPECT_TRUE(heap.empty());
}

// The same churn with up to 600 live timers in the run, behind a live one: cancelled entries
// sit among live ones, not only at the back. Memory follows the live count.
TEST(TimerHeap, ChurnAmongLiveRunTimersKeepsMemoryProportionalToTheLiveOnes) {
  TimerHeap heap;
  Node anchor(0, -1);
  push(heap, &anchor);  // the run's front for the whole test
  std::vector<std::unique_ptr<Node>> nodes;
  for (int i = 0; i < 600; ++i) nodes.push_back(std::make_unique<Node>(0, i));
  double when = 0;
  std::size_t most = 0;
  long allocs_when_warm = 0;
  for (int round = 0; round < 500; ++round) {
    if (round == 100) allocs_when_warm = g_allocs.load();
    // Schedule all 600 in order, cancel every other one, then the rest.
    for (auto& n : nodes) {
      n->when = (when += 1);
      push(heap, n.get());
    }
    for (std::size_t i = 0; i < nodes.size(); i += 2) heap.remove(nodes[i].get());
    if (heap.run_capacity_entries() > most) most = heap.run_capacity_entries();
    for (std::size_t i = 1; i < nodes.size(); i += 2) heap.remove(nodes[i].get());
    if (heap.run_capacity_entries() > most) most = heap.run_capacity_entries();
  }
  // Live entries plus at most as many tombstones (or a chunk's worth): was 300,000 entries.
  EXPECT_LE(most, 8 * kChunk);
  EXPECT_EQ(g_allocs.load() - allocs_when_warm, 0);
  EXPECT_EQ(heap.size(), 1U);
  EXPECT_EQ(heap.pop(), &anchor);
}

// After a burst, both parts give their memory back: the heap's vector (was: 24 MiB kept after a
// million heap timers were cancelled) and the run's chunks.
TEST(TimerHeap, CapacityReturnsAfterABurstIsCancelled) {
  TimerHeap heap;
  Node far(1e9, -1);
  push(heap, &far);  // the run; everything earlier goes to the heap
  constexpr int kBurst = 300'000;
  std::vector<Node> burst;
  burst.reserve(kBurst);
  for (int i = 0; i < kBurst; ++i) burst.emplace_back(static_cast<double>(kBurst - i), i);
  for (Node& n : burst) push(heap, &n);
  ASSERT_GE(heap.heap_capacity(), static_cast<std::size_t>(kBurst));
  for (int i = 0; i < kBurst; i += 2) heap.remove(&burst[static_cast<std::size_t>(i)]);
  for (int i = 1; i < kBurst; i += 2) heap.remove(&burst[static_cast<std::size_t>(i)]);
  EXPECT_LE(heap.heap_capacity(), 1024U);

  // A burst in the run, cancelled from the back (so behind the live front, as tombstones).
  for (int i = 0; i < kBurst; ++i) {
    burst[static_cast<std::size_t>(i)].when = 2e9 + i;
    push(heap, &burst[static_cast<std::size_t>(i)]);
  }
  ASSERT_GE(heap.run_capacity_entries(), static_cast<std::size_t>(kBurst));
  for (int i = kBurst - 1; i >= 0; --i) heap.remove(&burst[static_cast<std::size_t>(i)]);
  EXPECT_LE(heap.run_capacity_entries(), kChunk);
  EXPECT_EQ(heap.size(), 1U);
  EXPECT_EQ(heap.pop(), &far);
}

// Compaction must not lower the run's notion of its last deadline. The run's tail (up to 309)
// made h (100) go to the heap. Once compaction has dropped that tail as tombstones, r (100) must
// still go to the heap, behind h, and not join the run, where the run-versus-heap tie rule
// would put it before h.
TEST(TimerHeap, CompactionKeepsTiesBetweenRunAndHeapInSchedulingOrder) {
  TimerHeap heap;
  Node a(5, 0), h(100, 1), r(100, 2), b(100, 3);
  push(heap, &a);  // the run
  std::vector<std::unique_ptr<Node>> tail;
  for (int i = 0; i < 300; ++i) {
    tail.push_back(std::make_unique<Node>(10 + i, 100 + i));
    push(heap, tail.back().get());  // the run, behind a
  }
  push(heap, &h);  // the heap: 100 < 309
  // Cancelled from the back: the 257th cancel compacts the run (a and 10..52 stay live).
  for (auto it = tail.rbegin(); it != tail.rend(); ++it) heap.remove(it->get());
  EXPECT_EQ(heap.compactions(), 1U);
  EXPECT_LE(heap.run_capacity_entries(), kChunk);
  push(heap, &r);  // tied with h, scheduled after it
  push(heap, &b);
  EXPECT_EQ(drain(heap), (std::vector<int>{0, 1, 2, 3}));
}

/// A deterministic generator for the randomised test (splitmix64).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9E3779B97F4A7C15U);
    z = (z ^ (z >> 30U)) * 0xBF58476D1CE4E5B9U;
    z = (z ^ (z >> 27U)) * 0x94D049BB133111EBU;
    return z ^ (z >> 31U);
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }

 private:
  std::uint64_t s_;
};

// Random schedules (mostly of one delay on an advancing clock, so in deadline order, into the
// run; some shorter, into the heap; many equal deadlines, so both parts hold ties), cancels
// (most of what is scheduled, so the run compacts again and again) and pops, checked against a
// plain ordered set of (when, seq).
TEST(TimerHeap, RandomScheduleCancelPopMatchesTheReferenceOrderAcrossCompactions) {
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    Rng rng(seed);
    TimerHeap heap;
    constexpr std::size_t kNodes = 400;
    std::vector<std::unique_ptr<Node>> nodes;
    std::vector<std::uint64_t> seq_of(kNodes, 0);  // node id -> the seq it was scheduled with
    for (std::size_t i = 0; i < kNodes; ++i) {
      nodes.push_back(std::make_unique<Node>(0, static_cast<int>(i)));
    }
    std::set<std::pair<double, std::uint64_t>> ref;  // (when, seq) of every scheduled node
    std::vector<Node*> by_seq;                       // seq -> node
    double clock = 0;
    for (int step = 0; step < 100'000; ++step) {
      const std::size_t roll = rng.below(100);
      if (roll < 6) {
        if (ref.empty()) continue;
        const auto first = *ref.begin();
        ref.erase(ref.begin());
        ASSERT_EQ(heap.top_when(), first.first);
        ASSERT_EQ(heap.pop(), by_seq[first.second]) << "seed " << seed << " step " << step;
      } else if (Node* n = nodes[rng.below(kNodes)].get(); !n->in_heap()) {
        clock += static_cast<double>(rng.below(2));
        n->when = clock + static_cast<double>(roll < 80 ? 30 : rng.below(30));
        seq_of[static_cast<std::size_t>(n->id)] = by_seq.size();
        ref.emplace(n->when, by_seq.size());
        by_seq.push_back(n);
        push(heap, n);
      } else if (roll < 90) {
        ref.erase({n->when, seq_of[static_cast<std::size_t>(n->id)]});
        heap.remove(n);
      }
      ASSERT_EQ(heap.size(), ref.size());
    }
    for (const auto& entry : ref) ASSERT_EQ(heap.pop(), by_seq[entry.second]);
    EXPECT_TRUE(heap.empty());
    EXPECT_GT(heap.compactions(), 10U) << "seed " << seed;
  }
}

// ---- the same, through the loop --------------------------------------------------------------

using namespace std::chrono_literals;

long long live_bytes() {
  return g_live_bytes.load(std::memory_order_relaxed);
}

asyncio::Coro<void> sleep_for(double seconds) {
  co_await asyncio::sleep(seconds);
}

// call_later + cancel, 100,000 times, under a timer 30 s away: the loop's memory stays flat.
// (Before the fix it grew by 16 bytes a cycle: 1.5 MiB here.)
TEST(TimerHeapInLoop, CallLaterCancelUnderALiveTimerKeepsMemoryFlat) {
  auto loop = asyncio::new_event_loop(asyncio::RunOptions{.virtual_time = true});
  int fired = 0;
  (void)loop->call_later(30, [&fired] { ++fired; });
  long long base = 0;
  long allocs = 0;
  long long most = 0;
  for (int i = 0; i < 100'000; ++i) {
    if (i == 1000) {
      base = live_bytes();
      allocs = g_allocs.load();
    }
    asyncio::TimerHandle h = loop->call_later(60.0 + i, [&fired] { fired += 100; });
    h.cancel();
    if (i >= 1000 && live_bytes() - base > most) most = live_bytes() - base;
  }
  EXPECT_LT(most, 64 * 1024);
  // A handle per cycle (created and freed), nothing for the timer structure.
  EXPECT_LE(g_allocs.load() - allocs, 100'000 - 1000);
  loop->run_until_complete(sleep_for(31));
  EXPECT_EQ(fired, 1);
}

asyncio::Coro<long long> timeouts_under_a_sleeper(int n) {
  // A sleeper keeps a timer at 30 s; each time-out of 60 s lands behind it and is cancelled
  // when the block ends (the wait_for / `async with timeout()` pattern).
  asyncio::Task<void> sleeper = asyncio::create_task(sleep_for(30));
  co_await asyncio::sleep(0);  // the sleeper's timer goes first, into the run
  long long base = 0;
  long long most = 0;
  for (int i = 0; i < n; ++i) {
    if (i == 1000) base = live_bytes();
    co_await asyncio::timeout(60s, sleep_for(0));
    if (i >= 1000 && live_bytes() - base > most) most = live_bytes() - base;
  }
  co_await sleeper;
  co_return most;
}

TEST(TimerHeapInLoop, TimeoutsBehindASleepingTaskKeepMemoryFlat) {
  const long long most =
      asyncio::run(timeouts_under_a_sleeper(30'000), asyncio::RunOptions{.virtual_time = true});
  EXPECT_LT(most, 64 * 1024);  // was 450 KiB (16 bytes a time-out)
}

}  // namespace
