// Internal: the loop's ready queue, a growable ring of entries (FIFO): Runnables, and tasks
// whose next step is due. Pushing never allocates once the ring has grown to the workload's
// high-water mark.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>

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
  ReadyQueue()
      : buf_(std::make_unique_for_overwrite<ReadyEntry[]>(kInitial)), mask_(kInitial - 1) {}

  void push(Runnable* r) { push(ReadyEntry(r)); }
  /// Queues the next step of a task (TaskState::wake).
  void push(TaskState* t) { push(ReadyEntry(t)); }
  void push(ReadyEntry e) {
    if (size_ > mask_) grow();
    buf_[(head_ + size_) & mask_] = e;
    ++size_;
  }
  ReadyEntry pop() noexcept {
    const ReadyEntry e = buf_[head_];
    head_ = (head_ + 1) & mask_;
    --size_;
    return e;
  }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

 private:
  static constexpr std::size_t kInitial = 256;
  void grow() {
    const std::size_t old_cap = mask_ + 1;
    const std::size_t cap = old_cap * 2;
    auto nb = std::make_unique_for_overwrite<ReadyEntry[]>(cap);  // slots are written before read
    // The ring is full (size_ == old_cap): its two runs, head..end and 0..head, in order.
    assert(size_ == old_cap);
    ReadyEntry* const old = buf_.get();
    std::copy(old + head_, old + old_cap, nb.get());
    std::copy(old, old + head_, nb.get() + (old_cap - head_));
    buf_ = std::move(nb);
    head_ = 0;
    mask_ = cap - 1;
  }

  std::unique_ptr<ReadyEntry[]> buf_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
  std::size_t mask_;
};

}  // namespace asyncio::detail
