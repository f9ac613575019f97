// Internal: the loop's registry of pending tasks (Python: the loop's _all_tasks), which holds
// each of them strongly until it is done (the loop's reference; see tasks.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace asyncio::detail {

class TaskState;

/// A slot table: each pending task knows its slot, so it leaves in O(1), and the table costs
/// one word per pending task where an intrusive list would put two in every TaskState. A slot
/// holds the task's root frame, which the task itself does not keep while it runs (it needs it
/// only to be destroyed while pending); the task is found from the root's promise. Free slots
/// form a list through the table and are reused first, so a steady workload allocates nothing.
class TaskRegistry {
 public:
  static constexpr std::uint32_t kNoSlot = 0xFFFFFFFFU;

  /// Adds the task whose root frame is `root` and returns its slot. Throws std::bad_alloc (or
  /// std::length_error past 2^32 - 1 pending tasks) with nothing changed.
  std::uint32_t add(void* root);
  /// Frees slot `slot` (the task left).
  void remove(std::uint32_t slot) noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return live_; }
  /// The pending tasks, oldest first (ordered by id).
  [[nodiscard]] std::vector<TaskState*> list() const;
  /// Empties the registry and returns the root frames it held, oldest task first; the tasks'
  /// slots are unset. Allocates nothing (the table becomes the list).
  std::vector<void*> take_all() noexcept;
  /// The task whose root frame is `root`.
  static TaskState* task_of(void* root) noexcept;

 private:
  static bool is_free(const void* s) noexcept {
    return (reinterpret_cast<std::uintptr_t>(s) & 1) != 0;
  }
  // A root frame, or a free slot: the pointer value (index of the next free slot << 1) | 1.
  std::vector<void*> slots_;
  std::uint32_t free_ = kNoSlot;
  std::size_t live_ = 0;
};

}  // namespace asyncio::detail
