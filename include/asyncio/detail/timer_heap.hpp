// Internal: the loop's timers, a binary min-heap keyed by (when, seq) whose nodes know their
// index, so cancelling a timer removes it at once in O(log n) (no tombstones to sweep).
// Equal deadlines fire in the order they were scheduled: deterministic, unlike CPython's heapq.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "asyncio/detail/runnable.hpp"

namespace asyncio::detail {

class TimerHeap {
 public:
  [[nodiscard]] bool empty() const noexcept { return heap_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return heap_.size(); }
  [[nodiscard]] TimerNode* top() const noexcept { return heap_.front(); }

  void push(TimerNode* n) {
    n->seq = next_seq_++;
    n->heap_index = heap_.size();
    heap_.push_back(n);
    sift_up(n->heap_index);
  }
  /// Removes `n` if it is in the heap.
  void remove(TimerNode* n) noexcept {
    if (!n->in_heap()) return;
    const std::size_t i = n->heap_index;
    n->heap_index = kNotInHeap;
    TimerNode* last = heap_.back();
    heap_.pop_back();
    if (last == n) return;
    heap_[i] = last;
    last->heap_index = i;
    if (i > 0 && less(last, heap_[(i - 1) / 2])) {
      sift_up(i);
    } else {
      sift_down(i);
    }
  }
  TimerNode* pop() noexcept {
    TimerNode* n = heap_.front();
    remove(n);
    return n;
  }
  /// Forgets every node (the loop is closing); nodes are told nothing.
  void clear() noexcept {
    for (TimerNode* n : heap_) n->heap_index = kNotInHeap;
    heap_.clear();
  }
  [[nodiscard]] const std::vector<TimerNode*>& nodes() const noexcept { return heap_; }

 private:
  static bool less(const TimerNode* a, const TimerNode* b) noexcept {
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
  }
  void place(std::size_t i, TimerNode* n) noexcept {
    heap_[i] = n;
    n->heap_index = i;
  }
  void sift_up(std::size_t i) noexcept {
    TimerNode* n = heap_[i];
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (!less(n, heap_[parent])) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, n);
  }
  void sift_down(std::size_t i) noexcept {
    TimerNode* n = heap_[i];
    const std::size_t size = heap_.size();
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && less(heap_[child + 1], heap_[child])) ++child;
      if (!less(heap_[child], n)) break;
      place(i, heap_[child]);
      i = child;
    }
    place(i, n);
  }

  std::vector<TimerNode*> heap_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace asyncio::detail
