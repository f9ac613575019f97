// Internal: the loop's ready queue, a FIFO of entries (Runnables, and tasks whose next step is
// due) in 4 KiB chunks (chunked_fifo.hpp): 8 bytes per queued entry, nothing copied as it
// grows, chunks given back as it drains, and no allocation while it stays within a chunk.
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

 private:
  ChunkedFifo<ReadyEntry> q_;
};

}  // namespace asyncio::detail
