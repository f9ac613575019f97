// Internal: the loop's timers, ordered by (when, seq). Equal deadlines fire in the order they
// were scheduled: deterministic, unlike CPython's heapq.
//
// Two structures share the work:
//  * a sorted run: timers scheduled in deadline order (the common case: many sleeps or
//    time-outs of one duration) are appended to a FIFO in O(1) and popped in O(1); a
//    cancelled entry becomes a tombstone that is skipped. Its entries are 16 bytes (node and
//    deadline; their sequence numbers are implied, see front()), kept in 4 KiB chunks
//    (chunked_fifo.hpp), so it never copies itself as it grows and gives chunks back as the
//    timers fire;
//  * a 4-ary min-heap for the rest, with keys stored inline (comparisons never chase node
//    pointers, which matters with 100k timers); each node knows its index, so cancelling
//    removes it at once in O(log n).
// The earliest timer is the smaller of the run's front and the heap's top. Deadlines live
// here, not in the nodes (a sleeping frame is smaller by a word).

#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "asyncio/detail/chunked_fifo.hpp"
#include "asyncio/detail/runnable.hpp"

namespace asyncio::detail {

class TimerHeap {
 public:
  [[nodiscard]] bool empty() const noexcept { return heap_.empty() && run_live_ == 0; }
  [[nodiscard]] std::size_t size() const noexcept { return heap_.size() + run_live_; }
  [[nodiscard]] TimerNode* top() const noexcept { return front().node; }
  [[nodiscard]] double top_when() const noexcept { return front().when; }

  /// Schedules `n` at loop time `when`.
  void push(TimerNode* n, double when) {
    if (heap_.size() + run_.size() >= kPosMask) throw std::length_error("too many timers");
    const std::uint64_t seq = next_seq_++;
    // A later seq never sorts before the run's last entry unless its deadline is earlier.
    if (run_live_ == 0 || !(when < run_back_when_)) {
      if (run_live_ == 0) {  // an empty run restarts from scratch
        run_.clear();
        run_start_seq_ = seq;
      }
      n->heap_index = kRunFlag | run_pos(run_.size());
      run_.push_back(RunEntry{n, when});
      run_back_when_ = when;
      ++run_live_;
      return;
    }
    heap_.push_back(Entry{when, seq, n});
    sift_up(heap_.size() - 1);
  }
  /// Removes `n` if it is scheduled.
  void remove(TimerNode* n) noexcept {
    if (!n->in_heap()) return;
    const std::uint32_t i = n->heap_index;
    n->heap_index = kNotInHeap;
    if ((i & kRunFlag) != 0) {
      run_[(i - run_base_) & kPosMask].node = nullptr;  // a tombstone (or the front, skipped)
      --run_live_;
      skip_tombstones();
      return;
    }
    const Entry last = heap_.back();
    heap_.pop_back();
    if (i == heap_.size()) return;  // it was the last entry
    if (i > 0 && less(last, heap_[(i - 1) / kArity])) {
      heap_[i] = last;
      sift_up(i);
    } else {
      heap_[i] = last;
      sift_down(i);
    }
  }
  TimerNode* pop() noexcept {
    TimerNode* n = top();
    remove(n);
    return n;
  }
  /// Removes and returns the earliest timer if its deadline is at or before `end`, else null.
  TimerNode* pop_due(double end) noexcept {
    if (empty()) return nullptr;
    const Entry e = front();
    if (!(e.when <= end)) return nullptr;
    remove(e.node);
    return e.node;
  }
  /// Forgets every node (the loop is closing) and returns them; nodes are told nothing.
  std::vector<TimerNode*> take_all() {
    std::vector<TimerNode*> out;
    out.reserve(size());
    for (const Entry& e : heap_) out.push_back(e.node);
    for (std::size_t i = 0; i < run_.size(); ++i) {
      if (run_[i].node != nullptr) out.push_back(run_[i].node);
    }
    for (TimerNode* n : out) n->heap_index = kNotInHeap;
    heap_.clear();
    run_.clear();
    run_live_ = 0;
    return out;
  }

