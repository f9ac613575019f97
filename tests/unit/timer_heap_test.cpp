// The loop's timer structure (detail::TimerHeap): a sorted run for timers scheduled in deadline
// order plus a 4-ary heap for the rest, with 32-bit positions in the nodes and the deadlines
// in the structure. The order is (when, seq): equal deadlines fire in scheduling order,
// whichever structure holds them.
#include <cstddef>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include <asyncio/detail/timer_heap.hpp>

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

}  // namespace
