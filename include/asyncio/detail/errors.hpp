// Internal: the error types the engine itself throws (CancelledError, KeyboardInterrupt, Error,
// TimeoutError, InvalidStateError, RuntimeError, ValueError) and how the runtime classifies
// an exception_ptr. They are public names, documented here and listed in asyncio/exceptions.hpp,
// which adds the rest of the hierarchy; they live below it so that detail headers need no
// public header.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

namespace asyncio {

/// The operation was cancelled. Thrown into a task at its suspension point by Task::cancel().
/// Not a std::exception (Python: asyncio.CancelledError derives from BaseException).
/// Python: asyncio.CancelledError
class CancelledError {
 public:
  CancelledError() = default;
  explicit CancelledError(std::string message) : message_(std::move(message)) {}
  /// The cancel message given to cancel(msg), or "" when none was given.
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  /// The cancel message, or "CancelledError" when there is none.
  [[nodiscard]] const char* what() const noexcept {
    return message_.empty() ? "CancelledError" : message_.c_str();
  }

 private:
  std::string message_;
};

/// The user pressed Ctrl-C while asyncio::run() ran. Not a std::exception.
/// Python: KeyboardInterrupt
class KeyboardInterrupt {
 public:
  [[nodiscard]] const char* what() const noexcept { return "KeyboardInterrupt"; }
};

/// Base of every asyncio-cpp error that is not a cancellation. Python: Exception
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The operation exceeded its deadline. Python: TimeoutError (asyncio.TimeoutError)
///
/// When timeout(), timeout_at() or wait_for() turn the cancellation they caused into a
/// TimeoutError, they throw it with std::throw_with_nested, so the CancelledError it replaces
/// stays reachable (Python's `__cause__`): `e.cause()` returns it, and
/// `std::rethrow_if_nested(e)` rethrows it. A TimeoutError thrown without a cause (as_completed,
/// or `throw TimeoutError()` in user code) is not a std::nested_exception, so
/// std::rethrow_if_nested() does nothing on it.
class TimeoutError : public Error {
 public:
  TimeoutError() : Error("TimeoutError") {}
  using Error::Error;

  /// The exception this error replaced (the CancelledError of the time-out), or null when it
  /// has none. Python: exc.__cause__
  [[nodiscard]] std::exception_ptr cause() const noexcept;
};

/// The object is not in a state that allows the operation (e.g. result() of a pending future).
/// Python: asyncio.InvalidStateError
class InvalidStateError : public Error {
 public:
  using Error::Error;
};

/// Misuse of the runtime (no running loop, loop closed, coroutine reused, ...). Python:
/// RuntimeError
class RuntimeError : public Error {
 public:
  using Error::Error;
};

/// An argument has the right type but a wrong value. Python: ValueError
class ValueError : public Error {
 public:
  using Error::Error;
};

namespace detail {
/// What kind of error an exception_ptr holds, for the runtime's own decisions.
enum class ErrorKind { none, cancelled, keyboard_interrupt, other };
/// Classifies `e` (rethrows and catches it; only call on slow paths).
ErrorKind classify(const std::exception_ptr& e) noexcept;
/// The message of a CancelledError held by `e` ("" for anything else).
std::string cancelled_message(const std::exception_ptr& e);
/// A short human description of any exception: its what() when it has one.
std::string describe(const std::exception_ptr& e);
/// Throws TimeoutError with `cause` (normally a CancelledError) nested in it: what timeout()
/// and wait_for() raise when their deadline cancelled the work (Python:
/// `raise TimeoutError from exc_val`).
[[noreturn]] void throw_timeout_from(const std::exception_ptr& cause);
}  // namespace detail

}  // namespace asyncio
