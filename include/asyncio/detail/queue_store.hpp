// Internal: where a queue keeps its items - the three orders of asyncio's queues (Python:
// Queue._init/_put/_get and the PriorityQueue/LifoQueue overrides). Move-only items work:
// items are only ever moved in and out.
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
#include <utility>
#include <vector>

namespace asyncio::detail {

/// First in, first out. Python: Queue (collections.deque)
template <class T>
class FifoStore {
 public:
  static constexpr const char* kName = "Queue";
  void push(T&& item) { items_.push_back(std::move(item)); }
  T pop() {
    T item = std::move(items_.front());
    items_.pop_front();
    return item;
  }
  [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }
  [[nodiscard]] bool empty() const noexcept { return items_.empty(); }
  /// The items in storage order (for repr).
  [[nodiscard]] const std::deque<T>& items() const noexcept { return items_; }

 private:
  std::deque<T> items_;
};

/// Last in, first out. Python: LifoQueue (a list used as a stack)
template <class T>
class LifoStore {
 public:
  static constexpr const char* kName = "LifoQueue";
  void push(T&& item) { items_.push_back(std::move(item)); }
  T pop() {
    T item = std::move(items_.back());
    items_.pop_back();
    return item;
  }
  [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }
  [[nodiscard]] bool empty() const noexcept { return items_.empty(); }
  [[nodiscard]] const std::vector<T>& items() const noexcept { return items_; }

 private:
  std::vector<T> items_;
};

/// Smallest first by `Compare` (a strict weak order, like std::less). Items that compare equal
/// come out in no particular order, as with Python's heapq. Python: PriorityQueue (heapq)
template <class T, class Compare>
class HeapStore {
 public:
  static constexpr const char* kName = "PriorityQueue";
  explicit HeapStore(Compare comp = Compare()) : greater_{std::move(comp)} {}
  void push(T&& item) {
    items_.push_back(std::move(item));
    std::push_heap(items_.begin(), items_.end(), greater_);
  }
  T pop() {
    std::pop_heap(items_.begin(), items_.end(), greater_);
    T item = std::move(items_.back());
    items_.pop_back();
    return item;
  }
  [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }
  [[nodiscard]] bool empty() const noexcept { return items_.empty(); }
  /// Heap order, as Python's repr shows it.
  [[nodiscard]] const std::vector<T>& items() const noexcept { return items_; }

 private:
  // std's heap algorithms keep the largest first: invert the order to keep the smallest first.
  struct Greater {
    Compare comp;
    bool operator()(const T& a, const T& b) const { return comp(b, a); }
  };
  std::vector<T> items_;
  Greater greater_;
};

}  // namespace asyncio::detail
