// asyncio/debug.hpp - seeing what the tasks are doing (Python 3.14: `python -m asyncio pstree`).
//
// Debug mode itself (RunOptions{.debug = true} or ASYNCIO_DEBUG=1) needs nothing from this
// header: the loop then reports, through its exception handler (the one replaceable logging
// hook, EventLoop::set_exception_handler):
//   * "coroutine 'f' was never awaited"      a Coro destroyed without being awaited or scheduled;
//   * "Task exception was never retrieved"   a failed task (or future) released while its error
//                                            was never looked at (result(), exception(), await);
//   * "Executing Task 'name' in f took 0.2 seconds"   a callback or task step that held the loop
//                                            longer than slow_callback_duration (a blocking
//                                            std::this_thread::sleep_for inside a coroutine).
// The task tree below works with or without debug mode.
#pragma once

#include <string>

#include "asyncio/events.hpp"

namespace asyncio {

/// Every live task of `loop`, as a tree: each task, then the chain of coroutines it is
/// suspended in (outermost first), then the tasks it awaits (through co_await, gather,
/// wait_for, shield, wait, as_completed or a task group) under its innermost coroutine.
/// Tasks that nobody awaits are the roots. Example:
///     └── (T) Task-1
///         └── main
///             └── fetch_all
///                 ├── (T) fetch-a
///                 │   └── fetch
///                 └── (T) fetch-b [cancelling]
///                     └── fetch
/// Empty when no task is alive. Python 3.14: asyncio.tools (python -m asyncio pstree)
[[nodiscard]] std::string format_task_tree(EventLoop& loop);
/// format_task_tree() of the running loop (RuntimeError when none runs).
[[nodiscard]] std::string format_task_tree();

/// Reports format_task_tree() through the loop's exception handler ("Task tree:\n..."), so it
/// goes wherever the other debug output goes (stderr by default).
void print_task_tree(EventLoop& loop);
/// print_task_tree() of the running loop.
void print_task_tree();

}  // namespace asyncio
