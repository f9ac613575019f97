// t1_helpers.hpp - helpers for the futures and tasks suites (tests/unit/futures_test.cpp,
// tests/unit/tasks_test.cpp), on top of the shared asyncio_test.hpp.
//
//   new_virtual_loop()     a fresh, not running loop with virtual time
//   run_briefly(loop)      Python's test_utils.run_briefly: a couple of loop iterations
//   Tracker                appends "~name" to a log when destroyed (which frames died, in order)
//   thrown<E>(f)           the exception of type E that f() threw, or nullopt
//   Nothing here spins: every loop run ends by itself.
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "asyncio.hpp"
#include "asyncio_test.hpp"

namespace t1 {

/// A fresh loop (not running) whose clock only moves when it jumps to the next timer.
inline std::unique_ptr<asyncio::EventLoop> new_virtual_loop() {
  return asyncio::new_event_loop(asyncio_test::virtual_options());
}

inline asyncio::Coro<void> noop() {
  co_return;
}

/// Python's test_utils.run_briefly(loop): runs `loop` until a trivial task has finished, i.e.
/// two iterations: everything ready now runs in the first, what that schedules in the second.
inline void run_briefly(asyncio::EventLoop& loop) {
  loop.run_until_complete(noop());
}

/// Yields to the loop `n` times (each `sleep(0)` is one loop iteration).
inline asyncio::Coro<void> yield_n(int n) {
  for (int i = 0; i < n; ++i) co_await asyncio::sleep(0);
}

using asyncio_test::Tracker;

/// Calls f(); returns a copy of the exception of type E it threw, nullopt if it threw nothing
/// or something else.
template <class E, class F>
std::optional<E> thrown(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const E& e) {
    return e;
  } catch (...) {
    return std::nullopt;
  }
  return std::nullopt;
}

/// The message of the CancelledError held by `e` (nullopt when `e` holds something else).
inline std::optional<std::string> cancel_message_of(const std::exception_ptr& e) {
  if (!e) return std::nullopt;
  try {
    std::rethrow_exception(e);
  } catch (const asyncio::CancelledError& c) {
    return c.message();
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace t1
