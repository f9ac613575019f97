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
  [[nodiscard]] bool done() const;
  /// Python: Task.cancelled()
  [[nodiscard]] bool cancelled() const;
  /// Requests cancellation; see Task::cancel. Python: Task.cancel(msg)
  bool cancel(const std::string& msg = {});
  /// Python: Task.get_name()
  [[nodiscard]] std::string get_name() const;
  /// Python: Task.cancelling()
  [[nodiscard]] int cancelling() const;
  /// Python: Task.uncancel()
  int uncancel();

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

inline bool TaskRef::done() const {
  return state().done();
}
inline bool TaskRef::cancelled() const {
  return state().cancelled();
}
inline bool TaskRef::cancel(const std::string& msg) {
  return state().cancel(msg);
}
inline std::string TaskRef::get_name() const {
  return state().get_name();
}
inline int TaskRef::cancelling() const {
  return state().cancelling();
}
inline int TaskRef::uncancel() {
  return state().uncancel();
}

}  // namespace asyncio
