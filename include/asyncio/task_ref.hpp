// asyncio/task_ref.hpp - TaskRef, a type-erased handle to any task (current_task(), all_tasks()).
#pragma once

#include <string>
#include <utility>

#include "asyncio/detail/intrusive.hpp"
#include "asyncio/detail/task_state.hpp"
#include "asyncio/exceptions.hpp"

namespace asyncio {

/// A type-erased, copyable reference to a task of any result type; false when empty.
/// Python: the Task objects returned by asyncio.current_task() / asyncio.all_tasks()
class TaskRef {
 public:
  TaskRef() noexcept = default;
  explicit TaskRef(detail::TaskState* st) noexcept : st_(st) {}

  explicit operator bool() const noexcept { return static_cast<bool>(st_); }
  /// Python: Task.done()
  [[nodiscard]] bool done() const { return state().done(); }
  /// Python: Task.cancelled()
  [[nodiscard]] bool cancelled() const { return state().cancelled(); }
  /// Requests cancellation; see Task::cancel. Python: Task.cancel(msg)
  bool cancel(const std::string& msg = {}) { return state().cancel(msg); }
  /// Python: Task.get_name()
  [[nodiscard]] std::string get_name() const { return state().get_name(); }
  /// Python: Task.cancelling()
  [[nodiscard]] int cancelling() const { return state().cancelling(); }
  /// Python: Task.uncancel()
  int uncancel() { return state().uncancel(); }

  friend bool operator==(const TaskRef& a, const TaskRef& b) noexcept { return a.st_ == b.st_; }

  /// Internal.
  [[nodiscard]] detail::TaskState* get() const noexcept { return st_.get(); }

 private:
  [[nodiscard]] detail::TaskState& state() const {
    if (!st_) throw InvalidStateError("empty TaskRef");
    return *st_;
  }
  detail::Ref<detail::TaskState> st_;
};

}  // namespace asyncio
