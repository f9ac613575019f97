// asyncio/taskgroups.hpp - structured concurrency (Python: taskgroups.py, asyncio.TaskGroup).
//
//   auto [a, b] = co_await asyncio::task_group([&](asyncio::TaskGroup& tg) ->
//   asyncio::Coro<std::pair<int, int>> {
//     auto t1 = tg.create_task(fetch(1));
//     auto t2 = tg.create_task(fetch(2));
//     co_return std::pair{co_await t1, co_await t2};
//   });
//
// C++ has no `async with`: the block is a coroutine lambda, awaited inside task_group(), which
// returns only when the body and every task created in the group are done. No child outlives
// the call. The first child failure cancels the body and the other children; every failure
// comes back in one ExceptionGroup. An outer cancellation cancels everything and stays
// CancelledError; KeyboardInterrupt escapes as itself.
#pragma once

#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "asyncio/composition.hpp"
#include "asyncio/coroutines.hpp"
#include "asyncio/detail/future_state.hpp"
#include "asyncio/detail/intrusive.hpp"
#include "asyncio/detail/task_state.hpp"
#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/tasks.hpp"

namespace asyncio {

namespace detail {

/// The state of one task group, shared by the TaskGroup handles (refcounted, so a handle kept
/// past the group's end only gets RuntimeError, never a dangling pointer).
/// States: active -> exiting -> finished, with `aborting` set once the group cancels everything.
/// Python: TaskGroup's fields and methods, one for one.
class TaskGroupCore final : public PoolAllocated {
 public:
  /// Binds to the running task. RuntimeError if there is none. Python: TaskGroup.__aenter__
  static TaskGroupCore* enter();
  TaskGroupCore(const TaskGroupCore&) = delete;
  TaskGroupCore& operator=(const TaskGroupCore&) = delete;
  ~TaskGroupCore();
  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete this;
  }

  /// Why create_task() is refused now (nullptr: it is not). Python: create_task's checks
  [[nodiscard]] const char* refusal() const noexcept;
  [[nodiscard]] EventLoop& loop() const noexcept { return *loop_; }
  /// Supervises a task just created in the group.
  void add_child(TaskState* task);
  /// Python: TaskGroup.__aexit__ (waits for every child, then throws as Python raises).
  Coro<void> exit(std::exception_ptr body_error);
  /// The frame of task_group() is being destroyed without exit() (the loop is closing).
  void detach() noexcept;
  /// Children not yet done (Python: len(tg._tasks)).
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// The running children, for format_task_tree().
  void children(std::vector<FutureStateBase*>& out) const;

 private:
  class Child;
  class CompletionWait;
  explicit TaskGroupCore(TaskState* parent) noexcept;
  void on_task_done(Child& child);
  void abort();
  void report_suppressed() noexcept;

  TaskState* parent_;  // null once finished
  EventLoop* loop_;
  std::uint32_t refs_ = 0;
  std::size_t size_ = 0;
  IntrusiveList children_;                // Child nodes (through their GroupHook)
  CompletionWait* completion_ = nullptr;  // exit() waiting for the last child
  std::vector<std::exception_ptr> errors_;
  std::exception_ptr base_error_;  // a KeyboardInterrupt, which escapes as itself
  bool exiting_ = false;
  bool aborting_ = false;
  bool parent_cancel_requested_ = false;
};

/// Destroys the children's bookkeeping if task_group()'s frame dies early (loop close).
class TaskGroupScope {
 public:
  explicit TaskGroupScope(TaskGroupCore* core) noexcept : core_(core) {}
  TaskGroupScope(const TaskGroupScope&) = delete;
  TaskGroupScope& operator=(const TaskGroupScope&) = delete;
  ~TaskGroupScope() { core_->detach(); }

 private:
  TaskGroupCore* core_;
};

}  // namespace detail

