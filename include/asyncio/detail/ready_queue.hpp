// Internal: the loop's ready queue, a FIFO of entries (Runnables, and tasks whose next step is
// due) in 4 KiB chunks (chunked_fifo.hpp): 8 bytes per queued entry, nothing copied as it
// grows, chunks given back as it drains, and no allocation while it stays within a chunk.
// In shuffle mode (RunOptions::shuffle_seed) the loop has it permute the entries of each pass
// (shuffle_front) with a small generator of its own, so a seed gives the same order with every
// compiler and standard library.
#pragma once

#include <cstddef>
#include <cstdint>

#include "asyncio/detail/chunked_fifo.hpp"
#include "asyncio/detail/runnable.hpp"

namespace asyncio::detail {

class TaskState;

/// One entry of the ready queue: a Runnable, or (low bit set) a task whose step is due. A task
/// is queued as itself, not as a Runnable, so it carries no second vtable pointer (8 bytes in
/// every task) and its step is a direct call.
class ReadyEntry {
 public:
  ReadyEntry() = default;  // uninitialised, for the ring's unused slots
  explicit ReadyEntry(Runnable* r) noexcept : bits_(reinterpret_cast<std::uintptr_t>(r)) {}
  explicit ReadyEntry(TaskState* t) noexcept : bits_(reinterpret_cast<std::uintptr_t>(t) | kTask) {}
  [[nodiscard]] bool is_task() const noexcept { return (bits_ & kTask) != 0; }
  [[nodiscard]] Runnable* runnable() const noexcept {
    return reinterpret_cast<Runnable*>(bits_);  // NOLINT(performance-no-int-to-ptr)
  }
  [[nodiscard]] TaskState* task() const noexcept {
    return reinterpret_cast<TaskState*>(bits_ & ~kTask);  // NOLINT(performance-no-int-to-ptr)
  }

 private:
  static constexpr std::uintptr_t kTask = 1;
  std::uintptr_t bits_;
};

class ReadyQueue {
 public:
  void push(Runnable* r) { push(ReadyEntry(r)); }
  /// Queues the next step of a task (TaskState::wake).
  void push(TaskState* t) { push(ReadyEntry(t)); }
  void push(ReadyEntry e) { q_.push_back(e); }
  ReadyEntry pop() noexcept {
    const ReadyEntry e = q_.front();
    q_.pop_front();
    return e;
  }
  [[nodiscard]] std::size_t size() const noexcept { return q_.size(); }
  [[nodiscard]] bool empty() const noexcept { return q_.empty(); }

  /// Seeds the generator shuffle_front() draws from.
  void seed_shuffle(std::uint64_t seed) noexcept { rng_ = seed; }
  /// Puts the first `n` entries in a random order drawn from the seeded generator (a
  /// Fisher-Yates shuffle); the entries behind them keep their place.
  void shuffle_front(std::size_t n) noexcept {
    for (std::size_t i = n; i > 1; --i) {
      const auto j = static_cast<std::size_t>(next_random() % i);  // bias: below i/2^64
      const ReadyEntry e = q_[i - 1];
      q_[i - 1] = q_[j];
      q_[j] = e;
    }
  }

 private:
  /// splitmix64 (Steele, Lea and Flood): any seed, 0 included, gives a well-mixed sequence.
  std::uint64_t next_random() noexcept {
    std::uint64_t z = (rng_ += 0x9E3779B97F4A7C15U);
    z = (z ^ (z >> 30U)) * 0xBF58476D1CE4E5B9U;
    z = (z ^ (z >> 27U)) * 0x94D049BB133111EBU;
    return z ^ (z >> 31U);
  }

  ChunkedFifo<ReadyEntry> q_;
  std::uint64_t rng_ = 0;  // shuffle mode's generator state
};

}  // namespace asyncio::detail