 private:
  static constexpr std::size_t kArity = 4;
  // A node's heap_index: a heap position (< 2^30), or kRunFlag plus the run position modulo
  // 2^30 (positions are absolute so popping the run's front renumbers nothing; differences
  // are taken modulo 2^30, exact while the run holds fewer than 2^30 entries).
  static constexpr std::uint32_t kRunFlag = std::uint32_t{1} << 30;
  static constexpr std::uint32_t kPosMask = kRunFlag - 1;
  [[nodiscard]] std::uint32_t run_pos(std::size_t i) const noexcept {
    return (run_base_ + static_cast<std::uint32_t>(i)) & kPosMask;
  }
  struct Entry {
    double when;
    std::uint64_t seq;
    TimerNode* node;
  };
  struct RunEntry {
    TimerNode* node;  // null: a tombstone
    double when;
  };
  /// The earliest timer. Run entries carry no sequence number; a tie between the run's front
  /// and the heap's top is decided without one. The run was (re)started at seq
  /// run_start_seq_, and its deadlines never decrease. A heap entry scheduled before that
  /// came first. One scheduled since went to the heap because its deadline was below the
  /// run's last one then; every run entry with the same deadline must precede it, as a later
  /// one would have had a deadline at least that high.
  [[nodiscard]] Entry front() const noexcept {
    if (run_live_ == 0) return heap_.front();
    const RunEntry& r = run_.front();
    const Entry e{r.when, 0, r.node};
    if (heap_.empty()) return e;
    const Entry& h = heap_.front();
    const bool run_first = r.when < h.when || (r.when == h.when && h.seq >= run_start_seq_);
    return run_first ? e : h;
  }
  /// Keeps the run's front a live entry.
  void skip_tombstones() noexcept {
    if (run_live_ == 0) {
      run_base_ = run_pos(run_.size());
      run_.clear();
      return;
    }
    while (run_.front().node == nullptr) {
      run_.pop_front();
      run_base_ = run_pos(1);
    }
  }
  static bool less(const Entry& a, const Entry& b) noexcept {
    return a.when < b.when || (a.when == b.when && a.seq < b.seq);
  }
  void place(std::size_t i, const Entry& e) noexcept {
    heap_[i] = e;
    e.node->heap_index = static_cast<std::uint32_t>(i);
  }
  void sift_up(std::size_t i) noexcept {
    const Entry e = heap_[i];
    while (i > 0) {
      const std::size_t parent = (i - 1) / kArity;
      if (!less(e, heap_[parent])) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, e);
  }
  void sift_down(std::size_t i) noexcept {
    const Entry e = heap_[i];
    const std::size_t size = heap_.size();
    for (;;) {
      const std::size_t first = kArity * i + 1;
      if (first >= size) break;
      std::size_t best = first;
      const std::size_t stop = first + kArity < size ? first + kArity : size;
      for (std::size_t c = first + 1; c < stop; ++c) {
        if (less(heap_[c], heap_[best])) best = c;
      }
      if (!less(heap_[best], e)) break;
      place(i, heap_[best]);
      i = best;
    }
    place(i, e);
  }

  std::vector<Entry> heap_;
  ChunkedFifo<RunEntry> run_;   // sorted by (when, seq); tombstones have no node
  std::uint32_t run_base_ = 0;  // absolute position of run_[0], modulo 2^30
  std::size_t run_live_ = 0;    // live (non-tombstone) entries in the run
  double run_back_when_ = 0;    // the deadline of the run's last entry (even a tombstone)
  std::uint64_t run_start_seq_ = 0;  // the seq of the run's first entry since it last emptied
  std::uint64_t next_seq_ = 0;
};

}  // namespace asyncio::detail