/// A handle to a running task group, given to task_group()'s body. Copyable; a copy kept after
/// the group finished refuses create_task() with RuntimeError. Python: asyncio.TaskGroup
class TaskGroup {
 public:
  /// Internal.
  explicit TaskGroup(detail::TaskGroupCore* core) noexcept : core_(core) {}

  /// Schedules `coro` as a task supervised by the group (it starts at a later iteration).
  /// RuntimeError (and `coro` is destroyed unrun, without a warning) once the group is
  /// shutting down after a failure or has finished.
  /// Cancellation: the group cancels the task if a sibling or the body fails, or if the
  ///   awaiting task is cancelled; the task may be cancelled on its own without affecting the
  ///   group.   Python: TaskGroup.create_task(coro, name=)
  template <class T>
  Task<T> create_task(Coro<T> coro, std::string name = {}) {
    if (const char* why = core_->refusal()) {
      coro.close();  // unrun, without the "never awaited" warning
      throw RuntimeError(why);
    }
    Task<T> task = name.empty() ? core_->loop().create_task(std::move(coro))
                                : core_->loop().create_task(std::move(coro), std::move(name));
    try {
      core_->add_child(static_cast<detail::TaskState*>(task.state()));
    } catch (...) {
      task.cancel();  // out of memory: never let it run unsupervised
      throw;
    }
    return task;
  }
  /// How many of the group's tasks are not done yet. (Python: len(tg._tasks))
  [[nodiscard]] std::size_t size() const noexcept { return core_->size(); }

  /// Internal.
  [[nodiscard]] detail::TaskGroupCore& core() const noexcept { return *core_; }

 private:
  detail::Ref<detail::TaskGroupCore> core_;
};

namespace detail {

template <class F>
using group_body_t = std::invoke_result_t<F&, TaskGroup&>;

template <class R, class F>
Coro<R> run_task_group(F body) {
  TaskGroup tg(TaskGroupCore::enter());
  TaskGroupScope scope(&tg.core());
  std::exception_ptr error;
  std::optional<value_or_unit_t<R>> result;
  try {
    if constexpr (std::is_void_v<R>) {
      co_await body(tg);
      result.emplace();
    } else {
      result.emplace(co_await body(tg));
    }
  } catch (...) {
    error = std::current_exception();
  }
  co_await tg.core().exit(error);  // throws whenever `error` is set
  if constexpr (!std::is_void_v<R>) co_return std::move(*result);
}

}  // namespace detail

/// Runs `body(tg)` and every task it creates with `tg.create_task()`, and returns the body's
/// result once all of them are done: no child outlives the call. The body lambda is awaited
/// inside the call, so capturing the caller's locals by reference is safe (the one place where
/// a reference-capturing coroutine lambda is fine; the children must not capture references to
/// the body's own locals unless the body awaits them).
///   * The first child that fails (with anything but CancelledError) cancels the body and the
///     other children; when all are done, task_group() throws ExceptionGroup with every failure
///     (the body's own error included, in the order they happened).
///   * A child cancelled on its own is no failure.
///   * A KeyboardInterrupt (from the body or a child) is rethrown as itself.
/// Cancellation: cancelling the awaiting task cancels the body and every child, waits for all
///   of them, then throws CancelledError (ExceptionGroup instead if children failed while
///   cancelling). The group's own cancellation of the body is undone (Task::uncancel), so it
///   never leaks out as CancelledError.
/// Throws: ExceptionGroup, CancelledError, KeyboardInterrupt; RuntimeError outside a task.
/// (g++ 12 destroys an inline lambda with non-trivial by-value captures twice when it sits in a
/// co_await expression: capture by reference, or name the lambda first. See
/// docs/design/cancellation.md.)
/// Python: async with asyncio.TaskGroup() as tg: ...
template <class F>
requires std::invocable<F&, TaskGroup&> && detail::CoroObject<detail::group_body_t<F>>
[[nodiscard]] Coro<typename detail::group_body_t<F>::value_type> task_group(F body) {
  return detail::run_task_group<typename detail::group_body_t<F>::value_type>(std::move(body));
}

}  // namespace asyncio
