// Internal: the loop's timers, ordered by (when, seq). Equal deadlines fire in the order they
// were scheduled: deterministic, unlike CPython's heapq.
//
// Two structures share the work:
//  * a sorted run: timers scheduled in deadline order (the common case: many sleeps or
//    time-outs of one duration) are appended to a FIFO in O(1) and popped in O(1); a
//    cancelled entry becomes a tombstone that is skipped. Its entries are 16 bytes (node and
//    deadline; their sequence numbers are implied, see front()), kept in 4 KiB chunks
//    (chunked_fifo.hpp), so it never copies itself as it grows and gives chunks back as the
//    timers fire. When tombstones outnumber live entries (and fill more than a chunk), the run
//    is compacted (compact_run()), so cancelled timers behind a live one cost O(live) memory,
//    not O(cancelled), at amortised O(1) per cancel;
//  * a 4-ary min-heap for the rest, with keys stored inline (comparisons never chase node
//    pointers, which matters with 100k timers); each node knows its index, so cancelling
//    removes it at once in O(log n). Its vector gives memory back once it is a quarter full.
// The earliest timer is the smaller of the run's front and the heap's top. Deadlines live
// here, not in the nodes (a sleeping frame is smaller by a word). (CPython instead leaves
// cancelled handles in its heap and rebuilds it once more than half of at least 100 are.)

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
  /// Entries the sorted run has room for in the chunks it holds, tombstones included (tests).
  [[nodiscard]] std::size_t run_capacity_entries() const noexcept {
    return run_.chunks_in_use() * ChunkedFifo<RunEntry>::kPerChunk;
  }
  /// Entries the heap's vector has room for (tests).
  [[nodiscard]] std::size_t heap_capacity() const noexcept { return heap_.capacity(); }
  /// How many times the run was compacted (tests).
  [[nodiscard]] std::uint64_t compactions() const noexcept { return compactions_; }

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
      const std::size_t dead = run_.size() - run_live_;
      if (dead > run_live_ && dead > kCompactAbove) compact_run();
      return;
    }
    const Entry last = heap_.back();
    heap_.pop_back();
    if (i != heap_.size()) {  // else it was the last entry
      heap_[i] = last;
      if (i > 0 && less(last, heap_[(i - 1) / kArity])) {
        sift_up(i);
      } else {
        sift_down(i);
      }
    }
    if (heap_.size() <= heap_.capacity() / 4 && heap_.capacity() > kHeapKeep) shrink_heap();
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
    std::vector<Entry>().swap(heap_);  // its memory too
    run_.clear();
    run_live_ = 0;
    return out;
  }

 private:
  static constexpr std::size_t kArity = 4;
  // The heap's vector shrinks, once a quarter full, to no less than this many entries.
  static constexpr std::size_t kHeapKeep = 1024;
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
  // The run is compacted once its tombstones outnumber its live entries and fill a chunk.
  static constexpr std::size_t kCompactAbove = ChunkedFifo<RunEntry>::kPerChunk;
  /// The earliest timer. Run entries carry no sequence number; a tie between the run's front
  /// and the heap's top is decided without one. The run was (re)started at seq
  /// run_start_seq_, and its deadlines never decrease. A heap entry scheduled before that
  /// came first. One scheduled since went to the heap because its deadline was below
  /// run_back_when_ then; every run entry with the same deadline must precede it, as a later
  /// one would have had a deadline at least that high. (So run_back_when_ must never go down
  /// while the run lasts, not even when compaction drops the tombstone that set it.)
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
  /// Drops the run's tombstones: live entries move towards the front, keeping their order, and
  /// are renumbered; chunks left empty go back (to ChunkedFifo's spares, then the allocator).
  /// The front is live and stays where it is, so run_base_ holds. run_start_seq_ and
  /// run_back_when_ keep their values (see front()). O(run size), paid for by the tombstones
  /// it drops, which are more than half of it.
  void compact_run() noexcept {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < run_.size(); ++i) {
      const RunEntry e = run_[i];
      if (e.node == nullptr) continue;
      e.node->heap_index = kRunFlag | run_pos(kept);
      run_[kept++] = e;
    }
    run_.truncate(kept);
    ++compactions_;
  }
  /// Moves the heap into a vector half empty, giving the rest back. Amortised O(1): another
  /// shrink needs half of what is left removed, a regrowth as many added.
  void shrink_heap() noexcept {
    try {
      std::vector<Entry> smaller;
      smaller.reserve(heap_.size() * 2 > kHeapKeep ? heap_.size() * 2 : kHeapKeep);
      smaller.insert(smaller.end(), heap_.begin(), heap_.end());
      heap_.swap(smaller);
    } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory: keep the larger vector
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
  ChunkedFifo<RunEntry> run_;        // sorted by (when, seq); tombstones have no node
  std::uint32_t run_base_ = 0;       // absolute position of run_[0], modulo 2^30
  std::size_t run_live_ = 0;         // live (non-tombstone) entries in the run
  double run_back_when_ = 0;         // the highest deadline the run has held since it started
  std::uint64_t run_start_seq_ = 0;  // the seq of the run's first entry since it last emptied
  std::uint64_t next_seq_ = 0;
  std::uint64_t compactions_ = 0;
};

}  // namespace asyncio::detail
